"""The status values of both systems, named once (docs/architecture.md, "Salesforce data model").

Salesforce's ``Order.Activation_Status__c`` picklist and the WHMCS order and service statuses
are compared and written in provisioning, reconciliation and the console; a misspelt literal in
one of them would silently never match, so every module takes them from here. ``StrEnum``
members are the strings themselves: they compare equal to the values the APIs answer and go into
JSON, CSV and XCom unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class ActivationStatus(StrEnum):
    """``Order.Activation_Status__c``: where an order is on its way to WHMCS."""

    ACTIVATING = "Activating"  # approved; a provisioning run is (or should be) on its way
    ACTIVATED = "Activated"  # WHMCS order accepted and its ids written back
    FAILED = "Failed"  # a permanent error; the code and a safe message are on the order


class WhmcsOrderStatus(StrEnum):
    """A WHMCS order's ``status`` (``GetOrders``)."""

    PENDING = "Pending"
    ACTIVE = "Active"
    CANCELLED = "Cancelled"
    FRAUD = "Fraud"


class WhmcsServiceStatus(StrEnum):
    """A WHMCS service's ``status`` (``GetClientsProducts``)."""

    PENDING = "Pending"
    ACTIVE = "Active"
    SUSPENDED = "Suspended"
    TERMINATED = "Terminated"
    CANCELLED = "Cancelled"


# An order that exists for exactly-once purposes; a Cancelled or Fraud order does not count as one.
LIVE_ORDER_STATUSES = frozenset({WhmcsOrderStatus.PENDING, WhmcsOrderStatus.ACTIVE})
DEAD_ORDER_STATUSES = frozenset({WhmcsOrderStatus.CANCELLED, WhmcsOrderStatus.FRAUD})
# A service in one of these while Salesforce shows its order Activated is SERVICE_DRIFT.
DRIFT_SERVICE_STATUSES = (WhmcsServiceStatus.SUSPENDED, WhmcsServiceStatus.TERMINATED, WhmcsServiceStatus.CANCELLED)
