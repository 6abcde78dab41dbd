"""Events -> runs, end to end through the real sensor DAG (dag.test) and the sandbox (TLS gRPC + REST)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from events_env import TOPIC, EventsEnv

from orderflow_sandbox.salesforce.approve import sandbox_client


def _ok(env: EventsEnv, dag_run) -> dict[str, list[str]]:
    states = env.task_states(dag_run)
    assert dag_run.state == "success", states
    return states


def test_n_approvals_produce_exactly_n_provision_runs(events_env: EventsEnv):
    ids = events_env.order_ids[:5]
    assert events_env.approve(ids) == ids

    _ok(events_env, events_env.run_sensor())

    runs = events_env.provision_runs()
    assert sorted(r["conf"]["order_id"] for r in runs.values()) == sorted(ids)
    for run_id, run in runs.items():
        order_id = run["conf"]["order_id"]
        assert run_id == f"order__{order_id}__{order_id}:1"
        assert run["conf"] == {"order_id": order_id, "idem_key": f"{order_id}:1", "source": "event"}
        assert run["logical_date"] is None and run["state"] == "queued"
    checkpoint = events_env.checkpoint()
    assert checkpoint["replay_id"] == events_env.latest_replay_hex()
    assert checkpoint["topic"] == TOPIC and checkpoint["events_seen"] == 5 and checkpoint["updated_at"]


def test_duplicate_event_and_redrain_from_older_checkpoint_create_no_extra_runs(events_env: EventsEnv):
    ids = events_env.order_ids[:4]
    events_env.approve(ids)
    _ok(events_env, events_env.run_sensor())
    first = events_env.provision_runs()
    assert len(first) == 4

    # The same event delivered again (a publisher retry stores a second copy with the same fields).
    events_env.bus.publish(TOPIC, {"OrderId__c": ids[0], "IdemKey__c": f"{ids[0]}:1"})
    # ... and a re-drain from an older checkpoint: back to just after the first event.
    events_env.set_checkpoint({"replay_id": (1).to_bytes(8, "big").hex(), "topic": TOPIC, "events_seen": 1})

    dag_run = events_env.run_sensor()
    _ok(events_env, dag_run)

    assert events_env.provision_runs().keys() == first.keys()
    # 3 re-drained approvals + the duplicate copy (deduped with ids[0]) -> 4 specs, all already there (409).
    started = events_env.xcom(dag_run, "start_event_runs")
    assert started["started"] == [] and sorted(started["existing"]) == sorted(first)
    assert events_env.checkpoint()["replay_id"] == events_env.latest_replay_hex()


def test_malformed_events_are_skipped_and_the_drain_continues(events_env: EventsEnv):
    good = events_env.order_ids[:3]
    events_env.approve(good[:1])
    events_env.bus.publish_raw(TOPIC, b"\x00\xff not avro at all")
    events_env.bus.publish(TOPIC, {"OrderId__c": "001000000000001AAA", "IdemKey__c": "x"})  # an Account id
    events_env.bus.publish(TOPIC, {"OrderId__c": "801'; DROP", "IdemKey__c": "y"})
    events_env.approve(good[1:])

    _ok(events_env, events_env.run_sensor())

    runs = events_env.provision_runs()
    assert sorted(r["conf"]["order_id"] for r in runs.values()) == sorted(good)
    assert events_env.checkpoint()["replay_id"] == events_env.latest_replay_hex()
    assert events_env.checkpoint()["events_seen"] == 6


def test_stream_reset_mid_drain_loses_nothing(events_env: EventsEnv):
    ids = events_env.order_ids[:12]
    events_env.approve(ids)
    events_env.fault("stream_reset", "pubsub.Subscribe", count=3)

    _ok(events_env, events_env.run_sensor())

    assert events_env.stats()["pubsub"]["stream_resets"] == 3  # the trigger's stream, then the drain's twice
    assert sorted(r["conf"]["order_id"] for r in events_env.provision_runs().values()) == sorted(ids)
    assert events_env.checkpoint()["replay_id"] == events_env.latest_replay_hex()


def test_corrupted_replay_id_falls_back_to_earliest(events_env: EventsEnv, caplog):
    ids = events_env.order_ids[:3]
    events_env.approve(ids)
    # A replay id the org never assigned: Pub/Sub answers replayid.corrupted.
    events_env.set_checkpoint({"replay_id": "00000000000fffff", "topic": TOPIC, "events_seen": 7})

    with caplog.at_level("ERROR"):
        _ok(events_env, events_env.run_sensor())

    assert any("REPLAY ID CORRUPTED" in r.getMessage() for r in caplog.records)
    assert sorted(r["conf"]["order_id"] for r in events_env.provision_runs().values()) == sorted(ids)
    checkpoint = events_env.checkpoint()
    assert checkpoint["replay_id"] == events_env.latest_replay_hex() and checkpoint["events_seen"] == 10


def test_sweep_picks_up_stuck_order_and_never_sweeps_an_order_with_a_run_in_flight(events_env: EventsEnv):
    lost, fresh, queued = events_env.order_ids[:3]
    client = sandbox_client(events_env.data_dir)
    # An order whose event was lost: Activating, no event, untouched for 30 min.
    client.update("Order", lost, {"Activation_Status__c": "Activating"})
    # One that became Activating a minute ago: below the threshold.
    client.update("Order", fresh, {"Activation_Status__c": "Activating"})
    events_env.backdate([lost], minutes=30)
    events_env.backdate([fresh], minutes=1)
    # One approved through the Flow whose event run is still queued.
    events_env.approve([queued])

    _ok(events_env, events_env.run_sensor())
    runs = events_env.provision_runs()
    sweep_runs = {k: v for k, v in runs.items() if v["conf"]["source"] == "sweep"}
    assert [v["conf"]["order_id"] for v in sweep_runs.values()] == [lost]
    (sweep_run_id,) = sweep_runs
    assert sweep_run_id.startswith(f"order__{lost}__sweep__")
    assert sweep_runs[sweep_run_id]["conf"] == {"order_id": lost, "idem_key": None, "source": "sweep"}

    # Both runs are queued; now the approved order is stuck too. Neither is swept again.
    events_env.backdate([queued], minutes=30)
    _ok(events_env, events_env.run_sensor())
    assert events_env.provision_runs().keys() == runs.keys()

    # Once the event run is over and the order is still Activating, the sweep takes it.
    _finish_run(next(k for k, v in runs.items() if v["conf"]["order_id"] == queued))
    _ok(events_env, events_env.run_sensor())
    new = set(events_env.provision_runs()) - set(runs)
    assert len(new) == 1 and next(iter(new)).startswith(f"order__{queued}__sweep__")


def _finish_run(run_id: str) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == "provision_order", DagRun.run_id == run_id).one()
        run.state = DagRunState.FAILED


RESTARTED = """
import sys
sys.path.insert(0, {tests!r})
from events_env import EventsEnv
dag_run = EventsEnv.sensor_dag().test()
print("STATE=" + str(dag_run.state))
"""


def test_checkpoint_survives_an_airflow_restart(events_env: EventsEnv):
    ids = events_env.order_ids[:5]
    events_env.approve(ids[:3])
    _ok(events_env, events_env.run_sensor())
    saved = events_env.checkpoint()
    assert saved["events_seen"] == 3

    events_env.approve(ids[3:])
    # A new process (new DagBag, nothing in memory) continues from the Variable.
    code = RESTARTED.format(tests=str(Path(__file__).parent))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ), cwd=str(Path(__file__).resolve().parents[3]))
    assert "STATE=success" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"from CUSTOM after {saved['replay_id']} (checkpoint)" in proc.stdout + proc.stderr

    assert sorted(r["conf"]["order_id"] for r in events_env.provision_runs().values()) == sorted(ids)
    after = events_env.checkpoint()
    assert after["events_seen"] == 5  # 3 + the 2 new ones: nothing before the checkpoint was re-read
    assert after["replay_id"] == events_env.latest_replay_hex()
