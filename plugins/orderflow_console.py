"""Airflow plugin: the orderflow ops console (Orders, Drift report) inside the Airflow UI.

Thin by design: the app, its auth check and its views live in ``orderflow.console``.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from orderflow.console.asgi import console_app


class OrderflowConsolePlugin(AirflowPlugin):
    name = "orderflow_console"
    fastapi_apps = [{"name": "orderflow console", "app": console_app, "url_prefix": "/orderflow"}]
    external_views = [
        {
            "name": "Orders",
            "href": "/orderflow/orders",
            "url_route": "orderflow-orders",
            "destination": "nav",
            "nav_top_level": True,
        },
        {
            "name": "Drift report",
            "href": "/orderflow/reports/latest",
            "url_route": "orderflow-drift-report",
            "destination": "nav",
            "nav_top_level": True,
        },
    ]
