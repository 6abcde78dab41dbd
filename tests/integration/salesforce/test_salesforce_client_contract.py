"""Contract tests of SalesforceClient (what the hook wraps) against the running sandbox org."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sf_env import SfEnv

from orderflow.errors import ErrorCode, PermanentError, SessionExpired, TransientError
from orderflow.salesforce.soql import InvalidSalesforceId, quote, validate_order_id


def test_login_then_query_uses_one_login(sf: SfEnv) -> None:
    before = sf.stats()["logins"]
    client = sf.client()
    records = client.query("SELECT Id, Status FROM Order WHERE Status = 'Pending Review' LIMIT 5")
    assert len(records) == 5
    assert all(r["Status"] == "Pending Review" and r["Id"].startswith("801") for r in records)
    client.query("SELECT Id FROM Account LIMIT 1")
    assert client.logins == 1
    assert sf.stats()["logins"] - before == 1
    assert client.org_id == sf.ep["org_id"]
    assert client.instance_url == sf.ep["instance_url"]


def test_token_cache_is_reused_by_another_process(sf: SfEnv, tmp_path: Path) -> None:
    cache = tmp_path / "token-cache.json"
    client = sf.client(cache_path=cache)
    before = sf.stats()["logins"]
    client.query("SELECT Id FROM Order LIMIT 1")
    assert cache.stat().st_mode & 0o777 == 0o600
    assert client.get_access_token() not in cache.parent.joinpath("token-cache.json.lock").read_text()

    script = f"""
import json
from orderflow.salesforce.client import SalesforceClient
from orderflow.salesforce.token_cache import TokenCache
ep = json.loads({json.dumps(json.dumps(sf.ep))})
c = SalesforceClient(login_url=ep["login_url"], username=ep["username"], consumer_key=ep["consumer_key"],
                     private_key_path=ep["private_key_path"], ca_bundle={sf.ca!r}, token_cache=TokenCache({str(cache)!r}))
rows = c.query("SELECT Id FROM Order LIMIT 3")
print(json.dumps({{"rows": len(rows), "logins": c.logins}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"rows": 3, "logins": 0}
    assert sf.stats()["logins"] - before == 1


def test_relogin_once_on_invalid_session(sf: SfEnv) -> None:
    client = sf.client()
    client.query("SELECT Id FROM Order LIMIT 1")
    old_token = client.get_access_token()
    sf.fault("invalid_session", target="query")
    records = client.query("SELECT Id FROM Order LIMIT 2")
    assert len(records) == 2
    assert client.logins == 2
    assert client.get_access_token() != old_token
    assert not sf.org.validate_access_token(old_token)  # the fault revoked it


def test_expired_token_is_replaced(sf: SfEnv) -> None:
    sf.admin("POST", "/config", {"token_ttl_seconds": 1})
    client = sf.client()
    client.query("SELECT Id FROM Order LIMIT 1")
    time.sleep(1.2)
    assert len(client.query("SELECT Id FROM Order LIMIT 1")) == 1
    assert client.logins == 2


def test_repeated_invalid_session_gives_up_after_one_relogin(sf: SfEnv) -> None:
    client = sf.client()
    sf.fault("invalid_session", target="query", count=2)
    with pytest.raises(SessionExpired):
        client.query("SELECT Id FROM Order LIMIT 1")
    assert client.logins == 2


def test_paging_past_2000_rows(sf: SfEnv) -> None:
    client = sf.client()
    records = client.query("SELECT Id, OrderNumber FROM Order ORDER BY OrderNumber")
    assert len(records) == len(sf.seed["expected"]) > 2000
    assert len({r["Id"] for r in records}) == len(records)
    numbers = [r["OrderNumber"] for r in records]
    assert numbers == sorted(numbers)
    assert client.api_calls["query"] == 1 and client.api_calls["query_more"] == 1


def test_batch_size_header_is_honoured(sf: SfEnv) -> None:
    client = sf.client()
    rows = list(client.iter_query("SELECT Id FROM Order", batch_size=500))
    assert len(rows) == len(sf.seed["expected"])
    assert client.api_calls["query_more"] == -(-len(rows) // 500) - 1


def test_child_subquery_with_parent_fields(sf: SfEnv) -> None:
    client = sf.client()
    order_id = sf.orders()[0]
    soql = (
        "SELECT Id, Status, Account.WH_Account__c, Account.Name, "
        "(SELECT Id, Quantity, Product2.StockKeepingUnit, Product2.WH_Product_ID__c, Product2.Billing_Cycle__c "
        f"FROM OrderItems ORDER BY Id) FROM Order WHERE Id = {quote(order_id)}"
    )
    [order] = client.query(soql)
    assert order["Account"]["WH_Account__c"].startswith("#")
    items = order["OrderItems"]["records"]
    direct = client.query(f"SELECT Id FROM OrderItem WHERE OrderId = {quote(order_id)} ORDER BY Id")
    assert [i["Id"] for i in items] == [d["Id"] for d in direct]
    assert order["OrderItems"]["totalSize"] == len(items) >= 1
    for item in items:
        assert isinstance(item["Product2"]["WH_Product_ID__c"], float)
        assert item["Product2"]["Billing_Cycle__c"] in ("Monthly", "Onetime")
    assert client.api_calls["query"] == 2


def test_unmapped_product_is_visible_as_null(sf: SfEnv) -> None:
    client = sf.client()
    bad = sf.orders("PRODUCT_MAPPING_MISSING")[0]
    [order] = client.query(
        f"SELECT Id, (SELECT Product2.WH_Product_ID__c FROM OrderItems) FROM Order WHERE Id = {quote(bad)}")
    assert any(i["Product2"]["WH_Product_ID__c"] is None for i in order["OrderItems"]["records"])
    unlinked = sf.orders("CLIENT_MAPPING_MISSING")[0]
    [order] = client.query(f"SELECT Account.WH_Account__c FROM Order WHERE Id = {quote(unlinked)}")
    assert order["Account"]["WH_Account__c"] is None


def test_collection_update_partial_failure(sf: SfEnv, fresh_order) -> None:
    client = sf.client()
    good, bad, other = fresh_order(), fresh_order(), fresh_order()
    missing = "801" + "5g" + "ZZZZZZZZZZ"  # well-formed 15-char id that does not exist
    results = client.update_collection([
        {"Id": good, "WHMCS_Order_ID__c": "9001"},
        {"Id": bad, "Activation_Status__c": "Exploded"},
        {"Id": missing, "WHMCS_Order_ID__c": "1"},
        {"Id": other, "Bogus__c": "x"},
    ], sobject="Order")
    assert [r.success for r in results] == [True, False, False, False]
    assert results[0].id == good
    assert results[1].error_code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert isinstance(results[1].error(), PermanentError)
    assert results[2].error_code == "INVALID_CROSS_REFERENCE_KEY"
    assert results[3].error_code == "INVALID_FIELD"
    assert client.get("Order", good)["WHMCS_Order_ID__c"] == "9001"
    assert client.get("Order", bad)["Activation_Status__c"] is None


def test_collection_all_or_none_rolls_back(sf: SfEnv, fresh_order) -> None:
    client = sf.client()
    good, bad = fresh_order(), fresh_order()
    results = client.update_collection([
        {"attributes": {"type": "Order"}, "Id": good, "WHMCS_Order_ID__c": "777"},
        {"attributes": {"type": "Order"}, "Id": bad, "Activation_Error_Message__c": "x" * 256},
    ], all_or_none=True)
    assert [r.success for r in results] == [False, False]
    assert results[0].error_code == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1].error_code == "STRING_TOO_LONG"
    assert client.get("Order", good)["WHMCS_Order_ID__c"] is None


def test_write_back_raises_the_failing_records_error_not_the_roll_back(sf: SfEnv, fresh_order) -> None:
    """Provisioning's write-back: all or none, and the error names the record that failed."""
    import dataclasses

    from orderflow.provisioning import steps

    client = sf.client()
    order = steps.load_order(client, fresh_order())
    missing_item = "802" + "5g" + "ZZZZZZZZZZ"  # well-formed, does not exist
    order = dataclasses.replace(order, lines=(dataclasses.replace(order.lines[0], item_id=missing_item),
                                              *order.lines[1:]))
    ref = steps.WhmcsOrderRef("9001", tuple(f"70{i}" for i in range(len(order.lines))), created=True, status="Active")
    with pytest.raises(PermanentError) as err:
        steps.write_back(client, order, ref)
    assert err.value.code is ErrorCode.SALESFORCE_WRITE_FAILED
    assert "INVALID_CROSS_REFERENCE_KEY" in err.value.message  # not ALL_OR_NONE_OPERATION_ROLLED_BACK
    assert client.get("Order", order.order_id)["WHMCS_Order_ID__c"] is None  # the Order was rolled back


def test_collection_update_mixed_types_in_chunks_of_200(sf: SfEnv) -> None:
    client = sf.client()
    orders = sf.orders()[-300:]
    items = client.query("SELECT Id FROM OrderItem ORDER BY Id LIMIT 150")
    records = [{"attributes": {"type": "Order"}, "Id": o, "WHMCS_Order_ID__c": f"W{i}"} for i, o in enumerate(orders)]
    records += [{"attributes": {"type": "OrderItem"}, "Id": it["Id"], "WHMCS_Service_ID__c": f"S{i}"}
                for i, it in enumerate(items)]
    results = client.update_collection(records)
    assert len(results) == 450 and all(r.success for r in results)
    assert client.api_calls["collections"] == 3
    assert client.get("OrderItem", items[-1]["Id"])["WHMCS_Service_ID__c"] == "S149"


def test_unable_to_lock_row_is_transient(sf: SfEnv, fresh_order) -> None:
    client = sf.client()
    order = fresh_order()
    sf.fault("unable_to_lock_row", target="collections")
    [result] = client.update_collection([{"Id": order, "WHMCS_Order_ID__c": "1"}], sobject="Order")
    assert result.error_code == "UNABLE_TO_LOCK_ROW"
    assert isinstance(result.error(), TransientError)
    sf.fault("unable_to_lock_row", target="sobject_patch")
    with pytest.raises(TransientError) as exc:
        client.update("Order", order, {"WHMCS_Order_ID__c": "2"})
    assert exc.value.code is ErrorCode.SALESFORCE_UNAVAILABLE


@pytest.mark.parametrize("kind", ["http_500", "http_503", "request_limit", "drop"])
def test_transient_faults_are_classified(sf: SfEnv, kind: str) -> None:
    client = sf.client()
    client.get_access_token()
    sf.fault(kind, target="query")
    with pytest.raises(TransientError) as exc:
        client.query("SELECT Id FROM Order LIMIT 1")
    assert exc.value.code is ErrorCode.SALESFORCE_UNAVAILABLE
    assert client.get_access_token() not in str(exc.value)
    assert len(client.query("SELECT Id FROM Order LIMIT 1")) == 1  # the next call works


def test_daily_api_limit_is_enforced(sf: SfEnv) -> None:
    client = sf.client()
    client.query("SELECT Id FROM Order LIMIT 1")
    usage = sf.admin("GET", "/config")["api_usage"]
    sf.admin("POST", "/config", {"daily_api_limit": usage + 1})
    client.query("SELECT Id FROM Order LIMIT 1")
    with pytest.raises(TransientError, match="REQUEST_LIMIT_EXCEEDED"):
        client.query("SELECT Id FROM Order LIMIT 1")


def test_bulk_query_to_file(sf: SfEnv, tmp_path: Path) -> None:
    client = sf.client()
    path = tmp_path / "orders.csv"
    rows = client.bulk_query_to_file(
        "SELECT Id, Status, Account.WH_Account__c, CreatedDate FROM Order", path, max_records=1000, poll_interval=0.05)
    assert rows == len(sf.seed["expected"])
    with path.open(newline="") as fh:
        data = list(csv.DictReader(fh))
    assert len(data) == rows  # one header, every page's rows
    assert list(data[0]) == ["Id", "Status", "Account.WH_Account__c", "CreatedDate"]
    assert {r["Id"] for r in data} == set(sf.seed["expected"])
    unlinked = set(sf.orders("CLIENT_MAPPING_MISSING"))
    assert all(r["Account.WH_Account__c"] == "" for r in data if r["Id"] in unlinked)
    assert data[0]["CreatedDate"].endswith("Z")
    assert client.api_calls["bulk"] >= 1 + 1 + 3  # create, poll(s), three result pages


def test_bulk_query_logs_in_again_once_when_the_session_expired(sf: SfEnv, tmp_path: Path) -> None:
    client = sf.client()
    client.query("SELECT Id FROM Order LIMIT 1")
    sf.fault("invalid_session", target="bulk")
    rows = client.bulk_query_to_file("SELECT Id FROM Order", tmp_path / "orders.csv", poll_interval=0.05)
    assert rows == len(sf.seed["expected"]) and client.logins == 2


def test_bulk_query_rejects_child_subquery(sf: SfEnv, tmp_path: Path) -> None:
    client = sf.client()
    with pytest.raises(PermanentError):
        client.bulk_query_to_file("SELECT Id, (SELECT Id FROM OrderItems) FROM Order", tmp_path / "x.csv")


def test_flow_on_approval_publishes_event(sf: SfEnv, fresh_order) -> None:
    client = sf.client()
    order = fresh_order()
    client.update("Order", order, {"Activation_Error_Code__c": "PAYMENT_METHOD_MISSING",
                                   "Activation_Error_Message__c": "no pay method", "Activation_Status__c": "Failed"})
    before = sf.org.eventbus.latest_replay_id("/event/OrderProvisionRequested__e")
    modified_before = client.get("Order", order)["LastModifiedDate"]
    time.sleep(0.01)
    client.update("Order", order, {"Status": "Approved"})
    rec = client.get("Order", order)
    assert rec["Status"] == "Approved"
    assert rec["Activation_Status__c"] == "Activating"
    assert rec["Activation_Error_Code__c"] is None and rec["Activation_Error_Message__c"] is None
    assert rec["LastModifiedDate"] > modified_before
    events = sf.org.eventbus.read_after("/event/OrderProvisionRequested__e", before, 100)
    payloads = [sf.org.eventbus.decode("/event/OrderProvisionRequested__e", e.payload) for e in events]
    assert [p["OrderId__c"] for p in payloads] == [order]
    assert payloads[0]["IdemKey__c"] == f"{order}:1"

    # an update that does not change Status publishes nothing; a re-approval gets a new IdemKey
    client.update("Order", order, {"Status": "Approved", "WHMCS_Order_ID__c": "5"})
    client.update_collection([{"Id": order, "Status": "Reactivate"}], sobject="Order")
    events = sf.org.eventbus.read_after("/event/OrderProvisionRequested__e", before, 100)
    payloads = [sf.org.eventbus.decode("/event/OrderProvisionRequested__e", e.payload) for e in events]
    assert [p["IdemKey__c"] for p in payloads] == [f"{order}:1", f"{order}:2"]


def test_flow_event_is_not_published_when_all_or_none_rolls_back(sf: SfEnv, fresh_order) -> None:
    client = sf.client()
    order, other = fresh_order(), fresh_order()
    before = sf.org.eventbus.latest_replay_id("/event/OrderProvisionRequested__e")
    results = client.update_collection([{"Id": order, "Status": "Approved"}, {"Id": other, "Status": "Nope"}],
                                       all_or_none=True, sobject="Order")
    assert not any(r.success for r in results)
    assert sf.org.eventbus.latest_replay_id("/event/OrderProvisionRequested__e") == before
    assert client.get("Order", order)["Status"] == "Pending Review"


def test_publish_event_through_rest(sf: SfEnv, fresh_order) -> None:
    client = sf.client()
    order = fresh_order()
    before = sf.org.eventbus.latest_replay_id("/event/OrderProvisionRequested__e")
    result = client.publish_event("OrderProvisionRequested__e", {"OrderId__c": order, "IdemKey__c": "manual-1"})
    assert result["success"] is True
    [event] = sf.org.eventbus.read_after("/event/OrderProvisionRequested__e", before, 10)
    assert sf.org.eventbus.decode("/event/OrderProvisionRequested__e", event.payload)["IdemKey__c"] == "manual-1"


def test_soql_injection_attempt_is_refused(sf: SfEnv) -> None:
    attack = "801' OR Name != '"
    with pytest.raises(InvalidSalesforceId, match="order_id"):
        validate_order_id(attack)
    # escaped literals stay literals on the server: no rows, no widened filter
    client = sf.client()
    assert client.query(f"SELECT Id FROM Account WHERE Name = {quote(attack)}") == []
    assert client.query(f"SELECT Id FROM Account WHERE Name = {quote(chr(92) + chr(39) + ' OR Id != null')}") == []


def test_login_failure_is_a_configuration_error(sf: SfEnv, tmp_path: Path) -> None:
    client = sf.client()
    client.username = "someone.else@example.com"
    with pytest.raises(PermanentError) as exc:
        client.get_access_token()
    assert exc.value.code is ErrorCode.SALESFORCE_CONFIGURATION_ERROR
    assert "invalid_grant" in str(exc.value)


def test_tls_is_verified_against_the_sandbox_ca(sf: SfEnv, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.pem"
    from orderflow_sandbox.tls import ensure_tls

    other_ca.write_bytes(ensure_tls(tmp_path / "other").ca_cert.read_bytes())
    client = sf.client()
    client.ca_bundle = str(other_ca)
    client.session.verify = str(other_ca)
    with pytest.raises(PermanentError) as exc:
        client.get_access_token()
    assert exc.value.code is ErrorCode.SALESFORCE_CONFIGURATION_ERROR
