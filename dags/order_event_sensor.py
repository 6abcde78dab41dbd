"""order_event_sensor: Salesforce order events -> one provision_order run per order (docs/architecture.md).

Runs continuously (one run at a time). Each run: wait for an event without a worker slot
(deferrable sensor; returns after ORDERFLOW_EVENT_WAIT_SECONDS, default 60, to sweep anyway) ->
drain up to 500 events -> start their runs in one task (a run id that already exists is skipped)
-> advance the replay checkpoint (Variable `orderflow_event_checkpoint`). Beside the start, the
sweep finds Orders stuck in Activating and starts their runs.
Params: `replay` = checkpoint | latest | earliest | <hex replay id>; `sweep_minutes`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, task

from orderflow import settings
from orderflow.events import REPLAY_PARAM_PATTERN
from orderflow.events.sensor import OrderEventSensor

default_args = {
    "owner": "orderflow",
    "retries": 3,
    "retry_delay": min(settings.retry_delay(), timedelta(seconds=30)),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=5),
    # Starting runs goes ahead of the provisioning tasks they compete with for executor slots,
    # so a burst of approvals becomes runs quickly even while earlier orders are provisioning.
    "priority_weight": 100,
    "weight_rule": "absolute",
}


@dag(
    dag_id="order_event_sensor",
    schedule="@continuous",
    # A fixed start_date in the past is what makes @continuous continuous: without one, Airflow 3.3's
    # ContinuousTimetable gives the first run a zero-length interval and the next run the same
    # logical date, so the scheduler never creates a second run (the sensor stopped after one run).
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    max_active_runs=1,
    catchup=False,
    is_paused_upon_creation=False,
    tags=["orderflow", "events"],
    default_args=default_args,
    params={
        "replay": Param("checkpoint", type="string", pattern=REPLAY_PARAM_PATTERN, title="Replay from",
                        description="checkpoint (default) | latest | earliest | a hex replay id (16+ hex digits)."),
        "sweep_minutes": Param(settings.sweep_minutes(), type="integer", minimum=1, maximum=10080,
                               title="Sweep threshold (minutes)",
                               description="Orders in Activating for longer than this, with no run in flight, "
                                           "get a provision_order run (source=sweep)."),
    },
    doc_md=__doc__,
)
def order_event_sensor():
    wait = OrderEventSensor(task_id="wait_for_events", replay="{{ params.replay }}")

    # multiple_outputs=False: one XCom per result, not one more per key (inferred from "-> dict").
    @task(multiple_outputs=False, execution_timeout=timedelta(minutes=10))
    def drain_events(wait_result: dict) -> dict:
        from orderflow.events import tasks

        return tasks.drain_events(wait_result)

    # One task starts the whole batch's runs (Airflow's REST API, connection orderflow_airflow_api).
    @task(multiple_outputs=False, execution_timeout=timedelta(minutes=10))
    def start_event_runs(drained: dict) -> dict:
        from orderflow.events import tasks

        return tasks.start_event_runs(drained)

    # Beside the event runs' start, not in front of it: an event never waits for the sweep's query.
    @task(multiple_outputs=False, pool=settings.SALESFORCE_POOL, execution_timeout=timedelta(minutes=5))
    def sweep_stuck_orders(drained: dict, params: dict | None = None, ti=None) -> dict:
        from orderflow.events import tasks

        return tasks.sweep(drained, params["sweep_minutes"], ti)

    @task(multiple_outputs=False)
    def advance_checkpoint(drained: dict) -> dict:
        from orderflow.events import tasks

        return tasks.advance_checkpoint(drained)

    drained = drain_events(wait.output)
    started = start_event_runs(drained)
    checkpoint = advance_checkpoint(drained)
    started >> checkpoint  # the position is stored only once every drained event's run exists
    sweep_stuck_orders(drained)


order_event_sensor()
