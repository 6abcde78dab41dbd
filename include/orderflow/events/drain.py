"""Drain order events from Pub/Sub and turn them into ``provision_order`` run specs.

One spec per distinct OrderId in the drained batch, with a deterministic run id
``order__<OrderId18>__<IdemKey>`` so an event delivered twice, or drained again from an older
checkpoint, maps to a run that already exists and is skipped when runs are started
(``orderflow.provision_runs``). Bad events (undecodable Avro, missing or malformed
``OrderId__c``) are logged with their replay id and skipped; they never stop the drain.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from orderflow import settings
from orderflow.events.checkpoint import StartPosition
from orderflow.salesforce.pubsub import DecodedEvent, FetchResult, ReplayIdCorrupted, replay_id_from_hex
from orderflow.salesforce.soql import InvalidSalesforceId, validate_order_id

log = logging.getLogger(__name__)

RUN_ID_RE = re.compile(r"^[A-Za-z0-9_.~:+-]+$")  # Airflow's default [scheduler] allowed_run_id_pattern
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_.~:+-]")
_ORDER_ID_RE = re.compile(settings.ORDER_ID_PATTERN)
IDEM_KEY_MAX = 80  # IdemKey__c is Text(80); provision_order's idem_key param allows 80
RUN_ID_PREFIX = "order__"
FETCH_BATCH = 100  # Pub/Sub flow control: at most 100 events owed per Subscribe


class EventSource(Protocol):
    def fetch(self, topic: str, replay_preset: str = "LATEST", replay_id: bytes | None = None,
              max_events: int = 100, batch_size: int = 100, wait_seconds: float = 5.0) -> FetchResult: ...


class BadEvent(ValueError):
    """An event that cannot start a provisioning run."""


def _safe_part(value: str, limit: int = IDEM_KEY_MAX) -> str:
    return _UNSAFE_RE.sub("_", value)[:limit]


def event_run_id(order_id: str, idem_key: str | None, event_id: str = "", replay_id_hex: str = "") -> str:
    """``order__<OrderId>__<IdemKey>``; without an IdemKey the event's id stands in (stable on redelivery)."""
    key = _safe_part(idem_key) if idem_key else ""
    if not key:
        key = f"evt-{_safe_part(event_id, 64)}" if event_id else f"rid-{_safe_part(replay_id_hex, 64)}"
    if key.startswith("sweep__"):  # keep the sweep's run id space to the sweep
        key = "k-" + key
    run_id = f"{RUN_ID_PREFIX}{order_id}__{key}"
    if not RUN_ID_RE.match(run_id):  # order ids are validated; this guards future changes
        raise ValueError(f"run id {run_id!r} does not match Airflow's run id pattern")
    return run_id


def run_spec(order_id: str, run_id: str, idem_key: str | None, source: str) -> dict[str, Any]:
    """One run spec for ``provision_runs.start_provision_runs``."""
    return {"trigger_run_id": run_id, "conf": {"order_id": order_id, "idem_key": idem_key, "source": source}}


def validate_event(event: DecodedEvent) -> tuple[str, str | None]:
    """``(order_id_18, idem_key)`` of a usable event; raises :class:`BadEvent` with the reason."""
    if event.decode_error:
        raise BadEvent(f"undecodable payload: {event.decode_error}")
    raw = event.payload.get("OrderId__c")
    if not isinstance(raw, str) or not raw:
        raise BadEvent("OrderId__c is missing")
    if not _ORDER_ID_RE.match(raw):
        raise BadEvent(f"OrderId__c is not an Order id: {raw[:40]!r}")
    try:
        order_id = validate_order_id(raw, "OrderId__c")
    except InvalidSalesforceId as exc:
        raise BadEvent(str(exc)) from None
    idem = event.payload.get("IdemKey__c")
    if not isinstance(idem, str) or not idem.strip():
        idem = None
    elif len(idem) > IDEM_KEY_MAX:
        log.warning("event %s: IdemKey__c longer than %d chars; using the event id instead",
                    event.replay_id_hex, IDEM_KEY_MAX)
        idem = None
    return order_id, idem


@dataclass
class BatchSpecs:
    specs: list[dict[str, Any]] = field(default_factory=list)
    bad: int = 0
    duplicates: int = 0


def build_run_specs(events: Iterable[DecodedEvent], source: str = "event") -> BatchSpecs:
    """Validate, skip bad events (logged with replay id), dedupe by OrderId (the latest approval wins)."""
    out = BatchSpecs()
    by_order: dict[str, dict[str, Any]] = {}
    for event in events:
        try:
            order_id, idem = validate_event(event)
        except BadEvent as exc:
            out.bad += 1
            log.warning("skipping bad event replay_id=%s event_id=%s: %s", event.replay_id_hex, event.event_id, exc)
            continue
        if order_id in by_order:
            out.duplicates += 1
            del by_order[order_id]  # re-insert: keep the batch's order of last appearance
        by_order[order_id] = run_spec(order_id, event_run_id(order_id, idem, event.event_id, event.replay_id_hex),
                                      idem, source)
    out.specs = list(by_order.values())
    return out


def event_to_dict(event: DecodedEvent) -> dict[str, Any]:
    """JSON-safe form (for a TriggerEvent payload / XCom); no secrets in an event."""
    return {"replay_id": event.replay_id_hex, "event_id": event.event_id, "payload": dict(event.payload),
            "schema_id": event.schema_id, "decode_error": event.decode_error}


def event_from_dict(data: dict[str, Any]) -> DecodedEvent:
    replay_hex = str(data.get("replay_id") or "")
    return DecodedEvent(replay_id=replay_id_from_hex(replay_hex), replay_id_hex=replay_hex,
                        event_id=str(data.get("event_id") or ""), payload=dict(data.get("payload") or {}),
                        schema_id=str(data.get("schema_id") or ""), decode_error=data.get("decode_error"))


@dataclass
class DrainResult:
    specs: list[dict[str, Any]]
    checkpoint: str | None  # hex position to store once the runs exist; None = leave the checkpoint as is
    events: int
    bad: int
    duplicates: int
    resubscribes: int = 0
    fell_back_to_earliest: bool = False

    def summary(self) -> dict[str, Any]:
        return {"runs": len(self.specs), "events": self.events, "bad": self.bad, "duplicates": self.duplicates,
                "resubscribes": self.resubscribes, "fell_back_to_earliest": self.fell_back_to_earliest,
                "checkpoint": self.checkpoint}


def drain(source: EventSource | None, topic: str, start: StartPosition, max_events: int,
          seed: DecodedEvent | None = None, wait_seconds: float = 3.0, seed_is_latest: bool = False) -> DrainResult:
    """Fetch up to ``max_events`` events after ``start`` (``seed``, already received, counts as the first).

    ``seed_is_latest``: when the trigger received the seed, it was the topic's latest event, so
    there is nothing to fetch (the common case of one approval: no second subscription, and no
    wait for more events that Pub/Sub would only end with a keepalive).

    ``replayid.corrupted`` falls back to EARLIEST with an ERROR line (the sweep closes any gap).
    The returned checkpoint is safe to store once the runs in ``specs`` exist.
    """
    events: list[DecodedEvent] = [seed] if seed is not None else []
    preset, replay_id = start.preset, start.replay_id_bytes
    if seed is not None:
        preset, replay_id = "CUSTOM", seed.replay_id
    fell_back = False
    latest = seed.replay_id if seed is not None else b""
    resubscribes = 0
    remaining = 0 if (seed is not None and seed_is_latest) else max_events - len(events)
    if remaining > 0:
        assert source is not None, "an event source is needed to fetch"
        try:
            result = source.fetch(topic, preset, replay_id, max_events=remaining, batch_size=FETCH_BATCH,
                                  wait_seconds=wait_seconds)
        except ReplayIdCorrupted:
            log.error("REPLAY ID CORRUPTED on %s (start %s): expired or invalid. Falling back to EARLIEST; "
                      "the sweep of stuck Activating orders closes any gap.", topic,
                      replay_id.hex() if replay_id else preset)
            fell_back = True
            result = source.fetch(topic, "EARLIEST", None, max_events=remaining, batch_size=FETCH_BATCH,
                                  wait_seconds=wait_seconds)
        events.extend(result.events)
        resubscribes = result.resubscribes
        if result.latest_replay_id:
            latest = result.latest_replay_id
    batch = build_run_specs(events)
    checkpoint = latest.hex() if latest else ("" if fell_back else None)
    out = DrainResult(batch.specs, checkpoint, len(events), batch.bad, batch.duplicates, resubscribes, fell_back)
    log.info("drained %d event(s) from %s: %d run spec(s), %d bad, %d duplicate(s) in batch, %d resubscribe(s); "
             "next checkpoint %s", out.events, topic, len(out.specs), out.bad, out.duplicates, out.resubscribes,
             out.checkpoint if out.checkpoint is not None else "(unchanged)")
    return out
