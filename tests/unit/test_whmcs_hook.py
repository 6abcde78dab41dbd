"""WhmcsHook builds its client from an Airflow connection, without touching the network."""

from __future__ import annotations

import json

import pytest
import requests

from orderflow.errors import ErrorCode, PermanentError
from orderflow.whmcs.client import WhmcsClient
from orderflow.whmcs.connection import CONN_FIELDS, provider_connection_type
from orderflow.whmcs.hook import WhmcsHook

CONN = {
    "conn_type": "whmcs",
    "host": "https://billing.example.invalid/includes/api.php",
    "login": "api-identifier-1",
    "password": "api-secret-value-1",
    "extra": {"accesskey": "access-key-1", "ca_bundle": "/etc/ssl/whmcs-ca.pem", "timeout": "12.5",
              "noinvoice": "true", "noemail": False},
}


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the hook touched the network")

    monkeypatch.setattr(requests.Session, "send", refuse)


def test_hook_builds_client_from_env_connection_without_network(monkeypatch, no_network):
    monkeypatch.setenv("AIRFLOW_CONN_WHMCS_DEFAULT", json.dumps(CONN))
    hook = WhmcsHook()
    client = hook.get_conn()
    assert isinstance(client, WhmcsClient) and client is hook.client  # cached
    assert client.url == CONN["host"] and client.identifier == "api-identifier-1"
    assert client.ca_bundle == "/etc/ssl/whmcs-ca.pem" and client.timeout == 12.5
    assert client.total_calls == 0
    assert hook.order_options == {"noinvoice": True, "noemail": False}
    assert "api-secret-value-1" not in repr(client) and "access-key-1" not in repr(client)


def test_hook_named_connection_and_uri_style_host(monkeypatch, no_network):
    monkeypatch.setenv(
        "AIRFLOW_CONN_WHMCS_BILLING",
        json.dumps({"conn_type": "whmcs", "host": "billing.example.invalid", "port": 8443, "login": "id",
                    "password": "secret-value-2"}),
    )
    client = WhmcsHook(whmcs_conn_id="whmcs_billing").client
    assert client.url == "https://billing.example.invalid:8443/includes/api.php"
    assert client.ca_bundle is None and client.timeout == 30.0


def test_hook_without_credentials_fails_clearly(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WHMCS_DEFAULT", json.dumps({"conn_type": "whmcs", "host": CONN["host"]}))
    with pytest.raises(PermanentError, match="login") as err:  # permanent: the retry policy fails it at once
        WhmcsHook().get_conn()
    assert err.value.code is ErrorCode.WHMCS_CONFIGURATION_ERROR
    assert "needs login, password (" in err.value.message  # exactly the missing fields


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"host": "http://billing.example.invalid/includes/api.php"}, "https"), ({"extra": {"timeout": "soon"}}, "timeout")],
)
def test_hook_with_a_bad_field_names_it(monkeypatch, changes, field):
    monkeypatch.setenv("AIRFLOW_CONN_WHMCS_DEFAULT", json.dumps({**CONN, **changes}))
    with pytest.raises(PermanentError, match=field) as err:
        WhmcsHook().get_conn()
    assert err.value.code is ErrorCode.WHMCS_CONFIGURATION_ERROR


def test_test_connection_reports_failure_without_secrets(monkeypatch):
    conn = {**CONN, "host": "https://127.0.0.1:9/includes/api.php", "extra": {"timeout": 2}}
    monkeypatch.setenv("AIRFLOW_CONN_WHMCS_DEFAULT", json.dumps(conn))
    ok, message = WhmcsHook().test_connection()
    assert ok is False and message.startswith("WHMCS_UNAVAILABLE")
    assert "api-secret-value-1" not in message


def test_connection_form_metadata():
    assert WhmcsHook.conn_type == "whmcs" and WhmcsHook.default_conn_name == "whmcs_default"
    assert WhmcsHook.conn_name_attr == "whmcs_conn_id" and WhmcsHook.hook_name == "WHMCS"
    behaviour = WhmcsHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == {"host": "API URL", "login": "API Identifier", "password": "API Secret"}
    assert "host" not in behaviour["hidden_fields"]
    assert set(CONN_FIELDS) == {"accesskey", "ca_bundle", "timeout", "noinvoice", "noemail"}
    assert CONN_FIELDS["accesskey"]["schema"]["format"] == "password"
    entry = provider_connection_type()
    assert entry["hook-class-name"] == f"{WhmcsHook.__module__}.{WhmcsHook.__name__}"
    assert entry["ui-field-behaviour"]["hidden-fields"] == behaviour["hidden_fields"]
