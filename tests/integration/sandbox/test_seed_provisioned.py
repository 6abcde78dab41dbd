"""seed_provisioned: both emulators hold the history a finished provisioning run leaves behind.

Checked through the emulators' APIs with the pipeline's own clients, so "consistent" means what
reconciliation will see: every healthy Salesforce order names a WHMCS order that is Active, carries
the order's ``sfOrderId`` note and has one Active service per item; every bad apple is Failed with
its code and has no WHMCS order.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderflow.whmcs.client import WhmcsClient
from orderflow_sandbox.connections import salesforce_client, whmcs_client
from orderflow_sandbox.seed import seed_provisioned
from orderflow_sandbox.server import Sandbox

ORDERS = 400  # 4 bad apples of each kind
BAD_APPLES = {"PRODUCT_MAPPING_MISSING", "CLIENT_MAPPING_MISSING", "PAYMENT_METHOD_MISSING"}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, Sandbox]]:
    data_dir = tmp_path_factory.mktemp("provisioned")
    summary = seed_provisioned(data_dir, orders=ORDERS, rng_seed=3)
    sandbox = Sandbox(data_dir, components={"salesforce", "whmcs"})
    sandbox.start()
    try:
        yield summary, sandbox
    finally:
        sandbox.stop()


def _sf_orders(sandbox: Sandbox, tmp_path: Path) -> dict[str, dict]:
    from orderflow.salesforce.token_cache import TokenCache

    sf = salesforce_client(sandbox.endpoints, token_cache=TokenCache(tmp_path / "tokens.json"))
    rows = sf.iter_query(
        "SELECT Id, Status, Activation_Status__c, Activation_Error_Code__c, WHMCS_Order_ID__c, CreatedDate, "
        "LastModifiedDate, Account.WH_Account__c, (SELECT Id, WHMCS_Service_ID__c FROM OrderItems) FROM Order"
    )
    return {r["Id"]: r for r in rows}


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z")


def test_seed_provisioned_is_consistent_across_both_systems(seeded: tuple[dict, Sandbox], tmp_path: Path) -> None:
    summary, sandbox = seeded
    orders = _sf_orders(sandbox, tmp_path)
    with whmcs_client(sandbox.endpoints) as wh:
        whmcs_orders = {o.id: o for o in wh.iter_orders(page_size=250)}
        services = {s.id: s for s in wh.iter_client_products(page_size=500)}

    assert set(orders) == set(summary["expected"]) and len(orders) == ORDERS
    assert set(summary["expected"].values()) == {"IN_SYNC"}
    bad = {oid: code for code, ids in summary["bad_apples"].items() for oid in ids}
    assert set(Counter(bad.values())) == BAD_APPLES and len(bad) == 12
    assert summary["whmcs_orders"] == len(whmcs_orders) == ORDERS - len(bad)
    assert summary["whmcs_services"] == len(services)

    by_marker = Counter(o.notes for o in whmcs_orders.values())
    assert max(by_marker.values()) == 1, "one WHMCS order per marker"
    now = dt.datetime.now(dt.UTC)
    for oid, rec in orders.items():
        created, modified = _parse(rec["CreatedDate"]), _parse(rec["LastModifiedDate"])
        assert created <= modified < now - dt.timedelta(minutes=10), oid
        items = rec["OrderItems"]["records"]
        if oid in bad:
            assert (rec["Status"], rec["Activation_Status__c"]) == ("Approved", "Failed")
            assert rec["Activation_Error_Code__c"] == bad[oid]
            assert rec["WHMCS_Order_ID__c"] is None and all(i["WHMCS_Service_ID__c"] is None for i in items)
            assert f"sfOrderId={oid}" not in by_marker
            continue
        assert (rec["Status"], rec["Activation_Status__c"], rec["Activation_Error_Code__c"]) == (
            "Activated", "Activated", None)
        order = whmcs_orders[rec["WHMCS_Order_ID__c"]]
        assert order.status == "Active" and order.notes == f"sfOrderId={oid}"
        assert order.userid == rec["Account"]["WH_Account__c"].split(" ")[0].lstrip("#")
        assert order.service_ids == [i["WHMCS_Service_ID__c"] for i in items]  # services map to items in order
        for sid in order.service_ids:
            assert (services[sid].status, services[sid].orderid, services[sid].clientid) == (
                "Active", order.id, order.userid)
    created = sorted(_parse(r["CreatedDate"]) for r in orders.values())
    assert created[-1] - created[0] > dt.timedelta(days=60), "history spread over months"


def test_pipeline_marker_lookup_finds_the_seeded_order(seeded: tuple[dict, Sandbox], tmp_path: Path) -> None:
    """The seeded note is the text the pipeline's find-before-create looks for (not a look-alike)."""
    summary, sandbox = seeded
    orders = _sf_orders(sandbox, tmp_path)
    healthy = [r for r in orders.values() if r["WHMCS_Order_ID__c"]][:5]
    with whmcs_client(sandbox.endpoints) as wh:
        assert isinstance(wh, WhmcsClient)
        for rec in healthy:
            client_id = rec["Account"]["WH_Account__c"].split(" ")[0].lstrip("#")
            found = wh.find_orders_by_note(client_id, f"sfOrderId={rec['Id']}")
            assert [o.id for o in found] == [rec["WHMCS_Order_ID__c"]]


def test_seed_provisioned_is_deterministic(tmp_path: Path) -> None:
    first = seed_provisioned(tmp_path / "a", orders=150, rng_seed=9)
    second = seed_provisioned(tmp_path / "b", orders=150, rng_seed=9)
    strip = ("expected_outcomes_file",)
    assert {k: v for k, v in first.items() if k not in strip} == {k: v for k, v in second.items() if k not in strip}
