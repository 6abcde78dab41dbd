"""Which failed AddOrders may WHMCS still commit later (``steps.answer_lost``), so a retry must wait.

The errors come from the one classification (``orderflow.errors``), so a change of its wording that
would hide a gateway timeout or an unknown result from the settle window fails here.
"""

from __future__ import annotations

import pytest

from orderflow.errors import (
    ErrorCode,
    PermanentError,
    TransientError,
    classify_transport_error,
    classify_whmcs_response,
)
from orderflow.provisioning.steps import answer_lost


@pytest.mark.parametrize(
    "error,lost",
    [
        (classify_transport_error("whmcs", TimeoutError("Read timed out")), True),
        (classify_transport_error("whmcs", ConnectionResetError("reset by peer")), True),
        (classify_whmcs_response("AddOrder", 504, "<html><h1>504 Gateway Time-out</h1></html>", "text/html"), True),
        (classify_whmcs_response("AddOrder", 524, "<html>A timeout occurred</html>", "text/html"), True),
        (classify_whmcs_response("AddOrder", 200, '{"result":"pending","message":"queued"}'), True),
        (classify_whmcs_response("AddOrder", 503, "<h1>Service Unavailable</h1>", "text/html"), False),
        (classify_whmcs_response("AddOrder", 500, "<h1>Oops!</h1>", "text/html"), False),
        (classify_whmcs_response("AddOrder", 200, '{"result":"success","orderid":"12","serviceids":"7,'), False),
        (classify_whmcs_response("AddOrder", 200, '{"result":"error","message":"Invalid Product ID"}'), False),
        (TransientError(ErrorCode.WHMCS_UNAVAILABLE, "WHMCS AddOrder: HTTP 5040"), False),
        (PermanentError(ErrorCode.WHMCS_CONFIGURATION_ERROR, "TLS verification failed"), False),
    ],
)
def test_which_addorder_failures_may_still_commit_later(error, lost):
    assert answer_lost(error) is lost
