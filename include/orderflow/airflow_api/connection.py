"""The ``airflow_api`` connection type's form, declared once and importable without Airflow.

host = the API server's base URL (``http://airflow-apiserver:8080``), login/password = an Airflow
user allowed to trigger ``provision_order`` (the simple auth manager's or FAB's: both answer
``POST /auth/token``); extras ``ca_bundle`` and ``timeout``.
"""

from __future__ import annotations

from typing import Any

from orderflow.connection_form import provider_entry

CONN_TYPE = "airflow_api"

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "ca_bundle": {
        "label": "CA Bundle Path",
        "schema": {"type": ["string", "null"]},
        "description": "PEM file to verify the API server's TLS certificate against (empty = system CAs).",
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "schema": {"type": ["number", "null"], "default": 30},
        "description": "Per-request timeout.",
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["schema", "port", "extra"],
    "relabeling": {"host": "API server URL", "login": "Username", "password": "Password"},
    "placeholders": {
        "host": "http://airflow-apiserver:8080",
        "login": "a user that may trigger provision_order",
        "ca_bundle": "/path/to/ca.pem",
        "timeout": "30",
    },
}


def provider_connection_type() -> dict[str, Any]:
    """The ``connection-types`` entry for ``orderflow.provider.get_provider_info()``."""
    return provider_entry(CONN_TYPE, "orderflow.airflow_api.hook.AirflowApiHook", "Airflow REST API (orderflow)", CONN_FIELDS, UI_FIELD_BEHAVIOUR)
