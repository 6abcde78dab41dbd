"""Airflow provider registration (entry point ``apache_airflow_provider``).

Makes orderflow's connection types and hooks show up in the UI's connection form and in
``airflow providers list``. Airflow imports the hook classes lazily, by dotted path.
"""

from __future__ import annotations

from orderflow import __version__
from orderflow.airflow_api import connection as airflow_api_connection
from orderflow.whmcs import connection as whmcs_connection


def get_provider_info() -> dict:
    # The Salesforce side reuses the Salesforce provider's ``salesforce`` connection type
    # (its form already has consumer key / private key fields; login_url, pubsub_endpoint
    # and ca_bundle go in the extras). ``airflow_api`` is Airflow's own REST API, which starts the runs.
    return {
        "package-name": "orderflow",
        "name": "orderflow",
        "description": "Salesforce -> WHMCS order provisioning: WHMCS and Salesforce (JWT, Pub/Sub) hooks.",
        "versions": [__version__],
        "connection-types": [whmcs_connection.provider_connection_type(),
                             airflow_api_connection.provider_connection_type()],
    }
