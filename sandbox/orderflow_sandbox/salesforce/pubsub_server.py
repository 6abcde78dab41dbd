"""The Pub/Sub API emulator: service ``eventbus.v1.PubSub`` over gRPC + TLS.

Serves the org's :class:`~orderflow_sandbox.salesforce.eventbus.EventBus` with the behaviour
documented for Salesforce (reference/salesforce.md §1): auth metadata on every call, errors as a
gRPC status plus an ``error-code`` trailer, pull-based flow control (at most 100 events owed,
``pending_num_requested`` in every response), replay presets, keepalives carrying
``latest_replay_id``, an idle close when nothing is owed, and Publish without Avro validation.

Fault kinds (``org.faults``, targets ``pubsub.Subscribe``, ``pubsub.GetTopic``, ``pubsub.GetSchema``,
``pubsub.Publish``): ``latency`` (sleep ``latency_ms``), ``service_unavailable`` (UNAVAILABLE with
``…service.unavailable``), ``invalid_session`` (UNAUTHENTICATED, as for a revoked token) and, on
Subscribe, ``stream_reset``: checked before each FetchResponse that carries events; when it fires
the response goes out with only the first half of its events (rounded up) and the stream is then
aborted with UNAVAILABLE "RST_STREAM", as a dropped HTTP/2 stream looks to a client.

Timings come from the environment, read when a stream opens, so tests can shorten them:
``ORDERFLOW_SANDBOX_PUBSUB_KEEPALIVE_SECONDS`` (default 270) and
``ORDERFLOW_SANDBOX_PUBSUB_IDLE_CLOSE_SECONDS`` (default 60).
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures

import fastavro
import grpc

from orderflow.salesforce.pubsub import pubsub_api_pb2 as pb2
from orderflow.salesforce.pubsub import pubsub_api_pb2_grpc as pb2_grpc
from orderflow_sandbox.salesforce.eventbus import EventBus, UnknownTopic, replay_id_bytes, replay_id_int
from orderflow_sandbox.tls import TlsFiles

log = logging.getLogger(__name__)

MAX_REQUESTED = 100
ERROR_PREFIX = "sfdc.platform.eventbus.grpc."
AUTH_ERROR = ERROR_PREFIX + "service.auth.error"
SERVICE_UNAVAILABLE = ERROR_PREFIX + "service.unavailable"
TOPIC_NOT_FOUND = ERROR_PREFIX + "topic.not.found"
SCHEMA_NOT_FOUND = ERROR_PREFIX + "schema.validation.failed"
REPLAY_ID_CORRUPTED = ERROR_PREFIX + "subscription.fetch.replayid.corrupted"
REPLAY_ID_MISSING = ERROR_PREFIX + "subscription.fetch.replayid.validation.failed"
REQUESTED_INVALID = ERROR_PREFIX + "subscription.fetch.requested.events.invalid"
TOPIC_MISMATCH = ERROR_PREFIX + "subscription.fetch.topic.mismatch"
PUBLISH_COUNT_INVALID = ERROR_PREFIX + "publish.event.count.invalid"
MAX_PUBLISH_EVENTS = 200


def _env_seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


class _Abort(Exception):
    def __init__(self, status: grpc.StatusCode, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


def _abort(context: grpc.ServicerContext, rpc_id: str, err: _Abort) -> None:
    context.set_trailing_metadata((("error-code", err.error_code), ("rpc-id", rpc_id)))
    context.abort(err.status, f"{err.message} rpcId: {rpc_id}")


class PubSubServicer(pb2_grpc.PubSubServicer):
    """The emulated service; one instance per org."""

    def __init__(self, org) -> None:
        self.org = org
        self.bus: EventBus = org.eventbus

    # ------------------------------------------------------------------ common checks

    def _check(self, context: grpc.ServicerContext, rpc: str) -> None:
        """Record the call, apply faults, then authenticate the metadata (raises :class:`_Abort`)."""
        self.org.stats.hit(f"pubsub.{rpc}")
        for rule in self.org.faults.take(f"pubsub.{rpc}", {"latency", "service_unavailable", "invalid_session"}):
            if rule.kind == "latency":
                time.sleep(rule.latency_ms / 1000)
            elif rule.kind == "service_unavailable":
                raise _Abort(grpc.StatusCode.UNAVAILABLE, SERVICE_UNAVAILABLE, "The service is unavailable.")
            elif rule.kind == "invalid_session":
                raise _Abort(grpc.StatusCode.UNAUTHENTICATED, AUTH_ERROR, "The session is invalid or expired.")
        md = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        token, instance_url, tenant = md.get("accesstoken"), md.get("instanceurl"), md.get("tenantid")
        if not token or not instance_url or not tenant:
            raise _Abort(grpc.StatusCode.UNAUTHENTICATED, AUTH_ERROR,
                         "Missing auth headers: accesstoken, instanceurl and tenantid are required.")
        if tenant != self.org.org_id or instance_url.rstrip("/") != self.org.instance_url.rstrip("/"):
            raise _Abort(grpc.StatusCode.UNAUTHENTICATED, AUTH_ERROR,
                         "The tenantid or instanceurl header does not match the org.")
        if not self.org.validate_access_token(token):
            raise _Abort(grpc.StatusCode.UNAUTHENTICATED, AUTH_ERROR, "The access token is invalid or expired.")

    def _topic(self, name: str):
        try:
            return self.bus.topic(name)
        except UnknownTopic:
            raise _Abort(grpc.StatusCode.NOT_FOUND, TOPIC_NOT_FOUND, f"Topic not found: {name}") from None

    # ------------------------------------------------------------------ unary RPCs

    def GetTopic(self, request: pb2.TopicRequest, context: grpc.ServicerContext) -> pb2.TopicInfo:  # noqa: N802
        rpc_id = str(uuid.uuid4())
        try:
            self._check(context, "GetTopic")
            topic = self._topic(request.topic_name)
        except _Abort as err:
            _abort(context, rpc_id, err)
            raise
        return pb2.TopicInfo(topic_name=topic.topic_name, tenant_guid=self.org.org_id, can_publish=True,
                             can_subscribe=True, schema_id=topic.schema_id, rpc_id=rpc_id)

    def GetSchema(self, request: pb2.SchemaRequest, context: grpc.ServicerContext) -> pb2.SchemaInfo:  # noqa: N802
        rpc_id = str(uuid.uuid4())
        try:
            self._check(context, "GetSchema")
            topic = self.bus.schema_by_id(request.schema_id)
            if topic is None:
                raise _Abort(grpc.StatusCode.NOT_FOUND, SCHEMA_NOT_FOUND, f"Schema not found: {request.schema_id}")
        except _Abort as err:
            _abort(context, rpc_id, err)
            raise
        return pb2.SchemaInfo(schema_json=topic.schema_json, schema_id=topic.schema_id, rpc_id=rpc_id)

    def Publish(self, request: pb2.PublishRequest, context: grpc.ServicerContext) -> pb2.PublishResponse:  # noqa: N802
        rpc_id = str(uuid.uuid4())
        try:
            self._check(context, "Publish")
            topic = self._topic(request.topic_name)
            if not request.events or len(request.events) > MAX_PUBLISH_EVENTS:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, PUBLISH_COUNT_INVALID,
                             f"A publish request carries 1 to {MAX_PUBLISH_EVENTS} events.")
        except _Abort as err:
            _abort(context, rpc_id, err)
            raise
        parsed = fastavro.parse_schema(topic.schema)
        results = []
        for event in request.events:
            if event.schema_id != topic.schema_id:
                results.append(pb2.PublishResult(
                    error=pb2.Error(code=pb2.PUBLISH, msg=f"Schema id {event.schema_id!r} is not the topic's schema."),
                    correlation_key=event.id))
                continue
            # Salesforce stores payloads without validating them; subscribers must filter bad ones.
            try:
                buf = io.BytesIO(event.payload)
                fastavro.schemaless_reader(buf, parsed, None)
                if buf.tell() != len(event.payload):
                    raise ValueError("trailing bytes")
            except Exception:  # noqa: BLE001 - any decode failure is only reported
                self.org.stats.hit("pubsub.undecodable_published")
                log.warning("Publish on %s: event %s does not decode with schema %s (stored anyway)",
                            topic.topic_name, event.id or "-", topic.schema_id)
            replay_id = self.bus.publish_raw(topic.topic_name, event.payload, event.schema_id, event.id or None)
            results.append(pb2.PublishResult(replay_id=replay_id_bytes(replay_id), correlation_key=event.id))
        self.org.stats.hit("pubsub.events_published", sum(1 for r in results if r.replay_id))
        return pb2.PublishResponse(results=results, schema_id=topic.schema_id, rpc_id=rpc_id)

    # ------------------------------------------------------------------ Subscribe

    def Subscribe(self, request_iterator: Iterator[pb2.FetchRequest],  # noqa: N802
                  context: grpc.ServicerContext) -> Iterator[pb2.FetchResponse]:
        rpc_id = str(uuid.uuid4())
        try:
            self._check(context, "Subscribe")
            first = next(request_iterator, None)
            if first is None:
                return
            stream = _Stream(self, first, rpc_id)
        except _Abort as err:
            _abort(context, rpc_id, err)
            return
        reader = threading.Thread(target=stream.read_requests, args=(request_iterator,), daemon=True,
                                  name=f"pubsub-fetch-{rpc_id[:8]}")
        reader.start()
        context.add_callback(stream.close)
        try:
            yield from stream.responses(context)
        except _Abort as err:
            _abort(context, rpc_id, err)
        finally:
            stream.close()


class _Stream:
    """One Subscribe call: the owed count, the position, and the response loop."""

    def __init__(self, service: PubSubServicer, first: pb2.FetchRequest, rpc_id: str) -> None:
        self.service, self.bus, self.rpc_id = service, service.bus, rpc_id
        topic = service._topic(first.topic_name)
        self.topic = topic.topic_name
        self.keepalive_s = _env_seconds("ORDERFLOW_SANDBOX_PUBSUB_KEEPALIVE_SECONDS", 270)
        self.idle_close_s = _env_seconds("ORDERFLOW_SANDBOX_PUBSUB_IDLE_CLOSE_SECONDS", 60)
        if first.replay_preset == pb2.CUSTOM:
            if not first.replay_id:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, REPLAY_ID_MISSING,
                             "The replay_preset field in FetchRequest is set to ReplayPreset.CUSTOM, "
                             "but no Replay ID value is set.")
            try:
                position = replay_id_int(first.replay_id)
            except ValueError:
                position = -1
            if not self.bus.is_valid_position(self.topic, position):
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, REPLAY_ID_CORRUPTED,
                             "The Replay ID validation failed: it is invalid or outside the retention window.")
            self.position = position
        elif first.replay_preset == pb2.EARLIEST:
            self.position = 0
        else:  # LATEST (also the default): only events published from now on
            self.position = self.bus.latest_replay_id(self.topic)
        self.lock = threading.Lock()
        self.pending = 0
        self.closed = False
        self.error: _Abort | None = None
        self.last_request = time.monotonic()
        self._add_request(first)

    def _add_request(self, request: pb2.FetchRequest) -> None:
        self.service.org.stats.hit("pubsub.FetchRequest")
        if request.topic_name and request.topic_name != self.topic:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, TOPIC_MISMATCH,
                         f"The topic {request.topic_name} differs from the subscription's topic {self.topic}.")
        if request.num_requested <= 0:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, REQUESTED_INVALID,
                         "num_requested must be greater than 0.")
        with self.lock:
            self.pending = min(MAX_REQUESTED, self.pending + request.num_requested)
            self.last_request = time.monotonic()

    def read_requests(self, request_iterator: Iterator[pb2.FetchRequest]) -> None:
        try:
            for request in request_iterator:
                self._add_request(request)
                self.bus.wake()
        except _Abort as err:
            self.error = err
        except Exception:  # noqa: BLE001 - the client went away; the response loop ends on close
            pass
        finally:
            # Half-close: the client sends no more requests; delivery of what is owed goes on.
            self.bus.wake()

    def close(self) -> None:
        self.closed = True
        self.bus.wake()

    def _response(self, events, pending: int) -> pb2.FetchResponse:
        # With events, latest_replay_id is the tip of the topic (it may be ahead of the last event:
        # more is coming). A keepalive is only sent when nothing after the position was found, and
        # carries the position itself: a client resubscribing from it must lose nothing, even when
        # an event was published between our read and this response.
        latest = max(self.position, self.bus.latest_replay_id(self.topic)) if events else self.position
        return pb2.FetchResponse(events=events, latest_replay_id=replay_id_bytes(latest), rpc_id=self.rpc_id,
                                 pending_num_requested=pending)

    def responses(self, context: grpc.ServicerContext) -> Iterator[pb2.FetchResponse]:
        faults, stats = self.service.org.faults, self.service.org.stats
        last_sent = time.monotonic()
        while not self.closed and context.is_active():
            if self.error is not None:
                raise self.error
            version = self.bus.version
            with self.lock:
                pending = self.pending
            if pending > 0:
                stored = self.bus.read_after(self.topic, self.position, pending)
                if stored:
                    reset = bool(faults.take("pubsub.Subscribe", {"stream_reset"}))
                    if reset:
                        stored = stored[: (len(stored) + 1) // 2]
                    events = [
                        pb2.ConsumerEvent(
                            event=pb2.ProducerEvent(id=s.event_id, schema_id=s.schema_id, payload=s.payload),
                            replay_id=replay_id_bytes(s.replay_id),
                        )
                        for s in stored
                    ]
                    with self.lock:
                        self.pending -= len(events)
                        pending = self.pending
                    self.position = stored[-1].replay_id
                    stats.hit("pubsub.events_delivered", len(events))
                    yield self._response(events, pending)
                    last_sent = time.monotonic()
                    if reset:
                        stats.hit("pubsub.stream_resets")
                        raise _Abort(grpc.StatusCode.UNAVAILABLE, SERVICE_UNAVAILABLE,
                                     "RST_STREAM closed stream. HTTP/2 error code: INTERNAL_ERROR")
                    continue
            now = time.monotonic()
            if pending > 0 and now - last_sent >= self.keepalive_s:
                stats.hit("pubsub.keepalives")
                yield self._response([], pending)
                last_sent = now
                continue
            if pending == 0 and now - max(self.last_request, last_sent) >= self.idle_close_s:
                log.info("Subscribe %s: no FetchRequest for %.0f s with nothing owed; closing", self.rpc_id,
                         self.idle_close_s)
                return
            deadline = self.keepalive_s - (now - last_sent) if pending > 0 else self.idle_close_s
            # Bounded wait: publishers in other processes write the database without signalling.
            self.bus.wait(version, max(0.01, min(deadline, 0.5)))


def start_pubsub_server(org, host: str, port: int, tls: TlsFiles, max_workers: int = 32) -> grpc.Server:
    """Start ``eventbus.v1.PubSub`` for ``org`` on ``host:port`` with the sandbox's TLS certificate.

    Each open Subscribe stream holds one worker thread (plus a request reader), so
    ``max_workers`` bounds the concurrent streams. ``server.stop(grace)`` cancels open streams
    after the grace period; their loops notice within half a second.
    """
    servicer = PubSubServicer(org)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sandbox-pubsub"),
        options=[("grpc.so_reuseport", 0)],
    )
    pb2_grpc.add_PubSubServicer_to_server(servicer, server)
    credentials = grpc.ssl_server_credentials(
        [(tls.server_key.read_bytes(), tls.server_cert.read_bytes())], root_certificates=None,
        require_client_auth=False,
    )
    bound = server.add_secure_port(f"{host}:{port}", credentials)
    if not bound:
        raise RuntimeError(f"could not bind the Pub/Sub emulator to {host}:{port}")
    server.start()
    log.info("Pub/Sub emulator listening on %s:%s", host, bound)
    return server
