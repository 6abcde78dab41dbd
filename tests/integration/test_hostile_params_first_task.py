"""Params the trigger schema cannot judge reach a run (the REST API and the CLI accept them: see
tests/e2e/test_hostile_params_live.py); the DAG's first task must refuse them for good and nothing may be
written anywhere: no Salesforce or WHMCS call at all, no Order marked Failed, no report.

Real DAG runs (``dag.test()``) against the sandbox over TLS; the sandbox's call counters are the witness.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from orderflow.salesforce.soql import to_18

os.environ.setdefault("ORDERFLOW_TASK_RETRIES", "2")  # read when the DAG file is parsed
os.environ.setdefault("ORDERFLOW_RETRY_DELAY_SECONDS", "0.05")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    from orderflow_sandbox.connections import connection_env, salesforce_client
    from orderflow_sandbox.seed import seed_sandbox
    from orderflow_sandbox.server import Sandbox

    box = Sandbox(tmp_path_factory.mktemp("hostile-first-task"), components={"salesforce", "whmcs"})
    endpoints = box.start()
    seed = seed_sandbox(box.data_dir, orders=3, rng_seed=3)
    reports = tmp_path_factory.mktemp("reports")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in connection_env(endpoints).items():
            mp.setenv(key, value)
        mp.setenv("ORDERFLOW_REPORTS_URL", str(reports))
        try:
            yield {"endpoints": endpoints, "order_ids": sorted(seed["expected"]), "reports": reports,
                   "sf": salesforce_client(endpoints)}
        finally:
            box.stop()


def _stats(sandbox: dict) -> dict:
    ep = sandbox["endpoints"]
    return {system: requests.get(ep[system]["admin_url"] + "/stats", verify=ep["ca_bundle"], timeout=30).json()
            for system in ("salesforce", "whmcs")}


def _dag(dag_file: str, dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags" / dag_file), safe_mode=False)
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def _states(dag_run) -> dict[str, tuple[str, int]]:
    return {ti.task_id: (str(ti.state), ti.try_number) for ti in dag_run.get_task_instances()}


def test_provision_order_with_a_wrong_suffix_fails_once_and_touches_nothing(sandbox):
    """The 15-char part names a real Order: a failure write-back to it would mark the wrong record Failed."""
    real = sandbox["order_ids"][0]
    hostile = real[:15] + ("ZZZ" if real[15:] != "ZZZ" else "YYY")
    assert to_18(hostile) == real
    before_order = sandbox["sf"].get("Order", real)
    before = _stats(sandbox)

    dag_run = _dag("provision_order.py", "provision_order").test(run_conf={"order_id": hostile})

    states = _states(dag_run)
    assert dag_run.state == "failed", states
    assert states["load_order"] == ("failed", 1), states  # permanent: no retry
    assert {s for task, (s, _) in states.items() if task != "load_order"} <= {"upstream_failed"}, states
    assert _stats(sandbox) == before, "the run must not call Salesforce or WHMCS at all"
    after_order = sandbox["sf"].get("Order", real)
    fields = ("Activation_Status__c", "Activation_Error_Code__c", "Activation_Error_Message__c", "LastModifiedDate")
    assert {f: after_order[f] for f in fields} == {f: before_order[f] for f in fields}


@pytest.mark.parametrize("conf", [
    pytest.param({"lookback_days": 2.0}, id="lookback-2.0"),
    pytest.param({"max_repairs": 10.0, "dry_run": False}, id="max-repairs-10.0"),
])
def test_reconcile_orders_with_values_the_schema_lets_through_stops_at_validate_params(sandbox, conf):
    before = _stats(sandbox)

    dag_run = _dag("reconcile_orders.py", "reconcile_orders").test(run_conf=conf)

    states = _states(dag_run)
    assert dag_run.state == "failed", states
    assert states["validate_params"][0] == "failed", states
    assert all(s in {"upstream_failed", "failed", "skipped"} for task, (s, _) in states.items()), states
    assert _stats(sandbox) == before, "no extraction, no repair: nothing called"
    assert not list(Path(sandbox["reports"]).rglob("*.*")), "no report for a run that never started"
