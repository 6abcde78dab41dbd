"""Seed both emulators: catalogue, WHMCS clients, linked Salesforce accounts, orders in Pending Review.

Deterministic for a given ``rng_seed`` on a fresh data folder, and fast for 100,000 orders (rows go
in with bulk inserts). Deliberate bad apples are mixed in; the summary tells each order's expected
provisioning outcome (``Activated`` or an error code of docs/architecture.md) so tests and benchmarks can check it.

``seed_provisioned`` writes the same population as if the pipeline had already provisioned it: the
history a reconciliation run compares (Salesforce ``Activated`` with WHMCS ids on the order and its
items, WHMCS orders ``Active`` carrying the ``sfOrderId=<Order Id>`` note, services ``Active``; the bad
apples ``Failed`` with their code and no WHMCS order). Timestamps are spread over the past months, all
older than reconciliation's "changed in the last 10 minutes" window.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path

from orderflow.order_marker import marker  # the pipeline's AddOrder note, written as the pipeline writes it
from orderflow_sandbox.catalogue import CATALOGUE, UNMAPPED_PRODUCT, CatalogueProduct

log = logging.getLogger(__name__)

ACTIVATED = "Activated"
IN_SYNC = "IN_SYNC"
PRODUCT_MAPPING_MISSING = "PRODUCT_MAPPING_MISSING"
CLIENT_MAPPING_MISSING = "CLIENT_MAPPING_MISSING"
PAYMENT_METHOD_MISSING = "PAYMENT_METHOD_MISSING"
EXPECTED_FILE = "seed_expected.json"

FIRST = ["Haruto", "Yui", "Sota", "Hina", "Ren", "Aoi", "Yuto", "Mei", "Kaito", "Sakura", "Emma", "Liam", "Noah",
         "Olivia", "Lucas", "Mia", "Takumi", "Rin", "Daiki", "Akari"]
LAST = ["Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura", "Kobayashi", "Kato",
        "Smith", "Brown", "Wilson", "Yoshida", "Yamada", "Sasaki", "Yamaguchi", "Matsumoto", "Inoue", "Kimura"]
ORDER_TYPES = ("Internet", "SIM", "VPN")

PAYMENT_METHOD = "banktransfer"  # the gateway of the seeded bank-account pay methods
HISTORY_DAYS = 180  # provisioned orders were created over the past ~6 months
MIN_AGE = dt.timedelta(hours=2)  # ... and none of them in the last 2 hours (reconciliation's IN_FLIGHT window is 10 min)
_FAILURE_MESSAGES = {
    PRODUCT_MAPPING_MISSING: "Products without WH_Product_ID__c or Billing_Cycle__c: {skus}",
    CLIENT_MAPPING_MISSING: "Account {account}: WH_Account__c is empty; expected '#<WHMCS client id> - <name>'",
    PAYMENT_METHOD_MISSING: "WHMCS client {client} has no payment method on file",
}


def _items_for(order_type: str, rng: random.Random, n_items: int) -> list[CatalogueProduct]:
    products = [p for p in CATALOGUE if p.category == order_type]
    services = [p for p in products if p.item_class == "Service"]
    extras = [p for p in products if p.item_class != "Service"]
    chosen = [rng.choice(services)]
    chosen += rng.sample(extras, min(n_items - 1, len(extras)))
    return chosen


def seed_sandbox(data_dir: Path, orders: int = 20, rng_seed: int = 7) -> dict:
    """Seed WHMCS and the Salesforce org in ``data_dir``; return counts and expected outcomes per order."""
    return _open_and_seed(data_dir, orders, rng_seed, provisioned=False)


def seed_provisioned(data_dir: Path, orders: int, rng_seed: int = 7) -> dict:
    """Seed ``orders`` orders as already provisioned (module docstring); ``expected`` is each order's
    expected reconciliation category (``IN_SYNC`` for all of them, failures with no WHMCS order included)."""
    return _open_and_seed(data_dir, orders, rng_seed, provisioned=True)


def _open_and_seed(data_dir: Path, orders: int, rng_seed: int, provisioned: bool) -> dict:
    from orderflow_sandbox.salesforce.org import SalesforceOrg
    from orderflow_sandbox.whmcs.state import WhmcsState

    if orders < 0:
        raise ValueError(f"orders must be >= 0, got {orders}")
    data_dir = Path(data_dir).resolve()
    rng = random.Random(rng_seed)
    whmcs = WhmcsState(data_dir)
    org = SalesforceOrg(data_dir)
    try:
        # The provisioned history draws from its own generator, so seed_sandbox's data stay as they were.
        history = random.Random(rng_seed * 1_000_003 + 1) if provisioned else None
        return _seed(data_dir, whmcs, org, orders, rng, history)
    finally:
        org.close()
        close = getattr(whmcs, "close", None)
        if close:
            close()


def _seed(data_dir: Path, whmcs, org, orders: int, rng: random.Random, history: random.Random | None) -> dict:
    whmcs.seed_catalogue(CATALOGUE)

    # -- catalogue: Product2 + standard price book entries (the unmapped product has no WH id)
    catalogue = [*CATALOGUE, UNMAPPED_PRODUCT]
    existing = org.query_rows("SELECT Id, StockKeepingUnit FROM Product2").rows
    by_sku = {r["StockKeepingUnit"]: r["Id"] for r in existing}
    missing = [p for p in catalogue if p.sku not in by_sku]
    if missing:
        ids = org.bulk_insert("Product2", [{
            "Name": p.name, "StockKeepingUnit": p.sku, "ProductCode": p.sku, "IsActive": 1,
            "Product2Categories1__c": p.category, "Item_Class__c": p.item_class, "Billing_Cycle__c": p.billing_cycle,
            "WH_Product_ID__c": float(p.whmcs_pid) if p is not UNMAPPED_PRODUCT else None,
        } for p in missing])
        by_sku.update({p.sku: i for p, i in zip(missing, ids, strict=True)})
    books = org.query_rows("SELECT Id FROM Pricebook2 WHERE IsStandard = TRUE").rows
    pricebook = books[0]["Id"] if books else org.bulk_insert(
        "Pricebook2", [{"Name": "Standard Price Book", "IsActive": 1, "IsStandard": 1}])[0]
    entries = {r["Product2Id"]: r["Id"] for r in org.query_rows(
        "SELECT Id, Product2Id FROM PricebookEntry").rows}
    new_entries = [p for p in catalogue if by_sku[p.sku] not in entries]
    if new_entries:
        ids = org.bulk_insert("PricebookEntry", [{
            "Pricebook2Id": pricebook, "Product2Id": by_sku[p.sku], "UnitPrice": float(p.price), "IsActive": 1,
        } for p in new_entries])
        entries.update({by_sku[p.sku]: i for p, i in zip(new_entries, ids, strict=True)})

    # -- bad apples: positions among the orders, one defect each
    n_bad = max(1, orders // 100) if orders >= 3 else 0
    positions = rng.sample(range(orders), min(orders, 3 * n_bad)) if n_bad else []
    defect: dict[int, str] = {}
    for k, pos in enumerate(positions):
        defect[pos] = (PRODUCT_MAPPING_MISSING, CLIENT_MAPPING_MISSING, PAYMENT_METHOD_MISSING)[k % 3]

    # -- WHMCS clients and Salesforce accounts: ~3 orders per healthy account
    n_accounts = max(1, -(-orders // 3))
    names = [f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(n_accounts)]
    n_nopay = sum(1 for d in defect.values() if d == PAYMENT_METHOD_MISSING)
    n_unlinked = sum(1 for d in defect.values() if d == CLIENT_MAPPING_MISSING)
    nopay_names = [f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(n_nopay)]
    unlinked_names = [f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(n_unlinked)]
    client_ids: list[int] = []
    nopay_client_ids: list[int] = []
    with whmcs.transaction() as db:
        for i, name in enumerate([*names, *nopay_names]):
            first, last = name.split(" ", 1)
            cid = whmcs.insert_client(db, {"firstname": first, "lastname": last, "email": f"customer{i + 1}.{rng.randrange(10**6)}@example.jp"})
            if i < len(names):
                whmcs.insert_paymethod(db, cid)
                client_ids.append(cid)
            else:
                nopay_client_ids.append(cid)

    def account(name: str, number: int, client: int | None) -> dict:
        return {"Name": name, "SF_Account_No__c": f"SF{100000 + number}",
                "WH_Account__c": f"#{client} - {name}" if client is not None else None}

    base_no = org.counts()["Account"]
    account_rows = [account(n, base_no + i, c) for i, (n, c) in enumerate(zip(names, client_ids, strict=True))]
    account_rows += [account(n, base_no + len(account_rows) + i, c)
                     for i, (n, c) in enumerate(zip(nopay_names, nopay_client_ids, strict=True))]
    account_rows += [account(n, base_no + len(account_rows) + i, None) for i, n in enumerate(unlinked_names)]
    account_ids = org.bulk_insert("Account", account_rows)
    healthy = account_ids[: len(names)]
    nopay_accounts = account_ids[len(names): len(names) + n_nopay]
    unlinked_accounts = account_ids[len(names) + n_nopay:]

    # -- orders and items
    today = dt.date.today()
    order_rows: list[dict] = []
    item_specs: list[list[CatalogueProduct]] = []
    outcomes: list[str] = []
    nopay_i = unlinked_i = 0
    for i in range(orders):
        kind = defect.get(i)
        if kind == PAYMENT_METHOD_MISSING:
            acc = nopay_accounts[nopay_i]
            nopay_i += 1
        elif kind == CLIENT_MAPPING_MISSING:
            acc = unlinked_accounts[unlinked_i]
            unlinked_i += 1
        else:
            acc = healthy[i % len(healthy)] if i < 3 * len(healthy) else rng.choice(healthy)
        order_type = ORDER_TYPES[rng.randrange(3)]
        products = _items_for(order_type, rng, rng.randint(1, 5))
        if kind == PRODUCT_MAPPING_MISSING:
            order_type = "Internet"
            products = [*_items_for("Internet", rng, rng.randint(1, 4)), UNMAPPED_PRODUCT]
        order_rows.append({"AccountId": acc, "Pricebook2Id": pricebook, "Status": "Pending Review",
                           "Order_Type__c": order_type,
                           "EffectiveDate": (today - dt.timedelta(days=rng.randrange(30))).isoformat()})
        item_specs.append(products)
        outcomes.append(kind or ACTIVATED)

    def item_rows_for(oids: list[str], service_ids: list[list[int]] | None = None) -> Iterator[dict]:
        return (
            {"OrderId": oid, "Product2Id": by_sku[p.sku], "PricebookEntryId": entries[by_sku[p.sku]],
             "Quantity": 1.0, "UnitPrice": float(p.price),
             **(_item_history(order_rows[n], service_ids[n][k]) if service_ids is not None else {})}
            for n, (oid, products) in enumerate(zip(oids, item_specs, strict=True)) for k, p in enumerate(products)
        )

    whmcs_counts = {"whmcs_orders": 0, "whmcs_services": 0}
    if history is None:
        order_ids = _insert_all(org, "Order", order_rows)
        n_items = _insert_in_batches(org, "OrderItem", item_rows_for(order_ids))
    else:
        client_by_account = dict(zip(account_ids, [*client_ids, *nopay_client_ids], strict=False))
        order_ids, n_items = _seed_provisioned_orders(
            whmcs, org, history, order_rows, item_specs, outcomes, client_by_account, item_rows_for, whmcs_counts)

    if history is None:
        expected = dict(zip(order_ids, outcomes, strict=True))
    else:
        expected = dict.fromkeys(order_ids, IN_SYNC)
    (data_dir / EXPECTED_FILE).write_text(json.dumps(expected))
    by_outcome: dict[str, list[str]] = {}
    for oid, outcome in zip(order_ids, outcomes, strict=True):
        by_outcome.setdefault(outcome, []).append(oid)
    summary = {
        "products": len(catalogue),
        "whmcs_clients": len(client_ids) + len(nopay_client_ids),
        "whmcs_clients_without_paymethod": nopay_client_ids,
        "accounts": len(account_ids),
        "accounts_without_wh_account": unlinked_accounts,
        "orders": len(order_ids),
        "order_items": n_items,
        "outcome_counts": {k: len(v) for k, v in sorted(by_outcome.items())},
        "bad_apples": {k: v for k, v in sorted(by_outcome.items()) if k != ACTIVATED},
        "expected_outcomes_file": str(data_dir / EXPECTED_FILE),
        "expected": expected,
    }
    if history is not None:
        summary.update(whmcs_counts)
    log.info("seeded %d orders (%s)", len(order_ids), summary["outcome_counts"])
    return summary


# ---------------------------------------------------------------------- provisioned history


def _insert_in_batches(org, sobject: str, rows: Iterator[dict], size: int = 50_000) -> int:
    """Bulk-insert rows 50,000 at a time (never all of them in memory); return how many."""
    n = 0
    while batch := list(itertools.islice(rows, size)):
        org.bulk_insert(sobject, batch)
        n += len(batch)
    return n


def _insert_all(org, sobject: str, rows: list[dict], size: int = 50_000) -> list[str]:
    """Bulk-insert ``rows`` in batches (bounded memory for the storage form); return their ids in order."""
    ids: list[str] = []
    for start in range(0, len(rows), size):
        ids += org.bulk_insert(sobject, rows[start:start + size])
    return ids


def _stamp(value: dt.datetime) -> str:
    from orderflow_sandbox.salesforce import soql as soql_mod

    return soql_mod.format_datetime(value)


def _item_history(order_row: dict, service_id: int | None) -> dict:
    """An item of a provisioned order: its service id (None for a failed order) and the order's timestamps."""
    return {"WHMCS_Service_ID__c": None if service_id is None else str(service_id),
            "CreatedDate": order_row["CreatedDate"], "LastModifiedDate": order_row["LastModifiedDate"]}


def _ordernum(orderid: int) -> str:
    """A stable 10-digit order number (WHMCS's are random 10-digit strings)."""
    return str(1_000_000_000 + (orderid * 2_654_435_761) % 9_000_000_000)


def _seed_provisioned_orders(whmcs, org, history: random.Random, order_rows: list[dict],
                             item_specs: list[list[CatalogueProduct]], outcomes: list[str],
                             client_by_account: dict[str, int], item_rows_for, counts: dict) -> tuple[list[str], int]:
    """Write the Salesforce orders as provisioned (or failed) and their WHMCS orders and services.

    WHMCS ids are reserved inside one WHMCS write transaction, so the Salesforce rows can name them
    before the WHMCS rows (which need the Salesforce Order Ids for their notes) are inserted.
    """
    now = dt.datetime.now(dt.UTC)
    local_offset = dt.datetime.now().astimezone().utcoffset() or dt.timedelta(0)  # WHMCS stores server-local time
    span = HISTORY_DAYS * 86_400 - int(MIN_AGE.total_seconds())
    with whmcs.transaction() as db:
        next_order = int(db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM orders").fetchone()[0])
        next_service = int(db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM services").fetchone()[0])
        whmcs_ids: list[int | None] = []
        service_ids: list[list[int | None]] = []
        for row, products, outcome in zip(order_rows, item_specs, outcomes, strict=True):
            created = now - MIN_AGE - dt.timedelta(seconds=history.randrange(span))
            modified = created + dt.timedelta(seconds=history.randrange(30, 1800))  # approval to write-back
            row["CreatedDate"], row["LastModifiedDate"] = _stamp(created), _stamp(modified)
            row["EffectiveDate"] = created.date().isoformat()
            if outcome == ACTIVATED:
                row.update({"Status": "Activated", "Activation_Status__c": "Activated",
                            "WHMCS_Order_ID__c": str(next_order)})
                whmcs_ids.append(next_order)
                service_ids.append(list(range(next_service, next_service + len(products))))
                next_order += 1
                next_service += len(products)
            else:
                row.update({"Status": "Approved", "Activation_Status__c": "Failed",
                            "Activation_Error_Code__c": outcome,
                            "Activation_Error_Message__c": _failure_message(outcome, row, products, client_by_account)})
                whmcs_ids.append(None)
                service_ids.append([None] * len(products))
        order_ids = _insert_all(org, "Order", order_rows)

        order_tuples, service_tuples = [], []
        for oid, row, products, wid, sids in zip(order_ids, order_rows, item_specs, whmcs_ids, service_ids, strict=True):
            if wid is None:
                continue
            client = client_by_account[row["AccountId"]]
            placed = dt.datetime.fromisoformat(row["CreatedDate"].replace("+0000", "+00:00")) + local_offset
            date, day = placed.strftime("%Y-%m-%d %H:%M:%S"), placed.date()
            order_tuples.append((wid, _ordernum(wid), client, date, float(sum(p.price for p in products)),
                                 PAYMENT_METHOD, "127.0.0.1", marker(oid)))
            for position, (p, sid) in enumerate(zip(products, sids, strict=True)):
                monthly = p.billing_cycle == "Monthly"
                due = _next_due(day, now.date()) if monthly else "0000-00-00"
                service_tuples.append((sid, wid, client, p.whmcs_pid, position, day.isoformat(), PAYMENT_METHOD,
                                       float(p.price), float(p.price) if monthly else 0.0,
                                       "Monthly" if monthly else "One Time", due, f"svc{sid}" if p.module else ""))
        db.executemany(
            "INSERT INTO orders(id, ordernum, userid, date, amount, paymentmethod, invoiceid, status, ipaddress, notes) "
            "VALUES (?, ?, ?, ?, ?, ?, 0, 'Active', ?, ?)", order_tuples)
        db.executemany(
            "INSERT INTO services(id, orderid, clientid, pid, position, qty, regdate, paymentmethod, firstpaymentamount, "
            "recurringamount, billingcycle, nextduedate, status, username) "
            "VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, 'Active', ?)", service_tuples)
        counts.update(whmcs_orders=len(order_tuples), whmcs_services=len(service_tuples))

        n_items = _insert_in_batches(org, "OrderItem", item_rows_for(order_ids, service_ids))
    return order_ids, n_items


def _next_due(start: dt.date, today: dt.date) -> str:
    """The first monthly anniversary of ``start`` after ``today``."""
    months = (today.year - start.year) * 12 + today.month - start.month + 1
    year, month = start.year + (start.month - 1 + months) // 12, (start.month - 1 + months) % 12 + 1
    return dt.date(year, month, min(start.day, 28)).isoformat()


def _failure_message(code: str, row: dict, products: list[CatalogueProduct], client_by_account: dict[str, int]) -> str:
    skus = ", ".join(sorted({p.sku for p in products if p is UNMAPPED_PRODUCT}))
    return _FAILURE_MESSAGES[code].format(skus=skus, account=row["AccountId"],
                                          client=client_by_account.get(row["AccountId"], ""))
