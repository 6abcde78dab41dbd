"""The sandbox org's REST surface against the documented bodies (shared/reference/salesforce.md §3)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sf_env import JWT_GRANT, SfEnv


def _token_call(sf: SfEnv, assertion: str, grant: str = JWT_GRANT) -> requests.Response:
    return requests.post(sf.ep["login_url"] + "/services/oauth2/token",
                         data={"grant_type": grant, "assertion": assertion}, verify=sf.ca, timeout=30)


class Rest:
    def __init__(self, sf: SfEnv) -> None:
        self.sf = sf
        self.base = sf.ep["instance_url"] + "/services/data/v62.0"
        self.headers = {"Authorization": f"Bearer {sf.token()}"}

    def __call__(self, method: str, path: str, **kwargs: object) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        return requests.request(method, self.base + path, headers=headers, verify=self.sf.ca, timeout=30, **kwargs)


@pytest.fixture
def rest(sf: SfEnv) -> Rest:
    return Rest(sf)


# ------------------------------------------------------------------ OAuth JWT bearer


def test_token_success_body(sf: SfEnv) -> None:
    resp = _token_call(sf, sf.assertion())
    assert resp.status_code == 200
    body = resp.json()
    assert {"access_token", "scope", "instance_url", "id", "token_type"} <= set(body)
    assert body["token_type"] == "Bearer" and body["instance_url"] == sf.ep["instance_url"]
    assert f"/id/{sf.ep['org_id']}/005" in body["id"]
    assert body["access_token"].startswith(sf.ep["org_id"][:15] + "!")


@pytest.mark.parametrize(
    ("claims", "error", "description"),
    [
        ({"aud": "https://evil.example.com"}, "invalid_grant", "audience is invalid"),
        ({"exp": str(int(time.time()) - 10)}, "invalid_grant", "expired authorization code"),
        ({"exp": str(int(time.time()) + 3600)}, "invalid_grant", "invalid assertion"),
        ({"iss": "not-the-consumer-key"}, "invalid_client_id", "client identifier invalid"),
        ({"sub": "nobody@example.com"}, "invalid_grant", "user hasn't approved this consumer"),
    ],
)
def test_token_invalid_claims(sf: SfEnv, claims: dict, error: str, description: str) -> None:
    resp = _token_call(sf, sf.assertion(**claims))
    assert resp.status_code == 400
    assert resp.json() == {"error": error, "error_description": description}


def test_token_signed_with_another_key_is_refused(sf: SfEnv) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    import jwt

    forged = jwt.encode({"iss": sf.ep["consumer_key"], "sub": sf.ep["username"], "aud": sf.ep["login_url"],
                         "exp": int(time.time()) + 60}, other, algorithm="RS256")
    resp = _token_call(sf, forged)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
    hs = jwt.encode({"iss": sf.ep["consumer_key"], "sub": sf.ep["username"], "aud": sf.ep["login_url"],
                     "exp": int(time.time()) + 60}, "secret-secret-secret-secret-secret", algorithm="HS256")
    assert _token_call(sf, hs).json()["error"] == "invalid_grant"
    assert _token_call(sf, sf.assertion(), grant="password").json()["error"] == "unsupported_grant_type"


def test_missing_or_bad_session_gives_invalid_session_id(sf: SfEnv) -> None:
    url = sf.ep["instance_url"] + "/services/data/v62.0/query"
    for headers in ({}, {"Authorization": "Bearer 00Dxx0000000000!AQbogus"}):
        resp = requests.get(url, params={"q": "SELECT Id FROM Order"}, headers=headers, verify=sf.ca, timeout=30)
        assert resp.status_code == 401
        assert resp.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


# ------------------------------------------------------------------ sObjects


def test_sobject_crud_bodies(rest: Rest) -> None:
    resp = rest("POST", "/sobjects/Account/", json={"Name": "Crud Test KK", "WH_Account__c": "#42 - Crud Test KK"})
    assert resp.status_code == 201
    body = resp.json()
    assert body["success"] is True and body["errors"] == [] and body["id"].startswith("001") and len(body["id"]) == 18
    account_id = body["id"]
    assert re.fullmatch(r"api-usage=\d+/\d+", resp.headers["Sforce-Limit-Info"])

    got = rest("GET", f"/sobjects/Account/{account_id}").json()
    assert got["attributes"] == {"type": "Account", "url": f"/services/data/v62.0/sobjects/Account/{account_id}"}
    assert got["WH_Account__c"] == "#42 - Crud Test KK" and got["IsDeleted"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", got["CreatedDate"])
    assert rest("GET", f"/sobjects/Account/{account_id[:15]}").json()["Id"] == account_id  # 15-char ids work
    some = rest("GET", f"/sobjects/Account/{account_id}", params={"fields": "Name,WH_Account__c"}).json()
    assert set(some) == {"attributes", "Name", "WH_Account__c"}

    resp = rest("PATCH", f"/sobjects/Account/{account_id}", json={"Name": "Crud Test KK 2"})
    assert resp.status_code == 204 and resp.content == b""
    resp = rest("DELETE", f"/sobjects/Account/{account_id}")
    assert resp.status_code == 204
    resp = rest("GET", f"/sobjects/Account/{account_id}")
    assert resp.status_code == 404


def test_sobject_error_bodies(rest: Rest, sf: SfEnv) -> None:
    resp = rest("POST", "/sobjects/Account/", json={"Id": "001000000000000AAA", "Name": "x"})
    assert resp.status_code == 400
    assert resp.json() == [{"message": "The Id field should not be specified in the sobject data.", "errorCode": "INVALID_FIELD"}]
    resp = rest("GET", "/sobjects/Order/801000000000000AAA")
    assert resp.status_code == 404
    assert resp.json() == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
    order = sf.orders()[0]
    resp = rest("PATCH", f"/sobjects/Order/{order}", json={"Not_In_Metadata__c": "x"})
    assert resp.status_code == 400 and resp.json()[0]["errorCode"] == "INVALID_FIELD"
    resp = rest("PATCH", f"/sobjects/Order/{order}", json={"OrderNumber": "1"})
    assert resp.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    resp = rest("POST", "/sobjects/Order/", json={"Status": "Draft"})
    assert resp.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    resp = rest("POST", "/sobjects/Account/", data="{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_platform_event_publish_body(rest: Rest, sf: SfEnv) -> None:
    resp = rest("POST", "/sobjects/OrderProvisionRequested__e/", json={"OrderId__c": sf.orders()[0]})
    assert resp.status_code == 201
    body = resp.json()
    assert body["success"] is True and body["errors"][0]["statusCode"] == "OPERATION_ENQUEUED"
    resp = rest("POST", "/sobjects/OrderProvisionRequested__e/", json={"IdemKey__c": "x"})
    assert resp.status_code == 400 and resp.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"


# ------------------------------------------------------------------ query


def test_query_body_and_paging_shape(rest: Rest, sf: SfEnv) -> None:
    resp = rest("GET", "/query/", params={"q": "SELECT Id, Status FROM Order"},
                headers={"Sforce-Query-Options": "batchSize=200"})
    body = resp.json()
    assert body["totalSize"] == len(sf.seed["expected"]) and body["done"] is False
    assert len(body["records"]) == 200
    assert re.fullmatch(r"/services/data/v62\.0/query/01g\w+-200", body["nextRecordsUrl"])
    rec = body["records"][0]
    assert rec["attributes"]["type"] == "Order" and rec["attributes"]["url"].endswith(rec["Id"])
    more = requests.get(sf.ep["instance_url"] + body["nextRecordsUrl"], headers=rest.headers, verify=sf.ca, timeout=30)
    assert more.json()["records"][0]["Id"] != rec["Id"]
    small = rest("GET", "/query", params={"q": "SELECT Id FROM Order"}, headers={"Sforce-Query-Options": "batchSize=5"})
    assert len(small.json()["records"]) == 200  # minimum batch size is 200


def test_count_query(rest: Rest, sf: SfEnv) -> None:
    body = rest("GET", "/query", params={"q": "SELECT COUNT() FROM Order WHERE Status = 'Pending Review'"}).json()
    assert body["done"] is True and body["records"] == []
    assert 0 < body["totalSize"] <= len(sf.seed["expected"])


@pytest.mark.parametrize(
    ("soql", "code", "fragment"),
    [
        ("SELECT Id FROM Order WHERE", "MALFORMED_QUERY", "unexpected token"),
        ("SELECT Id Order", "MALFORMED_QUERY", "ERROR at Row:1:Column:"),
        ("SELECT Id, Foo FROM Order", "INVALID_FIELD", "No such column 'Foo' on entity 'Order'"),
        ("SELECT Id FROM Widget__c", "INVALID_TYPE", "sObject type 'Widget__c' is not supported"),
        ("SELECT Id FROM Order WHERE Status = 5", "INVALID_FIELD", "must be of type string"),
        ("SELECT Id FROM Order WHERE Id = 'abc'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: abc"),
    ],
)
def test_query_errors(rest: Rest, soql: str, code: str, fragment: str) -> None:
    resp = rest("GET", "/query", params={"q": soql})
    assert resp.status_code == 400
    [error] = resp.json()
    assert error["errorCode"] == code and fragment in error["message"]


def test_query_all_includes_deleted(rest: Rest) -> None:
    account_id = rest("POST", "/sobjects/Account/", json={"Name": "Deleted Co"}).json()["id"]
    rest("DELETE", f"/sobjects/Account/{account_id}")
    soql = f"SELECT Id, IsDeleted FROM Account WHERE Id = '{account_id}'"
    assert rest("GET", "/query", params={"q": soql}).json()["totalSize"] == 0
    assert rest("GET", "/queryAll", params={"q": soql}).json()["records"][0]["IsDeleted"] is True


def test_unsupported_version_is_not_found(rest: Rest, sf: SfEnv) -> None:
    resp = requests.get(sf.ep["instance_url"] + "/services/data/v99.0/query", params={"q": "SELECT Id FROM Order"},
                        headers=rest.headers, verify=sf.ca, timeout=30)
    assert resp.status_code == 404
    versions = requests.get(sf.ep["instance_url"] + "/services/data/", verify=sf.ca, timeout=30).json()
    assert {"label", "url", "version"} <= set(versions[-1]) and versions[-1]["url"].startswith("/services/data/v")


# ------------------------------------------------------------------ collections and bulk


def test_collection_limits_and_shapes(rest: Rest, sf: SfEnv) -> None:
    too_many = {"allOrNone": False, "records": [{"attributes": {"type": "Order"}, "id": sf.orders()[0]}] * 201}
    resp = rest("PATCH", "/composite/sobjects", json=too_many)
    assert resp.status_code == 400 and resp.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    created = rest("POST", "/composite/sobjects", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Account"}, "Name": "Coll A"},
        {"attributes": {"type": "Account"}, "Name": "Coll B", "Id": "001000000000000AAA"},
    ]}).json()
    assert created[0]["success"] is True and created[0]["id"].startswith("001")
    assert created[1] == {"success": False, "errors": [
        {"statusCode": "INVALID_FIELD", "message": "The Id field should not be specified in the sobject data.", "fields": []}]}
    deleted = rest("DELETE", "/composite/sobjects", params={"ids": created[0]["id"], "allOrNone": "false"}).json()
    assert deleted == [{"id": created[0]["id"], "success": True, "errors": []}]


def test_bulk_job_lifecycle_and_headers(rest: Rest, sf: SfEnv) -> None:
    job = rest("POST", "/jobs/query", json={"operation": "query", "query": "SELECT Id, Name FROM Account",
                                            "contentType": "CSV", "columnDelimiter": "COMMA", "lineEnding": "LF"}).json()
    assert job["state"] in ("UploadComplete", "InProgress", "JobComplete") and job["id"].startswith("750")
    assert job["object"] == "Account" and job["operation"] == "query"
    for _ in range(200):
        info = rest("GET", f"/jobs/query/{job['id']}").json()
        if info["state"] == "JobComplete":
            break
        time.sleep(0.02)
    assert info["state"] == "JobComplete" and info["jobType"] == "V2Query"
    first = rest("GET", f"/jobs/query/{job['id']}/results", params={"maxRecords": 300})
    assert first.headers["Sforce-NumberOfRecords"] == "300"
    assert first.headers["Sforce-Locator"] not in ("", "null")
    assert first.text.splitlines()[0] == "Id,Name"
    total = int(first.headers["Sforce-NumberOfRecords"])
    locator = first.headers["Sforce-Locator"]
    while locator != "null":
        page = rest("GET", f"/jobs/query/{job['id']}/results", params={"maxRecords": 300, "locator": locator})
        total += int(page.headers["Sforce-NumberOfRecords"])
        locator = page.headers["Sforce-Locator"]
    assert total == info["numberRecordsProcessed"] == sf.org.counts()["Account"]
    assert rest("DELETE", f"/jobs/query/{job['id']}").status_code == 204
    assert rest("GET", f"/jobs/query/{job['id']}").status_code == 404


# ------------------------------------------------------------------ admin


def test_admin_stats_config_and_backdate(rest: Rest, sf: SfEnv) -> None:
    sf.admin("DELETE", "/stats")
    rest("GET", "/query", params={"q": "SELECT Id FROM Order LIMIT 1"})
    stats = sf.stats()
    assert stats["rest"] == {"query": 1} and stats["rest_total"] == 1
    order = sf.orders()[1]
    result = sf.admin("POST", "/backdate", {"ids": [order], "minutes": 90})
    assert result["updated"] == 1  # type: ignore[index]
    body = rest("GET", "/query", params={"q": f"SELECT Id FROM Order WHERE LastModifiedDate < {_iso_minutes_ago(60)} "
                                              f"AND Id = '{order}'"}).json()
    assert body["totalSize"] == 1
    state = sf.admin("GET", "/state?limit=2")
    assert state["counts"]["Order"] == len(sf.seed["expected"])  # type: ignore[index]
    assert len(state["records"]["Order"]) == 2  # type: ignore[index]
    assert "private_key" not in str(state) and sf.ep["consumer_key"] not in str(state)


def _iso_minutes_ago(minutes: int) -> str:
    import datetime as dt

    return (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_metadata_is_the_schema(sf: SfEnv) -> None:
    """Every custom field in the SFDX metadata exists in the org and nothing else does."""
    meta = Path(__file__).resolve().parents[3] / "salesforce" / "main" / "default" / "objects"
    for obj in ("Account", "Product2", "Order", "OrderItem"):
        declared = {p.name.split(".")[0] for p in (meta / obj / "fields").glob("*.field-meta.xml")}
        custom = {name for name, f in sf.org.schema[obj].fields.items() if f.custom}
        assert declared == custom, obj
