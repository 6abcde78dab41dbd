"""Hostile trigger params: each row is refused by the trigger form's schema (validated as Airflow does
when the UI, the REST API, the CLI or a TriggerDagRunOperator creates a run) with a message naming the
field, and again by the DAG's first task, which is the last line before anything reaches SOQL.

The same rows go through a live API server and the CLI in tests/e2e/test_hostile_params_live.py.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
GOOD_18 = "801000000000001AAA"  # to_18("801000000000001")
GOOD_15 = GOOD_18[:15]
CYRILLIC_O = "\u043e"  # looks like the letter o
FULLWIDTH_1 = "\uff11"  # looks like the digit 1

# (value of order_id, the problem the message must state). Shared by both DAGs.
BAD_ORDER_IDS = [
    pytest.param("801' OR Name != '", "does not match", id="soql-injection-or"),
    pytest.param("801000000000001'; DELETE", "does not match", id="soql-injection-semicolon"),
    pytest.param("801000000000001\\'", "does not match", id="backslash-quote"),
    pytest.param('801000000000001"AA', "does not match", id="double-quote"),
    pytest.param(f"80100000000000{CYRILLIC_O}AAA", "does not match", id="cyrillic-o"),
    pytest.param(f"80100000000000{FULLWIDTH_1}AAA", "does not match", id="fullwidth-digit"),
    pytest.param(f" {GOOD_18}", "does not match", id="leading-space"),
    pytest.param(f"{GOOD_18} ", "does not match", id="trailing-space"),
    pytest.param(f"{GOOD_18}\n", "does not match", id="trailing-newline"),
    pytest.param(f"{GOOD_15}\n", "does not match", id="15-chars-trailing-newline"),
    pytest.param(f"\t{GOOD_15}", "does not match", id="leading-tab"),
    pytest.param("001000000000001AAA", "does not match", id="account-prefix"),
    pytest.param("802000000000001AAA", "does not match", id="orderitem-prefix"),
    pytest.param("80100000000001", "does not match", id="14-chars"),
    pytest.param("8010000000000010A", "does not match", id="17-chars"),
    pytest.param(GOOD_18 + "A", "does not match", id="19-chars"),
    pytest.param("801" + "A" * 100_000, "does not match", id="oversized"),
    pytest.param(801000000000001, "is not of type", id="int"),
    pytest.param([GOOD_18], "is not of type", id="list"),
    pytest.param({"Id": GOOD_18}, "is not of type", id="dict"),
    pytest.param(True, "is not of type", id="bool"),
]


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_DIR), safe_mode=False)
    assert bag.import_errors == {}, bag.import_errors
    return bag.dags


def _refusal(dag, conf: dict) -> str:
    """The error Airflow raises for ``conf`` (what create_dagrun raises for the API, the CLI and the form)."""
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dag.params)
    with pytest.raises(ParamValidationError) as err:
        params.update(conf)
        params.validate()
    return str(err.value)


def _accepted(dag, conf: dict) -> dict:
    params = copy.deepcopy(dag.params)
    params.update(conf)
    return params.validate()


# ---------------------------------------------------------------- provision_order


@pytest.mark.parametrize("value, problem", BAD_ORDER_IDS)
def test_provision_order_form_refuses_bad_order_id_naming_the_field(dags, value, problem):
    message = _refusal(dags["provision_order"], {"order_id": value})
    assert message.startswith("Invalid input for param order_id:"), message[:200]
    assert problem in message, message[:300]


@pytest.mark.parametrize("value, problem", BAD_ORDER_IDS)
def test_provision_order_first_task_refuses_the_same_ids_before_any_query(value, problem):
    """A run that skipped the form (a bug, an older serialized DAG) still never builds SOQL from the value."""
    from orderflow.provisioning.order import query_for
    from orderflow.salesforce.soql import InvalidSalesforceId

    with pytest.raises(InvalidSalesforceId, match=r"^order_id must be a Salesforce Order id"):
        query_for(value)


@pytest.mark.parametrize("conf, field, problem", [
    pytest.param({}, "order_id", "required", id="missing"),
    pytest.param({"order_id": None}, "order_id", "is not of type", id="null"),
    pytest.param({"order_id": ""}, "order_id", "does not match", id="empty"),
    pytest.param({"order_id": GOOD_18, "idem_key": "k" * 81}, "idem_key", "is too long", id="idem-key-81"),
    pytest.param({"order_id": GOOD_18, "idem_key": 5}, "idem_key", "is not of type", id="idem-key-int"),
    pytest.param({"order_id": GOOD_18, "source": "cron"}, "source", "is not one of", id="source-unknown"),
    pytest.param({"order_id": GOOD_18, "source": "Manual"}, "source", "is not one of", id="source-case"),
    pytest.param({"order_id": GOOD_18, "source": None}, "source", "is not one of", id="source-null"),
    pytest.param({"order_id": GOOD_18, "source": ["manual"]}, "source", "is not one of", id="source-list"),
])
def test_provision_order_form_refuses_other_bad_fields(dags, conf, field, problem):
    message = _refusal(dags["provision_order"], conf)
    if problem == "required":  # Airflow names the param whose value is missing
        assert "order_id" in message and "No value passed" in message, message
        return
    assert message.startswith(f"Invalid input for param {field}:"), message[:200]
    assert problem in message, message[:300]


@pytest.mark.parametrize("value", [GOOD_18, GOOD_15, "801Ab0000000001"])
def test_provision_order_form_accepts_15_and_18_char_order_ids(dags, value):
    assert _accepted(dags["provision_order"], {"order_id": value})["order_id"] == value


def test_a_15_char_id_reaches_soql_in_its_18_char_form():
    from orderflow.provisioning.order import query_for
    from orderflow.salesforce.soql import to_18

    assert f"'{to_18(GOOD_15)}'" in query_for(GOOD_15) and to_18(GOOD_15) == GOOD_18


def test_wrong_case_safe_suffix_passes_the_form_but_the_first_task_refuses_it(dags):
    """The pattern cannot check the checksum; the task can (a wrong suffix names some other record)."""
    from orderflow.provisioning.order import query_for
    from orderflow.salesforce.soql import InvalidSalesforceId

    wrong = GOOD_15 + "ABC"  # the suffix's case does not matter ("aaa" is "AAA"), its letters do
    _accepted(dags["provision_order"], {"order_id": wrong})
    with pytest.raises(InvalidSalesforceId, match="order_id has a wrong case-safe suffix"):
        query_for(wrong)


# ---------------------------------------------------------------- reconcile_orders


@pytest.mark.parametrize("value, problem", BAD_ORDER_IDS[:-5])  # the type rows are below (null is allowed)
def test_reconcile_orders_form_refuses_bad_order_id_naming_the_field(dags, value, problem):
    message = _refusal(dags["reconcile_orders"], {"order_id": value})
    assert message.startswith("Invalid input for param order_id:"), message[:200]
    assert problem in message, message[:300]


RECONCILE_BAD = [
    pytest.param({"order_id": 801000000000001}, "order_id", "is not of type", id="order_id-int"),
    pytest.param({"order_id": [GOOD_18]}, "order_id", "is not of type", id="order_id-list"),
    pytest.param({"dry_run": "yes"}, "dry_run", "is not of type", id="dry_run-string"),
    pytest.param({"dry_run": None}, "dry_run", "is not of type", id="dry_run-null"),
    pytest.param({"dry_run": 1}, "dry_run", "is not of type", id="dry_run-int"),
    pytest.param({"lookback_days": "30"}, "lookback_days", "is not of type", id="lookback-string"),
    pytest.param({"lookback_days": 0}, "lookback_days", "less than the minimum", id="lookback-zero"),
    pytest.param({"lookback_days": -1}, "lookback_days", "less than the minimum", id="lookback-negative"),
    pytest.param({"lookback_days": 10**9}, "lookback_days", "greater than the maximum", id="lookback-huge"),
    pytest.param({"lookback_days": 1.5}, "lookback_days", "is not of type", id="lookback-fraction"),
    pytest.param({"max_repairs": -1}, "max_repairs", "less than the minimum", id="max_repairs-negative"),
    pytest.param({"max_repairs": None}, "max_repairs", "is not of type", id="max_repairs-null"),
    pytest.param({"max_repairs": [500]}, "max_repairs", "is not of type", id="max_repairs-list"),
    pytest.param({"max_drift_percent": 101}, "max_drift_percent", "greater than the maximum", id="drift-101"),
    pytest.param({"max_drift_percent": "5"}, "max_drift_percent", "is not of type", id="drift-string"),
    pytest.param({"stuck_minutes": 0}, "stuck_minutes", "less than the minimum", id="stuck-zero"),
    pytest.param({"recent_minutes": 1441}, "recent_minutes", "greater than the maximum", id="recent-huge"),
    pytest.param({"accept_pending": "false"}, "accept_pending", "is not of type", id="accept_pending-string"),
]


@pytest.mark.parametrize("conf, field, problem", RECONCILE_BAD)
def test_reconcile_orders_form_refuses_bad_values_naming_the_field(dags, conf, field, problem):
    message = _refusal(dags["reconcile_orders"], conf)
    assert message.startswith(f"Invalid input for param {field}:"), message[:200]
    assert problem in message, message[:300]


@pytest.mark.parametrize("conf, field, problem", RECONCILE_BAD)
def test_reconcile_orders_first_task_refuses_the_same_values(conf, field, problem):
    from orderflow.reconcile.tasks import validate_params

    with pytest.raises(ValueError, match=rf"^{field}"):
        validate_params(conf)


@pytest.mark.parametrize("value", [v.values[0] for v in BAD_ORDER_IDS])
def test_reconcile_orders_first_task_refuses_every_bad_order_id(value):
    from orderflow.reconcile.tasks import validate_params

    with pytest.raises(ValueError, match=r"^order_id"):
        validate_params({"order_id": value})


@pytest.mark.parametrize("conf, field", [
    # JSON Schema counts 2.0 as an integer; the task wants a whole number and says so.
    pytest.param({"lookback_days": 2.0}, "lookback_days", id="lookback-2.0"),
    pytest.param({"max_repairs": 10.0}, "max_repairs", id="max_repairs-10.0"),
    pytest.param({"order_id": GOOD_15 + "ABC"}, "order_id", id="order_id-wrong-suffix"),
])
def test_values_the_form_lets_through_are_refused_by_the_first_task(dags, conf, field):
    from orderflow.reconcile.tasks import validate_params

    _accepted(dags["reconcile_orders"], conf)
    with pytest.raises(ValueError, match=rf"^{field}"):
        validate_params(conf)


def test_reconcile_orders_accepts_null_and_empty_order_id_as_all_orders(dags):
    from orderflow.reconcile.tasks import validate_params

    assert _accepted(dags["reconcile_orders"], {"order_id": None})["order_id"] is None
    assert validate_params({"order_id": None})["order_id"] is None
    assert validate_params({"order_id": GOOD_15})["order_id"] == GOOD_18


def test_the_first_task_fails_a_wrong_suffix_for_good_before_looking_up_any_connection():
    """No connection exists in this test: reaching Salesforce would fail differently (and be retried)."""
    from orderflow.errors import ErrorCode, PermanentError
    from orderflow.provisioning.tasks import load_and_validate

    with pytest.raises(PermanentError) as err:
        load_and_validate(GOOD_15 + "ABC")
    assert err.value.code is ErrorCode.ORDER_NOT_FOUND
    assert err.value.message.startswith("order_id has a wrong case-safe suffix")


def test_the_failure_callback_writes_nothing_for_an_order_id_that_is_not_an_order(caplog):
    from orderflow.errors import ErrorCode, PermanentError
    from orderflow.provisioning.tasks import on_final_failure

    error = PermanentError(ErrorCode.ORDER_NOT_FOUND, "order_id has a wrong case-safe suffix")
    with caplog.at_level("ERROR"):
        on_final_failure({"exception": error, "params": {"order_id": GOOD_15 + "ABC"}})
    messages = [r.getMessage() for r in caplog.records]
    assert any("Not marking any Order Failed" in m for m in messages), messages
    assert not any("Could not write the failure" in m for m in messages), messages
