"""Task bodies of the ``order_event_sensor`` DAG (the DAG file only wires them)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from orderflow import settings
from orderflow.errors import OrderflowError
from orderflow.events import CHECKPOINT_VARIABLE, PROVISION_DAG_ID, RECENT_RUNS_VARIABLE, WaitStatus
from orderflow.events.checkpoint import (
    AirflowVariableStore,
    CheckpointProblem,
    CheckpointStore,
    RecentRuns,
    StartPosition,
)
from orderflow.events.drain import drain, event_from_dict
from orderflow.events.sweep import IN_FLIGHT_STATES, sweep_stuck_orders

log = logging.getLogger(__name__)
# Salesforce stamps LastModifiedDate with its clock, the drain with ours: allow for some skew.
DRAIN_CLOCK_MARGIN = dt.timedelta(seconds=30)


def pubsub_client(conn_id: str = settings.SALESFORCE_CONN_ID):
    """A :class:`PubSubClient` on the hook's shared token cache (re-login only when refused)."""
    from orderflow.salesforce.hook import SalesforceJwtHook

    return SalesforceJwtHook(conn_id).get_pubsub_client()


def drain_events(wait: dict[str, Any] | str, ti: Any = None, client: Any = None) -> dict[str, Any]:
    """Drain after the sensor's position. Returns the hand-off the next tasks take (wired in the DAG):

    ``specs`` (one run per order), ``checkpoint`` (the position to store once the runs exist, and the
    event count) and ``drained_through`` (ISO time up to which every published event is in ``specs``,
    or None when a backlog is left): the sweep leaves orders modified after it to the next drain.
    """
    if isinstance(wait, str):
        # The trigger ended the wait task with TaskSuccessEvent(xcoms=...): Airflow 3.3.2 stores such an
        # XCom JSON-encoded once more than a task's own return value (models.XComModel.set json.dumps it),
        # so it arrives here as the JSON text of the dict.
        wait = json.loads(wait)
    start = StartPosition.from_dict(wait["start"])
    status = wait.get("status")
    if status == WaitStatus.TIMEOUT:
        position = wait.get("position") or None
        return {"specs": [], "checkpoint": {"replay_id": position, "events": 0},
                "drained_through": wait.get("waited_until")}
    seed = event_from_dict(wait["first_event"]) if wait.get("first_event") else None
    seed_is_latest = bool(seed is not None and wait.get("caught_up") and wait.get("fetched_at"))
    if seed_is_latest:
        # The trigger saw the seed as the topic's latest event: nothing more to fetch, and every event
        # published before the trigger's fetch is the seed.
        result = drain(None, settings.EVENT_TOPIC, start, settings.MAX_EVENTS_PER_RUN, seed=seed, seed_is_latest=True)
        fetch_started = dt.datetime.fromisoformat(wait["fetched_at"])
    else:
        client = client or pubsub_client()
        fetch_started = dt.datetime.now(dt.UTC)
        try:
            result = drain(client, settings.EVENT_TOPIC, start, settings.MAX_EVENTS_PER_RUN, seed=seed)
        finally:
            close = getattr(client, "close", None)
            if close:
                close()
    checkpoint = result.checkpoint
    if checkpoint is None and status == WaitStatus.CORRUPTED:
        checkpoint = ""  # forget the corrupted id: the next run starts from EARLIEST
    caught_up = result.events < settings.MAX_EVENTS_PER_RUN
    return {"specs": result.specs, "checkpoint": {"replay_id": checkpoint, "events": result.events,
                                                  "summary": result.summary()},
            "drained_through": fetch_started.isoformat() if caught_up else None}


def start_event_runs(drained: dict[str, Any], client: Any = None) -> dict[str, Any]:
    """Start the drained events' runs: one task for the whole batch (existing run ids are skipped)."""
    from orderflow.provision_runs import start_provision_runs

    return start_provision_runs(drained.get("specs") or [], client)


def sweep(drained: dict[str, Any], minutes: int, ti: Any, query: Any = None, client: Any = None) -> dict[str, Any]:
    """Find orders stuck in Activating and start their runs; beside the event runs' start, not before it.

    A Salesforce failure skips this sweep (logged), never the drain. Only orders last modified
    before ``drained_through`` are swept: an order approved after the drain (e.g. while this run's
    sweep was delayed by a restart) has its event in the next drain, and sweeping it would start a
    second run for one approval. When the drain left a backlog there is no such time, and the sweep
    waits for the next run (which starts at once: events are waiting). The drain's own orders are
    excluded: their runs are being started by ``start_event_runs`` at the same time.
    """
    from orderflow.provision_runs import start_provision_runs

    return start_provision_runs(_stuck_order_specs(drained, minutes, ti, query), client)


def _stuck_order_specs(drained: dict[str, Any], minutes: int, ti: Any, query: Any) -> list[dict[str, Any]]:
    """The sweep's run specs ([] when it waits for the next run or Salesforce failed)."""
    specs = list(drained.get("specs") or [])
    through = drained.get("drained_through")
    if not through:
        log.info("sweep waits for the next run: this drain left a backlog of events (%d run spec(s) now)",
                 len(specs))
        return []
    modified_before = dt.datetime.fromisoformat(through) - DRAIN_CLOCK_MARGIN

    def count_in_flight(run_ids: list[str]) -> int:
        return ti.get_dr_count(dag_id=PROVISION_DAG_ID, run_ids=run_ids, states=IN_FLIGHT_STATES)

    try:
        if query is None:
            from orderflow.salesforce.hook import SalesforceJwtHook

            query = SalesforceJwtHook(settings.SALESFORCE_CONN_ID).get_conn().query
        result = sweep_stuck_orders(query, count_in_flight, int(minutes), settings.SWEEP_LIMIT,
                                    RecentRuns(AirflowVariableStore(), RECENT_RUNS_VARIABLE),
                                    exclude_orders={s["conf"]["order_id"] for s in specs},
                                    modified_before=modified_before)
    except OrderflowError as exc:
        log.error("sweep skipped this round (the next DAG run tries again): %s", exc)
        return []
    return result.specs


def advance_checkpoint(drained: dict[str, Any]) -> dict[str, Any]:
    """Store the drained position (wired after ``start_event_runs``: the runs exist now) and remember
    the event runs for the sweep."""
    specs = drained.get("specs") or []
    drained = drained.get("checkpoint") or {}
    store = CheckpointStore(AirflowVariableStore(), CHECKPOINT_VARIABLE, settings.EVENT_TOPIC)
    try:
        old = store.load()
        unusable = False
    except CheckpointProblem:
        old, unusable = None, True
    event_runs = {s["conf"]["order_id"]: s["trigger_run_id"] for s in specs}
    RecentRuns(AirflowVariableStore(), RECENT_RUNS_VARIABLE).record(event_runs)
    replay_id = drained.get("replay_id")
    if replay_id is None and unusable:
        replay_id = ""  # the run started from EARLIEST (logged as ERROR); don't trip over it every run
    if replay_id is None:
        log.info("checkpoint unchanged (%s)", old.replay_id if old else "none")
        return {"replay_id": old.replay_id if old else None, "changed": False}
    seen = (old.events_seen if old else 0) + int(drained.get("events") or 0)
    saved = store.save(replay_id, seen)
    log.info("checkpoint advanced to %s (%d event(s) seen in all)", saved.replay_id or "(none: EARLIEST)", seen)
    return {"replay_id": saved.replay_id, "changed": True}
