"""Run specs from events: validation, dedupe, run ids, checkpoint and the corrupted fallback."""

from __future__ import annotations

import re

import pytest

from orderflow.events.checkpoint import StartPosition
from orderflow.events.drain import (
    BadEvent,
    build_run_specs,
    drain,
    event_from_dict,
    event_run_id,
    event_to_dict,
    validate_event,
)
from orderflow.salesforce.pubsub import DecodedEvent, FetchResult, ReplayIdCorrupted
from orderflow.salesforce.soql import to_18

AIRFLOW_RUN_ID = re.compile(r"^[A-Za-z0-9_.~:+-]+$")
O1, O2, O3 = (to_18(f"801000000000{i:03d}") for i in (1, 2, 3))


def ev(n: int, order_id: object = O1, idem: object = "k", error: str | None = None) -> DecodedEvent:
    rid = n.to_bytes(8, "big")
    payload = {} if error else {"OrderId__c": order_id, "IdemKey__c": idem, "CreatedById": "005x"}
    return DecodedEvent(rid, rid.hex(), f"uuid-{n}", payload, "schema", error)


def test_run_spec_shape_and_deterministic_run_id():
    (spec,) = build_run_specs([ev(1, O1, f"{O1}:1")]).specs
    assert spec == {"trigger_run_id": f"order__{O1}__{O1}:1",
                    "conf": {"order_id": O1, "idem_key": f"{O1}:1", "source": "event"}}
    assert build_run_specs([ev(9, O1, f"{O1}:1")]).specs[0]["trigger_run_id"] == spec["trigger_run_id"]


@pytest.mark.parametrize("idem", ["a b/c?d", "ü" * 100, "sweep__123", None, "", "x" * 81])
def test_run_ids_always_match_airflows_pattern(idem):
    run_id = build_run_specs([ev(3, O2, idem)]).specs[0]["trigger_run_id"]
    assert AIRFLOW_RUN_ID.match(run_id) and run_id.startswith(f"order__{O2}__")
    assert "__sweep__" not in run_id and len(run_id) <= 250


def test_without_idem_key_the_event_id_keeps_the_run_id_stable():
    assert event_run_id(O1, None, "uuid-7", "07") == f"order__{O1}__evt-uuid-7"
    assert event_run_id(O1, None, "", "07") == f"order__{O1}__rid-07"


def test_15_char_ids_are_normalised_so_both_forms_map_to_one_run():
    specs = build_run_specs([ev(1, O1[:15], "k"), ev(2, O1, "k")]).specs
    assert [s["conf"]["order_id"] for s in specs] == [O1]


@pytest.mark.parametrize("event, reason", [
    (ev(1, error="bad avro"), "undecodable"),
    (ev(1, None), "missing"),
    (ev(1, 42), "missing"),
    (ev(1, "001000000000001AAA"), "not an Order id"),
    (ev(1, "801'; DROP TABLE"), "not an Order id"),
    (ev(1, O1[:15] + "zzz"), "suffix"),
])
def test_bad_events_are_refused_with_a_reason(event, reason):
    with pytest.raises(BadEvent, match=reason):
        validate_event(event)


def test_bad_events_are_logged_with_replay_id_and_skipped(caplog):
    with caplog.at_level("WARNING"):
        batch = build_run_specs([ev(1, O1), ev(2, error="boom"), ev(3, "nope"), ev(4, O2)])
    assert [s["conf"]["order_id"] for s in batch.specs] == [O1, O2] and batch.bad == 2
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "0000000000000002" in logged and "0000000000000003" in logged


def test_dedupe_by_order_within_a_batch_keeps_the_latest_approval():
    batch = build_run_specs([ev(1, O1, "a:1"), ev(2, O2, "b:1"), ev(3, O1, "a:2")])
    assert [(s["conf"]["order_id"], s["conf"]["idem_key"]) for s in batch.specs] == [(O2, "b:1"), (O1, "a:2")]
    assert batch.duplicates == 1


def test_event_dict_round_trip():
    e = ev(5, O3, "z")
    assert event_from_dict(event_to_dict(e)) == e


class FakeBus:
    """Replays a list of events like PubSubClient.fetch (CUSTOM = strictly after the replay id)."""

    def __init__(self, events: list[DecodedEvent], corrupted: set[bytes] = frozenset()) -> None:
        self.events, self.corrupted, self.calls = events, corrupted, []

    def fetch(self, topic, replay_preset="LATEST", replay_id=None, max_events=100, batch_size=100, wait_seconds=5.0):
        self.calls.append((replay_preset, replay_id, max_events, batch_size))
        if replay_preset == "CUSTOM" and replay_id in self.corrupted:
            raise ReplayIdCorrupted("corrupted", replay_id)
        after = [e for e in self.events if replay_preset == "EARLIEST" or e.replay_id > (replay_id or b"")]
        if replay_preset == "LATEST":
            after = []
        got = after[:max_events]
        return FetchResult(got, got[-1].replay_id if got else (replay_id or b""))


def test_drain_caps_events_and_checkpoints_the_last_one_handled():
    bus = FakeBus([ev(i, to_18(f"801000000000{i:03d}"), "k") for i in range(1, 8)])
    result = drain(bus, "t", StartPosition("EARLIEST"), max_events=5)
    assert result.events == 5 and len(result.specs) == 5 and result.checkpoint == (5).to_bytes(8, "big").hex()
    assert bus.calls[0][3] <= 100


def test_drain_continues_after_the_seed_event_from_the_trigger():
    events = [ev(i, to_18(f"801000000000{i:03d}"), "k") for i in range(1, 4)]
    bus = FakeBus(events)
    result = drain(bus, "t", StartPosition("LATEST"), max_events=10, seed=events[0])
    assert bus.calls[0][:2] == ("CUSTOM", events[0].replay_id)
    assert result.events == 3 and result.checkpoint == events[-1].replay_id_hex


def test_a_seed_that_was_the_topics_latest_needs_no_fetch():
    """One approval: the trigger saw its event as the tip, so the drain does not subscribe again (a second
    subscription would only end on a keepalive, seconds later)."""
    seed = ev(1, O1, "k")
    result = drain(None, "t", StartPosition("LATEST"), max_events=10, seed=seed, seed_is_latest=True)
    assert result.events == 1 and [s["conf"]["order_id"] for s in result.specs] == [O1]
    assert result.checkpoint == seed.replay_id_hex


def test_corrupted_start_falls_back_to_earliest_loudly(caplog):
    events = [ev(i, to_18(f"801000000000{i:03d}"), "k") for i in range(1, 4)]
    bus = FakeBus(events, corrupted={b"\xff" * 8})
    with caplog.at_level("ERROR"):
        result = drain(bus, "t", StartPosition("CUSTOM", "ff" * 8), max_events=10)
    assert [c[0] for c in bus.calls] == ["CUSTOM", "EARLIEST"]
    assert result.fell_back_to_earliest and result.events == 3 and result.checkpoint == events[-1].replay_id_hex
    assert any("REPLAY ID CORRUPTED" in r.getMessage() for r in caplog.records)


def test_nothing_heard_leaves_the_checkpoint_alone():
    result = drain(FakeBus([]), "t", StartPosition("LATEST"), max_events=10)
    assert result.specs == [] and result.checkpoint is None
