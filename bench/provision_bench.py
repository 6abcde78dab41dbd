"""Provisioning throughput: N orders through real provision_order DAG runs vs. the bare steps.

Two ways in (``--via``):
  rest    (issue 5) each run triggered through Airflow's REST API; the event sensor is paused
  events  (issue 6) the N orders are approved at once; the Flow's events reach the
          order_event_sensor DAG, which starts the runs: approval -> run created -> Activated

Starts the embedded default exactly as `make demo` does (Airflow standalone on SQLite +
LocalExecutor, the sandbox emulators) in throw-away folders, then:

  baseline  the same steps called directly in one process, one order after another (no Airflow)
  airflow   N runs triggered through the REST API; time from trigger to Activated per order

Prints orders/minute, p50/p95 trigger->Activated, Salesforce REST calls, logins and WHMCS calls
per order (from the sandbox's own counters), and the ratio airflow/baseline.

    .venv/bin/python bench/provision_bench.py [--orders 50] [--parallelism 6] [--via rest|events]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from system import start_demo, wait_healthy

REPO = Path(__file__).resolve().parents[1]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def admin(endpoints: dict, system: str, method: str, path: str) -> dict:
    url = endpoints[system]["admin_url"] + path
    return requests.request(method, url, verify=endpoints["ca_bundle"], timeout=30).json()


def sandbox_counts(endpoints: dict) -> tuple[int, int, int]:
    sf = admin(endpoints, "salesforce", "GET", "/stats")
    wh = admin(endpoints, "whmcs", "GET", "/stats")
    return sf["rest_total"], sf["logins"], sum(wh.values())


def wait_until_settled(poller, order_ids: list[str], deadline: float, clock=time.monotonic) -> dict[str, float]:
    """Poll Salesforce every 0.5 s; return ``{order_id: clock() when first seen Activated/Failed}``."""
    done: dict[str, float] = {}
    pending = set(order_ids)
    while pending and time.monotonic() < deadline:
        ids = ",".join(f"'{i}'" for i in sorted(pending))
        now = clock()
        for rec in poller.query(f"SELECT Id, Activation_Status__c FROM Order WHERE Id IN ({ids})"):
            if rec["Activation_Status__c"] in ("Activated", "Failed"):
                done[rec["Id"]] = now
                pending.discard(rec["Id"])
        time.sleep(0.5)
    return done


def run_baseline(endpoints: dict, order_ids: list[str], tmp: Path) -> dict:
    from orderflow.provisioning import steps
    from orderflow.provisioning.order import build_plan
    from orderflow.salesforce.token_cache import TokenCache
    from orderflow_sandbox.connections import salesforce_client, whmcs_client

    sf = salesforce_client(endpoints, token_cache=TokenCache(tmp / "baseline-token.json"))
    wh = whmcs_client(endpoints)
    before = sandbox_counts(endpoints)
    started = time.monotonic()
    for oid in order_ids:
        order = steps.load_order(sf, oid)
        plan = build_plan(order)
        gateway = steps.check_payment_method(wh, plan.client_id)
        ref = steps.find_or_create_whmcs_order(wh, order, plan, gateway)
        ref = steps.accept_whmcs_order(wh, ref)
        steps.write_back(sf, order, ref)
    elapsed = time.monotonic() - started
    after = sandbox_counts(endpoints)
    n = len(order_ids)
    return {
        "seconds": elapsed,
        "orders_per_minute": n / elapsed * 60,
        "per_order_seconds": elapsed / n,
        "sf_rest_per_order": (after[0] - before[0]) / n,
        "logins_per_order": (after[1] - before[1]) / n,
        "whmcs_per_order": (after[2] - before[2]) / n,
    }


def run_airflow(endpoints: dict, order_ids: list[str], api, tmp: Path, timeout: float) -> dict:
    from orderflow.salesforce.token_cache import TokenCache
    from orderflow_sandbox.connections import salesforce_client

    poller = salesforce_client(endpoints, token_cache=TokenCache(tmp / "poller-token.json"))
    poller.get_access_token()
    before = sandbox_counts(endpoints)
    poll_calls_before = sum(poller.api_calls.values())
    triggered: dict[str, float] = {}
    started = time.monotonic()
    for oid in order_ids:
        triggered[oid] = time.monotonic()
        code = api.trigger("provision_order", f"order__{oid}__bench", {"order_id": oid, "source": "manual"})
        if code not in (200, 409):
            raise SystemExit(f"trigger {oid}: HTTP {code}")
    done = wait_until_settled(poller, order_ids, started + timeout, clock=time.monotonic)
    elapsed = max(done.values(), default=time.monotonic()) - started
    after = sandbox_counts(endpoints)
    poll_calls = sum(poller.api_calls.values()) - poll_calls_before
    n = len(order_ids)
    latencies = [done[o] - triggered[o] for o in done]
    return {
        "seconds": elapsed,
        "settled": len(done),
        "orders_per_minute": len(done) / elapsed * 60 if elapsed else 0.0,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p95": pct(latencies, 95) if latencies else float("nan"),
        "sf_rest_per_order": (after[0] - before[0] - poll_calls) / n,
        "logins_per_order": (after[1] - before[1]) / n,
        "whmcs_per_order": (after[2] - before[2]) / n,
    }


def run_events(endpoints: dict, order_ids: list[str], api, tmp: Path, timeout: float, data_dir: Path) -> dict:
    """Approve all orders at once; the sensor DAG alone starts their provisioning runs."""
    import datetime as dt

    from orderflow.salesforce.token_cache import TokenCache
    from orderflow_sandbox.connections import salesforce_client
    from orderflow_sandbox.salesforce.approve import approve_orders

    poller = salesforce_client(endpoints, token_cache=TokenCache(tmp / "poller-token.json"))
    poller.get_access_token()
    before = sandbox_counts(endpoints)
    poll_calls_before = sum(poller.api_calls.values())
    approved_at = time.time()
    approve_orders(data_dir, order_ids, status="Approved")
    approved_done = time.time()
    done = wait_until_settled(poller, order_ids, time.monotonic() + timeout, clock=time.time)
    pending = set(order_ids) - set(done)
    after = sandbox_counts(endpoints)
    poll_calls = sum(poller.api_calls.values()) - poll_calls_before

    runs: dict[str, list[dict]] = {}
    offset = 0
    while True:
        page = api._retry("GET", f"/api/v2/dags/provision_order/dagRuns?limit=100&offset={offset}").json()
        for run in page["dag_runs"]:
            oid = (run.get("conf") or {}).get("order_id")
            if oid in done or oid in pending:
                runs.setdefault(oid, []).append(run)
        offset += len(page["dag_runs"])
        if not page["dag_runs"] or offset >= page["total_entries"]:
            break
    created = {
        oid: min(dt.datetime.fromisoformat(r["queued_at"]).timestamp() for r in rs) for oid, rs in runs.items()
    }
    to_run = [created[o] - approved_at for o in created]
    to_active = [done[o] - approved_at for o in done]
    drained = 0
    drain_seconds = 0.0
    page = api._retry("GET", "/api/v2/dags/order_event_sensor/dagRuns/~/taskInstances?task_id=drain_events&limit=100")
    for ti in page.json().get("task_instances", []):
        if ti.get("start_date") and ti.get("end_date") and ti.get("state") == "success":
            drain_seconds += (dt.datetime.fromisoformat(ti["end_date"]) - dt.datetime.fromisoformat(ti["start_date"])).total_seconds()
            drained += 1
    n = len(order_ids)
    return {
        "approve_call_seconds": approved_done - approved_at,
        "runs_created": sum(len(rs) for rs in runs.values()),
        "orders_with_run": len(runs),
        "duplicates": sum(len(rs) - 1 for rs in runs.values()),
        "sources": sorted({str((r.get("conf") or {}).get("source")) for rs in runs.values() for r in rs}),
        "to_run": to_run,
        "to_active": to_active,
        "settled": len(done),
        "drain_task_runs": drained,
        "drain_task_seconds": drain_seconds,
        "sf_rest_per_order": (after[0] - before[0] - poll_calls) / n,
        "logins_per_order": (after[1] - before[1]) / n,
        "whmcs_per_order": (after[2] - before[2]) / n,
    }


def _dist(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"p50 {statistics.median(values):.1f}  p95 {pct(values, 95):.1f}  max {max(values):.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=50)
    parser.add_argument("--parallelism", type=int, default=6)
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--via", choices=["rest", "events"], default="rest")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "sandbox"))
    from orderflow_sandbox.demo import AirflowApi
    from orderflow_sandbox.salesforce.approve import approve_orders
    from orderflow_sandbox.seed import seed_sandbox
    from orderflow_sandbox.server import read_endpoints

    tmp = Path(tempfile.mkdtemp(prefix="orderflow-bench."))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp / "airflow"),
        "SANDBOX_DIR": str(tmp / "sandbox"),
        "AIRFLOW_PORT": str(args.port),
        "AIRFLOW__CORE__PARALLELISM": str(args.parallelism),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "DEMO_SMTP_PORT": str(args.port + 1000),
    }
    env.pop("ORDERFLOW_NOTIFY_EMAIL", None)
    print(f"bench: starting the embedded default in {tmp} (parallelism {args.parallelism}) ...", flush=True)
    launcher = start_demo(env, tmp)
    try:
        wait_healthy(args.port, launcher, tmp)
        endpoints = read_endpoints(tmp / "sandbox")
        api = AirflowApi(f"http://localhost:{args.port}", "admin", "admin")
        api.wait_for_dag("provision_order", timeout=180)
        api.unpause("provision_order")
        n = args.orders
        if args.via == "events":
            api.wait_for_dag("order_event_sensor", timeout=180)
            api.unpause("order_event_sensor")
            summary = seed_sandbox(tmp / "sandbox", orders=int(n * 1.2) + 10, rng_seed=3)
            good = sorted(o for o, e in summary["expected"].items() if e == "Activated")[:n]
            time.sleep(15)  # let the sensor's first run reach its deferred wait, as in production
            ev = run_events(endpoints, good, api, tmp, args.timeout, tmp / "sandbox")
            return report_events(ev, n, args.parallelism)
        # Measure provision_order alone: the event sensor would start runs for the same approvals.
        api.set_paused("order_event_sensor", True)

        summary = seed_sandbox(tmp / "sandbox", orders=int(n * 2.4) + 10, rng_seed=3)
        good = sorted(o for o, e in summary["expected"].items() if e == "Activated")
        if len(good) < 2 * n:
            raise SystemExit(f"only {len(good)} good orders seeded, need {2 * n}")
        base_ids, flow_ids = good[:n], good[n : 2 * n]
        approve_orders(tmp / "sandbox", base_ids + flow_ids, status="Approved")

        base = run_baseline(endpoints, base_ids, tmp)
        flow = run_airflow(endpoints, flow_ids, api, tmp, args.timeout)
    finally:
        os.killpg(launcher.pid, signal.SIGTERM)
        try:
            launcher.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)

    print(f"\nprovision_order benchmark: N={n} orders, parallelism={args.parallelism}, 2 cores, SQLite + LocalExecutor")
    print(f"{'':34}{'airflow':>12}{'baseline':>12}")
    print(f"{'orders settled':34}{flow['settled']:>12}{n:>12}")
    print(f"{'wall time (s)':34}{flow['seconds']:>12.1f}{base['seconds']:>12.1f}")
    print(f"{'orders / minute':34}{flow['orders_per_minute']:>12.1f}{base['orders_per_minute']:>12.1f}")
    print(f"{'trigger -> Activated p50 (s)':34}{flow['p50']:>12.2f}{base['per_order_seconds']:>12.2f}")
    print(f"{'trigger -> Activated p95 (s)':34}{flow['p95']:>12.2f}{'':>12}")
    print(f"{'Salesforce REST calls / order':34}{flow['sf_rest_per_order']:>12.2f}{base['sf_rest_per_order']:>12.2f}")
    print(f"{'Salesforce logins / order':34}{flow['logins_per_order']:>12.3f}{base['logins_per_order']:>12.3f}")
    print(f"{'WHMCS calls / order':34}{flow['whmcs_per_order']:>12.2f}{base['whmcs_per_order']:>12.2f}")
    ratio = base["orders_per_minute"] / flow["orders_per_minute"] if flow["orders_per_minute"] else float("inf")
    print(f"\nthroughput ratio baseline/airflow: {ratio:.1f}x (the price of per-task processes, retries and scheduling)")
    return 0 if flow["settled"] == n else 1


def report_events(ev: dict, n: int, parallelism: int) -> int:
    print(f"\norder_event_sensor benchmark: N={n} orders approved at once (1 collection call, "
          f"{ev['approve_call_seconds']:.2f} s), parallelism={parallelism}, 2 cores, SQLite + LocalExecutor")
    print(f"approval -> provision_order run created (s): {_dist(ev['to_run'])}")
    print(f"approval -> Activated (s):                   {_dist(ev['to_active'])}   settled {ev['settled']}/{n}")
    rate = ev["drain_task_runs"] and ev["orders_with_run"] / max(ev["drain_task_seconds"], 1e-9)
    print(f"drain_events: {ev['drain_task_runs']} task runs, {ev['drain_task_seconds']:.2f} s in all "
          f"-> {rate:.0f} events/s (incl. task start-up)")
    print(f"runs created {ev['runs_created']} for {ev['orders_with_run']} orders; duplicate runs: {ev['duplicates']}; "
          f"sources {ev['sources']}")
    print(f"per order: Salesforce REST {ev['sf_rest_per_order']:.2f} (incl. the sensor's sweep queries), "
          f"logins {ev['logins_per_order']:.3f}, WHMCS {ev['whmcs_per_order']:.2f}")
    ok = ev["duplicates"] == 0 and ev["orders_with_run"] == n and ev["settled"] == n
    print("RESULT:", "OK" if ok else "NOT OK")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
