"""Task bodies of the ``order_event_sensor`` DAG (the DAG file only wires them)."""

from __future__ import annotations

import logging
from typing import Any

from orderflow.errors import OrderflowError
from orderflow.events import (
    CHECKPOINT_VARIABLE,
    MAX_EVENTS_PER_RUN,
    PROVISION_DAG_ID,
    RECENT_RUNS_VARIABLE,
    SWEEP_LIMIT,
    TOPIC,
)
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
CHECKPOINT_XCOM = "checkpoint"
CONN_ID = "salesforce_default"


def pubsub_client(conn_id: str = CONN_ID):
    """A :class:`PubSubClient` on the hook's shared token cache (re-login only when refused)."""
    from orderflow.salesforce.hook import SalesforceJwtHook

    return SalesforceJwtHook(conn_id).get_pubsub_client()


def drain_events(wait: dict[str, Any], ti: Any, client: Any = None) -> list[dict[str, Any]]:
    """Drain after the sensor's position; push the next checkpoint as XCom ``checkpoint``; return run specs."""
    start = StartPosition.from_dict(wait["start"])
    status = wait.get("status")
    if status == "timeout":
        position = wait.get("position") or None
        ti.xcom_push(key=CHECKPOINT_XCOM, value={"replay_id": position, "events": 0})
        return []
    seed = event_from_dict(wait["first_event"]) if wait.get("first_event") else None
    client = client or pubsub_client()
    try:
        result = drain(client, TOPIC, start, MAX_EVENTS_PER_RUN, seed=seed)
    finally:
        close = getattr(client, "close", None)
        if close:
            close()
    checkpoint = result.checkpoint
    if checkpoint is None and status == "corrupted":
        checkpoint = ""  # forget the corrupted id: the next run starts from EARLIEST
    ti.xcom_push(key=CHECKPOINT_XCOM, value={"replay_id": checkpoint, "events": result.events,
                                             "summary": result.summary()})
    return result.specs


def sweep(drain_specs: list[dict[str, Any]], minutes: int, ti: Any, query: Any = None) -> list[dict[str, Any]]:
    """The drain's specs plus sweep specs. A Salesforce failure skips this sweep (logged), never the drain."""
    specs = list(drain_specs or [])

    def count_in_flight(run_ids: list[str]) -> int:
        return ti.get_dr_count(dag_id=PROVISION_DAG_ID, run_ids=run_ids, states=IN_FLIGHT_STATES)

    try:
        if query is None:
            from orderflow.salesforce.hook import SalesforceJwtHook

            query = SalesforceJwtHook(CONN_ID).get_conn().query
        result = sweep_stuck_orders(query, count_in_flight, int(minutes), SWEEP_LIMIT,
                                    RecentRuns(AirflowVariableStore(), RECENT_RUNS_VARIABLE),
                                    exclude_orders={s["conf"]["order_id"] for s in specs})
    except OrderflowError as exc:
        log.error("sweep skipped this round (the next DAG run tries again): %s", exc)
        return specs
    return specs + result.specs


def advance_checkpoint(ti: Any, specs: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Store the drained position (the runs exist now) and remember the event runs for the sweep."""
    drained = ti.xcom_pull(task_ids="drain_events", key=CHECKPOINT_XCOM) or {}
    store = CheckpointStore(AirflowVariableStore(), CHECKPOINT_VARIABLE, TOPIC)
    try:
        old = store.load()
        unusable = False
    except CheckpointProblem:
        old, unusable = None, True
    event_runs = {s["conf"]["order_id"]: s["trigger_run_id"] for s in specs or [] if s["conf"]["source"] == "event"}
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
