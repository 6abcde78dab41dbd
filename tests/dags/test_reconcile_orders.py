"""reconcile_orders end to end: real DAG runs (dag.test) against a provisioned sandbox with injected drift.

One sandbox for the module, seeded as if the pipeline had provisioned it; the tests run in file
order as one night's story: a dry run, the real run (every category detected, repaired or only
reported as the table says), a second run that does nothing, one order, the brakes, the outages.
What is checked is what ops rely on: the Order fields in Salesforce, the orders in WHMCS, the
provision_order runs that exist, the emulators' own write counters and the report files.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from pathlib import Path

import pytest

SEED_ORDERS = 600
MUTATING_WHMCS = {"AddOrder", "AcceptOrder", "CancelOrder", "PendingOrder", "ModuleCreate", "ModuleSuspend",
                  "ModuleTerminate", "UpdateClientProduct", "AddPayMethod", "DeleteOrder", "FraudOrder"}


class Env:
    """The conftest's :class:`SandboxEnv` (clients, faults, admin calls) and what a reconciliation night checks."""

    def __init__(self, base, reports: Path) -> None:
        self.base, self.reports = base, reports

    def __getattr__(self, name: str):
        return getattr(self.base, name)

    @property
    def wh(self):
        return self.base.wh_admin

    def writes(self) -> dict[str, int]:
        """Write calls the emulators counted so far (Salesforce REST writes, WHMCS mutating actions)."""
        sf = self.base.stats("salesforce")["rest"]
        wh = self.base.stats("whmcs")
        return {"salesforce": sum(v for k, v in sf.items() if k in ("collections", "sobject_patch", "sobject_post",
                                                                      "sobject_delete")),
                "whmcs": sum(v for k, v in wh.items() if k in MUTATING_WHMCS)}

    def drift(self, per_category: int, rng_seed: int) -> dict[str, str]:
        from orderflow_sandbox.drift import make_drift

        return make_drift(self.sandbox.data_dir, per_category=per_category, rng_seed=rng_seed)


@pytest.fixture(scope="module")
def sandbox_env(tmp_path_factory, start_sandbox, airflow_api_server):
    """This module's own sandbox (overrides the conftest's, so its ``env`` fixture serves this one): seeded as
    provisioned, reports in a folder of its own; repairs start their runs through a real API server."""
    from orderflow_sandbox.seed import seed_provisioned

    reports = tmp_path_factory.mktemp("reports")
    with start_sandbox(tmp_path_factory.mktemp("reconcile-sandbox"),
                       lambda data_dir: seed_provisioned(data_dir, orders=SEED_ORDERS, rng_seed=7),
                       ORDERFLOW_REPORTS_URL=f"file://{reports}") as base:
        yield Env(base, reports)


@pytest.fixture(scope="module")
def drifted(sandbox_env) -> dict[str, str]:
    """The first night's drift: two orders per category."""
    return sandbox_env.drift(per_category=2, rng_seed=7)


class Run:
    def __init__(self, dr, reports: Path) -> None:
        self.dr = dr
        self.states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
        self.folder = reports / "reconcile" / re.sub(r"[^A-Za-z0-9_.=-]", "_", dr.run_id)

    @property
    def summary(self) -> dict:
        return json.loads((self.folder / "summary.json").read_text())

    @property
    def drift(self) -> list[dict]:
        with (self.folder / "drift.csv").open(newline="") as fh:
            return list(csv.DictReader(fh))

    def categories(self) -> dict[str, str]:
        return {(f"whmcs:{r['whmcs_order_id']}" if r["category"] == "ORPHAN_IN_WHMCS" else r["sf_order_id"]):
                r["category"] for r in self.drift}


DEFAULTS = {"dry_run": False, "order_id": None, "lookback_days": None, "max_repairs": 500, "max_drift_percent": 5,
            "stuck_minutes": 60, "accept_pending": False, "recent_minutes": 10}


def reconcile(dagbag, env: Env, **conf) -> Run:
    """One run with these params; every param is passed (dag.test keeps the previous run's conf otherwise)."""
    dag = dagbag.dags["reconcile_orders"]
    dr = dag.test(run_conf={**DEFAULTS, **conf}, logical_date=None)
    return Run(dr, env.reports)


def provision_runs(order_id: str | None = None) -> dict[str, dict]:
    """provision_order runs in the metadata DB: ``{run_id: conf}``."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == "provision_order").all()
        return {r.run_id: dict(r.conf or {}) for r in runs
                if order_id is None or (r.conf or {}).get("order_id") == order_id}


def of(expected: dict[str, str], category: str) -> list[str]:
    return sorted(k for k, v in expected.items() if v == category)


# ------------------------------------------------------------------------------------------ the night


def test_dry_run_reports_every_category_and_writes_nothing(dagbag, env, drifted):
    before, runs_before = env.writes(), set(provision_runs())
    run = reconcile(dagbag, env, dry_run=True)
    assert run.dr.state == "success", run.states
    assert env.writes() == before, "a dry run must not write to Salesforce or WHMCS"
    assert set(provision_runs()) == runs_before, "a dry run must not start provisioning runs"
    assert run.categories() == drifted
    planned = [r for r in run.drift if r["category"] in ("SF_BEHIND", "STUCK_ACTIVATING", "PAYMENT_RECOVERED")]
    assert planned and all(r["repaired"] == "dry_run" for r in planned)
    assert run.summary["dry_run"] is True


def test_every_category_detected_and_repaired_or_reported_as_the_table_says(dagbag, env, drifted):
    wh_before = {o.id: o.status for o in env.wh.iter_orders(page_size=1000)}
    run = reconcile(dagbag, env)
    assert run.dr.state == "success", run.states
    got = run.categories()
    assert got == drifted, "each injected order in its category, every other order IN_SYNC"

    summary = run.summary
    counts = summary["counts"]
    assert set(counts) == {"DUPLICATE_IN_WHMCS", "MISSING_IN_WHMCS", "IN_FLIGHT", "SF_BEHIND", "STUCK_ACTIVATING",
                           "PAYMENT_RECOVERED", "WHMCS_PENDING", "SERVICE_DRIFT", "ORPHAN_IN_WHMCS", "IN_SYNC"}
    assert counts["IN_SYNC"] == SEED_ORDERS - sum(1 for k in drifted if not k.startswith("whmcs:"))
    assert summary["repairs"] == {"applied": 6, "skipped": 0, "failed": 0, "runs_to_start": 4}
    assert summary["brake"]["tripped"] is False
    assert summary["api_calls"]["salesforce"] <= 60 + 1
    assert set(summary["duration_s"]) >= {"extract_salesforce", "extract_whmcs", "compare", "repair", "report"}
    assert summary["rows"]["salesforce_orders"] == SEED_ORDERS

    # SF_BEHIND: Salesforce written back from WHMCS
    for order_id in of(drifted, "SF_BEHIND"):
        order = env.order(order_id)
        assert order["Activation_Status__c"] == "Activated" and order["WHMCS_Order_ID__c"]
        assert order["Activation_Error_Code__c"] is None
        items = order["OrderItems"]["records"]
        wh = env.wh.get_order(order["WHMCS_Order_ID__c"])
        assert sorted(i["WHMCS_Service_ID__c"] for i in items) == sorted(wh.service_ids)
    # STUCK_ACTIVATING and PAYMENT_RECOVERED: one provision_order run each, source=reconcile, deterministic id
    for order_id in of(drifted, "STUCK_ACTIVATING") + of(drifted, "PAYMENT_RECOVERED"):
        runs = provision_runs(order_id)
        assert len(runs) == 1, runs
        (run_id, conf), = runs.items()
        assert run_id.startswith(f"order__{order_id}__reconcile__") and conf["source"] == "reconcile"
    for order_id in of(drifted, "PAYMENT_RECOVERED"):
        order = env.order(order_id)
        assert order["Activation_Status__c"] == "Activating" and order["Activation_Error_Code__c"] is None
    # report-only categories: nothing changed in WHMCS (never auto-cancel), no runs
    wh_after = {o.id: o.status for o in env.wh.iter_orders(page_size=1000)}
    assert wh_after == wh_before
    for cat in ("DUPLICATE_IN_WHMCS", "MISSING_IN_WHMCS", "WHMCS_PENDING", "SERVICE_DRIFT", "IN_FLIGHT"):
        for order_id in of(drifted, cat):
            assert provision_runs(order_id) == {}, (cat, order_id)
    rows = {r["sf_order_id"]: r for r in run.drift if r["category"] != "ORPHAN_IN_WHMCS"}
    assert all(rows[o]["severity"] == "high" for o in of(drifted, "DUPLICATE_IN_WHMCS") + of(drifted, "MISSING_IN_WHMCS"))
    assert all(rows[o]["repaired"] == "no" for o in of(drifted, "WHMCS_PENDING") + of(drifted, "SERVICE_DRIFT"))
    assert all(rows[o]["repaired"] == "yes" for o in of(drifted, "SF_BEHIND"))
    assert all(rows[o]["repaired"] == "run_started" for o in of(drifted, "STUCK_ACTIVATING"))
    html = (run.folder / "report.html").read_text()
    assert "<svg" in html or "class=\"bar" in html
    assert all(o in html for o in of(drifted, "DUPLICATE_IN_WHMCS"))
    assert env.endpoints["whmcs"]["secret"] not in html + (run.folder / "summary.json").read_text()


def test_second_run_right_after_repairs_nothing(dagbag, env, drifted):
    before, runs_before = env.writes(), set(provision_runs())
    run = reconcile(dagbag, env)
    assert run.dr.state == "success", run.states
    assert run.summary["repairs"]["applied"] == 0
    assert env.writes() == before
    assert set(provision_runs()) == runs_before
    got = run.categories()
    # STUCK orders were not touched in Salesforce: IN_FLIGHT comes from their queued provision_order run
    for order_id in of(drifted, "STUCK_ACTIVATING") + of(drifted, "PAYMENT_RECOVERED"):
        assert got[order_id] == "IN_FLIGHT"
    # written back a moment ago: not judged again yet, and certainly not SF_BEHIND
    for order_id in of(drifted, "SF_BEHIND"):
        assert got.get(order_id, "IN_SYNC") in ("IN_SYNC", "IN_FLIGHT")
    settled = reconcile(dagbag, env, recent_minutes=0, dry_run=True)
    assert all(settled.categories().get(o, "IN_SYNC") == "IN_SYNC" for o in of(drifted, "SF_BEHIND"))
    assert all(settled.categories()[o] == "IN_FLIGHT" for o in of(drifted, "STUCK_ACTIVATING"))


def test_order_id_reconciles_one_order(dagbag, env, drifted):
    order_id = of(drifted, "DUPLICATE_IN_WHMCS")[0]
    run = reconcile(dagbag, env, order_id=order_id)
    assert run.dr.state == "success", run.states
    assert run.summary["compared"] == 1
    assert run.categories() == {order_id: "DUPLICATE_IN_WHMCS"}
    assert run.summary["rows"]["salesforce_orders"] == 1


def test_bad_params_are_refused_at_trigger_naming_the_field(dagbag):
    import copy

    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["reconcile_orders"]
    for conf, field in [({"order_id": "001000000000001AAA"}, "order_id"), ({"lookback_days": 0}, "lookback_days"),
                        ({"max_repairs": -1}, "max_repairs"), ({"max_drift_percent": 101}, "max_drift_percent"),
                        ({"dry_run": "yes"}, "dry_run"), ({"stuck_minutes": 0}, "stuck_minutes")]:
        params = copy.deepcopy(dag.params)
        with pytest.raises(ParamValidationError) as err:
            params.update(conf)
            params.validate()
        assert field in str(err.value)


def test_max_repairs_brake_repairs_nothing_and_fails_after_the_report(dagbag, env):
    new = env.drift(per_category=1, rng_seed=21)
    before, runs_before = env.writes(), set(provision_runs())
    run = reconcile(dagbag, env, max_repairs=1)
    assert run.dr.state == "failed"
    assert run.states["write_report"] == "success" and run.states["check_outcome"] == "failed"
    assert env.writes() == before and set(provision_runs()) == runs_before
    summary = run.summary
    assert summary["brake"]["tripped"] and "max_repairs" in summary["brake"]["reason"]
    assert summary["repairs"]["applied"] == 0
    behind = of(new, "SF_BEHIND")[0]
    assert env.order(behind)["Activation_Status__c"] == "Activating"
    assert {r["sf_order_id"]: r["repaired"] for r in run.drift}[behind] == "skipped"


def test_drift_percent_brake_repairs_nothing(dagbag, env):
    before, runs_before = env.writes(), set(provision_runs())
    run = reconcile(dagbag, env, max_drift_percent=0.1)
    assert run.dr.state == "failed"
    assert env.writes() == before and set(provision_runs()) == runs_before
    assert "max_drift_percent" in run.summary["brake"]["reason"]


def test_accept_pending_accepts_pending_whmcs_orders(dagbag, env):
    run = reconcile(dagbag, env, dry_run=True)
    pending = [r for r in run.drift if r["category"] == "WHMCS_PENDING"]
    assert pending
    run = reconcile(dagbag, env, accept_pending=True)
    assert run.dr.state == "success", run.states
    for row in pending:
        assert env.wh.get_order(row["whmcs_order_id"]).status == "Active"


@pytest.mark.parametrize("system,target", [("whmcs", "GetClientsProducts"), ("salesforce", "bulk")])
def test_outage_mid_extraction_fails_the_run_and_repairs_nothing(dagbag, env, system, target):
    env.drift(per_category=1, rng_seed=31 if system == "whmcs" else 41)
    before, runs_before = env.writes(), set(provision_runs())
    env.fault(system, "http_503", target, count=None)
    run = reconcile(dagbag, env)
    env.clear_faults()
    assert run.dr.state == "failed"
    assert run.states["repair"] != "success"
    assert env.writes() == before and set(provision_runs()) == runs_before


def test_schedule_is_nightly_at_two_in_the_configured_timezone(monkeypatch):
    """Successive scheduler decisions give distinct consecutive 02:00 logical dates in ORDERFLOW_RECONCILE_TIMEZONE."""
    from zoneinfo import ZoneInfo

    import airflow.timetables.trigger
    from airflow._shared.timezones import timezone
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    monkeypatch.setenv("ORDERFLOW_RECONCILE_TIMEZONE", "Asia/Tokyo")
    dag_file = Path(__file__).resolve().parents[2] / "dags" / "reconcile_orders.py"
    dag = DagBag(dag_folder=str(dag_file), safe_mode=False).dags["reconcile_orders"]
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))  # what the scheduler works on
    start = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
    clock = {"now": start}
    monkeypatch.setattr(timezone, "utcnow", lambda: clock["now"])
    monkeypatch.setattr(airflow.timetables.trigger, "utcnow", lambda: clock["now"])  # imported by name there
    tokyo = ZoneInfo("Asia/Tokyo")
    info, dates = None, []
    for _ in range(4):
        info = serialized.next_dagrun_info(last_automated_run_info=info)
        assert info is not None, "the timetable stopped creating runs"
        dates.append(info.logical_date)
        clock["now"] = max(clock["now"], info.run_after) + dt.timedelta(minutes=5)
    local = [d.astimezone(tokyo) for d in dates]
    assert all((t.hour, t.minute) == (2, 0) for t in local), local
    assert [b - a for a, b in zip(local, local[1:], strict=False)] == [dt.timedelta(days=1)] * 3
    # catchup is off: the first run is the latest 02:00, not a backlog from start_date
    # (judged on the scheduler's clock, which this test sets: the real clock plays no part)
    assert start - dt.timedelta(days=1) <= dates[0] <= start + dt.timedelta(days=1), local
