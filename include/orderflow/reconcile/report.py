"""The reconciliation report: small frozen dataclasses rendered to ``drift.csv``, ``summary.json``, ``report.html``.

One object model, three renderings (CSV for tools, JSON for machines and the demo, HTML for ops
reading offline); the HTML comes from ``templates/report.html.j2`` with autoescaping, never from
strings built in a task. Files go under ``reconcile/<run id>/`` of any path-like base.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from orderflow.reconcile import SEVERITY, Category

log = logging.getLogger(__name__)

DRIFT_COLUMNS = ("sf_order_id", "whmcs_order_id", "category", "severity", "detail", "repaired")
DRIFT_FILE = "drift.csv"
SUMMARY_FILE = "summary.json"
HTML_FILE = "report.html"
TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class DriftRow:
    sf_order_id: str
    whmcs_order_id: str
    category: str
    severity: str
    detail: str
    repaired: str


@dataclass(frozen=True)
class Summary:
    """What ``summary.json`` holds; every category appears in ``counts``, zeros included."""

    run_id: str
    generated_at: str
    scope: dict[str, Any]
    params: dict[str, Any]
    counts: dict[str, int]
    compared: int
    drift_percent: float
    repairs: dict[str, int]
    brake: dict[str, Any]
    duration_s: dict[str, float]
    api_calls: dict[str, int]
    rows: dict[str, int]
    dry_run: bool = False
    ok: bool = True
    problems: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["problems"] = list(self.problems)
        return data


@dataclass(frozen=True)
class Report:
    summary: Summary
    drift: tuple[DriftRow, ...]


def drift_rows(classified: pd.DataFrame, repaired: dict[str, str], notes: dict[str, str] | None = None
               ) -> tuple[DriftRow, ...]:
    """One row per order not IN_SYNC, worst first; ``repaired`` says what the run did about it."""
    notes = notes or {}
    rank = {c.value: i for i, c in enumerate(Category)}
    sev_rank = {"high": 0, "medium": 1, "low": 2, "info": 3, "none": 4}
    rows = classified[classified["category"] != Category.IN_SYNC.value]
    out = []
    for r in rows.itertuples(index=False):
        detail = r.detail
        if r.sf_order_id in notes:
            detail = f"{detail}; repair: {notes[r.sf_order_id]}" if detail else f"repair: {notes[r.sf_order_id]}"
        out.append(DriftRow(r.sf_order_id, r.whmcs_order_id, r.category,
                            r.severity or SEVERITY[Category(r.category)],
                            detail, repaired.get(r.sf_order_id, "no")))
    out.sort(key=lambda d: (sev_rank.get(d.severity, 9), rank.get(d.category, 99), d.sf_order_id, d.whmcs_order_id))
    return tuple(out)


def write_drift_csv(rows: tuple[DriftRow, ...], path: Any) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(DRIFT_COLUMNS)
        for row in rows:
            writer.writerow([getattr(row, c) for c in DRIFT_COLUMNS])


def render_html(report: Report, max_rows: int = 5_000) -> str:
    """The offline HTML page: a bar chart of counts per category, the drift table, the summary."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]))
    counts = report.summary.counts
    peak = max(counts.values()) if counts else 0
    bars = [{"category": c.value, "count": counts.get(c.value, 0), "severity": SEVERITY[c],
             "width": (0 if peak == 0 else max(0.5, 100.0 * counts.get(c.value, 0) / peak)) if counts.get(c.value) else 0}
            for c in Category]
    return env.get_template("report.html.j2").render(
        summary=report.summary, bars=bars, drift=report.drift[:max_rows], truncated=max(0, len(report.drift) - max_rows),
        summary_json=json.dumps(report.summary.to_dict(), indent=2, sort_keys=True),
    )


def write_report(report: Report, folder: Any) -> dict[str, str]:
    """Write the three files into ``folder``; returns their paths by name."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {DRIFT_FILE: folder / DRIFT_FILE, SUMMARY_FILE: folder / SUMMARY_FILE, HTML_FILE: folder / HTML_FILE}
    write_drift_csv(report.drift, paths[DRIFT_FILE])
    with paths[SUMMARY_FILE].open("w", encoding="utf-8") as fh:
        json.dump(report.summary.to_dict(), fh, indent=2, sort_keys=True)
    with paths[HTML_FILE].open("w", encoding="utf-8") as fh:
        fh.write(render_html(report))
    return {k: str(v) for k, v in paths.items()}


def summary_table(summary: Summary) -> str:
    """The small plain-text table the run's log prints."""
    width = max(len(c.value) for c in Category)
    lines = [f"reconciliation {summary.run_id}: {summary.compared} compared, {summary.drift_percent:.2f}% drift"
             + (" (dry run)" if summary.dry_run else ""),
             f"{'category'.ljust(width)}  {'orders':>8}"]
    lines += [f"{c.value.ljust(width)}  {summary.counts.get(c.value, 0):>8}" for c in Category]
    rep = summary.repairs
    lines.append(f"repairs: {rep.get('applied', 0)} applied, {rep.get('skipped', 0)} skipped, "
                 f"{rep.get('failed', 0)} failed, {rep.get('runs_to_start', 0)} provisioning run(s) started")
    lines.append(f"brake: {'TRIPPED: ' + summary.brake.get('reason', '') if summary.brake.get('tripped') else 'ok'}")
    lines.append("api calls: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.api_calls.items())))
    lines.append("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in summary.duration_s.items()))
    return "\n".join(lines)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
