"""reconcile_orders: nightly WHMCS <-> Salesforce comparison, safe repairs and a drift report.

Runs at 02:00 in ORDERFLOW_RECONCILE_TIMEZONE (default UTC) and on demand from the trigger form.
extract (Salesforce Bulk 2.0 | WHMCS paged) -> pay methods -> compare -> repair (within brakes)
-> start provision_order runs -> report (drift.csv, summary.json, report.html under
ORDERFLOW_REPORTS_URL/reconcile/<run id>/, plus an Asset event) -> fail loudly if a brake tripped.
The logic lives in orderflow.reconcile; see docs/architecture.md, "Reconciliation", and the
README runbook for what each category means and what to do about it.
"""

from __future__ import annotations

import datetime as dt
from datetime import timedelta

from airflow.sdk import Asset, CronTriggerTimetable, Param, TriggerRule, dag, task

from orderflow import settings
from orderflow.reconcile import RECONCILE_DAG_ID

# The asset names the report, not where it is stored: a URI built from ORDERFLOW_REPORTS_URL at parse time
# changes whenever that setting does, and Airflow then refuses the outlet as an inactive asset. The event's
# extra carries the run's folder.
REPORT_ASSET = Asset(name="orderflow_reconcile_report", uri="orderflow://reconcile/report")

default_args = {
    "owner": "orderflow",
    "retries": 2,
    "retry_delay": min(settings.retry_delay(), timedelta(seconds=30)),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=5),
    "execution_timeout": timedelta(minutes=30),
}


@dag(
    dag_id=RECONCILE_DAG_ID,
    schedule=CronTriggerTimetable("0 2 * * *", timezone=settings.reconcile_timezone()),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,
    tags=["orderflow", "reconciliation"],
    default_args=default_args,
    params={
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Compare and report only: nothing is written to Salesforce or WHMCS."),
        "order_id": Param(None, type=["null", "string"], pattern=settings.ORDER_ID_PATTERN,
                          title="One Order Id",
                          description="Reconcile only this Salesforce Order (801..., 15 or 18 chars); empty = all."),
        "lookback_days": Param(None, type=["null", "integer"], minimum=1, maximum=3650, title="Lookback (days)",
                               description="Only orders created or modified in the last N days; empty = all."),
        "max_repairs": Param(500, type="integer", minimum=0, title="Max repairs",
                             description="More repairs than this: repair nothing and fail the run (after the report)."),
        "max_drift_percent": Param(5, type="number", minimum=0, maximum=100, title="Max drift (%)",
                                   description="More drifted orders than this share: a broken extraction is "
                                               "likelier than real drift; repair nothing and fail the run."),
        "stuck_minutes": Param(60, type="integer", minimum=1, maximum=100000, title="Stuck after (minutes)",
                               description="An order Activating longer than this, with no WHMCS order, is "
                                           "STUCK_ACTIVATING and gets a provision_order run."),
        "accept_pending": Param(False, type="boolean", title="Accept pending WHMCS orders",
                                description="WHMCS_PENDING: call AcceptOrder (otherwise only reported)."),
        "recent_minutes": Param(10, type="integer", minimum=0, maximum=1440, title="Settle time (minutes)",
                                description="Orders changed this recently are IN_FLIGHT (not judged this time)."),
    },
    doc_md=__doc__,
)
def reconcile_orders():
    # multiple_outputs=False: one XCom per result, not one more per key (inferred from "-> dict").
    @task(multiple_outputs=False, retries=0)
    def validate_params(params: dict | None = None) -> dict:
        from orderflow.reconcile import tasks

        return tasks.validate_params(params)

    @task(multiple_outputs=False, pool=settings.SALESFORCE_POOL)
    def extract_salesforce(checked: dict, run_id: str | None = None) -> dict:
        from orderflow.reconcile import tasks

        return tasks.extract_salesforce(checked, run_id)

    @task(multiple_outputs=False, pool=settings.WHMCS_POOL)
    def extract_whmcs(checked: dict, run_id: str | None = None) -> dict:
        from orderflow.reconcile import tasks

        return tasks.extract_whmcs(checked, run_id)

    @task(multiple_outputs=False, pool=settings.WHMCS_POOL)
    def check_pay_methods(sf_extract: dict, run_id: str | None = None) -> dict:
        from orderflow.reconcile import tasks

        return tasks.check_pay_methods(run_id)

    @task(multiple_outputs=False)
    def compare(checked: dict, sf_extract: dict, wh_extract: dict, pay_methods: dict, run_id: str | None = None,
                ti=None) -> dict:
        from orderflow.reconcile import tasks

        return tasks.compare(checked, run_id, ti)

    # No retries: a half-applied repair is re-planned by the next reconciliation, not repeated blindly.
    # Returns the provision_order run specs; the rest of the outcome goes to XCom key "outcome".
    @task(retries=0)
    def repair(checked: dict, comparison: dict, run_id: str | None = None, ti=None) -> list[dict]:
        from orderflow.reconcile import tasks

        outcome = tasks.repair(checked, run_id, comparison)
        ti.xcom_push(key=tasks.OUTCOME_XCOM, value={k: v for k, v in outcome.items() if k != "specs"})
        return outcome["specs"]

    # One task starts every repair's run (the sensor's path: Airflow's REST API; existing run ids skipped).
    @task(multiple_outputs=False)
    def start_provisioning(specs: list[dict]) -> dict:
        from orderflow.provision_runs import start_provision_runs

        return start_provision_runs(specs)

    @task(multiple_outputs=False, outlets=[REPORT_ASSET], trigger_rule=TriggerRule.ALL_DONE, retries=1)
    def write_report(checked: dict, sf_extract: dict, wh_extract: dict, pay_methods: dict, comparison: dict,
                     run_id: str | None = None, ti=None, outlet_events=None) -> dict:
        from orderflow.reconcile import tasks

        repaired = ti.xcom_pull(task_ids="repair", key=tasks.OUTCOME_XCOM)
        if repaired is None:
            raise RuntimeError("the repair step did not finish; nothing was repaired and no report is written")
        result = tasks.write_report(run_id, checked, sf_extract, wh_extract, pay_methods, comparison, repaired)
        summary = result["summary"]
        outlet_events[REPORT_ASSET].extra = {"run_id": run_id, "folder": result["folder"],
                                             "counts": summary["counts"], "ok": summary["ok"]}
        return result

    @task(multiple_outputs=False, retries=0)
    def check_outcome(result: dict) -> dict:
        from orderflow.reconcile import tasks

        return tasks.check_outcome(result)

    checked = validate_params()
    sf_x = extract_salesforce(checked)
    wh_x = extract_whmcs(checked)
    pm_x = check_pay_methods(sf_x)
    comparison = compare(checked, sf_x, wh_x, pm_x)
    fixed = repair(checked, comparison)
    start = start_provisioning(fixed)
    result = write_report(checked, sf_x, wh_x, pm_x, comparison)
    start >> result
    check_outcome(result)


reconcile_orders()
