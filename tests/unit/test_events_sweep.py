"""The sweep: SOQL, run ids per stuck state, and the in-flight exclusion (no Airflow needed)."""

from __future__ import annotations

import datetime as dt

import pytest

from orderflow.events.checkpoint import MemoryStore, RecentRuns
from orderflow.events.sweep import parse_sf_datetime, stuck_orders_soql, sweep_run_id, sweep_stuck_orders
from orderflow.salesforce.soql import to_18

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
A, B, C = (to_18(f"801000000000{i:03d}") for i in (1, 2, 3))
OLD = "2025-03-01T11:30:00.000+0000"


def rows(*ids: str) -> list[dict]:
    return [{"Id": i, "LastModifiedDate": OLD} for i in ids]


class InFlight:
    def __init__(self, run_ids: set[str]) -> None:
        self.run_ids, self.calls = run_ids, 0

    def __call__(self, ids: list[str]) -> int:
        self.calls += 1
        return len(self.run_ids & set(ids))


def test_soql_selects_activating_orders_older_than_the_threshold():
    soql = stuck_orders_soql(15, NOW, 200)
    assert "Activation_Status__c = 'Activating'" in soql
    assert "LastModifiedDate < 2025-03-01T11:45:00Z" in soql and soql.endswith("LIMIT 200")


def test_same_stuck_state_maps_to_the_same_run_id():
    when = parse_sf_datetime(OLD)
    assert sweep_run_id(A, when) == sweep_run_id(A, parse_sf_datetime("2025-03-01T11:30:00Z"))
    assert sweep_run_id(A, when) != sweep_run_id(A, when + dt.timedelta(seconds=1))


def test_stuck_orders_get_sweep_specs():
    in_flight = InFlight(set())
    result = sweep_stuck_orders(lambda q: rows(A, B), in_flight, 15, 200, now=NOW)
    assert [s["conf"] for s in result.specs] == [{"order_id": o, "idem_key": None, "source": "sweep"} for o in (A, B)]
    assert result.specs[0]["trigger_run_id"] == sweep_run_id(A, parse_sf_datetime(OLD))
    assert in_flight.calls == 1  # one count for all when nothing is in flight


def test_orders_with_a_run_in_flight_or_in_this_batch_are_not_swept():
    ledger = RecentRuns(MemoryStore(), "runs")
    ledger.record({B: f"order__{B}__{B}:1"})
    in_flight = InFlight({sweep_run_id(A, parse_sf_datetime(OLD)), f"order__{B}__{B}:1"})
    result = sweep_stuck_orders(lambda q: rows(A, B, C, to_18("801000000000004")), in_flight, 15, 200,
                                recent_runs=ledger, exclude_orders={C}, now=NOW)
    assert [s["conf"]["order_id"] for s in result.specs] == [to_18("801000000000004")]
    assert result.in_flight == [A, B] and result.in_this_batch == [C]


def test_unreadable_rows_are_skipped():
    result = sweep_stuck_orders(lambda q: [{"Id": "bogus", "LastModifiedDate": OLD}, *rows(A)], InFlight(set()),
                                15, 200, now=NOW)
    assert [s["conf"]["order_id"] for s in result.specs] == [A]


def test_threshold_must_be_positive():
    with pytest.raises(ValueError):
        sweep_stuck_orders(lambda q: [], InFlight(set()), 0, 200, now=NOW)


def test_soql_never_reaches_past_what_the_drain_has_seen():
    drained_through = NOW - dt.timedelta(minutes=20)
    soql = stuck_orders_soql(15, NOW, 200, modified_before=drained_through)
    assert "LastModifiedDate < 2025-03-01T11:40:00Z" in soql
    # A drain more recent than the threshold changes nothing.
    assert "LastModifiedDate < 2025-03-01T11:45:00Z" in stuck_orders_soql(15, NOW, 200, modified_before=NOW)


class _Ti:
    def get_dr_count(self, **_kwargs) -> int:
        return 0


def test_an_order_approved_after_the_drain_is_left_to_the_next_drain(monkeypatch):
    """Seen in the soak: a sweep delayed by an Airflow restart swept orders whose events were still
    waiting for the next drain, so one approval got two runs. The sweep's cutoff is the drain's time."""
    from orderflow.events import tasks

    monkeypatch.setattr(tasks, "RecentRuns", lambda *_a: RecentRuns(MemoryStore(), "runs"))
    seen: list[str] = []

    def query(soql: str) -> list[dict]:
        seen.append(soql)
        return []

    drain_time = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    event_spec = {"trigger_run_id": f"order__{A}__{A}:1", "conf": {"order_id": A, "idem_key": f"{A}:1",
                                                                   "source": "event"}}
    # Nothing to sweep, so no run is started (the event's own run is start_event_runs' job, beside the sweep).
    started = tasks.sweep({"specs": [event_spec], "drained_through": drain_time.isoformat()}, 15, _Ti(), query)
    assert started["started"] == [] and started["existing"] == []
    cutoff = drain_time - tasks.DRAIN_CLOCK_MARGIN
    assert f"LastModifiedDate < {cutoff:%Y-%m-%dT%H:%M:%S}Z" in seen[0]
    # The drain left a backlog (no drain time): the sweep waits for the next run, which drains it.
    assert tasks.sweep({"specs": [event_spec], "drained_through": None}, 15, _Ti(), query)["started"] == []
    assert len(seen) == 1
