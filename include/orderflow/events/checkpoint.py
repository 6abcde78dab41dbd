"""The durable replay checkpoint: where the next drain starts on the event topic.

Stored as JSON in the Airflow Variable ``orderflow_event_checkpoint`` (Admin -> Variables):
``{"replay_id": "<hex>", "topic": "/event/...", "updated_at": "<ISO UTC>", "events_seen": <int>}``.
Ops can read it, edit ``replay_id`` or delete the Variable (the next run then starts from
EARLIEST; duplicates are skipped by run id). It is written only after the provisioning runs for
the drained events exist, so a crash re-drains instead of losing events (at-least-once).

The storage is a tiny key/value interface (:class:`KeyValueStore`) so the logic runs without
Airflow; :class:`AirflowVariableStore` is the production one (Task SDK ``Variable``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

log = logging.getLogger(__name__)

Preset = Literal["CUSTOM", "EARLIEST", "LATEST"]
_HEX_RE = re.compile(r"^[0-9a-fA-F]{2,}$")
RECENT_RUNS_MAX = 2000
RECENT_RUNS_MAX_AGE_SECONDS = 24 * 3600


class KeyValueStore(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...


class MemoryStore:
    """A dict-backed store for tests and tools."""

    def __init__(self, data: dict[str, str] | None = None) -> None:
        self.data: dict[str, str] = dict(data or {})

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def set(self, key: str, value: str) -> None:
        self.data[key] = value


class AirflowVariableStore:
    """Airflow Variables through the Task SDK (works in tasks; the worker has no ORM access)."""

    def get(self, key: str) -> str | None:
        from airflow.sdk import Variable

        return Variable.get(key, default=None)

    def set(self, key: str, value: str) -> None:
        from airflow.sdk import Variable

        Variable.set(key, value)


def utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Checkpoint:
    """The last position whose events all have provisioning runs. ``replay_id`` is opaque hex."""

    replay_id: str
    topic: str
    updated_at: str = ""
    events_seen: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class StartPosition:
    """Where a wait/drain subscribes: CUSTOM after ``replay_id`` (hex), or a preset."""

    preset: Preset
    replay_id: str = ""
    reason: str = ""

    @property
    def replay_id_bytes(self) -> bytes | None:
        return bytes.fromhex(self.replay_id) if self.preset == "CUSTOM" else None

    def describe(self) -> str:
        return f"CUSTOM after {self.replay_id}" if self.preset == "CUSTOM" else self.preset

    def to_dict(self) -> dict:
        return {"preset": self.preset, "replay_id": self.replay_id, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict) -> StartPosition:
        return cls(data["preset"], data.get("replay_id") or "", data.get("reason") or "")


class CheckpointProblem(ValueError):
    """The stored checkpoint is unreadable (bad JSON, non-hex replay id, another topic)."""


def parse_checkpoint(raw: str | None, topic: str) -> Checkpoint | None:
    """The stored checkpoint, None when absent; raises :class:`CheckpointProblem` when unusable."""
    if raw is None or not str(raw).strip():
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        raise CheckpointProblem("the checkpoint Variable is not JSON") from None
    if not isinstance(data, dict):
        raise CheckpointProblem("the checkpoint Variable is not a JSON object")
    replay_id = str(data.get("replay_id") or "").strip()
    if replay_id and not _HEX_RE.match(replay_id):
        raise CheckpointProblem(f"checkpoint replay_id is not hex: {replay_id[:40]!r}")
    stored_topic = str(data.get("topic") or topic)
    if stored_topic != topic:
        raise CheckpointProblem(f"checkpoint is for topic {stored_topic!r}, not {topic!r}")
    try:
        seen = int(data.get("events_seen") or 0)
    except (TypeError, ValueError):
        seen = 0
    return Checkpoint(replay_id.lower(), topic, str(data.get("updated_at") or ""), seen)


class CheckpointStore:
    """Read/write the checkpoint JSON under one key of a :class:`KeyValueStore`."""

    def __init__(self, store: KeyValueStore, key: str, topic: str) -> None:
        self.store, self.key, self.topic = store, key, topic

    def load(self) -> Checkpoint | None:
        """The checkpoint, or None when absent; raises :class:`CheckpointProblem` when unusable."""
        return parse_checkpoint(self.store.get(self.key), self.topic)

    def save(self, replay_id_hex: str, events_seen: int) -> Checkpoint:
        checkpoint = Checkpoint(replay_id_hex, self.topic, utc_now_iso(), events_seen)
        self.store.set(self.key, checkpoint.to_json())
        return checkpoint


def resolve_start(replay: str, store: CheckpointStore) -> StartPosition:
    """Turn the ``replay`` param (checkpoint | latest | earliest | hex replay id) into a position.

    No checkpoint (first run, or deleted by ops) starts from EARLIEST: every retained event is
    drained again and runs that already exist are skipped by run id. An unreadable checkpoint
    does the same, with an ERROR log line.
    """
    choice = (replay or "checkpoint").strip()
    lowered = choice.lower()
    if lowered == "latest":
        return StartPosition("LATEST", reason="replay=latest")
    if lowered == "earliest":
        return StartPosition("EARLIEST", reason="replay=earliest")
    if lowered != "checkpoint":
        if not _HEX_RE.match(choice) or len(choice) % 2:
            raise ValueError(f"replay must be checkpoint, latest, earliest or a hex replay id, got {choice[:40]!r}")
        return StartPosition("CUSTOM", choice.lower(), reason="replay=<explicit replay id>")
    try:
        checkpoint = store.load()
    except CheckpointProblem as exc:
        log.error("EVENT CHECKPOINT UNUSABLE (%s): starting from EARLIEST; the sweep closes any gap. "
                  "Fix or delete the Variable %r.", exc, store.key)
        return StartPosition("EARLIEST", reason=f"unusable checkpoint: {exc}")
    if checkpoint is None or not checkpoint.replay_id:
        log.warning("no event checkpoint in Variable %r: starting from EARLIEST (existing runs are skipped)",
                     store.key)
        return StartPosition("EARLIEST", reason="no checkpoint")
    return StartPosition("CUSTOM", checkpoint.replay_id, reason="checkpoint")


# --------------------------------------------------------------------------- recent runs ledger


class RecentRuns:
    """Which provisioning run the drain started last for each order (bounded: 24 h, 2,000 orders).

    The sweep uses it to tell whether an order already has a run in flight, because a task cannot
    list runs by pattern without ORM access (it can only count runs by exact run id). Stored as
    JSON ``{order_id: [run_id, epoch_seconds]}`` in its own Variable; losing it only means the
    sweep may start a second (idempotent) run for an order whose event run is still queued.
    """

    def __init__(self, store: KeyValueStore, key: str, clock=time.time) -> None:
        self.store, self.key, self.clock = store, key, clock

    def load(self) -> dict[str, list]:
        raw = self.store.get(self.key)
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            log.warning("Variable %r is not JSON; ignoring it", self.key)
            return {}
        if not isinstance(data, dict):
            return {}
        cutoff = self.clock() - RECENT_RUNS_MAX_AGE_SECONDS
        return {k: v for k, v in data.items()
                if isinstance(v, list) and len(v) == 2 and isinstance(v[1], (int, float)) and v[1] >= cutoff}

    def record(self, runs: dict[str, str]) -> None:
        """Remember ``{order_id: run_id}`` for the runs just started (no write when empty)."""
        if not runs:
            return
        data = self.load()
        now = int(self.clock())
        for order_id, run_id in runs.items():
            data.pop(order_id, None)  # re-insert: dicts keep insertion order, newest last
            data[order_id] = [run_id, now]
        if len(data) > RECENT_RUNS_MAX:
            data = dict(list(data.items())[-RECENT_RUNS_MAX:])
        self.store.set(self.key, json.dumps(data, separators=(",", ":")))
