"""The provisioning steps (docs/architecture.md, "Provisioning"), one function per DAG task.

Each step takes already-built clients (``SalesforceClient``-like, ``WhmcsClient``-like) and
plain data, raises only classified errors (``orderflow.errors``), and returns small JSON-able
values, so the DAG can retry a step in isolation and pass results through XCom.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from orderflow import settings
from orderflow.errors import (
    ErrorCode,
    OrderflowError,
    PermanentError,
    TransientError,
    WhmcsOrderNotPending,
    safe_message,
)
from orderflow.provisioning.order import OrderSnapshot, ProvisioningPlan, query_for
from orderflow.provisioning.order_lock import AddOrderStamps
from orderflow.salesforce.records import SaveResult
from orderflow.statuses import LIVE_ORDER_STATUSES, ActivationStatus, WhmcsOrderStatus

log = logging.getLogger(__name__)



class SalesforceApi(Protocol):
    def query(self, soql: str) -> list[dict]: ...
    def update_collection(self, records: list[dict], all_or_none: bool = ...) -> list[SaveResult]: ...
    def update(self, sobject: str, record_id: str, fields: dict) -> None: ...


class StampStore(Protocol):
    """Where AddOrder attempts without a clear answer are recorded (``order_lock.AddOrderStamps``)."""

    def get(self, order_id: str) -> float | None: ...
    def set(self, order_id: str, at: float | None = ...) -> float: ...
    def clear(self, order_id: str) -> None: ...


@dataclass(frozen=True)
class WhmcsOrderRef:
    """The WHMCS order that belongs to one Salesforce order."""

    order_id: str
    service_ids: tuple[str, ...]
    created: bool  # True only when this step called AddOrder
    status: str = WhmcsOrderStatus.PENDING

    def to_dict(self) -> dict:
        return {**asdict(self), "service_ids": list(self.service_ids)}

    @classmethod
    def from_dict(cls, data: dict) -> WhmcsOrderRef:
        return cls(**{**data, "service_ids": tuple(data.get("service_ids") or ())})


# --------------------------------------------------------------------------- step 1


def load_order(sf: SalesforceApi, order_id: str) -> OrderSnapshot:
    """One SOQL query: the order, its account and its items with their products."""
    records = sf.query(query_for(order_id))
    if not records:
        raise PermanentError(ErrorCode.ORDER_NOT_FOUND, f"No Order with Id {order_id}")
    return OrderSnapshot.from_record(records[0])


def skip_reason(order: OrderSnapshot) -> str | None:
    """Why this run must not provision (the guard of step 1), or None to go on."""
    if order.activation_status != ActivationStatus.ACTIVATING:
        return (
            f"Order {order.order_id} has Activation_Status__c={order.activation_status!r}, not 'Activating': "
            "nothing to provision (already handled, or not approved)"
        )
    return None


# --------------------------------------------------------------------------- step 2


def check_payment_method(whmcs: Any, client_id: int) -> str:
    """The WHMCS gateway to order with; PAYMENT_METHOD_MISSING when the client has no pay method."""
    methods = whmcs.get_pay_methods(client_id)
    if not methods:
        raise PermanentError(
            ErrorCode.PAYMENT_METHOD_MISSING, f"WHMCS client {client_id} has no payment method on file"
        )
    from orderflow.whmcs.client import WhmcsClient

    return WhmcsClient.payment_method_for(methods)


# --------------------------------------------------------------------------- step 3


def _service_ids(order: Any) -> tuple[str, ...]:
    return tuple(str(s) for s in getattr(order, "service_ids", ()) if str(s))


def find_existing_whmcs_order(whmcs: Any, order: OrderSnapshot, plan: ProvisioningPlan) -> WhmcsOrderRef | None:
    """Find-before-create: the order id Salesforce already holds, else a WHMCS order carrying the marker.

    This is what closes the crash window (AddOrder committed but its answer lost, or the
    worker died before the write-back): the retry finds the order instead of adding another.
    """
    if order.whmcs_order_id:
        known = whmcs.get_order(order.whmcs_order_id)
        if known is not None and getattr(known, "status", "") in LIVE_ORDER_STATUSES:
            log.info("Order %s already links WHMCS order %s", order.order_id, known.id)
            return WhmcsOrderRef(str(known.id), _service_ids(known), created=False, status=known.status)
        log.warning(
            "Order %s names WHMCS order %s, which WHMCS does not have (or it is cancelled); searching by note",
            order.order_id,
            order.whmcs_order_id,
        )
    # the client applies the one marker rule (orderflow.order_marker); only live orders count
    matches = [
        o
        for o in whmcs.find_orders_by_note(plan.client_id, plan.marker)
        if getattr(o, "status", "") in LIVE_ORDER_STATUSES
    ]
    if len(matches) > 1:
        ids = ", ".join(sorted(str(o.id) for o in matches))
        raise PermanentError(
            ErrorCode.DUPLICATE_WHMCS_ORDERS, f"WHMCS orders {ids} all carry {plan.marker}; ops must cancel the extras"
        )
    if matches:
        found = matches[0]
        log.info("Found WHMCS order %s for %s by its note", found.id, order.order_id)
        return WhmcsOrderRef(str(found.id), _service_ids(found), created=False, status=found.status)
    return None


POLL_SECONDS = 5.0  # at most this long between two lookups while waiting for a marked order
# Answers (as orderflow.errors words them) that don't show PHP is done with the request: a gateway in front
# of WHMCS that gave up waiting for it (nginx 504, Cloudflare 524), or a result other than success/error.
_UNSETTLED_ANSWER_RE = re.compile(r"\bHTTP (?:504|524)\b|unexpected result")


def answer_lost(error: OrderflowError) -> bool:
    """Whether WHMCS may still commit an AddOrder that failed with ``error``, after the lookups said "none".

    No answer at all (a timeout, a dropped or reset connection: ``from_transport``), a gateway that
    stopped waiting (HTTP 504/524) or a result WHMCS never gives ("pending": a proxy, a queue) leave
    PHP possibly still running the request. Every other answer came after PHP was done with it or
    before it started (a refusal, a 5xx or maintenance page, a success cut short): whatever it did is
    already visible to find-before-create, so the next try may add at once.
    """
    return error.transient and (error.from_transport or bool(_UNSETTLED_ANSWER_RE.search(error.message)))


def find_or_create_whmcs_order(
    whmcs: Any,
    order: OrderSnapshot,
    plan: ProvisioningPlan,
    paymentmethod: str,
    *,
    noinvoice: bool = True,
    noemail: bool = True,
    stamps: StampStore | None = None,
    settle_seconds: float | None = None,
    wait_seconds: float | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> WhmcsOrderRef:
    """Step 3: the order's one WHMCS order, found or added with AddOrder (docs/architecture.md, "Idempotency").

    Find-before-create alone is not enough: WHMCS may still be working on an AddOrder whose answer the
    client gave up on (its 30 s timeout) or whose task was killed while waiting, so a retry that finds
    nothing yet cannot tell "never committed" from "not committed *yet*". Hence the settle window
    (``settle_seconds``, default ``settings.addorder_settle_seconds()``):

    * Right before AddOrder is sent, a stamp "sent at T" is stored for the order (``stamps``, the per-order
      lock's backend, so it outlives the process and is seen by every retry and run; the caller holds the lock).
    * A clear outcome clears it: an order found or created, or WHMCS refusing the request (a permanent
      error, or an answer from a PHP that has finished, see :func:`answer_lost`), so a rejected order that
      ops fix is re-run at once rather than a whole window later. No answer keeps it (so does anything
      unforeseen: a bug, the task killed or timed out): the step first polls the marker lookup for as long
      as the client waited for AddOrder (its timeout), since the common case, committed and the answer
      lost, then shows within seconds and ends in this try; after that it raises a transient error.
    * A later attempt that finds no marked order while a stamp younger than the window exists polls the
      lookup (every ``POLL_SECONDS``, or a tenth of a short window) until the order shows up (it is used,
      ``created=False``) or the window has passed since the stamp (then AddOrder is safe again). It never
      sends AddOrder inside the window: when its own budget (``wait_seconds``, default the window; the task
      keeps it inside the lock's TTL) ends first, it raises a transient error and the task retries later.
    """
    stamps = stamps if stamps is not None else AddOrderStamps()
    settle = settings.addorder_settle_seconds() if settle_seconds is None else settle_seconds
    waiter = _MarkerWait(whmcs, order, plan, poll=min(POLL_SECONDS, max(0.2, settle / 10)), clock=clock, sleep=sleep)
    deadline = clock() + (settle if wait_seconds is None else wait_seconds)
    existing = find_existing_whmcs_order(whmcs, order, plan)
    sent = stamps.get(order.order_id) if existing is None else None
    if sent is not None and clock() < sent + settle:
        log.warning(
            "AddOrder for %s was sent %.0f s ago without a clear answer and WHMCS shows no order for it yet: "
            "waiting for it (settle window %.0f s) instead of adding another",
            order.order_id, clock() - sent, settle,
        )
        existing = waiter.until(min(sent + settle, deadline), look_first=False)
        if existing is None and clock() < sent + settle:
            raise TransientError(
                ErrorCode.WHMCS_UNAVAILABLE,
                f"AddOrder for {order.order_id} was sent {clock() - sent:.0f} s ago without a clear answer and no "
                f"WHMCS order carries {plan.marker} yet: no second AddOrder inside the {settle:.0f} s settle window "
                f"({sent + settle - clock():.0f} s left); retry later",
            )
    if existing is not None:
        stamps.clear(order.order_id)
        return existing
    if sent is not None:
        log.warning("AddOrder for %s sent %.0f s ago never showed up in WHMCS and the %.0f s settle window has "
                    "passed: sending AddOrder again", order.order_id, clock() - sent, settle)
    sent = stamps.set(order.order_id, clock())
    try:
        result = whmcs.add_order(
            clientid=plan.client_id,
            paymentmethod=paymentmethod,
            items=[(item.pid, item.billing_cycle, item.quantity) for item in plan.items],
            notes=plan.marker,
            noinvoice=noinvoice,
            noemail=noemail,
        )
    except OrderflowError as error:
        if not answer_lost(error):
            stamps.clear(order.order_id)  # WHMCS answered: nothing of this request can commit later
            raise
        confirm = float(getattr(whmcs, "timeout", POLL_SECONDS))  # as long again as the client waited
        found = waiter.until(min(clock() + confirm, sent + settle, deadline), look_first=True)
        if found is None:
            raise TransientError(
                error.code,
                f"AddOrder for {order.order_id} got no clear answer and no WHMCS order carries {plan.marker} yet; "
                f"no second AddOrder within {settle:.0f} s of this one: {error.message}",
            ) from error
        stamps.clear(order.order_id)
        log.info("AddOrder for %s lost its answer, but WHMCS committed it: order %s", order.order_id, found.order_id)
        return found
    stamps.clear(order.order_id)
    service_ids = tuple(str(s) for s in result.service_ids)
    if len(service_ids) != len(plan.items):
        raise PermanentError(
            ErrorCode.WHMCS_ORDER_REJECTED,
            f"WHMCS order {result.order_id} has {len(service_ids)} services for {len(plan.items)} items",
        )
    log.info("Created WHMCS order %s for %s (services %s)", result.order_id, order.order_id, ",".join(service_ids))
    return WhmcsOrderRef(str(result.order_id), service_ids, created=True)


@dataclass(frozen=True)
class _MarkerWait:
    """Repeat find-before-create until a marked order shows up or a point in time has passed."""

    whmcs: Any
    order: OrderSnapshot
    plan: ProvisioningPlan
    poll: float
    clock: Callable[[], float]
    sleep: Callable[[float], None]

    def look(self) -> WhmcsOrderRef | None:
        try:
            return find_existing_whmcs_order(self.whmcs, self.order, self.plan)
        except TransientError as exc:  # WHMCS busy right now: the next look may get through
            log.warning("Looking for the WHMCS order of %s: %s", self.order.order_id, exc.message)
            return None

    def until(self, until: float, look_first: bool) -> WhmcsOrderRef | None:
        found = self.look() if look_first else None
        while found is None and (left := until - self.clock()) > 0:
            self.sleep(min(self.poll, left))
            found = self.look()
        return found


# --------------------------------------------------------------------------- step 4


def accept_whmcs_order(whmcs: Any, ref: WhmcsOrderRef) -> WhmcsOrderRef:
    """AcceptOrder with autosetup; "not Pending" on a retry means already accepted: verify it."""
    if ref.status == WhmcsOrderStatus.ACTIVE:
        log.info("WHMCS order %s is already Active", ref.order_id)
        return ref
    try:
        whmcs.accept_order(ref.order_id, autosetup=True)
        return WhmcsOrderRef(ref.order_id, ref.service_ids, ref.created, status=WhmcsOrderStatus.ACTIVE)
    except WhmcsOrderNotPending as not_pending:
        current = whmcs.get_order(ref.order_id)
        status = getattr(current, "status", None)
        if status == WhmcsOrderStatus.ACTIVE:
            log.info("WHMCS order %s was already accepted (an earlier try); continuing", ref.order_id)
            return WhmcsOrderRef(ref.order_id, _service_ids(current) or ref.service_ids, ref.created,
                                 status=WhmcsOrderStatus.ACTIVE)
        raise PermanentError(
            ErrorCode.WHMCS_PROVISIONING_FAILED,
            f"WHMCS order {ref.order_id} cannot be accepted: status is {status or 'unknown'}",
        ) from not_pending


# --------------------------------------------------------------------------- step 5


def write_back(sf: SalesforceApi, order: OrderSnapshot, ref: WhmcsOrderRef) -> None:
    """One sObject Collections request: the Order activated + each item's WHMCS service id."""
    if len(ref.service_ids) != len(order.lines):
        raise PermanentError(
            ErrorCode.WHMCS_PROVISIONING_FAILED,
            f"WHMCS order {ref.order_id} has {len(ref.service_ids)} services for {len(order.lines)} order items",
        )
    records: list[dict] = [
        {
            "attributes": {"type": "Order"},
            "id": order.order_id,
            "Activation_Status__c": ActivationStatus.ACTIVATED,
            "WHMCS_Order_ID__c": ref.order_id,
            "Activation_Error_Code__c": None,
            "Activation_Error_Message__c": None,
        }
    ]
    records += [
        {"attributes": {"type": "OrderItem"}, "id": line.item_id, "WHMCS_Service_ID__c": service_id}
        for line, service_id in zip(order.lines, ref.service_ids, strict=True)
    ]
    results = sf.update_collection(records, all_or_none=True)
    _raise_first_record_error(results)


def _raise_first_record_error(results: list[SaveResult]) -> None:
    """Raise the classified error of the record that failed (all-or-none: the others only rolled back)."""
    failed = [result for result in results if not result.success]
    for result in failed:
        if result.error_code == "ALL_OR_NONE_OPERATION_ROLLED_BACK":
            continue  # the real cause is on another record
        raise result.error() or PermanentError(
            ErrorCode.SALESFORCE_WRITE_FAILED, "Salesforce refused the write-back without saying why"
        )
    if failed:
        raise TransientError(ErrorCode.SALESFORCE_UNAVAILABLE, "Salesforce rolled back the write-back")


# --------------------------------------------------------------------------- failure


def failure_fields(error: BaseException) -> dict:
    """The Order fields for a run that failed for good: code + one safe line."""
    if isinstance(error, OrderflowError):
        code, message = error.code.value, error.message
    else:
        code, message = ErrorCode.PROVISIONING_ERROR.value, f"{type(error).__name__}: {error}"
    return {
        "Activation_Status__c": ActivationStatus.FAILED,
        "Activation_Error_Code__c": code[:80],
        "Activation_Error_Message__c": safe_message(message),
    }


def write_failure(sf: SalesforceApi, order_id: str, error: BaseException) -> dict:
    fields = failure_fields(error)
    sf.update("Order", order_id, fields)
    log.warning("Order %s marked Failed: %s", order_id, fields["Activation_Error_Code__c"])
    return fields
