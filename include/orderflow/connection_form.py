"""A connection type's ``connection-types`` entry for the provider info, from its declared form."""

from __future__ import annotations

from typing import Any


def provider_entry(conn_type: str, hook_class: str, hook_name: str, fields: dict[str, Any],
                   behaviour: dict[str, Any]) -> dict[str, Any]:
    """Airflow 3.2+ reads the form declaratively (``conn-fields`` / ``ui-field-behaviour``), without the hook."""
    return {
        "connection-type": conn_type,
        "hook-class-name": hook_class,
        "hook-name": hook_name,
        "conn-fields": fields,
        "ui-field-behaviour": {
            "hidden-fields": behaviour["hidden_fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        },
    }


def legacy_ui_field_behaviour(behaviour: dict[str, Any]) -> dict[str, Any]:
    """What a hook's ``get_ui_field_behaviour()`` returns (the pre-3.2 form), from the same declaration."""
    return {
        "hidden_fields": list(behaviour["hidden_fields"]),
        "relabeling": dict(behaviour["relabeling"]),
        "placeholders": dict(behaviour["placeholders"]),
    }
