"""Nightly WHMCS <-> Salesforce reconciliation: extract, compare, repair, report.

The ``reconcile_orders`` DAG wires these modules; none of them imports Airflow, so each runs and
is unit-tested on its own (docs/architecture.md, "Reconciliation"). Bulk data moves between the
steps as files in the run's folder; only paths and small summaries go through XCom.
"""

from __future__ import annotations

import os
from enum import StrEnum

RECONCILE_DAG_ID = "reconcile_orders"
PROVISION_DAG_ID = "provision_order"
TIMEZONE_ENV = "ORDERFLOW_RECONCILE_TIMEZONE"
REPORTS_URL_ENV = "ORDERFLOW_REPORTS_URL"
WORK_DIR_ENV = "ORDERFLOW_RECONCILE_WORK_DIR"
DEFAULT_REPORTS_URL = "file:///tmp/orderflow-reports"
RECENT_RUNS_VARIABLE = "orderflow_reconcile_recent_runs"
RECENTLY_CHANGED_MINUTES = 10


class Category(StrEnum):
    """Drift categories in precedence order: the first that matches an order wins."""

    DUPLICATE_IN_WHMCS = "DUPLICATE_IN_WHMCS"
    MISSING_IN_WHMCS = "MISSING_IN_WHMCS"
    IN_FLIGHT = "IN_FLIGHT"
    SF_BEHIND = "SF_BEHIND"
    STUCK_ACTIVATING = "STUCK_ACTIVATING"
    PAYMENT_RECOVERED = "PAYMENT_RECOVERED"
    WHMCS_PENDING = "WHMCS_PENDING"
    SERVICE_DRIFT = "SERVICE_DRIFT"
    ORPHAN_IN_WHMCS = "ORPHAN_IN_WHMCS"
    IN_SYNC = "IN_SYNC"


SEVERITY = {
    Category.DUPLICATE_IN_WHMCS: "high",
    Category.MISSING_IN_WHMCS: "high",
    Category.IN_FLIGHT: "info",
    Category.SF_BEHIND: "medium",
    Category.STUCK_ACTIVATING: "medium",
    Category.PAYMENT_RECOVERED: "low",
    Category.WHMCS_PENDING: "medium",
    Category.SERVICE_DRIFT: "medium",
    Category.ORPHAN_IN_WHMCS: "medium",
    Category.IN_SYNC: "none",
}

# Categories a repair acts on (WHMCS_PENDING only with accept_pending).
REPAIRABLE = frozenset({Category.SF_BEHIND, Category.STUCK_ACTIVATING, Category.PAYMENT_RECOVERED,
                        Category.WHMCS_PENDING})
# Not counted as drift by the max_drift_percent brake.
NOT_DRIFT = frozenset({Category.IN_SYNC, Category.IN_FLIGHT})


def timezone_name() -> str:
    """``ORDERFLOW_RECONCILE_TIMEZONE`` (an IANA name, default UTC): where 02:00 is."""
    return os.environ.get(TIMEZONE_ENV, "").strip() or "UTC"


def reports_url() -> str:
    """``ORDERFLOW_REPORTS_URL``: the base of ``reconcile/<run id>/`` (any fsspec URL; default a local folder)."""
    return os.environ.get(REPORTS_URL_ENV, "").strip() or DEFAULT_REPORTS_URL
