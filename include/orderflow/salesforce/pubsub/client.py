"""Salesforce Pub/Sub API client: topic/schema lookup, flow-controlled fetch, publish.

What callers may rely on:

* ``fetch`` / ``afetch`` return events in replay order and a ``latest_replay_id`` that is safe to
  checkpoint once the returned events are handled: it is the last returned event's replay id, or
  a later position the server reported while nothing was pending (a keepalive). Events the
  server sent after the fetch decided to stop are never reflected in it.
* A stream that fails with UNAVAILABLE (``service.unavailable``, an HTTP/2 stream reset) is
  resubscribed from the last replay id received (CUSTOM), with bounded retries and exponential
  backoff; nothing is lost and nothing already returned is returned again.
* ``…replayid.corrupted`` (or ``…replayid.validation.failed``) raises :class:`ReplayIdCorrupted`;
  the caller decides to fall back to EARLIEST.
* UNAUTHENTICATED / ``…auth…`` codes call ``on_auth_error`` once (refresh the token), then retry.
* A payload that does not decode comes back with ``decode_error`` set; it never stops a fetch.
* The access token is sent only as call metadata; it is never logged nor put in exception text.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import fastavro
import grpc
import grpc.aio

from orderflow.errors import ErrorCode, PermanentError, TransientError, register_secret, safe_message
from orderflow.salesforce.pubsub import pubsub_api_pb2 as pb2
from orderflow.salesforce.pubsub import pubsub_api_pb2_grpc as pb2_grpc

log = logging.getLogger(__name__)

ReplayPreset = Literal["LATEST", "EARLIEST", "CUSTOM"]
MAX_BATCH = 100  # the server owes at most 100 events per Subscribe call
MAX_PUBLISH_BATCH = 200
_PRESETS = {"LATEST": pb2.LATEST, "EARLIEST": pb2.EARLIEST, "CUSTOM": pb2.CUSTOM}
_TRANSIENT_STATUSES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL,
     grpc.StatusCode.ABORTED}
)


# --------------------------------------------------------------------------- replay ids


def replay_id_to_hex(replay_id: bytes) -> str:
    """Store a replay id as hex: it is opaque bytes, never a number to compute with."""
    return bytes(replay_id).hex()


def replay_id_from_hex(value: str) -> bytes:
    """Inverse of :func:`replay_id_to_hex`; raises ``ValueError`` for empty or non-hex input."""
    text = (value or "").strip()
    if not text:
        raise ValueError("replay id is empty")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"replay id is not hex: {text[:40]!r}") from None


# --------------------------------------------------------------------------- results and errors


@dataclass(frozen=True)
class DecodedEvent:
    replay_id: bytes
    replay_id_hex: str
    event_id: str
    payload: dict[str, Any]
    schema_id: str
    decode_error: str | None = None


@dataclass
class FetchResult:
    events: list[DecodedEvent]
    latest_replay_id: bytes  # b"" when no position is known (LATEST/EARLIEST and nothing heard)
    resubscribes: int = 0
    # The server said the last event returned was the topic's latest (its FetchResponse.latest_replay_id).
    at_tip: bool = False

    @property
    def latest_replay_id_hex(self) -> str:
        return replay_id_to_hex(self.latest_replay_id)


class ReplayIdCorrupted(PermanentError):
    """The replay id is invalid or outside the retention window: resubscribe from EARLIEST."""

    def __init__(self, message: str, replay_id: bytes | None = None) -> None:
        super().__init__(ErrorCode.SALESFORCE_CONFIGURATION_ERROR, message)
        self.replay_id = replay_id


class PublishFailed(PermanentError):
    """Some events of a Publish call were refused; ``results`` has (replay id or None, error) per event."""

    def __init__(self, message: str, results: list[tuple[bytes | None, str | None]]) -> None:
        super().__init__(ErrorCode.SALESFORCE_WRITE_FAILED, message)
        self.results = results


def _error_code(err: grpc.RpcError) -> str:
    try:
        trailers = err.trailing_metadata() or ()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - some errors carry no call
        return ""
    for key, value in trailers:
        if key == "error-code":
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""


def _status(err: grpc.RpcError) -> grpc.StatusCode | None:
    try:
        return err.code()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        return None


def _details(err: grpc.RpcError) -> str:
    try:
        return str(err.details() or "")  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        return ""


def classify_rpc_error(err: grpc.RpcError) -> str:
    """``corrupted`` | ``auth`` | ``transient`` | ``permanent`` for a failed call."""
    code, status = _error_code(err), _status(err)
    if "replayid.corrupted" in code or "replayid.validation.failed" in code:
        return "corrupted"
    if status == grpc.StatusCode.UNAUTHENTICATED or ".auth." in code:
        return "auth"
    if "service.unavailable" in code or status in _TRANSIENT_STATUSES:
        return "transient"
    return "permanent"


# --------------------------------------------------------------------------- the fetch state machine


class _Fetch:
    """Transport-free bookkeeping of one fetch across (re)subscriptions."""

    def __init__(self, topic: str, preset: ReplayPreset, replay_id: bytes | None, max_events: int,
                 batch_size: int, stop_on_keepalive: bool) -> None:
        if preset not in _PRESETS:
            raise ValueError(f"replay_preset must be LATEST, EARLIEST or CUSTOM, not {preset!r}")
        if preset == "CUSTOM" and not replay_id:
            raise ValueError("replay_preset CUSTOM needs a replay_id")
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.topic, self.preset = topic, preset
        self.max_events, self.batch_size = max_events, max(1, min(batch_size, MAX_BATCH))
        self.stop_on_keepalive = stop_on_keepalive
        self.events: list[DecodedEvent] = []
        self.resume_from: bytes | None = bytes(replay_id) if preset == "CUSTOM" and replay_id else None
        self.latest: bytes = self.resume_from or b""
        self.done = False
        self.responses_in_stream = 0
        self.resubscribes = 0
        self.at_tip = False

    def _next_n(self) -> int:
        return max(1, min(self.batch_size, self.max_events - len(self.events)))

    def subscribe_request(self) -> pb2.FetchRequest:
        """The first FetchRequest of a (re)subscription: from the last known position if any."""
        self.responses_in_stream = 0
        if self.resume_from is not None:
            return pb2.FetchRequest(topic_name=self.topic, replay_preset=pb2.CUSTOM, replay_id=self.resume_from,
                                    num_requested=self._next_n())
        return pb2.FetchRequest(topic_name=self.topic, replay_preset=_PRESETS[self.preset],
                                num_requested=self._next_n())

    def on_response(self, resp: pb2.FetchResponse, decoded: list[DecodedEvent]) -> pb2.FetchRequest | None:
        """Account for a response; return the next FetchRequest to send, if one is due."""
        self.responses_in_stream += 1
        if not decoded:  # keepalive: nothing available now; its position is safe to resume from
            if resp.latest_replay_id:
                self.latest = self.resume_from = bytes(resp.latest_replay_id)
            if self.stop_on_keepalive:
                self.done = True
            return None
        self.events.extend(decoded)
        self.latest = self.resume_from = decoded[-1].replay_id
        self.at_tip = bool(resp.latest_replay_id) and resp.latest_replay_id == decoded[-1].replay_id
        if len(self.events) >= self.max_events:
            self.done = True
            return None
        if self.stop_on_keepalive and resp.latest_replay_id == decoded[-1].replay_id:
            self.done = True  # the server says this was the tip: nothing more to drain now
            return None
        if resp.pending_num_requested == 0:
            return pb2.FetchRequest(topic_name=self.topic, num_requested=self._next_n())
        return None

    def result(self) -> FetchResult:
        return FetchResult(list(self.events), self.latest, self.resubscribes, self.at_tip)


_END = object()


# --------------------------------------------------------------------------- the client


@dataclass
class _Schema:
    schema_id: str
    schema_json: str
    parsed: Any = field(repr=False)


class PubSubClient:
    """A client of ``eventbus.v1.PubSub`` (Salesforce or the sandbox emulator).

    ``access_token_provider`` is called for every RPC, so a refreshed token is picked up;
    ``on_auth_error`` is called (once per operation) when the server refuses the token, and is
    expected to refresh it. ``ca_bundle`` is a PEM file to verify the server against (None: the
    system roots). ``calls`` counts RPCs and FetchRequests by name.
    """

    def __init__(
        self,
        endpoint: str,
        access_token_provider: Callable[[], str],
        instance_url: str,
        tenant_id: str,
        ca_bundle: str | None,
        on_auth_error: Callable[[], None] | None = None,
        *,
        max_retries: int = 3,
        backoff_seconds: float = 1.0,
        rpc_timeout: float = 30.0,
    ) -> None:
        self.endpoint = endpoint
        self.instance_url = instance_url.rstrip("/")
        self.tenant_id = tenant_id
        self.ca_bundle = ca_bundle
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.rpc_timeout = rpc_timeout
        self.calls: Counter[str] = Counter()
        self._token_provider = access_token_provider
        self._on_auth_error = on_auth_error
        self._root_certs = Path(ca_bundle).read_bytes() if ca_bundle else None
        self._schemas: dict[str, _Schema] = {}
        self._channel: grpc.Channel | None = None
        self._stub: pb2_grpc.PubSubStub | None = None
        self._lock = threading.Lock()
        self._last_token = ""

    # ------------------------------------------------------------------ plumbing

    def _credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self._root_certs)

    def _sync_stub(self) -> pb2_grpc.PubSubStub:
        with self._lock:
            if self._stub is None:
                self._channel = grpc.secure_channel(self.endpoint, self._credentials())
                self._stub = pb2_grpc.PubSubStub(self._channel)
            return self._stub

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._stub = None

    def __enter__(self) -> PubSubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        token = self._token_provider()
        if token != self._last_token:
            register_secret(token)
            self._last_token = token
        return (
            ("accesstoken", token),
            ("instanceurl", self.instance_url),
            ("tenantid", self.tenant_id),
            ("x-client-trace-id", str(uuid.uuid4())),
        )

    def _message(self, what: str, err: grpc.RpcError) -> str:
        status = _status(err)
        code = _error_code(err)
        text = f"Pub/Sub {what}: {status.name if status else 'error'}: {_details(err)}"
        if code:
            text += f" [{code}]"
        return safe_message(text, secrets=[self._last_token])

    def _decide(self, what: str, err: grpc.RpcError, attempt: int, auth_refreshed: bool,
                replay_id: bytes | None = None) -> tuple[str, float]:
        """Apply the retry policy: return ("auth", 0) or ("retry", delay), or raise the classified error."""
        kind = classify_rpc_error(err)
        message = self._message(what, err)
        if kind == "corrupted":
            raise ReplayIdCorrupted(message, replay_id)
        if kind == "auth":
            if not auth_refreshed and self._on_auth_error is not None:
                log.warning("Pub/Sub %s refused the access token; refreshing it once and retrying", what)
                return "auth", 0.0
            raise PermanentError(ErrorCode.SALESFORCE_CONFIGURATION_ERROR, message)
        if kind == "transient":
            if attempt < self.max_retries:
                delay = self.backoff_seconds * (2**attempt)
                log.warning("%s; retry %d/%d in %.1f s", message, attempt + 1, self.max_retries, delay)
                return "retry", delay
            raise TransientError(ErrorCode.SALESFORCE_UNAVAILABLE, f"{message} (after {attempt} retries)")
        raise PermanentError(ErrorCode.SALESFORCE_CONFIGURATION_ERROR, message)

    def _unary(self, name: str, call: Callable[[Any], Any]) -> Any:
        attempt, refreshed = 0, False
        while True:
            self.calls[name] += 1
            try:
                return call(self._metadata())
            except grpc.RpcError as err:
                action, delay = self._decide(name, err, attempt, refreshed)
                if action == "auth":
                    refreshed = True
                    self._on_auth_error()  # type: ignore[misc]
                    continue
                attempt += 1
                time.sleep(delay)

    # ------------------------------------------------------------------ topics, schemas, decoding

    def get_topic(self, topic: str) -> pb2.TopicInfo:
        stub = self._sync_stub()
        return self._unary("GetTopic", lambda md: stub.GetTopic(pb2.TopicRequest(topic_name=topic), metadata=md,
                                                                timeout=self.rpc_timeout))

    def get_schema(self, schema_id: str) -> dict:
        """The parsed Avro schema JSON for ``schema_id`` (cached: a schema id never changes meaning)."""
        return json.loads(self._schema(schema_id).schema_json)

    def _schema(self, schema_id: str) -> _Schema:
        cached = self._schemas.get(schema_id)
        if cached is None:
            stub = self._sync_stub()
            info = self._unary("GetSchema", lambda md: stub.GetSchema(pb2.SchemaRequest(schema_id=schema_id),
                                                                      metadata=md, timeout=self.rpc_timeout))
            cached = self._remember_schema(info)
        return cached

    def _remember_schema(self, info: pb2.SchemaInfo) -> _Schema:
        schema = json.loads(info.schema_json)
        schema.pop("uuid", None)
        entry = _Schema(info.schema_id, info.schema_json, fastavro.parse_schema(schema))
        self._schemas[info.schema_id] = entry
        return entry

    def _decode(self, event: pb2.ConsumerEvent, schema: _Schema | None, schema_error: str | None) -> DecodedEvent:
        replay_id = bytes(event.replay_id)
        base = dict(replay_id=replay_id, replay_id_hex=replay_id_to_hex(replay_id), event_id=event.event.id,
                    schema_id=event.event.schema_id)
        if schema is None:
            return DecodedEvent(payload={}, decode_error=schema_error or "schema unavailable", **base)
        try:
            buf = io.BytesIO(event.event.payload)
            record = fastavro.schemaless_reader(buf, schema.parsed, None)
            if buf.tell() != len(event.event.payload):
                raise ValueError(f"{len(event.event.payload) - buf.tell()} bytes left after the Avro datum")
            if not isinstance(record, dict):
                raise ValueError("the Avro datum is not a record")
        except Exception as exc:  # noqa: BLE001 - any payload problem is reported, never raised
            return DecodedEvent(payload={}, decode_error=safe_message(f"{type(exc).__name__}: {exc}", 200), **base)
        return DecodedEvent(payload=record, **base)

    def _decode_all(self, events, lookup: Callable[[str], _Schema]) -> list[DecodedEvent]:
        out = []
        for event in events:
            schema, problem = None, None
            try:
                schema = lookup(event.event.schema_id)
            except (PermanentError, ValueError) as exc:
                problem = f"schema {event.event.schema_id!r} unavailable: {exc}"
            out.append(self._decode(event, schema, problem))
        return out

    # ------------------------------------------------------------------ fetch (blocking)

    def fetch(
        self,
        topic: str,
        replay_preset: ReplayPreset = "LATEST",
        replay_id: bytes | None = None,
        max_events: int = 100,
        batch_size: int = 100,
        wait_seconds: float = 5.0,
    ) -> FetchResult:
        """Drain up to ``max_events`` events, ``batch_size`` (≤ 100) per FetchRequest.

        Stops at ``max_events``, when the server shows the stream is caught up (a keepalive, or a
        batch ending at the topic's latest replay id), or after ``wait_seconds`` without a response.
        """
        state = _Fetch(topic, replay_preset, replay_id, max_events, batch_size, stop_on_keepalive=True)
        attempt, refreshed = 0, False
        while True:
            try:
                self._fetch_stream(state, wait_seconds)
                break
            except grpc.RpcError as err:
                if state.responses_in_stream:
                    attempt = 0  # progress resets the retry budget, as the official client does
                action, delay = self._decide("Subscribe", err, attempt, refreshed, state.resume_from)
                if action == "auth":
                    refreshed = True
                    self._on_auth_error()  # type: ignore[misc]
                else:
                    attempt += 1
                    time.sleep(delay)
                state.resubscribes += 1
        result = state.result()
        log.info("Pub/Sub fetch on %s: %d event(s), %d resubscribe(s), latest replay id %s", topic,
                 len(result.events), result.resubscribes, result.latest_replay_id_hex or "-")
        return result

    def _fetch_stream(self, state: _Fetch, wait_seconds: float) -> None:
        stub = self._sync_stub()
        requests: queue.Queue = queue.Queue()
        responses: queue.Queue = queue.Queue()

        def request_iter():
            while True:
                item = requests.get()
                if item is None:
                    return
                self.calls["FetchRequest"] += 1
                yield item

        requests.put(state.subscribe_request())
        self.calls["Subscribe"] += 1
        call = stub.Subscribe(request_iter(), metadata=self._metadata())

        def pump() -> None:
            try:
                for resp in call:
                    responses.put(resp)
                responses.put(_END)
            except grpc.RpcError as err:
                responses.put(err)

        threading.Thread(target=pump, name="pubsub-fetch", daemon=True).start()
        try:
            while not state.done:
                try:
                    item = responses.get(timeout=wait_seconds)
                except queue.Empty:
                    return
                if item is _END:
                    return
                if isinstance(item, grpc.RpcError):
                    raise item
                decoded = self._decode_all(item.events, self._schema)
                more = state.on_response(item, decoded)
                if more is not None:
                    requests.put(more)
        finally:
            requests.put(None)
            call.cancel()

    # ------------------------------------------------------------------ fetch (asyncio, for triggers)

    async def afetch(
        self,
        topic: str,
        replay_preset: ReplayPreset = "LATEST",
        replay_id: bytes | None = None,
        max_events: int = 100,
        batch_size: int = 100,
        wait_seconds: float = 5.0,
    ) -> FetchResult:
        """:meth:`fetch` on ``grpc.aio``: never blocks the event loop (except ``on_auth_error``)."""
        state = _Fetch(topic, replay_preset, replay_id, max_events, batch_size, stop_on_keepalive=True)
        await self._arun(state, idle_timeout=wait_seconds, deadline=None)
        return state.result()

    async def _arun(self, state: _Fetch, idle_timeout: float | None, deadline: float | None) -> None:
        async with grpc.aio.secure_channel(self.endpoint, self._credentials()) as channel:
            stub = pb2_grpc.PubSubStub(channel)
            attempt, refreshed = 0, False
            while True:
                try:
                    await self._astream(stub, state, idle_timeout, deadline)
                    return
                except grpc.RpcError as err:
                    if state.responses_in_stream:
                        attempt = 0
                    action, delay = self._decide("Subscribe", err, attempt, refreshed, state.resume_from)
                    if action == "auth":
                        refreshed = True
                        self._on_auth_error()  # type: ignore[misc]
                    else:
                        attempt += 1
                        await asyncio.sleep(delay)
                    state.resubscribes += 1

    async def _aschema(self, stub: pb2_grpc.PubSubStub, schema_id: str) -> _Schema | None:
        if schema_id in self._schemas:
            return self._schemas[schema_id]
        attempt, refreshed = 0, False
        while True:
            self.calls["GetSchema"] += 1
            try:
                info = await stub.GetSchema(pb2.SchemaRequest(schema_id=schema_id), metadata=self._metadata(),
                                            timeout=self.rpc_timeout)
                return self._remember_schema(info)
            except grpc.RpcError as err:
                action, delay = self._decide("GetSchema", err, attempt, refreshed)
                if action == "auth":
                    refreshed = True
                    self._on_auth_error()  # type: ignore[misc]
                    continue
                attempt += 1
                await asyncio.sleep(delay)

    async def _astream(self, stub: pb2_grpc.PubSubStub, state: _Fetch, idle_timeout: float | None,
                       deadline: float | None) -> None:
        self.calls["Subscribe"] += 1
        call = stub.Subscribe(metadata=self._metadata())
        responses: asyncio.Queue = asyncio.Queue()

        async def pump() -> None:
            try:
                while True:
                    resp = await call.read()
                    if resp is grpc.aio.EOF:
                        await responses.put(_END)
                        return
                    await responses.put(resp)
            except grpc.RpcError as err:
                await responses.put(err)
            except asyncio.CancelledError:
                pass

        async def send(request: pb2.FetchRequest) -> None:
            self.calls["FetchRequest"] += 1
            await call.write(request)

        reader = asyncio.get_running_loop().create_task(pump())
        try:
            await send(state.subscribe_request())
            while not state.done:
                waits = [t for t in (idle_timeout, None if deadline is None else deadline - time.monotonic())
                         if t is not None]
                timeout = min(waits) if waits else None
                if timeout is not None and timeout <= 0:
                    return
                try:
                    item = await asyncio.wait_for(responses.get(), timeout)
                except TimeoutError:
                    return
                if item is _END:
                    return
                if isinstance(item, grpc.RpcError):
                    raise item
                decoded = []
                for event in item.events:
                    schema, problem = None, None
                    try:
                        schema = await self._aschema(stub, event.event.schema_id)
                    except PermanentError as exc:
                        problem = f"schema {event.event.schema_id!r} unavailable: {exc}"
                    decoded.append(self._decode(event, schema, problem))
                more = state.on_response(item, decoded)
                if more is not None:
                    await send(more)
        finally:
            call.cancel()
            reader.cancel()

    # ------------------------------------------------------------------ publish

    def publish(self, topic: str, events: list[dict], created_by_id: str | None = None) -> list[bytes]:
        """Avro-encode ``events`` with the topic's schema and publish them; return their replay ids.

        ``CreatedDate`` (epoch ms) defaults to now and ``CreatedById`` to ``created_by_id``; fields
        the event does not set are null. Sent in batches of 200. A transient failure is retried,
        so an event may be stored twice; both copies carry the same event id.
        """
        info = self.get_topic(topic)
        schema = self._schema(info.schema_id)
        field_names = [f["name"] for f in json.loads(schema.schema_json)["fields"]]
        producer_events = []
        for fields in events:
            record = {name: fields.get(name) for name in field_names}
            record["CreatedDate"] = int(fields.get("CreatedDate") or time.time() * 1000)
            record["CreatedById"] = fields.get("CreatedById") or created_by_id
            if not record["CreatedById"]:
                raise ValueError("CreatedById is required: pass created_by_id or set it on the event")
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, schema.parsed, record)
            producer_events.append(pb2.ProducerEvent(id=str(uuid.uuid4()), schema_id=info.schema_id,
                                                     payload=buf.getvalue()))
        return self.publish_raw(topic, producer_events)

    def publish_raw(self, topic: str, events: list[pb2.ProducerEvent]) -> list[bytes]:
        """Publish already-encoded events (e.g. to test how subscribers handle a bad payload)."""
        stub = self._sync_stub()
        replay_ids: list[bytes] = []
        outcomes: list[tuple[bytes | None, str | None]] = []
        for start in range(0, len(events), MAX_PUBLISH_BATCH):
            chunk = events[start:start + MAX_PUBLISH_BATCH]
            request = pb2.PublishRequest(topic_name=topic, events=chunk)
            response = self._unary("Publish", lambda md, r=request: stub.Publish(r, metadata=md,
                                                                                  timeout=self.rpc_timeout))
            for result in response.results:
                error = result.error.msg if result.HasField("error") else None
                outcomes.append((bytes(result.replay_id) or None, error))
                replay_ids.append(bytes(result.replay_id))
        failed = [(i, err) for i, (_, err) in enumerate(outcomes) if err]
        if failed:
            raise PublishFailed(f"{len(failed)} of {len(outcomes)} event(s) refused; first: {failed[0][1]}", outcomes)
        return replay_ids
