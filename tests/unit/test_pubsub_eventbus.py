"""The sandbox event bus: schema from the SFDX metadata, validation, replay ids, retention."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import time
from pathlib import Path

import fastavro
import pytest
from fastavro.schema import to_parsing_canonical_form

from orderflow_sandbox.salesforce.eventbus import (
    EventBus,
    EventValidationError,
    UnknownTopic,
    load_event_topics,
    metadata_objects_dir,
    replay_id_bytes,
    replay_id_int,
)

TOPIC = "/event/OrderProvisionRequested__e"
ORDER_ID = "801000000000001AAA"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bus(tmp_path: Path, clock: Clock):
    bus = EventBus(tmp_path, retention_hours=72, clock=clock)
    yield bus
    bus.close()


def test_schema_is_built_from_the_repo_metadata_in_the_pub_sub_shape() -> None:
    topics = load_event_topics()
    topic = topics[TOPIC]
    assert topic.schema["name"] == "OrderProvisionRequested__e"
    assert topic.schema["namespace"] == "com.sforce.eventbus"
    fields = {f["name"]: f for f in topic.schema["fields"]}
    assert [f["name"] for f in topic.schema["fields"]][:2] == ["CreatedDate", "CreatedById"]
    assert fields["CreatedDate"]["type"] == "long" and fields["CreatedById"]["type"] == "string"
    assert fields["OrderId__c"] == {"name": "OrderId__c", "type": ["null", "string"], "default": None}
    assert fields["IdemKey__c"]["type"] == ["null", "string"]
    required = {f.name: (f.required, f.length) for f in topic.fields}
    assert required == {"OrderId__c": (True, 18), "IdemKey__c": (False, 80)}
    # schema id: MD5 of the normalized schema, base64url without padding (22 chars)
    canonical = to_parsing_canonical_form(fastavro.parse_schema(topic.schema))
    expected = base64.urlsafe_b64encode(hashlib.md5(canonical.encode()).digest()).decode().rstrip("=")
    assert topic.schema_id == expected and len(expected) == 22
    assert load_event_topics()[TOPIC].schema_id == topic.schema_id  # stable


def test_metadata_dir_override_and_field_types(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fields = tmp_path / "main" / "default" / "objects" / "Gadget__e" / "fields"
    fields.mkdir(parents=True)
    for name, ftype in (("Count__c", "Number"), ("Flag__c", "Checkbox"), ("Note__c", "LongTextArea")):
        (fields / f"{name}.field-meta.xml").write_text(
            '<CustomField xmlns="http://soap.sforce.com/2006/04/metadata">'
            f"<fullName>{name}</fullName><type>{ftype}</type></CustomField>")
    monkeypatch.setenv("ORDERFLOW_SF_METADATA_DIR", str(tmp_path))
    assert metadata_objects_dir() == tmp_path / "main" / "default" / "objects"
    topic = load_event_topics()["/event/Gadget__e"]
    types = {f["name"]: f["type"] for f in topic.schema["fields"]}
    assert types == {"CreatedDate": "long", "CreatedById": "string", "Count__c": ["null", "double"],
                     "Flag__c": "boolean", "Note__c": ["null", "string"]}
    monkeypatch.setenv("ORDERFLOW_SF_METADATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        metadata_objects_dir()


def test_publish_validates_stamps_and_avro_encodes(bus: EventBus, clock: Clock) -> None:
    replay_id = bus.publish("OrderProvisionRequested__e", {"OrderId__c": ORDER_ID, "IdemKey__c": f"{ORDER_ID}:1"},
                            created_by_id="005000000000042AAA")
    [stored] = bus.read_after(TOPIC, None, 10)
    assert stored.replay_id == replay_id and stored.replay_id_bytes == replay_id_bytes(replay_id)
    assert stored.schema_id == bus.topic(TOPIC).schema_id
    record = fastavro.schemaless_reader(io.BytesIO(stored.payload), bus.topic(TOPIC).schema, None)
    assert record == {"CreatedDate": int(clock.now * 1000), "CreatedById": "005000000000042AAA",
                      "IdemKey__c": f"{ORDER_ID}:1", "OrderId__c": ORDER_ID}

    with pytest.raises(EventValidationError, match="Required fields are missing: \\[OrderId__c\\]"):
        bus.publish(TOPIC, {"IdemKey__c": "x"})
    with pytest.raises(EventValidationError, match="No such column 'Bogus__c'"):
        bus.publish(TOPIC, {"OrderId__c": ORDER_ID, "Bogus__c": 1})
    with pytest.raises(EventValidationError, match="too large"):
        bus.publish(TOPIC, {"OrderId__c": ORDER_ID, "IdemKey__c": "x" * 81})
    with pytest.raises(UnknownTopic):
        bus.publish("/event/Nope__e", {})
    assert bus.count(TOPIC) == 1


def test_replay_ids_are_8_byte_big_endian_and_monotonic(bus: EventBus) -> None:
    ids = [bus.publish(TOPIC, {"OrderId__c": ORDER_ID}) for _ in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert replay_id_bytes(258) == b"\x00\x00\x00\x00\x00\x00\x01\x02"
    assert replay_id_int(replay_id_bytes(ids[-1])) == ids[-1]
    with pytest.raises(ValueError):
        replay_id_int(b"\x01")
    assert [e.replay_id for e in bus.read_after(TOPIC, ids[0], 10)] == ids[1:]
    assert [e.replay_id for e in bus.read_after(TOPIC, None, 2)] == ids[:2]
    assert bus.latest_replay_id(TOPIC) == ids[-1] and bus.earliest_replay_id(TOPIC) == ids[0]


def test_retention_hides_old_events_and_makes_their_ids_invalid(bus: EventBus, clock: Clock) -> None:
    assert bus.is_valid_position(TOPIC, 0)  # nothing expired yet: 0 is the start of the stream
    old = [bus.publish(TOPIC, {"OrderId__c": ORDER_ID}) for _ in range(2)]
    clock.now += 71 * 3600
    new = bus.publish(TOPIC, {"OrderId__c": ORDER_ID})
    assert [e.replay_id for e in bus.read_after(TOPIC, None, 10)] == [*old, new]

    clock.now += 2 * 3600  # the first two are now 73 h old
    assert [e.replay_id for e in bus.read_after(TOPIC, None, 10)] == [new]
    assert bus.earliest_replay_id(TOPIC) == new
    assert not bus.is_valid_position(TOPIC, old[0])
    assert not bus.is_valid_position(TOPIC, old[1])
    assert not bus.is_valid_position(TOPIC, 0)
    assert bus.is_valid_position(TOPIC, new)
    assert not bus.is_valid_position(TOPIC, new + 1)  # never assigned

    assert bus.purge_expired() == 2
    assert not bus.is_valid_position(TOPIC, old[1])  # purged ids stay invalid
    assert bus.latest_replay_id(TOPIC) == new
    assert bus.publish(TOPIC, {"OrderId__c": ORDER_ID}) == new + 1  # ids are never reused


def test_events_survive_reopening_the_data_dir(tmp_path: Path) -> None:
    first = EventBus(tmp_path)
    ids = [first.publish(TOPIC, {"OrderId__c": ORDER_ID}) for _ in range(2)]
    first.close()
    again = EventBus(tmp_path)
    try:
        assert [e.replay_id for e in again.read_after(TOPIC, None, 10)] == ids
        assert (tmp_path / "events.db").exists()
        assert again.publish(TOPIC, {"OrderId__c": ORDER_ID}) == ids[-1] + 1
    finally:
        again.close()


def test_publish_wakes_a_waiting_subscriber(bus: EventBus) -> None:
    version = bus.version
    threading.Timer(0.1, lambda: bus.publish(TOPIC, {"OrderId__c": ORDER_ID})).start()
    started = time.monotonic()
    assert bus.wait(version, timeout=5) != version
    assert time.monotonic() - started < 2
