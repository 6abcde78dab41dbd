"""Hostile trigger params through a live Airflow 3.3.2: the REST API (``POST /api/v2/dags/{dag_id}/dagRuns``)
and the CLI (``airflow dags trigger --conf``).

What Airflow really does (airflow/api_fastapi/core_api/routes/public/dag_run.py, ``trigger_dag_run``):
the endpoint calls ``dag.create_dagrun``, which merges the conf into the DAG's Params and validates them
(``ParamValidationError`` -> HTTP 400 with the message "Invalid input for param <name>: ..."). The CLI goes
through ``airflow.api.common.trigger_dag`` to the same ``create_dagrun``. So a refused conf never becomes a
run: nothing is queued, nothing reaches Salesforce. Values the schema cannot judge (an 18-char id with a
wrong case-safe suffix, ``2.0`` for an integer) are accepted here and refused by the DAG's first task, before
any call (tests/unit/test_hostile_params.py).

An API server of its own on port 8090, over a fresh SQLite metadata DB; no scheduler, so accepted runs stay
queued and nothing runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
PORT = 8090
BASE = f"http://localhost:{PORT}"
GOOD_18 = "801000000000001AAA"
GOOD_15 = GOOD_18[:15]

# (dag_id, conf, the field the 400 must name, the problem it must state)
REFUSED = [
    pytest.param("provision_order", {"order_id": "801' OR Name != '"}, "order_id", "does not match", id="soql-quote"),
    pytest.param("provision_order", {"order_id": "801000000000001'; DELETE"}, "order_id", "does not match",
                 id="soql-semicolon"),
    pytest.param("provision_order", {"order_id": '801000000000001"AA'}, "order_id", "does not match",
                 id="double-quote"),
    pytest.param("provision_order", {"order_id": "80100000000000\u043eAAA"}, "order_id", "does not match",
                 id="cyrillic-o"),
    pytest.param("provision_order", {"order_id": "80100000000000\uff11AAA"}, "order_id", "does not match",
                 id="fullwidth-digit"),
    pytest.param("provision_order", {"order_id": f" {GOOD_18} "}, "order_id", "does not match", id="spaces"),
    pytest.param("provision_order", {"order_id": f"{GOOD_18}\n"}, "order_id", "does not match",
                 id="trailing-newline"),
    pytest.param("provision_order", {"order_id": "001000000000001AAA"}, "order_id", "does not match",
                 id="account-prefix"),
    pytest.param("provision_order", {"order_id": "80100000000001"}, "order_id", "does not match", id="14-chars"),
    pytest.param("provision_order", {"order_id": "801" + "A" * 20_000}, "order_id", "does not match",
                 id="oversized"),
    pytest.param("provision_order", {"order_id": 801000000000001}, "order_id", "is not of type", id="int"),
    pytest.param("provision_order", {"order_id": [GOOD_18]}, "order_id", "is not of type", id="list"),
    pytest.param("provision_order", {"order_id": None}, "order_id", "is not of type", id="null"),
    pytest.param("provision_order", {"order_id": GOOD_18, "idem_key": "k" * 81}, "idem_key", "is too long",
                 id="idem-key-81"),
    pytest.param("provision_order", {"order_id": GOOD_18, "source": "cron"}, "source", "is not one of",
                 id="source"),
    pytest.param("reconcile_orders", {"order_id": "801' OR Name != '"}, "order_id", "does not match",
                 id="reconcile-soql-quote"),
    pytest.param("reconcile_orders", {"order_id": "80100000000000\u043eAAA"}, "order_id", "does not match",
                 id="reconcile-cyrillic-o"),
    pytest.param("reconcile_orders", {"order_id": 801000000000001}, "order_id", "is not of type",
                 id="reconcile-order-id-int"),
    pytest.param("reconcile_orders", {"lookback_days": "30"}, "lookback_days", "is not of type",
                 id="reconcile-lookback-string"),
    pytest.param("reconcile_orders", {"lookback_days": -1}, "lookback_days", "less than the minimum",
                 id="reconcile-lookback-negative"),
    pytest.param("reconcile_orders", {"dry_run": "yes"}, "dry_run", "is not of type", id="reconcile-dry-run"),
    pytest.param("reconcile_orders", {"max_repairs": [500]}, "max_repairs", "is not of type",
                 id="reconcile-max-repairs-list"),
]

ACCEPTED = [
    pytest.param("provision_order", {"order_id": GOOD_18}, id="18-chars"),
    pytest.param("provision_order", {"order_id": GOOD_15, "source": "manual"}, id="15-chars"),
    # The pattern cannot check the checksum; load_order refuses it for good and marks nothing Failed.
    pytest.param("provision_order", {"order_id": GOOD_15 + "ABC"}, id="wrong-suffix-left-to-the-first-task"),
    # JSON Schema counts 2.0 as an integer; validate_params (the first task) refuses it.
    pytest.param("reconcile_orders", {"lookback_days": 2.0, "dry_run": True}, id="lookback-2.0-left-to-the-task"),
]

# The CLI takes the same path; a sample of the table keeps this file within its time budget.
CLI_ROWS = ["soql-quote", "cyrillic-o", "trailing-newline", "null", "reconcile-lookback-string"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ORDERFLOW_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__API__PORT=str(PORT),
        AIRFLOW__API_AUTH__JWT_SECRET="orderflow-hostile-params-test",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{BASE}/execution/",
        PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}",
    )
    return env


def _airflow(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(["airflow", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", PORT)) == 0:
            pytest.fail(f"port {PORT} is taken; this test starts its own API server there")
    home = tmp_path_factory.mktemp("airflow-hostile")
    env = _env(home)
    for args in (("db", "migrate"), ("dags", "reserialize")):
        done = _airflow(env, *args)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    log = (home / "api-server.log").open("w")
    proc = subprocess.Popen(["airflow", "api-server", "--port", str(PORT)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _healthy():
            assert proc.poll() is None and time.monotonic() < deadline, (
                "the API server did not come up: " + (home / "api-server.log").read_text()[-3000:])
            time.sleep(1)
        token = requests.get(f"{BASE}/auth/token", timeout=10).json()["access_token"]
        yield {"env": env, "headers": {"Authorization": f"Bearer {token}"}}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def _healthy() -> bool:
    with contextlib.suppress(requests.RequestException):
        return requests.get(f"{BASE}/api/v2/monitor/health", timeout=2).ok
    return False


def _runs(airflow: dict, dag_id: str) -> list[dict]:
    resp = requests.get(f"{BASE}/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100}, headers=airflow["headers"],
                        timeout=30)
    resp.raise_for_status()
    return resp.json()["dag_runs"]


def _trigger(airflow: dict, dag_id: str, conf: dict) -> requests.Response:
    return requests.post(f"{BASE}/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf},
                         headers=airflow["headers"], timeout=60)


@pytest.mark.parametrize("dag_id, conf, field, problem", REFUSED)
def test_rest_api_refuses_hostile_conf_with_400_naming_the_field_and_creates_no_run(airflow, dag_id, conf, field,
                                                                                   problem):
    before = len(_runs(airflow, dag_id))
    resp = _trigger(airflow, dag_id, conf)
    assert resp.status_code == 400, resp.text[:500]
    detail = resp.json()["detail"]
    assert detail.startswith(f"Invalid input for param {field}:") and problem in detail, detail[:500]
    assert len(_runs(airflow, dag_id)) == before, "a refused conf must not leave a run behind"


@pytest.mark.parametrize("dag_id, conf", ACCEPTED)
def test_rest_api_accepts_what_the_schema_allows_and_the_run_waits_queued(airflow, dag_id, conf):
    resp = _trigger(airflow, dag_id, conf)
    assert resp.status_code == 200, resp.text[:500]
    run = resp.json()
    assert run["conf"] == conf and run["state"] == "queued"
    assert any(r["dag_run_id"] == run["dag_run_id"] for r in _runs(airflow, dag_id))


@pytest.mark.parametrize("dag_id, conf, field, problem", [p for p in REFUSED if p.id in CLI_ROWS])
def test_cli_trigger_refuses_hostile_conf_naming_the_field_and_creates_no_run(airflow, dag_id, conf, field, problem):
    before = len(_runs(airflow, dag_id))
    done = _airflow(airflow["env"], "dags", "trigger", dag_id, "--conf", json.dumps(conf))
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-1500:]
    # Airflow's CLI shows the exception with its traceback; the error line names the field and the problem.
    assert f"ParamValidationError: Invalid input for param {field}:" in out and problem in out, out[-1500:]
    assert len(_runs(airflow, dag_id)) == before
