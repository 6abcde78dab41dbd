"""Airflow's own stable REST API, used to start many ``provision_order`` runs from one task.

``TriggerDagRunOperator`` starts one run per task instance; a burst of approvals would cost one
task instance per order. One task calling ``POST /api/v2/dags/{dag_id}/dagRuns`` for each run
costs one task instance per batch (docs/architecture.md, "Starting runs").

Modules: ``client`` (no Airflow import), ``hook`` (the connection -> client), ``connection`` (the
form, importable without Airflow: the provider info reads it).
"""
