"""The record-triggered Flow of docs/architecture.md (``salesforce/main/default/flows/Order_Provision_Request``).

When an update changes an Order's ``Status`` to ``Approved`` or ``Reactivate``: set
``Activation_Status__c = 'Activating'``, clear the two error fields, and publish
``OrderProvisionRequested__e`` (``OrderId__c``, ``IdemKey__c = <OrderId>:<n>`` for the n-th approval).
The field changes join the triggering update; the event is published after the commit.

Fault ``lose_event`` (target ``flow``, ``count`` N): the next N approvals still set ``Activating`` but
publish nothing, as when an event is lost (retention expired, an outage); only the sweep finds them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orderflow_sandbox.salesforce.org import SalesforceOrg, _Tx

log = logging.getLogger(__name__)

TRIGGER_STATUSES = frozenset({"Approved", "Reactivate"})


def on_order_update(org: SalesforceOrg, tx: _Tx, before: dict, after: dict) -> dict[str, Any]:
    """Return the extra field changes the Flow makes; queue the platform event on ``tx``."""
    if after.get("Status") == before.get("Status") or after.get("Status") not in TRIGGER_STATUSES:
        return {}
    order_id = before["Id"]
    n = org.next_approval_number(order_id)
    if org.faults.take("flow", {"lose_event"}):
        log.info("flow: fault lose_event: order %s goes to Activating without an event", order_id)
    else:
        tx.events.append({"OrderId__c": order_id, "IdemKey__c": f"{order_id}:{n}"})
    log.debug("flow: order %s %s -> Activating (approval %d)", order_id, after.get("Status"), n)
    return {"Activation_Status__c": "Activating", "Activation_Error_Code__c": None, "Activation_Error_Message__c": None}
