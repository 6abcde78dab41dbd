"""make_drift: every reconciliation category is really there afterwards, as both APIs show it.

The checks read the two systems the way reconciliation will (SOQL through REST, GetOrders /
GetPayMethods with the pipeline's credential), not drift's own bookkeeping.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderflow.salesforce.client import SalesforceClient
from orderflow.salesforce.token_cache import TokenCache
from orderflow.whmcs.client import WhmcsClient
from orderflow_sandbox.connections import salesforce_client, whmcs_client
from orderflow_sandbox.drift import CATEGORIES, DRIFT_EXPECTED_FILE, NotEnoughOrders, make_drift
from orderflow_sandbox.seed import seed_provisioned
from orderflow_sandbox.server import Sandbox

K = 2
ORDERS = 250  # 2 orders failed with PAYMENT_METHOD_MISSING: exactly enough for K = 2


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    data_dir = tmp_path_factory.mktemp("drift")
    seed = seed_provisioned(data_dir, orders=ORDERS, rng_seed=5)
    sandbox = Sandbox(data_dir, components={"salesforce", "whmcs"})
    sandbox.start()
    try:
        whmcs_before = sandbox.whmcs.counts()
        with pytest.raises(NotEnoughOrders, match="PAYMENT_METHOD_MISSING"):
            make_drift(data_dir, per_category=3)
        untouched = sandbox.whmcs.counts() == whmcs_before
        expected = make_drift(data_dir, per_category=K, rng_seed=1)
        yield {"sandbox": sandbox, "data_dir": data_dir, "seed": seed, "expected": expected, "untouched": untouched}
    finally:
        sandbox.stop()


@pytest.fixture(scope="module")
def sf(drifted: dict, tmp_path_factory: pytest.TempPathFactory) -> SalesforceClient:
    return salesforce_client(drifted["sandbox"].endpoints,
                             token_cache=TokenCache(tmp_path_factory.mktemp("tok") / "t.json"))


@pytest.fixture(scope="module")
def wh(drifted: dict) -> Iterator[WhmcsClient]:
    with whmcs_client(drifted["sandbox"].endpoints) as client:  # the pipeline's credential
        yield client


@pytest.fixture(scope="module")
def sf_orders(drifted: dict, sf: SalesforceClient) -> dict[str, dict]:
    rows = sf.iter_query("SELECT Id, Status, Activation_Status__c, Activation_Error_Code__c, WHMCS_Order_ID__c, "
                         "LastModifiedDate, Account.WH_Account__c, (SELECT WHMCS_Service_ID__c FROM OrderItems) FROM Order")
    return {r["Id"]: r for r in rows}


def _client(rec: dict) -> str:
    return rec["Account"]["WH_Account__c"].split(" ")[0].lstrip("#")


def _age(rec: dict) -> dt.timedelta:
    return dt.datetime.now(dt.UTC) - dt.datetime.strptime(rec["LastModifiedDate"], "%Y-%m-%dT%H:%M:%S.%f%z")


def _keys(drifted: dict, category: str) -> list[str]:
    return sorted(k for k, v in drifted["expected"].items() if v == category)


def test_every_category_is_made_k_times_and_written_down(drifted: dict) -> None:
    expected = drifted["expected"]
    assert Counter(expected.values()) == dict.fromkeys(CATEGORIES, K)
    written = json.loads((Path(drifted["data_dir"]) / DRIFT_EXPECTED_FILE).read_text())
    assert written == expected
    assert set(expected) - set(drifted["seed"]["expected"]) == set(_keys(drifted, "ORPHAN_IN_WHMCS"))


def test_drift_categories_are_the_pipelines() -> None:
    from orderflow.reconcile import Category

    assert list(CATEGORIES) == [c.value for c in Category if c is not Category.IN_SYNC]


def test_too_small_a_seed_is_refused_before_anything_changes(drifted: dict) -> None:
    assert drifted["untouched"]


def test_salesforce_edits_do_not_fire_the_approval_flow(drifted: dict) -> None:
    assert drifted["sandbox"].org.eventbus.count() == 0


def test_duplicate_in_whmcs(drifted: dict, sf_orders: dict, wh: WhmcsClient) -> None:
    for oid in _keys(drifted, "DUPLICATE_IN_WHMCS"):
        rec = sf_orders[oid]
        live = [o for o in wh.find_orders_by_note(_client(rec), f"sfOrderId={oid}") if o.status in ("Pending", "Active")]
        assert len(live) == 2 and rec["WHMCS_Order_ID__c"] in {o.id for o in live}
        assert rec["Activation_Status__c"] == "Activated"


def test_missing_in_whmcs(drifted: dict, sf_orders: dict, wh: WhmcsClient) -> None:
    for oid in _keys(drifted, "MISSING_IN_WHMCS"):
        rec = sf_orders[oid]
        assert rec["Activation_Status__c"] == "Activated" and rec["WHMCS_Order_ID__c"]
        assert wh.get_order(rec["WHMCS_Order_ID__c"]) is None
        assert wh.find_orders_by_note(_client(rec), f"sfOrderId={oid}") == []


def test_sf_behind(drifted: dict, sf_orders: dict, wh: WhmcsClient) -> None:
    for oid in _keys(drifted, "SF_BEHIND"):
        rec = sf_orders[oid]
        assert rec["Activation_Status__c"] == "Activating" and rec["WHMCS_Order_ID__c"] is None
        assert all(i["WHMCS_Service_ID__c"] is None for i in rec["OrderItems"]["records"])
        assert dt.timedelta(minutes=10) < _age(rec) < dt.timedelta(minutes=60)  # not in flight, not stuck
        (order,) = wh.find_orders_by_note(_client(rec), f"sfOrderId={oid}")
        assert order.status == "Active" and {li.status for li in order.line_items} == {"Active"}


def test_stuck_activating(drifted: dict, sf_orders: dict, wh: WhmcsClient) -> None:
    for oid in _keys(drifted, "STUCK_ACTIVATING"):
        rec = sf_orders[oid]
        assert rec["Activation_Status__c"] == "Activating" and rec["WHMCS_Order_ID__c"] is None
        assert _age(rec) > dt.timedelta(minutes=60)
        assert wh.find_orders_by_note(_client(rec), f"sfOrderId={oid}") == []


def test_payment_recovered(drifted: dict, sf_orders: dict, wh: WhmcsClient) -> None:
    keys = _keys(drifted, "PAYMENT_RECOVERED")
    assert sorted(keys) == sorted(drifted["seed"]["bad_apples"]["PAYMENT_METHOD_MISSING"])  # all there were
    for oid in keys:
        rec = sf_orders[oid]
        assert (rec["Activation_Status__c"], rec["Activation_Error_Code__c"]) == ("Failed", "PAYMENT_METHOD_MISSING")
        assert [m.type for m in wh.get_pay_methods(_client(rec))] == ["BankAccount"]
        assert wh.find_orders_by_note(_client(rec), f"sfOrderId={oid}") == []


def test_whmcs_pending(drifted: dict, sf_orders: dict, wh: WhmcsClient) -> None:
    for oid in _keys(drifted, "WHMCS_PENDING"):
        rec = sf_orders[oid]
        assert rec["Activation_Status__c"] == "Activated"
        assert wh.get_order(rec["WHMCS_Order_ID__c"]).status == "Pending"


def test_service_drift(drifted: dict, sf_orders: dict, wh: WhmcsClient) -> None:
    seen = set()
    for oid in _keys(drifted, "SERVICE_DRIFT"):
        rec = sf_orders[oid]
        order = wh.get_order(rec["WHMCS_Order_ID__c"])
        assert rec["Activation_Status__c"] == "Activated" and order.status == "Active"
        broken = {li.status for li in order.line_items} - {"Active"}
        assert len(broken) == 1 and broken <= {"Suspended", "Terminated"}
        seen |= broken
    assert seen == {"Suspended", "Terminated"}


def test_orphan_in_whmcs(drifted: dict, sf: SalesforceClient, wh: WhmcsClient) -> None:
    for key in _keys(drifted, "ORPHAN_IN_WHMCS"):
        order = wh.get_order(key.removeprefix("whmcs:"))
        assert order is not None and order.status == "Active" and order.notes.startswith("sfOrderId=801")
        ghost = order.notes.removeprefix("sfOrderId=")
        assert sf.query(f"SELECT Id FROM Order WHERE Id = '{ghost}'") == []


def test_in_flight(drifted: dict, sf_orders: dict) -> None:
    for oid in _keys(drifted, "IN_FLIGHT"):
        rec = sf_orders[oid]
        assert rec["Activation_Status__c"] == "Activating" and _age(rec) < dt.timedelta(minutes=10)


def test_the_rest_is_left_in_sync(drifted: dict, sf_orders: dict, wh: WhmcsClient) -> None:
    changed = set(drifted["expected"])
    rest = [rec for oid, rec in sf_orders.items() if oid not in changed]
    assert len(rest) == ORDERS - 8 * K  # orphans are not Salesforce orders
    assert all(_age(r) > dt.timedelta(minutes=60) for r in rest)
    active = {o.id: o for o in wh.iter_orders(status="Active", page_size=500)}
    for rec in rest:
        if rec["Activation_Status__c"] == "Activated":
            order = active[rec["WHMCS_Order_ID__c"]]
            assert {li.status for li in order.line_items} == {"Active"}
        else:
            assert rec["Activation_Status__c"] == "Failed" and rec["WHMCS_Order_ID__c"] is None
