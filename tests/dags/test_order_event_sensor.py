"""order_event_sensor: the DAG's contract, checked on the parsed DAG (no run needed)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_DIR / "order_event_sensor.py"), safe_mode=False)
    assert bag.import_errors == {}
    return bag.dags["order_event_sensor"]


def test_runs_continuously_one_at_a_time_unpaused(dag):
    assert type(dag.timetable).__name__ == "ContinuousTimetable"
    assert dag.max_active_runs == 1 and dag.catchup is False and dag.is_paused_upon_creation is False
    assert dag.owner == "orderflow" and "orderflow" in dag.tags


def test_wait_drain_start_then_checkpoint_with_the_sweep_beside_the_start(dag):
    """An event's way to its run is wait -> drain -> start; the sweep runs beside the start, not before it.
    One task starts the whole batch's runs (O(1) task instances per batch, not one per order)."""
    from orderflow.events.sensor import OrderEventSensor

    assert isinstance(dag.get_task("wait_for_events"), OrderEventSensor)
    assert dag.get_task("drain_events").upstream_task_ids == {"wait_for_events"}
    assert dag.get_task("start_event_runs").upstream_task_ids == {"drain_events"}
    assert dag.get_task("sweep_stuck_orders").upstream_task_ids == {"drain_events"}
    assert dag.get_task("advance_checkpoint").upstream_task_ids == {"drain_events", "start_event_runs"}
    assert not any(getattr(task, "is_mapped", False) or type(task).__name__ == "MappedOperator"
                   for task in dag.tasks)
    assert {t.task_id for t in dag.tasks} == {"wait_for_events", "drain_events", "start_event_runs",
                                             "sweep_stuck_orders", "advance_checkpoint"}
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id


def test_trigger_lives_outside_the_dag_folder_and_serializes_no_secret():
    import orderflow.events.trigger as module
    from orderflow.events.trigger import OrderEventTrigger

    assert DAGS_DIR not in Path(module.__file__).resolve().parents
    start = {"preset": "CUSTOM", "replay_id": "00ab", "reason": "checkpoint"}
    path, kwargs = OrderEventTrigger("salesforce_default", "/event/X__e", "CUSTOM", "00ab", 30,
                                     start=start).serialize()
    assert path == "orderflow.events.trigger.OrderEventTrigger"
    assert kwargs == {"salesforce_conn_id": "salesforce_default", "topic": "/event/X__e",
                      "replay_preset": "CUSTOM", "replay_id": "00ab", "timeout": 30.0, "start": start}
    assert OrderEventTrigger(**kwargs).serialize() == (path, kwargs)


@pytest.mark.parametrize("conf", [{"replay": "checkpoint"}, {"replay": "latest"}, {"replay": "earliest"},
                                  {"replay": "000000000000002a"}, {"sweep_minutes": 5}])
def test_params_accept(dag, conf):
    params = copy.deepcopy(dag.params)
    params.update(conf)
    params.validate()


@pytest.mark.parametrize("conf, field", [({"replay": "yesterday"}, "replay"), ({"replay": "00ab"}, "replay"),
                                         ({"sweep_minutes": 0}, "sweep_minutes")])
def test_params_refuse(dag, conf, field):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dag.params)
    with pytest.raises(ParamValidationError, match=field):
        params.update(conf)
        params.validate()
