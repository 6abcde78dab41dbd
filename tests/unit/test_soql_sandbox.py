"""The sandbox org's SOQL parser and evaluator, without HTTP (an in-memory data source)."""

from __future__ import annotations

import datetime as dt

import pytest

from orderflow_sandbox.salesforce import soql
from orderflow_sandbox.salesforce.ids import checksum, make_id, normalize_id
from orderflow_sandbox.salesforce.schema import load_schema

SCHEMA = load_schema()
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def _ts(days_ago: float) -> str:
    return soql.format_datetime(NOW - dt.timedelta(days=days_ago))


ACC = [make_id("001", i) for i in range(1, 4)]
ORD = [make_id("801", i) for i in range(1, 6)]
PROD = [make_id("01t", i) for i in range(1, 3)]
TABLES: dict[str, list[dict]] = {
    "Account": [
        {"Id": ACC[0], "Name": "Acme", "WH_Account__c": "#1 - Acme", "IsDeleted": False},
        {"Id": ACC[1], "Name": "O'Brien & Co", "WH_Account__c": None, "IsDeleted": False},
        {"Id": ACC[2], "Name": "100% Fiber", "WH_Account__c": "#3 - 100% Fiber", "IsDeleted": False},
    ],
    "Product2": [
        {"Id": PROD[0], "Name": "Gold", "StockKeepingUnit": "INTERNET-GOLD", "WH_Product_ID__c": 188.0, "IsActive": True},
        {"Id": PROD[1], "Name": "Static IP", "StockKeepingUnit": "STATIC-IP", "WH_Product_ID__c": None, "IsActive": True},
    ],
    "Order": [
        {"Id": ORD[0], "AccountId": ACC[0], "Status": "Approved", "Activation_Status__c": "Activating",
         "EffectiveDate": "2026-11-20", "LastModifiedDate": _ts(0.1), "OrderNumber": "00000001", "IsDeleted": False},
        {"Id": ORD[1], "AccountId": ACC[1], "Status": "Pending Review", "Activation_Status__c": None,
         "EffectiveDate": "2026-10-01", "LastModifiedDate": _ts(40), "OrderNumber": "00000002", "IsDeleted": False},
        {"Id": ORD[2], "AccountId": ACC[2], "Status": "Activated", "Activation_Status__c": "Activated",
         "EffectiveDate": "2026-11-25", "LastModifiedDate": _ts(2), "OrderNumber": "00000003", "IsDeleted": False},
        {"Id": ORD[3], "AccountId": ACC[0], "Status": "Approved", "Activation_Status__c": "Failed",
         "EffectiveDate": "2026-11-01", "LastModifiedDate": _ts(8), "OrderNumber": "00000004", "IsDeleted": False},
        {"Id": ORD[4], "AccountId": ACC[0], "Status": "Draft", "Activation_Status__c": None,
         "EffectiveDate": "2026-11-02", "LastModifiedDate": _ts(1), "OrderNumber": "00000005", "IsDeleted": False},
    ],
    "OrderItem": [
        {"Id": make_id("802", 1), "OrderId": ORD[0], "Product2Id": PROD[0], "Quantity": 1.0, "IsDeleted": False},
        {"Id": make_id("802", 2), "OrderId": ORD[0], "Product2Id": PROD[1], "Quantity": 2.0, "IsDeleted": False},
        {"Id": make_id("802", 3), "OrderId": ORD[2], "Product2Id": PROD[0], "Quantity": 1.0, "IsDeleted": False},
    ],
}


class MemorySource:
    def scan(self, sobject: str, equals: dict) -> list[dict]:
        rows = TABLES.get(sobject, [])
        for col, values in equals.items():
            wanted = {str(v).lower() for v in values}  # storage matches picklists ignoring case, like SQLite NOCASE
            rows = [r for r in rows if str(r.get(col)).lower() in wanted]
        return [dict(r) for r in rows]

    def get_many(self, sobject: str, ids: set[str]) -> dict[str, dict]:
        return {r["Id"]: dict(r) for r in TABLES.get(sobject, []) if r["Id"] in ids}

    def children(self, sobject: str, fk: str, parent_ids: list[str]) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for r in TABLES.get(sobject, []):
            if r.get(fk) in parent_ids:
                out.setdefault(r[fk], []).append(dict(r))
        return out


def run(text: str) -> soql.Result:
    return soql.execute(soql.parse(text), SCHEMA, MemorySource(), now=NOW)


def ids(text: str) -> list[str]:
    return [r["Id"] for r in run(text).rows]


def test_fields_parent_paths_and_attributes() -> None:
    [rec] = run(f"SELECT Id, Status, Account.Name, Account.WH_Account__c FROM Order WHERE Id = '{ORD[0]}'").page(0, 10)
    assert rec["attributes"] == {"type": "Order", "url": f"/services/data/v62.0/sobjects/Order/{ORD[0]}"}
    assert rec["Account"]["Name"] == "Acme" and rec["Account"]["attributes"]["type"] == "Account"
    assert list(rec) == ["attributes", "Id", "Status", "Account"]


def test_field_names_are_case_insensitive_but_returned_canonical() -> None:
    [rec] = run(f"select id, STATUS, account.wh_account__c from order where ID = '{ORD[0][:15]}'").page(0, 1)
    assert rec["Status"] == "Approved" and rec["Account"]["WH_Account__c"] == "#1 - Acme"


def test_child_subquery() -> None:
    records = run("SELECT Id, (SELECT Id, Quantity, Product2.WH_Product_ID__c FROM OrderItems ORDER BY Quantity DESC) "
                  "FROM Order ORDER BY OrderNumber").page(0, 10)
    first = records[0]["OrderItems"]
    assert first["totalSize"] == 2 and first["done"] is True
    assert [i["Quantity"] for i in first["records"]] == [2.0, 1.0]
    assert first["records"][0]["Product2"]["WH_Product_ID__c"] is None
    assert records[1]["OrderItems"] is None  # no children -> null, as Salesforce returns


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Status = 'approved'", [0, 3]),  # string equality is case-insensitive
        ("Status != 'Approved'", [1, 2, 4]),
        ("Activation_Status__c = NULL", [1, 4]),
        ("Activation_Status__c != null", [0, 2, 3]),
        ("Status IN ('Approved', 'Draft')", [0, 3, 4]),
        ("Status NOT IN ('Approved', 'Draft')", [1, 2]),
        ("Account.WH_Account__c = null", [1]),
        ("Account.Name LIKE 'ac%'", [0, 3, 4]),
        ("Account.Name LIKE '100\\% F%'", [2]),
        ("Account.Name LIKE 'O\\'Brien%'", [1]),
        ("EffectiveDate >= 2026-11-02", [0, 2, 4]),
        ("EffectiveDate < 2026-11-01", [1]),
        ("LastModifiedDate < 2026-11-20T00:00:00Z", [1, 3]),
        ("LastModifiedDate > 2026-11-26T10:00:00+09:00", [0]),
        ("LastModifiedDate = LAST_N_DAYS:7", [0, 2, 4]),
        ("LastModifiedDate < LAST_N_DAYS:7", [1, 3]),
        ("EffectiveDate = LAST_N_DAYS:7", [0, 2]),
        ("EffectiveDate = YESTERDAY", [2]),
        ("Status = 'Approved' AND Activation_Status__c = 'Activating'", [0]),
        ("Status = 'Draft' OR Status = 'Activated'", [2, 4]),
        ("(Status = 'Draft' OR Status = 'Activated') AND Account.Name = 'Acme'", [4]),
        ("NOT Status = 'Approved'", [1, 2, 4]),
        ("NOT (Status = 'Approved' OR Status = 'Draft')", [1, 2]),
        (f"Id IN ('{ORD[1][:15]}', '{ORD[2]}')", [1, 2]),
        (f"AccountId = '{ACC[0]}' AND Status != 'Draft'", [0, 3]),
        ("IsDeleted = false", [0, 1, 2, 3, 4]),
        ("OrderNumber > '00000003'", [3, 4]),
    ],
)
def test_where(where: str, expected: list[int]) -> None:
    assert ids(f"SELECT Id FROM Order WHERE {where} ORDER BY OrderNumber") == [ORD[i] for i in expected]


def test_numbers_and_booleans() -> None:
    assert [r["Id"] for r in run("SELECT Id FROM Product2 WHERE WH_Product_ID__c > 100").rows] == [PROD[0]]
    assert [r["Id"] for r in run("SELECT Id FROM Product2 WHERE WH_Product_ID__c = 188.0 AND IsActive = TRUE").rows] == [PROD[0]]
    [rec] = run("SELECT WH_Product_ID__c, IsActive FROM Product2 WHERE WH_Product_ID__c = 188").page(0, 1)
    assert rec["WH_Product_ID__c"] == 188.0 and rec["IsActive"] is True


def test_order_by_limit_offset_nulls() -> None:
    assert ids("SELECT Id FROM Order ORDER BY OrderNumber DESC LIMIT 2") == [ORD[4], ORD[3]]
    assert ids("SELECT Id FROM Order ORDER BY OrderNumber LIMIT 2 OFFSET 1") == [ORD[1], ORD[2]]
    asc = ids("SELECT Id FROM Order ORDER BY Activation_Status__c, OrderNumber")
    assert asc[:2] == [ORD[1], ORD[4]]  # nulls first by default
    last = ids("SELECT Id FROM Order ORDER BY Activation_Status__c ASC NULLS LAST, OrderNumber")
    assert last[-2:] == [ORD[1], ORD[4]]
    assert ids("SELECT Id FROM Order ORDER BY Account.Name DESC, OrderNumber")[0] == ORD[1]


def test_count() -> None:
    result = run("SELECT COUNT() FROM Order WHERE Status = 'Approved'")
    assert result.total_size == 2 and result.page(0, 10) == []


@pytest.mark.parametrize(
    ("text", "code", "fragment"),
    [
        ("SELECT FROM Order", "MALFORMED_QUERY", "unexpected token: 'FROM'"),
        ("SELECT Id FROM Order WHERE Status = 'a' AND Id = 'b' OR Status = 'c'", "MALFORMED_QUERY", "unexpected token: 'OR'"),
        ("SELECT Id FROM Order LIMIT x", "MALFORMED_QUERY", "ERROR at Row:1:Column:28"),
        ("SELECT Id FROM Order WHERE Name = 'unterminated", "MALFORMED_QUERY", "unexpected token"),
        ("SELECT Id FROM Order WHERE Status = 'a\\q'", "MALFORMED_QUERY", "Illegal character sequence"),
        ("SELECT Id, COUNT() FROM Order", "MALFORMED_QUERY", "COUNT()"),
        ("SELECT Idd FROM Order", "INVALID_FIELD", "No such column 'Idd' on entity 'Order'"),
        ("SELECT Account.Foo__c FROM Order", "INVALID_FIELD", "No such column 'Foo__c' on entity 'Account'"),
        ("SELECT Acount.Name FROM Order", "INVALID_FIELD", "Didn't understand relationship 'Acount'"),
        ("SELECT Id, (SELECT Id FROM Items) FROM Order", "INVALID_TYPE", "Didn't understand relationship 'Items'"),
        ("SELECT Id FROM Orders", "INVALID_TYPE", "sObject type 'Orders' is not supported"),
        ("SELECT Id FROM Order WHERE EffectiveDate = '2026-01-01'", "INVALID_FIELD", "must be of type date"),
        ("SELECT Id FROM Order WHERE LastModifiedDate > 2026-01-01", "INVALID_FIELD", "must be of type dateTime"),
        ("SELECT Id FROM Order WHERE IsDeleted = 'false'", "INVALID_FIELD", "must be of type boolean"),
        ("SELECT Id FROM Order WHERE Id = '801' OR Id != ''", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: 801"),
        ("SELECT Id FROM OrderProvisionRequested__e", "INVALID_TYPE", "is not supported"),
    ],
)
def test_errors(text: str, code: str, fragment: str) -> None:
    with pytest.raises(soql.SoqlError) as exc:
        run(text)
    assert exc.value.error_code == code
    assert fragment in exc.value.message


def test_injection_shaped_literal_stays_a_literal() -> None:
    assert ids("SELECT Id FROM Order WHERE Account.Name = 'x\\' OR Name != \\''") == []


def test_ids_checksum_like_salesforce() -> None:
    assert checksum("001A0000006Vm9r") == "IAC"  # the documented example: 001A0000006Vm9rIAC
    assert normalize_id("001A0000006Vm9r") == "001A0000006Vm9rIAC"
    assert normalize_id("001A0000006Vm9rIAC") == "001A0000006Vm9rIAC"
    assert normalize_id("001A0000006Vm9riac") == "001A0000006Vm9rIAC"  # suffix is case-insensitive
    assert normalize_id("001A0000006Vm9rAAA") is None
    assert normalize_id("001A0000006Vm9") is None
    assert make_id("801", 1) != make_id("801", 2) and len(make_id("801", 1)) == 18
