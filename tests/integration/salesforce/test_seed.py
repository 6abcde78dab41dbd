"""seed_sandbox: deterministic per rng seed, bad apples present and correctly labelled."""

from __future__ import annotations

from pathlib import Path

from orderflow_sandbox.salesforce.org import SalesforceOrg
from orderflow_sandbox.seed import seed_sandbox
from orderflow_sandbox.whmcs.state import WhmcsState


def _strip(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "expected_outcomes_file"}


def test_seed_is_deterministic_and_labels_bad_apples(tmp_path: Path) -> None:
    first = seed_sandbox(tmp_path / "a", orders=40, rng_seed=5)
    second = seed_sandbox(tmp_path / "b", orders=40, rng_seed=5)
    assert _strip(first) == _strip(second)
    assert _strip(seed_sandbox(tmp_path / "c", orders=40, rng_seed=6)) != _strip(first)
    assert first["orders"] == 40 and set(first["outcome_counts"]) == {
        "Activated", "PRODUCT_MAPPING_MISSING", "CLIENT_MAPPING_MISSING", "PAYMENT_METHOD_MISSING"}

    org = SalesforceOrg(tmp_path / "a")
    whmcs = WhmcsState(tmp_path / "a")
    try:
        orders = org.query_rows(
            "SELECT Id, Status, Account.WH_Account__c FROM Order").rows
        assert {o["Status"] for o in orders} == {"Pending Review"}
        result = org.run_query(
            "SELECT Id, Account.WH_Account__c, (SELECT Product2.WH_Product_ID__c, Product2.Billing_Cycle__c "
            "FROM OrderItems) FROM Order", batch_size=2000)
        by_id = {r["Id"]: r for r in result["records"]}
        for order_id, outcome in first["expected"].items():
            rec = by_id[order_id]
            items = rec["OrderItems"]["records"]
            assert 1 <= len(items) <= 5
            unmapped = any(i["Product2"]["WH_Product_ID__c"] is None for i in items)
            assert unmapped == (outcome == "PRODUCT_MAPPING_MISSING"), order_id
            linked = rec["Account"]["WH_Account__c"]
            assert (linked is None) == (outcome == "CLIENT_MAPPING_MISSING"), order_id
            if outcome == "PAYMENT_METHOD_MISSING":
                client_id = int(linked.split(" ")[0].lstrip("#"))
                assert client_id in first["whmcs_clients_without_paymethod"]
        with whmcs.read() as db:
            for client_id in first["whmcs_clients_without_paymethod"]:
                assert db.execute("SELECT COUNT(*) FROM paymethods WHERE clientid = ?", (client_id,)).fetchone()[0] == 0
            assert db.execute("SELECT COUNT(*) FROM paymethods").fetchone()[0] == (
                first["whmcs_clients"] - len(first["whmcs_clients_without_paymethod"]))
    finally:
        org.close()
        whmcs.close()
