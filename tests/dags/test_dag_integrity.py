"""DAG hygiene: every file under dags/ parses cleanly, offline, without touching secrets.

These guard every DAG a later change adds: a new DAG without owner/retries/tags, or one that
reads a connection or opens a socket while being parsed, fails here.
"""

from __future__ import annotations

import copy
import socket
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))

# For every DAG with params: one conf that must validate and confs that must be refused,
# each with the field name the error has to mention. A DAG missing here fails the test.
PARAM_CASES: dict[str, tuple[dict, list[tuple[dict, str]]]] = {
    "provision_order": (
        {"order_id": "801000000000001AAA", "source": "manual"},
        [
            ({"order_id": "001000000000001AAA"}, "order_id"),  # an Account id, not an Order
            ({"order_id": "801'; DROP"}, "order_id"),
            ({"order_id": "801000000000001AAA", "source": "cron"}, "source"),
            ({}, "order_id"),
        ],
    ),
    "order_event_sensor": (
        {"replay": "checkpoint"},
        [({"replay": "yesterday"}, "replay")],
    ),
    "reconcile_orders": (
        {"dry_run": True, "lookback_days": 30, "order_id": None, "max_repairs": 500},
        [({"lookback_days": -1}, "lookback_days"), ({"order_id": "xyz"}, "order_id")],
    ),
}


class _ParseTimeAccess(AssertionError):
    pass


@pytest.fixture
def offline_parse(monkeypatch):
    """Fail loudly if parsing opens a network connection or reads a connection/variable."""
    from airflow.sdk import BaseHook, Connection, Variable

    def deny(*_a, **_k):
        raise _ParseTimeAccess("DAG parsing must not use the network, connections or variables")

    monkeypatch.setattr(socket.socket, "connect", deny)
    monkeypatch.setattr(socket, "create_connection", deny)
    monkeypatch.setattr(BaseHook, "get_connection", classmethod(deny))
    monkeypatch.setattr(Connection, "get", classmethod(deny))
    monkeypatch.setattr(Variable, "get", staticmethod(deny))


@pytest.fixture
def dagbag(offline_parse):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR), safe_mode=False)


def test_dag_folder_has_the_three_contract_dags_or_fewer():
    names = {p.name for p in DAG_FILES}
    assert names <= {"provision_order.py", "order_event_sensor.py", "reconcile_orders.py"}, names


def test_every_dag_file_imports_offline(dagbag):
    assert dagbag.import_errors == {}, dagbag.import_errors
    loaded_files = {Path(dag.fileloc).name for dag in dagbag.dags.values()}
    assert loaded_files == {p.name for p in DAG_FILES}


def test_every_dag_sets_owner_retries_and_tags(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id}: no tags"
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id}: owner not set"
            assert task.retries is not None and task.retries >= 0, f"{dag_id}.{task.task_id}: retries not set"
        assert any(t.retries > 0 for t in dag.tasks) or dag_id == "order_event_sensor", f"{dag_id}: no task retries"


def test_params_accept_good_and_refuse_bad_values(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    for dag_id, dag in dagbag.dags.items():
        if not dag.params:
            continue
        assert dag_id in PARAM_CASES, f"{dag_id}: add param cases to PARAM_CASES"
        good, bad_cases = PARAM_CASES[dag_id]
        params = copy.deepcopy(dag.params)
        params.update(good)
        params.validate()
        for conf, field in bad_cases:
            params = copy.deepcopy(dag.params)
            with pytest.raises(ParamValidationError) as err:
                params.update(conf)
                params.validate()
            assert field in str(err.value), f"{dag_id}: error for {conf} does not name '{field}': {err.value}"


def test_scheduled_dags_create_a_new_logical_date_every_cycle(dagbag, monkeypatch):
    """Why: a run's logical date is unique per DAG, so a timetable that hands the scheduler the same logical
    date twice makes it log "run already exists" and never create another run. That is exactly how
    ``order_event_sensor`` (``@continuous``, no ``start_date``) stopped for good after its first run in
    Airflow 3.3: the first run got a zero-length interval at "now" and the next one the same date.

    Every scheduled DAG must set a fixed ``start_date``, and asking the scheduler's (serialized) DAG for
    three consecutive runs, with the clock moving on between them, must give three increasing dates.
    """
    import datetime as dt

    import airflow.timetables.trigger
    from airflow._shared.timezones import timezone
    from airflow.serialization.serialized_objects import DagSerialization

    clock = {"now": dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)}
    monkeypatch.setattr(timezone, "utcnow", lambda: clock["now"])
    monkeypatch.setattr(airflow.timetables.trigger, "utcnow", lambda: clock["now"])  # cron timetables import it by name
    # The scheduler works on the serialized DAG; time-scheduled timetables say can_be_scheduled.
    serialized_dags = {dag_id: DagSerialization.from_dict(DagSerialization.to_dict(dag))
                       for dag_id, dag in dagbag.dags.items()}
    scheduled = {dag_id: s for dag_id, s in serialized_dags.items() if s.timetable.can_be_scheduled}
    assert "order_event_sensor" in scheduled
    for dag_id, serialized in scheduled.items():
        assert dagbag.dags[dag_id].start_date is not None, f"{dag_id}: a scheduled DAG needs a fixed start_date"
        info, dates = None, []
        for _ in range(3):
            info = serialized.next_dagrun_info(last_automated_run_info=info)
            assert info is not None, f"{dag_id}: the timetable stopped creating runs"
            dates.append(info.logical_date)
            clock["now"] = max(clock["now"], info.run_after) + dt.timedelta(minutes=5)
        assert dates == sorted(set(dates)), f"{dag_id}: logical dates repeat or go back: {dates}"
