"""Reconciliation at scale: a provisioned history of N orders with ~1 % drift, one reconcile_orders run.

Starts the embedded default exactly as `make demo` does (Airflow standalone on SQLite +
LocalExecutor, the sandbox emulators, no traffic) in throw-away folders, seeds N provisioned
orders, injects drift in every category (about ``--drift`` % of the orders), pauses the sensor and
provision_order (runs started by the repair stay queued), triggers one run through the REST API,
and prints:

  end-to-end time (trigger -> run done) and time per phase (task durations)
  peak RSS of the task processes (sampled every 0.2 s with psutil)
  API calls per system (the emulators' own counters) and the run's summary.json figures
  on the same two frames, in the same process: our classify vs datacompy's PandasCompare (the anchor)

    .venv/bin/python bench/reconcile_bench.py --orders 100000 [--orders 300000] [--port 8096 --smtp-port 8029]

Several --orders values run one after another and end with a table of how time and memory grow.
Targets (issue 10, 2 cores): 100k end to end <= 120 s, peak RSS <= 1.5 GB, Salesforce calls <= 60 + 1 per
200 repairs, compare no slower than datacompy, 300k within 3.5x the time and 2x the memory of 100k.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests
from compare_bench import datacompy_frames
from system import demo_roots, start_demo, wait_healthy

REPO = Path(__file__).resolve().parents[1]
PHASES = ("validate_params", "extract_salesforce", "extract_whmcs", "check_pay_methods", "compare", "repair",
          "start_provisioning", "write_report", "check_outcome")


class RssSampler(threading.Thread):
    """Peak RSS of this Airflow's task processes (and of any of its processes), sampled every ``interval``.

    The sampler walks the process trees below the demo's components (``system.demo_roots``). Task processes are the executor's workers ("airflow
    worker -- ...", LocalExecutor and Celery alike) and the task processes they fork.
    """

    def __init__(self, airflow_home: str, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.home, self.interval = airflow_home, interval
        self.task_peak: tuple[int, str] = (0, "")
        self.any_peak: tuple[int, str] = (0, "")
        self.stop_event = threading.Event()

    def _walk(self, proc: psutil.Process, in_task: bool, seen: set[int]) -> None:
        if proc.pid in seen:
            return
        seen.add(proc.pid)
        try:
            rss = proc.memory_info().rss
            name = " ".join(proc.cmdline()[:4])[:80]
            children = proc.children()
        except psutil.Error:
            return
        in_task = in_task or name.startswith("airflow worker")
        if rss > self.any_peak[0]:
            self.any_peak = (rss, name)
        if in_task and rss > self.task_peak[0]:
            self.task_peak = (rss, name)
        for child in children:
            self._walk(child, in_task, seen)

    def run(self) -> None:
        roots, last_scan = demo_roots(self.home), time.monotonic()
        while not self.stop_event.is_set():
            if time.monotonic() - last_scan > 10:  # components restarted since (a full scan is costly)
                roots, last_scan = demo_roots(self.home), time.monotonic()
            seen: set[int] = set()
            for root in roots:
                self._walk(root, False, seen)
            time.sleep(self.interval)

    def stop(self) -> tuple[tuple[int, str], tuple[int, str]]:
        """(peak of a task process, peak of any process of this Airflow), each as (bytes, command)."""
        self.stop_event.set()
        self.join(5)
        return self.task_peak, self.any_peak


def admin(endpoints: dict, system: str, path: str) -> dict:
    return requests.get(endpoints[system]["admin_url"] + path, verify=endpoints["ca_bundle"], timeout=30).json()


def counters(endpoints: dict) -> tuple[int, int]:
    sf = admin(endpoints, "salesforce", "/stats")
    return sf["rest_total"], sum(admin(endpoints, "whmcs", "/stats").values())


def anchor(folder: Path) -> dict:
    """Our classification vs datacompy's PandasCompare on the same two extracted frames."""
    import datacompy
    import pandas as pd

    from orderflow.reconcile.compare import Frames, classify, load_frames

    frames: Frames = load_frames(folder / "extract")
    now = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    classify(frames, set(), now, 60)
    ours = time.perf_counter() - t0
    sf, wh = datacompy_frames(frames)
    t0 = time.perf_counter()
    cmp = datacompy.PandasCompare(sf, wh, join_columns="sf_order_id")
    mismatches = len(cmp.all_mismatch())
    theirs = time.perf_counter() - t0
    del pd
    return {"ours_s": ours, "datacompy_s": theirs, "datacompy_mismatches": mismatches,
            "rows": (len(sf), len(wh))}


def bench_one(n: int, port: int, smtp_port: int, drift_pct: float, timeout: float) -> dict:
    sys.path.insert(0, str(REPO / "sandbox"))
    from orderflow_sandbox.demo import AirflowApi
    from orderflow_sandbox.drift import make_drift
    from orderflow_sandbox.seed import seed_provisioned
    from orderflow_sandbox.server import read_endpoints

    tmp = Path(tempfile.mkdtemp(prefix=f"orderflow-rbench-{n}."))
    env = {**os.environ, "AIRFLOW_HOME": str(tmp / "airflow"), "SANDBOX_DIR": str(tmp / "sandbox"),
           "AIRFLOW_PORT": str(port), "DEMO_SMTP_PORT": str(smtp_port), "DEMO_TRAFFIC": "off",
           "AIRFLOW__CORE__PARALLELISM": "4", "ORDERFLOW_REPORTS_URL": f"file://{tmp / 'reports'}"}
    env.pop("DEMO_EXIT_WHEN_DONE", None)
    print(f"\n== {n} orders: starting the embedded default in {tmp} ...", flush=True)
    launcher = start_demo(env, tmp)
    try:
        wait_healthy(port, launcher, tmp)
        api = AirflowApi(f"http://localhost:{port}", "admin", "admin")
        for dag_id in ("order_event_sensor", "provision_order"):
            api.wait_for_dag(dag_id, timeout=180)
            api.set_paused(dag_id, True)
        api.wait_for_dag("reconcile_orders", timeout=180)
        endpoints = read_endpoints(tmp / "sandbox")
        t0 = time.monotonic()
        seed_provisioned(tmp / "sandbox", orders=n, rng_seed=7)
        per_category = max(1, round(n * drift_pct / 100 / 9))
        expected = make_drift(tmp / "sandbox", per_category=per_category, rng_seed=7)
        print(f"   seeded and drifted in {time.monotonic() - t0:.0f}s ({len(expected)} drifted keys, "
              f"{per_category} per category)", flush=True)
        sf0, wh0 = counters(endpoints)
        sampler = RssSampler(env["AIRFLOW_HOME"])
        sampler.start()
        run_id = f"bench__{n}__{int(time.time())}"
        started = time.monotonic()
        # Three repairable categories; past the default 500 (300k orders at 1 %) ops raise the brake for the run.
        max_repairs = max(500, 3 * per_category + 100)
        api.trigger("reconcile_orders", run_id, {"max_repairs": max_repairs})
        state = "queued"
        while time.monotonic() - started < timeout:
            state = api._retry("GET", f"/api/v2/dags/reconcile_orders/dagRuns/{run_id}").json().get("state")
            if state in ("success", "failed"):
                break
            time.sleep(0.5)
        wall = time.monotonic() - started
        (peak_rss, peak_name), (any_rss, any_name) = sampler.stop()
        sf1, wh1 = counters(endpoints)
        run = api._retry("GET", f"/api/v2/dags/reconcile_orders/dagRuns/{run_id}").json()
        tis = api._retry("GET", f"/api/v2/dags/reconcile_orders/dagRuns/{run_id}/taskInstances?limit=100").json()
        phases: dict[str, float] = {}
        for ti in tis["task_instances"]:
            if ti.get("duration") is not None:
                phases[ti["task_id"]] = phases.get(ti["task_id"], 0.0) + float(ti["duration"])
        folder = next((tmp / "reports" / "reconcile").glob("bench__*"))
        summary = json.loads((folder / "summary.json").read_text())
        got = {}
        import csv

        with (folder / "drift.csv").open(newline="") as fh:
            for row in csv.DictReader(fh):
                key = f"whmcs:{row['whmcs_order_id']}" if row["category"] == "ORPHAN_IN_WHMCS" else row["sf_order_id"]
                got[key] = row["category"]
        matched = sum(1 for k, v in expected.items() if got.get(k) == v)
        run_seconds = (dt.datetime.fromisoformat(run["end_date"]) - dt.datetime.fromisoformat(run["start_date"])
                       ).total_seconds() if run.get("end_date") and run.get("start_date") else float("nan")
        return {"orders": n, "state": state, "wall_s": wall, "run_s": run_seconds, "phases": phases,
                "peak_rss": peak_rss, "peak_proc": peak_name,
                "any_rss": any_rss, "any_proc": any_name, "sf_calls": sf1 - sf0, "wh_calls": wh1 - wh0,
                "summary": summary, "max_repairs": max_repairs, "expected": len(expected), "matched": matched, "anchor": anchor(folder)}
    finally:
        os.killpg(launcher.pid, signal.SIGTERM)
        try:
            launcher.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)


def show(r: dict) -> None:
    s = r["summary"]
    repairs = s["repairs"]
    print(f"\nreconcile_orders, {r['orders']} orders (~1 % drift), 2 cores shared with other work, SQLite + LocalExecutor")
    print(f"  run state                  {r['state']}; {r['matched']}/{r['expected']} injected orders in their category")
    print(f"  end to end (trigger->done) {r['wall_s']:.1f} s   (run start->end {r['run_s']:.1f} s)")
    print("  per phase (task duration)  " + ", ".join(f"{p} {r['phases'][p]:.1f}s" for p in PHASES if p in r["phases"]))
    print(f"  peak RSS of a task process {r['peak_rss'] / 2**20:.0f} MiB  ({r['peak_proc']})")
    print(f"  peak RSS of any process    {r['any_rss'] / 2**20:.0f} MiB  ({r['any_proc']})")
    budget = 60 + -(-repairs["applied"] // 200)
    print(f"  API calls                  Salesforce {r['sf_calls']} (budget {budget}), WHMCS {r['wh_calls']}")
    print(f"  rows extracted             {s['rows']}")
    print(f"  counts                     {s['counts']}")
    print(f"  repairs                    {repairs}; brake {'TRIPPED' if s['brake']['tripped'] else 'ok'} "
          f"(max_repairs {r['max_repairs']})")
    a = r["anchor"]
    print(f"  anchor, same frames        our classify {a['ours_s']:.2f} s vs datacompy PandasCompare "
          f"{a['datacompy_s']:.2f} s ({a['rows'][0]} x {a['rows'][1]} rows; ratio {a['ours_s'] / a['datacompy_s']:.2f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, action="append", help="repeatable; default 100000")
    parser.add_argument("--port", type=int, default=8096)
    parser.add_argument("--smtp-port", type=int, default=8029)
    parser.add_argument("--drift", type=float, default=1.0, help="percent of orders to drift")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    results = []
    for n in args.orders or [100_000]:
        results.append(bench_one(n, args.port, args.smtp_port, args.drift, args.timeout))
        show(results[-1])  # as soon as each size is done: a later size may take long or be stopped
    ok = all(r["state"] == "success" and r["matched"] == r["expected"] for r in results)
    if len(results) > 1:
        base = results[0]
        print("\ngrowth vs the first size:")
        for r in results[1:]:
            print(f"  {r['orders']}/{base['orders']} orders: time x{r['wall_s'] / base['wall_s']:.2f}, "
                  f"peak RSS x{r['peak_rss'] / max(base['peak_rss'], 1):.2f}")
    print("RESULT:", "OK" if ok else "NOT OK")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
