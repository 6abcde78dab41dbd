"""``AirflowApiHook``: the ``airflow_api`` connection turned into an :class:`AirflowApiClient`.

The client is built on first use (no network at import or DAG-parse time), in the shape of the
provider hooks: connection fields and form declared on the class, ``get_conn()`` returns the client.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

from orderflow import settings
from orderflow.airflow_api.client import AirflowApiClient
from orderflow.airflow_api.connection import CONN_FIELDS, CONN_TYPE, UI_FIELD_BEHAVIOUR
from orderflow.connection_form import legacy_ui_field_behaviour
from orderflow.errors import mask_registered_secrets


class AirflowApiHook(BaseHook):
    """Start DAG runs through Airflow's own REST API.

    :param airflow_api_conn_id: the connection id (type ``airflow_api``).
    """

    conn_name_attr = "airflow_api_conn_id"
    default_conn_name = settings.AIRFLOW_API_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Airflow REST API (orderflow)"

    def __init__(self, airflow_api_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.airflow_api_conn_id = airflow_api_conn_id

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Legacy (wtforms) form fields; Airflow 3.2+ reads ``connection.CONN_FIELDS`` instead."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import StringField

        return {name: StringField(lazy_gettext(spec["label"]), widget=BS3TextFieldWidget())
                for name, spec in CONN_FIELDS.items()}

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return legacy_ui_field_behaviour(UI_FIELD_BEHAVIOUR)

    @cached_property
    def client(self) -> AirflowApiClient:
        conn = self.get_connection(self.airflow_api_conn_id)
        extras = conn.extra_dejson or {}
        host = (conn.host or "").strip()
        if host and "://" not in host:
            host = f"{conn.schema or 'http'}://{host}"
        if host and conn.port and host.count(":") < 2:
            host = f"{host}:{conn.port}"
        client = AirflowApiClient(
            host,
            conn.login or "",
            conn.password or "",
            verify=extras.get("ca_bundle") or True,
            timeout=float(extras.get("timeout") or 30),
            concurrency=settings.run_start_concurrency(),
        )
        mask_registered_secrets()
        return client

    def get_conn(self) -> AirflowApiClient:
        return self.client

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.client.token(renew=True)
        except Exception as exc:  # the UI shows the message
            return False, str(exc)
        return True, "Logged in to the Airflow API"
