"""The ops console: an Orders view and the drift report inside the Airflow UI.

The Airflow plugin in ``plugins/orderflow_console.py`` only registers :mod:`orderflow.console.asgi`;
everything else (lookups, report reading, rendering, the auth check) lives here so it is tested
like the rest of the package. Read-only by design: links lead to Airflow's own actions.
"""
