"""provision_order end to end: real DAG runs (dag.test) against the sandboxes over TLS.

Each test approves a seeded order (the sandbox Flow sets Activating), runs the DAG for it and
checks what a user relies on: the Order's fields in Salesforce and the orders in WHMCS.
"""

from __future__ import annotations

import json
import os

import pytest

from orderflow.errors import ErrorCode


def run(dagbag, order_id: str, **conf):
    dag = dagbag.dags["provision_order"]
    dr = dag.test(run_conf={"order_id": order_id, **conf}, logical_date=None)
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    tries = {ti.task_id: ti.try_number for ti in dr.get_task_instances()}
    return dr, states, tries


def assert_activated(env, order_id: str) -> dict:
    order = env.order(order_id)
    assert order["Activation_Status__c"] == "Activated", order
    assert order["WHMCS_Order_ID__c"]
    assert order["Activation_Error_Code__c"] is None and order["Activation_Error_Message__c"] is None
    items = order["OrderItems"]["records"]
    assert items and all(i["WHMCS_Service_ID__c"] for i in items), items
    wh = env.whmcs_orders_for(order_id)
    assert [o.id for o in wh] == [order["WHMCS_Order_ID__c"]], "exactly one WHMCS order per Salesforce order"
    assert wh[0].status == "Active"
    assert sorted(wh[0].service_ids) == sorted(i["WHMCS_Service_ID__c"] for i in items)
    return order


def assert_failed(env, order_id: str, code: ErrorCode) -> dict:
    order = env.order(order_id)
    assert order["Activation_Status__c"] == "Failed", order
    assert order["Activation_Error_Code__c"] == code.value
    msg = order["Activation_Error_Message__c"]
    assert msg and "\n" not in msg and len(msg) <= 255 and "<" not in msg
    secret = env.endpoints["whmcs"]["secret"]
    assert secret not in msg
    return order


# ------------------------------------------------------------------------- happy path


def test_happy_path_activates_order_within_api_budget(dagbag, env):
    oid = env.take("Activated")
    env.approve(oid)
    sf_before, wh_before = env.stats("salesforce"), env.stats("whmcs")
    dr, states, _ = run(dagbag, oid)
    sf_after, wh_after = env.stats("salesforce"), env.stats("whmcs")

    assert dr.state == "success", states
    assert_activated(env, oid)
    # docs/architecture.md, "API budgets": Salesforce <= 2 REST calls (1 query + 1 collection update), WHMCS <= 4.
    assert sf_after["rest_total"] - sf_before["rest_total"] <= 2
    assert sf_after["rest"].get("query", 0) - sf_before["rest"].get("query", 0) == 1
    assert sum(wh_after.values()) - sum(wh_before.values()) <= 4


def test_activation_mail_is_sent_after_write_back_and_a_lost_mail_fails_nothing(dagbag, env, tmp_path,
                                                                               monkeypatch):
    """The mail is write_back's success callback (no task of its own); SMTP down must not fail the order."""
    import mailbox
    import socket

    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Mailbox

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ORDERFLOW_NOTIFY_EMAIL", "ops@example.test")
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(
        {"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": {"disable_tls": True, "disable_ssl": True}}))
    maildir = tmp_path / "mail"
    sink = Controller(Mailbox(str(maildir)), hostname="127.0.0.1", port=port)
    sink.start()
    try:
        oid = env.take("Activated")
        env.approve(oid)
        dr, states, _ = run(dagbag, oid)
    finally:
        sink.stop()
    assert dr.state == "success" and "notify" not in states, states
    assert_activated(env, oid)
    subjects = [str(m["subject"]) for m in mailbox.Maildir(str(maildir), create=False)]
    assert subjects == [f"[orderflow] Order {oid} activated (WHMCS order {env.order(oid)['WHMCS_Order_ID__c']})"]

    # Nothing listens on the port now: the order is Activated all the same.
    other = env.take("Activated")
    env.approve(other)
    dr, states, _ = run(dagbag, other)
    assert dr.state == "success", states
    assert_activated(env, other)


# ------------------------------------------------------------------------- permanent errors


@pytest.mark.parametrize(
    "outcome",
    [ErrorCode.PRODUCT_MAPPING_MISSING, ErrorCode.CLIENT_MAPPING_MISSING, ErrorCode.PAYMENT_METHOD_MISSING],
)
def test_seeded_bad_apple_fails_at_once_with_its_code(dagbag, env, outcome):
    oid = env.take(outcome.value)
    env.approve(oid)
    dr, states, tries = run(dagbag, oid)
    assert dr.state == "failed"
    failed = [t for t, s in states.items() if s == "failed"]
    assert len(failed) == 1 and tries[failed[0]] == 1, (states, tries)  # permanent: no retry
    order = assert_failed(env, oid, outcome)
    assert env.whmcs_orders_for(oid) == []
    if outcome is ErrorCode.PRODUCT_MAPPING_MISSING:  # the message lists the unmapped SKUs
        assert "INTERNET-ADDON-STATIC-IP" in order["Activation_Error_Message__c"]


def test_unknown_order_fails_with_order_not_found_without_retry(dagbag, env, caplog):
    missing = "801000000000000AAA"
    wh_before = sum(env.stats("whmcs").values())
    dr, states, tries = run(dagbag, missing)
    assert dr.state == "failed"
    assert states["load_order"] == "failed" and tries["load_order"] == 1
    # the failure callback names the code in the task log (there is no Order to write it to)
    final = [r.getMessage() for r in caplog.records if "failed for good" in r.getMessage()]
    assert final == [f"Provisioning {missing} failed for good: ORDER_NOT_FOUND: No Order with Id {missing}"], final
    assert sum(env.stats("whmcs").values()) == wh_before  # nothing reached WHMCS


def test_incomplete_whmcs_connection_fails_at_once_with_configuration_error(dagbag, env, monkeypatch):
    """A connection without its secret is a configuration fault: no retries, a code from the enum."""
    oid = env.take("Activated")
    env.approve(oid)
    conn = json.loads(os.environ["AIRFLOW_CONN_WHMCS_DEFAULT"])
    secret = conn.pop("password")
    monkeypatch.setenv("AIRFLOW_CONN_WHMCS_DEFAULT", json.dumps(conn))
    dr, states, tries = run(dagbag, oid)
    assert dr.state == "failed"
    assert states["check_payment_method"] == "failed" and tries["check_payment_method"] == 1, (states, tries)
    order = assert_failed(env, oid, ErrorCode.WHMCS_CONFIGURATION_ERROR)
    assert "password" in order["Activation_Error_Message__c"] and secret not in order["Activation_Error_Message__c"]
    assert env.whmcs_orders_for(oid) == []


def test_whmcs_client_that_does_not_exist_fails_with_whmcs_client_not_found(dagbag, env):
    oid = env.take("Activated")
    env.approve(oid)
    account_id = env.order(oid)["AccountId"]
    original = env.sf.get("Account", account_id)["WH_Account__c"]
    env.sf.update("Account", account_id, {"WH_Account__c": "#999999 - Nobody"})
    try:
        run(dagbag, oid)
    finally:  # the account has other orders that later tests provision
        env.sf.update("Account", account_id, {"WH_Account__c": original})
    assert_failed(env, oid, ErrorCode.WHMCS_CLIENT_NOT_FOUND)


def test_addorder_rejected_fails_with_whmcs_order_rejected(dagbag, env):
    oid = env.take("Activated")
    env.approve(oid)
    product_id = env.order(oid)["OrderItems"]["records"][0]["Product2Id"]
    original = env.sf.get("Product2", product_id)["WH_Product_ID__c"]
    env.sf.update("Product2", product_id, {"WH_Product_ID__c": 987654})
    try:
        run(dagbag, oid)
    finally:
        env.sf.update("Product2", product_id, {"WH_Product_ID__c": original})
    assert_failed(env, oid, ErrorCode.WHMCS_ORDER_REJECTED)
    assert env.whmcs_orders_for(oid) == []


def test_duplicate_whmcs_orders_fail_and_nothing_new_is_created(dagbag, env):
    oid = env.take("Activated")
    env.approve(oid)
    order = env.order(oid)
    client_id = int(order["Account"]["WH_Account__c"].split()[0].lstrip("#"))
    for _ in range(2):
        env.wh_admin.add_order(client_id, "banktransfer", [(181, "monthly", 1)], notes=f"sfOrderId={oid}")
    run(dagbag, oid)
    assert_failed(env, oid, ErrorCode.DUPLICATE_WHMCS_ORDERS)
    assert len(env.whmcs_orders_for(oid)) == 2


def test_order_noted_with_the_15_char_id_is_reused_and_a_longer_id_is_not(dagbag, env):
    """Ops may paste the 15-character id into a WHMCS note: it is the same record, so no second order."""
    oid = env.take("Activated")
    env.approve(oid)
    client_id = int(env.order(oid)["Account"]["WH_Account__c"].split()[0].lstrip("#"))
    items = env.sf.query(
        "SELECT Quantity, Product2.WH_Product_ID__c, Product2.Billing_Cycle__c FROM OrderItem "
        f"WHERE OrderId = '{oid}' ORDER BY Id"
    )
    lines = [(int(i["Product2"]["WH_Product_ID__c"]), i["Product2"]["Billing_Cycle__c"].lower(),
              max(1, int(i["Quantity"]))) for i in items]
    env.wh_admin.add_order(client_id, "banktransfer", lines, notes=f"sfOrderId={oid[:15]}B")  # another id
    placed = env.wh_admin.add_order(client_id, "banktransfer", lines, notes=f"by ops\nsfOrderId={oid[:15]}, ticket 7")
    adds_before = env.stats("whmcs").get("AddOrder", 0)
    dr, states, _ = run(dagbag, oid)
    assert dr.state == "success", states
    order = assert_activated(env, oid)  # exactly one WHMCS order carries the marker
    assert order["WHMCS_Order_ID__c"] == placed.order_id
    assert env.stats("whmcs").get("AddOrder", 0) == adds_before


def test_module_error_retries_then_fails_with_provisioning_failed(dagbag, env):
    oid = env.take("Activated")
    env.approve(oid)
    env.fault("whmcs", "module_error", "AcceptOrder", count=None)
    dr, states, tries = run(dagbag, oid)
    assert states["accept_whmcs_order"] == "failed" and tries["accept_whmcs_order"] == 3  # 1 + 2 retries
    assert_failed(env, oid, ErrorCode.WHMCS_PROVISIONING_FAILED)
    assert len(env.whmcs_orders_for(oid)) == 1  # created once, never re-added by the retries


# ------------------------------------------------------------------------- transient errors


def test_transient_whmcs_fault_succeeds_on_retry(dagbag, env):
    oid = env.take("Activated")
    env.approve(oid)
    env.fault("whmcs", "http_503", "AddOrder", count=1)
    dr, states, tries = run(dagbag, oid)
    assert dr.state == "success", states
    assert tries["find_or_create_whmcs_order"] == 2
    assert_activated(env, oid)


def test_transient_salesforce_lock_on_write_back_succeeds_on_retry(dagbag, env):
    oid = env.take("Activated")
    env.approve(oid)
    env.fault("salesforce", "unable_to_lock_row", "collections", count=1)
    dr, states, tries = run(dagbag, oid)
    assert dr.state == "success", states
    assert tries["write_back"] == 2
    assert_activated(env, oid)


def test_retries_exhausted_fail_with_whmcs_unavailable(dagbag, env):
    oid = env.take("Activated")
    env.approve(oid)
    env.fault("whmcs", "http_503", "GetPayMethods", count=None)
    dr, states, tries = run(dagbag, oid)
    assert dr.state == "failed"
    assert states["check_payment_method"] == "failed" and tries["check_payment_method"] == 3
    assert_failed(env, oid, ErrorCode.WHMCS_UNAVAILABLE)


# ------------------------------------------------------------------------- exactly once


def test_commit_then_drop_on_addorder_is_recovered_by_find_before_create(dagbag, env):
    oid = env.take("Activated")
    env.approve(oid)
    env.fault("whmcs", "commit_then_drop", "AddOrder", count=1)
    dr, states, tries = run(dagbag, oid)
    assert dr.state == "success", states
    # The answer was lost after WHMCS committed: the same try finds the order by its marker (settle window).
    assert tries["find_or_create_whmcs_order"] == 1
    assert_activated(env, oid)


def test_duplicate_run_and_manual_retrigger_of_activated_order_create_nothing(dagbag, env):
    oid = env.take("Activated")
    env.approve(oid)
    run(dagbag, oid, source="event", idem_key=f"{oid}:1")
    first = assert_activated(env, oid)
    sf_before = env.stats("salesforce")
    for source in ("event", "manual"):
        dr, states, _ = run(dagbag, oid, source=source)
        assert states["load_order"] == "skipped" and states["write_back"] == "skipped", states
    sf_after = env.stats("salesforce")
    assert assert_activated(env, oid)["WHMCS_Order_ID__c"] == first["WHMCS_Order_ID__c"]
    writes = ("collections", "sobject_patch")
    assert sum(sf_after["rest"].get(w, 0) - sf_before["rest"].get(w, 0) for w in writes) == 0


def test_cleared_task_rerun_after_success_finds_the_same_order(dagbag, env):
    """Clearing find_or_create_whmcs_order (with downstream) after success re-runs those task bodies
    with the XCom they had: the snapshot taken while the order was Activating."""
    from orderflow.provisioning import steps, tasks

    oid = env.take("Activated")
    env.approve(oid)
    snapshot = steps.load_order(env.sf, oid).to_dict()  # what load_order put in XCom
    run(dagbag, oid)
    order = assert_activated(env, oid)

    ref = tasks.find_or_create_order(snapshot, "banktransfer")
    accepted = tasks.accept_order(ref)
    tasks.write_back(snapshot, accepted)
    assert ref["created"] is False and ref["order_id"] == order["WHMCS_Order_ID__c"]
    assert accepted["status"] == "Active"
    assert assert_activated(env, oid)["WHMCS_Order_ID__c"] == order["WHMCS_Order_ID__c"]


def test_worker_lost_between_addorder_and_write_back_converges_on_next_run(dagbag, env):
    """The crash window: WHMCS has the order, Salesforce was never told.

    A killed worker leaves exactly this state behind; here the write-back is made to fail
    (Salesforce refuses every collection call) so the run stops after AddOrder/AcceptOrder.
    The next run (ops re-approve, or the sweep) must find the order instead of adding one.
    """
    oid = env.take("Activated")
    env.approve(oid)
    env.fault("salesforce", "http_503", "collections", count=None)
    dr, states, _ = run(dagbag, oid)
    assert states["accept_whmcs_order"] == "success" and states["write_back"] == "failed"
    assert len(env.whmcs_orders_for(oid)) == 1
    env.clear_faults()
    # The failure callback marks the Order Failed (its PATCH is not a collection call).
    assert_failed(env, oid, ErrorCode.SALESFORCE_UNAVAILABLE)
    env.approve(oid, status="Reactivate")  # the Flow puts it back to Activating, as ops would after the outage
    dr, states, _ = run(dagbag, oid, source="sweep")
    assert dr.state == "success", states
    assert_activated(env, oid)


# ------------------------------------------------------------------------- guard and params


def test_order_not_activating_is_skipped_without_salesforce_write(dagbag, env):
    oid = env.take("Activated")  # seeded in Pending Review, never approved
    sf_before = env.stats("salesforce")
    dr, states, _ = run(dagbag, oid)
    sf_after = env.stats("salesforce")
    assert states["load_order"] == "skipped"
    assert all(s == "skipped" for t, s in states.items() if t != "load_order"), states
    assert sf_after["rest_total"] - sf_before["rest_total"] == 1  # the one query, no write
    assert env.order(oid)["Activation_Status__c"] is None


@pytest.mark.parametrize("bad", ["001000000000001AAA", "801", "801000000000001AA'", "x" * 18])
def test_invalid_order_id_is_refused_when_the_run_is_created(dagbag, bad):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="order_id"):
        dagbag.dags["provision_order"].test(run_conf={"order_id": bad}, logical_date=None)


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_concurrent_runs_for_one_order_create_one_whmcs_order(env, monkeypatch, backend):
    """Two runs overlap in find_or_create (an event run and a manual trigger, say) while AddOrder is
    slow: the per-order lock makes the second wait and find the first one's order by its note."""
    import threading

    from orderflow.provisioning import steps, tasks

    if backend == "redis":  # the Celery shape: workers on several hosts share Redis
        monkeypatch.setenv("ORDERFLOW_LOCK_URL", "redis://127.0.0.1:6379/9")
    oid = env.take("Activated")
    env.approve(oid)
    snapshot = steps.load_order(env.sf, oid).to_dict()
    env.fault("whmcs", "latency", "AddOrder", count=1, latency_ms=1500)
    results, errors = [], []

    def provision():
        try:
            results.append(tasks.find_or_create_order(snapshot, "banktransfer"))
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=provision) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(r["created"] for r in results) == [False, True]
    assert len({r["order_id"] for r in results}) == 1
    assert len(env.whmcs_orders_for(oid)) == 1
