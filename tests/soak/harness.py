"""What the soak and chaos drivers share: Airflow's REST API seen from outside, figures, the duplicate check.

Both drivers run as scripts next to a system started by ``scripts/demo.sh``; this module knows nothing
about faults or waves, only how to look at Airflow and at the two emulators afterwards.
"""

from __future__ import annotations

import datetime as dt
import statistics
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import requests

from orderflow.order_marker import marked_order_ids
from orderflow_sandbox.connections import whmcs_client
from orderflow_sandbox.demo import AirflowApi

SENSOR_DAG = "order_event_sensor"
PROVISION_DAG = "provision_order"
ROOT = Path(__file__).resolve().parents[2]


def sayer(prefix: str):
    """A ``say(message)`` that prints ``<prefix> [HH:MM:SS]: message`` at once (the drivers' log lines)."""

    def say(message: str) -> None:
        print(f"{prefix} [{time.strftime('%H:%M:%S')}]: {message}", flush=True)

    return say


class Airflow:
    """A driver's view of Airflow: the REST API (tolerant of Airflow being down) and its start/stop."""

    def __init__(self, base_url: str, user: str, password: str) -> None:
        self.base_url, self.user, self.password = base_url, user, password
        deadline = time.monotonic() + 300
        while True:  # a busy 2-core machine: the first /auth/token may time out while Airflow warms up
            try:
                self.api = AirflowApi(base_url, user, password)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(3)

    def get(self, path: str) -> dict | None:
        try:
            resp = self.api._retry("GET", path)
        except requests.RequestException:
            return None
        return resp.json() if resp.status_code == 200 else None

    def send(self, method: str, path: str, attempts: int = 5, **kwargs) -> requests.Response | None:
        """A write through the REST API, retried while the API server times out or is down; None if it never answered."""
        for _ in range(attempts):
            try:
                return self.api._retry(method, path, **kwargs)
            except requests.RequestException:
                time.sleep(3)
        return None

    def ready(self, dag_ids: tuple[str, ...], timeout: float = 300.0) -> None:
        """Wait until Airflow knows each DAG, then unpause it; timeouts of a busy API server are retried."""
        deadline = time.monotonic() + timeout
        for dag_id in dag_ids:
            while self.get(f"/api/v2/dags/{dag_id}") is None:
                if time.monotonic() > deadline:
                    raise SystemExit(f"DAG {dag_id} did not appear in Airflow within {timeout:.0f}s")
                time.sleep(2)
            while True:
                try:
                    self.api.unpause(dag_id)
                    break
                except requests.RequestException:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(2)

    def sensor_phase(self) -> str:
        """waiting (the sensor is deferred) | draining (drain_events queued/running) | between | down."""
        runs = self.get(f"/api/v2/dags/{SENSOR_DAG}/dagRuns?order_by=-id&limit=1")
        if runs is None:
            return "down"
        if not runs["dag_runs"] or runs["dag_runs"][0]["state"] != "running":
            return "between"
        run_id = quote(runs["dag_runs"][0]["dag_run_id"], safe="")
        tis = self.get(f"/api/v2/dags/{SENSOR_DAG}/dagRuns/{run_id}/taskInstances")
        states = {ti["task_id"]: ti["state"] for ti in (tis or {}).get("task_instances", [])}
        if states.get("wait_for_events") == "deferred":
            return "waiting"
        if states.get("drain_events") in ("scheduled", "queued", "running"):
            return "draining"
        return "between"

    def runs(self, dag_id: str) -> list[dict]:
        out: list[dict] = []
        while True:
            page = self.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=100&offset={len(out)}&order_by=id")
            if page is None:
                raise SystemExit(f"could not list the runs of {dag_id}")
            out += page["dag_runs"]
            if not page["dag_runs"] or len(out) >= page["total_entries"]:
                return out

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def wait_healthy(self, timeout: float = 300.0) -> float:
        """Block until the API server answers its health check; the seconds it took."""
        t0 = time.time()
        while not self.healthy():
            if time.time() - t0 > timeout:
                raise SystemExit(f"Airflow did not come back within {timeout:.0f}s")
            time.sleep(1)
        return time.time() - t0

    def components(self, action: str) -> None:
        subprocess.run(["bash", str(ROOT / "scripts" / "airflow-components.sh"), action], check=True)


def aim_at(airflow: Airflow, phase: str, patience: float) -> str:
    """Wait (up to ``patience`` s) until the sensor is in ``phase``; return the phase actually seen."""
    deadline = time.monotonic() + patience
    seen = airflow.sensor_phase()
    while seen != phase and time.monotonic() < deadline:
        time.sleep(0.3)
        seen = airflow.sensor_phase()
    return seen


def epoch(value: str) -> float:
    """Salesforce (``...000+0000``) and Airflow (``...Z``) timestamps as epoch seconds."""
    return dt.datetime.fromisoformat(value).timestamp()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def duplicate_whmcs_orders(endpoints: dict) -> dict[str, list[str]]:
    """sfOrderId -> ids of the live (not Cancelled) WHMCS orders carrying it, where there is more than one."""
    by_marker: dict[str, list[str]] = {}
    with whmcs_client(endpoints) as client:
        for order in client.iter_orders():
            if order.status == "Cancelled":
                continue
            for sf_id in marked_order_ids(order.notes):
                by_marker.setdefault(sf_id, []).append(order.id)
    return {sf_id: ids for sf_id, ids in by_marker.items() if len(ids) > 1}


def say_problems(say, expected: dict[str, str], states: dict[str, dict], lost: list[str], unexpected: list[str],
                 duplicates: dict[str, list[str]]) -> None:
    """One line per lost order, unexpected outcome and duplicated WHMCS order (the soak's and chaos' lists)."""
    for oid in lost:
        say(f"LOST: {oid} (expected {expected[oid]}) is {(states.get(oid) or {}).get('Activation_Status__c')}")
    for oid in unexpected:
        rec = states.get(oid) or {}
        say(f"UNEXPECTED: {oid} expected {expected[oid]}, got {rec.get('Activation_Status__c')} "
            f"{rec.get('Activation_Error_Code__c') or ''}")
    for sf_id, whmcs_ids in duplicates.items():
        say(f"DUPLICATE WHMCS ORDERS for {sf_id}: {whmcs_ids}")
