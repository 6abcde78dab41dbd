"""The ``whmcs`` connection type's form, declared once and importable without Airflow.

Airflow 3.2+ reads connection form fields declaratively from the provider info
(``conn-fields`` / ``ui-field-behaviour``) without importing the hook; ``orderflow.provider``
should publish these dicts, and ``WhmcsHook`` derives its legacy form methods from them.
"""

from __future__ import annotations

from typing import Any

from orderflow.connection_form import provider_entry

# Extra fields: name -> label, JSON schema, description.
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "accesskey": {
        "label": "API Access Key",
        "schema": {"type": ["string", "null"], "format": "password"},
        "description": "configuration.php $api_access_key; lets calls through the API IP allow-list.",
    },
    "ca_bundle": {
        "label": "CA Bundle Path",
        "schema": {"type": ["string", "null"]},
        "description": "PEM file to verify WHMCS's TLS certificate against (empty = system CAs).",
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "schema": {"type": ["number", "null"], "default": 30},
        "description": "Per-request timeout; AcceptOrder runs provisioning modules synchronously.",
    },
    "noinvoice": {
        "label": "AddOrder: no invoice",
        "schema": {"type": ["boolean", "null"], "default": False},
        "description": "Pass noinvoice=1 to AddOrder.",
    },
    "noemail": {
        "label": "AddOrder: no order confirmation email",
        "schema": {"type": ["boolean", "null"], "default": False},
        "description": "Pass noemail=1 to AddOrder.",
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["schema", "port", "extra"],
    "relabeling": {"host": "API URL", "login": "API Identifier", "password": "API Secret"},
    "placeholders": {
        "host": "https://billing.example.com/includes/api.php",
        "login": "API credential identifier",
        "password": "API credential secret",
        "accesskey": "optional",
        "ca_bundle": "/path/to/ca.pem",
        "timeout": "30",
    },
}


def provider_connection_type() -> dict[str, Any]:
    """The ``connection-types`` entry for ``orderflow.provider.get_provider_info()``."""
    return provider_entry("whmcs", "orderflow.whmcs.hook.WhmcsHook", "WHMCS", CONN_FIELDS, UI_FIELD_BEHAVIOUR)
