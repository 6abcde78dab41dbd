"""Task bodies of the ``reconcile_orders`` DAG: connections, the run folder, XCom-sized results.

Airflow is imported inside functions only; ``ti`` is whatever the task got (the Task SDK's
RuntimeTaskInstance), used for ``get_dr_count`` and outlet events. Bulk data stays in files of the
run folder ``<ORDERFLOW_REPORTS_URL>/reconcile/<run id>/``; XCom carries paths and counts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from orderflow import settings
from orderflow.reconcile import PROVISION_DAG_ID, RECENT_RUNS_VARIABLE
from orderflow.reconcile import compare as cmp
from orderflow.reconcile import extract as ext
from orderflow.reconcile import repair as rep
from orderflow.reconcile import report as rpt

log = logging.getLogger(__name__)

IN_FLIGHT_STATES = ["queued", "running"]
RUN_ID_CHUNK = 40  # run ids per get_dr_count call (they travel in the query string)
OUTCOME_XCOM = "outcome"
CLASSIFIED_FILE = "classified.csv"
REPAIRS_FILE = "repairs.json"
_SAFE = re.compile(r"[^A-Za-z0-9_.=-]")


def run_folder(run_id: str, base: str | None = None) -> Any:
    """``<base>/reconcile/<run id>/`` as an ObjectStoragePath (local folder, s3://, gs:// ...)."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(base or settings.reports_url()) / "reconcile" / _SAFE.sub("_", run_id)


def _sf_client() -> Any:
    from orderflow.salesforce.hook import SalesforceJwtHook

    return SalesforceJwtHook(settings.SALESFORCE_CONN_ID).get_conn()


def _wh_client() -> Any:
    from orderflow.whmcs.hook import WhmcsHook

    return WhmcsHook(settings.WHMCS_CONN_ID).get_conn()


def validate_params(params: dict[str, Any]) -> dict[str, Any]:
    """The params as the run will use them (a run started through the API skips the form's checks)."""
    checked = rep.ReconcileParams.from_params(dict(params))
    log.info("reconciliation params: %s", checked.to_dict())
    return checked.to_dict()


def _scope(params: dict[str, Any]) -> ext.Scope:
    return ext.Scope(order_id=params.get("order_id"), lookback_days=params.get("lookback_days"))


def extract_salesforce(params: dict[str, Any], run_id: str, sf: Any = None) -> dict[str, Any]:
    folder = run_folder(run_id) / "extract"
    return ext.extract_salesforce(sf or _sf_client(), folder, _scope(params)).to_dict()


def extract_whmcs(params: dict[str, Any], run_id: str, sf: Any = None, whmcs: Any = None) -> dict[str, Any]:
    """All WHMCS orders and services; for one ``order_id``, only its client's (one REST query finds it)."""
    folder = run_folder(run_id) / "extract"
    clientid = named = None
    sf_calls = 0
    if params.get("order_id"):
        sf = sf or _sf_client()
        before = sum(sf.api_calls.values())
        rows = sf.query("SELECT Id, WHMCS_Order_ID__c, Account.WH_Account__c FROM Order WHERE Id = "
                        f"'{params['order_id']}'")
        sf_calls = sum(sf.api_calls.values()) - before
        if rows:
            match = re.match(r"^\s*#\s*(\d+)", str((rows[0].get("Account") or {}).get("WH_Account__c") or ""))
            clientid = int(match.group(1)) if match else None
            named = rows[0].get("WHMCS_Order_ID__c") or None
    result = ext.extract_whmcs(whmcs or _wh_client(), folder, clientid=clientid, order_id=named).to_dict()
    result["salesforce_calls"] = sf_calls
    return result


def check_pay_methods(run_id: str, whmcs: Any = None) -> dict[str, Any]:
    """Pay methods of the clients whose orders failed with PAYMENT_METHOD_MISSING."""
    folder = run_folder(run_id) / "extract"
    with (folder / ext.SF_ORDERS_FILE).open("rb") as fh:
        import pandas as pd

        orders = pd.read_csv(fh, dtype=str, keep_default_na=False, na_filter=False,
                             usecols=["Activation_Status__c", "Activation_Error_Code__c", "Account.WH_Account__c"])
    clients = cmp.payment_recovery_clients(orders)
    return ext.extract_pay_methods(whmcs or _wh_client(), folder, clients).to_dict()


# ------------------------------------------------------------------------------------ in flight


def candidate_run_ids(order_id: str, last_modified: str, reconcile_run_id: str,
                      ledgers: Iterable[dict[str, list]]) -> list[str]:
    """The provision_order run ids that could be in flight for an order.

    A task can only count runs by exact id, so: this reconciliation's own run for the order, the
    sweep's run for the order's current state, and the runs the event drain and earlier
    reconciliations recorded in their ledgers (24 h). Runs started by hand are not guessable;
    the "changed in the last 10 minutes" rule and provision_order's own guards cover those.
    """
    from orderflow.events.sweep import parse_sf_datetime, sweep_run_id

    ids = [rep.provision_run_id(order_id, reconcile_run_id)]
    if last_modified:
        try:
            ids.append(sweep_run_id(order_id, parse_sf_datetime(last_modified)))
        except ValueError:
            pass
    for ledger in ledgers:
        entry = ledger.get(order_id)
        if entry:
            ids.append(str(entry[0]))
    return list(dict.fromkeys(ids))


def find_in_flight(candidates: list[tuple[str, list[str]]], count: Callable[[list[str]], int],
                   chunk: int = RUN_ID_CHUNK) -> set[str]:
    """Orders with a run queued or running: one count per chunk of orders, per order only in a hit chunk."""
    found: set[str] = set()
    for start in range(0, len(candidates), chunk):
        part = candidates[start:start + chunk]
        if count([i for _, ids in part for i in ids]) == 0:
            continue
        for order_id, ids in part:
            if count(ids) > 0:
                found.add(order_id)
    return found


def _ledgers() -> list[dict[str, list]]:
    from orderflow.events import RECENT_RUNS_VARIABLE as EVENT_RUNS
    from orderflow.events.checkpoint import AirflowVariableStore, RecentRuns

    return [RecentRuns(AirflowVariableStore(), key).load() for key in (RECENT_RUNS_VARIABLE, EVENT_RUNS)]


def compare(params: dict[str, Any], run_id: str, ti: Any, sf: Any = None, now: dt.datetime | None = None
            ) -> dict[str, Any]:
    """Classify; write ``classified.csv`` (non-IN_SYNC rows); return counts for the report and the brake."""
    t0 = time.monotonic()
    folder = run_folder(run_id)
    frames = cmp.load_frames(folder / "extract")
    now = now or dt.datetime.now(dt.UTC)
    scope = _scope(params)
    sf_calls = 0
    orphans: set[str] | None = None
    if not scope.is_full:  # orphan candidates may just lie outside the window: ask Salesforce
        since = now - dt.timedelta(days=scope.lookback_days) if scope.lookback_days else None
        candidates = cmp.orphan_candidates(frames, since=since, only=scope.order_id)
        orphans = set()
        if candidates:
            sf = sf or _sf_client()
            before = sum(sf.api_calls.values())
            orphans = candidates - ext.existing_order_ids(sf, candidates)
            sf_calls = sum(sf.api_calls.values()) - before
    cand = cmp.in_flight_candidates(frames, now, int(params["stuck_minutes"]))
    ledgers = _ledgers() if len(cand) else []
    pairs = [(oid, candidate_run_ids(oid, lm, run_id, ledgers))
             for oid, lm in zip(cand["Id"], cand["LastModifiedDate"], strict=True)]

    def count(run_ids: list[str]) -> int:
        return ti.get_dr_count(dag_id=PROVISION_DAG_ID, run_ids=run_ids, states=IN_FLIGHT_STATES)

    in_flight = find_in_flight(pairs, count) if pairs else set()
    classified = cmp.classify(frames, in_flight, now, int(params["stuck_minutes"]), orphans=orphans,
                              recent_minutes=int(params.get("recent_minutes", 10)))
    cmp.write_classified(classified, folder / CLASSIFIED_FILE)
    counts = cmp.Counts.of(classified)
    result = {"counts": counts.per_category, "compared": counts.compared, "drifted": counts.drifted,
              "drift_percent": counts.drift_percent, "rows": frames.rows(), "in_flight_checked": len(pairs),
              "in_flight": len(in_flight), "salesforce_calls": sf_calls,
              "duration_s": round(time.monotonic() - t0, 3)}
    log.info("compare: %s", json.dumps(result["counts"]))
    return result


# ------------------------------------------------------------------------------------ repair


def repair(params: dict[str, Any], run_id: str, compare_result: dict[str, Any], sf: Any = None, whmcs: Any = None,
           record_runs: Callable[[dict[str, str]], None] | None = None) -> dict[str, Any]:
    """Check the brake, repair, write ``repairs.json``; return the brake, totals and the run specs."""
    t0 = time.monotonic()
    folder = run_folder(run_id)
    p = rep.ReconcileParams.from_params(params)
    classified = cmp.read_classified(folder / CLASSIFIED_FILE)
    counts = cmp.Counts(compare_result["counts"], compare_result["compared"], compare_result["drifted"])
    brake = rep.check_brake(classified, counts, p)
    if brake.tripped:
        log.error("BRAKE TRIPPED, repairing nothing: %s", brake.reason)
    needs_sf = not (p.dry_run or brake.tripped) and classified["category"].isin(
        ["SF_BEHIND", "PAYMENT_RECOVERED"]).any()
    needs_wh = not (p.dry_run or brake.tripped) and p.accept_pending and (classified["category"] == "WHMCS_PENDING").any()
    outcome = rep.repair(classified, brake, p, run_id, sf=(sf or _sf_client()) if needs_sf else None,
                         whmcs=(whmcs or _wh_client()) if needs_wh else None)
    if outcome.specs and not p.dry_run:
        (record_runs or _record_runs)({s["conf"]["order_id"]: s["trigger_run_id"] for s in outcome.specs})
    with (folder / REPAIRS_FILE).open("w", encoding="utf-8") as fh:
        json.dump({"repaired": outcome.repaired, "notes": outcome.notes}, fh)
    return {"brake": brake.to_dict(), "repairs": outcome.summary(), "specs": outcome.specs,
            "api_calls": {"salesforce": outcome.salesforce_calls, "whmcs": outcome.whmcs_calls},
            "duration_s": round(time.monotonic() - t0, 3)}


def _record_runs(runs: dict[str, str]) -> None:
    from orderflow.events.checkpoint import AirflowVariableStore, RecentRuns

    RecentRuns(AirflowVariableStore(), RECENT_RUNS_VARIABLE).record(runs)


# ------------------------------------------------------------------------------------ report


def build_summary(run_id: str, params: dict[str, Any], sf_x: dict[str, Any], wh_x: dict[str, Any],
                  pm_x: dict[str, Any], comp: dict[str, Any], repaired: dict[str, Any],
                  report_seconds: float = 0.0) -> rpt.Summary:
    brake = repaired["brake"]
    problems = []
    if brake["tripped"]:
        problems.append(f"brake tripped: {brake['reason']}")
    if repaired["repairs"].get("failed"):
        problems.append(f"{repaired['repairs']['failed']} repair(s) failed (see drift.csv)")
    return rpt.Summary(
        run_id=run_id,
        generated_at=rpt.now_iso(),
        scope={"order_id": params.get("order_id"), "lookback_days": params.get("lookback_days")},
        params=params,
        counts=comp["counts"],
        compared=comp["compared"],
        drift_percent=comp["drift_percent"],
        repairs=repaired["repairs"],
        brake=brake,
        duration_s={"extract_salesforce": sf_x["duration_s"], "extract_whmcs": wh_x["duration_s"],
                    "pay_methods": pm_x["duration_s"], "compare": comp["duration_s"],
                    "repair": repaired["duration_s"], "report": round(report_seconds, 3)},
        api_calls={"salesforce": sf_x["api_calls"] + wh_x.get("salesforce_calls", 0) + comp["salesforce_calls"]
                   + repaired["api_calls"]["salesforce"],
                   "whmcs": wh_x["api_calls"] + pm_x["api_calls"] + repaired["api_calls"]["whmcs"]},
        rows=comp["rows"],
        dry_run=bool(params.get("dry_run")),
        ok=not problems,
        problems=tuple(problems),
    )


def write_report(run_id: str, params: dict[str, Any], sf_x: dict[str, Any], wh_x: dict[str, Any],
                 pm_x: dict[str, Any], comp: dict[str, Any], repaired: dict[str, Any],
                 started: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write drift.csv, summary.json, report.html; log the summary table; return the summary and paths."""
    t0 = time.monotonic()
    folder = run_folder(run_id)
    classified = cmp.read_classified(folder / CLASSIFIED_FILE)
    with (folder / REPAIRS_FILE).open("r", encoding="utf-8") as fh:
        done = json.load(fh)
    rows = rpt.drift_rows(classified, done["repaired"], done["notes"])
    summary = build_summary(run_id, params, sf_x, wh_x, pm_x, comp, repaired, time.monotonic() - t0)
    paths = rpt.write_report(rpt.Report(summary, rows), folder)
    log.info("reconciliation summary\n%s", rpt.summary_table(summary))
    log.info("report written to %s", folder)
    return {"summary": summary.to_dict(), "files": paths, "folder": str(folder)}


def check_outcome(result: dict[str, Any]) -> dict[str, Any]:
    """Fail the run loudly (after the report exists) when the brake tripped or repairs failed."""
    from airflow.sdk.exceptions import AirflowFailException

    summary = result["summary"]
    if not summary["ok"]:
        raise AirflowFailException("; ".join(summary["problems"]) + f" - report: {result['folder']}")
    return {"ok": True, "counts": summary["counts"]}
