"""Safe SOQL building in orderflow.salesforce.soql: ids validated by pattern, strings escaped."""

from __future__ import annotations

import datetime as dt

import pytest

from orderflow.salesforce.soql import (
    InvalidSalesforceId,
    escape,
    escape_like,
    field_list,
    id_list,
    literal,
    quote,
    to_18,
    validate_id,
    validate_order_id,
)


def test_order_ids_15_and_18_chars() -> None:
    assert validate_order_id("8015g000000001A") == "8015g000000001A" + to_18("8015g000000001A")[15:]
    full = to_18("8015g000000001A")
    assert validate_order_id(full) == full
    assert validate_order_id(full[:15] + full[15:].lower()) == full  # suffix is case-insensitive


@pytest.mark.parametrize(
    "value",
    [
        "801' OR Name != '",
        "8015g000000001A' OR Id != '",
        "0015g000000001AAAA",  # an Account id
        "8015g00000001",  # too short
        "8015g000000001A00",  # 17 chars
        "8015g000000001A-AA",
        "8015g000000001AZZZ",  # wrong case-safe suffix
        "",
        None,
        801,
    ],
)
def test_order_id_validator_refuses(value: object) -> None:
    with pytest.raises(InvalidSalesforceId, match="order_id"):
        validate_order_id(value)


def test_validate_id_checks_object_prefix_and_names_the_field() -> None:
    assert validate_id("001A0000006Vm9r", "Account") == "001A0000006Vm9rIAC"
    with pytest.raises(InvalidSalesforceId, match="account_id must be a Account id"):
        validate_id("801A0000006Vm9r", "Account", field="account_id")


def test_escape_and_quote() -> None:
    assert escape("O'Brien") == "O\\'Brien"
    assert escape("back\\slash") == "back\\\\slash"
    assert escape('say "hi"\n') == 'say \\"hi\\"\\n'
    assert quote("x' OR Id != '") == "'x\\' OR Id != \\''"
    assert escape_like("100%_done") == "100\\%\\_done"


def test_literals() -> None:
    assert literal(None) == "NULL"
    assert literal(True) == "TRUE" and literal(False) == "FALSE"
    assert literal(3) == "3" and literal(2.5) == "2.5"
    assert literal(dt.date(2026, 1, 2)) == "2026-01-02"
    assert literal(dt.datetime(2026, 1, 2, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))) == "2026-01-02T03:00:00Z"
    assert literal("it's") == "'it\\'s'"
    with pytest.raises(TypeError):
        literal(object())


def test_id_list_and_field_list() -> None:
    assert id_list(["001A0000006Vm9r"]) == "('001A0000006Vm9rIAC')"
    with pytest.raises(InvalidSalesforceId):
        id_list(["001A0000006Vm9r", "x' OR '1'='1"])
    with pytest.raises(ValueError):
        id_list([])
    assert field_list(["Id", "Account.WH_Account__c"]) == "Id, Account.WH_Account__c"
    with pytest.raises(ValueError):
        field_list(["Id FROM User --"])


def test_client_and_sandbox_agree_on_checksums() -> None:
    from orderflow_sandbox.salesforce.ids import make_id

    for n in (1, 61, 62, 3843, 10**9):
        full = make_id("801", n)
        assert to_18(full[:15]) == full
