"""Demo helpers used by ``scripts/demo.sh``.

``env``        print ``export AIRFLOW_CONN_...=...`` lines for a running sandbox
``smtp-sink``  a local SMTP server that stores every received mail in a Maildir
``drive``      seed, approve, (optionally) trigger provisioning runs through Airflow's REST API,
               wait until every order has settled, print one row per order, exit 0 only if
               every order ended as expected
``traffic``    the interactive demo's steady approvals: a small wave every few seconds, with the
               seed's bad apples and an occasional lost event, one line per wave, until stopped
"""

from __future__ import annotations

import argparse
import json
import mailbox
import os
import shlex
import sys
import time
from pathlib import Path

import requests

from orderflow_sandbox.connections import connection_env
from orderflow_sandbox.server import read_endpoints

SETTLED = {"Activated", "Failed"}


def cmd_env(args: argparse.Namespace) -> int:
    endpoints = json.loads(Path(args.endpoints).read_text())
    for name, value in connection_env(endpoints, smtp_port=args.smtp_port).items():
        print(f"export {name}={shlex.quote(value)}")
    print(f"export ORDERFLOW_NOTIFY_EMAIL={shlex.quote(args.notify_to)}")
    return 0


def cmd_smtp_sink(args: argparse.Namespace) -> int:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Mailbox

    Path(args.maildir).parent.mkdir(parents=True, exist_ok=True)
    controller = Controller(Mailbox(args.maildir), hostname="127.0.0.1", port=args.port)
    controller.start()
    print(f"smtp sink on 127.0.0.1:{args.port} -> {args.maildir}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
    return 0


class AirflowApi:
    """The few Airflow REST v2 calls the demo needs, retrying SQLite 'database is locked' 500s."""

    def __init__(self, base_url: str, user: str, password: str) -> None:
        self.base = base_url.rstrip("/")
        self.session = requests.Session()
        token = self._retry("POST", "/auth/token", json={"username": user, "password": password}).json()
        self.session.headers["Authorization"] = f"Bearer {token['access_token']}"

    def _retry(self, method: str, path: str, ok: tuple[int, ...] = (200, 201), **kwargs) -> requests.Response:
        delay = 0.5
        for attempt in range(8):
            resp = self.session.request(method, self.base + path, timeout=30, **kwargs)
            if resp.status_code in ok or resp.status_code in (400, 404, 409, 422):
                return resp
            if attempt == 7:
                break
            time.sleep(delay)
            delay = min(delay * 2, 5)
        resp.raise_for_status()
        return resp

    def trigger(self, dag_id: str, run_id: str, conf: dict) -> int:
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        return self._retry("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body).status_code

    def unpause(self, dag_id: str) -> None:
        self.set_paused(dag_id, False)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        """Pause/unpause a DAG; a DAG Airflow does not know (yet) is left alone."""
        self._retry("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})

    def run_sources(self, dag_id: str) -> dict[str, set[str]]:
        """``{order_id: {conf.source, ...}}`` over every run of ``dag_id``."""
        sources: dict[str, set[str]] = {}
        offset = 0
        while True:
            page = self._retry("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&offset={offset}").json()
            for run in page["dag_runs"]:
                conf = run.get("conf") or {}
                if conf.get("order_id"):
                    sources.setdefault(conf["order_id"], set()).add(str(conf.get("source")))
            offset += len(page["dag_runs"])
            if not page["dag_runs"] or offset >= page["total_entries"]:
                return sources

    def wait_until_idle(self, dag_id: str, timeout: float) -> None:
        """Wait until ``dag_id`` has no queued or running run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            page = self._retry("GET", f"/api/v2/dags/{dag_id}/dagRuns?state=queued&state=running&limit=1").json()
            if page["total_entries"] == 0:
                return
            time.sleep(2)
        raise SystemExit(f"{dag_id} still had runs in flight after {timeout:.0f}s")

    def wait_for_dag(self, dag_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.session.get(f"{self.base}/api/v2/dags/{dag_id}", timeout=10).status_code == 200:
                return
            time.sleep(2)
        raise SystemExit(f"DAG {dag_id} did not appear in Airflow within {timeout:.0f}s")


def order_states(endpoints: dict, order_ids: list[str]) -> dict[str, dict]:
    """The Orders' activation fields and items' service ids, 200 Ids per query."""
    from orderflow_sandbox.connections import salesforce_client

    client = salesforce_client(endpoints)
    rows: dict[str, dict] = {}
    for start in range(0, len(order_ids), 200):
        chunk = order_ids[start : start + 200]
        ids = ",".join(f"'{i}'" for i in chunk)
        for rec in client.query(
            "SELECT Id, Activation_Status__c, Activation_Error_Code__c, WHMCS_Order_ID__c, LastModifiedDate, "
            f"(SELECT Id, WHMCS_Service_ID__c FROM OrderItems) FROM Order WHERE Id IN ({ids})"
        ):
            rows[rec["Id"]] = rec
    return rows


def settled_as_expected(expected: str, rec: dict | None) -> bool:
    if rec is None:
        return False
    if expected == "Activated":
        items = (rec.get("OrderItems") or {}).get("records", [])
        return (
            rec.get("Activation_Status__c") == "Activated"
            and bool(rec.get("WHMCS_Order_ID__c"))
            and all(i.get("WHMCS_Service_ID__c") for i in items)
        )
    return rec.get("Activation_Status__c") == "Failed" and rec.get("Activation_Error_Code__c") == expected


def cmd_drive(args: argparse.Namespace) -> int:
    from orderflow_sandbox.salesforce.approve import approve_orders
    from orderflow_sandbox.seed import seed_sandbox

    data_dir = Path(args.sandbox)
    endpoints = read_endpoints(data_dir)
    api = AirflowApi(args.airflow, args.user, args.password)
    for dag_id in ("provision_order", "order_event_sensor"):
        if args.trigger == "rest" and dag_id == "order_event_sensor":
            continue
        api.wait_for_dag(dag_id, timeout=180)
        api.unpause(dag_id)

    summary = seed_sandbox(data_dir, orders=args.orders, rng_seed=args.seed)
    expected: dict[str, str] = summary["expected"]
    order_ids = sorted(expected)
    print(f"demo: seeded {len(order_ids)} orders ({sum(v != 'Activated' for v in expected.values())} bad apples)")
    approve_orders(data_dir, order_ids, status="Approved")
    print("demo: approved every order (the Flow set Activating and published OrderProvisionRequested__e)")
    started = time.monotonic()
    if args.trigger == "rest":
        for order_id in order_ids:
            code = api.trigger("provision_order", f"order__{order_id}__demo", {"order_id": order_id, "source": "manual"})
            if code not in (200, 409):
                print(f"demo: trigger for {order_id} answered HTTP {code}", file=sys.stderr)
        print(f"demo: triggered {len(order_ids)} provision_order runs through the REST API")
    else:
        print("demo: the order_event_sensor DAG starts the provisioning runs from the events")

    deadline = started + args.timeout
    states: dict[str, dict] = {}
    while time.monotonic() < deadline:
        states = order_states(endpoints, order_ids)
        settled = sum(1 for oid in order_ids if (states.get(oid) or {}).get("Activation_Status__c") in SETTLED)
        if all(settled_as_expected(expected[oid], states.get(oid)) for oid in order_ids):
            break
        print(f"demo: {settled}/{len(order_ids)} settled after {time.monotonic() - started:.0f}s", flush=True)
        time.sleep(5)
    elapsed = time.monotonic() - started

    header = f"{'order id':<20} {'expected':<24} {'Activation_Status__c':<21} {'error code':<24} {'WHMCS order':<11} ok"
    print("\n" + header + "\n" + "-" * len(header))
    good = 0
    for oid in order_ids:
        rec = states.get(oid) or {}
        ok = settled_as_expected(expected[oid], rec)
        good += ok
        print(
            f"{oid:<20} {expected[oid]:<24} {str(rec.get('Activation_Status__c')):<21} "
            f"{str(rec.get('Activation_Error_Code__c') or ''):<24} {str(rec.get('WHMCS_Order_ID__c') or ''):<11} "
            f"{'yes' if ok else 'NO'}"
        )
    sensor_ok = True
    if args.trigger == "events":
        sources = api.run_sources("provision_order")
        by_sensor = [oid for oid in order_ids if sources.get(oid, set()) & {"event", "sweep"}]
        other = sorted({src for oid in order_ids for src in sources.get(oid, set())} - {"event", "sweep"})
        print(f"\ndemo: {len(by_sensor)}/{len(order_ids)} orders were started by order_event_sensor"
              + (f" (other sources seen: {', '.join(other)})" if other else ""))
        sensor_ok = len(by_sensor) == len(order_ids) and not other
    subjects = []
    if args.maildir and Path(args.maildir).exists():
        subjects = sorted(str(m["subject"]) for m in mailbox.Maildir(args.maildir, create=False))
    mails = len(subjects)
    if subjects:
        print("\ndemo: notification mails received by the SMTP sink (first 5):")
        for subject in subjects[:5]:
            print(f"  {subject}")
    print(f"\ndemo: {good}/{len(order_ids)} orders settled as expected in {elapsed:.0f}s; {mails} notification mails in the SMTP sink")
    provisioned_ok = good == len(order_ids) and sensor_ok
    reconciled_ok = True
    if args.reconcile and provisioned_ok:
        from orderflow_sandbox.demo_reconcile import run_reconcile_demo

        print("\ndemo: reconciliation: drift a few orders on purpose, run reconcile_orders once, check each category")
        # An Activated order's run may still be finishing (notify): reconciliation would rightly call it IN_FLIGHT.
        api.wait_until_idle("provision_order", timeout=args.timeout)
        reconciled_ok = run_reconcile_demo(api, data_dir, per_category=1, timeout=args.timeout)
    return 0 if provisioned_ok and reconciled_ok else 1


# pace -> (seconds between waves, orders per wave, a bad apple every N waves, a lost event every N waves)
TRAFFIC_PACES = {"slow": (30.0, 2, 3, 4), "busy": (15.0, 8, 2, 3)}


def cmd_traffic(args: argparse.Namespace) -> int:
    from orderflow_sandbox.traffic import ApprovalTraffic

    interval, size, bad_every, lose_every = TRAFFIC_PACES[args.pace]
    api = AirflowApi(args.airflow, args.user, args.password)
    for dag_id in ("provision_order", "order_event_sensor"):
        api.wait_for_dag(dag_id, timeout=180)
        api.unpause(dag_id)
    traffic = ApprovalTraffic(Path(args.sandbox))
    sweep = os.environ.get("ORDERFLOW_SWEEP_MINUTES", "15")
    print(f"demo traffic ({args.pace}): {size} approval(s) every {interval:.0f}s; a bad apple every {bad_every} "
          f"waves, a lost event every {lose_every} (the sweep picks it up after {sweep} min)", flush=True)
    wave_no = 0
    while args.waves is None or wave_no < args.waves:
        wave_no += 1
        bad = 1 if wave_no % bad_every == 0 else 0
        lose = 1 if wave_no % lose_every == 0 else 0
        wave = traffic.approve(size, lose=lose, bad=bad)
        notes = [f"{oid} should fail {code}" for oid, code in wave.bad_apples.items()]
        notes += [f"{oid} lost its event (sweep)" for oid in wave.lost]
        print(f"demo traffic: wave {wave_no} approved {', '.join(wave.order_ids)}"
              + (f"; {'; '.join(notes)}" if notes else ""), flush=True)
        time.sleep(interval)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orderflow_sandbox.demo")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("env")
    p.add_argument("--endpoints", required=True)
    p.add_argument("--smtp-port", type=int, default=8025)
    p.add_argument("--notify-to", default="ops@localhost")
    p.set_defaults(func=cmd_env)
    p = sub.add_parser("smtp-sink")
    p.add_argument("--port", type=int, default=8025)
    p.add_argument("--maildir", required=True)
    p.set_defaults(func=cmd_smtp_sink)
    p = sub.add_parser("drive")
    p.add_argument("--airflow", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--sandbox", required=True)
    p.add_argument("--orders", type=int, default=24)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--maildir")
    p.add_argument("--trigger", choices=["rest", "events"], default="events",
                   help="events: the sensor DAG starts the runs from the Flow's events; rest: trigger each run")
    p.add_argument("--reconcile", action=argparse.BooleanOptionalAction, default=True,
                   help="after provisioning: inject drift, run reconcile_orders once and check its categories")
    p.set_defaults(func=cmd_drive)
    p = sub.add_parser("traffic")
    p.add_argument("--airflow", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--sandbox", required=True)
    p.add_argument("--pace", choices=sorted(TRAFFIC_PACES), default="slow")
    p.add_argument("--waves", type=int, help="stop after N waves (default: until interrupted)")
    p.set_defaults(func=cmd_traffic)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
