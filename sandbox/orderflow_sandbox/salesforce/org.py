"""The emulated org: records in SQLite, access tokens, API limits, query cursors, the Flow hook.

One :class:`SalesforceOrg` per sandbox data folder. The REST app, the Pub/Sub server and the seeding
code all go through it; every write takes the org lock and one SQLite transaction, so a collection
call with ``allOrNone`` really rolls back and the Flow's update lands in the same transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orderflow_sandbox.faults import CallStats, FaultRegistry
from orderflow_sandbox.salesforce import soql as soql_mod
from orderflow_sandbox.salesforce.ids import make_id, normalize_id
from orderflow_sandbox.salesforce.schema import Field, SObject, load_schema
from orderflow_sandbox.tls import ensure_keypair

log = logging.getLogger(__name__)

DB_FILE = "salesforce.db"
API_VERSION = "62.0"
DEFAULT_TOKEN_TTL_SECONDS = 7200.0  # Salesforce's default session timeout: 2 h
DEFAULT_DAILY_API_LIMIT = 100_000
QUERY_BATCH_SIZE = 2000
CURSOR_TTL_SECONDS = 15 * 60
USERNAME = "orderflow-integration@sandbox.orderflow.example"
EVENT_TOPIC = "/event/OrderProvisionRequested__e"


class RecordError(Exception):
    """A per-record failure with Salesforce's ``statusCode``; ``http_status`` for single-record calls."""

    def __init__(self, status_code: str, message: str, fields: list[str] | None = None, http_status: int = 400):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.fields = fields or []
        self.http_status = http_status

    def as_error(self) -> dict:
        return {"statusCode": self.status_code, "message": self.message, "fields": self.fields}

    def as_rest_body(self) -> list[dict]:
        body: dict[str, Any] = {"message": self.message, "errorCode": self.status_code}
        if self.fields:
            body["fields"] = self.fields
        return [body]


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sql_type(f: Field) -> str:
    if f.type == "boolean":
        return "INTEGER"
    if f.type in ("double", "currency", "int"):
        return "REAL"
    return "TEXT"


@dataclass
class _Cursor:
    result: soql_mod.Result
    expires: float
    include_deleted: bool = False


@dataclass
class _Tx:
    """Work collected during a write transaction and applied after commit."""

    events: list[dict] = field(default_factory=list)


class _Source:
    """The SOQL evaluator's view of the tables (optionally including soft-deleted rows)."""

    def __init__(self, org: SalesforceOrg, include_deleted: bool) -> None:
        self.org = org
        self.include_deleted = include_deleted

    def scan(self, sobject: str, equals: dict[str, list[Any]]) -> Iterable[dict]:
        sql = f'SELECT * FROM "{sobject}"'
        where, params = [], []
        if not self.include_deleted:
            where.append("IsDeleted = 0")
        for col, values in equals.items():
            if not values:
                return []
            if len(values) > 900:
                continue  # too many for one statement; the evaluator filters anyway
            field_type = self.org.schema[sobject].fields[col].type
            collate = " COLLATE NOCASE" if field_type == "picklist" else ""  # picklist matches ignore case
            where.append(f'"{col}"{collate} IN ({",".join("?" * len(values))})')
            params.extend(values)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self.org._rows(sobject, sql, params)

    def get_many(self, sobject: str, ids: set[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        id_list = sorted(ids)
        for i in range(0, len(id_list), 900):
            chunk = id_list[i:i + 900]
            sql = f'SELECT * FROM "{sobject}" WHERE Id IN ({",".join("?" * len(chunk))})'
            for row in self.org._rows(sobject, sql, chunk):
                out[row["Id"]] = row
        return out

    def children(self, sobject: str, fk: str, parent_ids: list[str]) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for i in range(0, len(parent_ids), 900):
            chunk = parent_ids[i:i + 900]
            sql = f'SELECT * FROM "{sobject}" WHERE "{fk}" IN ({",".join("?" * len(chunk))})'
            if not self.include_deleted:
                sql += " AND IsDeleted = 0"
            sql += " ORDER BY rowid"
            for row in self.org._rows(sobject, sql, chunk):
                out.setdefault(row[fk], []).append(row)
        return out


class SalesforceOrg:
    """State and behaviour of the emulated org (see module docstring)."""

    def __init__(
        self,
        data_dir: str | Path,
        instance_url: str | None = None,
        pubsub_endpoint: str | None = None,
        metadata_dir: Path | None = None,
        token_ttl_seconds: float | None = None,
        daily_api_limit: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.instance_url = (instance_url or "https://127.0.0.1").rstrip("/")
        self.pubsub_endpoint = pubsub_endpoint
        self.api_version = API_VERSION
        self.schema: dict[str, SObject] = load_schema(metadata_dir)
        self.faults = FaultRegistry()
        self.stats = CallStats()
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.data_dir / DB_FILE, check_same_thread=False, isolation_level=None, timeout=60)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._create_tables()
        self._bool_cols = {
            name: [f.name for f in obj.fields.values() if f.type == "boolean"]
            for name, obj in self.schema.items() if not obj.is_event
        }
        self.org_id = self._meta_get("org_id") or self._meta_init("org_id", make_id("00D", secrets.randbelow(62**6)))
        self.user_id = self._meta_get("user_id") or self._meta_init("user_id", make_id("005", secrets.randbelow(62**6)))
        self.consumer_key = self._meta_get("consumer_key") or self._meta_init(
            "consumer_key", "3MVG9" + secrets.token_urlsafe(60).replace("-", "A").replace("_", "z")[:80]
        )
        self.username = USERNAME
        self.private_key_path, self.certificate_path = ensure_keypair(
            self.data_dir, "salesforce_connected_app", "orderflow connected app"
        )
        config = json.loads(self._meta_get("config") or "{}")
        self.token_ttl_seconds = float(token_ttl_seconds or config.get("token_ttl_seconds", DEFAULT_TOKEN_TTL_SECONDS))
        self.daily_api_limit = int(daily_api_limit or config.get("daily_api_limit", DEFAULT_DAILY_API_LIMIT))
        self._usage_day = now_utc().date()
        self._api_usage = 0
        self._cursors: dict[str, _Cursor] = {}
        self._cursor_seq = 0
        self.eventbus = self._make_eventbus()

    # ------------------------------------------------------------------ setup

    def _make_eventbus(self):
        from orderflow_sandbox.salesforce.eventbus import EventBus

        return EventBus(self.data_dir)

    def _create_tables(self) -> None:
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS sf_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sf_tokens (token TEXT PRIMARY KEY, expires_at REAL NOT NULL)"
            )
            # Every token ever issued, kept through revocation and expiry (GET /__sandbox/tokens, secret scans).
            self._db.execute("CREATE TABLE IF NOT EXISTS sf_tokens_issued (token TEXT PRIMARY KEY, issued_at REAL NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS sf_flow (order_id TEXT PRIMARY KEY, approvals INTEGER NOT NULL)")
            for name, obj in self.schema.items():
                if obj.is_event:
                    continue
                cols = ", ".join(
                    f'"{f.name}" {_sql_type(f)}' + (" PRIMARY KEY" if f.name == "Id" else "")
                    for f in obj.fields.values()
                )
                self._db.execute(f'CREATE TABLE IF NOT EXISTS "{name}" ({cols})')
                existing = {r[1] for r in self._db.execute(f'PRAGMA table_info("{name}")')}
                for f in obj.fields.values():  # metadata grew since the data folder was created
                    if f.name not in existing:
                        self._db.execute(f'ALTER TABLE "{name}" ADD COLUMN "{f.name}" {_sql_type(f)}')
                for f in obj.fields.values():
                    if f.type == "reference" and f.relationship_name:
                        self._db.execute(f'CREATE INDEX IF NOT EXISTS "ix_{name}_{f.name}" ON "{name}" ("{f.name}")')
            self._db.execute('CREATE INDEX IF NOT EXISTS "ix_Order_activation" ON "Order" (Activation_Status__c COLLATE NOCASE)')

    def _meta_get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM sf_meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _meta_init(self, key: str, value: str) -> str:
        self._db.execute("INSERT OR IGNORE INTO sf_meta (key, value) VALUES (?, ?)", (key, value))
        return self._meta_get(key) or value

    def credentials(self) -> dict:
        """What a client needs to connect (written to endpoints.json)."""
        return {
            "login_url": self.instance_url,
            "instance_url": self.instance_url,
            "pubsub_endpoint": self.pubsub_endpoint,
            "org_id": self.org_id,
            "username": self.username,
            "consumer_key": self.consumer_key,
            "private_key_path": str(self.private_key_path),
            "certificate_path": str(self.certificate_path),
            "api_version": self.api_version,
        }

    def close(self) -> None:
        with self._lock:
            self._db.close()
        close = getattr(self.eventbus, "close", None)
        if close:
            close()

    # ------------------------------------------------------------------ config, limits, tokens

    def config(self) -> dict:
        return {
            "token_ttl_seconds": self.token_ttl_seconds,
            "daily_api_limit": self.daily_api_limit,
            "api_usage": self.api_usage(),
        }

    def set_config(self, values: dict) -> dict:
        allowed = {"token_ttl_seconds", "daily_api_limit", "api_usage"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        with self._lock:
            if "token_ttl_seconds" in values:
                self.token_ttl_seconds = float(values["token_ttl_seconds"])
            if "daily_api_limit" in values:
                self.daily_api_limit = int(values["daily_api_limit"])
            if "api_usage" in values:
                self._api_usage = int(values["api_usage"])
            self._db.execute(
                "INSERT OR REPLACE INTO sf_meta (key, value) VALUES ('config', ?)",
                (json.dumps({"token_ttl_seconds": self.token_ttl_seconds, "daily_api_limit": self.daily_api_limit}),),
            )
        return self.config()

    def api_usage(self) -> int:
        with self._lock:
            today = now_utc().date()
            if today != self._usage_day:
                self._usage_day, self._api_usage = today, 0
            return self._api_usage

    def consume_api_call(self) -> bool:
        """Count one REST call against the daily limit; False once the limit is used up."""
        with self._lock:
            usage = self.api_usage()
            if usage >= self.daily_api_limit:
                return False
            self._api_usage = usage + 1
            return True

    def limit_info(self) -> str:
        return f"api-usage={self.api_usage()}/{self.daily_api_limit}"

    def issue_access_token(self) -> str:
        """A new session id shaped like Salesforce's (``<15-char org id>!<opaque>``)."""
        token = f"{self.org_id[:15]}!AQ{secrets.token_urlsafe(72)}"
        with self._lock:
            self._db.execute(
                "INSERT INTO sf_tokens (token, expires_at) VALUES (?, ?)", (token, time.time() + self.token_ttl_seconds)
            )
            self._db.execute("DELETE FROM sf_tokens WHERE expires_at < ?", (time.time() - 86400,))
            self._db.execute("INSERT INTO sf_tokens_issued (token, issued_at) VALUES (?, ?)", (token, time.time()))
        return token

    def issued_access_tokens(self) -> list[str]:
        """Every access token this org issued, revoked and expired ones included, oldest first."""
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT token FROM sf_tokens_issued ORDER BY issued_at")]

    def validate_access_token(self, token: str) -> bool:
        """True for a token issued by this org's JWT endpoint that has neither expired nor been revoked."""
        if not token:
            return False
        with self._lock:
            row = self._db.execute("SELECT expires_at FROM sf_tokens WHERE token = ?", (token,)).fetchone()
        return row is not None and row[0] > time.time()

    def revoke_access_token(self, token: str | None = None) -> int:
        """Revoke one token, or every token when ``token`` is None (the INVALID_SESSION_ID fault)."""
        with self._lock:
            if token is None:
                return self._db.execute("DELETE FROM sf_tokens").rowcount
            return self._db.execute("DELETE FROM sf_tokens WHERE token = ?", (token,)).rowcount

    # ------------------------------------------------------------------ rows

    def _rows(self, sobject: str, sql: str, params: Iterable[Any] = ()) -> list[dict]:
        bools = self._bool_cols.get(sobject, [])
        with self._lock:  # plain tuples under the lock (dict(sqlite3.Row) is slower than zipping the names)
            cur = self._db.cursor()
            cur.row_factory = None
            cur.execute(sql, list(params))
            names = [d[0] for d in cur.description]
            tuples = cur.fetchall()
        rows = [dict(zip(names, r, strict=True)) for r in tuples]
        for row in rows:
            for b in bools:
                if row.get(b) is not None:
                    row[b] = bool(row[b])
        return rows

    def sobject(self, name: str) -> SObject:
        obj = self.schema.get(name)
        if obj is None:
            for key, value in self.schema.items():
                if key.lower() == name.lower():
                    return value
            raise RecordError("NOT_FOUND", "The requested resource does not exist", http_status=404)
        return obj

    def get_record(self, sobject: str, record_id: str, fields: list[str] | None = None) -> dict:
        obj = self.sobject(sobject)
        rid = normalize_id(record_id)
        if rid is None or not rid.startswith(obj.key_prefix) or obj.is_event:
            raise RecordError("NOT_FOUND", "The requested resource does not exist", http_status=404)
        rows = self._rows(obj.name, f'SELECT * FROM "{obj.name}" WHERE Id = ?', [rid])
        if not rows:
            raise RecordError("NOT_FOUND", "The requested resource does not exist", http_status=404)
        row = rows[0]
        if row.get("IsDeleted"):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", http_status=404)
        names = list(obj.fields) if not fields else []
        for name in fields or []:
            f = obj.field(name)
            if f is None:
                raise RecordError("INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}")
            names.append(f.name)
        rec: dict[str, Any] = {"attributes": {"type": obj.name, "url": self.record_url(obj.name, rid)}}
        for name in names:
            rec[name] = soql_mod.json_value(obj.fields[name], row.get(name))
        return rec

    def record_url(self, sobject: str, record_id: str) -> str:
        return f"/services/data/v{self.api_version}/sobjects/{sobject}/{record_id}"

    # ------------------------------------------------------------------ writes

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_Tx]:
        """One SQLite transaction under the org lock; the Flow's events publish after commit."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            tx = _Tx()
            try:
                yield tx
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        for event in tx.events:
            self.eventbus.publish(EVENT_TOPIC, event, created_by_id=self.user_id)

    @contextlib.contextmanager
    def savepoint(self, tx: _Tx) -> Iterator[None]:
        """A per-record savepoint inside a transaction (allOrNone=false collections)."""
        mark = len(tx.events)
        self._db.execute("SAVEPOINT rec")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK TO rec")
            self._db.execute("RELEASE rec")
            del tx.events[mark:]
            raise
        self._db.execute("RELEASE rec")

    def _next_numbers(self, key: str, n: int) -> int:
        """Reserve ``n`` numbers of a sequence inside the current transaction; return the first."""
        row = self._db.execute("SELECT value FROM sf_meta WHERE key = ?", (key,)).fetchone()
        first = int(row[0]) if row else 1
        self._db.execute("INSERT OR REPLACE INTO sf_meta (key, value) VALUES (?, ?)", (key, str(first + n)))
        return first

    def _coerce(self, obj: SObject, f: Field, value: Any) -> Any:
        label = f.name
        if value is None or (value == "" and f.type not in ("string", "textarea")):
            if not f.nillable and f.type != "boolean":
                raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{f.name}]", [f.name])
            return 0 if f.type == "boolean" else None
        if f.type in ("string", "textarea"):
            if isinstance(value, (dict, list)):
                raise RecordError("JSON_PARSER_ERROR", f"Cannot deserialize instance of string from START_OBJECT value for {f.name}")
            text = value if isinstance(value, str) else json.dumps(value)
            if f.length and len(text) > f.length:
                raise RecordError("STRING_TOO_LONG", f"{label}: data value too large: {text[:40]} (max length={f.length})", [f.name])
            return text if text != "" else None
        if f.type == "picklist":
            if not isinstance(value, str):
                raise RecordError("JSON_PARSER_ERROR", f"Cannot deserialize instance of string for {f.name}")
            for allowed in f.picklist:
                if allowed.lower() == value.lower():
                    return allowed
            raise RecordError(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", f"{label}: bad value for restricted picklist field: {value}", [f.name]
            )
        if f.type in ("double", "currency", "int"):
            if isinstance(value, bool):
                raise RecordError("JSON_PARSER_ERROR", f"Cannot deserialize instance of double from VALUE_TRUE value {value} for {f.name}")
            try:
                return float(value)
            except (TypeError, ValueError):
                raise RecordError(
                    "JSON_PARSER_ERROR", f"Cannot deserialize instance of double from VALUE_STRING value {value} for {f.name}"
                ) from None
        if f.type == "boolean":
            if not isinstance(value, bool):
                if isinstance(value, str) and value.lower() in ("true", "false"):
                    return 1 if value.lower() == "true" else 0
                raise RecordError("JSON_PARSER_ERROR", f"Cannot deserialize instance of boolean from value {value} for {f.name}")
            return 1 if value else 0
        if f.type == "date":
            try:
                return dt.date.fromisoformat(str(value)[:10]).isoformat()
            except ValueError:
                raise RecordError("JSON_PARSER_ERROR", f"Cannot deserialize instance of date from VALUE_STRING value {value} for {f.name}") from None
        if f.type == "datetime":
            try:
                text = str(value).replace("Z", "+00:00")
                if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
                    text = text[:-2] + ":" + text[-2:]
                parsed = dt.datetime.fromisoformat(text)
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=dt.UTC)
                return soql_mod.format_datetime(parsed)
            except ValueError:
                raise RecordError("JSON_PARSER_ERROR", f"Cannot deserialize instance of datetime from VALUE_STRING value {value} for {f.name}") from None
        if f.type == "reference":
            rid = normalize_id(str(value))
            target = self.schema.get(f.reference_to or "")
            if rid is None or (target is not None and not rid.startswith(target.key_prefix)):
                raise RecordError("MALFORMED_ID", f"{label}: id value of incorrect type: {value}", [f.name])
            if target is not None and not target.is_event:
                found = self._db.execute(f'SELECT IsDeleted FROM "{target.name}" WHERE Id = ?', (rid,)).fetchone()
                if found is None or found[0]:
                    raise RecordError("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {value}", [f.name])
            return rid
        return value

    def _prepare(self, obj: SObject, values: dict, creating: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in values.items():
            if key == "attributes":
                continue
            f = obj.field(key)
            if f is None:
                raise RecordError("INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", [key])
            if f.name == "Id":
                if creating:
                    raise RecordError("INVALID_FIELD", "The Id field should not be specified in the sobject data.")
                continue
            if (creating and not f.createable) or (not creating and not f.updateable):
                raise RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {f.name}. Please check the security settings of this field and "
                    "verify that it is read/write for your role or profile.",
                    [f.name],
                )
            out[f.name] = self._coerce(obj, f, value)
        return out

    def create(self, tx: _Tx, sobject: str, values: dict) -> str:
        obj = self.sobject(sobject)
        if obj.is_event:
            raise RecordError("INVALID_TYPE", f"Use publish_event for {obj.name}")
        row = self._prepare(obj, values, creating=True)
        missing = [f.name for f in obj.fields.values()
                   if f.createable and not f.nillable and f.type != "boolean" and row.get(f.name) is None]
        if missing:
            raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing)
        return self._insert_rows(obj, [row])[0]

    def _insert_rows(self, obj: SObject, rows: list[dict]) -> list[str]:
        """Insert prepared rows (system fields stamped here); used by create() and by seeding."""
        first = self._next_numbers(f"seq:{obj.key_prefix}", len(rows))
        stamp = soql_mod.format_datetime(now_utc())
        numbering = {"Order": "OrderNumber", "OrderItem": "OrderItemNumber"}.get(obj.name)
        ids = []
        cols = list(obj.fields)
        prepared = []
        for i, row in enumerate(rows):
            rid = make_id(obj.key_prefix, first + i)
            ids.append(rid)
            full = {name: None for name in cols}
            for f in obj.fields.values():
                if f.type == "boolean":
                    full[f.name] = 0
            if "IsActive" in full and row.get("IsActive") is None:
                full["IsActive"] = 1
            full.update(row)
            full["Id"] = rid
            full["IsDeleted"] = 0
            full["CreatedDate"] = full.get("CreatedDate") or stamp
            full["LastModifiedDate"] = full.get("LastModifiedDate") or full["CreatedDate"]
            full["SystemModstamp"] = full["LastModifiedDate"]
            full["CreatedById"] = full["LastModifiedById"] = self.user_id
            if numbering:
                full[numbering] = f"{first + i:08d}"
            prepared.append([full[c] for c in cols])
        placeholders = ",".join("?" * len(cols))
        quoted = ",".join(f'"{c}"' for c in cols)
        self._db.executemany(f'INSERT INTO "{obj.name}" ({quoted}) VALUES ({placeholders})', prepared)
        return ids

    def bulk_insert(self, sobject: str, rows: list[dict]) -> list[str]:
        """Trusted fast insert for seeding (values already in storage form); one transaction."""
        obj = self.sobject(sobject)
        with self.transaction():
            return self._insert_rows(obj, rows)

    def _existing(self, obj: SObject, record_id: Any) -> tuple[str, dict]:
        rid = normalize_id(str(record_id)) if record_id else None
        if record_id in (None, ""):
            raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
        if rid is None or not rid.startswith(obj.key_prefix):
            raise RecordError("MALFORMED_ID", f"{obj.name} ID: id value of incorrect type: {record_id}", ["Id"])
        rows = self._rows(obj.name, f'SELECT * FROM "{obj.name}" WHERE Id = ?', [rid])
        if not rows:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", http_status=404)
        if rows[0].get("IsDeleted"):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", http_status=404)
        return rid, rows[0]

    def update(self, tx: _Tx, sobject: str, record_id: Any, values: dict) -> str:
        obj = self.sobject(sobject)
        rid, before = self._existing(obj, record_id)
        changes = self._prepare(obj, values, creating=False)
        after = {**before, **changes}
        if obj.name == "Order":
            from orderflow_sandbox.salesforce.flow import on_order_update

            extra = on_order_update(self, tx, before, after)
            changes.update(extra)
        stamp = soql_mod.format_datetime(now_utc())
        changes["LastModifiedDate"] = changes["SystemModstamp"] = stamp
        changes["LastModifiedById"] = self.user_id
        sets = ", ".join(f'"{k}" = ?' for k in changes)
        self._db.execute(f'UPDATE "{obj.name}" SET {sets} WHERE Id = ?', [*changes.values(), rid])
        return rid

    def delete(self, tx: _Tx, sobject: str, record_id: Any) -> str:
        obj = self.sobject(sobject)
        rid, _ = self._existing(obj, record_id)
        stamp = soql_mod.format_datetime(now_utc())
        self._db.execute(f'UPDATE "{obj.name}" SET IsDeleted = 1, LastModifiedDate = ?, SystemModstamp = ? WHERE Id = ?',
                         (stamp, stamp, rid))
        for child_rel, (child, fk) in obj.children.items():
            if child_rel == "OrderItems":  # order items go with their order
                self._db.execute(f'UPDATE "{child}" SET IsDeleted = 1 WHERE "{fk}" = ?', (rid,))
        return rid

    def next_approval_number(self, order_id: str) -> int:
        """Count approvals per order (inside the caller's transaction) for the event's IdemKey__c."""
        row = self._db.execute("SELECT approvals FROM sf_flow WHERE order_id = ?", (order_id,)).fetchone()
        n = (row[0] if row else 0) + 1
        self._db.execute("INSERT OR REPLACE INTO sf_flow (order_id, approvals) VALUES (?, ?)", (order_id, n))
        return n

    def publish_event(self, sobject: str, values: dict) -> int:
        """REST publish of a platform event: validated by the event bus against the event's schema."""
        obj = self.sobject(sobject)
        if not obj.is_event:
            raise RecordError("INVALID_TYPE", f"{obj.name} is not a platform event")
        fields = {k: v for k, v in values.items() if k != "attributes"}
        from orderflow_sandbox.salesforce.eventbus import EventValidationError

        try:
            return self.eventbus.publish(f"/event/{obj.name}", fields, created_by_id=self.user_id)
        except EventValidationError as exc:
            text = str(exc)
            code = "REQUIRED_FIELD_MISSING" if "Required" in text else "STRING_TOO_LONG" if "too large" in text else "INVALID_FIELD"
            raise RecordError(code, text) from None

    def backdate(self, sobject: str, ids: list[str], last_modified: dt.datetime) -> int:
        """Test hook: move LastModifiedDate (and SystemModstamp) into the past, e.g. for the sweep."""
        obj = self.sobject(sobject)
        stamp = soql_mod.format_datetime(last_modified)
        norm = [normalize_id(i) or i for i in ids]
        with self.transaction():
            n = 0
            for i in range(0, len(norm), 900):
                chunk = norm[i:i + 900]
                n += self._db.execute(
                    f'UPDATE "{obj.name}" SET LastModifiedDate = ?, SystemModstamp = ? WHERE Id IN ({",".join("?" * len(chunk))})',
                    [stamp, stamp, *chunk],
                ).rowcount
        return n

    # ------------------------------------------------------------------ queries

    def run_query(self, soql: str, include_deleted: bool = False, batch_size: int = QUERY_BATCH_SIZE,
                  api_version: str | None = None) -> dict:
        """Run SOQL and return the first page in the REST shape (cursor kept for nextRecordsUrl)."""
        query = soql_mod.parse(soql)
        result = soql_mod.execute(query, self.schema, _Source(self, include_deleted), api_version or self.api_version)
        return self._page(result, 0, batch_size, include_deleted, api_version or self.api_version, None)

    def query_more(self, locator: str, batch_size: int = QUERY_BATCH_SIZE, api_version: str | None = None) -> dict:
        cursor_id, _, offset = locator.rpartition("-")
        with self._lock:
            self._expire_cursors()
            cursor = self._cursors.get(cursor_id)
        if cursor is None or not offset.isdigit():
            raise RecordError("INVALID_QUERY_LOCATOR", "invalid query locator", http_status=400)
        return self._page(cursor.result, int(offset), batch_size, cursor.include_deleted,
                          api_version or self.api_version, cursor_id)

    def _expire_cursors(self) -> None:
        now = time.monotonic()
        for key in [k for k, c in self._cursors.items() if c.expires < now]:
            del self._cursors[key]

    def _page(self, result: soql_mod.Result, offset: int, batch_size: int, include_deleted: bool,
              api_version: str, cursor_id: str | None) -> dict:
        records = result.page(offset, batch_size)
        body: dict[str, Any] = {"totalSize": result.total_size, "done": True, "records": records}
        end = offset + batch_size
        if not result.query.count and end < result.total_size:
            with self._lock:
                if cursor_id is None:
                    self._cursor_seq += 1
                    cursor_id = make_id("01g", self._cursor_seq)
                self._cursors[cursor_id] = _Cursor(result, time.monotonic() + CURSOR_TTL_SECONDS, include_deleted)
            endpoint = "queryAll" if include_deleted else "query"
            body["done"] = False
            body["nextRecordsUrl"] = f"/services/data/v{api_version}/{endpoint}/{cursor_id}-{end}"
        elif cursor_id is not None:
            with self._lock:
                self._cursors.pop(cursor_id, None)
        return body

    def query_rows(self, soql: str, include_deleted: bool = False) -> soql_mod.Result:
        """Evaluate without paging (Bulk 2.0 jobs, admin tools)."""
        query = soql_mod.parse(soql)
        return soql_mod.execute(query, self.schema, _Source(self, include_deleted), self.api_version)

    # ------------------------------------------------------------------ admin

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                name: self._db.execute(f'SELECT COUNT(*) FROM "{name}" WHERE IsDeleted = 0').fetchone()[0]
                for name, obj in self.schema.items() if not obj.is_event
            }

    def dump(self, limit: int = 1000) -> dict:
        """The org's records (up to ``limit`` per object), config and counters; no credentials."""
        out: dict[str, Any] = {"org_id": self.org_id, "config": self.config(), "counts": self.counts(), "records": {}}
        for name, obj in self.schema.items():
            if obj.is_event:
                continue
            rows = self._rows(name, f'SELECT * FROM "{name}" ORDER BY rowid LIMIT ?', [limit])
            out["records"][name] = rows
        with contextlib.suppress(Exception):
            out["events"] = {"count": self.eventbus.count()}
        return out
