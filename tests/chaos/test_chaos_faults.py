"""The two fault kinds the chaos suite added to the emulators do what its crash windows rely on.

``commit_then_latency`` (WHMCS): the action is committed before the answer is held, so a task killed
while it waits has really created the order. ``lock_last_record`` (Salesforce collections): only the
last record fails, the others come back rolled back, so the client must find the cause on another record.
"""

from __future__ import annotations

import time

import pytest
import requests

from orderflow.errors import TransientError
from orderflow.order_marker import marked_order_ids
from orderflow.whmcs.client import WhmcsClient
from orderflow_sandbox.connections import salesforce_client, whmcs_client
from orderflow_sandbox.server import Sandbox


def _fault(sandbox: Sandbox, system: str, spec: dict) -> None:
    resp = requests.post(sandbox.endpoints[system]["admin_url"] + "/faults", json=spec,
                         verify=sandbox.endpoints["ca_bundle"], timeout=10)
    assert resp.status_code == 201, resp.text


def test_commit_then_latency_commits_before_the_answer_is_held(sandbox):
    wh = sandbox.endpoints["whmcs"]
    with whmcs_client(sandbox.endpoints) as client:
        client_id = int(client.call("GetClients", limitnum=1)["clients"]["client"][0]["id"])
    _fault(sandbox, "whmcs", {"kind": "commit_then_latency", "target": "AddOrder", "latency_ms": 3000})
    impatient = WhmcsClient(wh["url"], wh["identifier"], wh["secret"], accesskey=wh.get("accesskey"),
                            ca_bundle=sandbox.endpoints["ca_bundle"], timeout=1.0)
    marker = "sfOrderId=801000000000777AAA"
    started = time.monotonic()
    with impatient, pytest.raises(TransientError):
        impatient.add_order(client_id, "banktransfer", [(182, "monthly", 1)], notes=marker)
    assert time.monotonic() - started < 2.5  # the client gave up while the answer was held
    with whmcs_client(sandbox.endpoints) as client:
        carrying = [o.id for o in client.iter_orders() if "801000000000777AAA" in marked_order_ids(o.notes)]
    assert len(carrying) == 1  # WHMCS committed the order the client never heard about


def test_lock_last_record_fails_only_the_last_record_of_a_collection(sandbox):
    client = salesforce_client(sandbox.endpoints)
    orders = client.query("SELECT Id, (SELECT Id FROM OrderItems) FROM Order LIMIT 1")
    order_id = orders[0]["Id"]
    item_ids = [i["Id"] for i in orders[0]["OrderItems"]["records"]]
    records = [{"attributes": {"type": "Order"}, "id": order_id, "Activation_Error_Code__c": None}]
    records += [{"attributes": {"type": "OrderItem"}, "id": i, "WHMCS_Service_ID__c": "99"} for i in item_ids]
    _fault(sandbox, "salesforce", {"kind": "lock_last_record", "target": "collections"})
    results = client.update_collection(records, all_or_none=True)
    codes = [r.error_code for r in results]
    assert codes[-1] == "UNABLE_TO_LOCK_ROW"
    assert set(codes[:-1]) == {"ALL_OR_NONE_OPERATION_ROLLED_BACK"}
    after = client.query(f"SELECT Id, WHMCS_Service_ID__c FROM OrderItem WHERE OrderId = '{order_id}'")
    assert all(r["WHMCS_Service_ID__c"] != "99" for r in after)  # nothing written half
    assert all(r.success for r in client.update_collection(records, all_or_none=True))  # the fault cleared
