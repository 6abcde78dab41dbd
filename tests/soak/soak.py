"""The soak test (``make soak``): the running system over many sensor runs, a restart and lost events.

``scripts/soak.sh`` starts the sandbox and Airflow through ``scripts/demo.sh`` (``DEMO_SOAK=1``), which
runs this driver once the UI answers. Over ``--minutes`` it approves orders in waves aimed at each
phase of the sensor DAG (while ``wait_for_events`` is deferred, while ``drain_events`` runs, between
runs), loses some events (sandbox fault ``lose_event``: only the sweep can find those orders), stops
Airflow mid-run, approves a wave while it is down, and starts it again with the same ``AIRFLOW_HOME``.
Then it waits for every order to settle and prints one line of figures. Exit 1 on any lost order,
duplicate WHMCS order, unexpected outcome, or fewer sensor runs than ``--min-sensor-runs``.

Why a real scheduler: the sensor once passed every ``dag.test()`` and stopped after its first run in
production, because every test delivered its events inside that run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

from harness import (
    PROVISION_DAG,
    SENSOR_DAG,
    Airflow,
    aim_at,
    duplicate_whmcs_orders,
    epoch,
    percentile,
    say_problems,
    sayer,
)

from orderflow_sandbox.demo import order_states, settled_as_expected
from orderflow_sandbox.seed import ACTIVATED
from orderflow_sandbox.server import read_endpoints
from orderflow_sandbox.traffic import ApprovalTraffic, Wave

PHASES = ("waiting", "draining", "between")
PATIENCE = {"waiting": 60.0, "draining": 20.0, "between": 45.0}  # seconds to wait for each phase
say = sayer("soak")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests/soak/soak.py", description=__doc__.splitlines()[0])
    parser.add_argument("--airflow", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--sandbox", required=True)
    parser.add_argument("--minutes", type=float, default=6.0, help="how long approvals keep arriving")
    parser.add_argument("--settle-minutes", type=float, default=4.0, help="how long the last orders may take")
    parser.add_argument("--min-sensor-runs", type=int, default=5)
    parser.add_argument("--wave-seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    rng = random.Random(args.seed)
    data_dir = Path(args.sandbox)
    endpoints = read_endpoints(data_dir)
    airflow = Airflow(args.airflow, args.user, args.password)
    for dag_id in (PROVISION_DAG, SENSOR_DAG):
        airflow.api.wait_for_dag(dag_id, timeout=180)
        airflow.api.unpause(dag_id)
    sweep_lag = float(os.environ.get("ORDERFLOW_SWEEP_MINUTES", "15")) * 60 + 3 * float(
        os.environ.get("ORDERFLOW_EVENT_WAIT_SECONDS", "60"))
    traffic = ApprovalTraffic(data_dir, rng_seed=args.seed, reserve=150)
    started = time.time()
    window = args.minutes * 60
    restart_at = started + 0.45 * window
    restarted = False
    waves: list[tuple[str, Wave]] = []
    downtime = 0.0
    say(f"approving in waves for {args.minutes:g} min (sweep finds a lost event within ~{sweep_lag:.0f}s); "
        f"Airflow restarts at +{restart_at - started:.0f}s")

    wave_no = 0
    while time.time() < started + window:
        if not restarted and time.time() >= restart_at:
            restarted = True
            say("stopping Airflow (every component) ...")
            t0 = time.time()
            airflow.components("stop")
            for _ in range(2):
                wave = traffic.approve(rng.randint(2, 3))
                waves.append(("down", wave))
                say(f"approved {len(wave.order_ids)} while Airflow is down")
                time.sleep(5)
            airflow.components("start")
            while not airflow.healthy():
                if time.time() - t0 > 300:
                    raise SystemExit("soak: Airflow did not come back within 5 minutes")
                time.sleep(1)
            downtime = time.time() - t0
            say(f"Airflow is back after {downtime:.0f}s (same AIRFLOW_HOME)")
            continue
        wave_no += 1
        # A cycle of three waves: one while the sensor waits (its events wake it), one right after while
        # the drain runs, one between runs; then a pause.
        target = PHASES[(wave_no - 1) % len(PHASES)]
        phase = aim_at(airflow, target, patience=PATIENCE[target])
        late = time.time() > started + window - sweep_lag
        lose = 0 if late or wave_no % 4 != 1 else rng.randint(1, 2)
        bad = 1 if wave_no % 3 == 0 else 0
        wave = traffic.approve(rng.randint(2, 4) + lose, lose=lose, bad=bad)
        waves.append((phase, wave))
        say(f"wave {wave_no} ({phase}): {len(wave.order_ids)} approved, {len(wave.lost)} without event, "
            f"{len(wave.bad_apples)} bad apple(s)")
        if target == PHASES[-1]:
            time.sleep(max(0.0, args.wave_seconds - (time.time() - wave.approved_at)))

    approved_at = {oid: wave.approved_at for _, wave in waves for oid in wave.order_ids}
    expected = {oid: outcome for _, wave in waves for oid, outcome in wave.expected.items()}
    swept = {oid for _, wave in waves for oid in wave.lost}
    ids = sorted(approved_at)
    settle_deadline = time.time() + args.settle_minutes * 60
    states: dict[str, dict] = {}
    while True:
        states = order_states(endpoints, ids)
        pending = [oid for oid in ids if (states.get(oid) or {}).get("Activation_Status__c") not in ("Activated", "Failed")]
        if not pending or time.time() > settle_deadline:
            break
        say(f"{len(ids) - len(pending)}/{len(ids)} settled; waiting for {len(pending)}")
        time.sleep(5)

    # -- figures
    lost = [oid for oid in ids if (states.get(oid) or {}).get("Activation_Status__c") not in ("Activated", "Failed")]
    unexpected = [oid for oid in ids if oid not in lost and not settled_as_expected(expected[oid], states.get(oid))]
    activated = [oid for oid in ids if (states.get(oid) or {}).get("Activation_Status__c") == "Activated"]
    failed = Counter(states[oid]["Activation_Error_Code__c"] for oid in ids
                     if (states.get(oid) or {}).get("Activation_Status__c") == "Failed")
    failed_expected = Counter(code for code in expected.values() if code != ACTIVATED)
    latency = sorted(epoch(states[oid]["LastModifiedDate"]) - approved_at[oid]
                     for oid in activated if oid not in swept)
    swept_latency = sorted(epoch(states[oid]["LastModifiedDate"]) - approved_at[oid]
                           for oid in activated if oid in swept)
    runs = airflow.runs(PROVISION_DAG)
    runs_per_order = Counter((r.get("conf") or {}).get("order_id") for r in runs)
    duplicate_runs = sum(n - 1 for oid, n in runs_per_order.items() if oid in approved_at and n > 1)
    sensor_runs = [r for r in airflow.runs(SENSOR_DAG)
                   if r.get("start_date") and epoch(r["start_date"]) >= started - 120]
    sensor_ok = sum(1 for r in sensor_runs if r["state"] == "success")
    sensor_failed = sum(1 for r in sensor_runs if r["state"] == "failed")
    duplicates = duplicate_whmcs_orders(endpoints)
    phases = Counter(phase for phase, _ in waves)

    failed_text = ", ".join(f"{code} {failed.get(code, 0)}/{n}" for code, n in sorted(failed_expected.items())) or "none"
    extra_codes = sorted(set(failed) - set(failed_expected))
    if extra_codes:
        failed_text += ", unexpected: " + ", ".join(f"{c} {failed[c]}" for c in extra_codes)
    line = (
        f"approved {len(ids)} | Activated {len(activated)}/{sum(v == ACTIVATED for v in expected.values())} | "
        f"Failed by code: {failed_text} | lost {len(lost)} | unexpected {len(unexpected)} | "
        f"duplicate runs for one approval {duplicate_runs} | duplicate WHMCS orders {len(duplicates)} | "
        f"sensor runs completed {sensor_ok} (failed {sensor_failed}, min {args.min_sensor_runs}) | "
        f"approval->Activated p50 {percentile(latency, 50):.1f}s p95 {percentile(latency, 95):.1f}s "
        f"(swept {len(swept_latency)}{f', max {max(swept_latency):.0f}s' if swept_latency else ''}) | "
        f"waves by phase {dict(sorted(phases.items()))} | Airflow down {downtime:.0f}s"
    )
    print("\nSOAK: " + line, flush=True)
    say_problems(say, expected, states, lost, unexpected, duplicates)
    report = {"approved": len(ids), "activated": len(activated), "failed": dict(failed), "lost": lost,
              "unexpected": unexpected, "duplicate_runs": duplicate_runs, "duplicate_whmcs_orders": duplicates,
              "sensor_runs_completed": sensor_ok, "sensor_runs_failed": sensor_failed,
              "latency_p50_s": percentile(latency, 50), "latency_p95_s": percentile(latency, 95),
              "swept_latency_s": swept_latency, "phases": dict(phases), "airflow_down_s": downtime}
    (data_dir / "soak_result.json").write_text(json.dumps(report, indent=2, default=str))
    ok = not lost and not duplicates and not unexpected and sensor_ok >= args.min_sensor_runs
    say("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
