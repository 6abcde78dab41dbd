"""whmcspy (a WHMCS client from PyPI that nobody here wrote) against the emulator.

whmcspy posts forms with ``key[i]`` arrays and reads ``result``/``message`` the way a real
WHMCS answers; if the emulator's wire format drifted from WHMCS's, this is where it shows.
whmcspy hard-codes ``verify=False`` (its choice, not ours), so its TLS check is not exercised here.
"""

from __future__ import annotations

import warnings

import pytest
from whmcspy import WHMCS
from whmcspy.exceptions import Error, MissingPermission


@pytest.fixture
def whmcspy_client(endpoints: dict) -> WHMCS:
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    return WHMCS(endpoints["url"], endpoints["identifier"], endpoints["secret"])


def test_whmcspy_adds_accepts_and_reads_back_an_order(whmcspy_client, new_customer):
    cid = new_customer()
    created = whmcspy_client.call(
        "AddOrder",
        clientid=cid,
        paymentmethod="banktransfer",
        pid=[181, 242],
        billingcycle=["monthly", "onetime"],
        notes="sfOrderId=801000000000123AAA",
        noinvoice=1,
    )
    assert created["result"] == "success"
    order_id = created["orderid"]
    assert len(created["serviceids"].split(",")) == 2

    assert whmcspy_client.accept_order(order_id, autosetup=1)["result"] == "success"

    orders = list(whmcspy_client.get_orders(userid=cid))
    assert [str(o["id"]) for o in orders] == [str(order_id)]
    assert orders[0]["status"] == "Active"
    assert orders[0]["notes"] == "sfOrderId=801000000000123AAA"

    products = list(whmcspy_client.get_clients_products(clientid=cid))
    assert sorted(int(p["pid"]) for p in products) == [181, 242]
    assert {p["status"] for p in products} == {"Active"}
    assert {str(p["orderid"]) for p in products} == {str(order_id)}


def test_whmcspy_pages_through_more_than_one_page(whmcspy_client, new_customer):
    cid = new_customer()
    for _ in range(27):  # the default page is 25
        whmcspy_client.call("AddOrder", clientid=cid, paymentmethod="banktransfer", pid=[33], billingcycle=["monthly"])
    assert len(list(whmcspy_client.get_orders(userid=cid))) == 27


def test_whmcspy_sees_documented_errors(whmcspy_client, endpoints):
    with pytest.raises(Error, match="Order ID not found or Status not Pending"):
        whmcspy_client.accept_order(999999)
    with pytest.raises(MissingPermission, match='API action "cancelorder" is not allowed'):
        whmcspy_client.call("CancelOrder", orderid=1)
    with pytest.raises(Error, match="Authentication Failed"):
        WHMCS(endpoints["url"], endpoints["identifier"], "wrong-secret").call("GetOrders")
