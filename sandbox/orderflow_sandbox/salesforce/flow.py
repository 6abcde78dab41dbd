"""The record-triggered Flow of DESIGN §3 (``salesforce/main/default/flows/Order_Provision_Request``).

When an update changes an Order's ``Status`` to ``Approved`` or ``Reactivate``: set
``Activation_Status__c = 'Activating'``, clear the two error fields, and publish
``OrderProvisionRequested__e`` (``OrderId__c``, ``IdemKey__c = <OrderId>:<n>`` for the n-th approval).
The field changes join the triggering update; the event is published after the commit.
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
    tx.events.append({"OrderId__c": order_id, "IdemKey__c": f"{order_id}:{n}"})
    log.debug("flow: order %s %s -> Activating (approval %d)", order_id, after.get("Status"), n)
    return {"Activation_Status__c": "Activating", "Activation_Error_Code__c": None, "Activation_Error_Message__c": None}
