"""Extract both systems into CSV files of the run's folder, page by page, never one call per order.

Salesforce: one Bulk API 2.0 query job per object, Order and OrderItem (Bulk 2.0 has no child
subqueries), through the client's one Bulk path (``SalesforceClient.bulk_query_to_file``, on
simple-salesforce's public Bulk 2.0 handler): each result page (``maxRecords`` rows, next page by
``Sforce-Locator``) is appended to the file as it arrives, and failures are classified there.
WHMCS: paged ``GetOrders`` and ``GetClientsProducts``, several pages in flight, each decoded straight
into the few fields the files hold (``WhmcsClient.page``) and written a page at a time.

Why CSV: Bulk 2.0 answers in CSV, so its pages go to disk unchanged; pandas reads CSV without an
extra engine; ops can open the files in a spreadsheet when a report needs explaining. The folder
is any path-like object (``pathlib.Path`` or Airflow's ``ObjectStoragePath``).
"""

from __future__ import annotations

import csv
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from orderflow.errors import PermanentError
from orderflow.order_marker import marked_order_ids
from orderflow.salesforce.soql import literal, validate_order_id
from orderflow.whmcs.models import GET_CLIENTS_PRODUCTS, GET_ORDERS, OrderRow, PagedRead, RowT

log = logging.getLogger(__name__)

SF_ORDER_FIELDS = ("Id", "Status", "Activation_Status__c", "Activation_Error_Code__c", "WHMCS_Order_ID__c",
                   "AccountId", "Account.WH_Account__c", "CreatedDate", "LastModifiedDate")
SF_ITEM_FIELDS = ("Id", "OrderId", "WHMCS_Service_ID__c")
WH_ORDER_COLUMNS = ("id", "userid", "status", "date", "sf_order_ids")
WH_SERVICE_COLUMNS = ("id", "orderid", "clientid", "status")
PAYMETHOD_COLUMNS = ("clientid", "paymethods")

SF_ORDERS_FILE = "sf_orders.csv"
SF_ITEMS_FILE = "sf_order_items.csv"
WH_ORDERS_FILE = "whmcs_orders.csv"
WH_SERVICES_FILE = "whmcs_services.csv"
PAYMETHODS_FILE = "whmcs_paymethods.csv"

BULK_PAGE_ROWS = 100_000
WHMCS_PAGE_SIZE = 1_000
WHMCS_WORKERS = 3
# simple-salesforce polls a job at wait, then every wait + e^n ms until that passes 2 s, then keeps that interval:
# with 0.5 at 0.5, 1, 1.5, 2, 2.5, 3.1, 3.7, 4.6, 6.2 s, then every 3.5 s. 0.2 left a gap from 3.5 to 6.7 s, where
# 100k-order jobs end; 1.0 (every 2.1 s from 8.6 s) answered long jobs sooner but spent the call budget on polls
# (58 bulk calls for 300k orders on a loaded machine, against 41-48 with 0.5).
BULK_POLL_SECONDS = 0.5
# One GetPayMethods per client with an order Failed for PAYMENT_METHOD_MISSING (WHMCS has no bulk form), three in
# flight: ~3,000 clients take ~15 s. The cap only guards against a runaway list; 2,000 was met by a 300k-order
# history (1 % such failures), where the unchecked clients' recoveries went unseen (bench/reconcile_bench.py).
MAX_PAYMETHOD_LOOKUPS = 20_000


@dataclass(frozen=True)
class Scope:
    """What to reconcile: one order, the orders created/modified in the last N days, or all."""

    order_id: str | None = None
    lookback_days: int | None = None

    def __post_init__(self) -> None:
        if self.order_id is not None:
            object.__setattr__(self, "order_id", validate_order_id(self.order_id, "order_id"))
        if self.lookback_days is not None and (not isinstance(self.lookback_days, int) or self.lookback_days < 1):
            raise ValueError(f"lookback_days must be a positive whole number of days or null, got {self.lookback_days!r}")

    @property
    def is_full(self) -> bool:
        return self.order_id is None and self.lookback_days is None

    def order_where(self) -> str:
        if self.order_id:
            return f" WHERE Id = {literal(self.order_id)}"
        if self.lookback_days:
            n = int(self.lookback_days)
            return f" WHERE CreatedDate = LAST_N_DAYS:{n} OR LastModifiedDate = LAST_N_DAYS:{n}"
        return ""

    def item_where(self) -> str:
        if self.order_id:
            return f" WHERE OrderId = {literal(self.order_id)}"
        if self.lookback_days:
            n = int(self.lookback_days)
            return f" WHERE Order.CreatedDate = LAST_N_DAYS:{n} OR Order.LastModifiedDate = LAST_N_DAYS:{n}"
        return ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ExtractResult:
    """Where one system's files went, how many rows, how many API calls, how long."""

    system: str
    files: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    api_calls: int = 0
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def soql_orders(scope: Scope) -> str:
    return f"SELECT {', '.join(SF_ORDER_FIELDS)} FROM Order{scope.order_where()}"


def soql_items(scope: Scope) -> str:
    return f"SELECT {', '.join(SF_ITEM_FIELDS)} FROM OrderItem{scope.item_where()}"


# ------------------------------------------------------------------------------------ Salesforce


def extract_salesforce(sf_client: Any, folder: Any, scope: Scope) -> ExtractResult:
    """Orders and order items into ``sf_orders.csv`` / ``sf_order_items.csv`` (two Bulk 2.0 jobs).

    ``sf_client`` is :class:`orderflow.salesforce.client.SalesforceClient`; its session (TLS bundle,
    per-endpoint call counter) carries the jobs' requests.
    """
    t0 = time.monotonic()
    calls_before = sum(sf_client.api_calls.values())
    folder.mkdir(parents=True, exist_ok=True)
    result = ExtractResult("salesforce")
    for name, soql in ((SF_ORDERS_FILE, soql_orders(scope)), (SF_ITEMS_FILE, soql_items(scope))):
        target = folder / name
        result.rows[name] = sf_client.bulk_query_to_file(soql, target, max_records=BULK_PAGE_ROWS,
                                                          poll_interval=BULK_POLL_SECONDS)
        result.files[name] = str(target)
    result.api_calls = sum(sf_client.api_calls.values()) - calls_before
    result.duration_s = round(time.monotonic() - t0, 3)
    log.info("Salesforce extract: %d orders, %d items in %.1fs (%d API calls)", result.rows[SF_ORDERS_FILE],
             result.rows[SF_ITEMS_FILE], result.duration_s, result.api_calls)
    return result


def existing_order_ids(sf_client: Any, order_ids: Iterable[str], chunk: int = 200) -> set[str]:
    """Which of these Order ids Salesforce has (orphan check outside the extracted scope)."""
    found: set[str] = set()
    ids = sorted({validate_order_id(i, "sfOrderId") for i in order_ids})
    for start in range(0, len(ids), chunk):
        part = ", ".join(literal(i) for i in ids[start:start + chunk])
        found.update(r["Id"] for r in sf_client.query(f"SELECT Id FROM Order WHERE Id IN ({part})"))
    return found


# ------------------------------------------------------------------------------------ WHMCS


def whmcs_pages(wh_client: Any, read: PagedRead[RowT], page_size: int = WHMCS_PAGE_SIZE,
                workers: int = WHMCS_WORKERS, **filters: Any) -> Iterator[list[RowT]]:
    """Every page of a paged read action, in order, ``workers`` pages in flight at a time.

    The first page tells ``totalresults``; the rest are requested concurrently (reads are safe to
    send in parallel) so WHMCS builds the next pages while this process decodes the current one.
    """
    if page_size < 1:
        raise ValueError("page_size must be >= 1")
    query = {k: v for k, v in filters.items() if v is not None}

    def fetch(start: int) -> list[RowT]:
        return wh_client.page(read, start, page_size, **query).rows

    first = wh_client.page(read, 0, page_size, **query)
    yield first.rows
    if not first.rows or len(first.rows) >= first.total:
        return
    starts = range(len(first.rows), first.total, page_size)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=f"whmcs-{read.action}") as pool:
        window: deque = deque()
        for start in starts:
            window.append(pool.submit(fetch, start))
            if len(window) >= workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def extract_whmcs(wh_client: Any, folder: Any, clientid: int | None = None, order_id: str | None = None,
                  page_size: int = WHMCS_PAGE_SIZE, what: tuple[str, ...] = ("orders", "services")) -> ExtractResult:
    """WHMCS orders (with the Salesforce ids their notes carry) and services, paged, into two CSVs.

    ``clientid`` narrows both to one client (``order_id`` scope); ``order_id`` adds that one
    WHMCS order even when it belongs to another client. Rows seen twice (paging while orders are
    added shifts offsets) are written once. ``what`` picks the files (two tasks can split the work).
    """
    t0 = time.monotonic()
    calls_before = wh_client.total_calls
    folder.mkdir(parents=True, exist_ok=True)
    result = ExtractResult("whmcs")
    if "orders" in what:
        seen: set[str] = set()
        target = folder / WH_ORDERS_FILE
        with target.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(WH_ORDER_COLUMNS)
            pages: Iterable[list[OrderRow]] = whmcs_pages(wh_client, GET_ORDERS, page_size, userid=clientid)
            if order_id:
                pages = _chain([wh_client.page(GET_ORDERS, 0, 1, id=order_id).rows], pages)
            for page in pages:
                lines = []
                for row in page:
                    oid = _text(row.id)
                    if oid in seen:
                        continue
                    seen.add(oid)
                    date = _text(row.date)
                    lines.append((oid, _text(row.userid), _text(row.status), "" if date.startswith("0000") else date,
                                  " ".join(marked_order_ids(row.notes or ""))))
                writer.writerows(lines)
        result.rows[WH_ORDERS_FILE], result.files[WH_ORDERS_FILE] = len(seen), str(target)
    if "services" in what:
        seen_services: set[str] = set()
        target = folder / WH_SERVICES_FILE
        with target.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(WH_SERVICE_COLUMNS)
            for page in whmcs_pages(wh_client, GET_CLIENTS_PRODUCTS, page_size, clientid=clientid):
                lines = []
                for row in page:
                    sid = _text(row.id)
                    if sid in seen_services:
                        continue
                    seen_services.add(sid)
                    lines.append((sid, _text(row.orderid), _text(row.clientid), _text(row.status)))
                writer.writerows(lines)
        result.rows[WH_SERVICES_FILE], result.files[WH_SERVICES_FILE] = len(seen_services), str(target)
    result.api_calls = wh_client.total_calls - calls_before
    result.duration_s = round(time.monotonic() - t0, 3)
    log.info("WHMCS extract %s: %s in %.1fs (%d API calls)", "+".join(what), result.rows, result.duration_s,
             result.api_calls)
    return result


def _chain(*iterables: Iterable[Any]) -> Iterator[Any]:
    for it in iterables:
        yield from it


def extract_pay_methods(wh_client: Any, folder: Any, client_ids: Iterable[int],
                        limit: int = MAX_PAYMETHOD_LOOKUPS) -> ExtractResult:
    """``GetPayMethods`` for the clients of orders that failed with PAYMENT_METHOD_MISSING (few, bounded)."""
    t0 = time.monotonic()
    calls_before = wh_client.total_calls
    ids = sorted(set(client_ids))
    if len(ids) > limit:
        log.warning("%d clients to check for a pay method; checking the first %d: the orders of the other %d "
                    "stay Failed this run (their recovery is not seen)", len(ids), limit, len(ids) - limit)
        ids = ids[:limit]
    result = ExtractResult("whmcs")
    target = folder / PAYMETHODS_FILE
    folder.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(PAYMETHOD_COLUMNS)
        def count(cid: int) -> int:
            try:
                return len(wh_client.get_pay_methods(cid))
            except PermanentError as exc:  # e.g. the client was deleted: no pay method
                log.warning("GetPayMethods for client %s: %s", cid, exc.message)
                return 0

        with ThreadPoolExecutor(max_workers=WHMCS_WORKERS, thread_name_prefix="whmcs-paymethods") as pool:
            for cid, n in zip(ids, pool.map(count, ids), strict=True):
                writer.writerow((cid, n))
    result.rows[PAYMETHODS_FILE], result.files[PAYMETHODS_FILE] = len(ids), str(target)
    result.api_calls = wh_client.total_calls - calls_before
    result.duration_s = round(time.monotonic() - t0, 3)
    return result
