"""Hostile answers from WHMCS and Salesforce: each is classified (transient or permanent, which ErrorCode)
and none ends as a Python traceback in the Order's error message.

The WHMCS emulator's own fault (``html_200``) is used where it exists. The other answers (truncated
JSON, integer ids, ``""`` for lists, an unknown ``result``; Salesforce records of the wrong shape and
an HTML page with status 200) are answers no faithful emulator gives, so a tiny HTTPS server at the
network boundary serves them, with a certificate from the sandbox CA: the real clients send real
requests over verified TLS and parse real bytes.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from orderflow.errors import ErrorCode, OrderflowError, PermanentError, TransientError
from orderflow.provisioning import steps
from orderflow.provisioning.order import build_plan
from orderflow.salesforce.client import SalesforceClient
from orderflow.salesforce.token_cache import TokenCache
from orderflow.whmcs.client import WhmcsClient
from orderflow.whmcs.models import GET_ORDERS, OrderRow
from orderflow_sandbox.server import Sandbox
from orderflow_sandbox.tls import TlsFiles, ensure_tls

ORDER_ID = "801000000000001AAA"
TOKEN = "00D000000000001!AQhostile.token.value"


class _Answers(BaseHTTPRequestHandler):
    """Answers every request with the stub's current (status, content type, body, declared length)."""

    server: _StubServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.paths.append(self.path)
        if self.path.startswith("/services/oauth2/token"):
            status, ctype, body, declared = 200, "application/json", json.dumps(self.server.token_body).encode(), None
        else:
            status, ctype, body, declared = self.server.answer
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(declared if declared is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)
        if declared is not None:  # promised more bytes than sent: close mid-body
            self.close_connection = True

    do_GET = do_POST = do_PATCH = _answer  # noqa: N815

    def log_message(self, *_args: object) -> None:  # keep pytest output clean
        pass


class _StubServer(ThreadingHTTPServer):
    daemon_threads = True
    answer: tuple[int, str, bytes, int | None] = (200, "application/json", b"{}", None)
    token_body: dict = {}
    paths: list[str]

    def serve(self, status: int, body: str | bytes | dict, ctype: str = "application/json",
              declared_length: int | None = None) -> None:
        raw = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        self.answer = (status, ctype, raw.encode() if isinstance(raw, str) else raw, declared_length)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.server_address[1]}"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return ensure_tls(tmp_path_factory.mktemp("hostile-ca"))


@pytest.fixture(scope="module")
def stub(tls: TlsFiles) -> Iterator[_StubServer]:
    server = _StubServer(("127.0.0.1", 0), _Answers)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tls.server_cert, tls.server_key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.paths = []
    server.token_body = {"access_token": TOKEN, "instance_url": server.url,
                         "id": f"{server.url}/id/00D000000000001AAA/005000000000001AAA"}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def whmcs(stub: _StubServer, tls: TlsFiles) -> Iterator[WhmcsClient]:
    with WhmcsClient(f"{stub.url}/includes/api.php", "ident", "whmcs-secret-value", ca_bundle=str(tls.ca_cert),
                     timeout=5) as client:
        yield client


@pytest.fixture
def sf(stub: _StubServer, tls: TlsFiles, tmp_path: Path) -> SalesforceClient:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return SalesforceClient(login_url=stub.url, username="integration@example.com", consumer_key="ck",
                            private_key=key, ca_bundle=str(tls.ca_cert), token_cache=TokenCache(tmp_path / "t.json"),
                            timeout=5)


def _assert_safe_line(err: OrderflowError) -> None:
    """What ends up in Activation_Error_Message__c: one line, no HTML, no traceback, no secret."""
    fields = steps.failure_fields(err)
    message = fields["Activation_Error_Message__c"]
    assert fields["Activation_Error_Code__c"] == err.code.value
    assert "\n" not in message and not re.search(r"<[A-Za-z/!][^>]*>", message), message
    assert "Traceback" not in message and 'File "' not in message, message
    assert len(message) <= 255 and "whmcs-secret-value" not in message and TOKEN not in message, message


# ------------------------------------------------------------------------------------ WHMCS

WHMCS_FAILURES = [
    # (action, status, body, declared length, error class, code)
    pytest.param("AddOrder", 200, '{"result":"success","orderid":"12","serviceids":"7,', None, TransientError,
                 ErrorCode.WHMCS_UNAVAILABLE, id="truncated-json-addorder"),
    pytest.param("GetOrders", 200, '{"result":"success","totalresults":"3","orders":{"order":[{"id":"1"', None,
                 TransientError, ErrorCode.WHMCS_UNAVAILABLE, id="truncated-json-getorders"),
    pytest.param("AddOrder", 200, '{"result":"success","orderid":"12"}', 4096, TransientError,
                 ErrorCode.WHMCS_UNAVAILABLE, id="body-cut-short-addorder"),
    pytest.param("GetPayMethods", 200, "<html><body><h1>Cloudflare: 520</h1></body></html>", None, TransientError,
                 ErrorCode.WHMCS_UNAVAILABLE, id="html-200-from-a-proxy"),
    pytest.param("AddOrder", 200, '{"result":"pending","message":"queued"}', None, TransientError,
                 ErrorCode.WHMCS_UNAVAILABLE, id="unknown-result-addorder"),
    pytest.param("AcceptOrder", 200, '{"result":"ok"}', None, TransientError, ErrorCode.WHMCS_UNAVAILABLE,
                 id="unknown-result-acceptorder"),
    pytest.param("GetOrders", 200, '{"orders":""}', None, TransientError, ErrorCode.WHMCS_UNAVAILABLE,
                 id="no-result-at-all"),
    pytest.param("GetOrders", 200, '["success"]', None, TransientError, ErrorCode.WHMCS_UNAVAILABLE,
                 id="json-list-not-object"),
    pytest.param("AddOrder", 200, '{"result":"error","message":"Invalid Product ID"}', None, PermanentError,
                 ErrorCode.WHMCS_ORDER_REJECTED, id="known-error-stays-permanent"),
]


@pytest.mark.parametrize("action, status, body, declared, kind, code", WHMCS_FAILURES)
def test_given_a_hostile_whmcs_answer_when_called_then_classified(stub, whmcs, action, status, body, declared,
                                                                  kind, code):
    stub.serve(status, body, "application/json" if body.startswith(("{", "[")) else "text/html",
               declared_length=declared)
    with pytest.raises(OrderflowError) as err:
        whmcs.call(action)
    assert isinstance(err.value, kind) and err.value.code is code, err.value
    assert err.value.transient is (kind is TransientError)
    _assert_safe_line(err.value)


PAGED_READ_FAILURES = [
    # (status, body, declared length, error class, code): a paged read decoded straight into typed rows
    # (WhmcsClient.page) is classified exactly as WhmcsClient.call classifies the same answer.
    pytest.param(200, '{"result":"success","totalresults":"3","orders":{"order":[{"id":"1"', None, TransientError,
                 ErrorCode.WHMCS_UNAVAILABLE, id="truncated-json"),
    pytest.param(200, '{"result":"success","totalresults":"3","orders":""}', 4096, TransientError,
                 ErrorCode.WHMCS_UNAVAILABLE, id="body-cut-short"),
    pytest.param(200, "<html><body><h1>Down for Maintenance</h1></body></html>", None, TransientError,
                 ErrorCode.WHMCS_UNAVAILABLE, id="html-200"),
    pytest.param(403, '{"result":"error","message":"Invalid IP 10.1.2.3"}', None, PermanentError,
                 ErrorCode.WHMCS_CONFIGURATION_ERROR, id="invalid-ip"),
    pytest.param(200, '{"orders":""}', None, TransientError, ErrorCode.WHMCS_UNAVAILABLE, id="no-result-at-all"),
    pytest.param(200, '{"result":"success","totalresults":"1","orders":{"order":[{"id":{"nested":"1"}}]}}', None,
                 TransientError, ErrorCode.WHMCS_UNAVAILABLE, id="rows-not-scalars"),
]


@pytest.mark.parametrize("status, body, declared, kind, code", PAGED_READ_FAILURES)
def test_given_a_hostile_answer_to_a_paged_read_when_paged_then_classified(stub, whmcs, status, body, declared,
                                                                           kind, code):
    stub.serve(status, body, "application/json" if body.startswith("{") else "text/html", declared_length=declared)
    with pytest.raises(OrderflowError) as err:
        whmcs.page(GET_ORDERS, 0, 1000)
    assert isinstance(err.value, kind) and err.value.code is code, err.value
    _assert_safe_line(err.value)


def test_a_paged_read_takes_every_shape_whmcs_sends(stub, whmcs):
    stub.serve(200, {"result": "success", "totalresults": "1", "orders": {"order": {"id": 5, "userid": "2"}}})
    page = whmcs.page(GET_ORDERS, 0, 1000)
    assert (page.rows, page.total) == ([OrderRow(id=5, userid="2")], 1)
    stub.serve(200, {"result": "success", "totalresults": "0", "orders": ""})
    assert whmcs.page(GET_ORDERS, 0, 1000).rows == []


def test_html_200_from_the_emulator_is_transient_and_addorder_is_not_resent(tmp_path: Path):
    """The emulator's own fault: a maintenance page with status 200 on AddOrder."""
    import requests

    sandbox = Sandbox(tmp_path / "sandbox", components={"whmcs"})
    ep = sandbox.start()
    try:
        wh = {**ep["whmcs"], "ca": ep["ca_bundle"]}
        requests.post(f"{wh['admin_url']}/faults", json={"kind": "html_200", "target": "AddOrder"}, verify=wh["ca"],
                      timeout=10).raise_for_status()
        with WhmcsClient(wh["url"], wh["identifier"], wh["secret"], ca_bundle=wh["ca"], timeout=10) as client:
            with pytest.raises(TransientError) as err:
                client.add_order(1, "banktransfer", [(1, "monthly", 1)], notes=f"sfOrderId={ORDER_ID}")
            assert err.value.code is ErrorCode.WHMCS_UNAVAILABLE and "HTTP 200" in err.value.message
            assert client.calls["AddOrder"] == 1  # a mutating call is never resent by the client
        _assert_safe_line(err.value)
    finally:
        sandbox.stop()


@pytest.mark.parametrize("body, order_id, service_ids", [
    pytest.param({"result": "success", "orderid": 12, "serviceids": "7,8", "invoiceid": 0}, "12", ["7", "8"],
                 id="orderid-int"),
    pytest.param({"result": "success", "orderid": 12, "serviceids": 7, "invoiceid": 0}, "12", ["7"],
                 id="serviceids-one-int"),
    pytest.param({"result": "success", "orderid": 12, "serviceids": [7, 8]}, "12", ["7", "8"],
                 id="serviceids-int-list"),
    pytest.param({"result": "success", "orderid": "12", "productids": "7, 8 ", "serviceids": ""}, "12", ["7", "8"],
                 id="older-productids"),
])
def test_addorder_ids_as_integers_come_back_as_strings(stub, whmcs, body, order_id, service_ids):
    stub.serve(200, body)
    result = whmcs.add_order(3, "banktransfer", [(1, "monthly", 1), (2, "monthly", 1)][:len(service_ids)])
    assert (result.order_id, result.service_ids, result.invoice_id) == (order_id, service_ids, None)


def test_getorders_with_integer_ids_finds_the_order_and_its_services(stub, whmcs):
    stub.serve(200, {"result": "success", "totalresults": 1, "startnumber": 0, "numreturned": 1,
                     "orders": {"order": [{"id": 12, "userid": 3, "status": "Active", "invoiceid": 0,
                                           "notes": f"sfOrderId={ORDER_ID}",
                                           "lineitems": {"lineitem": [{"relid": 7, "type": "product"}]}}]}})
    order = whmcs.get_order(12)
    assert order is not None and (order.id, order.userid, order.service_ids, order.invoice_id) == ("12", "3", ["7"],
                                                                                                   None)
    assert [o.id for o in whmcs.find_orders_by_note(3, f"sfOrderId={ORDER_ID}")] == ["12"]


@pytest.mark.parametrize("body", [
    pytest.param({"result": "success", "totalresults": "0", "numreturned": "0", "orders": ""}, id="orders-empty"),
    pytest.param({"result": "success", "totalresults": "0", "orders": {"order": ""}}, id="order-empty"),
    pytest.param({"result": "success", "totalresults": "0"}, id="orders-missing"),
])
def test_empty_string_for_the_order_list_means_no_orders(stub, whmcs, body):
    stub.serve(200, body)
    assert whmcs.get_order(12) is None
    assert whmcs.find_orders_by_note(3, f"sfOrderId={ORDER_ID}") == []


@pytest.mark.parametrize("products", ["", {"product": ""}, None], ids=["empty-string", "nested-empty", "null"])
def test_empty_string_for_the_service_list_means_no_services(stub, whmcs, products):
    stub.serve(200, {"result": "success", "clientid": "3", "totalresults": "0", "numreturned": 0,
                     "products": products})
    assert list(whmcs.iter_client_products(clientid=3)) == []


def test_empty_string_for_line_items_means_no_services(stub, whmcs):
    stub.serve(200, {"result": "success", "totalresults": "1", "numreturned": "1",
                     "orders": {"order": [{"id": "12", "status": "Pending", "lineitems": ""}]}})
    assert whmcs.get_order(12).service_ids == []


@pytest.mark.parametrize("paymethods", ["", None, {"paymethod": ""}], ids=["empty-string", "null", "nested-empty"])
def test_empty_string_for_pay_methods_is_payment_method_missing(stub, whmcs, paymethods):
    """WHMCS's "no pay methods" is ``""``; the provisioning step turns it into PAYMENT_METHOD_MISSING."""
    stub.serve(200, {"result": "success", "clientid": "3", "paymethods": paymethods})
    assert whmcs.get_pay_methods(3) == []
    with pytest.raises(PermanentError) as err:
        steps.check_payment_method(whmcs, 3)
    assert err.value.code is ErrorCode.PAYMENT_METHOD_MISSING
    _assert_safe_line(err.value)


# ------------------------------------------------------------------------------- Salesforce


def _item(n: int, **overrides: object) -> dict:
    item = {"attributes": {"type": "OrderItem"}, "Id": f"802000000000{n:03d}AAA", "Quantity": 1.0,
            "WHMCS_Service_ID__c": None, "Product2Id": f"01t000000000{n:03d}AAA",
            "Product2": {"attributes": {"type": "Product2"}, "Name": f"Fibre {n}", "StockKeepingUnit": f"SKU-{n}",
                         "WH_Product_ID__c": 10.0 + n, "Billing_Cycle__c": "Monthly"}}
    item.update(overrides)
    return item


def _order(**overrides: object) -> dict:
    record = {"attributes": {"type": "Order", "url": f"/services/data/v62.0/sobjects/Order/{ORDER_ID}"},
              "Id": ORDER_ID, "OrderNumber": "00000101", "Status": "Approved", "Activation_Status__c": "Activating",
              "WHMCS_Order_ID__c": None, "AccountId": "001000000000001AAA",
              "Account": {"attributes": {"type": "Account"}, "Name": "Ada Ltd", "WH_Account__c": "#3 - Ada Ltd"},
              "OrderItems": {"totalSize": 2, "done": True, "records": [_item(1), _item(2)]}}
    record.update(overrides)
    return record


def _page(*records: dict, **extra: object) -> dict:
    return {"totalSize": len(records), "done": True, "records": list(records), **extra}


def _load(sf: SalesforceClient):
    order = steps.load_order(sf, ORDER_ID)
    return order, build_plan(order)


def test_extra_fields_everywhere_are_ignored(stub, sf):
    item = _item(1, Unexpected__c="x", Product2={**_item(1)["Product2"], "Family": "Fibre", "New_Field__c": 1})
    stub.serve(200, _page(_order(Brand_New__c={"nested": [1, 2]}, OrderItems={"records": [item], "done": True,
                                                                            "queryLocator": None}),
                          queryLocator=None, nextRecordsUrl=None))
    order, plan = _load(sf)
    assert (order.order_id, plan.client_id, [(i.pid, i.billing_cycle) for i in plan.items]) == (ORDER_ID, 3,
                                                                                                [(11, "monthly")])


SF_ANSWERS = [
    # (the Order record / page, error class, code, words the message must carry)
    pytest.param(_page(_order(Account=None)), PermanentError, ErrorCode.CLIENT_MAPPING_MISSING,
                 "WH_Account__c is empty", id="account-null"),
    pytest.param(_page({k: v for k, v in _order().items() if k != "Account"}), PermanentError,
                 ErrorCode.CLIENT_MAPPING_MISSING, "WH_Account__c is empty", id="account-missing"),
    pytest.param(_page(_order(Account={"Name": "Ada Ltd", "WH_Account__c": None})), PermanentError,
                 ErrorCode.CLIENT_MAPPING_MISSING, "WH_Account__c is empty", id="wh-account-null"),
    pytest.param(_page(_order(OrderItems=None)), PermanentError, ErrorCode.PRODUCT_MAPPING_MISSING,
                 "no items", id="order-items-null"),
    pytest.param(_page(_order(OrderItems={"records": None})), PermanentError, ErrorCode.PRODUCT_MAPPING_MISSING,
                 "no items", id="order-items-records-null"),
    pytest.param(_page(_order(OrderItems={"records": [_item(1, Product2=None)]})), PermanentError,
                 ErrorCode.PRODUCT_MAPPING_MISSING, "01t000000000001AAA", id="product-null"),
    pytest.param(_page(_order(OrderItems={"records": [_item(1, Product2={**_item(1)["Product2"],
                                                                          "WH_Product_ID__c": None})]})),
                 PermanentError, ErrorCode.PRODUCT_MAPPING_MISSING, "SKU-1", id="product-id-null"),
    pytest.param(_page(_order(OrderItems={"records": [_item(1, Product2={**_item(1)["Product2"],
                                                                          "WH_Product_ID__c": "abc"})]})),
                 PermanentError, ErrorCode.PRODUCT_MAPPING_MISSING, "SKU-1", id="product-id-not-a-number"),
    pytest.param(_page(_order(OrderItems={"records": [_item(1, Product2={**_item(1)["Product2"],
                                                                          "Billing_Cycle__c": None})]})),
                 PermanentError, ErrorCode.PRODUCT_MAPPING_MISSING, "SKU-1", id="billing-cycle-null"),
    pytest.param(_page(_order(OrderItems={"records": [_item(1, Id=None), _item(2)]})), TransientError,
                 ErrorCode.SALESFORCE_UNAVAILABLE, "cannot be read", id="item-id-null"),
    pytest.param(_page(_order(OrderItems={"records": [{k: v for k, v in _item(1).items() if k != "Id"}]})),
                 TransientError, ErrorCode.SALESFORCE_UNAVAILABLE, "cannot be read", id="item-id-missing"),
    pytest.param(_page(_order(OrderItems={"records": [_item(1, Quantity="lots")]})), TransientError,
                 ErrorCode.SALESFORCE_UNAVAILABLE, "cannot be read", id="quantity-not-a-number"),
    pytest.param(_page({k: v for k, v in _order().items() if k != "Id"}), TransientError,
                 ErrorCode.SALESFORCE_UNAVAILABLE, "cannot be read", id="order-id-missing"),
    pytest.param(_page(_order(OrderItems=["not", "a", "subquery"])), TransientError,
                 ErrorCode.SALESFORCE_UNAVAILABLE, "cannot be read", id="items-wrong-shape"),
    pytest.param({"totalSize": 1, "done": True, "records": None}, TransientError, ErrorCode.SALESFORCE_UNAVAILABLE,
                 "unexpected", id="records-null"),
    pytest.param({"totalSize": 1, "done": True, "records": ["801000000000001AAA"]}, TransientError,
                 ErrorCode.SALESFORCE_UNAVAILABLE, "cannot be read", id="record-not-an-object"),
    pytest.param(_page(), PermanentError, ErrorCode.ORDER_NOT_FOUND, ORDER_ID, id="no-records"),
]


@pytest.mark.parametrize("page, kind, code, words", SF_ANSWERS)
def test_given_a_hostile_order_record_when_loaded_then_a_clear_code(stub, sf, page, kind, code, words):
    stub.serve(200, page)
    with pytest.raises(OrderflowError) as err:
        _load(sf)
    assert isinstance(err.value, kind) and err.value.code is code, err.value
    assert words in err.value.message, err.value.message
    _assert_safe_line(err.value)


def test_null_activation_status_skips_instead_of_provisioning(stub, sf):
    stub.serve(200, _page(_order(Activation_Status__c=None)))
    order = steps.load_order(sf, ORDER_ID)
    assert "Activation_Status__c=None" in steps.skip_reason(order)


@pytest.mark.parametrize("status, ctype, body, code", [
    pytest.param(200, "text/html", "<html><head><title>Maintenance</title></head><body>Back soon</body></html>",
                 ErrorCode.SALESFORCE_UNAVAILABLE, id="html-200"),
    pytest.param(503, "text/html", "<html><body><h1>Service Unavailable</h1><p>try later</p></body></html>",
                 ErrorCode.SALESFORCE_UNAVAILABLE, id="html-503"),
    pytest.param(502, "text/html", "<html><body>Bad Gateway</body></html>", ErrorCode.SALESFORCE_UNAVAILABLE,
                 id="html-502"),
    pytest.param(200, "application/json", '{"totalSize":1,"done":true,"records":[{"Id":"801',
                 ErrorCode.SALESFORCE_UNAVAILABLE, id="truncated-json"),
])
def test_html_or_broken_pages_from_salesforce_are_transient_without_html_in_the_message(stub, sf, status, ctype, body,
                                                                                         code):
    stub.serve(status, body, ctype)
    started = time.monotonic()
    with pytest.raises(TransientError) as err:
        _load(sf)
    assert err.value.code is code and time.monotonic() - started < 5
    assert not err.value.from_transport, "Salesforce answered: the request did reach it"
    assert "unreachable" not in err.value.message, err.value.message
    _assert_safe_line(err.value)


def test_html_error_page_on_the_write_back_is_transient(stub, sf):
    stub.serve(200, _page(_order()))
    order = steps.load_order(sf, ORDER_ID)
    stub.serve(503, "<html><body>Service Unavailable</body></html>", "text/html")
    with pytest.raises(TransientError) as err:
        steps.write_back(sf, order, steps.WhmcsOrderRef("12", ("7", "8"), created=True, status="Active"))
    assert err.value.code is ErrorCode.SALESFORCE_UNAVAILABLE
    _assert_safe_line(err.value)
