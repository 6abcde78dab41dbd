"""SalesforceJwtHook on an Airflow ``salesforce`` connection, against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sf_env import SfEnv

from orderflow.errors import ErrorCode, PermanentError
from orderflow.salesforce.hook import SalesforceJwtHook


def _conn_env(sf: SfEnv, cache: Path, prefixed: bool) -> str:
    p = "extra__salesforce__" if prefixed else ""
    extra = {
        f"{p}consumer_key": sf.ep["consumer_key"],
        f"{p}private_key": Path(sf.ep["private_key_path"]).read_text(),
        f"{p}version": "62.0",
        "login_url": sf.ep["login_url"],
        "pubsub_endpoint": sf.ep["pubsub_endpoint"],
        "ca_bundle": sf.ca,
        "tenant_id": sf.ep["org_id"],
        "token_cache_path": str(cache),
    }
    return json.dumps({"conn_type": "salesforce", "login": sf.ep["username"], "extra": extra})


@pytest.mark.parametrize("prefixed", [False, True])
def test_hook_from_connection(sf: SfEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefixed: bool) -> None:
    cache = tmp_path / "cache.json"
    monkeypatch.setenv("AIRFLOW_CONN_SF_SANDBOX", _conn_env(sf, cache, prefixed))
    hook = SalesforceJwtHook(salesforce_conn_id="sf_sandbox")
    client = hook.get_conn()  # callers use the client the hook builds
    assert client is hook.get_conn()  # one client (and one login) per hook
    assert client.org_id == sf.ep["org_id"]
    assert client.pubsub_endpoint == sf.ep["pubsub_endpoint"] and client.ca_bundle == sf.ca
    rows = client.query("SELECT Id FROM Order LIMIT 3")
    assert len(rows) == 3
    assert client.instance_url == sf.ep["instance_url"]
    assert client.logins == 1 and client.api_calls["query"] == 1
    token = client.get_access_token()
    client.invalidate_token()
    assert client.get_access_token() != token and client.logins == 2
    assert token not in cache.read_text()
    assert hook.test_connection() == (True, "Connection successfully tested")
    pubsub = hook.get_pubsub_client()  # the Pub/Sub client on the same login
    assert (pubsub.endpoint, pubsub.instance_url, pubsub.tenant_id, pubsub.ca_bundle) == (
        sf.ep["pubsub_endpoint"], sf.ep["instance_url"], sf.ep["org_id"], sf.ca)
    assert client.logins == 2  # building it logged in no further


def test_pubsub_client_needs_the_endpoint(sf: SfEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(_conn_env(sf, tmp_path / "cache.json", prefixed=False))
    del conn["extra"]["pubsub_endpoint"]
    monkeypatch.setenv("AIRFLOW_CONN_SF_NO_PUBSUB", json.dumps(conn))
    with pytest.raises(PermanentError, match="pubsub_endpoint") as err:
        SalesforceJwtHook(salesforce_conn_id="sf_no_pubsub").get_pubsub_client()
    assert err.value.code is ErrorCode.SALESFORCE_CONFIGURATION_ERROR


def test_hook_names_missing_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SF_BROKEN", json.dumps({"conn_type": "salesforce", "login": "u@example.com"}))
    with pytest.raises(Exception, match="consumer_key"):
        SalesforceJwtHook(salesforce_conn_id="sf_broken").get_conn()
