"""Checkpoint parsing, the replay param and the recent-runs ledger (no Airflow needed)."""

from __future__ import annotations

import json

import pytest

from orderflow.events.checkpoint import (
    RECENT_RUNS_MAX,
    CheckpointProblem,
    CheckpointStore,
    MemoryStore,
    RecentRuns,
    parse_checkpoint,
    resolve_start,
)

TOPIC = "/event/OrderProvisionRequested__e"
KEY = "orderflow_event_checkpoint"


def store_with(raw: str | None) -> CheckpointStore:
    return CheckpointStore(MemoryStore({KEY: raw} if raw is not None else {}), KEY, TOPIC)


def test_save_then_load_round_trips_the_documented_json():
    store = store_with(None)
    store.save("00000000000000ab", 12)
    data = json.loads(store.store.get(KEY))
    assert set(data) == {"replay_id", "topic", "updated_at", "events_seen"}
    assert data["replay_id"] == "00000000000000ab" and data["topic"] == TOPIC and data["events_seen"] == 12
    assert data["updated_at"].endswith("Z")
    assert store.load().replay_id == "00000000000000ab"


@pytest.mark.parametrize("raw, problem", [
    ("not json", "not JSON"),
    ("[1, 2]", "JSON object"),
    (json.dumps({"replay_id": "zz-not-hex"}), "not hex"),
    (json.dumps({"replay_id": "00ab", "topic": "/event/Other__e"}), "topic"),
])
def test_unusable_checkpoints_are_reported(raw, problem):
    with pytest.raises(CheckpointProblem, match=problem):
        parse_checkpoint(raw, TOPIC)


def test_replay_param_checkpoint_uses_the_stored_position():
    start = resolve_start("checkpoint", store_with(json.dumps({"replay_id": "00000000000000AB", "topic": TOPIC})))
    assert (start.preset, start.replay_id, start.replay_id_bytes) == ("CUSTOM", "00000000000000ab", b"\x00" * 7 + b"\xab")


def test_missing_checkpoint_starts_from_earliest():
    assert resolve_start("checkpoint", store_with(None)).preset == "EARLIEST"
    assert resolve_start("checkpoint", store_with(json.dumps({"replay_id": "", "topic": TOPIC}))).preset == "EARLIEST"


def test_unusable_checkpoint_starts_from_earliest_with_an_error_line(caplog):
    with caplog.at_level("ERROR"):
        start = resolve_start("checkpoint", store_with("{broken"))
    assert start.preset == "EARLIEST"
    assert any("CHECKPOINT UNUSABLE" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("replay, preset, replay_id", [
    ("latest", "LATEST", ""),
    ("EARLIEST", "EARLIEST", ""),
    ("00000000000000FF", "CUSTOM", "00000000000000ff"),
])
def test_replay_param_overrides_the_checkpoint(replay, preset, replay_id):
    start = resolve_start(replay, store_with(json.dumps({"replay_id": "0000000000000001", "topic": TOPIC})))
    assert (start.preset, start.replay_id) == (preset, replay_id)


@pytest.mark.parametrize("bad", ["yesterday", "abc", "0000000000000000f"])
def test_replay_param_refuses_garbage(bad):
    with pytest.raises(ValueError, match="replay"):
        resolve_start(bad, store_with(None))


def test_recent_runs_keep_the_latest_run_per_order_and_expire():
    now = [1_000_000.0]
    ledger = RecentRuns(MemoryStore(), "runs", clock=lambda: now[0])
    ledger.record({"801A": "order__801A__k1"})
    ledger.record({"801A": "order__801A__k2", "801B": "order__801B__k1"})
    assert ledger.load()["801A"] == ["order__801A__k2", 1_000_000]
    now[0] += 25 * 3600
    assert "801A" not in ledger.load() and ledger.load() == {}


def test_recent_runs_are_bounded():
    ledger = RecentRuns(MemoryStore(), "runs", clock=lambda: 5.0)
    ledger.record({f"801{i:015d}": f"r{i}" for i in range(RECENT_RUNS_MAX + 50)})
    data = ledger.load()
    assert len(data) == RECENT_RUNS_MAX and f"801{RECENT_RUNS_MAX + 49:015d}" in data and f"801{0:015d}" not in data
