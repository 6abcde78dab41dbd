"""CPU seconds the system under a benchmark spent, by component, between two marks.

On a 2-core machine a burst is CPU-bound, so "where did the CPU go" explains a time ratio better than
the times do. A mark sums user + system time of every process of the demo (``system.demo_roots``, then
down the process trees) plus the time of the children they have reaped: a task process that ended between two marks is counted in
its executor worker, so short-lived processes are not lost. Each process is charged to the component
of its nearest recognisable ancestor (tasks: everything below an executor worker).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict

import psutil
from system import demo_roots  # bench/system.py, next to this file

# First match wins, on the process's command line (titles included).
COMPONENTS = (
    ("tasks", ("airflow worker", "airflow task", "celeryd", "ForkPoolWorker")),
    ("emulators", ("orderflow-sandbox", "orderflow_sandbox.server")),
    ("smtp sink", ("smtp-sink",)),
    ("execution API", ("--apps execution",)),
    ("scheduler", ("scheduler",)),
    ("dag-processor", ("dag-processor", "dag_processor", "DagFileProcessor")),
    ("triggerer", ("triggerer",)),
    ("API server", ("api-server", "api_server", "uvicorn", "gunicorn")),
    ("celery worker", ("celery",)),
)


def _component(cmdline: str, extra: tuple = ()) -> str | None:
    for name, needles in (*extra, *COMPONENTS):
        if any(n in cmdline for n in needles):
            return name
    return None


def _system_busy() -> float:
    with open("/proc/stat") as f:
        fields = [float(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


class CpuLedger:
    """``mark()`` returns ``{component: CPU seconds so far}``; ``diff(a, b)`` what was spent between two marks."""

    def __init__(self, airflow_home: str, execution_api_port: int | None = None) -> None:
        self.home = airflow_home
        # A retitled API server shows only its port ("airflow api_server -- host:0.0.0.0 port:8186").
        self.extra = (("execution API", (f"port:{execution_api_port}",)),) if execution_api_port else ()

    def mark(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        seen: set[int] = set()

        def walk(proc: psutil.Process, inherited: str) -> None:
            if proc.pid in seen:
                return
            seen.add(proc.pid)
            try:
                cmd = " ".join(proc.cmdline())
                t = proc.cpu_times()
                children = proc.children()
            except psutil.Error:
                return
            name = inherited if inherited == "tasks" else (_component(cmd, self.extra) or inherited)
            totals[name] += t.user + t.system + t.children_user + t.children_system
            for child in children:
                walk(child, name)

        for root in demo_roots(self.home):
            walk(root, "other")
        totals["(whole machine)"] = _system_busy()
        totals["(wall)"] = time.monotonic()
        return dict(totals)

    @staticmethod
    def diff(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        keys = set(before) | set(after)
        return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in keys}


def render(spans: list[tuple[str, dict[str, float], int]]) -> list[str]:
    """Spans side by side, each as (title, ``diff`` of two marks, runs in it): CPU seconds, and per run."""
    keys = {k for _, cpu, _ in spans for k in cpu if not k.startswith("(")}
    rows = sorted(keys, key=lambda k: -sum(cpu.get(k, 0.0) for _, cpu, _ in spans))
    out = [f"{'CPU seconds':22}" + "".join(f"{title:>16}{'/run':>8}" for title, _, _ in spans)]
    for k in rows + ["(whole machine)", "(wall)"]:
        out.append(f"{k:22}" + "".join(f"{cpu.get(k, 0.0):16.1f}{cpu.get(k, 0.0) / max(n, 1):8.3f}"
                                       for _, cpu, n in spans))
    return out
