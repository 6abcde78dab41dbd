"""The SFDX metadata users deploy: fields, picklists, the Flow and the permission set match docs/architecture.md."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from orderflow.statuses import ActivationStatus
from orderflow_sandbox.salesforce.flow import TRIGGER_STATUSES
from orderflow_sandbox.salesforce.schema import load_schema

META = Path(__file__).resolve().parents[2] / "salesforce" / "main" / "default"
NS = {"m": "http://soap.sforce.com/2006/04/metadata"}


def _custom_fields() -> dict[str, set[str]]:
    return {obj: {p.name.split(".")[0] for p in (META / "objects" / obj / "fields").glob("*.field-meta.xml")}
            for obj in ("Account", "Product2", "Order", "OrderItem")}


def test_design_fields_and_picklists() -> None:
    schema = load_schema(META)
    assert _custom_fields() == {
        "Account": {"SF_Account_No__c", "WH_Account__c"},
        "Product2": {"Product2Categories1__c", "Item_Class__c", "Billing_Cycle__c", "WH_Product_ID__c"},
        "Order": {"Order_Type__c", "Activation_Status__c", "Activation_Error_Code__c", "Activation_Error_Message__c",
                  "WHMCS_Order_ID__c"},
        "OrderItem": {"WHMCS_Service_ID__c"},
    }
    order = schema["Order"].fields
    assert order["Activation_Status__c"].picklist == ("Activating", "Activated", "Failed")
    # The code's one name for each value is the deployed picklist, nothing more or less.
    assert order["Activation_Status__c"].picklist == tuple(ActivationStatus)
    assert set(order["Status"].picklist) == {"Draft", "Pending Review", "Approved", "Reactivate", "Activated"}
    assert (order["Activation_Error_Code__c"].length, order["Activation_Error_Message__c"].length) == (80, 255)
    assert order["WHMCS_Order_ID__c"].length == 40
    assert schema["Product2"].fields["WH_Product_ID__c"].scale == 0
    assert schema["Product2"].fields["Billing_Cycle__c"].picklist == ("Monthly", "Onetime")


def test_permission_set_covers_every_custom_field() -> None:
    root = ET.parse(META / "permissionsets" / "Orderflow_Integration.permissionset-meta.xml").getroot()
    perms = {fp.findtext("m:field", namespaces=NS): fp.findtext("m:editable", namespaces=NS) == "true"
             for fp in root.findall("m:fieldPermissions", NS)}
    for obj, fields in _custom_fields().items():
        for name in fields:
            assert f"{obj}.{name}" in perms, name
            assert perms[f"{obj}.{name}"] == (obj in ("Order", "OrderItem")), name
    objects = {op.findtext("m:object", namespaces=NS): op for op in root.findall("m:objectPermissions", NS)}
    assert objects["OrderProvisionRequested__e"].findtext("m:allowRead", namespaces=NS) == "true"
    assert objects["Order"].findtext("m:allowEdit", namespaces=NS) == "true"
    assert objects["Account"].findtext("m:allowEdit", namespaces=NS) == "false"


def test_flow_matches_the_emulated_flow() -> None:
    root = ET.parse(META / "flows" / "Order_Provision_Request.flow-meta.xml").getroot()
    start = root.find("m:start", NS)
    assert start is not None
    assert start.findtext("m:object", namespaces=NS) == "Order"
    assert start.findtext("m:recordTriggerType", namespaces=NS) == "Update"
    assert start.findtext("m:triggerType", namespaces=NS) == "RecordAfterSave"
    formula = start.findtext("m:filterFormula", namespaces=NS) or ""
    assert "ISCHANGED({!$Record.Status})" in formula
    assert all(f"'{status}'" in formula for status in TRIGGER_STATUSES)
    update = root.find("m:recordUpdates", NS)
    assignments = {a.findtext("m:field", namespaces=NS): a.findtext("m:value/m:stringValue", namespaces=NS)
                   for a in update.findall("m:inputAssignments", NS)}
    assert assignments == {"Activation_Status__c": "Activating", "Activation_Error_Code__c": None,
                           "Activation_Error_Message__c": None}
    create = root.find("m:recordCreates", NS)
    assert create.findtext("m:object", namespaces=NS) == "OrderProvisionRequested__e"
    assert {a.findtext("m:field", namespaces=NS) for a in create.findall("m:inputAssignments", NS)} == {
        "OrderId__c", "IdemKey__c"}
