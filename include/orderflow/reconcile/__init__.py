"""Nightly WHMCS <-> Salesforce reconciliation: extract, compare, repair, report.

The ``reconcile_orders`` DAG wires these modules; none of them imports Airflow, so each runs and
is unit-tested on its own (docs/architecture.md, "Reconciliation"). Bulk data moves between the
steps as files in the run's folder; only paths and small summaries go through XCom.
"""

from __future__ import annotations

from enum import StrEnum

RECONCILE_DAG_ID = "reconcile_orders"
PROVISION_DAG_ID = "provision_order"
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

