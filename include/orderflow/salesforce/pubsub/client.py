"""Salesforce Pub/Sub API client: topic/schema lookup, flow-controlled fetch, publish.

What callers may rely on:

* ``fetch`` / ``afetch`` return events in replay order and a ``latest_replay_id`` that is safe to
  checkpoint once the returned events are handled: it is the last returned event's replay id, or
  a later position the server reported while nothing was pending (a keepalive). Events the
  server sent after the fetch decided to stop are never reflected in it.
* One :class:`RetryPolicy` decides after every failed RPC (GetTopic, GetSchema, Publish and the
  Subscribe stream of ``fetch`` and of ``afetch``):

  * UNAVAILABLE (``service.unavailable``, an HTTP/2 stream reset) and other transient statuses
    are retried, with bounded retries and exponential backoff. A stream is resubscribed from
    the last replay id received (CUSTOM): nothing is lost and nothing already returned is
    returned again; a stream that delivered something since it was (re)subscribed starts its
    retry budget over.
  * ``…replayid.corrupted`` (or ``…replayid.validation.failed``) raises :class:`ReplayIdCorrupted`;
    the caller decides to fall back to EARLIEST.
  * UNAUTHENTICATED / ``…auth…`` codes call ``on_auth_error`` once per operation (refresh the
    token; ``afetch`` calls it on a worker thread), then retry; refused again, the call fails.
  * Anything else fails at once (:class:`~orderflow.errors.PermanentError`).

* A payload that does not decode, or whose schema cannot be had, comes back with ``decode_error``
  set (one decode path for ``fetch`` and ``afetch``); it never stops a fetch.
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
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import fastavro
import grpc
import grpc.aio

from orderflow.errors import ErrorCode, PermanentError, TransientError, register_secret, safe_message
from orderflow.salesforce.pubsub import pubsub_api_pb2 as pb2
from orderflow.salesforce.pubsub import pubsub_api_pb2_grpc as pb2_grpc

log = logging.getLogger(__name__)

ReplayPreset = Literal["LATEST", "EARLIEST", "CUSTOM"]
Metadata = tuple[tuple[str, str], ...]
T = TypeVar("T")
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


# --------------------------------------------------------------------------- the retry policy


def describe_rpc_error(what: str, err: grpc.RpcError, secrets: Iterable[str] = ()) -> str:
    """``Pub/Sub <what>: <STATUS>: <details> [<error-code>]``, scrubbed of secrets."""
    status, code = _status(err), _error_code(err)
    text = f"Pub/Sub {what}: {status.name if status else 'error'}: {_details(err)}"
    if code:
        text += f" [{code}]"
    return safe_message(text, secrets=secrets)


@dataclass(frozen=True)
class RetryPolicy:
    """The retry and re-auth rule of every Pub/Sub RPC; :meth:`start` it once per operation.

    After ``max_retries`` transient failures in a row the operation fails; the n-th retry waits
    ``backoff_seconds * 2**n`` (n from 0).
    """

    max_retries: int = 3
    backoff_seconds: float = 1.0

    def start(self, what: str, *, can_refresh: bool,
              secrets: Callable[[], Iterable[str]] = tuple) -> RetryBudget:
        """The budget of one operation of RPC ``what``; ``can_refresh``: there is an ``on_auth_error``."""
        return RetryBudget(self, what, can_refresh, secrets)


class RetryBudget:
    """One operation's way through a :class:`RetryPolicy` (the sync and async drivers share it)."""

    def __init__(self, policy: RetryPolicy, what: str, can_refresh: bool,
                 secrets: Callable[[], Iterable[str]]) -> None:
        self.policy, self.what = policy, what
        self.can_refresh = can_refresh
        self.secrets = secrets
        self.retries = 0  # transient failures since the start or since the stream last made progress
        self.refreshed = False

    def after(self, err: grpc.RpcError, stream: _Fetch | None = None) -> float | None:
        """Decide after a failed try: ``None`` = refresh the token, then try again at once; a number
        = wait that many seconds, then try again. Raises the classified error when the policy gives up.

        ``stream``: the fetch whose Subscribe failed. Events it received since it was (re)subscribed
        are progress (the budget starts over, as Salesforce's own client does); a corrupted replay id
        is reported with its resume position; every retry counts as a resubscription.
        """
        if stream is not None and stream.responses_in_stream:
            self.retries = 0
        kind = classify_rpc_error(err)
        message = describe_rpc_error(self.what, err, self.secrets())
        if kind == "corrupted":
            raise ReplayIdCorrupted(message, stream.resume_from if stream is not None else None)
        if kind == "auth" and self.can_refresh and not self.refreshed:
            self.refreshed = True
            log.warning("Pub/Sub %s refused the access token; refreshing it once and retrying", self.what)
            delay = None
        elif kind == "transient" and self.retries < self.policy.max_retries:
            delay = self.policy.backoff_seconds * (2**self.retries)
            self.retries += 1
            log.warning("%s; retry %d/%d in %.1f s", message, self.retries, self.policy.max_retries, delay)
        elif kind == "transient":
            raise TransientError(ErrorCode.SALESFORCE_UNAVAILABLE, f"{message} (after {self.retries} retries)")
        else:
            raise PermanentError(ErrorCode.SALESFORCE_CONFIGURATION_ERROR, message)
        if stream is not None:
            stream.resubscribes += 1
        return delay


# --------------------------------------------------------------------------- the fetch state machine


class _Fetch:
    """Transport-free bookkeeping of one fetch across (re)subscriptions.

    The fetch ends at ``max_events``, or when the server shows it is caught up: a keepalive (no
    events; its position is safe to resume from) or a batch ending at the topic's latest replay id.
    """

    def __init__(self, topic: str, preset: ReplayPreset, replay_id: bytes | None, max_events: int,
                 batch_size: int) -> None:
        if preset not in _PRESETS:
            raise ValueError(f"replay_preset must be LATEST, EARLIEST or CUSTOM, not {preset!r}")
        if preset == "CUSTOM" and not replay_id:
            raise ValueError("replay_preset CUSTOM needs a replay_id")
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.topic, self.preset = topic, preset
        self.max_events, self.batch_size = max_events, max(1, min(batch_size, MAX_BATCH))
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
            self.done = True
            return None
        self.events.extend(decoded)
        self.latest = self.resume_from = decoded[-1].replay_id
        # the server says this was the tip: nothing more to drain now
        self.at_tip = bool(resp.latest_replay_id) and resp.latest_replay_id == decoded[-1].replay_id
        if self.at_tip or len(self.events) >= self.max_events:
            self.done = True
            return None
        if resp.pending_num_requested == 0:
            return pb2.FetchRequest(topic_name=self.topic, num_requested=self._next_n())
        return None

    def result(self) -> FetchResult:
        return FetchResult(list(self.events), self.latest, self.resubscribes, self.at_tip)


_END = object()


def _pumped(item: Any) -> pb2.FetchResponse | None:
    """What a stream's reader handed over: a response, ``None`` at the end; a stream error is raised."""
    if isinstance(item, grpc.RpcError):
        raise item
    return None if item is _END else item


# --------------------------------------------------------------------------- decoding


@dataclass
class _Schema:
    schema_id: str
    schema_json: str
    parsed: Any = field(repr=False)


# Why a schema cannot be had (GetSchema refused it, or it does not parse): its events come back
# with decode_error set. A transient failure that outlasts the retries stops the fetch instead.
_SCHEMA_PROBLEMS = (PermanentError, ValueError)


def _schema_problem(schema_id: str, exc: Exception) -> str:
    return f"schema {schema_id!r} unavailable: {exc}"


def _schema_ids(events: Iterable[pb2.ConsumerEvent]) -> list[str]:
    return list(dict.fromkeys(event.event.schema_id for event in events))


def decode_event(event: pb2.ConsumerEvent, schema: _Schema | str) -> DecodedEvent:
    """The one decode path (``fetch`` and ``afetch``): ``schema`` is the event's schema or why it is unavailable.

    Never raises: any payload problem is reported in ``decode_error`` with an empty payload.
    """
    replay_id = bytes(event.replay_id)
    base = dict(replay_id=replay_id, replay_id_hex=replay_id_to_hex(replay_id), event_id=event.event.id,
                schema_id=event.event.schema_id)
    if isinstance(schema, str):
        return DecodedEvent(payload={}, decode_error=schema, **base)
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


def _decode_batch(events: Iterable[pb2.ConsumerEvent], schemas: dict[str, _Schema | str]) -> list[DecodedEvent]:
    return [decode_event(event, schemas[event.event.schema_id]) for event in events]


# --------------------------------------------------------------------------- the client


class PubSubClient:
    """A client of ``eventbus.v1.PubSub`` (Salesforce or the sandbox emulator).

    ``access_token_provider`` is called for every RPC, so a refreshed token is picked up;
    ``on_auth_error`` is called (once per operation) when the server refuses the token, and is
    expected to refresh it. ``ca_bundle`` is a PEM file to verify the server against (None: the
    system roots). ``max_retries``/``backoff_seconds`` make the :class:`RetryPolicy` of every
    RPC. ``calls`` counts RPCs (every try) and FetchRequests by name.
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
        self.retry_policy = RetryPolicy(max_retries, backoff_seconds)
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

    def _metadata(self) -> Metadata:
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

    def _budget(self, what: str) -> RetryBudget:
        return self.retry_policy.start(what, can_refresh=self._on_auth_error is not None,
                                       secrets=lambda: (self._last_token,))

    def _call(self, what: str, attempt: Callable[[Metadata], T], stream: _Fetch | None = None) -> T:
        """RPC ``what`` under the retry policy; ``attempt`` makes one try with the call metadata."""
        budget = self._budget(what)
        while True:
            self.calls[what] += 1
            try:
                return attempt(self._metadata())
            except grpc.RpcError as err:
                delay = budget.after(err, stream)
            if delay is None:
                self._on_auth_error()  # type: ignore[misc]
            else:
                time.sleep(delay)

    async def _acall(self, what: str, attempt: Callable[[Metadata], Awaitable[T]],
                     stream: _Fetch | None = None) -> T:
        """:meth:`_call` on the event loop; the token refresh runs on a worker thread."""
        budget = self._budget(what)
        while True:
            self.calls[what] += 1
            try:
                return await attempt(self._metadata())
            except grpc.RpcError as err:
                delay = budget.after(err, stream)
            if delay is None:
                await asyncio.to_thread(self._on_auth_error)  # type: ignore[arg-type]
            else:
                await asyncio.sleep(delay)

    # ------------------------------------------------------------------ topics, schemas

    def get_topic(self, topic: str) -> pb2.TopicInfo:
        stub = self._sync_stub()
        return self._call("GetTopic", lambda md: stub.GetTopic(pb2.TopicRequest(topic_name=topic), metadata=md,
                                                               timeout=self.rpc_timeout))

    def get_schema(self, schema_id: str) -> dict:
        """The parsed Avro schema JSON for ``schema_id`` (cached: a schema id never changes meaning)."""
        return json.loads(self._schema(schema_id).schema_json)

    def _get_schema(self, stub: Any, schema_id: str) -> Callable[[Metadata], Any]:
        """One try of GetSchema on ``stub`` (sync or asyncio)."""
        return lambda md: stub.GetSchema(pb2.SchemaRequest(schema_id=schema_id), metadata=md,
                                         timeout=self.rpc_timeout)

    def _schema(self, schema_id: str) -> _Schema:
        cached = self._schemas.get(schema_id)
        if cached is None:
            cached = self._remember_schema(self._call("GetSchema", self._get_schema(self._sync_stub(), schema_id)))
        return cached

    def _remember_schema(self, info: pb2.SchemaInfo) -> _Schema:
        schema = json.loads(info.schema_json)
        schema.pop("uuid", None)
        entry = _Schema(info.schema_id, info.schema_json, fastavro.parse_schema(schema))
        self._schemas[info.schema_id] = entry
        return entry

    # Each batch's schemas for decode_event: blocking (fetch) and on the event loop (afetch).
    def _schemas_for(self, events: Iterable[pb2.ConsumerEvent]) -> dict[str, _Schema | str]:
        out: dict[str, _Schema | str] = {}
        for schema_id in _schema_ids(events):
            try:
                out[schema_id] = self._schema(schema_id)
            except _SCHEMA_PROBLEMS as exc:
                out[schema_id] = _schema_problem(schema_id, exc)
        return out

    async def _aschemas_for(self, stub: pb2_grpc.PubSubStub,
                            events: Iterable[pb2.ConsumerEvent]) -> dict[str, _Schema | str]:
        out: dict[str, _Schema | str] = {}
        for schema_id in _schema_ids(events):
            try:
                out[schema_id] = self._schemas.get(schema_id) or self._remember_schema(
                    await self._acall("GetSchema", self._get_schema(stub, schema_id)))
            except _SCHEMA_PROBLEMS as exc:
                out[schema_id] = _schema_problem(schema_id, exc)
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
        state = _Fetch(topic, replay_preset, replay_id, max_events, batch_size)
        stub = self._sync_stub()
        self._call("Subscribe", lambda md: self._fetch_stream(stub, state, wait_seconds, md), state)
        result = state.result()
        log.info("Pub/Sub fetch on %s: %d event(s), %d resubscribe(s), latest replay id %s", topic,
                 len(result.events), result.resubscribes, result.latest_replay_id_hex or "-")
        return result

    def _fetch_stream(self, stub: pb2_grpc.PubSubStub, state: _Fetch, wait_seconds: float, metadata: Metadata) -> None:
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
        call = stub.Subscribe(request_iter(), metadata=metadata)

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
                    resp = _pumped(responses.get(timeout=wait_seconds))
                except queue.Empty:
                    return
                if resp is None:
                    return
                more = state.on_response(resp, _decode_batch(resp.events, self._schemas_for(resp.events)))
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
        """:meth:`fetch` on ``grpc.aio``: never blocks the event loop (``on_auth_error`` runs on a thread)."""
        state = _Fetch(topic, replay_preset, replay_id, max_events, batch_size)
        async with grpc.aio.secure_channel(self.endpoint, self._credentials()) as channel:
            stub = pb2_grpc.PubSubStub(channel)
            await self._acall("Subscribe", lambda md: self._astream(stub, state, wait_seconds, md), state)
        return state.result()

    async def _astream(self, stub: pb2_grpc.PubSubStub, state: _Fetch, wait_seconds: float,
                       metadata: Metadata) -> None:
        call = stub.Subscribe(metadata=metadata)
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
                try:
                    resp = _pumped(await asyncio.wait_for(responses.get(), wait_seconds))
                except TimeoutError:
                    return
                if resp is None:
                    return
                schemas = await self._aschemas_for(stub, resp.events)
                more = state.on_response(resp, _decode_batch(resp.events, schemas))
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
            response = self._call("Publish", lambda md, r=request: stub.Publish(r, metadata=md,
                                                                                 timeout=self.rpc_timeout))
            for result in response.results:
                error = result.error.msg if result.HasField("error") else None
                outcomes.append((bytes(result.replay_id) or None, error))
                replay_ids.append(bytes(result.replay_id))
        failed = [(i, err) for i, (_, err) in enumerate(outcomes) if err]
        if failed:
            raise PublishFailed(f"{len(failed)} of {len(outcomes)} event(s) refused; first: {failed[0][1]}", outcomes)
        return replay_ids
