"""The console inside a real Airflow API server app (plugins folder = the repo's ``plugins/``).

One sandbox for the package, seeded; a happy and a failing order go through real ``provision_order``
runs (``dag.test``) so the Orders view has Salesforce, WHMCS and Airflow state to show. The app is
Airflow's own ``create_app()`` with the simple auth manager, so the console's auth is Airflow's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ADMIN, VIEWER, PASSWORD = "admin", "viewer", "console-test-pw"


@dataclass
class ConsoleEnv:
    client: object  # starlette TestClient on Airflow's app
    endpoints: dict
    activated: str
    failed: str
    failed_code: str
    untouched: str
    reports_dir: Path

    def token(self, user: str = ADMIN) -> str:
        resp = self.client.post("/auth/token", json={"username": user, "password": PASSWORD})
        assert resp.status_code == 201, resp.text
        return resp.json()["access_token"]

    def get(self, path: str, user: str | None = ADMIN, **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if user:
            headers["Authorization"] = f"Bearer {self.token(user)}"
        return self.client.get(path, headers=headers, follow_redirects=False, **kwargs)


def _run(dag, order_id: str) -> str:
    """A real run; its own logical date, because dag.test replaces an earlier run with the same one."""
    from airflow.sdk import timezone

    dr = dag.test(run_conf={"order_id": order_id}, logical_date=timezone.utcnow())
    return dr.state


@pytest.fixture(scope="package")
def console_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleEnv]:
    from orderflow_sandbox.connections import connection_env
    from orderflow_sandbox.salesforce.approve import approve_orders
    from orderflow_sandbox.seed import seed_sandbox
    from orderflow_sandbox.server import Sandbox

    home = Path(os.environ["AIRFLOW_HOME"])
    passwords = home / "console-test-passwords.json"
    passwords.write_text(json.dumps({ADMIN: PASSWORD, VIEWER: PASSWORD}))
    reports_dir = tmp_path_factory.mktemp("reports")
    env = {
        "ORDERFLOW_TASK_RETRIES": "1",
        "ORDERFLOW_RETRY_DELAY_SECONDS": "0.05",
        "ORDERFLOW_MAX_RETRY_DELAY_SECONDS": "0.1",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin,{VIEWER}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": "console-test-jwt-secret-" + "x" * 48,
        "ORDERFLOW_REPORTS_URL": str(reports_dir),
    }
    data_dir = tmp_path_factory.mktemp("console-sandbox")
    sandbox = Sandbox(data_dir)
    endpoints = sandbox.start()
    try:
        summary = seed_sandbox(sandbox.data_dir, orders=16, rng_seed=5)
        env.update(connection_env(endpoints))
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            expected = summary["expected"]
            activated = next(o for o, e in sorted(expected.items()) if e == "Activated")
            failed_code = "PAYMENT_METHOD_MISSING"
            failed = next(o for o, e in sorted(expected.items()) if e == failed_code)
            untouched = next(o for o, e in sorted(expected.items()) if e == "Activated" and o != activated)
            approve_orders(sandbox.data_dir, [activated, failed])

            from airflow.dag_processing.dagbag import DagBag

            dag = DagBag(dag_folder=str(REPO / "dags"), safe_mode=False).dags["provision_order"]
            assert _run(dag, activated) == "success"
            assert _run(dag, failed) == "failed"

            from airflow import plugins_manager
            from airflow.api_fastapi.app import create_app, purge_cached_app
            from fastapi.testclient import TestClient

            for cached in (plugins_manager._get_plugins, plugins_manager.get_fastapi_plugins,
                           plugins_manager._get_ui_plugins):
                cached.cache_clear()
            purge_cached_app()
            client = TestClient(create_app(), base_url="http://localhost")
            console = ConsoleEnv(client, endpoints, activated, failed, failed_code, untouched, reports_dir)
            # A run the way the event sensor names them (stays queued: no scheduler here).
            resp = client.post(
                "/api/v2/dags/provision_order/dagRuns",
                json={"dag_run_id": f"order__{activated}__idem-2", "logical_date": None,
                      "conf": {"order_id": activated, "source": "event"}},
                headers={"Authorization": f"Bearer {console.token()}"},
            )
            assert resp.status_code == 200, resp.text
            yield console
    finally:
        sandbox.stop()
