"""The error classification contract (docs/architecture.md, "Error codes"): every code, transient vs permanent."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import requests

from orderflow.errors import (
    MAX_MESSAGE_LENGTH,
    ErrorCode,
    OrderflowError,
    PermanentError,
    SessionExpired,
    TransientError,
    WhmcsOrderNotPending,
    classify_salesforce_bulk_job,
    classify_salesforce_record_error,
    classify_salesforce_response,
    classify_transport_error,
    classify_whmcs_response,
    register_secret,
    safe_message,
)

CONTRACT_TABLE = {  # the provisioning contract's codes; the tables below cover every code
    "ORDER_NOT_FOUND": False,
    "CLIENT_MAPPING_MISSING": False,
    "PRODUCT_MAPPING_MISSING": False,
    "PAYMENT_METHOD_MISSING": False,
    "WHMCS_CLIENT_NOT_FOUND": False,
    "WHMCS_ORDER_REJECTED": False,
    "WHMCS_PROVISIONING_FAILED": True,
    "DUPLICATE_WHMCS_ORDERS": False,
    "WHMCS_UNAVAILABLE": True,
    "SALESFORCE_UNAVAILABLE": True,
}


@pytest.mark.parametrize(("code", "transient"), sorted(CONTRACT_TABLE.items()))
def test_given_contract_code_then_kind_matches_table(code, transient):
    assert ErrorCode(code).transient is transient
    err = OrderflowError(ErrorCode(code), "boom")  # an error takes its kind from its code
    assert err.code.value == code
    assert err.transient is transient


def test_every_contract_code_exists():
    assert set(CONTRACT_TABLE) <= {c.value for c in ErrorCode}


def test_given_whmcs_success_then_dict_returned():
    assert classify_whmcs_response("GetOrders", 200, '{"result":"success","totalresults":"0"}') == {
        "result": "success",
        "totalresults": "0",
    }


@pytest.mark.parametrize(
    ("action", "status", "body", "code", "transient"),
    [
        ("AddOrder", 200, '{"result":"error","message":"Invalid Product ID"}', "WHMCS_ORDER_REJECTED", False),
        ("GetPayMethods", 200, '{"result":"error","message":"Client ID Not Found"}', "WHMCS_CLIENT_NOT_FOUND", False),
        ("AddOrder", 200, '{"result":"error","message":"Client ID Not Found"}', "WHMCS_CLIENT_NOT_FOUND", False),
        ("AcceptOrder", 200, '{"result":"error","message":"Module Error: timeout"}', "WHMCS_PROVISIONING_FAILED", True),
        ("GetOrders", 500, "Internal Server Error", "WHMCS_UNAVAILABLE", True),
        ("GetOrders", 503, '{"result":"error","message":"down"}', "WHMCS_UNAVAILABLE", True),
        ("GetOrders", 200, "<html><body>Maintenance</body></html>", "WHMCS_UNAVAILABLE", True),
        ("GetOrders", 403, '{"result":"error","message":"Invalid IP 10.0.0.1"}', "WHMCS_CONFIGURATION_ERROR", False),
        ("GetOrders", 200, '{"result":"error","message":"Authentication Failed"}', "WHMCS_CONFIGURATION_ERROR", False),
        (
            "AddOrder",
            403,
            '{"result":"error","message":"Invalid Permissions: API action \\u0022addorder\\u0022 is not allowed"}',
            "WHMCS_CONFIGURATION_ERROR",
            False,
        ),
    ],
)
def test_given_whmcs_failure_when_classified_then_code_and_kind(action, status, body, code, transient):
    err = classify_whmcs_response(action, status, body, "text/html" if body.startswith("<") else "application/json")
    assert isinstance(err, OrderflowError)
    assert (err.code.value, err.transient) == (code, transient)
    assert "<" not in err.message


def test_given_accept_on_non_pending_order_then_not_pending_error_for_caller_to_verify():
    err = classify_whmcs_response(
        "AcceptOrder", 200, '{"result":"error","message":"Order ID not found or Status not Pending"}'
    )
    assert isinstance(err, WhmcsOrderNotPending)
    assert err.code is ErrorCode.WHMCS_PROVISIONING_FAILED


@pytest.mark.parametrize(
    ("status", "body", "code", "transient", "cls"),
    [
        (401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], "SALESFORCE_UNAVAILABLE", True, SessionExpired),
        (403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}], "SALESFORCE_UNAVAILABLE", True, TransientError),
        (400, [{"message": "unable to obtain exclusive access", "errorCode": "UNABLE_TO_LOCK_ROW"}], "SALESFORCE_UNAVAILABLE", True, TransientError),
        (503, "Service Unavailable", "SALESFORCE_UNAVAILABLE", True, TransientError),
        (404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}], "ORDER_NOT_FOUND", False, PermanentError),
        (400, [{"message": "No such column 'Foo__c' on entity 'Order'", "errorCode": "INVALID_FIELD"}], "SALESFORCE_CONFIGURATION_ERROR", False, PermanentError),
        (400, {"error": "invalid_grant", "error_description": "user hasn't approved this consumer"}, "SALESFORCE_CONFIGURATION_ERROR", False, PermanentError),
    ],
)
def test_given_salesforce_failure_when_classified_then_code_and_kind(status, body, code, transient, cls):
    err = classify_salesforce_response(status, body, "query")
    assert isinstance(err, cls)
    assert (err.code.value, err.transient) == (code, transient)


@pytest.mark.parametrize(
    ("message", "code"),
    [  # what simple-salesforce's Bulk 2.0 handler raises when it stops waiting for a job
        ("Job failure. Response content: INVALID_FIELD: No such column 'Foo__c' on entity 'Order'",
         "SALESFORCE_CONFIGURATION_ERROR"),
        ("Job failure. Response content: InvalidJob : Failed to process query: MALFORMED_QUERY: unexpected token",
         "SALESFORCE_CONFIGURATION_ERROR"),
        ("Job failure. Response content: INSUFFICIENT_ACCESS: no access to entity OrderItem",
         "SALESFORCE_CONFIGURATION_ERROR"),
        ("Job failure. Response content: UNKNOWN_EXCEPTION: InternalServerError", "SALESFORCE_UNAVAILABLE"),
        ("Job failure. Response content: QUERY_TIMEOUT: Your query request was running for too long.",
         "SALESFORCE_UNAVAILABLE"),
        ("Job failure. Response content: {'id': '750x', 'state': 'Aborted'}", "SALESFORCE_UNAVAILABLE"),
        ("Job timeout. Job status: InProgress", "SALESFORCE_UNAVAILABLE"),
    ],
)
def test_given_a_bulk_job_that_did_not_complete_then_only_a_configuration_code_is_permanent(message, code):
    err = classify_salesforce_bulk_job(message, "Bulk 2.0 query of Order")
    assert err.code.value == code
    assert err.transient is (code == "SALESFORCE_UNAVAILABLE")
    assert isinstance(err, TransientError if err.transient else PermanentError)
    assert err.message.startswith("Salesforce Bulk 2.0 query of Order: Job ")


def test_given_collection_record_errors_then_lock_is_transient_and_validation_permanent():
    assert classify_salesforce_record_error({"statusCode": "UNABLE_TO_LOCK_ROW", "message": "x"}).transient
    err = classify_salesforce_record_error({"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "x"})
    assert not err.transient and err.code is ErrorCode.SALESFORCE_WRITE_FAILED


def test_given_transport_errors_then_timeouts_transient_and_bad_ca_permanent():
    assert classify_transport_error("whmcs", requests.ConnectTimeout("timed out")).code is ErrorCode.WHMCS_UNAVAILABLE
    assert classify_transport_error("salesforce", requests.ConnectionError("reset")).transient
    tls = classify_transport_error("whmcs", requests.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED]"))
    assert not tls.transient and tls.code is ErrorCode.WHMCS_CONFIGURATION_ERROR


def test_safe_message_is_one_line_short_and_without_html():
    raw = "<html><body><h1>502 Bad Gateway</h1>\n\n<p>nginx &amp; friends</p></body></html>" + "x" * 400
    msg = safe_message(raw)
    assert "\n" not in msg and "<" not in msg and "&amp;" not in msg
    assert len(msg) <= MAX_MESSAGE_LENGTH
    assert msg.startswith("502 Bad Gateway nginx & friends")


def test_safe_message_scrubs_registered_and_shaped_secrets():
    register_secret("s3cr3t-value-xyz")
    token = "00D000000000001!AQ4AQFakeTokenValue.abc"
    msg = safe_message(f"failed with secret=s3cr3t-value-xyz and token {token} Bearer {token}")
    assert "s3cr3t-value-xyz" not in msg
    assert "AQ4AQFakeTokenValue" not in msg


def test_errors_survive_pickling_with_code_and_kind():
    err = pickle.loads(pickle.dumps(PermanentError(ErrorCode.PAYMENT_METHOD_MISSING, "no pay method")))
    assert isinstance(err, PermanentError)
    assert (err.code, err.transient, err.message) == (ErrorCode.PAYMENT_METHOD_MISSING, False, "no pay method")


REPO = Path(__file__).resolve().parents[2]
_CODE_RE = re.compile(r"^[A-Z][A-Z_]+$")


def error_code_table(path: Path) -> dict[str, bool]:
    """``{code: transient}`` from the Markdown table whose header starts ``| code | kind |``.

    A row may name several codes separated by ``/``; a code listed twice is an error.
    """
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^\|\s*code\s*\|\s*kind\s*\|", line))
    table: dict[str, bool] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        kind = cells[1]
        assert kind in {"transient", "permanent"}, f"{path.name}: kind {kind!r} in {line!r}"
        for code in (c.strip().strip("`") for c in cells[0].split("/")):
            assert _CODE_RE.match(code), f"{path.name}: not a code: {code!r}"
            assert code not in table, f"{path.name}: {code} listed twice"
            table[code] = kind == "transient"
    return table


@pytest.mark.parametrize("doc", ["README.md", "docs/architecture.md"])
def test_error_code_tables_match_the_enum(doc):
    """The runbook and the architecture list exactly the enum's codes, each with its kind (one source)."""
    table = error_code_table(REPO / doc)
    assert table == {code.value: code.transient for code in ErrorCode}


def test_error_code_table_parser_sees_a_wrong_kind(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("| code | kind | when |\n|---|---|---|\n| ORDER_NOT_FOUND / WHMCS_UNAVAILABLE | permanent | x |\n")
    table = error_code_table(doc)
    assert table == {"ORDER_NOT_FOUND": False, "WHMCS_UNAVAILABLE": False}
    assert table != {code.value: code.transient for code in ErrorCode}


def test_unclassified_exception_is_written_as_an_enum_code():
    from orderflow.provisioning.steps import failure_fields

    fields = failure_fields(KeyError("WH_Product_ID__c"))
    assert ErrorCode(fields["Activation_Error_Code__c"]) is ErrorCode.PROVISIONING_ERROR
    assert not ErrorCode.PROVISIONING_ERROR.transient
    assert "KeyError" in fields["Activation_Error_Message__c"]


@pytest.mark.parametrize(
    ("action", "message"),
    [("GetOrders", "Something unexpected"), ("ModuleCreate", "Service ID Not Found")],
)
def test_unmatched_whmcs_failure_is_not_labelled_an_addorder_rejection(action, message):
    err = classify_whmcs_response(action, 200, f'{{"result":"error","message":"{message}"}}')
    assert isinstance(err, PermanentError)
    assert err.code is ErrorCode.WHMCS_REQUEST_REJECTED and action in err.message


def test_only_transport_failures_are_marked_from_transport():
    dropped = classify_transport_error("whmcs", requests.ConnectionError("reset by peer"))
    assert dropped.from_transport and pickle.loads(pickle.dumps(dropped)).from_transport
    assert classify_transport_error("salesforce", requests.ReadTimeout("read timed out")).from_transport
    answered = classify_whmcs_response("GetOrders", 503, "Service Unavailable")
    assert isinstance(answered, TransientError) and not answered.from_transport


def test_secret_registered_before_airflow_is_imported_still_reaches_its_masker():
    """Masking must not depend on import order: register first, import Airflow later."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from orderflow.errors import register_secret, mask_registered_secrets\n"
        "register_secret('early-s3cret-value')\n"
        "assert 'airflow.sdk' not in sys.modules\n"
        "import orderflow.whmcs.hook\n"  # any Airflow hook module loads airflow.sdk
        "assert mask_registered_secrets() == 1\n"
        "from airflow.sdk.log import redact\n"
        "print(redact('token early-s3cret-value here'))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert "early-s3cret-value" not in out.stdout and "***" in out.stdout
