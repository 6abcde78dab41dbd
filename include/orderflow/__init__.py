"""orderflow: Salesforce -> WHMCS order provisioning and reconciliation on Airflow 3."""

__version__ = "0.1.0"
