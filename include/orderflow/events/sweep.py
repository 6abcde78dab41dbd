"""Sweep: start a run for Orders stuck in ``Activating`` that no event (or run) took care of.

Events get lost (72 h retention, outages, a paused sensor), so every sensor DAG run also asks
Salesforce for Orders with ``Activation_Status__c = 'Activating'`` and ``LastModifiedDate`` older
than a threshold (default 15 min), and starts ``provision_order`` for those with no run in flight.

How "in flight" is known without ORM access (Airflow 3 tasks): the Task SDK can only count runs
by exact run id and state (``RuntimeTaskInstance.get_dr_count``), so the sweep checks a set of
deterministic candidate run ids per order:

* its own run id ``order__<OrderId>__sweep__<LastModifiedDate epoch>``: the same stuck state
  always maps to the same run id, so a sweep run in flight (or already finished for that exact
  state) is never started twice — an existing run id is skipped when runs are started;
* the event run the drain started last for the order (the ``RecentRuns`` ledger, 24 h).

Limits: runs started by hand or by reconciliation have run ids the sweep cannot guess; for those
the provisioning DAG's own guards (Activating check, find-before-create in WHMCS) are the
backstop. A sweep run that failed for a given stuck state is not retried by the sweep; the
nightly reconciliation (STUCK_ACTIVATING) or ops re-trigger it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from orderflow.events.checkpoint import RecentRuns
from orderflow.events.drain import RUN_ID_PREFIX, run_spec
from orderflow.salesforce.soql import InvalidSalesforceId, literal, validate_order_id

log = logging.getLogger(__name__)

IN_FLIGHT_STATES = ["queued", "running"]


def parse_sf_datetime(value: str) -> dt.datetime:
    """``2024-05-20T20:49:32.000+0000`` (REST) or ISO forms -> aware UTC datetime."""
    text = value.strip()
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return dt.datetime.strptime(text, fmt).astimezone(dt.UTC)
        except ValueError:
            continue
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def sweep_run_id(order_id: str, last_modified: dt.datetime) -> str:
    """``order__<OrderId>__sweep__<epoch seconds of LastModifiedDate>``: one run id per stuck state."""
    return f"{RUN_ID_PREFIX}{order_id}__sweep__{int(last_modified.timestamp())}"


def stuck_orders_soql(minutes: int, now: dt.datetime, limit: int, modified_before: dt.datetime | None = None) -> str:
    """Activating for more than ``minutes`` (and, if given, last modified before ``modified_before``)."""
    cutoff = now - dt.timedelta(minutes=minutes)
    if modified_before is not None:
        cutoff = min(cutoff, modified_before)
    return ("SELECT Id, LastModifiedDate FROM Order WHERE Activation_Status__c = 'Activating' "
            f"AND LastModifiedDate < {literal(cutoff)} ORDER BY LastModifiedDate LIMIT {int(limit)}")


@dataclass
class SweepResult:
    specs: list[dict[str, Any]] = field(default_factory=list)
    stuck: int = 0
    in_flight: list[str] = field(default_factory=list)
    in_this_batch: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"stuck": self.stuck, "runs": len(self.specs), "in_flight": len(self.in_flight),
                "in_this_batch": len(self.in_this_batch)}


def sweep_stuck_orders(
    query: Callable[[str], list[dict]],
    count_in_flight: Callable[[list[str]], int],
    minutes: int,
    limit: int,
    recent_runs: RecentRuns | None = None,
    exclude_orders: Iterable[str] = (),
    now: dt.datetime | None = None,
    modified_before: dt.datetime | None = None,
) -> SweepResult:
    """Specs (``source=sweep``) for stuck orders without a run in flight or in this drain's batch.

    ``count_in_flight(run_ids)`` returns how many of those provision_order runs are queued or
    running (``RuntimeTaskInstance.get_dr_count`` in a task). ``modified_before``: the time up to
    which the drain has seen every event; orders modified later wait for the next drain.
    """
    if minutes < 1:
        raise ValueError("sweep_minutes must be at least 1")
    now = now or dt.datetime.now(dt.UTC)
    rows = query(stuck_orders_soql(minutes, now, limit, modified_before))
    excluded = set(exclude_orders)
    ledger = recent_runs.load() if recent_runs is not None else {}
    result = SweepResult(stuck=len(rows))
    candidates: list[tuple[str, str, list[str]]] = []
    for row in rows:
        try:
            order_id = validate_order_id(row.get("Id"), "Order.Id")
            last_modified = parse_sf_datetime(str(row.get("LastModifiedDate") or ""))
        except (InvalidSalesforceId, ValueError) as exc:
            log.warning("sweep: skipping an Order row it cannot read: %s", exc)
            continue
        if order_id in excluded:
            result.in_this_batch.append(order_id)
            continue
        own = sweep_run_id(order_id, last_modified)
        ids = [own] + ([ledger[order_id][0]] if order_id in ledger else [])
        candidates.append((order_id, own, ids))
    # One count for all candidates; per order only when something is in flight.
    in_flight_any = bool(candidates) and count_in_flight([i for _, _, ids in candidates for i in ids]) > 0
    for order_id, own, ids in candidates:
        if in_flight_any and count_in_flight(ids) > 0:
            result.in_flight.append(order_id)
            log.info("sweep: order %s is stuck in Activating but has a run in flight (%s); not sweeping it",
                     order_id, ", ".join(ids))
            continue
        result.specs.append(run_spec(order_id, own, None, "sweep"))
    log.info("sweep (Activating for > %d min): %d stuck, %d run spec(s), %d in flight, %d already in this batch",
             minutes, result.stuck, len(result.specs), len(result.in_flight), len(result.in_this_batch))
    return result
