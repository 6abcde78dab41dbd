"""What a support agent does in the browser: log in, find the DAGs, trigger one order by hand, look
an order up in the Orders view, read the drift report; and what an anonymous visitor gets."""

from __future__ import annotations

import re
import time

import requests
from conftest import BASE, login

FAILED_CODE = "PAYMENT_METHOD_MISSING"


def open_nav(page, name: str) -> None:
    page.get_by_test_id("nav-sidebar").get_by_role("link", name=name, exact=True).click()


def dismiss_toasts(page) -> None:
    """Move the pointer off the UI's toasts (hovering pauses them) and let them go."""
    page.mouse.move(5, 5)
    page.locator("[data-scope=toast][data-part=root]").first.wait_for(state="detached", timeout=20_000)


def console_frame(page):
    return page.frame_locator("iframe[src*='/orderflow/']")


def test_login_lands_in_airflow_with_the_console_in_the_nav(browser, demo, shots):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    try:
        login(page)
        sidebar = page.get_by_test_id("nav-sidebar")
        sidebar.get_by_role("link", name="Orders", exact=True).wait_for()
        sidebar.get_by_role("link", name="Drift report", exact=True).wait_for()
        page.screenshot(path=shots / "01-logged-in.png")
    finally:
        context.close()


def test_dag_list_shows_the_three_dags(page, shots):
    page.goto(f"{BASE}/dags")
    for dag_id in ("order_event_sensor", "provision_order", "reconcile_orders"):
        page.get_by_role("link", name=dag_id, exact=True).first.wait_for()
    page.screenshot(path=shots / "02-dag-list.png")


def test_trigger_form_refuses_a_bad_order_id_and_accepts_a_good_one(page, demo, shots):
    order_id = demo.order_with("Activated")
    before = len(demo.runs_for(order_id))
    page.goto(f"{BASE}/dags/provision_order")
    page.get_by_role("button", name=re.compile("^Trigger")).first.click()
    dialog = page.locator("[role=dialog][data-state=open]")
    page.locator("#element_order_id").fill("not-an-order-id")
    page.get_by_test_id("trigger-dag-submit").click()
    dialog.get_by_text(re.compile(r"Invalid input for param order_id")).wait_for()
    page.screenshot(path=shots / "03-trigger-refused.png")
    assert len(demo.runs_for(order_id)) == before

    dismiss_toasts(page)
    page.locator("#element_order_id").fill(order_id)
    page.get_by_test_id("trigger-dag-submit").click()
    dialog.wait_for(state="hidden")
    deadline = time.monotonic() + 60
    while len(demo.runs_for(order_id)) == before and time.monotonic() < deadline:
        time.sleep(1)
    runs = demo.runs_for(order_id)
    assert len(runs) == before + 1, runs
    page.goto(f"{BASE}/dags/provision_order/runs")
    page.get_by_text(runs[0]["dag_run_id"]).first.wait_for()
    page.screenshot(path=shots / "04-trigger-accepted.png")


def test_orders_view_finds_a_provisioned_order_and_links_to_its_run(page, demo, shots):
    order_id = demo.order_with("Activated")
    open_nav(page, "Orders")
    frame = console_frame(page)
    frame.locator("#q").fill(order_id)
    frame.get_by_role("button", name="Find").click()
    assert frame.locator("#activation-status").inner_text() == "Activated"
    assert frame.locator(".whmcs-order").first.inner_text().count("Active") >= 1
    frame.locator("#runs").wait_for()
    page.screenshot(path=shots / "05-orders-activated.png", full_page=True)

    event_run = frame.locator("tr.run", has_text="order__").first
    run_id = event_run.get_attribute("data-run-id")
    event_run.locator("a.grid-link").click()  # the whole UI moves to the run, not the iframe
    page.wait_for_url(re.compile(r"/dags/provision_order/runs/order__"))
    assert requests.utils.unquote(page.url).endswith(run_id)
    page.get_by_text("load_order").first.wait_for()
    page.screenshot(path=shots / "06-run-opened-from-orders.png")


def test_orders_view_shows_a_failed_order_with_its_code_and_next_step(page, demo, shots):
    order_id = demo.order_with(FAILED_CODE)
    open_nav(page, "Orders")
    frame = console_frame(page)
    frame.locator(f"section[data-code='{FAILED_CODE}']").wait_for()
    page.screenshot(path=shots / "07-orders-failed-last-7-days.png", full_page=True)
    frame.locator("#q").fill(order_id)
    frame.get_by_role("button", name="Find").click()
    assert frame.locator("#error-code").inner_text() == FAILED_CODE
    assert "pay method" in frame.locator("#next-step").inner_text()
    assert "check_payment_method" in frame.locator("#runs").inner_text()
    page.screenshot(path=shots / "08-orders-failed-order.png", full_page=True)


def test_bad_query_gets_a_message_next_to_the_search_field(page, shots):
    open_nav(page, "Orders")
    frame = console_frame(page)
    frame.locator("#q").fill("' OR Id != '")
    frame.get_by_role("button", name="Find").click()
    assert frame.locator("#q-error").inner_text().startswith("q must be")
    page.screenshot(path=shots / "09-orders-bad-query.png")


def test_drift_report_renders_its_chart(page, demo, shots):
    open_nav(page, "Drift report")
    frame = console_frame(page)
    assert demo.reconcile_run_id in frame.locator("h1").inner_text()
    report = frame.frame_locator("iframe#report")
    bars = report.locator(".chart .bar")
    bars.first.wait_for(state="attached")
    widths = [b["width"] for b in (bars.nth(i).bounding_box() or {"width": 0} for i in range(bars.count()))]
    assert any(w > 0 for w in widths), widths
    frame.locator("#report-runs").wait_for()
    page.screenshot(path=shots / "10-drift-report.png", full_page=True)


def test_anonymous_visitors_are_refused(browser, demo, shots):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        api = context.request.get(f"{BASE}/orderflow/api/orders/{demo.order_with('Activated')}")
        assert api.status == 401
        page = context.new_page()
        page.goto(f"{BASE}/orderflow/orders")
        page.wait_for_url("**/auth/login**")
        page.screenshot(path=shots / "11-anonymous-sent-to-login.png")
    finally:
        context.close()
