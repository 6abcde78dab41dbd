"""Deployment settings read from the environment (never connections or Variables at parse time)."""

from __future__ import annotations

import os
from datetime import timedelta

# JSON Schema (the trigger form) and Python both read this; in Python "$" also matches before a final
# newline, so "(?!\n)" refuses "801...\n" there too (a no-op in JavaScript).
ORDER_ID_PATTERN = r"^801[a-zA-Z0-9]{12}(?:[a-zA-Z0-9]{3})?$(?!\n)"
SOURCES = ("manual", "event", "sweep", "reconcile")

SALESFORCE_POOL = os.environ.get("ORDERFLOW_SALESFORCE_POOL", "salesforce_api")
WHMCS_POOL = os.environ.get("ORDERFLOW_WHMCS_POOL", "whmcs_api")
# The connection (type airflow_api) the sensor, the sweep and reconciliation start provision_order runs with.
AIRFLOW_API_CONN_ID = os.environ.get("ORDERFLOW_AIRFLOW_API_CONN_ID", "orderflow_airflow_api")


def run_start_concurrency() -> int:
    """Run-start requests in flight at once (``ORDERFLOW_RUN_START_CONCURRENCY``, default 4)."""
    return max(1, int(os.environ.get("ORDERFLOW_RUN_START_CONCURRENCY", "4")))


def _seconds(name: str, default: float) -> timedelta:
    return timedelta(seconds=float(os.environ.get(name, default)))


def task_retries() -> int:
    return int(os.environ.get("ORDERFLOW_TASK_RETRIES", "4"))


def retry_delay() -> timedelta:
    """First retry delay; doubles each try up to ``max_retry_delay`` (tests shrink it)."""
    return _seconds("ORDERFLOW_RETRY_DELAY_SECONDS", 15)


def max_retry_delay() -> timedelta:
    return _seconds("ORDERFLOW_MAX_RETRY_DELAY_SECONDS", 600)


def addorder_settle_seconds() -> float:
    """The AddOrder settle window (``ORDERFLOW_ADDORDER_SETTLE_SECONDS``, default 180 s).

    After an AddOrder with no clear answer (timeout, dropped connection, a killed task), no second AddOrder
    for that order is sent until this long after the first was sent: until then WHMCS may still commit it.
    180 s is above what a WHMCS request can last: PHP's usual ``max_execution_time`` of 120 s (counted from
    when PHP starts on it) plus the client's 30 s timeout as room for a request that first queued at the web
    server, and some to spare. Raise it if the WHMCS host lets PHP run longer (docs/architecture.md, "Idempotency").
    """
    return max(0.0, float(os.environ.get("ORDERFLOW_ADDORDER_SETTLE_SECONDS", "180")))
