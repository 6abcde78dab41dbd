"""The org's event bus: platform events stored in SQLite, served by the Pub/Sub emulator.

Topics and their Avro schemas come from the platform events in the SFDX metadata
(``objects/*__e``), so an event field missing from the deployable metadata does not exist here.
Replay ids are monotonic integers (SQLite ``AUTOINCREMENT``: never reused, even after a purge)
sent on the wire as 8-byte big-endian bytes. Events older than the retention window are not
delivered, and a replay id at or before the expired part of a topic is "corrupted".
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import fastavro
from fastavro.schema import to_parsing_canonical_form

log = logging.getLogger(__name__)

DB_FILE = "events.db"
TOPIC_PREFIX = "/event/"
AVRO_NAMESPACE = "com.sforce.eventbus"
DEFAULT_CREATED_BY_ID = "005000000000001AAA"  # the sandbox's automated-process user
_NS = {"m": "http://soap.sforce.com/2006/04/metadata"}

# Custom field type -> Avro type as Pub/Sub serves it (reference/salesforce.md §2.3).
_AVRO_TYPES = {
    "Text": "string",
    "TextArea": "string",
    "LongTextArea": "string",
    "Number": "double",
    "DateTime": "long",
    "Date": "long",
}


def replay_id_bytes(replay_id: int) -> bytes:
    """The wire form of a sandbox replay id: 8-byte big-endian."""
    return int(replay_id).to_bytes(8, "big", signed=False)


def replay_id_int(value: bytes) -> int:
    """Inverse of :func:`replay_id_bytes`; raises ``ValueError`` for anything not 8 bytes."""
    if len(value) != 8:
        raise ValueError(f"replay id must be 8 bytes, got {len(value)}")
    return int.from_bytes(value, "big", signed=False)


def metadata_objects_dir() -> Path:
    """``objects/`` of the SFDX metadata: ``$ORDERFLOW_SF_METADATA_DIR`` or the repo's ``salesforce/``.

    The override may name the project folder (``salesforce``) or its ``main/default`` folder,
    matching the REST emulator's convention.
    """
    override = os.environ.get("ORDERFLOW_SF_METADATA_DIR")
    if override:
        root = Path(override)
    else:
        import orderflow_sandbox

        root = Path(orderflow_sandbox.__file__).resolve().parents[2] / "salesforce"
    for candidate in (root / "objects", root / "main" / "default" / "objects"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"Salesforce metadata not found under {root} (expected objects/ or main/default/objects/)")


@dataclass(frozen=True)
class EventField:
    name: str
    avro_type: str
    required: bool
    length: int | None


@dataclass(frozen=True)
class EventTopic:
    """One platform event: its topic name, fields and the Avro schema Pub/Sub serves for it."""

    api_name: str
    fields: tuple[EventField, ...]
    schema: dict  # the parsed-schema source, without "uuid"
    schema_id: str
    schema_json: str  # as served by GetSchema, with "uuid"

    @property
    def topic_name(self) -> str:
        return TOPIC_PREFIX + self.api_name


def _text(el: ET.Element, tag: str) -> str | None:
    found = el.find(f"m:{tag}", _NS)
    return found.text.strip() if found is not None and found.text else None


def load_event_topic(object_dir: Path) -> EventTopic:
    """Build the topic of one ``objects/<Name>__e`` folder."""
    api_name = object_dir.name
    fields: list[EventField] = []
    for path in sorted((object_dir / "fields").glob("*.field-meta.xml")):
        root = ET.parse(path).getroot()
        name = _text(root, "fullName") or path.name.split(".")[0]
        ftype = _text(root, "type") or "Text"
        if ftype == "Checkbox":
            avro_type = "boolean"
        elif ftype in _AVRO_TYPES:
            avro_type = _AVRO_TYPES[ftype]
        else:
            raise ValueError(f"{path}: platform event field type {ftype!r} is not supported")
        length = _text(root, "length")
        fields.append(EventField(name, avro_type, (_text(root, "required") or "false") == "true",
                                 int(length) if length else None))
    avro_fields: list[dict] = [
        {"name": "CreatedDate", "type": "long", "doc": "CreatedDate:DateTime"},
        {"name": "CreatedById", "type": "string", "doc": "CreatedBy:EntityId"},
    ]
    for f in fields:
        if f.avro_type == "boolean":
            avro_fields.append({"name": f.name, "type": "boolean", "default": False})
        else:
            avro_fields.append({"name": f.name, "type": ["null", f.avro_type], "default": None})
    schema = {"name": api_name, "namespace": AVRO_NAMESPACE, "type": "record", "fields": avro_fields}
    canonical = to_parsing_canonical_form(fastavro.parse_schema(schema))
    digest = hashlib.md5(canonical.encode(), usedforsecurity=False).digest()
    schema_id = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    schema_json = json.dumps({**schema, "uuid": schema_id}, separators=(",", ":"))
    return EventTopic(api_name, tuple(fields), schema, schema_id, schema_json)


def load_event_topics(objects_dir: Path | None = None) -> dict[str, EventTopic]:
    """Every platform event in the metadata, keyed by topic name (``/event/Name__e``)."""
    objects_dir = objects_dir or metadata_objects_dir()
    topics = {}
    for obj in sorted(objects_dir.glob("*__e")):
        topic = load_event_topic(obj)
        topics[topic.topic_name] = topic
    return topics


@dataclass(frozen=True)
class StoredEvent:
    replay_id: int
    topic: str
    event_id: str
    schema_id: str
    payload: bytes
    stored_ms: int

    @property
    def replay_id_bytes(self) -> bytes:
        return replay_id_bytes(self.replay_id)


class EventValidationError(ValueError):
    """An event published through the org (REST, the Flow) lacks a required field or has an unknown one."""


class UnknownTopic(KeyError):
    pass


class EventBus:
    """Durable platform-event storage with replay, retention and subscriber wake-up.

    Thread-safe: the REST app, the Flow and every Pub/Sub stream share one instance.
    ``clock`` (epoch seconds) is injectable so retention can be tested without waiting.
    """

    def __init__(
        self,
        data_dir: Path,
        retention_hours: float | None = None,
        objects_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if retention_hours is None:
            retention_hours = float(os.environ.get("ORDERFLOW_SANDBOX_EVENT_RETENTION_HOURS", "72"))
        self.retention_hours = retention_hours
        self.clock = clock
        self.topics = load_event_topics(objects_dir)
        self._by_schema_id = {t.schema_id: t for t in self.topics.values()}
        self._parsed = {t.topic_name: fastavro.parse_schema(t.schema) for t in self.topics.values()}
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(data_dir) / DB_FILE
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS events (
                replay_id INTEGER PRIMARY KEY AUTOINCREMENT,
                topic TEXT NOT NULL,
                event_id TEXT NOT NULL,
                schema_id TEXT NOT NULL,
                payload BLOB NOT NULL,
                stored_ms INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS events_topic ON events (topic, replay_id);
            CREATE TABLE IF NOT EXISTS purged (topic TEXT PRIMARY KEY, through_id INTEGER NOT NULL);
            """
        )
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)
        self._version = 0

    # ------------------------------------------------------------------ topics and schemas

    def topic(self, topic_name: str) -> EventTopic:
        """Look up a topic by ``/event/Name__e`` (or the bare API name)."""
        name = topic_name if topic_name.startswith("/") else TOPIC_PREFIX + topic_name
        try:
            return self.topics[name]
        except KeyError:
            raise UnknownTopic(topic_name) from None

    def schema_by_id(self, schema_id: str) -> EventTopic | None:
        return self._by_schema_id.get(schema_id)

    def encode(self, topic_name: str, record: dict) -> bytes:
        topic = self.topic(topic_name)
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self._parsed[topic.topic_name], record)
        return buf.getvalue()

    def decode(self, topic_name: str, payload: bytes) -> dict:
        """Decode a payload with the topic's schema; raises on anything that is not one clean datum."""
        topic = self.topic(topic_name)
        buf = io.BytesIO(payload)
        record = fastavro.schemaless_reader(buf, self._parsed[topic.topic_name], None)
        if buf.tell() != len(payload):
            raise ValueError(f"{len(payload) - buf.tell()} trailing bytes after the Avro datum")
        return record  # type: ignore[return-value]

    # ------------------------------------------------------------------ publishing

    def publish(self, topic: str, fields: dict, created_by_id: str | None = None) -> int:
        """Publish one event as the org does (REST, the Flow): validate, stamp, encode, store.

        Returns the replay id (int). Raises :class:`EventValidationError` for a missing required
        field, an unknown field or a text value longer than the field.
        """
        info = self.topic(topic)
        known = {f.name: f for f in info.fields}
        unknown = sorted(set(fields) - set(known) - {"CreatedDate", "CreatedById"})
        if unknown:
            raise EventValidationError(f"No such column '{unknown[0]}' on sobject of type {info.api_name}")
        record: dict = {}
        for f in info.fields:
            value = fields.get(f.name)
            if value is None or value == "":
                if f.required:
                    raise EventValidationError(f"Required fields are missing: [{f.name}]")
                value = False if f.avro_type == "boolean" else None
            elif f.avro_type == "string":
                value = str(value)
                if f.length and len(value) > f.length:
                    raise EventValidationError(f"{f.name}: data value too large (max length={f.length})")
            record[f.name] = value
        record["CreatedDate"] = int(fields.get("CreatedDate") or self.clock() * 1000)
        record["CreatedById"] = str(fields.get("CreatedById") or created_by_id or DEFAULT_CREATED_BY_ID)
        return self.publish_raw(info.topic_name, self.encode(info.topic_name, record), info.schema_id)

    def publish_raw(self, topic: str, payload: bytes, schema_id: str | None = None, event_id: str | None = None) -> int:
        """Store a payload as-is (Pub/Sub ``Publish`` does not validate Avro) and wake subscribers.

        Also the admin hook for tests that need an undecodable event on the bus.
        """
        info = self.topic(topic)
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO events (topic, event_id, schema_id, payload, stored_ms) VALUES (?, ?, ?, ?, ?)",
                (info.topic_name, event_id or str(uuid.uuid4()), schema_id or info.schema_id, bytes(payload),
                 int(self.clock() * 1000)),
            )
            replay_id = int(cur.lastrowid or 0)
            self._version += 1
            self.changed.notify_all()
        log.debug("event %s published on %s", replay_id, info.topic_name)
        return replay_id

    # ------------------------------------------------------------------ reading

    def _cutoff_ms(self) -> int:
        return int((self.clock() - self.retention_hours * 3600) * 1000)

    def expired_through(self, topic: str) -> int:
        """Highest replay id of the topic that is outside retention (purged or too old); 0 if none."""
        name = self.topic(topic).topic_name
        with self._lock:
            purged = self._db.execute("SELECT through_id FROM purged WHERE topic = ?", (name,)).fetchone()
            old = self._db.execute(
                "SELECT MAX(replay_id) FROM events WHERE topic = ? AND stored_ms < ?", (name, self._cutoff_ms())
            ).fetchone()
        return max(purged[0] if purged else 0, old[0] or 0)

    def latest_replay_id(self, topic: str) -> int:
        """The topic's newest replay id (0 when the topic never had an event)."""
        name = self.topic(topic).topic_name
        with self._lock:
            row = self._db.execute("SELECT MAX(replay_id) FROM events WHERE topic = ?", (name,)).fetchone()
            purged = self._db.execute("SELECT through_id FROM purged WHERE topic = ?", (name,)).fetchone()
        return max(row[0] or 0, purged[0] if purged else 0)

    def earliest_replay_id(self, topic: str) -> int | None:
        """The oldest retained event's replay id, or None when nothing is retained."""
        name = self.topic(topic).topic_name
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(replay_id) FROM events WHERE topic = ? AND stored_ms >= ?", (name, self._cutoff_ms())
            ).fetchone()
        return row[0]

    def max_assigned(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return int(row[0]) if row else 0

    def is_valid_position(self, topic: str, replay_id: int) -> bool:
        """Whether a CUSTOM subscription may start after ``replay_id``.

        Invalid ("corrupted"): ids never assigned, and ids at or before the expired part of the
        topic. ``0`` is accepted while nothing of the topic has expired (start of the stream).
        """
        if replay_id < 0 or replay_id > self.max_assigned():
            return False
        boundary = self.expired_through(topic)
        return replay_id > boundary or (replay_id == 0 and boundary == 0)

    def read_after(self, topic: str, replay_id: int | None, limit: int) -> list[StoredEvent]:
        """Retained events of ``topic`` with a replay id greater than ``replay_id`` (all when None), oldest first."""
        name = self.topic(topic).topic_name
        with self._lock:
            rows = self._db.execute(
                "SELECT replay_id, topic, event_id, schema_id, payload, stored_ms FROM events"
                " WHERE topic = ? AND replay_id > ? AND stored_ms >= ? ORDER BY replay_id LIMIT ?",
                (name, replay_id or 0, self._cutoff_ms(), max(0, int(limit))),
            ).fetchall()
        return [StoredEvent(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in rows]

    def count(self, topic: str | None = None) -> int:
        with self._lock:
            if topic is None:
                return self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            name = self.topic(topic).topic_name
            return self._db.execute("SELECT COUNT(*) FROM events WHERE topic = ?", (name,)).fetchone()[0]

    def wait(self, seen_version: int, timeout: float) -> int:
        """Block until something is published after ``seen_version`` (or :meth:`wake`), at most ``timeout`` s.

        Returns the current version. Publishers in other processes are not signalled: callers
        re-read the database after each wait, and use a bounded timeout.
        """
        with self.changed:
            if self._version == seen_version:
                self.changed.wait(timeout)
            return self._version

    @property
    def version(self) -> int:
        return self._version

    def wake(self) -> None:
        """Wake every waiting subscriber (e.g. a client just asked for more events)."""
        with self.changed:
            self._version += 1
            self.changed.notify_all()

    # ------------------------------------------------------------------ admin

    def purge_expired(self) -> int:
        """Delete events outside retention; replay ids stay unassignable. Returns the number deleted."""
        cutoff = self._cutoff_ms()
        deleted = 0
        with self._lock:
            for (name,) in self._db.execute("SELECT DISTINCT topic FROM events WHERE stored_ms < ?", (cutoff,)).fetchall():
                top = self._db.execute(
                    "SELECT MAX(replay_id) FROM events WHERE topic = ? AND stored_ms < ?", (name, cutoff)
                ).fetchone()[0]
                self._db.execute(
                    "INSERT INTO purged (topic, through_id) VALUES (?, ?)"
                    " ON CONFLICT(topic) DO UPDATE SET through_id = MAX(through_id, excluded.through_id)",
                    (name, top),
                )
                deleted += self._db.execute("DELETE FROM events WHERE topic = ? AND stored_ms < ?",
                                            (name, cutoff)).rowcount
        return deleted

    def backdate(self, through_replay_id: int, hours: float) -> int:
        """Admin/test hook: make events up to ``through_replay_id`` look ``hours`` older. Returns rows changed."""
        with self._lock:
            return self._db.execute(
                "UPDATE events SET stored_ms = stored_ms - ? WHERE replay_id <= ?",
                (int(hours * 3600 * 1000), through_replay_id),
            ).rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
