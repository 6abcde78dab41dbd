"""``OrderEventSensor``: read the checkpoint, defer to :class:`OrderEventTrigger`, return on an event.

While deferred the task holds no worker slot (the triggerer waits on the Pub/Sub stream). The
task's result is where the drain starts (``start``), the first event the trigger saw and the
status (``events`` | ``timeout`` | ``corrupted``), so the downstream drain task runs either way:
a timeout makes the DAG run a periodic sweep even when no events arrive. The trigger ends the
task with that result itself (no resume on a worker).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import BaseOperator

from orderflow import settings
from orderflow.errors import ErrorCode, TransientError
from orderflow.events import CHECKPOINT_VARIABLE, WaitStatus
from orderflow.events.checkpoint import AirflowVariableStore, CheckpointStore, resolve_start
from orderflow.events.trigger import OrderEventTrigger, wait_result

log = logging.getLogger(__name__)


class OrderEventSensor(BaseOperator):
    """Wait (deferred) until the order topic has an event after the replay position.

    :param replay: ``checkpoint`` (default) | ``latest`` | ``earliest`` | a hex replay id (templated).
    :param wait_seconds: how long one wait lasts before returning ``timeout`` (default
        ``ORDERFLOW_EVENT_WAIT_SECONDS`` or 60).
    """

    template_fields = ("replay",)
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        salesforce_conn_id: str = settings.SALESFORCE_CONN_ID,
        topic: str = settings.EVENT_TOPIC,
        replay: str = "checkpoint",
        wait_seconds: float | None = None,
        checkpoint_variable: str = CHECKPOINT_VARIABLE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.salesforce_conn_id = salesforce_conn_id
        self.topic = topic
        self.replay = replay
        self.wait_seconds = wait_seconds
        self.checkpoint_variable = checkpoint_variable

    def execute(self, context: Any) -> None:
        store = CheckpointStore(AirflowVariableStore(), self.checkpoint_variable, self.topic)
        start = resolve_start(str(self.replay or "checkpoint"), store)
        timeout = float(self.wait_seconds if self.wait_seconds is not None else settings.event_wait_seconds())
        log.info("waiting up to %.0f s for events on %s from %s (%s)", timeout, self.topic, start.describe(),
                 start.reason)
        self.defer(
            trigger=OrderEventTrigger(self.salesforce_conn_id, self.topic, start.preset, start.replay_id, timeout,
                                      start=start.to_dict() if settings.wait_ends_in_triggerer() else None),
            method_name="execute_complete",
            kwargs={"start": start.to_dict()},
            timeout=dt.timedelta(seconds=timeout + 120),
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None,
                         start: dict[str, Any] | None = None) -> dict[str, Any]:
        """Runs when the trigger failed (``error``), or when the wait resumes on a worker (see ``execute``)."""
        event = event or {}
        if event.get("status") == WaitStatus.ERROR:
            raise TransientError(ErrorCode.SALESFORCE_UNAVAILABLE, f"waiting for events failed: {event.get('message')}")
        return wait_result(event, start, self.topic)
