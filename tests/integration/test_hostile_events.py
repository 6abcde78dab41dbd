"""Hostile events on ``/event/OrderProvisionRequested__e``: each is logged with its replay id and skipped, the
drain goes on, and the good events around it (in the same batch) still produce their run specs.

Events are published for real over the sandbox's Pub/Sub gRPC API (TLS) and drained with the pipeline's own
PubSubClient. The org's own publishers (the Flow, REST) refuse a missing, empty or over-long ``OrderId__c``, as
Salesforce does (checked below), so such events can only come from another Pub/Sub publisher; the emulator's
Publish stores them, as Salesforce stores payloads without validating them. Only a payload tagged with another
schema id is refused by Publish, so that one is written into the emulator's event store (the bytes a
subscriber then receives), which is the network boundary for a subscriber.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import fastavro
import pytest

from orderflow.events.checkpoint import StartPosition
from orderflow.events.drain import drain
from orderflow.salesforce.pubsub import PubSubClient, pubsub_api_pb2
from orderflow.salesforce.pubsub.client import PublishFailed
from orderflow.salesforce.soql import to_18
from orderflow_sandbox.connections import salesforce_client
from orderflow_sandbox.salesforce.eventbus import EventValidationError
from orderflow_sandbox.server import Sandbox

TOPIC = "/event/OrderProvisionRequested__e"
CREATED_BY = "005000000000001AAA"


@dataclass
class Bus:
    """The running org + Pub/Sub emulator and the pipeline's subscriber/publisher client."""

    sandbox: Sandbox
    client: PubSubClient
    serial: int = 0

    @property
    def store(self):
        return self.sandbox.org.eventbus

    def next_order_id(self) -> str:
        self.serial += 1
        return to_18(f"801{self.serial:012d}")

    def latest_hex(self) -> str:
        return self.store.latest_replay_id(TOPIC).to_bytes(8, "big").hex()

    def approve_like_the_flow(self, order_id: str) -> str:
        """The Flow's event (the org validates and encodes it); its replay id as hex."""
        return self.store.publish(TOPIC, {"OrderId__c": order_id, "IdemKey__c": f"{order_id}:1"}).to_bytes(
            8, "big").hex()

    def publish(self, fields: dict) -> str:
        """Another publisher's event over Pub/Sub Publish (Avro-encoded by the client)."""
        (replay_id,) = self.client.publish(TOPIC, [fields], created_by_id=CREATED_BY)
        return replay_id.hex()

    def publish_bytes(self, payload: bytes) -> str:
        event = pubsub_api_pb2.ProducerEvent(id="hostile-raw", schema_id=self.schema_id, payload=payload)
        (replay_id,) = self.client.publish_raw(TOPIC, [event])
        return replay_id.hex()

    @property
    def schema_id(self) -> str:
        return self.client.get_topic(TOPIC).schema_id

    def encode(self, fields: dict) -> bytes:
        schema = self.client.get_schema(self.schema_id)
        schema.pop("uuid", None)
        record = {"CreatedDate": 1_700_000_000_000, "CreatedById": CREATED_BY, "OrderId__c": None,
                  "IdemKey__c": None, **fields}
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
        return buf.getvalue()


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bus]:
    sandbox = Sandbox(tmp_path_factory.mktemp("hostile-events"), components={"salesforce", "pubsub"})
    endpoints = sandbox.start()
    sf = salesforce_client(endpoints)
    client = PubSubClient(endpoints["salesforce"]["pubsub_endpoint"], sf.get_access_token, sf.instance_url,
                          sf.org_id or "", endpoints["ca_bundle"], backoff_seconds=0.01)
    try:
        yield Bus(sandbox, client)
    finally:
        client.close()
        sandbox.stop()


def _other_schema(bus: Bus) -> str:
    payload = bus.encode({"OrderId__c": bus.next_order_id()})
    event = pubsub_api_pb2.ProducerEvent(id="other-schema", schema_id="SomeOtherEventsSchemaId", payload=payload)
    with pytest.raises(PublishFailed, match="not the topic's schema"):
        bus.client.publish_raw(TOPIC, [event])  # Publish refuses it, as Salesforce does ...
    # ... so it goes straight into the store a subscriber reads from (see the module docstring).
    return bus.store.publish_raw(TOPIC, payload, "SomeOtherEventsSchemaId").to_bytes(8, "big").hex()


# (row id, how the hostile event is published -> its replay id hex, the reason the log must give)
HOSTILE: list[tuple[str, Callable[[Bus], str], str]] = [
    ("undecodable-avro", lambda b: b.publish_bytes(b"\x00\xff not avro at all"), "undecodable payload"),
    ("empty-payload", lambda b: b.publish_bytes(b""), "undecodable payload"),
    ("trailing-bytes", lambda b: b.publish_bytes(b.encode({"OrderId__c": b.next_order_id()}) + b"\x02\x41"),
     "undecodable payload"),
    ("another-schema-id", _other_schema, "undecodable payload: schema 'SomeOtherEventsSchemaId' unavailable"),
    ("order-id-missing", lambda b: b.publish({"IdemKey__c": "k1"}), "OrderId__c is missing"),
    ("order-id-empty", lambda b: b.publish({"OrderId__c": "", "IdemKey__c": "k2"}), "OrderId__c is missing"),
    ("order-id-oversized", lambda b: b.publish({"OrderId__c": "801" + "A" * 100_000}), "OrderId__c is not an Order id"),
    ("order-id-soql-injection", lambda b: b.publish({"OrderId__c": "801' OR Id != '"}),
     "OrderId__c is not an Order id"),
    ("order-id-account-prefix", lambda b: b.publish({"OrderId__c": "001000000000001AAA"}),
     "OrderId__c is not an Order id"),
    ("order-id-cyrillic-o", lambda b: b.publish({"OrderId__c": "80100000000000\u043eAAA"}),
     "OrderId__c is not an Order id"),
    ("order-id-fullwidth-digit", lambda b: b.publish({"OrderId__c": "80100000000000\uff11AAA"}),
     "OrderId__c is not an Order id"),
    ("order-id-trailing-newline", lambda b: b.publish({"OrderId__c": b.next_order_id() + "\n"}),
     "OrderId__c is not an Order id"),
    ("order-id-leading-space", lambda b: b.publish({"OrderId__c": " " + b.next_order_id()}),
     "OrderId__c is not an Order id"),
    ("order-id-wrong-suffix", lambda b: b.publish({"OrderId__c": b.next_order_id()[:15] + "ZZZ"}),
     "OrderId__c has a wrong case-safe suffix"),
]


@pytest.mark.parametrize("publish, reason", [pytest.param(p, r, id=i) for i, p, r in HOSTILE])
def test_hostile_event_is_logged_with_its_replay_id_and_skipped_and_the_batch_goes_on(bus, caplog, publish, reason):
    start = bus.latest_hex()
    first, last = bus.next_order_id(), bus.next_order_id()
    bus.approve_like_the_flow(first)
    bad_replay = publish(bus)
    last_replay = bus.approve_like_the_flow(last)

    with caplog.at_level("WARNING", logger="orderflow.events.drain"):
        result = drain(bus.client, TOPIC, StartPosition("CUSTOM", start), max_events=50, wait_seconds=2)

    assert [s["conf"]["order_id"] for s in result.specs] == [first, last]
    assert (result.events, result.bad, result.checkpoint) == (3, 1, last_replay)
    skipped = [r.getMessage() for r in caplog.records if "skipping bad event" in r.getMessage()]
    assert len(skipped) == 1 and f"replay_id={bad_replay}" in skipped[0] and reason in skipped[0], skipped
    assert len(skipped[0]) < 400, "a huge payload must not be copied into the log"


@pytest.mark.parametrize("idem", ["k" * 81, "k" * 100_000], ids=["81-chars", "100k-chars"])
def test_an_idem_key_longer_than_80_is_logged_and_the_event_still_starts_its_run(bus, caplog, idem):
    start = bus.latest_hex()
    order_id = bus.next_order_id()
    replay = bus.publish({"OrderId__c": order_id, "IdemKey__c": idem})

    with caplog.at_level("WARNING", logger="orderflow.events.drain"):
        result = drain(bus.client, TOPIC, StartPosition("CUSTOM", start), max_events=50, wait_seconds=2)

    (spec,) = result.specs
    assert spec["conf"] == {"order_id": order_id, "idem_key": None, "source": "event"}
    assert spec["trigger_run_id"].startswith(f"order__{order_id}__evt-") and len(spec["trigger_run_id"]) <= 250
    assert result.bad == 0
    warned = [r.getMessage() for r in caplog.records if "IdemKey__c longer than 80" in r.getMessage()]
    assert len(warned) == 1 and replay in warned[0] and idem not in warned[0], warned


@pytest.mark.parametrize("fields, refusal", [
    ({"IdemKey__c": "k"}, "Required fields are missing: [OrderId__c]"),
    ({"OrderId__c": ""}, "Required fields are missing: [OrderId__c]"),
    ({"OrderId__c": "801" + "A" * 16}, "OrderId__c: data value too large (max length=18)"),
    ({"OrderId__c": "801000000000001AAA", "IdemKey__c": "k" * 81}, "IdemKey__c: data value too large"),
])
def test_the_orgs_own_publishers_refuse_what_only_another_pubsub_publisher_can_send(bus, fields, refusal):
    """Why the rows above go through Pub/Sub Publish: the Flow and REST publishing validate like Salesforce."""
    with pytest.raises(EventValidationError) as err:
        bus.store.publish(TOPIC, fields)
    assert refusal in str(err.value)


# ------------------------------------------------------------------ the sensor DAG, one batch of everything

sys.path.insert(0, str(Path(__file__).resolve().parent / "events"))


@pytest.fixture
def sensor_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The event-sensor suite's environment (tests/integration/events), seeded, with Airflow's state reset."""
    from events_env import EventsEnv

    monkeypatch.setenv("ORDERFLOW_SANDBOX_PUBSUB_KEEPALIVE_SECONDS", "0.5")
    # Events are waiting, so the trigger returns at the first one; a roomy timeout only keeps a loaded
    # machine (login + TLS + GetSchema inside the wait) from timing out before it.
    monkeypatch.setenv("ORDERFLOW_EVENT_WAIT_SECONDS", "15")
    env = EventsEnv(tmp_path / "sandbox", monkeypatch)  # the sandbox makes its own CA on start
    env.reset_airflow_state()
    env.start()
    yield env
    env.stop()


def test_a_batch_led_by_hostile_events_still_starts_a_run_for_every_good_event(sensor_env, caplog):
    """The first event after the checkpoint is the trigger's seed: a hostile one there must not stop the drain."""
    sf_endpoints = sensor_env.sandbox.endpoints
    sf = salesforce_client(sf_endpoints)
    client = PubSubClient(sf_endpoints["salesforce"]["pubsub_endpoint"], sf.get_access_token, sf.instance_url,
                          sf.org_id or "", sf_endpoints["ca_bundle"], backoff_seconds=0.01)
    hostile = Bus(sensor_env.sandbox, client, serial=900)
    good = sensor_env.order_ids[:4]
    try:
        hostile.publish_bytes(b"\x00\xff not avro at all")  # the seed
        sensor_env.approve(good[:2])
        for _name, publish, _reason in HOSTILE[1:]:
            publish(hostile)
        hostile.publish({"OrderId__c": good[2], "IdemKey__c": "k" * 81})
        sensor_env.approve(good[3:])
    finally:
        client.close()

    with caplog.at_level("WARNING"):
        dag_run = sensor_env.run_sensor()

    assert dag_run.state == "success", sensor_env.task_states(dag_run)
    runs = sensor_env.provision_runs()
    assert sorted(r["conf"]["order_id"] for r in runs.values()) == sorted(good)
    assert sensor_env.checkpoint()["replay_id"] == sensor_env.latest_replay_hex()
    skipped = [r.getMessage() for r in caplog.records if "skipping bad event" in r.getMessage()]
    assert len(skipped) == len(HOSTILE), skipped
