"""Salesforce platform events -> provision_order runs: checkpoint, drain, sweep, trigger, sensor.

The ``order_event_sensor`` DAG wires these (docs/architecture.md, "Order events"). Everything here except
``trigger``/``sensor`` works without Airflow, so the logic is unit-testable.
"""

from __future__ import annotations

import os

TOPIC = os.environ.get("ORDERFLOW_EVENT_TOPIC", "/event/OrderProvisionRequested__e")
CHECKPOINT_VARIABLE = "orderflow_event_checkpoint"
RECENT_RUNS_VARIABLE = "orderflow_event_recent_runs"
PROVISION_DAG_ID = "provision_order"
# Events per DAG run: [core] max_map_length is 1024 and the sweep adds up to SWEEP_LIMIT more.
MAX_EVENTS_PER_RUN = int(os.environ.get("ORDERFLOW_EVENTS_PER_RUN", "500"))
SWEEP_LIMIT = int(os.environ.get("ORDERFLOW_SWEEP_LIMIT", "200"))
DEFAULT_SWEEP_MINUTES = 15
REPLAY_PARAM_PATTERN = r"^(checkpoint|latest|earliest|[0-9a-fA-F]{16,})$"


def sweep_minutes_default() -> int:
    """``ORDERFLOW_SWEEP_MINUTES`` (default 15): how long an order may sit in Activating unnoticed."""
    try:
        return max(1, int(os.environ.get("ORDERFLOW_SWEEP_MINUTES", DEFAULT_SWEEP_MINUTES)))
    except ValueError:
        return DEFAULT_SWEEP_MINUTES


def sensor_timeout_seconds() -> float:
    """How long one wait lasts before the DAG run sweeps anyway (``ORDERFLOW_EVENT_WAIT_SECONDS``, 60)."""
    return float(os.environ.get("ORDERFLOW_EVENT_WAIT_SECONDS", "60"))


def wait_ends_in_triggerer() -> bool:
    """Whether the trigger ends the wait task itself (``TaskSuccessEvent`` with the result as XCom).

    On (the default) an event's way to its run skips one task start on a worker. ``dag.test()`` in
    Airflow 3.3.2 drops such an event's XComs (it resumes the task with the payload ``"success"``),
    so the test suite turns it off with ``ORDERFLOW_WAIT_ENDS_IN_TRIGGERER=0``: the task then resumes
    on a worker with the same result (``sensor.execute_complete``).
    """
    return os.environ.get("ORDERFLOW_WAIT_ENDS_IN_TRIGGERER", "1").strip().lower() not in ("0", "false", "no")
