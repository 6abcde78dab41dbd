"""Inject reconciliation drift into a running sandbox, on purpose and through the emulators' own APIs.

Works on provisioned orders (``seed --provisioned``, or orders the pipeline provisioned): it picks
healthy ones at random (Salesforce ``Activated`` with a WHMCS order that is Active with Active
services), breaks ``per_category`` of them per category the way it happens in life, and writes
``<data_dir>/drift_expected.json`` = ``{key: category}``: the key is the Salesforce Order Id, or
``whmcs:<WHMCS order id>`` for an orphan. Orders not listed keep their category (``IN_SYNC``).

| category | what happened | API calls |
|---|---|---|
| DUPLICATE_IN_WHMCS | a double submit: a second order with the same ``sfOrderId`` note, accepted | WHMCS ``AddOrder``, ``AcceptOrder`` |
| MISSING_IN_WHMCS | an admin deleted the WHMCS order; Salesforce still names it | WHMCS ``FraudOrder``, ``DeleteOrder`` |
| SF_BEHIND | the write-back was lost: Salesforce ``Activating`` without WHMCS ids, 30 min ago | SF ``PATCH /composite/sobjects``; admin backdate |
| STUCK_ACTIVATING | the event was lost: no WHMCS order, Salesforce ``Activating`` without ids, 2 h ago | WHMCS ``FraudOrder``, ``DeleteOrder``; SF ``PATCH /composite/sobjects``; admin backdate |
| PAYMENT_RECOVERED | a ``PAYMENT_METHOD_MISSING`` customer adds a bank account | WHMCS ``AddPayMethod`` |
| WHMCS_PENDING | an admin set the accepted order back to Pending | WHMCS ``PendingOrder`` |
| SERVICE_DRIFT | a service suspended (1st, 3rd, ...) or terminated (2nd, ...) | WHMCS ``ModuleSuspend`` / ``ModuleTerminate`` |
| ORPHAN_IN_WHMCS | an order placed in WHMCS for an Order Id Salesforce does not have | WHMCS ``AddOrder``, ``AcceptOrder`` |
| IN_FLIGHT | a write-back under way: Salesforce ``Activating`` without a WHMCS id, just now | SF ``PATCH /composite/sobjects`` |

Salesforce edits set ``Activation_Status__c`` and the id fields only; ``Status`` is left alone, so the
approval Flow does not fire and no ``OrderProvisionRequested__e`` is published. The one admin call
is ``POST /__sandbox/backdate``: the REST API cannot set ``LastModifiedDate`` (a system field), and
"changed 30 minutes ago" cannot be waited for in a test. The other half of IN_FLIGHT ("a
``provision_order`` run is queued") needs Airflow and is not made here. WHMCS calls use the
emulator's full-access API credential, as an administrator would.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from orderflow.order_marker import carries_marker, marker

log = logging.getLogger(__name__)

DRIFT_EXPECTED_FILE = "drift_expected.json"

# Every category drift can make, in reconciliation's precedence order (first match wins); a test checks
# they are the pipeline's (orderflow.reconcile.Category) without the sandbox importing pipeline code.
CATEGORIES = ("DUPLICATE_IN_WHMCS", "MISSING_IN_WHMCS", "IN_FLIGHT", "SF_BEHIND", "STUCK_ACTIVATING",
              "PAYMENT_RECOVERED", "WHMCS_PENDING", "SERVICE_DRIFT", "ORPHAN_IN_WHMCS")
# The categories that break a healthy provisioned order (ORPHAN needs none, PAYMENT_RECOVERED a failed one),
# IN_FLIGHT last: its change must be the most recent.
_ON_HEALTHY = ("DUPLICATE_IN_WHMCS", "MISSING_IN_WHMCS", "SF_BEHIND", "STUCK_ACTIVATING", "WHMCS_PENDING",
               "SERVICE_DRIFT", "IN_FLIGHT")
SF_BEHIND_AGE_MINUTES = 30  # past the 10-minute IN_FLIGHT window
STUCK_AGE_MINUTES = 120  # past the default stuck_minutes (60)
SOQL_ID_CHUNK = 200


class NotEnoughOrders(ValueError):
    """The sandbox has too few orders of the kind a category needs."""


@dataclass
class _Healthy:
    """A provisioned order as both systems show it."""

    order_id: str
    client_id: int
    whmcs_order_id: str
    item_ids: list[str]
    service_ids: list[str]
    items: list[tuple[int, str]] = field(default_factory=list)  # (WHMCS pid, billing cycle) per item


def make_drift(data_dir: Path, per_category: int = 2, rng_seed: int = 7) -> dict[str, str]:
    """Make ``per_category`` orders of each category in the running sandbox of ``data_dir``; return and
    write ``{key: category}`` (module docstring). Raises :class:`NotEnoughOrders` before changing
    anything when the seed is too small (PAYMENT_RECOVERED needs ``per_category`` failed
    PAYMENT_METHOD_MISSING orders: seed at least ``100 * per_category`` orders)."""
    from orderflow_sandbox.connections import whmcs_client
    from orderflow_sandbox.salesforce.approve import sandbox_client
    from orderflow_sandbox.server import read_endpoints
    from orderflow_sandbox.whmcs.state import read_admin_credentials

    if per_category < 1:
        raise ValueError(f"per_category must be >= 1, got {per_category}")
    data_dir = Path(data_dir).resolve()
    endpoints = read_endpoints(data_dir)
    rng = random.Random(rng_seed)
    sf = sandbox_client(data_dir)
    with whmcs_client(endpoints, credentials=read_admin_credentials(data_dir)) as wh:
        injector = _Injector(sf, wh, endpoints, rng)
        expected = injector.run(per_category)
    path = data_dir / DRIFT_EXPECTED_FILE
    path.write_text(json.dumps(expected, indent=1, sort_keys=True))
    log.info("drift: %d keys in %s (%s)", len(expected), path, _counts(expected))
    return expected


def _counts(expected: dict[str, str]) -> dict[str, int]:
    return {c: sum(1 for v in expected.values() if v == c) for c in CATEGORIES}


def _client_id(wh_account: str | None) -> int | None:
    """The client id of ``WH_Account__c`` (``#1234 - Name``), or None when unlinked."""
    head = (wh_account or "").split(" ", 1)[0]
    return int(head[1:]) if head.startswith("#") and head[1:].isdigit() else None


class _Injector:
    def __init__(self, sf, wh, endpoints: dict, rng: random.Random) -> None:
        self.sf, self.wh, self.endpoints, self.rng = sf, wh, endpoints, rng

    # ------------------------------------------------------------------ picking orders

    def run(self, k: int) -> dict[str, str]:
        recoverable = self._payment_failures(k)
        healthy = self._healthy(k * len(_ON_HEALTHY))
        expected: dict[str, str] = {}
        makers: dict[str, Callable[[list[_Healthy]], None]] = {
            "DUPLICATE_IN_WHMCS": self._duplicate,
            "MISSING_IN_WHMCS": self._delete_whmcs_orders,
            "SF_BEHIND": lambda batch: self._set_activating(batch, SF_BEHIND_AGE_MINUTES),
            "STUCK_ACTIVATING": self._stuck,
            "WHMCS_PENDING": lambda batch: [self.wh.call("PendingOrder", orderid=o.whmcs_order_id) for o in batch],
            "SERVICE_DRIFT": self._service_drift,
            "IN_FLIGHT": lambda batch: self._set_activating(batch, None),  # last: its change must be recent
        }
        for n, category in enumerate(_ON_HEALTHY):
            batch = healthy[n * k:(n + 1) * k]
            makers[category](batch)
            expected.update(dict.fromkeys((o.order_id for o in batch), category))
            log.info("drift: %s on %s", category, ", ".join(o.order_id for o in batch))
            if category == "SERVICE_DRIFT":  # before IN_FLIGHT, so the orphans are older than it
                expected.update(self._orphans(k, healthy))
                expected.update(self._recover_payments(recoverable))
        return expected

    def _healthy(self, n: int) -> list[_Healthy]:
        """``n`` random healthy provisioned orders (checked on both sides), in random order."""
        ids = [r["Id"] for r in self.sf.iter_query(
            "SELECT Id FROM Order WHERE Activation_Status__c = 'Activated' AND WHMCS_Order_ID__c != null ORDER BY Id")]
        self.rng.shuffle(ids)
        picked: list[_Healthy] = []
        start = 0
        while start < len(ids) and len(picked) < n:
            chunk = ids[start:start + min(SOQL_ID_CHUNK, 2 * (n - len(picked)) + 5)]  # a little spare
            start += len(chunk)
            for rec in self._details(chunk):
                order = self._check_healthy(rec)
                if order is not None and len(picked) < n:
                    picked.append(order)
        if len(picked) < n:
            raise NotEnoughOrders(f"drift needs {n} healthy provisioned orders, the sandbox has {len(picked)}")
        return picked

    def _details(self, ids: list[str]) -> list[dict]:
        id_list = ",".join(f"'{i}'" for i in ids)  # Ids come from the org itself
        by_id = {r["Id"]: r for r in self.sf.iter_query(
            "SELECT Id, Account.WH_Account__c, WHMCS_Order_ID__c, (SELECT Id, WHMCS_Service_ID__c, "
            f"Product2.WH_Product_ID__c, Product2.Billing_Cycle__c FROM OrderItems) FROM Order WHERE Id IN ({id_list})")}
        return [by_id[i] for i in ids if i in by_id]  # keep the random order

    def _check_healthy(self, rec: dict) -> _Healthy | None:
        client = _client_id((rec.get("Account") or {}).get("WH_Account__c"))
        items = (rec.get("OrderItems") or {}).get("records") or []
        order = self.wh.get_order(rec["WHMCS_Order_ID__c"])
        if client is None or order is None or order.status != "Active" or not carries_marker(order.notes, rec["Id"]):
            return None
        if [li.status for li in order.line_items] != ["Active"] * len(items):
            return None
        if order.service_ids != [i["WHMCS_Service_ID__c"] for i in items]:
            return None
        cycles = [(int(i["Product2"]["WH_Product_ID__c"]), str(i["Product2"]["Billing_Cycle__c"]).lower())
                  for i in items]
        return _Healthy(rec["Id"], client, order.id, [i["Id"] for i in items], order.service_ids, cycles)

    def _payment_failures(self, k: int) -> dict[int, list[str]]:
        """``k`` clients without a pay method whose orders failed PAYMENT_METHOD_MISSING: {client: [Order Id]}."""
        by_client: dict[int, list[str]] = {}
        for rec in self.sf.iter_query(
            "SELECT Id, Account.WH_Account__c FROM Order WHERE Activation_Status__c = 'Failed' "
            "AND Activation_Error_Code__c = 'PAYMENT_METHOD_MISSING' AND WHMCS_Order_ID__c = null ORDER BY Id"
        ):
            client = _client_id((rec.get("Account") or {}).get("WH_Account__c"))
            if client is not None:
                by_client.setdefault(client, []).append(rec["Id"])
        clients = sorted(by_client)
        self.rng.shuffle(clients)
        chosen: dict[int, list[str]] = {}
        for client in clients:
            if len(chosen) == k:
                break
            if self.wh.get_pay_methods(client):
                continue  # already recovered
            orders = list(self.wh.iter_orders(userid=client, page_size=250))
            if any(carries_marker(o.notes, order_id) for o in orders for order_id in by_client[client]):
                continue  # a WHMCS order exists: that is not "failed with no WHMCS order"
            chosen[client] = by_client[client]
        if len(chosen) < k:
            raise NotEnoughOrders(
                f"drift needs {k} orders Failed with PAYMENT_METHOD_MISSING (clients without a pay method), the "
                f"sandbox has {len(chosen)}: seed at least {100 * k} orders")
        return chosen

    # ------------------------------------------------------------------ the categories

    def _duplicate(self, batch: list[_Healthy]) -> None:
        for o in batch:
            placed = self.wh.add_order(o.client_id, "banktransfer", [(pid, cycle, 1) for pid, cycle in o.items],
                                       notes=marker(o.order_id), noinvoice=True, noemail=True)
            self._accept(placed.order_id)

    def _accept(self, whmcs_order_id: str) -> None:
        from orderflow.errors import OrderflowError

        try:
            self.wh.accept_order(whmcs_order_id, autosetup=True)
        except OrderflowError as exc:  # a module fault: the order stays Pending, which is live all the same
            log.warning("drift: WHMCS order %s left Pending: %s", whmcs_order_id, exc)

    def _delete_whmcs_orders(self, batch: list[_Healthy]) -> None:
        for o in batch:  # DeleteOrder takes Cancelled or Fraud orders only; CancelOrder takes Pending ones only
            self.wh.call("FraudOrder", orderid=o.whmcs_order_id)
            self.wh.call("DeleteOrder", orderid=o.whmcs_order_id)

    def _stuck(self, batch: list[_Healthy]) -> None:
        self._delete_whmcs_orders(batch)
        self._set_activating(batch, STUCK_AGE_MINUTES)

    def _set_activating(self, batch: list[_Healthy], minutes_ago: int | None) -> None:
        """Salesforce as before the write-back: Activating, no WHMCS order id, no service ids."""
        records = []
        for o in batch:
            records.append({"attributes": {"type": "Order"}, "Id": o.order_id, "Activation_Status__c": "Activating",
                            "WHMCS_Order_ID__c": None, "Activation_Error_Code__c": None,
                            "Activation_Error_Message__c": None})
            records += [{"attributes": {"type": "OrderItem"}, "Id": i, "WHMCS_Service_ID__c": None} for i in o.item_ids]
        failed = [r for r in self.sf.update_collection(records, all_or_none=True) if not r.success]
        if failed:
            raise RuntimeError(f"drift: Salesforce refused the update: {failed[0].errors}")
        if minutes_ago is not None:
            self._backdate("Order", [o.order_id for o in batch], minutes_ago)
            self._backdate("OrderItem", [i for o in batch for i in o.item_ids], minutes_ago)

    def _backdate(self, sobject: str, ids: list[str], minutes: int) -> None:
        # Admin endpoint: LastModifiedDate is a system field no API can write (module docstring).
        resp = requests.post(f"{self.endpoints['salesforce']['admin_url']}/backdate",
                             json={"sobject": sobject, "ids": ids, "minutes": minutes},
                             verify=self.endpoints["ca_bundle"], timeout=30)
        resp.raise_for_status()

    def _service_drift(self, batch: list[_Healthy]) -> None:
        from orderflow.errors import OrderflowError

        for n, o in enumerate(batch):
            action = "ModuleSuspend" if n % 2 == 0 else "ModuleTerminate"
            for service_id in o.service_ids:  # the first service whose product has a provisioning module
                try:
                    self.wh.call(action, serviceid=service_id, suspendreason="Overdue on payment (drift)")
                    break
                except OrderflowError as exc:
                    if "not assigned to a module" not in getattr(exc, "message", str(exc)):
                        raise
            else:
                raise NotEnoughOrders(f"drift: WHMCS order {o.whmcs_order_id} has no service with a module")

    def _orphans(self, k: int, healthy: list[_Healthy]) -> dict[str, str]:
        """WHMCS orders whose note names an Order Id Salesforce does not have, for some healthy orders' clients."""
        from orderflow_sandbox.salesforce.ids import make_id

        out: dict[str, str] = {}
        for n in range(k):
            donor = healthy[n % len(healthy)]
            ghost = make_id("801", 62**9 + self.rng.randrange(62**8), pod="9Z")
            if self.sf.query(f"SELECT Id FROM Order WHERE Id = '{ghost}'"):
                continue  # astronomically unlikely; skip rather than break a real order
            placed = self.wh.add_order(donor.client_id, "banktransfer", [donor.items[0] + (1,)],
                                       notes=marker(ghost), noinvoice=True, noemail=True)
            self._accept(placed.order_id)
            out[f"whmcs:{placed.order_id}"] = "ORPHAN_IN_WHMCS"
            log.info("drift: ORPHAN_IN_WHMCS WHMCS order %s (note %s)", placed.order_id, marker(ghost))
        return out

    def _recover_payments(self, recoverable: dict[int, list[str]]) -> dict[str, str]:
        out: dict[str, str] = {}
        for client, order_ids in recoverable.items():
            self.wh.call("AddPayMethod", clientid=client, type="BankAccount", bank_name="Sandbox Bank",
                         bank_code="0001", bank_account=f"{self.rng.randrange(10**7):07d}",
                         description="Added by the customer (drift)")
            out.update(dict.fromkeys(order_ids, "PAYMENT_RECOVERED"))
            log.info("drift: PAYMENT_RECOVERED for client %s (orders %s)", client, ", ".join(order_ids))
        return out
