"""Browser tests of the Airflow UI and the ops console against a running demo (``make test-ui``).

The harness starts ``scripts/demo.sh`` (interactive, no background traffic) on port 8095 with its
SMTP sink on 8028, seeds 8 orders with the sandbox CLI, approves them, waits until each settled,
runs one real ``reconcile_orders`` (dry run) so the drift report exists, and drives Debian's
Chromium through Playwright (no browser is downloaded). Each step saves a screenshot under
``build/ui-screenshots/`` (``ORDERFLOW_UI_SCREENSHOTS`` overrides). ``make test`` skips this folder:
it only runs when ``ORDERFLOW_UI_TESTS=1`` (set by ``make test-ui``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
PORT, SMTP_PORT = 8095, 8028
BASE = f"http://localhost:{PORT}"
USER, PASSWORD = "admin", "admin"
CHROMIUM = os.environ.get("ORDERFLOW_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SEED_ORDERS = 8

if os.environ.get("ORDERFLOW_UI_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]  # a running demo and a browser: only under `make test-ui`


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@dataclass
class Demo:
    home: Path
    sandbox_dir: Path
    reports_dir: Path
    expected: dict[str, str]
    reconcile_run_id: str | None
    reconcile_state: str

    def token(self) -> str:
        resp = requests.post(f"{BASE}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=30)
        resp.raise_for_status()
        return resp.json()["access_token"]

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        return requests.request(method, f"{BASE}{path}", headers=headers, timeout=60, **kwargs)

    def order_with(self, outcome: str) -> str:
        return next(o for o, e in sorted(self.expected.items()) if e == outcome)

    def runs_for(self, order_id: str) -> list[dict]:
        runs = self.api("GET", "/api/v2/dags/provision_order/dagRuns", params={"limit": 100}).json()["dag_runs"]
        return [r for r in runs if (r.get("conf") or {}).get("order_id") == order_id]


def _sandbox_cli(sandbox_dir: Path, *args: str) -> str:
    out = subprocess.run([str(REPO / ".venv/bin/orderflow-sandbox"), "--data-dir", str(sandbox_dir), *args],
                         capture_output=True, text=True, timeout=300, check=True)
    return out.stdout


def _wait(what: str, check, timeout: float, log: Path, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


def _settled(sandbox_dir: Path, expected: dict[str, str]) -> bool:
    from orderflow_sandbox.connections import salesforce_client

    sf = salesforce_client(json.loads((sandbox_dir / "endpoints.json").read_text()))
    ids = ",".join(f"'{o}'" for o in expected)
    rows = sf.query(f"SELECT Id, Activation_Status__c FROM Order WHERE Id IN ({ids})")
    return all(r["Activation_Status__c"] in ("Activated", "Failed") for r in rows)


@pytest.fixture(scope="session")
def demo() -> Iterator[Demo]:
    for port in (PORT, SMTP_PORT):
        assert _port_free(port), f"port {port} is taken: stop whatever runs there (an earlier demo?)"
    root = Path(tempfile.mkdtemp(prefix="orderflow-ui-"))
    home, sandbox_dir, reports_dir = root / "airflow", root / "sandbox", root / "reports"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ORDERFLOW_"))}
    env.update(AIRFLOW_PORT=str(PORT), DEMO_SMTP_PORT=str(SMTP_PORT), AIRFLOW_HOME=str(home),
               SANDBOX_DIR=str(sandbox_dir), DEMO_TRAFFIC="off", ORDERFLOW_REPORTS_URL=str(reports_dir),
               PATH=f"{REPO / '.venv' / 'bin'}:{env['PATH']}")
    log = root / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["bash", str(REPO / "scripts/demo.sh")], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait("the demo to come up", lambda: proc.poll() is not None or "demo: running" in log.read_text(), 420, log)
        assert proc.poll() is None, log.read_text()[-3000:]
        _sandbox_cli(sandbox_dir, "seed", "--orders", str(SEED_ORDERS))
        _sandbox_cli(sandbox_dir, "approve", "--all")
        expected = json.loads((sandbox_dir / "seed_expected.json").read_text())
        _wait("every approved order to settle", lambda: _settled(sandbox_dir, expected), 420, log, every=5)
        demo = Demo(home, sandbox_dir, reports_dir, expected, None, "")
        # One real reconciliation, so the drift report view has the DAG's own report to show.
        resp = demo.api("POST", "/api/v2/dags/reconcile_orders/dagRuns",
                        json={"logical_date": None, "conf": {"dry_run": True}})
        assert resp.status_code == 200, resp.text
        demo.reconcile_run_id = resp.json()["dag_run_id"]
        path = f"/api/v2/dags/reconcile_orders/dagRuns/{demo.reconcile_run_id}"
        demo.reconcile_state = _wait(
            "reconcile_orders to finish",
            lambda: (s := demo.api("GET", path).json()["state"]) in ("success", "failed") and s, 420, log, every=5)
        yield demo
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=90)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="session")
def shots() -> Path:
    folder = Path(os.environ.get("ORDERFLOW_UI_SCREENSHOTS") or REPO / "build" / "ui-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def login(page) -> None:
    """Sign in through Airflow's own login page, as a person would."""
    page.goto(f"{BASE}/")
    page.wait_for_url("**/auth/login**")
    page.locator("input[name=username]").fill(USER)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{BASE}/")


@pytest.fixture
def page(browser, demo):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(30_000)
    pg = context.new_page()
    login(pg)
    try:
        yield pg
    finally:
        context.close()
