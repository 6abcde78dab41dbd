"""Reconciliation extraction at scale, without Airflow: the WHMCS and Salesforce extracts of N orders.

Seeds N provisioned orders into a throw-away sandbox folder, runs the emulators as their own
process (``orderflow-sandbox serve``, as ``make demo`` does: the clients and the emulators do not
share a GIL) on free ports, and runs each extraction in a process of its own, as each DAG task
has one: the clients are built from ``AIRFLOW_CONN_*`` variables by the hooks the tasks use, and
the functions the tasks call run (``orderflow.reconcile.extract.extract_whmcs`` /
``extract_salesforce``). For each extraction it prints wall seconds, rows, API calls per endpoint,
CPU seconds of the extracting process and of the emulator process (where the time goes), the
peak RSS of the extracting process, and a digest of each file (the same data give the same
digests before and after a change). ``--parallel`` also runs both at once (the DAG runs its two
extract tasks in parallel, against one emulator process). Several ``--orders`` values end with
the growth ratio.

    .venv/bin/python bench/extract_bench.py --orders 100000 [--orders 300000] [--repeat 2]
        [--parallel] [--profile DIR] [--keep]

``--profile DIR`` writes a cProfile of each sequential extraction to DIR (main thread only).
Targets (issue 10, 2 cores): each extraction well under 30 s at 100k, 300k within 3.5x of 100k,
Salesforce calls <= 60 for the whole reconciliation.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from compare_bench import RssPeak  # the extracting process's peak, sampled (ru_maxrss counts imports)

REPO = Path(__file__).resolve().parents[1]
SYSTEMS = ("whmcs", "salesforce")


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def start_sandbox(data_dir: Path) -> tuple[subprocess.Popen, dict]:
    """``orderflow-sandbox serve`` on free ports (port 0: ephemeral, never 8080-8099/8180-8199)."""
    from orderflow_sandbox.server import ENDPOINTS_FILE, read_endpoints

    (data_dir / ENDPOINTS_FILE).unlink(missing_ok=True)
    exe = Path(sys.executable).with_name("orderflow-sandbox")
    with (data_dir / "sandbox.log").open("w") as log:
        proc = subprocess.Popen([str(exe), "--data-dir", str(data_dir), "serve", "--components", "salesforce,whmcs"],
                                stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "ORDERFLOW_SANDBOX_LOG_LEVEL": "warning"})
    deadline = time.monotonic() + 120
    while not (data_dir / ENDPOINTS_FILE).exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the sandbox did not start; see {data_dir / 'sandbox.log'}")
        time.sleep(0.2)
    return proc, read_endpoints(data_dir)


# ------------------------------------------------------------------------------------ one extraction (child)


def run_extract(system: str, endpoints: dict, folder: Path, profile: Path | None = None) -> dict[str, Any]:
    """One extraction in this process: the task's function, its result and what it cost."""
    from orderflow_sandbox.connections import connection_env

    os.environ.update(connection_env(endpoints))
    from orderflow.reconcile import extract as ext
    from orderflow.salesforce.hook import SalesforceJwtHook
    from orderflow.whmcs.hook import WhmcsHook

    if system == "salesforce":
        sf = SalesforceJwtHook().get_conn()
        sf.get_access_token()  # the login is not part of the extraction (the token cache serves it in Airflow)
        counter = sf.api_calls
        call = lambda: ext.extract_salesforce(sf, folder, ext.Scope())  # noqa: E731
    else:
        wh = WhmcsHook().get_conn()
        counter = wh.calls
        call = lambda: ext.extract_whmcs(wh, folder)  # noqa: E731
    before = dict(counter)
    me = psutil.Process()
    cpu0 = cpu_seconds(me)
    profiler = cProfile.Profile() if profile else None
    with RssPeak() as rss:
        t0 = time.perf_counter()
        if profiler:
            profiler.enable()
        result = call()
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - t0
    if profiler and profile:
        profile.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(str(profile / f"{system}.prof"))
    calls = {k: v - before.get(k, 0) for k, v in counter.items() if v - before.get(k, 0)}
    return {"system": system, "wall_s": wall, "cpu_s": cpu_seconds(me) - cpu0, "rows": result.rows,
            "calls": calls, "api_calls": result.api_calls, "peak_rss": rss.peak,
            "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "digests": {name: digest(path) for name, path in result.files.items()}}


def child_main(system: str, data_dir: str, folder: str, profile: str = "") -> int:
    """``--child``: one extraction in this process; its figures as the last line of stdout (JSON)."""
    from orderflow_sandbox.server import read_endpoints

    figures = run_extract(system, read_endpoints(data_dir), Path(folder), Path(profile) if profile else None)
    print(json.dumps(figures))
    return 0


# ------------------------------------------------------------------------------------ driver


def spawn(system: str, data_dir: Path, folder: Path, profile: Path | None = None) -> subprocess.Popen:
    args = [sys.executable, __file__, "--child", system, str(data_dir), str(folder), str(profile or "")]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


def collect(proc: subprocess.Popen) -> dict[str, Any]:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"an extraction failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def show(r: dict, prefix: str) -> None:
    calls = ", ".join(f"{k} {v}" for k, v in sorted(r["calls"].items()))
    emulator = f"{r['emulator_cpu_s']:5.2f} s" if "emulator_cpu_s" in r else "  (shared)"
    print(f"{prefix}{r['system']:<10} {r['wall_s']:6.2f} s  cpu: extracting process {r['cpu_s']:5.2f} s, emulator "
          f"{emulator}  rows {r['rows']}  calls {r['api_calls']} ({calls})  peak RSS {r['peak_rss'] / 2**20:.0f} MiB"
          f"  files {r['digests']}", flush=True)


def bench_one(n: int, repeat: int, do_parallel: bool, profile: Path | None, keep: bool) -> dict:
    from orderflow_sandbox.seed import seed_provisioned

    tmp = Path(tempfile.mkdtemp(prefix=f"orderflow-xbench-{n}."))
    data_dir = tmp / "sandbox"
    print(f"\n== {n} orders in {tmp}", flush=True)
    t0 = time.monotonic()
    seed_provisioned(data_dir, orders=n, rng_seed=7)
    print(f"  seeded in {time.monotonic() - t0:.0f} s", flush=True)
    proc, _ = start_sandbox(data_dir)
    emulator = psutil.Process(proc.pid)
    runs: dict[str, list[dict]] = {}
    try:
        for attempt in range(1, repeat + 1):
            for system in SYSTEMS:
                child = spawn(system, data_dir, tmp / f"extract{attempt}",
                              profile / f"{n}-{attempt}" if profile else None)
                before = cpu_seconds(emulator)  # the child's start-up (imports) makes no emulator calls
                r = collect(child)
                r["emulator_cpu_s"] = cpu_seconds(emulator) - before
                runs.setdefault(system, []).append(r)
                show(r, f"  run {attempt}  ")
        for attempt in range(1, repeat + 1) if do_parallel else ():
            before = cpu_seconds(emulator)
            children = [spawn(system, data_dir, tmp / f"parallel{attempt}-{system}") for system in SYSTEMS]
            both = [collect(child) for child in children]
            print(f"  parallel {attempt} (both at once; emulator cpu {cpu_seconds(emulator) - before:.2f} s for both)",
                  flush=True)
            for r in both:
                runs.setdefault(f"{r['system']} (parallel)", []).append(r)
                show(r, "      ")
        return {"orders": n, "runs": runs}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def summary(results: list[dict]) -> None:
    print("\nsummary: each run's wall seconds, API calls and peak RSS of the extracting process")
    for res in results:
        for key, runs in res["runs"].items():
            walls = ", ".join(f"{r['wall_s']:.2f}" for r in runs)
            calls = ", ".join(str(r["api_calls"]) for r in runs)
            rss = ", ".join(f"{r['peak_rss'] / 2**20:.0f}" for r in runs)
            print(f"  {res['orders']:>7} orders  {key:<22} {walls} s   calls {calls}   peak RSS {rss} MiB")
    if len(results) > 1:
        base = results[0]
        print("growth vs the first size (best run of each):")
        for res in results[1:]:
            for key in res["runs"]:
                a = min(r["wall_s"] for r in base["runs"][key])
                b = min(r["wall_s"] for r in res["runs"][key])
                ra = max(r["peak_rss"] for r in base["runs"][key])
                rb = max(r["peak_rss"] for r in res["runs"][key])
                print(f"  {key:<22} {res['orders']}/{base['orders']} orders: time x{b / a:.2f}, peak RSS x{rb / ra:.2f}")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child_main(*sys.argv[2:6])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, action="append", help="repeatable; default 100000")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each extraction per size (noisy machine)")
    parser.add_argument("--parallel", action="store_true", help="also run both at once, one process each")
    parser.add_argument("--profile", type=Path, help="write cProfile stats of each sequential extraction here")
    parser.add_argument("--keep", action="store_true", help="keep the temp folders")
    args = parser.parse_args()
    results = [bench_one(n, args.repeat, args.parallel, args.profile, args.keep) for n in (args.orders or [100_000])]
    summary(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
