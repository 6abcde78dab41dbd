"""The ``provision_order`` task bodies: build clients from the Airflow connections, run a step,
log the API calls it made, hand a small JSON-able result to the next task.

Classified errors decide retry vs fail: the DAG's retry policy fails a ``PermanentError`` at
once and lets a ``TransientError`` retry with backoff; ``on_final_failure`` writes the code
and a safe message to the Order when a task has failed for good.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any

from orderflow import settings
from orderflow.errors import ErrorCode, OrderflowError, PermanentError
from orderflow.notify import ProvisioningNotice, send_notice
from orderflow.provisioning import steps
from orderflow.provisioning.order import OrderSnapshot, build_plan
from orderflow.provisioning.order_lock import DEFAULT_TTL_SECONDS, AddOrderStamps, order_lock
from orderflow.salesforce.soql import InvalidSalesforceId, validate_order_id
from orderflow.statuses import ActivationStatus

log = logging.getLogger(__name__)


def salesforce_client(conn_id: str = settings.SALESFORCE_CONN_ID) -> Any:
    from orderflow.salesforce.hook import SalesforceJwtHook

    return SalesforceJwtHook(salesforce_conn_id=conn_id).get_conn()


def whmcs_hook(conn_id: str = settings.WHMCS_CONN_ID) -> Any:
    from orderflow.whmcs.hook import WhmcsHook

    return WhmcsHook(whmcs_conn_id=conn_id)


def whmcs_client(conn_id: str = settings.WHMCS_CONN_ID) -> Any:
    return whmcs_hook(conn_id).get_conn()


@contextmanager
def _call_log(step: str, sf: Any = None, whmcs: Any = None):
    """Log which external calls a step made (the API budget is checked from these lines)."""
    sf_before = dict(getattr(sf, "api_calls", {}) or {}) if sf is not None else {}
    sf_logins = getattr(sf, "logins", 0) if sf is not None else 0
    wh_before = dict(getattr(whmcs, "calls", {}) or {}) if whmcs is not None else {}
    try:
        yield
    finally:
        parts = []
        if sf is not None:
            diff = {k: v - sf_before.get(k, 0) for k, v in dict(sf.api_calls).items() if v - sf_before.get(k, 0)}
            parts.append(f"salesforce REST calls {sum(diff.values())} {diff or ''} logins {sf.logins - sf_logins}")
        if whmcs is not None:
            diff = {k: v - wh_before.get(k, 0) for k, v in dict(whmcs.calls).items() if v - wh_before.get(k, 0)}
            parts.append(f"WHMCS calls {sum(diff.values())} {diff or ''}")
        log.info("%s: %s", step, "; ".join(parts))


def load_and_validate(order_id: str) -> dict:
    """Step 1. Returns the order snapshot; raises AirflowSkipException when not Activating."""
    from airflow.sdk.exceptions import AirflowSkipException

    try:  # the form checks the pattern only; a wrong case-safe suffix fails here, for good, before any call
        validate_order_id(order_id, "order_id")
    except InvalidSalesforceId as exc:
        raise PermanentError(ErrorCode.ORDER_NOT_FOUND, str(exc)) from None
    sf = salesforce_client()
    with _call_log("load_order", sf=sf):
        order = steps.load_order(sf, order_id)
    reason = steps.skip_reason(order)
    if reason:
        log.info("Skipping: %s", reason)
        raise AirflowSkipException(reason)
    build_plan(order)  # validate mappings now: CLIENT_/PRODUCT_MAPPING_MISSING fail here
    log.info("Order %s (%s): %d items, account %s", order.order_id, order.order_number, len(order.lines), order.wh_account)
    return order.to_dict()


def check_payment_method(order_data: dict) -> str:
    """Step 2."""
    plan = build_plan(OrderSnapshot.from_dict(order_data))
    whmcs = whmcs_client()
    with _call_log("check_payment_method", whmcs=whmcs):
        return steps.check_payment_method(whmcs, plan.client_id)


def _marker_wait_budget(whmcs: Any) -> float:
    """How long one find_or_create attempt may wait for a marked order (the settle window, see steps).

    The wait happens under the order's lock, so it must end well inside the lock's TTL (a Redis lock
    expires): room is left for AddOrder's own timeout and for the lookups around it. With the defaults
    (TTL 300 s, timeout 30 s) that is 210 s, more than the 180 s window, so one attempt can wait it out;
    a longer window makes the attempt end with a transient error and a later retry carries on.
    """
    return max(0.0, DEFAULT_TTL_SECONDS - 3 * float(getattr(whmcs, "timeout", 30.0)))


def find_or_create_order(order_data: dict, paymentmethod: str) -> dict:
    """Step 3, under the order's lock; the AddOrder stamps live in the lock's backend (exactly once)."""
    order = OrderSnapshot.from_dict(order_data)
    plan = build_plan(order)
    hook = whmcs_hook()  # one connection lookup for the client and the AddOrder flags
    whmcs, options = hook.get_conn(), dict(hook.order_options)
    with order_lock(order.order_id), _call_log("find_or_create_whmcs_order", whmcs=whmcs):
        ref = steps.find_or_create_whmcs_order(
            whmcs, order, plan, paymentmethod, stamps=AddOrderStamps(), wait_seconds=_marker_wait_budget(whmcs),
            **options,
        )
    return ref.to_dict()


def accept_order(ref_data: dict) -> dict:
    """Step 4."""
    whmcs = whmcs_client()
    with _call_log("accept_whmcs_order", whmcs=whmcs):
        ref = steps.accept_whmcs_order(whmcs, steps.WhmcsOrderRef.from_dict(ref_data))
    return ref.to_dict()


def write_back(order_data: dict, ref_data: dict) -> dict:
    """Step 5."""
    order = OrderSnapshot.from_dict(order_data)
    ref = steps.WhmcsOrderRef.from_dict(ref_data)
    sf = salesforce_client()
    with _call_log("write_back", sf=sf):
        steps.write_back(sf, order, ref)
    log.info("Order %s Activated with WHMCS order %s", order.order_id, ref.order_id)
    return {"order_id": order.order_id, "whmcs_order_id": ref.order_id, "outcome": ActivationStatus.ACTIVATED}


def on_final_failure(context: dict) -> None:
    """Task failure callback (final failure only): mark the Order Failed with code + safe message."""
    error = context.get("exception")
    params = context.get("params") or {}
    order_id = params.get("order_id")
    if not order_id or error is None:
        return
    try:
        order_id = validate_order_id(order_id, "order_id")
    except InvalidSalesforceId:
        log.error("Not marking any Order Failed: the run's order_id %r is not a valid Order id", str(order_id)[:40])
        return
    if isinstance(error, OrderflowError):
        log.error("Provisioning %s failed for good: %s", order_id, error)
    try:
        sf = salesforce_client()
        fields = steps.write_failure(sf, order_id, error)
    except Exception:  # noqa: BLE001 - the task already failed; say why the write-back failed too
        log.exception("Could not write the failure of %s back to Salesforce", order_id)
        return
    try:
        send_notice(
            ProvisioningNotice(
                order_id=order_id,
                outcome=ActivationStatus.FAILED,
                error_code=fields["Activation_Error_Code__c"],
                error_message=fields["Activation_Error_Message__c"],
            )
        )
    except Exception:  # noqa: BLE001 - a notification problem must not hide the real failure
        log.exception("Could not send the failure notification for %s", order_id)
