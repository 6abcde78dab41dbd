"""The org's schema: standard fields hard-wired per object, custom fields read from the SFDX metadata.

A custom field exists in the sandbox only if ``salesforce/main/default/objects/<Object>/fields/``
defines it, so code that uses a field missing from the deployable metadata fails in tests.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_NS = {"m": "http://soap.sforce.com/2006/04/metadata"}
DEFAULT_METADATA_DIR = Path(__file__).resolve().parents[3] / "salesforce" / "main" / "default"


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # id | string | picklist | double | currency | boolean | date | datetime | reference | int
    length: int | None = None
    scale: int | None = None
    picklist: tuple[str, ...] = ()
    reference_to: str | None = None
    relationship_name: str | None = None
    updateable: bool = True
    createable: bool = True
    nillable: bool = True
    custom: bool = False


@dataclass
class SObject:
    name: str
    key_prefix: str
    fields: dict[str, Field] = field(default_factory=dict)
    # child relationship name -> (child object, lookup field on the child)
    children: dict[str, tuple[str, str]] = field(default_factory=dict)
    is_event: bool = False

    def field(self, name: str) -> Field | None:
        """Case-insensitive lookup, as SOQL and the REST API resolve names."""
        return self._lower().get(name.lower())

    def _lower(self) -> dict[str, Field]:
        cache = self.__dict__.get("_lower_cache")
        if cache is None or len(cache) != len(self.fields):
            cache = {k.lower(): v for k, v in self.fields.items()}
            self.__dict__["_lower_cache"] = cache
        return cache

    def parent_relationship(self, rel: str) -> Field | None:
        for f in self.fields.values():
            if f.relationship_name and f.relationship_name.lower() == rel.lower():
                return f
        return None

    def child_relationship(self, rel: str) -> tuple[str, str, str] | None:
        for name, (child, fk) in self.children.items():
            if name.lower() == rel.lower():
                return name, child, fk
        return None


def _std(name: str, type_: str, **kw) -> Field:
    return Field(name, type_, **kw)


def _audit() -> list[Field]:
    return [
        _std("Id", "id", length=18, updateable=False, createable=False, nillable=False),
        _std("IsDeleted", "boolean", updateable=False, createable=False, nillable=False),
        _std("CreatedDate", "datetime", updateable=False, createable=False, nillable=False),
        _std("CreatedById", "reference", length=18, updateable=False, createable=False, reference_to="User"),
        _std("LastModifiedDate", "datetime", updateable=False, createable=False, nillable=False),
        _std("LastModifiedById", "reference", length=18, updateable=False, createable=False, reference_to="User"),
        _std("SystemModstamp", "datetime", updateable=False, createable=False, nillable=False),
    ]


def _ref(name: str, to: str, rel: str, nillable: bool = True, updateable: bool = True) -> Field:
    return Field(name, "reference", length=18, reference_to=to, relationship_name=rel, nillable=nillable,
                 updateable=updateable)


def _standard_objects(order_status: tuple[str, ...]) -> dict[str, SObject]:
    objs = {
        "Account": [
            _std("Name", "string", length=255, nillable=False),
            _std("AccountNumber", "string", length=40),
            _std("Phone", "string", length=40),
        ],
        "Product2": [
            _std("Name", "string", length=255, nillable=False),
            _std("ProductCode", "string", length=255),
            _std("StockKeepingUnit", "string", length=180),
            _std("IsActive", "boolean", nillable=False),
            _std("Description", "string", length=4000),
        ],
        "Pricebook2": [
            _std("Name", "string", length=255, nillable=False),
            _std("IsActive", "boolean", nillable=False),
            _std("IsStandard", "boolean", nillable=False, updateable=False),
        ],
        "PricebookEntry": [
            _ref("Pricebook2Id", "Pricebook2", "Pricebook2", nillable=False, updateable=False),
            _ref("Product2Id", "Product2", "Product2", nillable=False, updateable=False),
            _std("UnitPrice", "currency", scale=2, nillable=False),
            _std("IsActive", "boolean", nillable=False),
            _std("UseStandardPrice", "boolean", nillable=False),
        ],
        "Order": [
            _std("OrderNumber", "string", length=30, updateable=False, createable=False, nillable=False),
            _ref("AccountId", "Account", "Account", nillable=False),
            _ref("Pricebook2Id", "Pricebook2", "Pricebook2"),
            _std("EffectiveDate", "date", nillable=False),
            _std("Status", "picklist", picklist=order_status, nillable=False),
            _std("Name", "string", length=80),
            _std("Description", "string", length=32000),
            _std("TotalAmount", "currency", scale=2, updateable=False, createable=False),
        ],
        "OrderItem": [
            _ref("OrderId", "Order", "Order", nillable=False, updateable=False),
            _ref("Product2Id", "Product2", "Product2", updateable=False),
            _ref("PricebookEntryId", "PricebookEntry", "PricebookEntry", nillable=False, updateable=False),
            _std("OrderItemNumber", "string", length=30, updateable=False, createable=False, nillable=False),
            _std("Quantity", "double", scale=2, nillable=False),
            _std("UnitPrice", "currency", scale=2, nillable=False),
            _std("TotalPrice", "currency", scale=2, updateable=False, createable=False),
            _std("Description", "string", length=255),
        ],
    }
    from orderflow_sandbox.salesforce.ids import KEY_PREFIXES

    result: dict[str, SObject] = {}
    for name, fields in objs.items():
        sobj = SObject(name, KEY_PREFIXES[name])
        for f in _audit() + fields:
            sobj.fields[f.name] = f
        result[name] = sobj
    result["Account"].children["Orders"] = ("Order", "AccountId")
    result["Order"].children["OrderItems"] = ("OrderItem", "OrderId")
    result["Product2"].children["PricebookEntries"] = ("PricebookEntry", "Product2Id")
    return result


def _text(el: ET.Element, tag: str) -> str | None:
    found = el.find(f"m:{tag}", _NS)
    return found.text if found is not None and found.text is not None else None


def _parse_field(path: Path) -> Field:
    root = ET.parse(path).getroot()
    name = _text(root, "fullName") or path.name.split(".")[0]
    ftype = _text(root, "type") or "Text"
    required = (_text(root, "required") or "false") == "true"
    if ftype in ("Text", "TextArea", "Email", "Phone", "Url"):
        return Field(name, "string", length=int(_text(root, "length") or 255), custom=True, nillable=not required)
    if ftype == "LongTextArea":
        return Field(name, "textarea", length=int(_text(root, "length") or 32768), custom=True)
    if ftype in ("Number", "Currency", "Percent"):
        scale = int(_text(root, "scale") or 0)
        return Field(name, "currency" if ftype == "Currency" else "double", scale=scale, custom=True,
                     nillable=not required)
    if ftype == "Checkbox":
        return Field(name, "boolean", custom=True, nillable=False)
    if ftype == "Date":
        return Field(name, "date", custom=True, nillable=not required)
    if ftype == "DateTime":
        return Field(name, "datetime", custom=True, nillable=not required)
    if ftype == "Picklist":
        values = tuple(v.text for v in root.findall("m:valueSet/m:valueSetDefinition/m:value/m:fullName", _NS) if v.text)
        return Field(name, "picklist", picklist=values, custom=True, nillable=not required)
    if ftype == "Lookup":
        to = _text(root, "referenceTo") or ""
        rel = (_text(root, "relationshipName") or name[:-3]) + "__r"
        return Field(name, "reference", length=18, reference_to=to, relationship_name=rel, custom=True)
    raise ValueError(f"{path}: field type {ftype!r} is not supported by the sandbox")


def _standard_value_set(meta: Path, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    path = meta / "standardValueSets" / f"{name}.standardValueSet-meta.xml"
    if not path.exists():
        return default
    root = ET.parse(path).getroot()
    return tuple(v.text for v in root.findall("m:standardValue/m:fullName", _NS) if v.text)


def _event_object(meta: Path, name: str) -> SObject:
    from orderflow_sandbox.salesforce.ids import KEY_PREFIXES

    sobj = SObject(name, KEY_PREFIXES["PlatformEvent"], is_event=True)
    for f in (
        _std("Id", "id", length=18, updateable=False, createable=False),
        _std("ReplayId", "string", length=1000, updateable=False, createable=False),
        _std("EventUuid", "string", length=36, updateable=False, createable=False),
        _std("CreatedDate", "datetime", updateable=False, createable=False),
        _std("CreatedById", "reference", length=18, updateable=False, createable=False, reference_to="User"),
    ):
        sobj.fields[f.name] = f
    fields_dir = meta / "objects" / name / "fields"
    if fields_dir.is_dir():
        for path in sorted(fields_dir.glob("*.field-meta.xml")):
            f = _parse_field(path)
            sobj.fields[f.name] = f
    else:  # the platform event metadata ships separately; docs/architecture.md lists its fields
        sobj.fields["OrderId__c"] = Field("OrderId__c", "string", length=18, custom=True, nillable=False)
        sobj.fields["IdemKey__c"] = Field("IdemKey__c", "string", length=80, custom=True)
    return sobj


def load_schema(metadata_dir: Path | None = None) -> dict[str, SObject]:
    """Build every sObject the sandbox serves: standard fields plus the metadata's custom fields."""
    meta = Path(metadata_dir or os.environ.get("ORDERFLOW_SF_METADATA_DIR") or DEFAULT_METADATA_DIR)
    if not (meta / "objects").is_dir():
        raise FileNotFoundError(f"Salesforce metadata not found under {meta} (expected objects/)")
    order_status = _standard_value_set(meta, "OrderStatus", ("Draft", "Activated"))
    schema = _standard_objects(order_status)
    for obj_dir in sorted((meta / "objects").iterdir()):
        if obj_dir.name.endswith("__e"):
            schema[obj_dir.name] = _event_object(meta, obj_dir.name)
            continue
        if obj_dir.name not in schema:
            log.warning("metadata object %s is not emulated; skipped", obj_dir.name)
            continue
        for path in sorted((obj_dir / "fields").glob("*.field-meta.xml")):
            f = _parse_field(path)
            schema[obj_dir.name].fields[f.name] = f
    if "OrderProvisionRequested__e" not in schema:
        schema["OrderProvisionRequested__e"] = _event_object(meta, "OrderProvisionRequested__e")
    return schema
