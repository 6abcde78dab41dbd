"""AddPayMethod, DeleteOrder and all-clients paging of the WHMCS emulator (developers.whmcs.com wording).

AddPayMethod is how a test or the demo plays "the customer added a card/bank account"; DeleteOrder
is how an admin removes an order. Paging is checked where reconciliation relies on it: walking
GetOrders / GetClientsProducts page by page yields every row exactly once.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator

import pytest

from orderflow.whmcs.client import WhmcsClient
from orderflow_sandbox.connections import whmcs_client
from orderflow_sandbox.seed import seed_provisioned
from orderflow_sandbox.server import Sandbox


@pytest.fixture
def admin_post(raw_post, state):
    admin = state.admin_credentials()

    def post(fields: dict) -> tuple[int, dict]:
        resp = raw_post({**fields, "identifier": admin["identifier"], "secret": admin["secret"], "responsetype": "json"})
        return resp.status_code, resp.json()

    return post


# ---------------------------------------------------------------------- AddPayMethod


def test_add_bank_account_then_get_pay_methods_shows_it(admin_post, client: WhmcsClient, new_customer, state):
    cid = new_customer(with_paymethod=False)
    assert client.get_pay_methods(cid) == []  # the PAYMENT_METHOD_MISSING customer
    status, body = admin_post({"action": "AddPayMethod", "clientid": cid, "type": "BankAccount", "bank_name": "MUFG",
                               "bank_code": "0005", "bank_account": "9876543210", "description": "Salary account"})
    assert status == 200 and body["result"] == "success"
    assert body["clientid"] == str(cid) and body["paymethodid"].isdigit()

    methods = client.get_pay_methods(cid)  # the pipeline's payment check now passes
    assert [(m.id, m.type, m.bank_name, m.description) for m in methods] == [
        (body["paymethodid"], "BankAccount", "MUFG", "Salary account")]
    assert client.payment_method_for(methods) == "banktransfer"
    with sqlite3.connect(state.db_path) as db:  # the account number is not stored anywhere
        dump = "\n".join(str(r) for r in db.execute("SELECT * FROM paymethods WHERE clientid = ?", (cid,)))
    assert "9876543210" not in dump


def test_add_credit_card_keeps_last_four_and_expiry_only(admin_post, client: WhmcsClient, new_customer, raw_post):
    cid = new_customer(with_paymethod=False)
    status, body = admin_post({"action": "AddPayMethod", "clientid": cid, "type": "CreditCard",
                               "card_number": "4242424242424242", "card_expiry": "0430", "set_as_default": "1"})
    assert status == 200 and body["result"] == "success"
    resp = raw_post({"action": "GetPayMethods", "clientid": cid, "responsetype": "json"})
    assert "4242424242424242" not in resp.text
    (method,) = resp.json()["paymethods"]
    assert (method["type"], method["card_last_four"], method["expiry_date"], method["card_type"]) == (
        "CreditCard", "4242", "04/30", "Visa")
    assert client.get_client(cid).defaultgateway == method["gateway_name"]


def test_default_type_is_credit_card(admin_post, new_customer):
    cid = new_customer(with_paymethod=False)
    assert admin_post({"action": "AddPayMethod", "clientid": cid})[1] == {
        "result": "error", "message": "Card Number is required for 'CreditCard' or 'RemoteCreditCard' type"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"clientid": ""}, "Client ID Is Required"),
        ({"clientid": "987654"}, "Invalid Client ID"),
        ({"type": "Cash"}, "Invalid Pay Method Type. Type should be one of 'BankAccount', 'CreditCard', or "
                           "'RemoteCreditCard'"),
        ({"type": "RemoteCreditCard", "card_number": "4242424242424242"}, "Gateway is Required for RemoteCreditCard type"),
        ({"card_number": "4242424242424242"}, "Expiry Date is required for 'CreditCard' or 'RemoteCreditCard' type"),
        ({"card_number": "4242424242424242", "card_expiry": "1399"}, "Expiry Date is invalid"),
        ({"card_number": "4242424242424242", "card_expiry": "0130", "card_start": "x"}, "Start Date is invalid"),
        ({"card_number": "4242424242424242", "card_expiry": "0130", "card_issue_number": "a"}, "Issue Number is invalid"),
        ({"type": "BankAccount", "bank_account": "1"}, "Routing number is required"),
        ({"type": "BankAccount", "bank_code": "1"}, "Account number is required"),
        ({"type": "BankAccount", "bank_code": "1", "bank_account": "2", "gateway_module_name": "bitcoin"},
         "Invalid Gateway Module Name. Must be one of: banktransfer, mailin, paypal, stripe"),
    ],
)
def test_add_pay_method_errors(admin_post, client: WhmcsClient, new_customer, fields: dict, message: str):
    cid = new_customer(with_paymethod=False)
    status, body = admin_post({"action": "AddPayMethod", "clientid": cid, **fields})
    assert (status, body) == (200, {"result": "error", "message": message})
    assert client.get_pay_methods(cid) == []  # nothing half-added


def test_pipeline_role_may_not_add_pay_methods(raw_post, new_customer):
    resp = raw_post({"action": "AddPayMethod", "clientid": new_customer(with_paymethod=False), "type": "BankAccount",
                     "bank_code": "1", "bank_account": "2", "responsetype": "json"})
    assert resp.status_code == 403
    assert resp.json()["message"] == 'Invalid Permissions: API action "addpaymethod" is not allowed'


# ---------------------------------------------------------------------- DeleteOrder


def test_delete_order_only_when_cancelled_or_fraud(admin_client: WhmcsClient, admin_post, new_customer):
    cid = new_customer()
    placed = admin_client.add_order(cid, "banktransfer", [(182, "monthly", 1), (242, "onetime", 1)], notes="x")
    admin_client.accept_order(placed.order_id)
    assert admin_post({"action": "DeleteOrder", "orderid": placed.order_id})[1] == {
        "result": "error", "message": "The order status must be in Cancelled or Fraud to be deleted"}
    assert admin_post({"action": "DeleteOrder", "orderid": 99999999})[1]["message"] == "Order ID not found"
    admin_client.call("FraudOrder", orderid=placed.order_id)
    assert admin_post({"action": "DeleteOrder", "orderid": placed.order_id})[1] == {"result": "success"}
    assert admin_client.get_order(placed.order_id) is None
    assert list(admin_client.iter_client_products(clientid=cid)) == []  # its services went with it


# ---------------------------------------------------------------------- paging at scale


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, dict]]:
    data_dir = tmp_path_factory.mktemp("whmcs-paging")
    summary = seed_provisioned(data_dir, orders=700, rng_seed=4)
    sandbox = Sandbox(data_dir, components={"whmcs"})
    sandbox.start()
    try:
        yield sandbox, summary
    finally:
        sandbox.stop()


@pytest.mark.parametrize("page_size", [1, 97, 1000])
def test_get_orders_pages_return_every_order_exactly_once(provisioned, page_size: int):
    sandbox, summary = provisioned
    with sqlite3.connect(sandbox.whmcs.db_path) as db:
        ids = {str(r[0]) for r in db.execute("SELECT id FROM orders")}
    wanted = ids if page_size > 1 else set(sorted(ids, key=int)[-40:])  # page size 1: the newest 40 only
    with whmcs_client(sandbox.endpoints) as wh:
        seen = []
        for order in wh.iter_orders(page_size=page_size):
            seen.append(order.id)
            if page_size == 1 and len(seen) == 40:
                break
    assert len(seen) == len(set(seen)) == len(wanted) and set(seen) == wanted
    assert seen == sorted(seen, key=int, reverse=True)  # newest first, as WHMCS lists them
    assert len(ids) == summary["whmcs_orders"]


@pytest.mark.parametrize("page_size", [113, 1000])
def test_get_clients_products_without_clientid_pages_every_service_once(provisioned, page_size: int):
    sandbox, summary = provisioned
    with whmcs_client(sandbox.endpoints) as wh:
        services = list(wh.iter_client_products(page_size=page_size))
        first = wh.call("GetClientsProducts", limitstart=0, limitnum=page_size)
    counts = Counter(s.id for s in services)
    assert len(counts) == len(services) == summary["whmcs_services"] == first["totalresults"]
    assert len({s.clientid for s in services}) > 100  # all clients, not one
    assert all(s.status == "Active" and s.orderid and s.name for s in services)
