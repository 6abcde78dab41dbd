"""Event sensor benchmark: approve N orders at once, measure approval -> provision_order run creation.

Runs the real sensor path in-process: the order_event_sensor DAG with ``dag.test()`` (the
deferrable sensor's trigger subscribes to the sandbox's Pub/Sub over TLS, the drain fetches in
batches of 100, TriggerDagRunOperator creates the runs) against a temporary AIRFLOW_HOME on
SQLite. The sensor is already waiting when the approvals land, as it is in production.

    .venv/bin/python bench/event_bench.py [--orders 100]

Prints latency from approval to run creation (p50/p95/max), events drained per second by the
drain task and end to end, the raw PubSubClient.fetch rate on the same bus as a baseline, and
duplicate runs (must be 0, also after a re-drain from an older checkpoint). Time to Activated
needs a scheduler and is not measured here (provision_order runs stay queued under dag.test).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _setup_airflow_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="orderflow-event-bench."))
    os.environ.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "ORDERFLOW_SANDBOX_LOG_LEVEL": "warning",
        "ORDERFLOW_SANDBOX_PUBSUB_KEEPALIVE_SECONDS": "5",
    })
    return home


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100)
    args = parser.parse_args()
    home = _setup_airflow_home()

    import logging

    logging.disable(logging.WARNING)  # dag.test is chatty; the figures are printed below
    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.variable import Variable
    from airflow.utils import db
    from airflow.utils.session import create_session

    from orderflow.events import CHECKPOINT_VARIABLE, TOPIC
    from orderflow.salesforce.pubsub import PubSubClient
    from orderflow_sandbox.connections import connection_env, salesforce_client
    from orderflow_sandbox.salesforce.approve import approve_orders
    from orderflow_sandbox.seed import seed_sandbox
    from orderflow_sandbox.server import Sandbox

    t = time.monotonic()
    settings.configure_orm()
    db.initdb()
    print(f"airflow db ready in {time.monotonic() - t:.1f} s ({home})")

    data_dir = home / "sandbox"
    summary = seed_sandbox(data_dir, orders=args.orders, rng_seed=3)
    order_ids = list(summary["expected"])
    sandbox = Sandbox(data_dir, components={"salesforce", "pubsub"})
    endpoints = sandbox.start()
    os.environ.update(connection_env(endpoints))
    dag = DagBag(dag_folder=str(REPO / "dags" / "order_event_sensor.py"), safe_mode=False).dags["order_event_sensor"]

    def provision_runs() -> list[DagRun]:
        with create_session() as session:
            runs = session.query(DagRun).filter(DagRun.dag_id == "provision_order").all()
            session.expunge_all()
            return runs

    try:
        # Warm-up: one empty cycle (imports, DAG serialisation, token login) so the timed part is steady state.
        os.environ["ORDERFLOW_EVENT_WAIT_SECONDS"] = "1"
        dag.test()
        os.environ["ORDERFLOW_EVENT_WAIT_SECONDS"] = "30"

        approved_at: dict[str, float] = {}

        def approve_soon() -> None:
            time.sleep(2.0)  # the sensor is deferred and subscribed by now
            before = time.time()
            done = approve_orders(data_dir, order_ids)
            after = time.time()
            approved_at.update({i: after for i in done})
            approved_at["__before__"] = before

        approver = threading.Thread(target=approve_soon)
        approver.start()
        runs_needed, cycles = len(order_ids), 0
        drain_seconds = 0.0
        while len(provision_runs()) < runs_needed and cycles < 10:
            dag_run = dag.test()
            cycles += 1
            with create_session() as session:
                ti = session.query(TaskInstance).filter(TaskInstance.dag_id == dag.dag_id,
                                                        TaskInstance.run_id == dag_run.run_id,
                                                        TaskInstance.task_id == "drain_events").one()
                drain_seconds += (ti.end_date - ti.start_date).total_seconds()
        approver.join()
        runs = provision_runs()
        created = {r.conf["order_id"]: r.run_after.timestamp() for r in runs}
        latencies = [created[o] - approved_at[o] for o in order_ids if o in created]
        per_order: dict[str, int] = {}
        for r in runs:
            per_order[r.conf["order_id"]] = per_order.get(r.conf["order_id"], 0) + 1
        duplicates = sum(n - 1 for n in per_order.values())

        # Re-drain everything from EARLIEST (checkpoint deleted): must create nothing.
        Variable.delete(CHECKPOINT_VARIABLE)
        os.environ["ORDERFLOW_EVENT_WAIT_SECONDS"] = "5"
        dag.test()
        rerun_new = len(provision_runs()) - len(runs)

        # Baseline: the raw client draining the same N events (no Airflow).
        sf = salesforce_client(endpoints)
        client = PubSubClient(sf.pubsub_endpoint, sf.get_access_token, sf.instance_url, sf.org_id,
                              endpoints["ca_bundle"])
        t = time.monotonic()
        raw = client.fetch(TOPIC, "EARLIEST", max_events=len(order_ids), batch_size=100, wait_seconds=5)
        raw_rate = len(raw.events) / (time.monotonic() - t)
        client.close()
    finally:
        sandbox.stop()

    n = len(order_ids)
    span = max(created.values()) - approved_at["__before__"] if created else float("nan")
    drain_rate = n / drain_seconds if drain_seconds else float("nan")
    print(f"orders approved at once: {n}; provision_order runs created: {len(runs)} in {cycles} sensor DAG run(s)")
    print(f"approval -> run created (s): p50 {statistics.median(latencies):.2f}  p95 {_pct(latencies, 95):.2f}  "
          f"max {max(latencies):.2f}")
    print(f"drain task: {n} events in {drain_seconds:.2f} s = {drain_rate:.0f} events/s; end to end "
          f"(approval call start -> last run created): {n / span:.1f} runs/s over {span:.2f} s")
    print(f"baseline raw PubSubClient.fetch: {len(raw.events)} events at {raw_rate:.0f} events/s "
          f"(drain task / raw = {drain_rate / raw_rate:.2f})")
    print(f"duplicate runs: {duplicates}; new runs after a full re-drain from EARLIEST: {rerun_new}")
    ok = duplicates == 0 and rerun_new == 0 and len(created) == n
    print("RESULT:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
