"""The ``provision_order`` runs of one order, read from Airflow's metadata DB inside the API server.

Runs are found two ways, because their ids differ by source: the sensor, the sweep and
reconciliation put the Order Id into the run id (``order__<OrderId>__…``), while a run triggered by
hand has Airflow's own id and carries the order only in its conf (``order_id``).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from orderflow.salesforce.soql import to_18

log = logging.getLogger(__name__)

PROVISION_DAG_ID = "provision_order"
CONF_SCAN_LIMIT = 5000  # newest runs whose conf is checked for hand-triggered runs
FAILED_TASK_STATES = ("failed",)  # the root cause; upstream_failed tasks only follow it


@dataclass(frozen=True)
class TaskLink:
    task_id: str
    state: str
    url: str


@dataclass(frozen=True)
class RunInfo:
    """One run as the Orders view shows it, with links into the Airflow UI."""

    run_id: str
    state: str
    source: str
    run_type: str
    queued_at: str | None
    start_date: str | None
    end_date: str | None
    grid_url: str
    logs_url: str
    failed_tasks: tuple[TaskLink, ...] = field(default_factory=tuple)


def _text(value: Any) -> str:
    """An Airflow state/run-type enum or a plain string as its value."""
    return str(getattr(value, "value", value) or "")


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def run_url(ui_base: str, dag_id: str, run_id: str) -> str:
    """The run's page in the Airflow UI (grid and graph of that run)."""
    return f"{ui_base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def task_url(ui_base: str, dag_id: str, run_id: str, task_id: str) -> str:
    """The task instance page of a run, which opens on its logs."""
    return f"{run_url(ui_base, dag_id, run_id)}/tasks/{quote(task_id, safe='')}"


def _conf_order_id(conf: Any) -> str | None:
    if not isinstance(conf, dict):
        return None
    value = conf.get("order_id")
    if not isinstance(value, str) or len(value) not in (15, 18):
        return None
    return to_18(value)


def find_runs(order_id: str, ui_base: str = "", dag_id: str = PROVISION_DAG_ID, session: Any = None) -> list[RunInfo]:
    """Every run of ``dag_id`` for ``order_id`` (18-char id), newest first."""
    from airflow.utils.session import create_session

    if session is None:
        with create_session() as own:
            return find_runs(order_id, ui_base, dag_id, own)

    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    id18 = to_18(order_id)
    id15 = id18[:15]
    columns = (DagRun.run_id, DagRun.state, DagRun.conf, DagRun.run_type, DagRun.queued_at, DagRun.start_date,
               DagRun.end_date, DagRun.id)
    by_run_id = session.execute(
        select(*columns).where(DagRun.dag_id == dag_id, DagRun.run_id.like(f"%{id15}%"))
    ).all()
    recent = session.execute(
        select(*columns).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(CONF_SCAN_LIMIT)
    ).all()
    rows: dict[str, Any] = {}
    for row in (*by_run_id, *recent):
        # LIKE is case-insensitive on some databases; Salesforce ids are not.
        if id15 in row.run_id or _conf_order_id(row.conf) == id18:
            rows[row.run_id] = row
    if not rows:
        return []

    failed: dict[str, list[tuple[str, str]]] = {}
    tis = session.execute(
        select(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.state).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id.in_(list(rows)),
            TaskInstance.state.in_(FAILED_TASK_STATES),
        )
    ).all()
    for ti in tis:
        failed.setdefault(ti.run_id, []).append((ti.task_id, _text(ti.state)))

    out = []
    for row in sorted(rows.values(), key=lambda r: r.id, reverse=True):
        conf = row.conf if isinstance(row.conf, dict) else {}
        links = tuple(
            TaskLink(task_id, state, task_url(ui_base, dag_id, row.run_id, task_id))
            for task_id, state in sorted(failed.get(row.run_id, []))
        )
        out.append(
            RunInfo(
                run_id=row.run_id,
                state=_text(row.state),
                source=str(conf.get("source") or "manual"),
                run_type=_text(row.run_type),
                queued_at=_iso(row.queued_at),
                start_date=_iso(row.start_date),
                end_date=_iso(row.end_date),
                grid_url=run_url(ui_base, dag_id, row.run_id),
                logs_url=links[0].url if links else run_url(ui_base, dag_id, row.run_id),
                failed_tasks=links,
            )
        )
    return out
