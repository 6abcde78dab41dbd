"""The event-sensor test environment: a seeded sandbox, its Airflow connection, DB helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from orderflow.events import CHECKPOINT_VARIABLE, RECENT_RUNS_VARIABLE
from orderflow.settings import EVENT_TOPIC as TOPIC
from orderflow_sandbox.connections import connection_env
from orderflow_sandbox.salesforce.approve import approve_orders
from orderflow_sandbox.seed import seed_sandbox
from orderflow_sandbox.server import Sandbox

SENSOR_DAG = "order_event_sensor"
PROVISION_DAG = "provision_order"


@dataclass
class EventsEnv:
    data_dir: Path
    monkeypatch: pytest.MonkeyPatch
    orders: int = 12
    sandbox: Sandbox | None = None
    seed: dict = field(default_factory=dict)

    def start(self) -> EventsEnv:
        if not self.seed:
            self.seed = seed_sandbox(self.data_dir, orders=self.orders, rng_seed=5)
        self.sandbox = Sandbox(self.data_dir, components={"salesforce", "pubsub"})
        endpoints = self.sandbox.start()
        for key, value in connection_env(endpoints).items():
            self.monkeypatch.setenv(key, value)
        return self

    def stop(self) -> None:
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None

    # -- Salesforce side
    @property
    def order_ids(self) -> list[str]:
        return list(self.seed["expected"])

    @property
    def bus(self):
        return self.sandbox.org.eventbus

    def approve(self, ids: list[str], status: str = "Approved") -> list[str]:
        return approve_orders(self.data_dir, ids, status)

    def admin(self, method: str, path: str, body: dict | None = None) -> Any:
        ep = self.sandbox.endpoints
        resp = requests.request(method, ep["salesforce"]["admin_url"] + path, json=body, verify=ep["ca_bundle"],
                                timeout=30)
        assert resp.status_code < 300, resp.text
        return resp.json()

    def backdate(self, ids: list[str], minutes: float) -> None:
        self.admin("POST", "/backdate", {"ids": ids, "minutes": minutes})

    def fault(self, kind: str, target: str, count: int = 1) -> None:
        self.admin("POST", "/faults", {"kind": kind, "target": target, "count": count})

    def stats(self) -> dict:
        return self.admin("GET", "/stats")

    def latest_replay_hex(self) -> str:
        return self.bus.latest_replay_id(TOPIC).to_bytes(8, "big").hex()

    # -- Airflow side (the test process may use the ORM)
    @staticmethod
    def reset_airflow_state() -> None:
        from airflow.models.dagrun import DagRun
        from airflow.models.variable import Variable
        from airflow.utils.session import create_session

        with create_session() as session:
            for run in session.query(DagRun).filter(
                ((DagRun.dag_id == PROVISION_DAG) & DagRun.run_id.like("order\\_\\_%", escape="\\"))
                | (DagRun.dag_id == SENSOR_DAG)
            ):
                session.delete(run)
            session.query(Variable).filter(Variable.key.in_([CHECKPOINT_VARIABLE, RECENT_RUNS_VARIABLE])).delete(
                synchronize_session=False)

    @staticmethod
    def provision_runs() -> dict[str, dict]:
        """``{run_id: {"conf": ..., "state": ...}}`` of provision_order runs named ``order__*``."""
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session

        with create_session() as session:
            return {r.run_id: {"conf": dict(r.conf or {}), "state": str(r.state), "logical_date": r.logical_date}
                    for r in session.query(DagRun).filter(DagRun.dag_id == PROVISION_DAG,
                                                          DagRun.run_id.like("order\\_\\_%", escape="\\"))}

    @staticmethod
    def checkpoint() -> dict | None:
        from airflow.models.variable import Variable

        raw = Variable.get(CHECKPOINT_VARIABLE, default_var=None)
        return json.loads(raw) if raw else None

    @staticmethod
    def set_checkpoint(value: dict | str) -> None:
        from airflow.models.variable import Variable

        Variable.set(CHECKPOINT_VARIABLE, value if isinstance(value, str) else json.dumps(value))

    @staticmethod
    def sensor_dag():
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[3] / "dags" / "order_event_sensor.py"),
                     safe_mode=False)
        assert not bag.import_errors, bag.import_errors
        return bag.dags[SENSOR_DAG]

    def run_sensor(self, **conf: Any):
        """One order_event_sensor DAG run with dag.test(); returns the DagRun."""
        dag = self.sensor_dag()
        return dag.test(run_conf=conf or None)

    @staticmethod
    def task_states(dag_run) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for ti in dag_run.get_task_instances():
            out.setdefault(ti.task_id, []).append(str(ti.state))
        return out

    @staticmethod
    def xcom(dag_run, task_id: str):
        """A task's return value in this run (as the next task would get it)."""
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id,
                                                     task_id=task_id, key="return_value").one()
            return XComModel.deserialize_value(row)
