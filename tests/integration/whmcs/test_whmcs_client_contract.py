"""Contract tests: the real WhmcsClient against the running emulator, over verified TLS."""

from __future__ import annotations

import pytest

from orderflow.errors import ErrorCode, OrderflowError, PermanentError, TransientError, WhmcsOrderNotPending
from orderflow.whmcs.client import WhmcsClient
from orderflow.whmcs.models import OrderLine

INTERNET_GOLD, INSTALL, SIM_DATA = 182, 242, 301  # sonixnet module, no module, freebit module


def _order(client: WhmcsClient, clientid: int, marker: str = "", items=None):
    items = items or [(INTERNET_GOLD, "monthly", 1), (INSTALL, "onetime", 1)]
    return client.add_order(clientid, "banktransfer", items, notes=marker or None, noemail=True)


# ---------------------------------------------------------------------- reads


def test_given_a_client_when_get_client_then_typed_details(client, new_customer):
    cid = new_customer()
    details = client.get_client(cid)
    assert details.id == str(cid)
    assert details.fullname.startswith("Hanako Test")
    assert details.status == "Active"
    assert details.defaultgateway == "banktransfer"


def test_given_unknown_client_when_get_client_then_permanent_client_not_found(client):
    with pytest.raises(PermanentError) as err:
        client.get_client(987654)
    assert err.value.code is ErrorCode.WHMCS_CLIENT_NOT_FOUND
    assert "Client Not Found" in err.value.message


def test_pay_methods_present_absent_and_unknown_client(client, new_customer):
    with_pm, without_pm = new_customer(), new_customer(with_paymethod=False)
    methods = client.get_pay_methods(with_pm)
    assert len(methods) == 1 and methods[0].type == "BankAccount"
    assert client.payment_method_for(methods) == "banktransfer"
    assert client.get_pay_methods(without_pm) == []
    with pytest.raises(PermanentError) as err:
        client.get_pay_methods(555555)
    assert err.value.code is ErrorCode.WHMCS_CLIENT_NOT_FOUND


def test_get_payment_methods_lists_gateways(admin_client):
    modules = [g.module for g in admin_client.get_payment_methods()]
    assert "banktransfer" in modules and "mailin" in modules


def test_get_products_returns_the_catalogue(client):
    products = {p.pid: p for p in client.get_products()}
    assert products[INTERNET_GOLD].module == "sonixnet" and products[INTERNET_GOLD].paytype == "recurring"
    assert products[INSTALL].paytype == "onetime"
    only = client.get_products([SIM_DATA, INSTALL])
    assert sorted(p.pid for p in only) == [INSTALL, SIM_DATA]


# ---------------------------------------------------------------------- order lifecycle


def test_add_order_then_accept_order_provisions_every_service(client, new_customer):
    cid = new_customer()
    result = _order(client, cid, "sfOrderId=801000000000001AAA")
    assert result.order_id.isdigit() and result.invoice_id
    assert len(result.service_ids) == 2

    order = client.get_order(result.order_id)
    assert order is not None and order.status == "Pending"
    assert order.notes == "sfOrderId=801000000000001AAA"
    assert order.service_ids == result.service_ids  # pid[] order is kept
    assert {li.status for li in order.line_items} == {"Pending"}

    client.accept_order(result.order_id)
    order = client.get_order(result.order_id)
    assert order.status == "Active"
    services = {s.id: s for s in client.iter_client_products(clientid=cid)}
    assert [services[i].pid for i in result.service_ids] == [INTERNET_GOLD, INSTALL]
    assert {services[i].status for i in result.service_ids} == {"Active"}
    assert services[result.service_ids[1]].nextduedate is None  # one-time: "0000-00-00"
    assert services[result.service_ids[0]].billingcycle == "Monthly"


def test_accept_order_twice_raises_order_not_pending(client, new_customer):
    result = _order(client, new_customer())
    client.accept_order(result.order_id)
    with pytest.raises(WhmcsOrderNotPending) as err:
        client.accept_order(result.order_id)
    assert "Order ID not found or Status not Pending" in err.value.message
    assert client.calls["AcceptOrder"] == 2


def test_get_order_of_unknown_id_is_none(client):
    assert client.get_order(99999999) is None


def test_add_order_quantities_and_noinvoice(client, new_customer):
    cid = new_customer()
    result = client.add_order(cid, "banktransfer", [OrderLine(SIM_DATA, "monthly", 3)], noinvoice=True)
    assert result.invoice_id is None
    (service,) = list(client.iter_client_products(serviceid=result.service_ids[0]))
    assert service.qty == 3 and service.recurringamount == "2970.00"


def test_add_order_with_invalid_gateway_is_rejected(client, new_customer):
    with pytest.raises(PermanentError) as err:
        client.add_order(new_customer(), "bitcoin", [(INTERNET_GOLD, "monthly")])
    assert err.value.code is ErrorCode.WHMCS_ORDER_REJECTED
    assert "Invalid Payment Method" in err.value.message


def test_add_order_for_unknown_client_is_client_not_found(client):
    with pytest.raises(PermanentError) as err:
        client.add_order(424242, "banktransfer", [(INTERNET_GOLD, "monthly")])
    assert err.value.code is ErrorCode.WHMCS_CLIENT_NOT_FOUND


def test_module_error_on_accept_is_transient_provisioning_failure_and_order_stays_pending(
    client, new_customer, add_fault
):
    result = _order(client, new_customer())
    add_fault("module_error", "AcceptOrder")
    with pytest.raises(TransientError) as err:
        client.accept_order(result.order_id)
    assert err.value.code is ErrorCode.WHMCS_PROVISIONING_FAILED
    order = client.get_order(result.order_id)
    assert order.status == "Pending"
    assert order.line_items[0].status == "Pending"  # the module service did not activate
    client.accept_order(result.order_id)  # the retry runs the module again and succeeds
    assert client.get_order(result.order_id).status == "Active"


def test_product_configured_to_fail_fails_module_create(admin_client, state, new_customer):
    cid = new_customer()
    result = admin_client.add_order(cid, "banktransfer", [(SIM_DATA, "monthly")])
    state.set_module_error(SIM_DATA, "freebit: MSISDN pool exhausted")
    try:
        with pytest.raises(TransientError) as err:
            admin_client.call("ModuleCreate", serviceid=result.service_ids[0])
        assert err.value.code is ErrorCode.WHMCS_PROVISIONING_FAILED
        assert "MSISDN pool exhausted" in err.value.message
    finally:
        state.set_module_error(SIM_DATA, None)
    admin_client.call("ModuleCreate", serviceid=result.service_ids[0])
    (service,) = admin_client.iter_client_products(serviceid=result.service_ids[0])
    assert service.status == "Active"


# ---------------------------------------------------------------------- find-before-create and paging


def test_find_orders_by_note_matches_whole_marker_only(client, new_customer):
    cid = new_customer()
    other = new_customer()
    sf18, sf15 = "801AAAAAAAAAAAAAAA", "801AAAAAAAAAAAA"
    first = _order(client, cid, f"sfOrderId={sf18}")
    _order(client, cid, f"sfOrderId={sf15}")
    _order(client, other, f"sfOrderId={sf18}")  # another client's order is not ours
    found = client.find_orders_by_note(cid, f"sfOrderId={sf18}")
    assert [o.id for o in found] == [first.order_id]
    assert client.find_orders_by_note(cid, "sfOrderId=801ZZZZZZZZZZZZZZZ") == []


def test_find_orders_by_note_reports_duplicates_oldest_first(client, new_customer):
    cid = new_customer()
    a = _order(client, cid, "sfOrderId=801DUPDUPDUPDUPDUP")
    b = _order(client, cid, "sfOrderId=801DUPDUPDUPDUPDUP")
    assert [o.id for o in client.find_orders_by_note(cid, "sfOrderId=801DUPDUPDUPDUPDUP")] == [a.order_id, b.order_id]


def test_paging_across_more_than_25_orders(client, new_customer):
    cid = new_customer()
    created = {_order(client, cid, f"n={i}", items=[(INSTALL, "onetime")]).order_id for i in range(31)}
    client.calls.clear()
    assert {o.id for o in client.iter_orders(userid=cid, page_size=25)} == created
    assert client.calls["GetOrders"] == 2
    client.calls.clear()
    seen = [o.id for o in client.iter_orders(userid=cid, page_size=7)]
    assert len(seen) == len(set(seen)) == 31 and client.calls["GetOrders"] == 5
    services = list(client.iter_client_products(clientid=cid, page_size=10))
    assert len({s.id for s in services}) == 31
    assert all(s.clientid == str(cid) for s in services)
    assert client.total_calls == sum(client.calls.values())


def test_iter_orders_by_status(client, new_customer):
    cid = new_customer()
    a = _order(client, cid)
    b = _order(client, cid)
    client.accept_order(b.order_id)
    assert [o.id for o in client.iter_orders(userid=cid, status="Pending")] == [a.order_id]
    assert [o.id for o in client.iter_orders(userid=cid, status="Active")] == [b.order_id]


# ---------------------------------------------------------------------- the other actions (admin role)


def test_order_status_actions(admin_client, new_customer):
    cid = new_customer()
    cancelled = _order(admin_client, cid)
    admin_client.call("CancelOrder", orderid=cancelled.order_id)
    assert admin_client.get_order(cancelled.order_id).status == "Cancelled"
    with pytest.raises(PermanentError) as err:
        admin_client.call("CancelOrder", orderid=cancelled.order_id)
    assert "Order ID not found or Status not Pending" in err.value.message

    admin_client.call("PendingOrder", orderid=cancelled.order_id)
    order = admin_client.get_order(cancelled.order_id)
    assert order.status == "Pending" and {li.status for li in order.line_items} == {"Pending"}

    admin_client.call("FraudOrder", orderid=cancelled.order_id)
    order = admin_client.get_order(cancelled.order_id)
    assert order.status == "Fraud" and {li.status for li in order.line_items} == {"Fraud"}
    with pytest.raises(PermanentError) as err:
        admin_client.call("FraudOrder", orderid=77777777)
    assert "Order ID Not Found" in err.value.message


def test_module_actions_drive_the_service_lifecycle(admin_client, new_customer):
    cid = new_customer()
    result = admin_client.add_order(cid, "banktransfer", [(INTERNET_GOLD, "monthly"), (INSTALL, "onetime")])
    internet, install = result.service_ids

    def status(sid: str) -> str:
        return next(admin_client.iter_client_products(serviceid=sid)).status

    admin_client.call("ModuleCreate", serviceid=internet)
    assert status(internet) == "Active"
    admin_client.call("ModuleSuspend", serviceid=internet, suspendreason="overdue")
    assert status(internet) == "Suspended"
    admin_client.call("ModuleTerminate", serviceid=internet)
    assert status(internet) == "Terminated"
    with pytest.raises(OrderflowError) as err:  # errors.py classifies every ModuleCreate error as provisioning
        admin_client.call("ModuleCreate", serviceid=install)
    assert "Service not assigned to a module" in err.value.message
    with pytest.raises(PermanentError) as err:
        admin_client.call("ModuleSuspend", serviceid=99999999)
    assert "Service ID not found" in err.value.message


def test_update_client_product_sets_status_and_notes(admin_client, new_customer):
    result = _order(admin_client, new_customer())
    sid = result.service_ids[0]
    assert admin_client.call("UpdateClientProduct", serviceid=sid, status="Active", notes="line 0312")["serviceid"] == sid
    service = next(admin_client.iter_client_products(serviceid=sid))
    assert service.status == "Active" and service.notes == "line 0312"
    with pytest.raises(PermanentError) as err:
        admin_client.call("UpdateClientProduct", serviceid=88888888)
    assert "Service ID Not Found" in err.value.message


def test_add_client_and_get_clients(admin_client):
    body = admin_client.call(
        "AddClient",
        firstname="Ichiro",
        lastname="Suzuki",
        email="ichiro.contract@example.jp",
        address1="1-1 Chiyoda",
        city="Chiyoda-ku",
        state="Tokyo",
        postcode="100-0001",
        country="JP",
        phonenumber="0312345678",
        password2="not-used-here",
    )
    assert body["clientid"].isdigit()
    found = admin_client.call("GetClients", search="ichiro.contract")
    assert found["numreturned"] == 1 and found["clients"]["client"][0]["id"] == body["clientid"]
    with pytest.raises(PermanentError) as err:
        admin_client.call(
            "AddClient", firstname="I", lastname="S", email="ichiro.contract@example.jp", address1="x", city="x",
            state="x", postcode="1", country="JP", phonenumber="1",
        )
    assert "A user already exists with that email address" in err.value.message


# ---------------------------------------------------------------------- auth and configuration errors


def test_bad_secret_is_a_configuration_error(endpoints):
    bad = WhmcsClient(endpoints["url"], endpoints["identifier"], "wrong-secret-value", ca_bundle=endpoints["ca_bundle"])
    with pytest.raises(PermanentError) as err:
        bad.get_products()
    assert err.value.code is ErrorCode.WHMCS_CONFIGURATION_ERROR
    assert "Authentication Failed" in err.value.message
    assert bad.calls["GetProducts"] == 1  # not retried


def test_ip_not_allowed_needs_the_access_key(endpoints, state):
    state.set_allowed_ips(["203.0.113.10"])
    plain = WhmcsClient(endpoints["url"], endpoints["identifier"], endpoints["secret"], ca_bundle=endpoints["ca_bundle"])
    with pytest.raises(PermanentError) as err:
        plain.get_products()
    assert err.value.code is ErrorCode.WHMCS_CONFIGURATION_ERROR
    assert "Invalid IP 127.0.0.1" in err.value.message
    keyed = WhmcsClient(
        endpoints["url"], endpoints["identifier"], endpoints["secret"], accesskey=endpoints["accesskey"],
        ca_bundle=endpoints["ca_bundle"],
    )
    assert keyed.get_products()


def test_ip_check_comes_before_credentials(endpoints, state):
    state.set_allowed_ips([])
    bad = WhmcsClient(endpoints["url"], "nobody", "wrong-secret-value", ca_bundle=endpoints["ca_bundle"])
    with pytest.raises(PermanentError, match="Invalid IP"):
        bad.get_products()


def test_role_without_the_action_is_invalid_permissions(client):
    with pytest.raises(PermanentError) as err:
        client.call("ModuleTerminate", serviceid=1)
    assert err.value.code is ErrorCode.WHMCS_CONFIGURATION_ERROR
    assert 'Invalid Permissions: API action "moduleterminate" is not allowed' in err.value.message


def test_unknown_action_is_command_not_found(admin_client):
    with pytest.raises(PermanentError) as err:
        admin_client.call("GetToDoList")
    assert err.value.code is ErrorCode.WHMCS_CONFIGURATION_ERROR
    assert "Command Not Found" in err.value.message


def test_tls_is_verified(endpoints):
    system_cas = WhmcsClient(endpoints["url"], endpoints["identifier"], endpoints["secret"])
    with pytest.raises(PermanentError) as err:
        system_cas.get_products()
    assert err.value.code is ErrorCode.WHMCS_CONFIGURATION_ERROR
    assert "TLS verification failed" in err.value.message


def test_plain_http_urls_are_refused():
    with pytest.raises(ValueError):
        WhmcsClient("http://billing.example.com/includes/api.php", "id", "secret")
