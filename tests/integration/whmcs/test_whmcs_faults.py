"""Fault injection: each fault kind, as the client sees it, and what it leaves in WHMCS."""

from __future__ import annotations

import random
import time

import pytest
import requests

from orderflow.errors import ErrorCode, TransientError
from orderflow.whmcs.client import WhmcsClient

ITEMS = [(182, "monthly"), (242, "onetime")]


def _marker(request: pytest.FixtureRequest) -> str:
    return f"sfOrderId=801{abs(hash(request.node.name)) % 10**15:015d}"


def test_latency_below_the_timeout_only_slows_the_call(client, add_fault):
    add_fault("latency", "GetProducts", latency_ms=300)
    started = time.monotonic()
    assert client.get_products()
    assert time.monotonic() - started >= 0.3


def test_latency_above_the_timeout_is_transient_unavailable(endpoints, add_fault):
    add_fault("latency", "GetPayMethods", latency_ms=1500, count=2)
    slow = WhmcsClient(
        endpoints["url"], endpoints["identifier"], endpoints["secret"], ca_bundle=endpoints["ca_bundle"], timeout=0.5
    )
    with slow, pytest.raises(TransientError) as err:
        slow.get_pay_methods(1)
    assert err.value.code is ErrorCode.WHMCS_UNAVAILABLE
    assert slow.calls["GetPayMethods"] == 2  # a read is retried once after a timeout


@pytest.mark.parametrize(
    "kind,status", [("http_500", 500), ("http_502", 502), ("http_503", 503)]
)
def test_http_5xx_is_transient_unavailable_and_not_retried(client, new_customer, add_fault, kind, status):
    cid = new_customer()
    add_fault(kind, "AddOrder")
    with pytest.raises(TransientError) as err:
        client.add_order(cid, "banktransfer", ITEMS)
    assert err.value.code is ErrorCode.WHMCS_UNAVAILABLE
    assert f"HTTP {status}" in err.value.message
    assert "<" not in err.value.message  # no raw HTML in a message bound for Salesforce
    assert client.calls["AddOrder"] == 1
    assert list(client.iter_orders(userid=cid)) == []  # the 5xx happened before the action


def test_html_200_maintenance_page_is_transient_unavailable(client, add_fault):
    add_fault("html_200", "GetOrders")
    with pytest.raises(TransientError) as err:
        client.get_order(1)
    assert err.value.code is ErrorCode.WHMCS_UNAVAILABLE
    assert "<" not in err.value.message and "HTTP 200" in err.value.message


def test_drop_is_a_connection_error(endpoints, add_fault):
    add_fault("drop", "GetProducts")
    with pytest.raises(requests.ConnectionError):
        requests.post(
            endpoints["url"],
            data={"identifier": endpoints["identifier"], "secret": endpoints["secret"], "action": "GetProducts"},
            verify=endpoints["ca_bundle"],
            timeout=5,
        )


def test_one_drop_on_a_read_is_retried_once(client, add_fault):
    add_fault("drop", "GetProducts", count=1)
    assert client.get_products()
    assert client.calls["GetProducts"] == 2


def test_two_drops_on_a_read_raise_transient(client, add_fault):
    add_fault("drop", "GetProducts", count=2)
    with pytest.raises(TransientError) as err:
        client.get_products()
    assert err.value.code is ErrorCode.WHMCS_UNAVAILABLE


def test_drop_on_add_order_is_not_retried_and_creates_nothing(client, new_customer, add_fault, request):
    cid = new_customer()
    add_fault("drop", "AddOrder")
    with pytest.raises(TransientError) as err:
        client.add_order(cid, "banktransfer", ITEMS, notes=_marker(request))
    assert err.value.code is ErrorCode.WHMCS_UNAVAILABLE
    assert client.calls["AddOrder"] == 1
    assert client.find_orders_by_note(cid, _marker(request)) == []


def test_commit_then_drop_on_add_order_leaves_exactly_one_order(client, new_customer, add_fault, request):
    cid = new_customer()
    marker = _marker(request)
    add_fault("commit_then_drop", "AddOrder")
    with pytest.raises(TransientError) as err:
        client.add_order(cid, "banktransfer", ITEMS, notes=marker)
    assert err.value.code is ErrorCode.WHMCS_UNAVAILABLE
    assert client.calls["AddOrder"] == 1  # never resent: WHMCS has no idempotency key
    found = client.find_orders_by_note(cid, marker)  # the orchestrator's find-before-create
    assert len(found) == 1
    assert found[0].status == "Pending" and len(found[0].service_ids) == 2
    assert len(list(client.iter_orders(userid=cid))) == 1


def test_commit_then_drop_on_accept_order_still_accepts(client, new_customer, add_fault):
    result = client.add_order(new_customer(), "banktransfer", ITEMS)
    add_fault("commit_then_drop", "AcceptOrder")
    with pytest.raises(TransientError):
        client.accept_order(result.order_id)
    assert client.get_order(result.order_id).status == "Active"


def test_probability_faults_are_repeatable_with_a_seed(client, add_fault):
    add_fault("http_503", "GetProducts", count=None, probability=0.5, seed=42)
    failures = []
    for _ in range(12):
        try:
            client.get_products()
            failures.append(False)
        except TransientError:
            failures.append(True)
    rng = random.Random(42)
    assert failures == [rng.random() < 0.5 for _ in range(12)]


def test_faults_target_one_action_only(client, add_fault):
    add_fault("http_500", "AddOrder", count=None)
    assert client.get_products()


def test_stats_count_calls_per_action_and_reset(client, endpoints):
    admin, ca = endpoints["admin_url"], endpoints["ca_bundle"]
    requests.delete(f"{admin}/stats", verify=ca, timeout=5)
    client.get_products()
    client.get_products()
    client.get_order(1)
    stats = requests.get(f"{admin}/stats", verify=ca, timeout=5).json()
    assert stats == {"GetOrders": 1, "GetProducts": 2}
    assert requests.delete(f"{admin}/stats", verify=ca, timeout=5).json() == {}


def test_fault_admin_api_lists_and_validates(endpoints, add_fault):
    admin, ca = endpoints["admin_url"], endpoints["ca_bundle"]
    add_fault("latency", "AcceptOrder", latency_ms=10, count=3)
    listed = requests.get(f"{admin}/faults", verify=ca, timeout=5).json()
    assert [(f["kind"], f["target"], f["count"]) for f in listed] == [("latency", "AcceptOrder", 3)]
    bad = requests.post(f"{admin}/faults", json={"kind": "explode"}, verify=ca, timeout=5)
    assert bad.status_code == 400 and "unknown fault kind" in bad.json()["error"]
    assert requests.delete(f"{admin}/faults", verify=ca, timeout=5).json() == []
