"""The Orders search box and the runbook table the console reads (no Airflow, no network)."""

from __future__ import annotations

import pytest

from orderflow.console.query import InvalidQuery, QueryKind, parse_query
from orderflow.console.runbook import parse_runbook


def test_order_id_in_15_or_18_chars_is_normalised_to_18():
    q15 = parse_query("8015g0000000001")
    assert (q15.kind, q15.value) == (QueryKind.ORDER_ID, "8015g0000000001AAA")
    assert parse_query(" 8015g0000000001AAA ").value == "8015g0000000001AAA"


def test_digits_are_an_order_number_or_a_whmcs_id():
    q = parse_query("#42")
    assert q.kind is QueryKind.NUMBER and q.order_numbers == ("42", "00000042")


@pytest.mark.parametrize("bad", ["", "   ", "' OR Id != '", "001000000000001AAA", "801abc", "9" * 13, "x" * 41])
def test_anything_else_is_refused_naming_the_field(bad):
    with pytest.raises(InvalidQuery, match=r"^q "):
        parse_query(bad)


def test_runbook_steps_come_from_the_what_to_do_column():
    readme = """## Runbook (ops)

| code | kind | what to do |
|---|---|---|
| A_CODE | permanent | fix `x`, then clear |
| B_ONE / B_TWO | transient | wait |

## Next
| code | what to do |
|---|---|
| OUTSIDE | not the runbook |
"""
    assert parse_runbook(readme) == {"A_CODE": "fix `x`, then clear", "B_ONE": "wait", "B_TWO": "wait"}
