"""Airflow connections that point orderflow at a running sandbox.

The demo and the tests export these as ``AIRFLOW_CONN_*`` environment variables; pointing
at a real org and WHMCS means creating the same two connections with real values
(README, "Point it at a real org").
"""

from __future__ import annotations

import json

from orderflow import settings


def airflow_connections(endpoints: dict, smtp_port: int | None = None) -> dict[str, dict]:
    """Connection dicts (Airflow's JSON connection format) keyed by conn id."""
    conns: dict[str, dict] = {}
    ca = endpoints["ca_bundle"]
    if "salesforce" in endpoints:
        sf = endpoints["salesforce"]
        conns[settings.SALESFORCE_CONN_ID] = {
            "conn_type": "salesforce",
            "login": sf["username"],
            "extra": {
                "consumer_key": sf["consumer_key"],
                "private_key_file_path": sf["private_key_path"],
                "login_url": sf["login_url"],
                "instance_url": sf["instance_url"],
                "pubsub_endpoint": sf["pubsub_endpoint"],
                "tenant_id": sf["org_id"],
                "version": sf.get("api_version", "62.0"),
                "ca_bundle": ca,
            },
        }
    if "whmcs" in endpoints:
        wh = endpoints["whmcs"]
        conns[settings.WHMCS_CONN_ID] = {
            "conn_type": "whmcs",
            "host": wh["url"],
            "login": wh["identifier"],
            "password": wh["secret"],
            "extra": {"accesskey": wh.get("accesskey") or "", "ca_bundle": ca, "timeout": 30},
        }
    if smtp_port:
        conns[settings.SMTP_CONN_ID] = {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": smtp_port,
            "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "orderflow@localhost"},
        }
    return conns


def connection_env(endpoints: dict, smtp_port: int | None = None) -> dict[str, str]:
    """``{"AIRFLOW_CONN_SALESFORCE_DEFAULT": "<json>", ...}``."""
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)
        for conn_id, conn in airflow_connections(endpoints, smtp_port).items()
    }


def salesforce_client(endpoints: dict, token_cache=None):
    """A :class:`orderflow.salesforce.client.SalesforceClient` for the sandbox org."""
    from orderflow.salesforce.client import SalesforceClient

    sf = endpoints["salesforce"]
    kwargs = {"token_cache": token_cache} if token_cache is not None else {}
    return SalesforceClient(
        login_url=sf["login_url"],
        username=sf["username"],
        consumer_key=sf["consumer_key"],
        private_key_path=sf["private_key_path"],
        instance_url=sf["instance_url"],
        ca_bundle=endpoints["ca_bundle"],
        api_version=sf.get("api_version", "62.0"),
        org_id=sf["org_id"],
        pubsub_endpoint=sf["pubsub_endpoint"],
        **kwargs,
    )


def whmcs_client(endpoints: dict, credentials: dict | None = None):
    """A :class:`orderflow.whmcs.client.WhmcsClient` (``credentials`` overrides the pipeline's)."""
    from orderflow.whmcs.client import WhmcsClient

    wh = endpoints["whmcs"]
    creds = credentials or wh
    return WhmcsClient(
        wh["url"], creds["identifier"], creds["secret"], accesskey=wh.get("accesskey"), ca_bundle=endpoints["ca_bundle"]
    )
