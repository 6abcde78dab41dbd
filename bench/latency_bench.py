"""Approval -> Activated latency, single and in bursts, against Airflow's own floor in the same instance.

Starts the system as `make demo` does (``--shape embedded``: standalone, SQLite, LocalExecutor;
``--shape distributed``: CeleryExecutor + PostgreSQL + Redis, each component its own process) in
throw-away folders, with one extra DAG in a copy of the DAG folder (never in ``dags/``):
``noop_chain``, 6 no-op tasks in a chain, with provision_order's concurrency limits. Then, in one
Airflow instance, one after the other:

  floor    N REST-triggered noop_chain runs at once: trigger -> all runs done (Airflow's own floor),
           and 5 single runs one after another (the floor of one run at idle)
  singles  10 single approvals one after another: approval -> Activated, each at idle
  burst    N approvals in one collection call: approval -> all settled, the first Activated,
           duplicate runs, duplicate WHMCS orders, run-start task instances per sensor run
  floor    N noop_chain runs again (--no-floor-after skips it): this 2-core VM's speed drifts by up
           to half between runs, and a floor on each side of the burst shows it

and prints each goal of issue 11 next to its target and the ratio to the floor (the mean of the two),
then the CPU seconds each component spent per no-op run and per order (bench/cpu_ledger.py).

    .venv/bin/python bench/latency_bench.py [--shape embedded|distributed] [--burst 200] [--singles 10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "sandbox"))
sys.path.insert(0, str(REPO / "tests" / "soak"))
from cpu_ledger import CpuLedger, render  # noqa: E402  (bench/cpu_ledger.py)
from system import start_demo, stop_demo, wait_healthy  # noqa: E402  (bench/system.py, next to this file)

NOOP_DAG = '''"""noop_chain: the latency bench's floor (6 no-op tasks in a chain, provision_order's limits)."""
from datetime import UTC, datetime

from airflow.sdk import chain, dag, task


@dag(dag_id="noop_chain", schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC), catchup=False,
     max_active_runs={max_active_runs}, max_active_tasks={max_active_tasks}, is_paused_upon_creation=False)
def noop_chain():
    @task
    def step(i: int) -> int:
        return i

    chain(*[step.override(task_id=f"step_{{i}}")(i) for i in range(6)])


noop_chain()
'''


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def epoch(value: str | None) -> float:
    return dt.datetime.fromisoformat(value).timestamp() if value else float("nan")


class Bench:
    def __init__(self, api, endpoints: dict, data_dir: Path, shape: str, ledger: CpuLedger) -> None:
        self.api, self.endpoints, self.data_dir, self.shape = api, endpoints, data_dir, shape
        self.ledger = ledger
        self.cpu: dict[str, dict[str, float]] = {}
        from orderflow_sandbox.connections import salesforce_client

        self.sf = salesforce_client(endpoints)

    # ------------------------------------------------------------------ helpers
    def runs(self, dag_id: str, since: float = 0.0) -> list[dict]:
        out, offset = [], 0
        while True:
            page = self.api._retry("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&offset={offset}"
                                          "&order_by=-run_after").json()
            batch = page["dag_runs"]
            out.extend(r for r in batch if epoch(r.get("queued_at") or r.get("run_after")) >= since)
            offset += len(batch)
            if not batch or offset >= page["total_entries"] or epoch(batch[-1].get("run_after")) < since:
                return out

    def settled(self, order_ids: list[str], deadline: float, poll: float = 0.5) -> dict[str, tuple[float, str]]:
        """``{order_id: (time first seen Activated/Failed, status)}``, polling Salesforce."""
        done: dict[str, tuple[float, str]] = {}
        pending = set(order_ids)
        while pending and time.time() < deadline:
            now = time.time()
            for start in range(0, len(order_ids), 200):
                chunk = [o for o in order_ids[start:start + 200] if o in pending]
                if not chunk:
                    continue
                ids = ",".join(f"'{i}'" for i in chunk)
                for rec in self.sf.query(f"SELECT Id, Activation_Status__c FROM Order WHERE Id IN ({ids})"):
                    if rec["Activation_Status__c"] in ("Activated", "Failed"):
                        done[rec["Id"]] = (now, rec["Activation_Status__c"])
                        pending.discard(rec["Id"])
            time.sleep(poll)
        return done

    def idle(self, timeout: float = 600) -> None:
        for dag_id in ("provision_order", "noop_chain"):
            self.api.wait_until_idle(dag_id, timeout)

    def approve(self, order_ids: list[str]) -> float:
        from orderflow_sandbox.salesforce.approve import approve_orders

        t0 = time.time()
        approve_orders(self.data_dir, order_ids, status="Approved")
        return t0

    # ------------------------------------------------------------------ phases
    def floor_singles(self, singles: int, timeout: float) -> list[float]:
        one = []
        for i in range(singles):
            t0 = time.time()
            self.api.trigger("noop_chain", f"single{i}_floor", {})
            self._wait_noop(f"single{i}_", 1, t0 + timeout)
            one.append(time.time() - t0)
        return one

    def floor(self, n: int, label: str, timeout: float) -> dict:
        """N noop_chain runs started at once (run ids ``<label>_floor_NNNN``): trigger -> all done."""
        self.idle()
        time.sleep(2.0)
        run_ids = [f"{label}_floor_{i:04d}" for i in range(n)]
        cpu0 = self.ledger.mark()
        t0 = time.time()
        # Started the way start_event_runs starts provision_order runs (same client, retries, concurrency:
        # one request at a time on SQLite, four on PostgreSQL), so the floor pays what the pipeline pays.
        from orderflow.airflow_api.client import AirflowApiClient

        starter = AirflowApiClient(self.api.base, "admin", "admin", timeout=120, retry_for=300,
                                   concurrency=4 if self.shape == "distributed" else 1)
        report = starter.start_runs("noop_chain", [{"trigger_run_id": r, "conf": {}} for r in run_ids])
        if not report.ok:
            raise SystemExit(f"floor: runs not started: {report.summary()}")
        self._wait_noop(f"{label}_floor_", n, t0 + timeout)
        self.cpu[f"floor {label}"] = self.ledger.diff(cpu0, self.ledger.mark())
        ends = [epoch(r["end_date"]) for r in self.runs("noop_chain", since=t0) if r["dag_run_id"] in set(run_ids)]
        return {"burst_seconds": max(ends) - t0, "start_seconds": report.seconds,
                "runs_per_minute": n / (max(ends) - t0) * 60}

    def _wait_noop(self, prefix: str, count: int, deadline: float) -> None:
        while time.time() < deadline:
            page = self.api._retry("GET", f"/api/v2/dags/noop_chain/dagRuns?run_id_pattern={prefix}%25"
                                          "&state=success&state=failed&limit=1").json()
            if page["total_entries"] >= count:
                return
            time.sleep(0.25 if count == 1 else 0.5)
        raise SystemExit("floor: noop_chain runs did not finish in time")

    def singles(self, order_ids: list[str], timeout: float) -> list[float]:
        out = []
        for oid in order_ids:
            self.idle()
            time.sleep(1.0)
            t0 = self.approve([oid])
            done = self.settled([oid], t0 + timeout, poll=0.1)
            if oid not in done:
                raise SystemExit(f"single approval {oid} did not settle within {timeout:.0f} s")
            out.append(done[oid][0] - t0)
        return out

    def burst(self, order_ids: list[str], timeout: float) -> dict:
        from harness import duplicate_whmcs_orders

        self.idle()
        time.sleep(2.0)
        cpu0 = self.ledger.mark()
        t0 = self.approve(order_ids)
        done = self.settled(order_ids, t0 + timeout)
        self.cpu["burst"] = self.ledger.diff(cpu0, self.ledger.mark())
        activated = [t - t0 for t, status in done.values() if status == "Activated"]
        runs: dict[str, int] = {}
        for run in self.runs("provision_order", since=t0 - 1):
            oid = (run.get("conf") or {}).get("order_id")
            if oid in set(order_ids):
                runs[oid] = runs.get(oid, 0) + 1
        sensor_runs = [r for r in self.runs("order_event_sensor", since=t0 - 120)]
        starts = 0
        for run in sensor_runs:
            page = self.api._retry("GET", f"/api/v2/dags/order_event_sensor/dagRuns/{run['dag_run_id']}"
                                          "/taskInstances?limit=100").json()
            starts += sum(1 for ti in page["task_instances"]
                          if ti["task_id"].startswith("start_") and ti.get("state") == "success"
                          and epoch(ti.get("start_date")) >= t0)
        dup_whmcs = {k: v for k, v in duplicate_whmcs_orders(self.endpoints).items() if k in set(order_ids)}
        return {
            "settled": len(done), "n": len(order_ids),
            "all_settled_seconds": max(t for t, _ in done.values()) - t0 if done else float("nan"),
            "first_activated": min(activated) if activated else float("nan"),
            "p50": statistics.median(activated) if activated else float("nan"),
            "p95": pct(activated, 95),
            "failed": sum(1 for _, s in done.values() if s == "Failed"),
            "duplicate_runs": sum(c - 1 for c in runs.values() if c > 1),
            "orders_with_run": len(runs),
            "duplicate_whmcs": len(dup_whmcs),
            "start_task_instances": starts,
        }


def start_system(args: argparse.Namespace, tmp: Path) -> subprocess.Popen:
    dags = tmp / "dags"
    dags.mkdir()
    for src in (REPO / "dags").glob("*.py"):
        (dags / src.name).symlink_to(src)
    (dags / "noop_chain.py").write_text(NOOP_DAG.format(max_active_runs=16, max_active_tasks=8))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp / "airflow"),
        "SANDBOX_DIR": str(tmp / "sandbox"),
        "AIRFLOW_PORT": str(args.port),
        "DEMO_SMTP_PORT": str(args.port - 50),
        "DEMO_DAGS_FOLDER": str(dags),
        "DEMO_SHAPE": args.shape,
        "DEMO_PG_DB": "orderflow_bench",
        "DEMO_REDIS_DB": "11",
        "DEMO_TRAFFIC": "off",
        "AIRFLOW__CORE__PARALLELISM": str(args.parallelism),
        "ORDERFLOW_SWEEP_MINUTES": "30",  # the bench measures the event path; nothing is lost here
    }
    env["DEMO_MAIL"] = "1" if args.mail == "on" else "0"  # the activation mail (write_back's callback)
    return start_demo(env, tmp)


def line(goal: str, figure: str, target: str, ratio: str, ok: bool | None) -> str:
    verdict = "" if ok is None else ("MET" if ok else "NOT MET")
    return f"{goal:44}{figure:>14}{target:>16}{ratio:>14}  {verdict}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["embedded", "distributed"], default="embedded")
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--singles", type=int, default=10)
    parser.add_argument("--parallelism", type=int, default=6)
    parser.add_argument("--port", type=int, default=8086)
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--mail", choices=["on", "off"], default="on",
                        help="the activation mail to the SMTP sink, as make demo sends it (off: production's default)")
    parser.add_argument("--no-floor-after", dest="floor_after", action="store_false",
                        help="measure the floor before the burst only (default: before and after, ratio to the mean)")
    parser.add_argument("--keep", action="store_true", help="keep the throw-away folders")
    args = parser.parse_args()

    from orderflow_sandbox.demo import AirflowApi
    from orderflow_sandbox.seed import seed_sandbox
    from orderflow_sandbox.server import read_endpoints

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the system it started
    tmp = Path(tempfile.mkdtemp(prefix="orderflow-latency."))
    print(f"latency bench: {args.shape} shape, parallelism {args.parallelism}, activation mail {args.mail}, in {tmp}",
          flush=True)
    launcher = start_system(args, tmp)
    try:
        wait_healthy(args.port, launcher, tmp)
        api = AirflowApi(f"http://localhost:{args.port}", "admin", "admin")
        for dag_id in ("provision_order", "order_event_sensor", "noop_chain"):
            api.wait_for_dag(dag_id, timeout=240)
        endpoints = read_endpoints(tmp / "sandbox")
        need = args.burst + args.singles
        summary = seed_sandbox(tmp / "sandbox", orders=int(need * 1.3) + 20, rng_seed=11)
        good = sorted(o for o, e in summary["expected"].items() if e == "Activated")
        if len(good) < need:
            raise SystemExit(f"only {len(good)} good orders seeded, need {need}")
        bench = Bench(api, endpoints, tmp / "sandbox", args.shape, CpuLedger(str(tmp / "airflow"),
                                                                                 args.port + 100))
        time.sleep(20)  # the sensor's first run reaches its deferred wait, as in production

        print(f"floor: 5 single noop_chain runs, then {args.burst} at once ...", flush=True)
        floor_singles = bench.floor_singles(5, args.timeout)
        floors = [bench.floor(args.burst, "before", args.timeout)]
        print(f"  one run {statistics.median(floor_singles):.1f} s (p50), {args.burst} runs "
              f"{floors[0]['burst_seconds']:.1f} s", flush=True)
        print(f"singles: {args.singles} approvals one after another ...", flush=True)
        singles = bench.singles(good[:args.singles], timeout=180)
        print("  " + ", ".join(f"{s:.1f}" for s in singles), flush=True)
        print(f"burst: {args.burst} approvals at once ...", flush=True)
        burst = bench.burst(good[args.singles:need], args.timeout)
        print(f"  all settled in {burst['all_settled_seconds']:.1f} s", flush=True)
        if args.floor_after:
            # The same floor again: a machine that got slower or faster during the run shows as two floors apart.
            print(f"floor again: {args.burst} noop_chain runs at once ...", flush=True)
            floors.append(bench.floor(args.burst, "after", args.timeout))
            print(f"  {floors[1]['burst_seconds']:.1f} s", flush=True)
    finally:
        stop_demo(launcher)

    n = args.burst
    single_floor = statistics.median(floor_singles)
    single_p50 = statistics.median(singles)
    floor_seconds = statistics.mean(f["burst_seconds"] for f in floors)
    ratio = burst["all_settled_seconds"] / floor_seconds
    print(f"\nlatency benchmark: {args.shape} shape, parallelism {args.parallelism}, mail {args.mail}, 2 cores, "
          f"{os.cpu_count()} CPUs seen, load {os.getloadavg()[0]:.1f}")
    print(f"{'goal':44}{'figure':>14}{'target':>16}{'vs floor':>14}")
    print(line(f"single approval -> Activated, p50 of {len(singles)}", f"{single_p50:.1f} s", "<= 8 s",
               f"{single_p50 / single_floor:.2f}x", single_p50 <= 8))
    print(line(f"{n} approvals -> all settled", f"{burst['all_settled_seconds']:.1f} s",
               f"<= {0.85 * floor_seconds:.1f} s", f"{ratio:.2f}x", ratio <= 0.85))
    print(line("  first order Activated after the burst", f"{burst['first_activated']:.1f} s", "<= 15 s", "",
               burst["first_activated"] <= 15))
    print(line("  duplicate runs / duplicate WHMCS orders", f"{burst['duplicate_runs']} / {burst['duplicate_whmcs']}",
               "0 / 0", "", burst["duplicate_runs"] == 0 and burst["duplicate_whmcs"] == 0))
    print(line("  run-start task instances for the burst", f"{burst['start_task_instances']}",
               f"O(1), not {n}", "", burst["start_task_instances"] < max(10, n // 10)))
    shown = " and ".join(f"{f['burst_seconds']:.1f} s ({f['runs_per_minute']:.0f} runs/min, started in "
                         f"{f['start_seconds']:.1f} s)" for f in floors)
    print(f"\nfloor (noop_chain, 6 tasks): one run {single_floor:.1f} s p50 "
          f"({', '.join(f'{s:.1f}' for s in floor_singles)}); {n} runs {'before and after the burst: ' if len(floors) > 1 else ''}"
          f"{shown}; the ratio is against {'their mean' if len(floors) > 1 else 'it'}, {floor_seconds:.1f} s")
    print(f"singles (s): {', '.join(f'{s:.1f}' for s in singles)}")
    print(f"burst: settled {burst['settled']}/{n} (Failed {burst['failed']}), approval -> Activated p50 "
          f"{burst['p50']:.1f} s p95 {burst['p95']:.1f} s; {burst['orders_with_run']} orders got a run")
    print(f"\nCPU by component (per run of {n} no-op runs, per order of the burst; the bench's own polling excluded):")
    spans = [(title, cpu, n) for title, cpu in bench.cpu.items()]
    print("\n".join(render(spans)))
    if args.keep:
        print(f"kept {tmp}")
    ok = burst["settled"] == n and burst["duplicate_runs"] == 0 and burst["duplicate_whmcs"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
