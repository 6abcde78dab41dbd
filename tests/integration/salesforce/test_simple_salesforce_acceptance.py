"""Acceptance: UNMODIFIED simple-salesforce works against the sandbox org.

A token from the sandbox's JWT endpoint, simple-salesforce's own ``Salesforce(instance_url=...,
session_id=..., session=requests.Session())`` with TLS verified against the sandbox CA, and its own
``query_all``, sObject, ``restful`` and ``bulk2`` calls.
"""

from __future__ import annotations

import csv
import io

import pytest
import requests
from sf_env import SfEnv
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)


@pytest.fixture
def sfapi(sf: SfEnv, monkeypatch: pytest.MonkeyPatch) -> Salesforce:
    # Plain requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override session.verify; the host sets them.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    session = requests.Session()
    session.verify = sf.ca
    return Salesforce(instance_url=sf.ep["instance_url"], session_id=sf.token(), session=session, version="59.0")


def test_query_all_pages_past_2000(sfapi: Salesforce, sf: SfEnv) -> None:
    result = sfapi.query_all("SELECT Id, Status, Account.WH_Account__c FROM Order")
    assert result["totalSize"] == len(sf.seed["expected"]) > 2000
    assert {r["Id"] for r in result["records"]} == set(sf.seed["expected"])
    assert sfapi.api_usage["api-usage"].used > 0  # parsed from Sforce-Limit-Info
    first = next(sfapi.query_all_iter("SELECT Id, (SELECT Id FROM OrderItems) FROM Order LIMIT 1"))
    assert first["OrderItems"]["records"][0]["attributes"]["type"] == "OrderItem"


def test_sobject_get_and_update(sfapi: Salesforce, sf: SfEnv, fresh_order) -> None:
    order = fresh_order()
    rec = sfapi.Order.get(order)
    assert rec["Id"] == order and rec["Status"] == "Pending Review"
    assert sfapi.Order.update(order, {"Status": "Approved"}) == 204
    rec = sfapi.Order.get(order)
    assert rec["Activation_Status__c"] == "Activating"
    with pytest.raises(SalesforceResourceNotFound):
        sfapi.Order.get("801000000000000AAA")
    with pytest.raises(SalesforceMalformedRequest):
        sfapi.Order.update(order, {"No_Such_Field__c": 1})


def test_restful_composite_collections(sfapi: Salesforce, fresh_order) -> None:
    a, b = fresh_order(), fresh_order()
    result = sfapi.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Order"}, "id": a, "WHMCS_Order_ID__c": "77"},
        {"attributes": {"type": "Order"}, "id": b, "Activation_Status__c": "Nope"},
    ]})
    assert result[0] == {"id": a, "success": True, "errors": []}
    assert result[1]["success"] is False
    assert result[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_bulk2_query(sfapi: Salesforce, sf: SfEnv) -> None:
    pages = list(sfapi.bulk2.Order.query("SELECT Id, Status FROM Order", max_records=1000, wait=0.1))
    rows = [row for page in pages for row in csv.DictReader(io.StringIO(page))]
    assert len(pages) == 3
    assert {r["Id"] for r in rows} == set(sf.seed["expected"])


def test_expired_session_raises(sf: SfEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    session = requests.Session()
    session.verify = sf.ca
    token = sf.token()
    sf.org.revoke_access_token(token)
    api = Salesforce(instance_url=sf.ep["instance_url"], session_id=token, session=session)
    with pytest.raises(SalesforceExpiredSession):
        api.query("SELECT Id FROM Order LIMIT 1")
