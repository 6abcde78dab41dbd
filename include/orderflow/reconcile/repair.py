"""Repairs within brakes: Salesforce write-backs in 200-record collections, provisioning runs to start.

Why brakes: a broken extraction (WHMCS answering an empty list, a half-read Bulk job) looks like
massive drift, and "repairing" it would rewrite thousands of correct orders. So above
``max_repairs`` repairs or ``max_drift_percent`` drift nothing is repaired at all, and the DAG
fails the run after the report. ``dry_run`` plans everything and writes nothing anywhere.

Runs started here get a deterministic id per (order, reconciliation run): re-running the same
reconciliation maps to runs that already exist, which the trigger skips.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from orderflow.errors import OrderflowError, WhmcsOrderNotPending, safe_message
from orderflow.events.drain import RUN_ID_PREFIX, RUN_ID_RE
from orderflow.reconcile import Category
from orderflow.reconcile.compare import Counts
from orderflow.statuses import ActivationStatus

log = logging.getLogger(__name__)

RECONCILE_SOURCE = "reconcile"
RUN_ID_MARK = "__reconcile__"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.~:+-]")

REPAIRED_YES = "yes"
REPAIRED_NO = "no"
REPAIRED_DRY_RUN = "dry_run"
REPAIRED_SKIPPED = "skipped"
REPAIRED_FAILED = "failed"
REPAIRED_TRIGGERED = "run_started"


@dataclass(frozen=True)
class ReconcileParams:
    """The trigger form's params, checked again here (a run from the API or a test bypasses the form)."""

    dry_run: bool = False
    order_id: str | None = None
    lookback_days: int | None = None
    max_repairs: int = 500
    max_drift_percent: float = 5.0
    stuck_minutes: int = 60
    accept_pending: bool = False
    recent_minutes: int = 10

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ReconcileParams:
        """Validate; every error names the field."""
        from orderflow.salesforce.soql import InvalidSalesforceId, validate_order_id

        def boolean(name: str, default: bool) -> bool:
            value = params.get(name, default)
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
            return value

        def integer(name: str, default: int | None, minimum: int, nullable: bool = False,
                    maximum: int | None = None) -> int | None:
            value = params.get(name, default)
            if value is None and nullable:
                return None
            if (isinstance(value, bool) or not isinstance(value, int) or value < minimum
                    or (maximum is not None and value > maximum)):
                upto = f" and <= {maximum}" if maximum is not None else ""
                raise ValueError(f"{name} must be a whole number >= {minimum}{upto}{' or null' if nullable else ''}, "
                                 f"got {value!r}")
            return value

        order_id = params.get("order_id")
        if order_id in ("", None):
            order_id = None
        else:
            try:
                order_id = validate_order_id(order_id, "order_id")
            except InvalidSalesforceId as exc:
                raise ValueError(f"order_id: {exc}") from None
        drift = params.get("max_drift_percent", 5.0)
        if isinstance(drift, bool) or not isinstance(drift, (int, float)) or not 0 <= drift <= 100:
            raise ValueError(f"max_drift_percent must be a number from 0 to 100, got {drift!r}")
        return cls(
            dry_run=boolean("dry_run", False),
            order_id=order_id,
            lookback_days=integer("lookback_days", None, 1, nullable=True, maximum=3650),
            max_repairs=integer("max_repairs", 500, 0),
            max_drift_percent=float(drift),
            stuck_minutes=integer("stuck_minutes", 60, 1, maximum=100000),
            accept_pending=boolean("accept_pending", False),
            recent_minutes=integer("recent_minutes", 10, 0, maximum=1440),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def provision_run_id(order_id: str, reconcile_run_id: str) -> str:
    """``order__<OrderId>__reconcile__<reconciliation run id>``: one provisioning run per order per reconciliation."""
    run_id = f"{RUN_ID_PREFIX}{order_id}{RUN_ID_MARK}{_UNSAFE.sub('_', reconcile_run_id)}"[:250]
    if not RUN_ID_RE.match(run_id):
        raise ValueError(f"run id {run_id!r} does not match Airflow's run id pattern")
    return run_id


def provision_run_spec(order_id: str, reconcile_run_id: str) -> dict[str, Any]:
    """One run spec for ``provision_runs.start_provision_runs`` (the sensor's way of starting runs)."""
    return {"trigger_run_id": provision_run_id(order_id, reconcile_run_id),
            "conf": {"order_id": order_id, "source": RECONCILE_SOURCE}}


@dataclass(frozen=True)
class Brake:
    """Whether repairs may go ahead, and why not."""

    tripped: bool
    reason: str
    planned_repairs: int
    drift_percent: float
    max_repairs: int
    max_drift_percent: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def planned_categories(params: ReconcileParams) -> set[str]:
    cats = {Category.SF_BEHIND.value, Category.STUCK_ACTIVATING.value, Category.PAYMENT_RECOVERED.value}
    if params.accept_pending:
        cats.add(Category.WHMCS_PENDING.value)
    return cats


def check_brake(classified: pd.DataFrame, counts: Counts, params: ReconcileParams) -> Brake:
    planned = int(classified["category"].isin(planned_categories(params)).sum())
    reasons = []
    if planned > params.max_repairs:
        reasons.append(f"{planned} repairs planned > max_repairs {params.max_repairs}")
    # One order (order_id) is no sample: the drift share means nothing there, max_repairs still applies.
    if params.order_id is None and counts.drift_percent > params.max_drift_percent:
        reasons.append(f"{counts.drift_percent:.2f}% of {counts.compared} orders drifted > max_drift_percent "
                       f"{params.max_drift_percent:g} (a broken extraction?)")
    return Brake(bool(reasons), "; ".join(reasons), planned, counts.drift_percent, params.max_repairs,
                 params.max_drift_percent)


@dataclass
class RepairOutcome:
    """What the repair step did: per order (for ``drift.csv``) and in total (for ``summary.json``)."""

    repaired: dict[str, str] = field(default_factory=dict)  # sf_order_id -> REPAIRED_*
    notes: dict[str, str] = field(default_factory=dict)  # sf_order_id -> failure reason
    applied: int = 0
    skipped: int = 0
    failed: int = 0
    specs: list[dict[str, Any]] = field(default_factory=list)
    salesforce_calls: int = 0
    whmcs_calls: int = 0

    def mark(self, order_id: str, state: str, note: str = "") -> None:
        self.repaired[order_id] = state
        if note:
            self.notes[order_id] = safe_message(note)
        if state in (REPAIRED_YES, REPAIRED_TRIGGERED):
            self.applied += 1
        elif state == REPAIRED_FAILED:
            self.failed += 1
        elif state in (REPAIRED_SKIPPED, REPAIRED_DRY_RUN):
            self.skipped += 1

    def summary(self) -> dict[str, Any]:
        return {"applied": self.applied, "skipped": self.skipped, "failed": self.failed,
                "runs_to_start": len(self.specs)}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def repair(
    classified: pd.DataFrame,
    brake: Brake,
    params: ReconcileParams,
    reconcile_run_id: str,
    sf: Any = None,
    whmcs: Any = None,
) -> RepairOutcome:
    """Apply the safe repairs (or none: dry run, brake tripped). ``sf``/``whmcs`` are the clients.

    SF_BEHIND: one collection update per 200 records (Order activated with its WHMCS ids, each
    item's service id). PAYMENT_RECOVERED: Order back to Activating with cleared errors, then a
    provisioning run. STUCK_ACTIVATING: a provisioning run. WHMCS_PENDING: ``AcceptOrder`` only
    with ``accept_pending``. Per-record failures are reported in the outcome, never ignored.
    """
    out = RepairOutcome()
    cats = planned_categories(params)
    todo = classified[classified["category"].isin(cats)]
    if todo.empty:
        return out
    if params.dry_run or brake.tripped:
        state = REPAIRED_DRY_RUN if params.dry_run else REPAIRED_SKIPPED
        for order_id in todo["sf_order_id"]:
            out.mark(order_id, state, "" if params.dry_run else f"brake: {brake.reason}")
        log.warning("repairs not applied (%s): %d planned", "dry run" if params.dry_run else brake.reason, len(todo))
        return out
    sf_before = sum(sf.api_calls.values()) if sf is not None and hasattr(sf, "api_calls") else 0
    wh_before = whmcs.total_calls if whmcs is not None and hasattr(whmcs, "total_calls") else 0

    # -- Salesforce writes, batched: SF_BEHIND write-backs and PAYMENT_RECOVERED resets
    records: list[dict] = []
    owner: list[str] = []
    for row in todo.itertuples(index=False):
        if row.category == Category.SF_BEHIND:
            if not row.repair_records:
                out.mark(row.sf_order_id, REPAIRED_SKIPPED, "services do not map to items")
                continue
            recs = json.loads(row.repair_records)
            records += recs
            owner += [row.sf_order_id] * len(recs)
        elif row.category == Category.PAYMENT_RECOVERED:
            records.append({"attributes": {"type": "Order"}, "id": row.sf_order_id,
                            "Activation_Status__c": ActivationStatus.ACTIVATING, "Activation_Error_Code__c": None,
                            "Activation_Error_Message__c": None})
            owner.append(row.sf_order_id)
    written_ok: set[str] = set()
    if records:
        failures = _update_collection(sf, records, owner)
        for order_id in dict.fromkeys(owner):
            if order_id in failures:
                out.mark(order_id, REPAIRED_FAILED, failures[order_id])
            else:
                written_ok.add(order_id)

    # -- runs to start and WHMCS accepts
    for row in todo.itertuples(index=False):
        if row.category == Category.SF_BEHIND and row.sf_order_id in written_ok:
            out.mark(row.sf_order_id, REPAIRED_YES)
        elif (row.category == Category.PAYMENT_RECOVERED and row.sf_order_id in written_ok) \
                or row.category == Category.STUCK_ACTIVATING:
            out.specs.append(provision_run_spec(row.sf_order_id, reconcile_run_id))
            out.mark(row.sf_order_id, REPAIRED_TRIGGERED)
        elif row.category == Category.WHMCS_PENDING:
            try:
                whmcs.accept_order(row.whmcs_order_id)
                out.mark(row.sf_order_id, REPAIRED_YES)
            except WhmcsOrderNotPending:
                out.mark(row.sf_order_id, REPAIRED_YES, "already accepted")
            except OrderflowError as exc:
                out.mark(row.sf_order_id, REPAIRED_FAILED, f"AcceptOrder {row.whmcs_order_id}: {exc.message}")
    if sf is not None and hasattr(sf, "api_calls"):
        out.salesforce_calls = sum(sf.api_calls.values()) - sf_before
    if whmcs is not None and hasattr(whmcs, "total_calls"):
        out.whmcs_calls = whmcs.total_calls - wh_before
    log.info("repairs: %d applied, %d skipped, %d failed; %d provisioning run(s) to start",
             out.applied, out.skipped, out.failed, len(out.specs))
    return out


def _update_collection(sf: Any, records: list[dict], owner: list[str]) -> dict[str, str]:
    """Collection updates (the client sends 200 per call); ``{order_id: first error}`` of failed records.

    A whole-call failure (outage after retries) marks every order of the call failed.
    """
    failures: dict[str, str] = {}
    try:
        results = sf.update_collection(records, all_or_none=False)
    except OrderflowError as exc:
        return {order_id: f"{exc.code.value}: {exc.message}" for order_id in owner}
    for order_id, record, result in zip(owner, records, results, strict=False):
        if not result.success and order_id not in failures:
            err = result.errors[0] if result.errors else {}
            failures[order_id] = (f"{record['attributes']['type']} {record['id']}: "
                                  f"{err.get('statusCode', 'ERROR')} {err.get('message', '')}").strip()
    if len(results) < len(records):
        for order_id in owner[len(results):]:
            failures.setdefault(order_id, "no result returned for this record")
    return failures
