"""The emulator against the documented WHMCS wire format (shared/reference/whmcs.md §1-§5)."""

from __future__ import annotations

import hashlib
import json

from orderflow_sandbox.server import Sandbox, read_endpoints
from orderflow_sandbox.whmcs.state import WhmcsState


def _json(resp) -> dict:
    assert resp.headers["content-type"].startswith("application/json")
    return resp.json()


def test_endpoints_json_has_what_clients_need(whmcs_sandbox):
    written = read_endpoints(whmcs_sandbox.data_dir)
    assert written["ca_bundle"].endswith("ca.pem")
    for key in ("url", "identifier", "secret", "accesskey", "admin_url"):
        assert written["whmcs"][key]
    assert written["whmcs"]["url"].startswith("https://127.0.0.1:") and written["whmcs"]["url"].endswith(
        "/includes/api.php"
    )


def test_add_order_example_php_arrays_and_string_ids(raw_post, new_customer):
    cid = new_customer()
    resp = raw_post(
        [
            ("action", "AddOrder"),
            ("clientid", str(cid)),
            ("paymentmethod", "mailin"),
            ("pid[0]", "182"),
            ("pid[1]", "242"),
            ("billingcycle[0]", "monthly"),
            ("billingcycle[1]", "onetime"),
            ("notes", "sfOrderId=801EXAMPLE000000AAA"),
            ("responsetype", "json"),
        ]
    )
    body = _json(resp)
    assert resp.status_code == 200 and body["result"] == "success"
    assert all(isinstance(body[k], str) for k in ("orderid", "serviceids", "productids", "invoiceid"))
    assert body["productids"] == body["serviceids"] and len(body["serviceids"].split(",")) == 2
    assert body["addonids"] == "" and body["domainids"] == ""

    orders = _json(raw_post({"action": "GetOrders", "id": body["orderid"], "responsetype": "json"}))
    assert (orders["totalresults"], orders["startnumber"], orders["numreturned"]) == (1, 0, 1)
    order = orders["orders"]["order"][0]
    assert order["id"] == body["orderid"] and order["userid"] == str(cid)
    assert order["status"] == "Pending" and order["notes"] == "sfOrderId=801EXAMPLE000000AAA"
    assert order["paymentmethod"] == "mailin" and order["paymentstatus"] == "Unpaid"
    assert len(order["ordernum"]) == 10 and order["ordernum"].isdigit()
    items = order["lineitems"]["lineitem"]
    assert [i["relid"] for i in items] == body["serviceids"].split(",")
    assert [i["billingcycle"] for i in items] == ["Monthly", "One Time"]
    assert {i["type"] for i in items} == {"product"} and {i["status"] for i in items} == {"Pending"}


def test_php_arrays_pair_by_index_not_position(raw_post, new_customer):
    cid = new_customer()
    body = _json(
        raw_post(
            [
                ("action", "AddOrder"), ("clientid", str(cid)), ("paymentmethod", "banktransfer"),
                ("pid[]", "301"), ("pid[]", "242"), ("qty[1]", "1"), ("qty[0]", "2"),
                ("billingcycle[]", "monthly"), ("responsetype", "json"),
            ]
        )
    )
    products = _json(raw_post({"action": "GetClientsProducts", "clientid": cid, "responsetype": "json"}))
    by_id = {p["id"]: p for p in products["products"]["product"]}
    first, second = body["serviceids"].split(",")
    assert (by_id[first]["pid"], by_id[first]["qty"]) == ("301", "2")
    assert (by_id[second]["pid"], by_id[second]["nextduedate"]) == ("242", "0000-00-00")
    assert products["clientid"] == str(cid) and products["serviceid"] is None


def test_empty_collections_are_empty_strings_and_switchable(raw_post, new_customer, state):
    cid = new_customer()
    body = _json(raw_post({"action": "GetOrders", "userid": cid, "responsetype": "json"}))
    assert body["orders"] == "" and body["totalresults"] == 0 and body["numreturned"] == 0
    state.update_settings({"empty_lists_as_string": False})
    body = _json(raw_post({"action": "GetOrders", "userid": cid, "responsetype": "json"}))
    assert body["orders"] == {"order": []}


def test_paging_defaults_to_25(raw_post, new_customer):
    cid = new_customer()
    for _ in range(27):
        raw_post(
            {"action": "AddOrder", "clientid": cid, "paymentmethod": "banktransfer", "pid[0]": 242,
             "noinvoice": 1, "responsetype": "json"}
        )
    first = _json(raw_post({"action": "GetOrders", "userid": cid, "responsetype": "json"}))
    assert (first["totalresults"], first["startnumber"], first["numreturned"]) == (27, 0, 25)
    rest = _json(raw_post({"action": "GetOrders", "userid": cid, "limitstart": 25, "responsetype": "json"}))
    assert (rest["startnumber"], rest["numreturned"]) == (25, 2)
    ids = [o["id"] for o in first["orders"]["order"] + rest["orders"]["order"]]
    assert len(set(ids)) == 27
    assert first["orders"]["order"][0]["invoiceid"] == "0"  # noinvoice=1


def test_auth_errors_have_documented_status_and_text(raw_post, endpoints, state):
    resp = raw_post({"action": "GetProducts", "secret": "nope", "responsetype": "json"})
    assert resp.status_code == 403 and _json(resp) == {"result": "error", "message": "Authentication Failed"}

    resp = raw_post({"action": "ModuleCreate", "serviceid": 1, "responsetype": "json"})
    assert resp.status_code == 403
    # PHP's json_encode(JSON_HEX_QUOT) as seen from real WHMCS: quotes as \u0022
    assert r"Invalid Permissions: API action \u0022modulecreate\u0022 is not allowed" in resp.text

    state.set_allowed_ips(["198.51.100.7"])
    resp = raw_post({"action": "GetProducts", "responsetype": "json"})
    assert resp.status_code == 403 and _json(resp)["message"] == "Invalid IP 127.0.0.1"
    resp = raw_post({"action": "GetProducts", "accesskey": endpoints["accesskey"], "responsetype": "json"})
    assert resp.status_code == 200


def test_unknown_action_and_missing_responsetype(raw_post, state):
    admin = state.admin_credentials()
    resp = raw_post({"action": "GetToDoList", **{k: admin[k] for k in ("identifier", "secret")}, "responsetype": "json"})
    assert _json(resp) == {"result": "error", "message": "Command Not Found"}
    legacy = raw_post({"action": "AcceptOrder", "orderid": 99999999})
    assert legacy.text == "result=error;message=Order ID not found or Status not Pending;"
    xml = raw_post({"action": "GetOrders", "id": 99999999, "responsetype": "xml"})
    assert "<whmcsapi" in xml.text and "<result>success</result>" in xml.text


def test_username_password_and_legacy_md5_login(raw_post, endpoints, state):
    resp = raw_post(
        {"action": "GetProducts", "username": endpoints["identifier"], "password": endpoints["secret"],
         "responsetype": "json"},
        with_auth=False,
    )
    assert _json(resp)["result"] == "success"
    legacy = state.legacy_admin_login()
    md5 = hashlib.md5(legacy["password"].encode()).hexdigest()
    resp = raw_post({"action": "GetPaymentMethods", "username": legacy["username"], "password": md5,
                     "responsetype": "json"}, with_auth=False)
    assert _json(resp)["totalresults"] == 4
    resp = raw_post({"action": "GetPaymentMethods", "username": legacy["username"],
                     "password": legacy["password"], "responsetype": "json"}, with_auth=False)
    assert _json(resp)["message"] == "Authentication Failed"


def test_client_and_order_error_strings(raw_post, state, new_customer):
    assert _json(raw_post({"action": "GetClientsDetails", "responsetype": "json"}))["message"] == (
        "Either clientid Or email Is Required"
    )
    assert _json(raw_post({"action": "GetClientsDetails", "clientid": 999999, "responsetype": "json"}))[
        "message"
    ] == "Client Not Found"
    cid = new_customer()
    assert _json(raw_post({"action": "GetPayMethods", "responsetype": "json"}))["message"] == "Client ID Is Required"
    assert _json(raw_post({"action": "AddOrder", "clientid": 999999, "paymentmethod": "banktransfer",
                           "pid[0]": 182, "responsetype": "json"}))["message"] == "Client ID Not Found"
    assert _json(raw_post({"action": "AddOrder", "clientid": cid, "paymentmethod": "banktransfer",
                           "responsetype": "json"}))["message"] == "No items added to cart so order cannot proceed"
    assert _json(raw_post({"action": "PendingOrder", "orderid": 999999, "responsetype": "json"}))["message"] == (
        "Order ID Not Found"
    )
    admin = state.admin_credentials()
    auth = {k: admin[k] for k in ("identifier", "secret")}
    assert _json(raw_post({"action": "ModuleCreate", **auth, "responsetype": "json"}))["message"] == (
        "Service ID is required"
    )
    state.set_client_status(cid, "Closed")
    assert _json(raw_post({"action": "AddOrder", "clientid": cid, "paymentmethod": "banktransfer",
                           "pid[0]": 182, "responsetype": "json"}))["message"] == (
        "Unable to add order when client status is Closed"
    )


def test_get_clients_details_by_email_and_product_pricing(raw_post, state):
    cid = state.create_client("Jiro", "Sato", "jiro.sato@example.jp")
    body = _json(raw_post({"action": "GetClientsDetails", "email": "Jiro.Sato@example.jp", "responsetype": "json"}))
    assert body["client"]["id"] == str(cid) and body["client"]["email"] == "jiro.sato@example.jp"
    products = _json(raw_post({"action": "GetProducts", "pid": "182", "responsetype": "json"}))
    (product,) = products["products"]["product"]
    assert product["pid"] == "182" and product["paytype"] == "recurring"
    assert product["pricing"]["JPY"]["monthly"] == "5800.00" and product["pricing"]["JPY"]["annually"] == "-1.00"


def test_autosetup_follows_php_truthiness(raw_post, state, new_customer, add_fault):
    cid = new_customer()
    order = _json(raw_post({"action": "AddOrder", "clientid": cid, "paymentmethod": "banktransfer",
                            "pid[0]": 301, "responsetype": "json"}))["orderid"]
    add_fault("module_error", "AcceptOrder")
    # PHP reads the string "false" as true: the module runs (and fails here)
    resp = _json(raw_post({"action": "AcceptOrder", "orderid": order, "autosetup": "false", "responsetype": "json"}))
    assert resp["result"] == "error"
    resp = _json(raw_post({"action": "AcceptOrder", "orderid": order, "autosetup": "0", "responsetype": "json"}))
    assert resp["result"] == "success"


def test_state_survives_a_restart(whmcs_sandbox, raw_post, new_customer, tmp_path):
    cid = new_customer()
    raw_post({"action": "AddOrder", "clientid": cid, "paymentmethod": "banktransfer", "pid[0]": 182,
              "notes": "restart-me", "responsetype": "json"})
    before = whmcs_sandbox.whmcs.credentials()
    again = Sandbox(whmcs_sandbox.data_dir, components={"whmcs"})
    endpoints = again.start()
    try:
        assert {k: endpoints["whmcs"][k] for k in before} == before
        import requests

        resp = requests.post(
            endpoints["whmcs"]["url"],
            data={**{k: before[k] for k in ("identifier", "secret")}, "action": "GetOrders", "userid": cid,
                  "responsetype": "json"},
            verify=endpoints["ca_bundle"],
            timeout=10,
        )
        assert resp.json()["orders"]["order"][0]["notes"] == "restart-me"
    finally:
        for server in again._servers:
            server.server.force_exit = True
        again.stop()
    assert WhmcsState(whmcs_sandbox.data_dir).credentials() == before
    # the admin dump is JSON-serialisable and has no credentials in it
    dump = json.dumps(whmcs_sandbox.whmcs.dump())
    assert before["secret"] not in dump
