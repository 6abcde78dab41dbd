"""Per-order provisioning (docs/architecture.md, "Provisioning"): the steps the ``provision_order`` DAG wires together.

Everything here runs without Airflow; the DAG file only schedules, retries and passes
small JSON-able results between tasks.
"""
