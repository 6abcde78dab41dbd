"""SalesforceJwtHook on an Airflow ``salesforce`` connection, against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sf_env import SfEnv

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
    assert hook.org_id == sf.ep["org_id"]
    assert hook.pubsub_endpoint == sf.ep["pubsub_endpoint"] and hook.ca_bundle == sf.ca
    rows = hook.query("SELECT Id FROM Order LIMIT 3")
    assert len(rows) == 3
    assert hook.instance_url == sf.ep["instance_url"]
    assert hook.logins == 1 and hook.api_calls["query"] == 1
    token = hook.get_access_token()
    hook.invalidate_token()
    assert hook.get_access_token() != token and hook.logins == 2
    assert token not in cache.read_text()
    assert hook.test_connection() == (True, "Connection successfully tested")


def test_hook_names_missing_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SF_BROKEN", json.dumps({"conn_type": "salesforce", "login": "u@example.com"}))
    with pytest.raises(Exception, match="consumer_key"):
        SalesforceJwtHook(salesforce_conn_id="sf_broken").get_conn()
