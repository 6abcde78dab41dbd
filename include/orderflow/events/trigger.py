"""``OrderEventTrigger``: waits in the triggerer until the order topic has an event after a position.

Shape of providers-standard's file trigger: ``serialize()`` + an async ``run()`` yielding one
``TriggerEvent``; nothing blocking runs on the event loop (connection lookup and token cache file
go through ``asyncio.to_thread``; the Pub/Sub client's retry policy runs the re-login on a worker
thread too). Its kwargs hold the connection id and positions only — never a token: trigger kwargs
are stored in the metadata DB.

The wait's outcome ends the task from the triggerer (``TaskSuccessEvent`` carrying the task's
return value as XCom): the task does not resume on a worker just to hand the result on, which
saves one task start on every event's way to its run. Only ``error`` resumes the task, which
raises and is retried. The payload (``status``) is one of:

* ``events``: ``first_event`` is the first event after the position (JSON form); the drain handles
  it and continues after it (this is what makes ``replay=latest`` lose nothing);
* ``timeout``: nothing arrived within ``timeout`` s; ``position`` is a later safe position the
  server reported (a keepalive), or ""; ``waited_until`` is when the wait ended (ISO, UTC);
* ``corrupted``: the replay id is expired/invalid (``replayid.corrupted``): fall back to EARLIEST;
* ``error``: the subscription failed for good (message is secret-free).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from orderflow.errors import safe_message
from orderflow.events import WaitStatus
from orderflow.events.checkpoint import StartPosition
from orderflow.events.drain import event_to_dict
from orderflow.salesforce.pubsub import PubSubClient, ReplayIdCorrupted

log = logging.getLogger(__name__)


def wait_result(payload: dict[str, Any], start: dict[str, Any] | None, topic: str) -> dict[str, Any]:
    """The wait task's return value (what ``drain_events`` takes) for a trigger payload.

    ``corrupted`` turns the start into EARLIEST (logged loudly: the sweep closes any gap).
    """
    status = payload.get("status")
    if status not in (WaitStatus.EVENTS, WaitStatus.TIMEOUT, WaitStatus.CORRUPTED):
        raise ValueError(f"unexpected trigger event: {status!r}")
    begin = StartPosition.from_dict(start or {"preset": "EARLIEST"})
    if status == WaitStatus.CORRUPTED:
        log.error("REPLAY ID CORRUPTED: %s is expired or invalid on %s. FALLING BACK TO EARLIEST; the sweep "
                  "closes any gap.", begin.describe(), topic)
        begin = StartPosition("EARLIEST", reason=f"replayid.corrupted at {begin.describe()}")
    elif status == WaitStatus.EVENTS:
        log.info("event available at replay id %s", (payload.get("first_event") or {}).get("replay_id"))
    else:
        log.info("no event within the wait; the DAG run sweeps and the next one waits again")
    return {"status": status, "start": begin.to_dict(), "first_event": payload.get("first_event"),
            "position": payload.get("position") or "", "waited_until": payload.get("waited_until"),
            "caught_up": bool(payload.get("caught_up")), "fetched_at": payload.get("fetched_at")}


class OrderEventTrigger(BaseTrigger):
    def __init__(
        self,
        salesforce_conn_id: str,
        topic: str,
        replay_preset: str,
        replay_id: str = "",
        timeout: float = 60.0,
        start: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if replay_preset not in ("CUSTOM", "EARLIEST", "LATEST"):
            raise ValueError(f"replay_preset must be CUSTOM, EARLIEST or LATEST, got {replay_preset!r}")
        self.salesforce_conn_id = salesforce_conn_id
        self.topic = topic
        self.replay_preset = replay_preset
        self.replay_id = replay_id
        self.timeout = float(timeout)
        self.start = start

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"salesforce_conn_id": self.salesforce_conn_id, "topic": self.topic,
             "replay_preset": self.replay_preset, "replay_id": self.replay_id, "timeout": self.timeout,
             "start": self.start},
        )

    # -- blocking parts, run in a thread
    def _connect(self) -> PubSubClient:
        """A Pub/Sub client on the shared 0600 token cache (logs in only when needed).

        When Pub/Sub refuses the token, the client's retry policy calls the refresh once per fetch,
        on a worker thread (``afetch`` never blocks the event loop).
        """
        from orderflow.salesforce.hook import SalesforceJwtHook

        hook = SalesforceJwtHook(self.salesforce_conn_id)
        rest = hook.get_conn()
        holder = {"token": rest.get_access_token()}

        def refresh() -> None:
            rest.invalidate_token()
            holder["token"] = rest.get_access_token()

        return hook.get_pubsub_client(access_token_provider=lambda: holder["token"], on_auth_error=refresh)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait until an event follows the position, or ``timeout`` s; yield one event.

        Each ``afetch`` waits for at most one event and ends on a keepalive, whose position the
        next one starts from; retries, stream resets and the token refresh are the client's.
        """
        base = {"topic": self.topic, "replay_preset": self.replay_preset, "replay_id": self.replay_id}
        deadline = time.monotonic() + self.timeout
        preset, position = self.replay_preset, self.replay_id
        try:
            client = await asyncio.to_thread(self._connect)
            while (remaining := deadline - time.monotonic()) > 0:
                started = time.monotonic()
                fetched_at = dt.datetime.now(dt.UTC).isoformat()
                result = await client.afetch(self.topic, preset,  # type: ignore[arg-type]
                                             bytes.fromhex(position) if preset == "CUSTOM" else None,
                                             max_events=1, batch_size=1, wait_seconds=remaining)
                if result.events:
                    first = result.events[0]
                    # The answer names the topic's latest replay id: when it is this event's, nothing
                    # else was published before this fetch, and the drain need not fetch at all.
                    caught_up = result.at_tip and len(result.events) == 1
                    self.log.info("event on %s at replay id %s%s", self.topic, first.replay_id_hex,
                                  " (the topic's latest)" if caught_up else "")
                    yield self._done({**base, "status": WaitStatus.EVENTS.value, "first_event": event_to_dict(first),
                                      "position": "", "caught_up": caught_up, "fetched_at": fetched_at})
                    return
                if result.latest_replay_id:  # a keepalive: a later safe position
                    preset, position = "CUSTOM", result.latest_replay_id.hex()
                if time.monotonic() - started < 0.5:  # the stream ended early: don't spin
                    await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        except ReplayIdCorrupted:
            self.log.error("REPLAY ID CORRUPTED: %s after %s is expired or invalid", self.topic, self.replay_id)
            yield self._done({**base, "status": WaitStatus.CORRUPTED.value, "position": ""})
            return
        except Exception as exc:  # the task decides (retry); the message is secret-free
            message = safe_message(exc)
            self.log.error("waiting for events on %s failed: %s", self.topic, message)
            yield TriggerEvent({**base, "status": WaitStatus.ERROR.value, "message": message, "position": ""})
            return
        changed = position if (preset == "CUSTOM" and position != self.replay_id) else ""
        # Every event published before now would have ended the wait: the sweep may trust this time.
        yield self._done({**base, "status": WaitStatus.TIMEOUT.value, "position": changed,
                          "waited_until": dt.datetime.now(dt.UTC).isoformat()})

    def _done(self, payload: dict[str, Any]) -> TriggerEvent:
        """End the task here with its return value; without ``start`` (an older deferral) resume it."""
        if self.start is None:
            return TriggerEvent(payload)
        return TaskSuccessEvent(xcoms={"return_value": wait_result(payload, self.start, self.topic)})
