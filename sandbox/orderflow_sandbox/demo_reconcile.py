"""The demo's reconciliation act: inject drift, run ``reconcile_orders`` once through the REST API, check it.

Called by the demo driver after provisioning settled (``DEMO_EXIT_WHEN_DONE=1 make demo``). The
event sensor is paused meanwhile: its sweep would otherwise start provisioning for the orders
just made stuck and race the reconciliation that is meant to find them. The demo drifts most of
a dozen orders on purpose, so the run allows any drift share (``max_drift_percent=100``), and it
ages the just-provisioned history by 15 minutes first (see :func:`age_history`).
"""

from __future__ import annotations

import csv
import io
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DAG_ID = "reconcile_orders"
SENSOR_DAG_ID = "order_event_sensor"
SETTLE_MINUTES = 15


def _get_json(api: Any, path: str) -> dict:
    resp = api._retry("GET", path)
    resp.raise_for_status()
    return resp.json()


def wait_for_run(api: Any, dag_id: str, run_id: str, timeout: float) -> str:
    """Poll the run until it ends; its final state (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _get_json(api, f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").get("state")
        if state in ("success", "failed"):
            return state
        time.sleep(2)
    return "timeout"


def read_url(url: str) -> str:
    """A report file by its URL (``file://`` in the demo; any fsspec URL)."""
    import fsspec

    with fsspec.open(url, "r", encoding="utf-8") as fh:
        return fh.read()


def check_categories(expected: dict[str, str], drift_csv: str) -> list[str]:
    """Differences between the injected categories and drift.csv (empty = each came out as injected)."""
    got: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(drift_csv)):
        key = f"whmcs:{row['whmcs_order_id']}" if row["category"] == "ORPHAN_IN_WHMCS" else row["sf_order_id"]
        got[key] = row["category"]
    problems = [f"{key}: injected {cat}, reconciliation said {got.get(key, 'IN_SYNC')}"
                for key, cat in sorted(expected.items()) if got.get(key) != cat]
    # orders the demo is still provisioning are IN_FLIGHT; any other verdict on an untouched order is wrong
    problems += [f"{key}: not injected, reconciliation said {cat}" for key, cat in sorted(got.items())
                 if key not in expected and cat != "IN_FLIGHT"]
    return problems


def age_history(sandbox_dir: str | Path, minutes: int = SETTLE_MINUTES) -> int:
    """Move every Order's LastModifiedDate ``minutes`` back (sandbox admin endpoint).

    The demo reconciles a minute after provisioning; in life the history is hours old. Without
    this every just-provisioned order would be IN_FLIGHT ("changed in the last 10 minutes").
    """
    import requests

    from orderflow_sandbox.salesforce.approve import sandbox_client
    from orderflow_sandbox.server import read_endpoints

    endpoints = read_endpoints(sandbox_dir)
    ids = [r["Id"] for r in sandbox_client(Path(sandbox_dir)).iter_query("SELECT Id FROM Order")]
    for start in range(0, len(ids), 500):
        resp = requests.post(f"{endpoints['salesforce']['admin_url']}/backdate",
                             json={"sobject": "Order", "ids": ids[start:start + 500], "minutes": minutes},
                             verify=endpoints["ca_bundle"], timeout=30)
        resp.raise_for_status()
    return len(ids)


def run_reconcile_demo(api: Any, sandbox_dir: str | Path, per_category: int = 1, timeout: float = 600.0,
                       out: Any = print) -> bool:
    """Drift ``per_category`` orders per category, reconcile once, print the summary; True if all matched."""
    from orderflow.reconcile.report import Summary, summary_table
    from orderflow_sandbox.drift import make_drift

    api.wait_for_dag(DAG_ID, timeout=180)
    api.set_paused(SENSOR_DAG_ID, True)
    try:
        age_history(sandbox_dir)
        expected = make_drift(Path(sandbox_dir), per_category=per_category, rng_seed=7)
        out(f"reconcile: injected drift into {len(expected)} orders; running {DAG_ID} ...")
        run_id = f"demo__reconcile__{int(time.time())}"
        api.trigger(DAG_ID, run_id, {"max_drift_percent": 100})
        state = wait_for_run(api, DAG_ID, run_id, timeout)
    finally:
        api.set_paused(SENSOR_DAG_ID, False)
    if state != "success":
        out(f"reconcile: run {run_id} ended {state}")
        return False
    entry = _get_json(api, f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/write_report/xcomEntries/return_value"
                      "?deserialize=true")
    value = entry.get("value")
    if isinstance(value, str):
        import json

        value = json.loads(value)
    summary = Summary(**{**value["summary"], "problems": tuple(value["summary"].get("problems", ()))})
    out(summary_table(summary))
    out(f"reconcile: report in {value['folder']}")
    problems = check_categories(expected, read_url(value["files"]["drift.csv"]))
    for problem in problems:
        out(f"reconcile: MISMATCH {problem}")
    ok = not problems
    out(f"reconcile: {'every category came out as injected' if ok else f'{len(problems)} mismatch(es)'}")
    return ok
