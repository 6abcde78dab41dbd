"""``WhmcsHook``: the ``whmcs`` Airflow connection turned into a :class:`WhmcsClient`.

Connection mapping: host = the full API URL (``https://.../includes/api.php``), login = API
identifier, password = API secret; extras ``accesskey``, ``ca_bundle``, ``timeout``,
``noinvoice``, ``noemail``. Nothing touches the network or the connection until the client is
first used, so DAG parsing stays cheap.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

from orderflow import settings
from orderflow.connection_form import legacy_ui_field_behaviour
from orderflow.errors import ErrorCode, PermanentError, mask_registered_secrets
from orderflow.whmcs.client import DEFAULT_TIMEOUT, WhmcsClient
from orderflow.whmcs.connection import CONN_FIELDS, UI_FIELD_BEHAVIOUR

_TRUE = {"1", "true", "yes", "on", "y", "t"}


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in _TRUE


class WhmcsHook(BaseHook):
    """Interact with the WHMCS admin API (``api.php``) through a ``whmcs`` connection.

    :param whmcs_conn_id: the Airflow connection id (type ``whmcs``).
    """

    conn_name_attr = "whmcs_conn_id"
    default_conn_name = settings.WHMCS_CONN_ID
    conn_type = "whmcs"
    hook_name = "WHMCS"

    def __init__(self, whmcs_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.whmcs_conn_id = whmcs_conn_id

    # ------------------------------------------------------------------ UI form

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Legacy (wtforms) form fields; Airflow 3.2+ uses ``connection.CONN_FIELDS`` instead."""
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, PasswordField, StringField

        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            types = spec["schema"]["type"]
            if "boolean" in types:
                widgets[name] = BooleanField(lazy_gettext(spec["label"]), default=False)
            elif spec["schema"].get("format") == "password":
                widgets[name] = PasswordField(lazy_gettext(spec["label"]), widget=BS3PasswordFieldWidget())
            else:
                widgets[name] = StringField(lazy_gettext(spec["label"]), widget=BS3TextFieldWidget())
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hide the unused fields and name the rest the way the WHMCS admin does."""
        return legacy_ui_field_behaviour(UI_FIELD_BEHAVIOUR)

    # ------------------------------------------------------------------ client

    @cached_property
    def _conn_settings(self) -> dict[str, Any]:
        conn = self.get_connection(self.whmcs_conn_id)
        extras = conn.extra_dejson or {}

        def extra(name: str) -> Any:
            value = extras.get(name)
            return value if value not in (None, "") else extras.get(f"extra__whmcs__{name}") or None

        url = (conn.host or "").strip()
        if url and "://" not in url:  # a URI-style connection splits the URL into host/port/schema
            port = f":{conn.port}" if conn.port else ""
            path = (conn.schema or "includes/api.php").lstrip("/")
            url = f"https://{url}{port}/{path}"
        missing = [name for name, value in (("host", url), ("login", conn.login), ("password", conn.password)) if not value]
        if missing:
            raise self._config_error(
                f"needs {', '.join(missing)} (host = API URL, login = identifier, password = secret)"
            )
        if not url.lower().startswith("https://"):
            raise self._config_error("host must be the https://.../includes/api.php URL")
        timeout = extra("timeout")
        try:
            timeout_seconds = float(timeout) if timeout is not None else DEFAULT_TIMEOUT
        except (TypeError, ValueError):
            raise self._config_error(f"extra timeout must be a number of seconds, got {timeout!r}") from None
        return {
            "url": url,
            "identifier": conn.login,
            "secret": conn.password,
            "accesskey": extra("accesskey"),
            "ca_bundle": extra("ca_bundle"),
            "timeout": timeout_seconds,
            "noinvoice": _flag(extra("noinvoice")),
            "noemail": _flag(extra("noemail")),
        }

    def _config_error(self, problem: str) -> PermanentError:
        """An incomplete connection is a configuration fault: failing at once beats four retries."""
        return PermanentError(ErrorCode.WHMCS_CONFIGURATION_ERROR, f"connection {self.whmcs_conn_id!r} {problem}")

    @cached_property
    def client(self) -> WhmcsClient:
        """The client, built once per hook from the connection (no network call)."""
        s = self._conn_settings
        client = WhmcsClient(
            url=s["url"],
            identifier=s["identifier"],
            secret=s["secret"],
            accesskey=s["accesskey"],
            ca_bundle=s["ca_bundle"],
            timeout=s["timeout"],
        )
        mask_registered_secrets()  # Airflow is loaded here, whatever was imported first
        return client

    def get_conn(self) -> WhmcsClient:
        """Return the (cached) :class:`WhmcsClient`."""
        return self.client

    @property
    def order_options(self) -> dict[str, bool]:
        """AddOrder flags configured on the connection: ``{"noinvoice": .., "noemail": ..}``."""
        return {"noinvoice": self._conn_settings["noinvoice"], "noemail": self._conn_settings["noemail"]}

    def test_connection(self) -> tuple[bool, str]:
        """A cheap read (``GetClients`` with one row) that proves URL, TLS, IP/access key and role."""
        from orderflow.errors import OrderflowError, safe_message

        try:
            data = self.client.call("GetClients", limitnum=1)
        except OrderflowError as exc:
            return False, f"{exc.code.value}: {exc.message}"
        except Exception as exc:  # noqa: BLE001 - report anything (bad URL, missing CA file) to the UI
            return False, safe_message(f"{type(exc).__name__}: {exc}")
        return True, f"Connected to WHMCS ({data.get('totalresults', 0)} clients visible)"
