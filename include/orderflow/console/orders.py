"""One order as support agents ask about it: Salesforce, WHMCS, its runs and its last reconciliation.

Each system is asked once per page (one SOQL query with the items; the WHMCS order and the client's
services); a system that is down leaves its part empty with a safe one-line reason instead of
failing the page. Nothing here writes anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from orderflow import order_marker
from orderflow.console.query import OrderQuery, QueryKind
from orderflow.console.reports import DriftEntry, ReportStore
from orderflow.console.runbook import next_step
from orderflow.console.runs import RunInfo
from orderflow.errors import safe_message
from orderflow.provisioning.order import parse_wh_account
from orderflow.salesforce.soql import ORDER_ID_RE, id_list, quote
from orderflow.statuses import ActivationStatus

log = logging.getLogger(__name__)

FAILED_LOOKBACK_DAYS = 7
FAILED_LIMIT = 500
MAX_MATCHES = 20

_ORDER_FIELDS = (
    "Id, OrderNumber, Status, Activation_Status__c, Activation_Error_Code__c, Activation_Error_Message__c, "
    "WHMCS_Order_ID__c, Order_Type__c, EffectiveDate, CreatedDate, LastModifiedDate, AccountId, Account.Name, "
    "Account.WH_Account__c, "
    "(SELECT Id, Quantity, WHMCS_Service_ID__c, Product2.Name, Product2.StockKeepingUnit FROM OrderItems)"
)


class SalesforceReader(Protocol):
    def query(self, soql: str) -> list[dict]: ...


class WhmcsReader(Protocol):
    def get_order(self, order_id: int | str) -> Any: ...

    def find_orders_by_note(self, clientid: int | str, marker: str) -> list[Any]: ...

    def iter_client_products(self, clientid: int | str | None = None) -> Iterable[Any]: ...


class OrderNotFound(LookupError):
    """No Salesforce Order matches the query."""


# --------------------------------------------------------------------------- view data


@dataclass(frozen=True)
class OrderItemView:
    id: str
    product: str
    sku: str
    quantity: float | None
    whmcs_service_id: str | None
    whmcs_service_status: str | None


@dataclass(frozen=True)
class SalesforceOrderView:
    id: str
    order_number: str
    status: str
    activation_status: str | None
    error_code: str | None
    error_message: str | None
    whmcs_order_id: str | None
    order_type: str | None
    account_name: str
    wh_account: str | None
    created: str | None
    last_modified: str | None
    items: tuple[OrderItemView, ...] = ()


@dataclass(frozen=True)
class WhmcsServiceView:
    id: str
    name: str
    status: str
    billingcycle: str


@dataclass(frozen=True)
class WhmcsOrderView:
    id: str
    ordernum: str
    client_id: str
    status: str
    payment_status: str
    date: str | None
    services: tuple[WhmcsServiceView, ...] = ()


@dataclass(frozen=True)
class ReconciliationView:
    """The order's category in a report; ``drift`` is its drift.csv row (None: in sync)."""

    category: str
    drift: DriftEntry | None
    run_id: str
    report_url: str
    run_url: str


@dataclass(frozen=True)
class OrderView:
    """Everything the Orders page and ``/api/orders/<id>`` show for one order."""

    salesforce: SalesforceOrderView
    whmcs_orders: tuple[WhmcsOrderView, ...]
    runs: tuple[RunInfo, ...]
    reconciliation: ReconciliationView | None
    next_step: str | None
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FailedOrder:
    id: str
    order_number: str
    account_name: str
    error_message: str
    last_modified: str | None


@dataclass(frozen=True)
class FailedGroup:
    """Orders failed with one error code, and what the runbook says to do about it."""

    code: str
    next_step: str
    orders: tuple[FailedOrder, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------- lookups


def _items(record: dict) -> list[dict]:
    child = record.get("OrderItems")
    return list(child.get("records") or []) if isinstance(child, dict) else []


def _text(value: Any) -> str | None:
    """A Salesforce field for display: one safe line (no HTML, no secrets), or None."""
    return safe_message(value) if value not in (None, "") else None


def find_salesforce_orders(sf: SalesforceReader, query: OrderQuery, whmcs: WhmcsReader | None = None) -> list[dict]:
    """The Orders matching ``query``: by Id; or by OrderNumber / WHMCS order id (also via the WHMCS note)."""
    if query.kind is QueryKind.ORDER_ID:
        return sf.query(f"SELECT {_ORDER_FIELDS} FROM Order WHERE Id = {quote(query.value)}")
    numbers = ", ".join(quote(n) for n in query.order_numbers)
    records = sf.query(
        f"SELECT {_ORDER_FIELDS} FROM Order WHERE OrderNumber IN ({numbers}) "
        f"OR WHMCS_Order_ID__c = {quote(query.value)} ORDER BY CreatedDate DESC LIMIT {MAX_MATCHES}"
    )
    if whmcs is not None:
        # A WHMCS order id that Salesforce never received (the crash window) is found by its note.
        known = {r["Id"] for r in records}
        try:
            wh_order = whmcs.get_order(query.value)
        except Exception as exc:  # noqa: BLE001 - WHMCS down only loses this extra path
            log.info("console: WHMCS lookup of order %s failed: %s", query.value, safe_message(exc))
            wh_order = None
        marked = [i for i in order_marker.marked_order_ids(getattr(wh_order, "notes", "")) if ORDER_ID_RE.match(i)]
        extra = [i for i in marked if i not in known]
        if extra:
            records += sf.query(f"SELECT {_ORDER_FIELDS} FROM Order WHERE Id IN {id_list(extra, 'Order')}")
    return records


def salesforce_view(record: dict, service_status: dict[str, str] | None = None) -> SalesforceOrderView:
    status = service_status or {}
    account = record.get("Account") or {}
    items = tuple(
        OrderItemView(
            id=item["Id"],
            product=_text((item.get("Product2") or {}).get("Name")) or "",
            sku=_text((item.get("Product2") or {}).get("StockKeepingUnit")) or "",
            quantity=item.get("Quantity"),
            whmcs_service_id=item.get("WHMCS_Service_ID__c") or None,
            whmcs_service_status=status.get(item.get("WHMCS_Service_ID__c") or ""),
        )
        for item in _items(record)
    )
    return SalesforceOrderView(
        id=record["Id"],
        order_number=str(record.get("OrderNumber") or ""),
        status=str(record.get("Status") or ""),
        activation_status=record.get("Activation_Status__c"),
        error_code=_text(record.get("Activation_Error_Code__c")),
        error_message=_text(record.get("Activation_Error_Message__c")),
        whmcs_order_id=record.get("WHMCS_Order_ID__c") or None,
        order_type=record.get("Order_Type__c"),
        account_name=_text(account.get("Name")) or "",
        wh_account=_text(account.get("WH_Account__c")),
        created=record.get("CreatedDate"),
        last_modified=record.get("LastModifiedDate"),
        items=items,
    )


def whmcs_orders_for(whmcs: WhmcsReader, record: dict) -> list[Any]:
    """The WHMCS order(s) of this Salesforce order: by the id on the Order, else by the ``sfOrderId`` note."""
    wh_id = record.get("WHMCS_Order_ID__c")
    if wh_id:
        found = whmcs.get_order(wh_id)
        if found is not None:
            return [found]
    client_id = parse_wh_account((record.get("Account") or {}).get("WH_Account__c"))
    if client_id is None:
        return []
    return list(whmcs.find_orders_by_note(client_id, order_marker.marker(record["Id"])))


def whmcs_views(whmcs: WhmcsReader, orders: list[Any]) -> list[WhmcsOrderView]:
    """Each order with the services it created (one ``GetClientsProducts`` scan per client)."""
    services_by_client: dict[str, list[Any]] = {}
    views = []
    for order in orders:
        if order.userid not in services_by_client:
            services_by_client[order.userid] = list(whmcs.iter_client_products(clientid=order.userid))
        services = tuple(
            WhmcsServiceView(s.id, safe_message(s.name), s.status, s.billingcycle)
            for s in services_by_client[order.userid]
            if s.orderid == order.id
        )
        views.append(
            WhmcsOrderView(
                id=order.id,
                ordernum=order.ordernum,
                client_id=order.userid,
                status=order.status,
                payment_status=order.paymentstatus,
                date=order.date,
                services=services,
            )
        )
    return views


def reconciliation_view(
    store: ReportStore | None, order_id: str, report_url: Callable[[str], str], run_url: Callable[[str], str]
) -> ReconciliationView | None:
    """The order's category in the newest report that judged it: its drift row, or IN_SYNC when not listed."""
    found = store.category_of(order_id) if store is not None else None
    if found is None:
        return None
    run, entry = found
    return ReconciliationView(
        category=entry.category if entry else "IN_SYNC",
        drift=entry,
        run_id=run.run_id,
        report_url=report_url(run.folder),
        run_url=run_url(run.run_id),
    )


def build_order_view(
    record: dict,
    whmcs: WhmcsReader | None,
    runs: Callable[[str], list[RunInfo]],
    reconciliation: Callable[[str], ReconciliationView | None],
) -> OrderView:
    """Assemble the page for one Salesforce Order record; each failing part adds a problem line."""
    problems: list[str] = []
    wh_orders: list[WhmcsOrderView] = []
    if whmcs is None:
        problems.append("WHMCS: no connection configured")
    else:
        try:
            wh_orders = whmcs_views(whmcs, whmcs_orders_for(whmcs, record))
        except Exception as exc:  # noqa: BLE001 - show the rest of the page
            problems.append(f"WHMCS: {safe_message(exc)}")
    service_status = {s.id: s.status for o in wh_orders for s in o.services}
    sf = salesforce_view(record, service_status)
    if len(wh_orders) > 1:
        problems.append(f"{len(wh_orders)} WHMCS orders carry sfOrderId={sf.id}: duplicates (see runbook)")
    try:
        run_list = runs(sf.id)
    except Exception as exc:  # noqa: BLE001
        problems.append(f"Airflow runs: {safe_message(exc)}")
        run_list = []
    try:
        recon = reconciliation(sf.id)
    except Exception as exc:  # noqa: BLE001
        problems.append(f"Reconciliation report: {safe_message(exc)}")
        recon = None
    step = next_step(sf.error_code) if sf.activation_status == ActivationStatus.FAILED else None
    return OrderView(sf, tuple(wh_orders), tuple(run_list), recon, step, tuple(problems))


def failed_orders(sf: SalesforceReader, days: int = FAILED_LOOKBACK_DAYS) -> list[FailedGroup]:
    """Orders failed in the last ``days`` days, grouped by error code (largest group first)."""
    records = sf.query(
        "SELECT Id, OrderNumber, Account.Name, Activation_Error_Code__c, Activation_Error_Message__c, "
        f"LastModifiedDate FROM Order WHERE Activation_Status__c = 'Failed' AND LastModifiedDate = LAST_N_DAYS:{int(days)} "
        f"ORDER BY LastModifiedDate DESC LIMIT {FAILED_LIMIT}"
    )
    groups: dict[str, list[FailedOrder]] = {}
    for rec in records:
        code = _text(rec.get("Activation_Error_Code__c")) or "(no code)"
        groups.setdefault(code, []).append(
            FailedOrder(
                id=rec["Id"],
                order_number=str(rec.get("OrderNumber") or ""),
                account_name=_text((rec.get("Account") or {}).get("Name")) or "",
                error_message=_text(rec.get("Activation_Error_Message__c")) or "",
                last_modified=rec.get("LastModifiedDate"),
            )
        )
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return [FailedGroup(code, next_step(code), tuple(orders)) for code, orders in ordered]
