"""The real path: ``reconcile_orders`` writes a report and the console shows it (no test-written files)."""

from __future__ import annotations

import csv
import os

import pytest

pytestmark = pytest.mark.timeout(600)


def test_a_real_reconcile_orders_run_is_shown(console_env):
    """The real path: reconcile_orders (dag.test, dry run) writes the report; the console reads it.

    It uses the module's reports base, the one the DAG was first parsed with: the DAG's report
    Asset takes its URI from ORDERFLOW_REPORTS_URL, and a second URI under the same name is refused.
    """
    reports_at = console_env.reports_dir
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import timezone

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"], safe_mode=False).dags["reconcile_orders"]
    dr = dag.test(run_conf={"dry_run": True}, logical_date=timezone.utcnow())
    assert dr.state == "success"

    runs = console_env.get("/orderflow/api/reports").json()["runs"]
    assert [r["run_id"] for r in runs] == [dr.run_id]
    page = console_env.get("/orderflow/reports/latest")
    assert page.status_code == 200 and dr.run_id in page.text
    report = console_env.get(runs[0]["report_url"] + "/report.html")
    assert report.status_code == 200 and 'class="chart"' in report.text

    drift = {row["sf_order_id"]: row["category"]
             for row in csv.DictReader((reports_at / "reconcile" / runs[0]["folder"] / "drift.csv").open())}
    for order_id in (console_env.activated, console_env.failed, console_env.untouched):
        shown = console_env.get(f"/orderflow/api/orders/{order_id}").json()["reconciliation"]
        assert shown["run_id"] == dr.run_id
        assert shown["category"] == drift.get(order_id, "IN_SYNC"), (order_id, drift)
    # provisioned a moment ago: not judged this time
    assert drift[console_env.activated] == "IN_FLIGHT"
