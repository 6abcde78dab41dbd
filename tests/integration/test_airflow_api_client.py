"""Starting provision_order runs through Airflow's REST API: a real API server on the test metadata DB.

What the sensor, the sweep and reconciliation rely on: one call starts a whole batch; a run id that
exists is reported as existing, never started twice; a conf the DAG's params refuse is refused with
Airflow's message and does not hold back the rest of the batch; transient answers are retried; the
password and the token never reach the log.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orderflow.airflow_api.client import AirflowApiClient, AirflowApiError
from orderflow.provision_runs import RunsNotStarted, start_provision_runs

ORDER_A, ORDER_B = "801000000000001AAA", "801000000000002AAA"
RUNS_USER, RUNS_PASSWORD = "someone", "some-password"  # for the servers that are not Airflow


def _credentials() -> tuple[str, str]:
    """The user the airflow_api_server fixture made (from the connection it exported)."""
    conn = json.loads(os.environ["AIRFLOW_CONN_ORDERFLOW_AIRFLOW_API"])
    return conn["login"], conn["password"]


def _spec(order_id: str, tag: str) -> dict:
    return {"trigger_run_id": f"order__{order_id}__test-{tag}",
            "conf": {"order_id": order_id, "idem_key": None, "source": "event"}}


def _runs(run_ids: list[str]) -> dict[str, dict]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(DagRun).filter(DagRun.dag_id == "provision_order", DagRun.run_id.in_(run_ids)).all()
        return {r.run_id: {"conf": r.conf, "logical_date": r.logical_date, "state": str(r.state)} for r in rows}


@pytest.fixture
def client(airflow_api_server: str) -> AirflowApiClient:
    return AirflowApiClient(airflow_api_server, *_credentials(), retry_for=5)


def test_one_call_starts_the_batch_and_a_second_call_starts_nothing(client: AirflowApiClient, caplog):
    tag = uuid.uuid4().hex[:8]
    specs = [_spec(ORDER_A, tag), _spec(ORDER_B, tag)]
    with caplog.at_level(logging.DEBUG):
        first = client.start_runs("provision_order", specs)
        again = client.start_runs("provision_order", specs)

    ids = [s["trigger_run_id"] for s in specs]
    assert sorted(first.started) == sorted(ids) and first.existing == () and first.ok
    assert again.started == () and sorted(again.existing) == sorted(ids) and again.ok
    runs = _runs(ids)
    assert {rid: r["conf"]["order_id"] for rid, r in runs.items()} == {ids[0]: ORDER_A, ids[1]: ORDER_B}
    assert all(r["logical_date"] is None and r["state"] == "queued" for r in runs.values())
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert _credentials()[1] not in logged and client.token() not in logged


def test_a_refused_conf_names_the_field_and_the_rest_of_the_batch_still_starts(client: AirflowApiClient):
    tag = uuid.uuid4().hex[:8]
    bad = {"trigger_run_id": f"order__bad__test-{tag}", "conf": {"order_id": "not-an-order", "source": "event"}}
    good = _spec(ORDER_A, tag)

    report = client.start_runs("provision_order", [bad, good])

    assert report.started == (good["trigger_run_id"],) and not report.ok
    ((run_id, message),) = report.refused
    assert run_id == bad["trigger_run_id"] and "HTTP 400" in message and "order_id" in message
    with pytest.raises(RunsNotStarted, match="1 refused"):
        start_provision_runs([bad], client)


def test_a_wrong_password_is_a_permanent_error_without_the_password(airflow_api_server: str):
    wrong = "definitely-not-the-password"
    client = AirflowApiClient(airflow_api_server, _credentials()[0], wrong)
    with pytest.raises(AirflowApiError) as err:
        client.start_runs("provision_order", [_spec(ORDER_A, uuid.uuid4().hex[:8])])
    assert err.value.transient is False and err.value.status == 401
    assert wrong not in str(err.value)


def test_an_unreachable_api_server_is_retried_then_reported_not_started():
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = AirflowApiClient(f"http://127.0.0.1:{port}", RUNS_USER, RUNS_PASSWORD, retry_for=1, timeout=1)
    with pytest.raises(AirflowApiError) as err:  # the login itself cannot happen
        client.start_runs("provision_order", [_spec(ORDER_A, "x")])
    assert err.value.transient is True and "unreachable" in str(err.value)


class _FlakyAirflow(BaseHTTPRequestHandler):
    """Answers like Airflow on SQLite under a burst: HTTP 500 "Database error" twice, then the run.

    A stub, because the real API server cannot be made to lose SQLite's write lock on demand; the
    answer bodies are the ones Airflow 3.3.2 gives.
    """

    calls: list[str] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).calls.append(self.path)
        if self.path == "/auth/token":
            return self._answer(201, {"access_token": "stub-token-0123456789"})
        if len([c for c in type(self).calls if c != "/auth/token"]) <= 2:
            return self._answer(500, {"detail": {"reason": "Database error", "statement": None}})
        return self._answer(200, {"dag_run_id": "x", "state": "queued"})


def test_sqlite_database_errors_are_retried_until_the_run_starts():
    _FlakyAirflow.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyAirflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = AirflowApiClient(f"http://127.0.0.1:{server.server_port}", RUNS_USER, RUNS_PASSWORD,
                                  retry_for=10, sleep=lambda _s: None)
        report = client.start_runs("provision_order", [_spec(ORDER_A, "flaky")])
    finally:
        server.shutdown()
    assert report.started == (f"order__{ORDER_A}__test-flaky",) and report.retried == 2 and report.ok
