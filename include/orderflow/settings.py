"""Deployment settings: the one module that reads ``ORDERFLOW_*`` from the environment.

Every setting of the pipeline, its default and what it does; the emulators' own (``ORDERFLOW_SANDBOX_*``,
``ORDERFLOW_SF_METADATA_DIR``) are read in ``sandbox/``. *read* says when: ``import`` = once, when this module
is first imported (a DAG file parse, a task process start); ``call`` = on every call, so a change is seen
without a restart (and a test's ``monkeypatch.setenv`` works).

setting                            default                            read    what it does
---------------------------------  ---------------------------------  ------  -----------------------------------------
ORDERFLOW_SALESFORCE_POOL          salesforce_api                     import  pool of the tasks that call Salesforce
ORDERFLOW_WHMCS_POOL               whmcs_api                          import  pool of the tasks that call WHMCS
ORDERFLOW_AIRFLOW_API_CONN_ID      orderflow_airflow_api              import  airflow_api connection that starts runs
ORDERFLOW_RUN_START_CONCURRENCY    4                                  call    run-start requests in flight (at least 1)
ORDERFLOW_TASK_RETRIES             4                                  call    retries of each provision_order task
ORDERFLOW_RETRY_DELAY_SECONDS      15                                 call    first retry delay; doubles each try
ORDERFLOW_MAX_RETRY_DELAY_SECONDS  600                                call    cap of the doubling retry delay
ORDERFLOW_ADDORDER_SETTLE_SECONDS  180                                call    unanswered AddOrder: no 2nd one until then
ORDERFLOW_LOCK_URL                 (unset: files)                     call    redis://...: order lock, AddOrder stamps
ORDERFLOW_NOTIFY_EMAIL             (unset: off)                       call    recipients (a,b) of the "activated" mail
ORDERFLOW_EVENT_TOPIC              /event/OrderProvisionRequested__e  import  platform event channel the sensor reads
ORDERFLOW_EVENTS_PER_RUN           500                                import  events one sensor run drains at most
ORDERFLOW_SWEEP_LIMIT              200                                import  stuck Orders one sweep starts at most
ORDERFLOW_SWEEP_MINUTES            15                                 call    default of the sensor's sweep_minutes
ORDERFLOW_EVENT_WAIT_SECONDS       60                                 call    one sensor wait; then the run sweeps
ORDERFLOW_WAIT_ENDS_IN_TRIGGERER   1                                  call    0: the wait resumes on a worker (tests)
ORDERFLOW_RECONCILE_TIMEZONE       UTC                                call    IANA zone of reconcile_orders' 02:00
ORDERFLOW_REPORTS_URL              file:///tmp/orderflow-reports      call    fsspec base of reconcile/<run id>/ folders
ORDERFLOW_README                   (the checkout's)                   call    the README the console's runbook is from
ORDERFLOW_WORKER_WARM              1                                  call    0: workers skip executing the DAG files
AIRFLOW_HOME (Airflow's)           ~/airflow                          call    .orderflow/ in it: locks, token cache

Fixed here, not read from the environment: the connection ids (``SALESFORCE_CONN_ID``, ``WHMCS_CONN_ID``,
``SMTP_CONN_ID``; ``AIRFLOW_API_CONN_ID`` above), the Order Id pattern and the run sources.
No Airflow import and nothing costly: DAG files, task bodies, the sandbox and the tests import this.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

# JSON Schema (the trigger form) and Python both read this; in Python "$" also matches before a final
# newline, so "(?!\n)" refuses "801...\n" there too (a no-op in JavaScript).
ORDER_ID_PATTERN = r"^801[a-zA-Z0-9]{12}(?:[a-zA-Z0-9]{3})?$(?!\n)"
SOURCES = ("manual", "event", "sweep", "reconcile")

SALESFORCE_CONN_ID = "salesforce_default"
WHMCS_CONN_ID = "whmcs_default"
SMTP_CONN_ID = "smtp_default"
# The connection (type airflow_api) the sensor, the sweep and reconciliation start provision_order runs with.
AIRFLOW_API_CONN_ID = os.environ.get("ORDERFLOW_AIRFLOW_API_CONN_ID", "orderflow_airflow_api")

SALESFORCE_POOL = os.environ.get("ORDERFLOW_SALESFORCE_POOL", "salesforce_api")
WHMCS_POOL = os.environ.get("ORDERFLOW_WHMCS_POOL", "whmcs_api")

EVENT_TOPIC = os.environ.get("ORDERFLOW_EVENT_TOPIC", "/event/OrderProvisionRequested__e")
MAX_EVENTS_PER_RUN = int(os.environ.get("ORDERFLOW_EVENTS_PER_RUN", "500"))
SWEEP_LIMIT = int(os.environ.get("ORDERFLOW_SWEEP_LIMIT", "200"))
DEFAULT_SWEEP_MINUTES = 15
DEFAULT_REPORTS_URL = "file:///tmp/orderflow-reports"


def _seconds(name: str, default: float) -> timedelta:
    return timedelta(seconds=float(os.environ.get(name, default)))


def _text(name: str) -> str:
    return os.environ.get(name, "").strip()


# ----------------------------------------------------------------------------- tasks and retries

def run_start_concurrency() -> int:
    """Run-start requests in flight at once (``ORDERFLOW_RUN_START_CONCURRENCY``, default 4)."""
    return max(1, int(os.environ.get("ORDERFLOW_RUN_START_CONCURRENCY", "4")))


def task_retries() -> int:
    return int(os.environ.get("ORDERFLOW_TASK_RETRIES", "4"))


def retry_delay() -> timedelta:
    """First retry delay; doubles each try up to ``max_retry_delay`` (tests shrink it)."""
    return _seconds("ORDERFLOW_RETRY_DELAY_SECONDS", 15)


def max_retry_delay() -> timedelta:
    return _seconds("ORDERFLOW_MAX_RETRY_DELAY_SECONDS", 600)


# ----------------------------------------------------------------------------- provisioning

def addorder_settle_seconds() -> float:
    """The AddOrder settle window (``ORDERFLOW_ADDORDER_SETTLE_SECONDS``, default 180 s).

    After an AddOrder with no clear answer (timeout, dropped connection, a killed task), no second AddOrder
    for that order is sent until this long after the first was sent: until then WHMCS may still commit it.
    180 s is above what a WHMCS request can last: PHP's usual ``max_execution_time`` of 120 s (counted from
    when PHP starts on it) plus the client's 30 s timeout as room for a request that first queued at the web
    server, and some to spare. Raise it if the WHMCS host lets PHP run longer (docs/architecture.md, "Idempotency").
    """
    return max(0.0, float(os.environ.get("ORDERFLOW_ADDORDER_SETTLE_SECONDS", "180")))


def lock_url() -> str | None:
    """``ORDERFLOW_LOCK_URL`` (``redis://host:6379/0``) or None: the per-order lock's backend is then files."""
    return os.environ.get("ORDERFLOW_LOCK_URL") or None


def worker_warm() -> bool:
    """``ORDERFLOW_WORKER_WARM`` (default 1): executor workers execute the DAG files once before they fork
    task processes (orderflow.worker_preload); 0 leaves that out (the supervisor's exit wait stays)."""
    return os.environ.get("ORDERFLOW_WORKER_WARM", "1").strip() != "0"


def state_dir() -> Path:
    """``$AIRFLOW_HOME/.orderflow`` (``~/airflow`` when unset): lock files, AddOrder stamps, the token cache."""
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow") / ".orderflow"


def notify_recipients() -> list[str]:
    """``ORDERFLOW_NOTIFY_EMAIL`` split at commas; empty (the default) turns the "activated" mail off."""
    return [r.strip() for r in os.environ.get("ORDERFLOW_NOTIFY_EMAIL", "").split(",") if r.strip()]


# ----------------------------------------------------------------------------- order events

def sweep_minutes() -> int:
    """``ORDERFLOW_SWEEP_MINUTES`` (default 15): how long an order may sit in Activating unnoticed."""
    try:
        return max(1, int(os.environ.get("ORDERFLOW_SWEEP_MINUTES", DEFAULT_SWEEP_MINUTES)))
    except ValueError:
        return DEFAULT_SWEEP_MINUTES


def event_wait_seconds() -> float:
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


# ----------------------------------------------------------------------------- reconciliation and console

def reconcile_timezone() -> str:
    """``ORDERFLOW_RECONCILE_TIMEZONE`` (an IANA name, default UTC): where 02:00 is."""
    return _text("ORDERFLOW_RECONCILE_TIMEZONE") or "UTC"


def reports_url() -> str:
    """``ORDERFLOW_REPORTS_URL``: the base of ``reconcile/<run id>/`` (any fsspec URL; default a local folder)."""
    return _text("ORDERFLOW_REPORTS_URL") or DEFAULT_REPORTS_URL


def readme_override() -> str | None:
    """``ORDERFLOW_README``: the README the console reads the runbook from, or None for the checkout's."""
    return os.environ.get("ORDERFLOW_README") or None
