"""Airflow hook for the Salesforce org on the Salesforce provider's ``salesforce`` connection type.

Connection mapping: ``login`` = username; extras (short or ``extra__salesforce__``-prefixed, as the
provider's SalesforceHook reads them): ``consumer_key``, ``private_key`` or ``private_key_file_path``,
``instance_url``, ``version``, plus ``login_url``, ``pubsub_endpoint``, ``ca_bundle``,
``tenant_id``/``org_id`` and ``token_cache_path``. The hook builds the clients; callers use them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from orderflow import settings
from orderflow.errors import ErrorCode, OrderflowError, PermanentError, mask_registered_secrets, safe_message
from orderflow.salesforce.client import DEFAULT_API_VERSION, DEFAULT_LOGIN_URL, SalesforceClient
from orderflow.salesforce.token_cache import TokenCache

if TYPE_CHECKING:  # grpc is heavy: imported when a Pub/Sub client is built
    from orderflow.salesforce.pubsub import PubSubClient

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
    """Builds the org's clients from a ``salesforce`` connection and tests it; callers use the clients.

    ``get_conn()`` is the REST :class:`SalesforceClient` (JWT bearer login, token cache shared by
    all task processes); ``get_pubsub_client()`` a Pub/Sub client on the same login. Call the
    client, not the hook: ``hook.get_conn().query(...)``.
    """

    conn_name_attr = "salesforce_conn_id"
    default_conn_name = settings.SALESFORCE_CONN_ID
    conn_type = "salesforce"
    hook_name = "Salesforce (orderflow JWT)"

    def __init__(self, salesforce_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.salesforce_conn_id = salesforce_conn_id
        self._client: SalesforceClient | None = None

    def get_conn(self) -> SalesforceClient:
        """The REST client (built once per hook; no network call until it is used)."""
        if self._client is None:
            self._client = client_from_connection(self.get_connection(self.salesforce_conn_id))
            mask_registered_secrets()  # Airflow is loaded here, whatever was imported first
        return self._client

    def get_pubsub_client(
        self,
        access_token_provider: Callable[[], str] | None = None,
        on_auth_error: Callable[[], None] | None = None,
        **options: Any,
    ) -> PubSubClient:
        """A Pub/Sub API client on the REST client's login and token cache.

        By default it takes tokens from the shared cache and, when Pub/Sub refuses one, drops it
        so the next call logs in again; pass ``access_token_provider``/``on_auth_error`` to
        manage tokens yourself (the async trigger does). ``options`` go to :class:`PubSubClient`.
        """
        from orderflow.salesforce.pubsub import PubSubClient

        rest = self.get_conn()
        if not rest.pubsub_endpoint:
            raise PermanentError(
                ErrorCode.SALESFORCE_CONFIGURATION_ERROR,
                f"connection {self.salesforce_conn_id!r} needs extra pubsub_endpoint (host:port of the Pub/Sub API)",
            )
        return PubSubClient(
            rest.pubsub_endpoint,
            access_token_provider or rest.get_access_token,
            rest.instance_url,
            rest.org_id or "",
            rest.ca_bundle,
            on_auth_error=rest.invalidate_token if on_auth_error is None else on_auth_error,
            **options,
        )

    def test_connection(self) -> tuple[bool, str]:
        """Used by the UI's Test button: one login and one query."""
        try:
            self.get_conn().count("SELECT COUNT() FROM Account")
        except OrderflowError as exc:
            return False, str(exc)  # "CODE: safe message"
        except Exception as exc:  # noqa: BLE001 - the UI shows the message, scrubbed
            return False, safe_message(f"{type(exc).__name__}: {exc}")
        return True, "Connection successfully tested"
