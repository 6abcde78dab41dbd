"""Seed both emulators: catalogue, WHMCS clients, linked Salesforce accounts, orders in Pending Review.

Deterministic for a given ``rng_seed`` on a fresh data folder, and fast for 100,000 orders (rows go
in with bulk inserts). Deliberate bad apples are mixed in; the summary tells each order's expected
provisioning outcome (``Activated`` or a DESIGN §4 error code) so tests and benchmarks can check it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
from pathlib import Path

from orderflow_sandbox.catalogue import CATALOGUE, UNMAPPED_PRODUCT, CatalogueProduct

log = logging.getLogger(__name__)

ACTIVATED = "Activated"
PRODUCT_MAPPING_MISSING = "PRODUCT_MAPPING_MISSING"
CLIENT_MAPPING_MISSING = "CLIENT_MAPPING_MISSING"
PAYMENT_METHOD_MISSING = "PAYMENT_METHOD_MISSING"
EXPECTED_FILE = "seed_expected.json"

FIRST = ["Haruto", "Yui", "Sota", "Hina", "Ren", "Aoi", "Yuto", "Mei", "Kaito", "Sakura", "Emma", "Liam", "Noah",
         "Olivia", "Lucas", "Mia", "Takumi", "Rin", "Daiki", "Akari"]
LAST = ["Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura", "Kobayashi", "Kato",
        "Smith", "Brown", "Wilson", "Yoshida", "Yamada", "Sasaki", "Yamaguchi", "Matsumoto", "Inoue", "Kimura"]
ORDER_TYPES = ("Internet", "SIM", "VPN")


def _items_for(order_type: str, rng: random.Random, n_items: int) -> list[CatalogueProduct]:
    products = [p for p in CATALOGUE if p.category == order_type]
    services = [p for p in products if p.item_class == "Service"]
    extras = [p for p in products if p.item_class != "Service"]
    chosen = [rng.choice(services)]
    chosen += rng.sample(extras, min(n_items - 1, len(extras)))
    return chosen


def seed_sandbox(data_dir: Path, orders: int = 20, rng_seed: int = 7) -> dict:
    """Seed WHMCS and the Salesforce org in ``data_dir``; return counts and expected outcomes per order."""
    from orderflow_sandbox.salesforce.org import SalesforceOrg
    from orderflow_sandbox.whmcs.state import WhmcsState

    data_dir = Path(data_dir).resolve()
    rng = random.Random(rng_seed)
    whmcs = WhmcsState(data_dir)
    org = SalesforceOrg(data_dir)
    try:
        return _seed(data_dir, whmcs, org, orders, rng)
    finally:
        org.close()
        close = getattr(whmcs, "close", None)
        if close:
            close()


def _seed(data_dir: Path, whmcs, org, orders: int, rng: random.Random) -> dict:
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
    order_ids = org.bulk_insert("Order", order_rows) if order_rows else []
    item_rows = [
        {"OrderId": oid, "Product2Id": by_sku[p.sku], "PricebookEntryId": entries[by_sku[p.sku]],
         "Quantity": 1.0, "UnitPrice": float(p.price)}
        for oid, products in zip(order_ids, item_specs, strict=True) for p in products
    ]
    for start in range(0, len(item_rows), 50_000):
        org.bulk_insert("OrderItem", item_rows[start:start + 50_000])

    expected = dict(zip(order_ids, outcomes, strict=True))
    (data_dir / EXPECTED_FILE).write_text(json.dumps(expected))
    by_outcome: dict[str, list[str]] = {}
    for oid, outcome in expected.items():
        by_outcome.setdefault(outcome, []).append(oid)
    summary = {
        "products": len(catalogue),
        "whmcs_clients": len(client_ids) + len(nopay_client_ids),
        "whmcs_clients_without_paymethod": nopay_client_ids,
        "accounts": len(account_ids),
        "accounts_without_wh_account": unlinked_accounts,
        "orders": len(order_ids),
        "order_items": len(item_rows),
        "outcome_counts": {k: len(v) for k, v in sorted(by_outcome.items())},
        "bad_apples": {k: v for k, v in sorted(by_outcome.items()) if k != ACTIVATED},
        "expected_outcomes_file": str(data_dir / EXPECTED_FILE),
        "expected": expected,
    }
    log.info("seeded %d orders (%s)", len(order_ids), summary["outcome_counts"])
    return summary
