"""Mapping validation of provisioning step 1 (docs/architecture.md, "Provisioning"), on order snapshots built from query records."""

from __future__ import annotations

import pytest

from orderflow.errors import ErrorCode, PermanentError
from orderflow.provisioning.order import OrderSnapshot, build_plan, parse_wh_account
from orderflow.provisioning.steps import failure_fields, skip_reason


def record(wh_account="#12 - Tanaka Taro", items=None, status="Activating"):
    items = items if items is not None else [
        {"Id": "802000000000002AAA", "Quantity": 1.0, "Product2": {"Name": "Install", "StockKeepingUnit": "INTERNET-INSTALL-SINGLE", "WH_Product_ID__c": 242, "Billing_Cycle__c": "Onetime"}},
        {"Id": "802000000000001AAA", "Quantity": 2.0, "Product2": {"Name": "Gold", "StockKeepingUnit": "INTERNET-GOLD", "WH_Product_ID__c": 188.0, "Billing_Cycle__c": "Monthly"}},
    ]
    return {
        "Id": "801000000000001AAA",
        "OrderNumber": "00000101",
        "Status": "Approved",
        "Activation_Status__c": status,
        "WHMCS_Order_ID__c": None,
        "AccountId": "001000000000001AAA",
        "Account": {"Name": "Tanaka Taro", "WH_Account__c": wh_account},
        "OrderItems": {"totalSize": len(items), "done": True, "records": items},
    }


def test_given_good_order_then_plan_lists_items_in_item_id_order_with_lowercase_cycles():
    plan = build_plan(OrderSnapshot.from_record(record()))
    assert plan.client_id == 12
    assert [(i.pid, i.billing_cycle, i.quantity) for i in plan.items] == [(188, "monthly", 2), (242, "onetime", 1)]
    assert plan.marker == "sfOrderId=801000000000001AAA"


@pytest.mark.parametrize("value", [None, "", "Tanaka", "#abc - x", "#0 - nobody", "12"])
def test_given_unparsable_wh_account_then_client_mapping_missing(value):
    with pytest.raises(PermanentError) as err:
        build_plan(OrderSnapshot.from_record(record(wh_account=value)))
    assert err.value.code is ErrorCode.CLIENT_MAPPING_MISSING
    assert "WH_Account__c" in err.value.message


def test_given_items_without_mapping_then_product_mapping_missing_lists_skus():
    items = record()["OrderItems"]["records"]
    items[0]["Product2"]["WH_Product_ID__c"] = None
    items[1]["Product2"]["Billing_Cycle__c"] = None
    with pytest.raises(PermanentError) as err:
        build_plan(OrderSnapshot.from_record(record(items=items)))
    assert err.value.code is ErrorCode.PRODUCT_MAPPING_MISSING
    assert "INTERNET-INSTALL-SINGLE" in err.value.message and "INTERNET-GOLD" in err.value.message


def test_wh_account_parsing():
    assert parse_wh_account("#1234 - Customer Name") == 1234
    assert parse_wh_account(" # 7 ") == 7
    assert parse_wh_account("1234") is None


def test_snapshot_round_trips_through_xcom_dict():
    snap = OrderSnapshot.from_record(record())
    assert OrderSnapshot.from_dict(snap.to_dict()) == snap


def test_given_not_activating_then_skip_reason_names_status():
    assert "Activated" in skip_reason(OrderSnapshot.from_record(record(status="Activated")))
    assert skip_reason(OrderSnapshot.from_record(record())) is None


def test_failure_fields_are_safe_and_bounded():
    err = PermanentError(ErrorCode.WHMCS_ORDER_REJECTED, "<b>bad</b> " + "x" * 500)
    fields = failure_fields(err)
    assert fields["Activation_Status__c"] == "Failed"
    assert fields["Activation_Error_Code__c"] == "WHMCS_ORDER_REJECTED"
    assert len(fields["Activation_Error_Message__c"]) <= 255 and "<b>" not in fields["Activation_Error_Message__c"]
