"""Reading the reconciliation reports ``reconcile_orders`` writes, wherever they live.

Layout and file names are the reconcile package's (``orderflow.reconcile``): under
``<ORDERFLOW_REPORTS_URL>/reconcile/`` one folder per run (the run id made path-safe) holding
``drift.csv``, ``summary.json`` (which names the Airflow run id) and ``report.html``. The base is a
local folder or any fsspec URL, opened through ``ObjectStoragePath`` so the console reads what the
workers wrote. A folder is only ever opened after it was found by listing the base, so no request
can name a path of its own.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from orderflow import settings
from orderflow.errors import safe_message
from orderflow.reconcile import NOT_DRIFT, RECONCILE_DAG_ID
from orderflow.reconcile.report import DRIFT_FILE, HTML_FILE, SUMMARY_FILE

__all__ = ["RECONCILE_DAG_ID", "DriftEntry", "ReportRun", "ReportStore", "reports_base_url"]

log = logging.getLogger(__name__)

REPORT_FOLDER = "reconcile"  # reconcile.tasks.run_folder: <base>/reconcile/<run id>/
MAX_RUNS_LISTED = 50
MAX_REPORTS_FOR_AN_ORDER = 10  # how far back an order's category is looked for


def reports_base_url() -> str:
    """The reports base as a URL: ``settings.reports_url()`` (a plain path becomes ``file://``)."""
    raw = settings.reports_url()
    return raw if "://" in raw else "file://" + os.path.abspath(raw)


@dataclass(frozen=True)
class ReportRun:
    """One reconciliation run's report folder; ``run_id`` is the Airflow run that wrote it."""

    folder: str
    run_id: str
    generated_at: str
    modified: float
    has_html: bool
    counts: dict[str, int] = field(default_factory=dict)
    scope: dict[str, Any] = field(default_factory=dict)

    @property
    def drifted(self) -> int:
        """Orders the run found drifted (everything but IN_SYNC and IN_FLIGHT)."""
        return sum(n for category, n in self.counts.items() if category not in NOT_DRIFT)

    def covers(self, order_id: str) -> bool:
        """Whether this run compared ``order_id`` for sure (all orders, or exactly this one)."""
        one = self.scope.get("order_id")
        if one:
            return str(one)[:15] == order_id[:15]
        return not self.scope.get("lookback_days")


@dataclass(frozen=True)
class DriftEntry:
    """An order's row in a report's ``drift.csv``, each value made one safe line for display."""

    whmcs_order_id: str
    category: str
    severity: str
    detail: str
    repaired: str


DRIFT_FIELDS = tuple(DriftEntry.__dataclass_fields__)


class ReportStore:
    """The report folders under one base, newest first."""

    def __init__(self, base_url: str | None = None) -> None:
        from airflow.sdk import ObjectStoragePath

        self.base_url = base_url or reports_base_url()
        self.root = ObjectStoragePath(self.base_url) / REPORT_FOLDER

    def _folders(self) -> list[Any]:
        try:
            if not self.root.exists():
                return []
            return [p for p in self.root.iterdir() if p.is_dir()]
        except OSError as exc:
            log.warning("reports: cannot list %s: %s", self.root, type(exc).__name__)
            return []

    @staticmethod
    def _mtime(folder: Any) -> float:
        for name in (SUMMARY_FILE, HTML_FILE, DRIFT_FILE):
            path = folder / name
            try:
                if path.exists():
                    return float(path.stat().st_mtime)
            except (OSError, AttributeError, TypeError, ValueError):
                continue
        return 0.0

    def runs(self, limit: int = MAX_RUNS_LISTED) -> list[ReportRun]:
        """Report runs, newest first (by when their files were written)."""
        found = []
        for folder in self._folders():
            summary: dict[str, Any] = {}
            summary_path = folder / SUMMARY_FILE
            try:
                if summary_path.exists():
                    loaded = json.loads(summary_path.read_text())
                    summary = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError) as exc:
                log.warning("reports: unreadable %s: %s", summary_path, type(exc).__name__)
            counts = summary.get("counts") if isinstance(summary.get("counts"), dict) else {}
            scope = summary.get("scope") if isinstance(summary.get("scope"), dict) else {}
            found.append(
                ReportRun(
                    folder=folder.name,
                    run_id=str(summary.get("run_id") or folder.name),
                    generated_at=str(summary.get("generated_at") or ""),
                    modified=self._mtime(folder),
                    has_html=(folder / HTML_FILE).exists(),
                    counts={str(k): int(v) for k, v in counts.items() if isinstance(v, int | float)},
                    scope=scope,
                )
            )
        # generated_at is ISO-8601 UTC, so it sorts as text; folders without one fall back to file times.
        found.sort(key=lambda r: (r.generated_at, r.modified, r.folder), reverse=True)
        return found[:limit]

    def latest(self) -> ReportRun | None:
        runs = self.runs(limit=1)
        return runs[0] if runs else None

    def find(self, folder: str) -> ReportRun | None:
        """The listed report folder with exactly this name (never a path built from the request)."""
        return next((r for r in self.runs(limit=10_000) if r.folder == folder), None)

    def html(self, run: ReportRun) -> str:
        return (self.root / run.folder / HTML_FILE).read_text()

    def category_of(self, order_id: str) -> tuple[ReportRun, DriftEntry | None] | None:
        """The newest report that judged ``order_id``: its drift row, or None for the row when in sync."""
        for run in self.runs(limit=MAX_REPORTS_FOR_AN_ORDER):
            entry = self.drift_entry(run, order_id)
            if entry is not None or run.covers(order_id):
                return run, entry
        return None

    def drift_entry(self, run: ReportRun, order_id: str) -> DriftEntry | None:
        """The order's row in that run's ``drift.csv`` (streamed; stops at the first match)."""
        path = self.root / run.folder / DRIFT_FILE
        try:
            if not path.exists():
                return None
            with path.open("r") as handle:
                for row in csv.DictReader(handle):
                    if (row.get("sf_order_id") or "").strip()[:15] == order_id[:15]:
                        return DriftEntry(**{name: safe_message(row.get(name) or "") for name in DRIFT_FIELDS})
        except (OSError, csv.Error) as exc:
            log.warning("reports: unreadable %s: %s", path, type(exc).__name__)
        return None
