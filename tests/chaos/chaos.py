"""The chaos suite (``make chaos``): a running system through faults on both systems, real SIGKILLs and restarts.

``scripts/chaos.sh`` starts the sandbox and Airflow through ``scripts/demo.sh`` (``DEMO_CHAOS=1``), which
runs this driver once the UI answers. It approves ``--orders`` orders in waves; before each wave it
injects one fault (or kills one process) and logs the moment (seconds into the run, the sensor's phase,
provisioning runs in flight):

* WHMCS: 5xx, HTML with status 200, an AddOrder that WHMCS commits only after the client gave up on it
  and after the task's retry has looked for it (see ``HOLD_MS``), dropped connections, ``commit_then_drop``
  on AddOrder and on AcceptOrder, a module error that clears after two tries.
* Salesforce: 503, ``REQUEST_LIMIT_EXCEEDED``, ``UNABLE_TO_LOCK_ROW``, every access token revoked
  (``INVALID_SESSION_ID``), a write-back collection whose last record fails (the others roll back).
* Pub/Sub: stream resets mid-drain, the checkpoint set to a replay id the bus never assigned
  (``replayid.corrupted``: the sensor falls back to EARLIEST), lost events (only the sweep finds them).
* A real ``SIGKILL`` of the task process (``airflow worker -- <ti id>``) while
  ``find_or_create_whmcs_order`` waits for the answer of an AddOrder WHMCS is still working on (fault
  ``latency``: it commits at the end of the hold, after the retry has looked); on the distributed shape
  also of the Celery worker's process group in the same window, then the worker is started again.
* The scheduler, the triggerer and the API server ``SIGKILL``ed mid-burst and started again (distributed:
  each component's process group, one at a time; embedded: the three children of ``airflow standalone``
  with their process trees and the task processes' own execution API server at once, then both are
  started again, since the standalone does not restart its children).

Then it waits for every order to settle, runs a dry-run reconciliation (its report is scanned too),
scans everything the run left for secrets (``secret_scan.py``) and prints one ``CHAOS:`` line. Exit 1
on any lost order, duplicate WHMCS order, unexpected outcome, secret found, or fault that never fired.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import signal
import sqlite3
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "soak"))

from harness import (  # noqa: E402
    PROVISION_DAG,
    SENSOR_DAG,
    Airflow,
    aim_at,
    duplicate_whmcs_orders,
    say_problems,
    sayer,
)
from secret_scan import scan_run  # noqa: E402

from orderflow.events import CHECKPOINT_VARIABLE  # noqa: E402
from orderflow.order_marker import marked_order_ids  # noqa: E402
from orderflow_sandbox import traffic as traffic_module  # noqa: E402
from orderflow_sandbox.admin import admin_call  # noqa: E402
from orderflow_sandbox.demo import order_states, settled_as_expected  # noqa: E402
from orderflow_sandbox.salesforce.approve import sandbox_client  # noqa: E402
from orderflow_sandbox.seed import ACTIVATED  # noqa: E402
from orderflow_sandbox.server import read_endpoints  # noqa: E402
from orderflow_sandbox.traffic import ApprovalTraffic, Wave  # noqa: E402

say = sayer("chaos")
FIND_OR_CREATE = "find_or_create_whmcs_order"
PROFILES = ("whmcs", "salesforce", "pubsub", "kill", "restart")
# How long WHMCS works on a held AddOrder before it commits it (fault ``latency``: the hold comes *before*
# the commit). It must outlast the client's 30 s timeout plus the retry that follows (ORDERFLOW_RETRY_DELAY_SECONDS
# 5 s, or the 30 s heartbeat timeout after a SIGKILL, plus scheduling): only then does the retry's find-before-create
# see no order while WHMCS is about to commit one, the window in which a pipeline without the AddOrder settle
# window (docs/architecture.md, "Idempotency") sent a second AddOrder and left two WHMCS orders. The suite's old
# holds missed it: 31 s committed before the retry came (retry delay 5 s), and commit_then_latency committed at
# once. 90 s stays below PHP's usual max_execution_time (120 s, what a real WHMCS can take) and inside the
# 180 s settle window, so the pipeline must wait for this order rather than add another.
HOLD_MS = 90_000


def approve_one_by_one(data_dir: Path, order_ids: list[str]) -> list[str]:
    """Approve each order with its own sObject PATCH (the Flow runs as for an agent's click).

    The suite's approvals must not consume the faults it arms on the collections endpoint (the
    pipeline's write-back), so they do not go through ``/composite/sobjects`` like ``approve_orders``.
    """
    client = sandbox_client(data_dir)
    for order_id in order_ids:
        client.update("Order", order_id, {"Status": "Approved"})
    return list(order_ids)


traffic_module.approve_orders = approve_one_by_one  # ApprovalTraffic approves through it


@dataclass
class Injection:
    """One fault or kill the suite applied: what, when (s into the run), at which moment, and whether it bit."""

    name: str
    at: float
    moment: str
    fired: bool | None = None  # None until checked
    detail: str = ""


@dataclass
class Run:
    args: argparse.Namespace
    airflow: Airflow
    data_dir: Path
    endpoints: dict
    traffic: ApprovalTraffic
    started: float = field(default_factory=time.time)
    waves: list[Wave] = field(default_factory=list)
    injections: list[Injection] = field(default_factory=list)
    driver_sf_calls: int = 0  # the suite's own Salesforce REST calls (approvals, state polls), not the pipeline's
    approved: int = 0
    corrupt: Injection | None = None  # the replayid.corrupted injection, judged from the sensor's logs
    corrupter: threading.Thread | None = None

    # -------------------------------------------------------------- moments and waves

    def moment(self) -> str:
        running = self.airflow.get(f"/api/v2/dags/{PROVISION_DAG}/dagRuns?state=running&limit=1")
        in_flight = running["total_entries"] if running else "?"
        return f"sensor {self.airflow.sensor_phase()}, {in_flight} provisioning runs in flight"

    def inject(self, name: str, detail: str = "") -> Injection:
        inj = Injection(name, time.time() - self.started, self.moment(), detail=detail)
        self.injections.append(inj)
        say(f"FAULT {name} at +{inj.at:.0f}s ({inj.moment}){': ' + detail if detail else ''}")
        return inj

    def wave(self, size: int | None = None, lose: int = 0, bad: int = 0) -> Wave | None:
        left = self.args.orders - self.approved
        size = min(left, size or self.args.wave_size)
        if size <= 0:
            return None
        lose, bad = min(lose, size), min(bad, max(0, size - lose))
        wave = self.traffic.approve(size, lose=lose, bad=bad)
        self.waves.append(wave)
        self.approved += len(wave.order_ids)
        self.driver_sf_calls += len(wave.order_ids)
        say(f"approved {len(wave.order_ids)} ({self.approved}/{self.args.orders}; {len(wave.lost)} without event, "
            f"{len(wave.bad_apples)} bad apple(s))")
        return wave

    # -------------------------------------------------------------- faults through the sandbox's admin API

    def fault(self, system: str, kind: str, target: str, count: int = 1, **extra: object) -> Injection:
        spec = {"kind": kind, "target": target, "count": count, **extra}
        inj = self.inject(f"{system} {kind} on {target}" + (f" x{count}" if count > 1 else ""),
                          ", ".join(f"{k}={v}" for k, v in extra.items()))
        admin_call(self.data_dir, system, "POST", "/faults", spec)
        return inj

    def armed(self, system: str) -> list[dict]:
        return admin_call(self.data_dir, system, "GET", "/faults") or []

    def wait_fired(self, system: str, kind: str, target: str, timeout: float) -> bool:
        """Until no rule of ``kind`` on ``target`` is left armed (a rule is dropped once it fired ``count`` times)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not any(r["kind"] == kind and r["target"] == target for r in self.armed(system)):
                return True
            time.sleep(0.3)
        return False


# ------------------------------------------------------------------ processes


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) for every process we can read."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError):
            continue
        table[int(entry.name)] = (ppid, cmdline)
    return table


def _tree(root: int, table: dict[int, tuple[int, str]]) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += [child for child, (ppid, _) in table.items() if ppid == pid]
    return out


def _sigkill(pids: list[int]) -> int:
    killed = 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed


class Components:
    """SIGKILL and restart Airflow components of either shape (pid files of scripts/airflow-components.sh)."""

    def __init__(self, shape: str, airflow: Airflow) -> None:
        self.shape, self.airflow = shape, airflow
        self.run_dir = Path(os.environ["AIRFLOW_HOME"]) / "run"

    def pgid(self, name: str) -> int:
        return int((self.run_dir / f"{name}.pid").read_text().strip())

    def kill_group(self, name: str) -> str:
        """SIGKILL one component's process group (scripts/airflow-components.sh started it in its own)."""
        pgid = self.pgid(name)
        os.killpg(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # gone, or airflow-components.sh start thinks it is alive
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        return f"{name} (process group {pgid})"

    def kill(self, names: list[str]) -> str:
        if self.shape == "distributed":
            return "SIGKILL " + ", ".join(self.kill_group(name) for name in names)
        standalone = self.pgid("airflow")
        table = _proc_table()
        done = []
        for name in names:
            if name == "execution-api":  # the embedded shape's API server for task processes, beside standalone
                done.append(self.kill_group(name))
                continue
            # ``airflow api-server`` renames itself ``airflow api_server -- host:... port:...``
            titles = (f"airflow {name}", f"airflow {name.replace('-', '_')}")
            children = [pid for pid, (ppid, cmd) in table.items()
                        if ppid == standalone and any(t in cmd for t in titles)]
            if not children:
                raise SystemExit(f"chaos: no 'airflow {name}' child of airflow standalone (pid {standalone})")
            pids = [p for child in children for p in _tree(child, table)]
            done.append(f"{name} (pid {children[0]}, {_sigkill(pids)} processes)")
        return "SIGKILL " + ", ".join(done)

    def restart(self) -> float:
        """Start what is dead again; embedded: the standalone (TERM to what is left of it, then start)."""
        t0 = time.time()
        if self.shape != "distributed":
            self.airflow.components("stop")
        self.airflow.components("start")
        self.airflow.wait_healthy()
        return time.time() - t0


def task_pid(ti_id: str) -> int | None:
    """The pid of the task process (``airflow worker -- <ti id>``, the Task SDK's process title)."""
    for pid, (_, cmd) in _proc_table().items():
        if cmd.startswith(f"airflow worker -- {ti_id}"):
            return pid
    return None


# ------------------------------------------------------------------ the scenarios


def running_find_or_create(run: Run) -> list[tuple[str, dict]]:
    """(Salesforce order id, TI) of every running find_or_create TI."""
    tis = run.airflow.get(f"/api/v2/dags/{PROVISION_DAG}/dagRuns/~/taskInstances?task_id={FIND_OR_CREATE}"
                          "&state=running&limit=100") or {"task_instances": []}
    running = []
    for ti in tis["task_instances"]:
        detail = run.airflow.get(f"/api/v2/dags/{PROVISION_DAG}/dagRuns/{quote(ti['dag_run_id'], safe='')}") or {}
        order_id = (detail.get("conf") or {}).get("order_id", "")
        if order_id:
            running.append((order_id, ti))
    return running


def held_add_order(run: Run, inj: Injection, busy_before: set[str]) -> tuple[str, dict] | None:
    """(Salesforce order id, running find_or_create TI) whose AddOrder WHMCS holds and has not committed yet.

    The held request is the one whose order stays without a WHMCS order while the other AddOrders of the
    moment commit; a TI that has not reached AddOrder yet gets its order within a second or two, so the
    search goes on until exactly one is left. Orders already in find_or_create when the fault was armed
    (``busy_before``: one still waiting out an earlier hold, say) are not it.
    """
    if not run.wait_fired("whmcs", "latency", "AddOrder", timeout=90):
        inj.detail += "; AddOrder never came"
        return None
    deadline = time.time() + min(30.0, HOLD_MS / 3000)  # well before the held AddOrder commits
    candidates: list[tuple[str, dict]] = []
    while time.time() < deadline:
        time.sleep(1.5)  # the other AddOrders of the moment finish; the held one keeps its task running
        db = sqlite3.connect(f"file:{run.data_dir / 'whmcs.db'}?mode=ro", uri=True, timeout=30)
        try:
            committed = {sf_id for (notes,) in db.execute("SELECT notes FROM orders") for sf_id in marked_order_ids(notes)}
        finally:
            db.close()
        candidates = [(order_id, ti) for order_id, ti in running_find_or_create(run) if order_id not in busy_before
                      and not any(sf_id.startswith(order_id[:15]) for sf_id in committed)]
        if len(candidates) == 1:
            return candidates[0]
    inj.detail += f"; {len(candidates)} running {FIND_OR_CREATE} without a WHMCS order, not one"
    return None


def kill_task_in_add_order_window(run: Run, components: Components, also_worker: bool) -> None:
    name = "SIGKILL celery worker" if also_worker else "SIGKILL task process"
    inj = run.inject(f"{name} while {FIND_OR_CREATE} waits for an AddOrder WHMCS commits late",
                     f"WHMCS latency on AddOrder: committed after {HOLD_MS} ms")
    # The kill comes before the commit, and the retry looks before it too (HOLD_MS): with the file lock
    # released by the process's death, only the AddOrder stamp keeps the retry from adding a second order.
    run.wait_fired("whmcs", "latency", "AddOrder", timeout=60)  # an earlier hold still armed would add to this one
    # Not the order of an earlier kill either: its retry waits out the settle window without a WHMCS order
    # and may only be back in find_or_create after this fault was armed (seen on the distributed shape).
    earlier = getattr(run, "killed_orders", set())
    busy_before = {order_id for order_id, _ in running_find_or_create(run)} | earlier
    admin_call(run.data_dir, "whmcs", "POST", "/faults",
               {"kind": "latency", "target": "AddOrder", "count": 1, "latency_ms": HOLD_MS})
    run.wave()
    found = held_add_order(run, inj, busy_before)
    if found is None:
        inj.fired = False
        say(f"FAULT {inj.name}: NOT APPLIED ({inj.detail})")
        return
    order_id, ti = found
    run.killed_orders = earlier | {order_id}
    if also_worker:
        inj.detail = f"order {order_id}: " + components.kill(["celery-worker"])
        say(f"{inj.detail}; starting the worker again")
        components.restart()
    else:
        pid = task_pid(ti["id"])
        if pid is None:
            inj.fired = False
            say(f"FAULT {inj.name}: task process of {ti['id']} not found")
            return
        os.kill(pid, signal.SIGKILL)
        inj.detail = f"order {order_id}: SIGKILL pid {pid} (airflow worker -- {ti['id']}, try {ti.get('try_number')})"
        say(inj.detail)
    inj.fired = True


def kill_components(run: Run, components: Components) -> None:
    """The scheduler, triggerer and API server SIGKILLed mid-burst, a wave approved while down, started again."""
    groups = [["scheduler"], ["triggerer"], ["api-server"]] if components.shape == "distributed" else [
        ["scheduler", "triggerer", "api-server", "execution-api"]]
    for names in groups:
        run.wave()
        time.sleep(2)  # mid-burst: the wave's runs are being created and started
        inj = run.inject("SIGKILL " + " + ".join(names))
        inj.detail = components.kill(names)
        say(inj.detail)
        run.wave()  # approved while it is down
        time.sleep(5)  # down for a while: runs pile up, heartbeats go missing
        took = components.restart()
        inj.fired = True
        inj.detail += f"; back after {took:.0f}s"
        say(f"{' + '.join(names)} started again ({took:.0f}s)")


def corrupt_checkpoint(run: Run, seconds: float = 180.0) -> Injection:
    """Set the sensor's checkpoint to a replay id the bus never assigned: Subscribe answers replayid.corrupted.

    The sensor reads the Variable when a run starts and each drain writes it, so a background thread
    writes the corrupted id again whenever a drain overwrote it, until the sensor logged the fallback
    to EARLIEST (or ``seconds`` passed).
    """
    bad = (2**62 + random.randrange(2**20)).to_bytes(8, "big").hex()
    inj = run.inject("pubsub replayid.corrupted", f"Variable {CHECKPOINT_VARIABLE} set to replay id {bad}, never assigned")
    airflow = Airflow(run.airflow.base_url, run.airflow.user, run.airflow.password)  # its own session
    home = Path(os.environ["AIRFLOW_HOME"])

    def keep_corrupting() -> None:
        deadline = time.time() + seconds
        writes = 0
        while time.time() < deadline and not corrupted_seen(home):
            current = airflow.get(f"/api/v2/variables/{CHECKPOINT_VARIABLE}")
            value = json.loads(current["value"]) if current else {"topic": "/event/OrderProvisionRequested__e"}
            if value.get("replay_id") != bad:
                value["replay_id"] = bad
                body = {"key": CHECKPOINT_VARIABLE, "value": json.dumps(value, sort_keys=True), "description": None}
                resp = airflow.send("PATCH", f"/api/v2/variables/{CHECKPOINT_VARIABLE}", json=body)
                if resp is not None and resp.status_code == 404:
                    airflow.send("POST", "/api/v2/variables", json=body)
                writes += 1
            time.sleep(1)
        inj.fired = corrupted_seen(home)
        inj.detail += f"; written {writes}x; sensor fell back to EARLIEST: {inj.fired}"

    run.corrupter = threading.Thread(target=keep_corrupting, name="corrupt-checkpoint", daemon=True)
    run.corrupter.start()
    return inj


def corrupted_seen(airflow_home: Path) -> bool:
    """Whether the sensor logged the corrupted-replay-id fallback (its task logs carry the trigger's lines)."""
    needle = b"REPLAY ID CORRUPTED"
    for path in (airflow_home / "logs" / f"dag_id={SENSOR_DAG}").rglob("*.log"):
        try:
            if needle in path.read_bytes():
                return True
        except OSError:
            continue
    return False


def burst(run: Run, components: Components) -> None:
    """The fault schedule: each fault (or kill) right before a wave, so it lands on live traffic."""
    gap = run.args.gap_seconds
    step = 0

    def pause() -> None:
        nonlocal step
        step += 1
        time.sleep(gap)

    profile = set(run.args.faults)
    run.wave()
    pause()
    if "whmcs" in profile:
        whmcs_faults(run, pause)
    if "salesforce" in profile:
        salesforce_faults(run, pause)
    if "pubsub" in profile:
        pubsub_faults(run, pause)
    if "kill" in profile:
        kill_task_in_add_order_window(run, components, also_worker=False)
        pause()
        if components.shape == "distributed":
            kill_task_in_add_order_window(run, components, also_worker=True)
            pause()
    if "restart" in profile:
        kill_components(run, components)
    # The rest of the orders, a wave per gap, a bad apple now and then
    while run.approved < run.args.orders:
        run.wave(bad=1 if step % 3 == 0 else 0)
        pause()


def whmcs_faults(run: Run, pause) -> None:
    """Transport and application faults, each on the action the pipeline calls next."""
    run.fault("whmcs", "http_503", "GetPayMethods")
    run.fault("whmcs", "http_500", "AcceptOrder")
    run.wave(bad=1)
    pause()
    run.fault("whmcs", "html_200", "GetOrders", count=2)
    run.fault("whmcs", "drop", "GetPayMethods", count=2)
    run.wave()
    pause()
    run.fault("whmcs", "commit_then_drop", "AddOrder")
    run.wave()
    pause()
    run.fault("whmcs", "commit_then_drop", "AcceptOrder")
    # Committed after the client's 30 s timeout *and* after the retry's lookup (HOLD_MS), not just past the timeout:
    # a 31 s hold committed before the 5 s retry delay was over, so the old pipeline's retry found the order.
    run.fault("whmcs", "latency", "AddOrder", latency_ms=HOLD_MS)
    run.wave()
    pause()
    run.fault("whmcs", "module_error", "AcceptOrder", count=2)
    run.wave(bad=1)
    pause()


def salesforce_faults(run: Run, pause) -> None:
    run.fault("salesforce", "http_503", "query", count=2)
    run.fault("salesforce", "request_limit", "query")
    run.wave()
    pause()
    run.fault("salesforce", "unable_to_lock_row", "collections")  # the write-back's first record (the Order)
    run.wave()
    pause()
    run.fault("salesforce", "lock_last_record", "collections")  # one failed item, the rest rolled back
    run.wave()
    pause()
    inj = run.inject("salesforce INVALID_SESSION_ID: every access token revoked")
    inj.detail = f"{admin_call(run.data_dir, 'salesforce', 'DELETE', '/tokens')['revoked']} tokens revoked"
    inj.fired = True
    run.wave()
    pause()


def pubsub_faults(run: Run, pause) -> None:
    aim_at(run.airflow, "waiting", patience=60)
    run.fault("salesforce", "stream_reset", "pubsub.Subscribe", count=2)
    run.wave(size=max(run.args.wave_size, 4))
    pause()
    inj = run.inject("pubsub lost events (the Flow publishes nothing)")
    wave = run.wave(lose=2)
    inj.fired = bool(wave and wave.lost)
    inj.detail = ", ".join(wave.lost) if wave else ""
    pause()
    run.corrupt = corrupt_checkpoint(run)
    run.wave()
    pause()


def settle(run: Run) -> dict[str, dict]:
    ids = sorted({oid for wave in run.waves for oid in wave.order_ids})
    deadline = time.time() + run.args.settle_minutes * 60
    last = -1
    while True:
        states = order_states(run.endpoints, ids)
        run.driver_sf_calls += math.ceil(len(ids) / 200)
        pending = [oid for oid in ids if (states.get(oid) or {}).get("Activation_Status__c") not in ("Activated", "Failed")]
        if not pending or time.time() > deadline:
            return states
        if len(pending) != last:
            say(f"{len(ids) - len(pending)}/{len(ids)} settled; waiting for {len(pending)}")
            last = len(pending)
        time.sleep(5)


def reconcile(run: Run) -> str:
    """A dry-run reconciliation after the chaos: its summary (and its report folder gets scanned)."""
    run_id = f"chaos__{int(time.time())}"
    body = {"dag_run_id": run_id, "logical_date": None, "conf": {"dry_run": True}}
    resp = run.airflow.send("POST", "/api/v2/dags/reconcile_orders/dagRuns", json=body)
    if resp is None or resp.status_code not in (200, 201):
        return f"not triggered ({resp.status_code if resp is not None else 'no answer'})"
    deadline = time.time() + run.args.reconcile_minutes * 60
    while time.time() < deadline:
        state = (run.airflow.get(f"/api/v2/dags/reconcile_orders/dagRuns/{run_id}") or {}).get("state")
        if state in ("success", "failed"):
            return state
        time.sleep(5)
    return "unfinished"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests/chaos/chaos.py", description=__doc__.splitlines()[0])
    parser.add_argument("--airflow", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--sandbox", required=True)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--shape", choices=("embedded", "distributed"), default="embedded")
    parser.add_argument("--wave-size", type=int, default=0, help="orders per wave (default orders/24, at least 1)")
    parser.add_argument("--gap-seconds", type=float, default=6.0, help="pause between waves")
    parser.add_argument("--settle-minutes", type=float, default=float(os.environ.get("CHAOS_SETTLE_MINUTES", "0")),
                        help="how long the last orders may take after the last wave (CHAOS_SETTLE_MINUTES; "
                             "default 8 min plus 1 min per 25 orders)")
    parser.add_argument("--reconcile-minutes", type=float, default=3.0, help="0: no reconciliation afterwards")
    parser.add_argument("--reports", default="", help="the reports folder to scan (ORDERFLOW_REPORTS_URL's path)")
    parser.add_argument("--seed", type=int, default=1212)
    parser.add_argument("--faults", type=lambda v: [f.strip() for f in v.split(",") if f.strip()],
                        default=list(PROFILES), help=f"comma-separated subset of {','.join(PROFILES)}")
    args = parser.parse_args(argv)
    # ~24 waves: every fault and kill of the schedule lands on fresh approvals, the rest follow
    args.wave_size = args.wave_size or max(1, args.orders // 24)
    # The backlog after the last wave grows with the orders: on 2 cores the embedded default settles about
    # 20 orders a minute under the faults, so 200 orders get 16 minutes, 50 orders 10 (a deadline, not a wait).
    # The distributed shape settled 200 orders 8 min after the last wave on an idle machine (752 s in all).
    args.settle_minutes = args.settle_minutes or 8 + args.orders / 25
    unknown = set(args.faults) - set(PROFILES)
    if unknown:
        parser.error(f"--faults: unknown {', '.join(sorted(unknown))}; choose from {', '.join(PROFILES)}")
    logging.basicConfig(level=logging.WARNING)
    random.seed(args.seed)

    data_dir = Path(args.sandbox)
    airflow = Airflow(args.airflow, args.user, args.password)
    airflow.ready((PROVISION_DAG, SENSOR_DAG))
    run = Run(args, airflow, data_dir, read_endpoints(data_dir),
              ApprovalTraffic(data_dir, rng_seed=args.seed, reserve=max(150, args.orders + 50)))
    components = Components(args.shape, airflow)
    sf0 = admin_call(data_dir, "salesforce", "GET", "/stats")
    wh0 = admin_call(data_dir, "whmcs", "GET", "/stats")
    say(f"{args.orders} orders in waves of {args.wave_size} on the {args.shape} shape; faults and kills follow")

    burst(run, components)
    say(f"all {run.approved} approved at +{time.time() - run.started:.0f}s; waiting for them to settle")
    states = settle(run)
    sf1 = admin_call(data_dir, "salesforce", "GET", "/stats")
    wh1 = admin_call(data_dir, "whmcs", "GET", "/stats")

    # -- did every fault bite?
    leftover = {(s, r["kind"], r["target"]) for s in ("whmcs", "salesforce") for r in run.armed(s) if not r["fired"]}
    for inj in run.injections:
        if inj.fired is None:
            inj.fired = not any(f"{system} {kind} on {target}" in inj.name for system, kind, target in leftover)
    if run.corrupter is not None:
        run.corrupter.join(timeout=200)
    not_fired = [inj for inj in run.injections if not inj.fired]

    recon = reconcile(run) if args.reconcile_minutes > 0 else "skipped"
    duplicates = duplicate_whmcs_orders(run.endpoints)
    scan = scan_run(data_dir, os.environ["AIRFLOW_HOME"], os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"),
                    reports=[args.reports] if args.reports else [])

    # -- figures
    expected = {oid: outcome for wave in run.waves for oid, outcome in wave.expected.items()}
    ids = sorted(expected)
    status = {oid: (states.get(oid) or {}).get("Activation_Status__c") for oid in ids}
    lost = [oid for oid in ids if status[oid] not in ("Activated", "Failed")]
    unexpected = [oid for oid in ids if oid not in lost and not settled_as_expected(expected[oid], states.get(oid))]
    activated = sum(status[oid] == "Activated" for oid in ids)
    failed = Counter(states[oid]["Activation_Error_Code__c"] for oid in ids if status[oid] == "Failed")
    failed_expected = Counter(code for code in expected.values() if code != ACTIVATED)
    failed_text = ", ".join(f"{c} {failed.get(c, 0)}/{n}" for c, n in sorted(failed_expected.items())) or "none"
    extra = sorted(set(failed) - set(failed_expected))
    if extra:
        failed_text += ", unexpected: " + ", ".join(f"{c} {failed[c]}" for c in extra)
    n = max(1, len(ids))
    sf_calls = sf1["rest_total"] - sf0["rest_total"] - run.driver_sf_calls
    logins = sf1["logins"] - sf0["logins"]
    wh_calls = sum(wh1.values()) - sum(wh0.values())
    line = (
        f"approved {len(ids)} | Activated {activated}/{sum(v == ACTIVATED for v in expected.values())} | "
        f"Failed by code: {failed_text} | lost {len(lost)} | unexpected {len(unexpected)} | "
        f"duplicate WHMCS orders {len(duplicates)} | Salesforce calls/order {sf_calls / n:.2f} "
        f"(logins {logins}) | WHMCS calls/order {wh_calls / n:.2f} | "
        f"faults fired {len(run.injections) - len(not_fired)}/{len(run.injections)} | "
        f"secrets found {len(scan.hits)} | reconcile {recon} | {args.shape}, {time.time() - run.started:.0f}s"
    )
    print("\nCHAOS: " + line, flush=True)
    for inj in run.injections:
        say(f"  +{inj.at:5.0f}s {'fired' if inj.fired else 'NOT FIRED'}: {inj.name} [{inj.moment}] {inj.detail}")
    say_problems(say, expected, states, lost, unexpected, duplicates)
    for hit in scan.hits:
        say(f"SECRET FOUND: {hit.secret} in {hit.place}")
    say(f"secret scan: {scan.summary()}; skipped: {', '.join(scan.skipped) or 'nothing'}")
    report = {"line": line, "lost": lost, "unexpected": unexpected, "duplicates": duplicates,
              "secrets": [h.__dict__ for h in scan.hits], "failed": dict(failed),
              "injections": [inj.__dict__ for inj in run.injections],
              "salesforce_stats": {"before": sf0, "after": sf1, "driver_calls": run.driver_sf_calls},
              "whmcs_stats": {"before": wh0, "after": wh1}}
    (data_dir / "chaos_result.json").write_text(json.dumps(report, indent=2, default=str))
    ok = not lost and not duplicates and not unexpected and not scan.hits and not not_fired
    say("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
