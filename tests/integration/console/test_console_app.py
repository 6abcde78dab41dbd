"""The ops console mounted in Airflow's API app: auth, the Orders view and the drift report view.

Orders come from real provision_order runs against the sandbox (conftest). The reconciliation
report folder here is WRITTEN BY THIS TEST in the layout reconcile_orders uses
(``reconcile/<run id>/drift.csv, summary.json, report.html``), so the view is tested on its own;
the UI tests (tests/ui) read reports the real DAG wrote.
"""

from __future__ import annotations

import csv
import json

import pytest

from orderflow.console.runbook import next_step, runbook_steps
from orderflow.errors import ErrorCode

pytestmark = pytest.mark.timeout(600)


def _write_report(root, run_id: str, rows: list[dict], counts: dict[str, int]) -> None:
    """A report folder in reconcile_orders' layout (test-written, see module docstring)."""
    folder = root / "reconcile" / run_id
    folder.mkdir(parents=True)
    with (folder / "drift.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["sf_order_id", "whmcs_order_id", "category", "severity", "detail", "repaired"])
        writer.writeheader()
        writer.writerows(rows)
    (folder / "summary.json").write_text(json.dumps({"counts": counts}))
    (folder / "report.html").write_text(f"<html><body><h1>Report {run_id}</h1><svg id='chart'></svg></body></html>")


# ------------------------------------------------------------------------------ security


@pytest.mark.parametrize("path", ["/orderflow/orders", "/orderflow/api/orders/801000000000001AAA",
                                  "/orderflow/reports/latest", "/orderflow/api/reports", "/orderflow/api/orders"])
def test_given_no_credentials_when_calling_any_route_then_401(console_env, path):
    resp = console_env.get(path, user=None)
    assert resp.status_code == 401
    assert "Salesforce" not in resp.text


def test_given_a_browser_without_login_when_opening_orders_then_redirected_to_airflow_login(console_env):
    resp = console_env.get("/orderflow/orders?q=123", user=None, headers={"Accept": "text/html"})
    assert resp.status_code == 303
    assert resp.headers["location"].startswith("/api/v2/auth/login?next=")
    assert "%2Forderflow%2Forders%3Fq%3D123" in resp.headers["location"]


def test_given_a_forged_token_then_refused(console_env):
    resp = console_env.client.get("/orderflow/api/orders", headers={"Authorization": "Bearer not.a.jwt"})
    assert resp.status_code in (401, 403)
    resp = console_env.client.get("/orderflow/orders", cookies={"_token": "forged"},
                                  headers={"Accept": "text/html"}, follow_redirects=False)
    assert resp.status_code in (303, 401, 403)
    assert "Failed in the last" not in resp.text


def test_given_the_ui_cookie_then_the_page_is_served(console_env):
    """The Airflow UI authenticates with the ``_token`` cookie; the iframe sends the same cookie."""
    token = console_env.token()
    console_env.client.cookies.set("_token", token)
    try:
        resp = console_env.client.get("/orderflow/orders", headers={"Accept": "text/html"}, follow_redirects=False)
    finally:
        console_env.client.cookies.clear()
    assert resp.status_code == 200, resp.text
    assert "Failed in the last 7 days" in resp.text


def test_a_viewer_can_read_and_routes_are_read_only(console_env):
    assert console_env.get("/orderflow/api/orders", user="viewer").status_code == 200
    token = console_env.token()
    for method in ("post", "put", "patch", "delete"):
        resp = getattr(console_env.client, method)(f"/orderflow/api/orders/{console_env.activated}",
                                                   headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 405, (method, resp.status_code)


def test_plugin_registers_the_views_in_airflow(console_env):
    resp = console_env.get("/api/v2/plugins")
    assert resp.status_code == 200
    plugin = next(p for p in resp.json()["plugins"] if p["name"] == "orderflow_console")
    assert {v["href"] for v in plugin["external_views"]} == {"/orderflow/orders", "/orderflow/reports/latest"}
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/orderflow"]


# ------------------------------------------------------------------------------ Orders


def test_activated_order_shows_both_systems_and_its_run(console_env):
    resp = console_env.get(f"/orderflow/api/orders/{console_env.activated}")
    assert resp.status_code == 200, resp.text
    data = resp.json()
    sf = data["salesforce"]
    assert sf["id"] == console_env.activated and sf["activation_status"] == "Activated"
    assert sf["whmcs_order_id"] and sf["error_code"] is None
    assert sf["items"] and all(i["whmcs_service_id"] and i["whmcs_service_status"] == "Active" for i in sf["items"])
    [wh] = data["whmcs_orders"]
    assert wh["id"] == sf["whmcs_order_id"] and wh["status"] == "Active"
    assert sorted(s["id"] for s in wh["services"]) == sorted(i["whmcs_service_id"] for i in sf["items"])
    event_run, run = data["runs"]  # newest first
    assert (event_run["run_id"], event_run["state"], event_run["source"]) == (
        f"order__{console_env.activated}__idem-2", "queued", "event")
    assert run["state"] == "success" and run["source"] == "manual" and run["start_date"] and run["end_date"]
    assert run["grid_url"] == f"/dags/provision_order/runs/{run['run_id'].replace(':', '%3A').replace('+', '%2B')}"
    assert data["next_step"] is None and data["problems"] == []


def test_failed_order_shows_code_message_next_step_and_failed_task_log(console_env):
    data = console_env.get(f"/orderflow/api/orders/{console_env.failed}").json()
    sf = data["salesforce"]
    assert sf["activation_status"] == "Failed" and sf["error_code"] == console_env.failed_code
    assert sf["error_message"]
    assert data["next_step"] == next_step(console_env.failed_code) != "See the Runbook (ops) section of the README."
    assert data["whmcs_orders"] == []
    [run] = data["runs"]
    assert run["state"] == "failed"
    assert [t["task_id"] for t in run["failed_tasks"]] == ["check_payment_method"]
    assert run["logs_url"].endswith("/tasks/check_payment_method")


def test_order_found_by_order_number_and_by_whmcs_id(console_env):
    by_id = console_env.get(f"/orderflow/api/orders/{console_env.activated}").json()["salesforce"]
    by_number = console_env.get(f"/orderflow/api/orders/{by_id['order_number']}").json()
    by_whmcs = console_env.get(f"/orderflow/api/orders/{by_id['whmcs_order_id']}")
    # A WHMCS id can equal another order's number: then both are offered.
    if by_whmcs.status_code == 409:
        assert console_env.activated in by_whmcs.json()["matches"]
    else:
        assert by_whmcs.json()["salesforce"]["id"] == console_env.activated
    assert by_number["salesforce"]["id"] == console_env.activated or console_env.activated in by_number.get("matches", [])
    # the 15-character form names the same order
    assert console_env.get(f"/orderflow/api/orders/{console_env.activated[:15]}").json()["salesforce"]["id"] \
        == console_env.activated


def test_order_page_html_has_states_links_and_no_secrets(console_env):
    resp = console_env.get(f"/orderflow/orders?q={console_env.failed}")
    assert resp.status_code == 200
    page = resp.text
    assert console_env.failed_code in page and 'id="next-step"' in page
    assert 'href="/dags/provision_order/runs/' in page and 'target="_top"' in page
    assert "/tasks/check_payment_method" in page
    assert resp.headers["content-security-policy"].startswith("default-src 'none'")
    for secret in (console_env.endpoints["whmcs"]["secret"], console_env.token()):
        assert secret not in page


@pytest.mark.parametrize("bad", ["' OR Id != '", "001000000000001AAA", "801abc", "x" * 50, "801000000000001AA'"])
def test_invalid_query_is_refused_naming_the_field_before_any_soql(console_env, bad):
    from orderflow_sandbox.connections import salesforce_client  # noqa: F401  (sandbox is up)

    html = console_env.get("/orderflow/orders", params={"q": bad})
    assert html.status_code == 400
    assert 'id="q-error"' in html.text and "q " in html.text
    api = console_env.get(f"/orderflow/api/orders/{bad}")
    assert api.status_code in (400, 404)  # a path with a quote may not even route
    if api.status_code == 400:
        assert api.json()["detail"].startswith("order_id ")


def test_unknown_order_is_a_404_with_the_field_named(console_env):
    resp = console_env.get("/orderflow/orders", params={"q": "99999999"})
    assert resp.status_code == 404 and "q: no Salesforce Order matches" in resp.text


def test_without_q_failed_orders_are_grouped_by_code_with_the_runbook_step(console_env):
    data = console_env.get("/orderflow/api/orders").json()
    groups = {g["code"]: g for g in data["groups"]}
    assert console_env.failed_code in groups
    group = groups[console_env.failed_code]
    assert console_env.failed in [o["id"] for o in group["orders"]]
    assert group["next_step"] == runbook_steps()[console_env.failed_code]
    assert console_env.activated not in [o["id"] for g in data["groups"] for o in g["orders"]]
    html = console_env.get("/orderflow/orders").text
    assert f'data-code="{console_env.failed_code}"' in html


def test_runbook_table_gives_every_error_code_a_step():
    steps = runbook_steps()
    assert {c.value for c in ErrorCode} <= set(steps)
    assert "Reactivate" in steps[ErrorCode.CLIENT_MAPPING_MISSING.value]


# ------------------------------------------------------------------------------ drift report


@pytest.fixture
def reports_at(console_env, tmp_path, monkeypatch):
    """Point the console (read per request) at a fresh reports base."""
    monkeypatch.setenv("ORDERFLOW_REPORTS_URL", str(tmp_path))
    return tmp_path


def _write_report(base, run_id: str, generated_at: str, rows: list[dict], counts: dict[str, int]) -> str:
    """A report folder in reconcile_orders' layout, written by this test (see module docstring)."""
    from orderflow.reconcile.tasks import run_folder

    folder = run_folder(run_id, base=f"file://{base}")
    folder.mkdir(parents=True)
    with (folder / "drift.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["sf_order_id", "whmcs_order_id", "category", "severity", "detail", "repaired"])
        writer.writeheader()
        writer.writerows(rows)
    (folder / "summary.json").write_text(json.dumps({"run_id": run_id, "generated_at": generated_at,
                                                      "scope": {"order_id": None, "lookback_days": None},
                                                      "counts": counts}))
    (folder / "report.html").write_text(f"<html><body><h1>Report {run_id}</h1><table class='chart'></table></body></html>")
    return folder.name


def test_reports_latest_without_reports(reports_at, console_env):
    resp = console_env.get("/orderflow/reports/latest")
    assert resp.status_code == 404 and 'id="no-report"' in resp.text
    data = console_env.get(f"/orderflow/api/orders/{console_env.activated}").json()
    assert data["reconciliation"] is None


def test_reports_latest_shows_the_newest_and_links_earlier_runs(reports_at, console_env):
    old = _write_report(reports_at, "manual__2026-12-01T02:00:00+00:00", "2026-12-01T02:03:00+00:00", [],
                        {"IN_SYNC": 10})
    new = _write_report(reports_at, "scheduled__2026-12-03T02:00:00+00:00", "2026-12-03T02:04:00+00:00",
                        [{"sf_order_id": console_env.failed, "whmcs_order_id": "", "category": "PAYMENT_RECOVERED",
                          "severity": "low", "detail": "client has a pay method now", "repaired": "yes"}],
                        {"IN_SYNC": 9, "PAYMENT_RECOVERED": 1})
    from urllib.parse import quote

    page = console_env.get("/orderflow/reports/latest")
    assert page.status_code == 200
    head, table = page.text.split('id="report-runs"')
    assert "scheduled__2026-12-03T02:00:00+00:00" in head
    assert f'src="/orderflow/reports/{quote(new, safe="")}/report.html"' in head
    assert 'href="/dags/reconcile_orders/runs/manual__2026-12-01T02%3A00%3A00%2B00%3A00"' in table
    assert f'href="/orderflow/reports/{quote(old, safe="")}"' in table
    html = console_env.get(f"/orderflow/reports/{quote(new, safe='')}/report.html")
    assert html.status_code == 200 and "class='chart'" in html.text
    assert html.headers["content-security-policy"].startswith("sandbox")
    earlier = console_env.get(f"/orderflow/reports/{quote(old, safe='')}")
    assert earlier.status_code == 200 and "manual__2026-12-01T02:00:00+00:00" in earlier.text.split("<h2>")[0]

    failed = console_env.get(f"/orderflow/api/orders/{console_env.failed}").json()["reconciliation"]
    assert failed["category"] == "PAYMENT_RECOVERED" and failed["run_id"] == "scheduled__2026-12-03T02:00:00+00:00"
    ok = console_env.get(f"/orderflow/api/orders/{console_env.activated}").json()["reconciliation"]
    assert ok["category"] == "IN_SYNC"


@pytest.mark.parametrize("folder", ["..%2F..%2Fetc", "nope", "..", "%2Fetc%2Fpasswd", "reconcile"])
def test_report_paths_cannot_escape_the_report_folder(reports_at, console_env, folder):
    _write_report(reports_at, "manual__x", "2026-12-01T00:00:00+00:00", [], {})
    (reports_at / "secret.html").write_text("secret")
    resp = console_env.get(f"/orderflow/reports/{folder}/report.html")
    assert resp.status_code == 404 and "secret" not in resp.text
