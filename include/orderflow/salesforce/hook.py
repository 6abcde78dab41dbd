"""Airflow hook for the Salesforce org on the Salesforce provider's ``salesforce`` connection type.

Connection mapping: ``login`` = username; extras (short or ``extra__salesforce__``-prefixed, as the
provider's SalesforceHook reads them): ``consumer_key``, ``private_key`` or ``private_key_file_path``,
``instance_url``, ``version``, plus ``login_url``, ``pubsub_endpoint``, ``ca_bundle``,
``tenant_id``/``org_id`` and ``token_cache_path``. The hook wraps :class:`SalesforceClient`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from orderflow.errors import ErrorCode, PermanentError
from orderflow.salesforce.client import DEFAULT_API_VERSION, DEFAULT_LOGIN_URL, SalesforceClient
from orderflow.salesforce.records import SaveResult
from orderflow.salesforce.token_cache import TokenCache

log = logging.getLogger(__name__)


def _get_field(extras: dict, name: str) -> Any:
    """Short name first, then the legacy ``extra__salesforce__`` prefix (like the provider's hook)."""
    if name in extras:
        return extras[name] or None
    return extras.get(f"extra__salesforce__{name}") or None


def client_from_connection(conn: Any) -> SalesforceClient:
    """Build a :class:`SalesforceClient` from an Airflow connection object."""
    extras = conn.extra_dejson or {}
    username = conn.login
    consumer_key = _get_field(extras, "consumer_key")
    private_key = _get_field(extras, "private_key")
    private_key_path = _get_field(extras, "private_key_file_path")
    if not (username and consumer_key and (private_key or private_key_path)):
        raise PermanentError(
            ErrorCode.SALESFORCE_CONFIGURATION_ERROR,
            f"connection {conn.conn_id!r} needs login (username), extra consumer_key and extra private_key or "
            "private_key_file_path for the JWT bearer flow",
        )
    instance_url = _get_field(extras, "instance_url")
    cache_path = _get_field(extras, "token_cache_path")
    return SalesforceClient(
        login_url=_get_field(extras, "login_url") or instance_url or DEFAULT_LOGIN_URL,
        username=username,
        consumer_key=consumer_key,
        private_key=private_key,
        private_key_path=private_key_path,
        instance_url=instance_url,
        ca_bundle=_get_field(extras, "ca_bundle"),
        api_version=str(_get_field(extras, "version") or DEFAULT_API_VERSION),
        token_cache=TokenCache(cache_path) if cache_path else None,
        org_id=_get_field(extras, "tenant_id") or _get_field(extras, "org_id"),
        pubsub_endpoint=_get_field(extras, "pubsub_endpoint"),
    )


class SalesforceJwtHook(BaseHook):
    """Salesforce REST through the JWT bearer flow with a token cache shared by all task processes."""

    conn_name_attr = "salesforce_conn_id"
    default_conn_name = "salesforce_default"
    conn_type = "salesforce"
    hook_name = "Salesforce (orderflow JWT)"

    def __init__(self, salesforce_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.salesforce_conn_id = salesforce_conn_id
        self._client: SalesforceClient | None = None

    def get_conn(self) -> SalesforceClient:
        if self._client is None:
            self._client = client_from_connection(self.get_connection(self.salesforce_conn_id))
        return self._client

    @property
    def client(self) -> SalesforceClient:
        return self.get_conn()

    # -- what the Pub/Sub client and the tasks use
    def get_access_token(self) -> str:
        return self.client.get_access_token()

    def invalidate_token(self) -> None:
        self.client.invalidate_token()

    @property
    def instance_url(self) -> str:
        return self.client.instance_url

    @property
    def org_id(self) -> str | None:
        return self.client.org_id

    @property
    def pubsub_endpoint(self) -> str | None:
        return self.client.pubsub_endpoint

    @property
    def ca_bundle(self) -> str | None:
        return self.client.ca_bundle

    @property
    def api_calls(self) -> Counter[str]:
        return self.client.api_calls

    @property
    def logins(self) -> int:
        return self.client.logins

    # -- REST
    def query(self, soql: str, include_deleted: bool = False) -> list[dict]:
        return self.client.query(soql, include_deleted=include_deleted)

    def iter_query(self, soql: str, include_deleted: bool = False, batch_size: int | None = None) -> Iterator[dict]:
        return self.client.iter_query(soql, include_deleted=include_deleted, batch_size=batch_size)

    def get(self, sobject: str, record_id: str, fields: list[str] | None = None) -> dict:
        return self.client.get(sobject, record_id, fields)

    def update(self, sobject: str, record_id: str, fields: dict) -> None:
        self.client.update(sobject, record_id, fields)

    def update_collection(self, records: list[dict], all_or_none: bool = False, sobject: str | None = None) -> list[SaveResult]:
        return self.client.update_collection(records, all_or_none=all_or_none, sobject=sobject)

    def bulk_query_to_file(self, soql: str, path: str | Path, **kwargs: Any) -> int:
        return self.client.bulk_query_to_file(soql, path, **kwargs)

    def publish_event(self, event: str, fields: dict) -> dict:
        return self.client.publish_event(event, fields)

    def test_connection(self) -> tuple[bool, str]:
        """Used by the UI's Test button: one login and one query."""
        try:
            self.client.count("SELECT COUNT() FROM Account")
        except Exception as exc:  # noqa: BLE001 - the UI shows the message
            return False, str(exc)
        return True, "Connection successfully tested"
