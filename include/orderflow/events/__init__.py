"""Salesforce platform events -> provision_order runs: checkpoint, drain, sweep, trigger, sensor.

The ``order_event_sensor`` DAG wires these (docs/architecture.md, "Order events"). Everything here except
``trigger``/``sensor`` works without Airflow, so the logic is unit-testable. The settings (topic, limits,
waits) are in :mod:`orderflow.settings`.
"""

from __future__ import annotations

from enum import StrEnum

from orderflow.settings import EVENT_TOPIC as TOPIC  # noqa: F401  (bench/event_bench.py imports it from here)

CHECKPOINT_VARIABLE = "orderflow_event_checkpoint"
RECENT_RUNS_VARIABLE = "orderflow_event_recent_runs"
PROVISION_DAG_ID = "provision_order"
REPLAY_PARAM_PATTERN = r"^(checkpoint|latest|earliest|[0-9a-fA-F]{16,})$"


class WaitStatus(StrEnum):
    """How a wait for events ended (the trigger's payload ``status``; payloads carry ``.value``)."""

    EVENTS = "events"  # an event after the position: ``first_event``
    TIMEOUT = "timeout"  # nothing within the wait: the run sweeps anyway
    CORRUPTED = "corrupted"  # replayid.corrupted: the drain starts from EARLIEST
    ERROR = "error"  # the subscription failed: the task resumes and raises (retried)
