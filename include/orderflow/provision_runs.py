"""Start ``provision_order`` runs for a batch of orders: the one path the sensor, the sweep and
reconciliation share (docs/architecture.md, "Starting runs").

A spec is ``{"trigger_run_id": <run id>, "conf": {...}}`` (built by ``events.drain.run_spec`` and
``reconcile.repair.provision_run_spec``). A run id that exists already is skipped, so a duplicate
event, a re-drain or a retried task never starts an order twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from orderflow import settings
from orderflow.events import PROVISION_DAG_ID

log = logging.getLogger(__name__)


class RunsNotStarted(RuntimeError):
    """Some runs of the batch could not be started; the others were (the task's retry skips them)."""


def start_provision_runs(specs: Sequence[dict[str, Any]], client: Any = None) -> dict[str, Any]:
    """Start one run per spec through Airflow's REST API; raise :class:`RunsNotStarted` if any failed.

    Every spec is tried before raising, so one refused run does not hold back the rest of a burst.
    """
    from orderflow.airflow_api.client import RunStartReport

    if not specs:
        return RunStartReport(PROVISION_DAG_ID).to_dict()
    own = client is None
    if own:
        from orderflow.airflow_api.hook import AirflowApiHook

        client = AirflowApiHook(settings.AIRFLOW_API_CONN_ID).get_conn()
    try:
        report = client.start_runs(PROVISION_DAG_ID, specs)
    finally:
        if own:
            client.close()
    if not report.ok:
        problems = [*report.refused, *report.gave_up]
        listed = "; ".join(f"{run_id}: {message}" for run_id, message in problems[:5])
        raise RunsNotStarted(f"{report.summary()}. First problems: {listed}")
    return report.to_dict()
