"""Client logic that needs no server: replay id helpers, fetch bookkeeping, error classification,
the retry policy every RPC runs under, and the one decode path of ``fetch`` and ``afetch``."""

from __future__ import annotations

import asyncio
import io
import json
import threading

import fastavro
import grpc
import pytest

from orderflow.errors import ErrorCode, PermanentError, TransientError
from orderflow.salesforce.pubsub import (
    PubSubClient,
    ReplayIdCorrupted,
    classify_rpc_error,
    replay_id_from_hex,
    replay_id_to_hex,
)
from orderflow.salesforce.pubsub import pubsub_api_pb2 as pb2
from orderflow.salesforce.pubsub.client import DecodedEvent, RetryPolicy, _decode_batch, _Fetch, _Schema, decode_event

TOPIC = "/event/OrderProvisionRequested__e"


def _event(n: int) -> DecodedEvent:
    rid = n.to_bytes(8, "big")
    return DecodedEvent(rid, rid.hex(), f"e{n}", {"n": n}, "s")


def test_replay_ids_round_trip_through_hex_and_bad_hex_is_refused() -> None:
    rid = b"\x00\x00\x00\x00\x00\x00\x01\xff"
    assert replay_id_to_hex(rid) == "00000000000001ff"
    assert replay_id_from_hex(" 00000000000001FF ") == rid
    for bad in ("", "xyz", "abc"):
        with pytest.raises(ValueError):
            replay_id_from_hex(bad)


def test_fetch_requests_never_exceed_100_and_follow_pending() -> None:
    state = _Fetch(TOPIC, "EARLIEST", None, max_events=250, batch_size=400)
    first = state.subscribe_request()
    assert (first.replay_preset, first.num_requested, first.replay_id) == (pb2.EARLIEST, 100, b"")
    resp = pb2.FetchResponse(latest_replay_id=(500).to_bytes(8, "big"), pending_num_requested=40)
    assert state.on_response(resp, [_event(i) for i in range(1, 61)]) is None  # 40 still owed
    resp = pb2.FetchResponse(latest_replay_id=(500).to_bytes(8, "big"), pending_num_requested=0)
    more = state.on_response(resp, [_event(i) for i in range(61, 101)])
    assert more is not None and more.num_requested == 100 and more.topic_name == TOPIC
    # after a reset, the resubscription is CUSTOM from the last event received
    again = state.subscribe_request()
    assert (again.replay_preset, again.replay_id, again.num_requested) == (pb2.CUSTOM, _event(100).replay_id, 100)


def test_fetch_stops_at_the_tip_and_at_max_events() -> None:
    state = _Fetch(TOPIC, "CUSTOM", _event(5).replay_id, max_events=10, batch_size=4)
    assert state.subscribe_request().num_requested == 4
    tip = pb2.FetchResponse(latest_replay_id=_event(7).replay_id, pending_num_requested=2)
    state.on_response(tip, [_event(6), _event(7)])
    assert state.done and state.result().latest_replay_id == _event(7).replay_id

    state = _Fetch(TOPIC, "LATEST", None, max_events=3, batch_size=100)
    assert state.subscribe_request().num_requested == 3
    state.on_response(pb2.FetchResponse(latest_replay_id=_event(99).replay_id), [_event(1), _event(2), _event(3)])
    assert state.done and [e.event_id for e in state.result().events] == ["e1", "e2", "e3"]
    assert state.result().latest_replay_id == _event(3).replay_id  # not the server's tip: e4.. were not returned


def test_keepalive_advances_the_position_and_ends_the_fetch() -> None:
    # A drain and the trigger's one-event wait alike: a keepalive means "caught up"; the trigger
    # starts its next wait from the keepalive's position.
    for max_events in (10, 1):
        fetch = _Fetch(TOPIC, "LATEST", None, max_events=max_events, batch_size=max_events)
        fetch.subscribe_request()
        keepalive = pb2.FetchResponse(latest_replay_id=_event(42).replay_id, pending_num_requested=max_events)
        assert fetch.on_response(keepalive, []) is None
        assert fetch.done and fetch.result().latest_replay_id == _event(42).replay_id
        assert fetch.result().events == [] and not fetch.result().at_tip
        again = fetch.subscribe_request()
        assert (again.replay_preset, again.replay_id) == (pb2.CUSTOM, _event(42).replay_id)


def test_invalid_fetch_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="CUSTOM needs a replay_id"):
        _Fetch(TOPIC, "CUSTOM", None, 1, 1)
    with pytest.raises(ValueError, match="replay_preset"):
        _Fetch(TOPIC, "OLDEST", None, 1, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_events"):
        _Fetch(TOPIC, "LATEST", None, 0, 1)


class _FakeError(grpc.RpcError):
    def __init__(self, status: grpc.StatusCode, code: str = "", details: str = "details") -> None:
        self._status, self._code, self._details = status, code, details

    def code(self) -> grpc.StatusCode:
        return self._status

    def details(self) -> str:
        return self._details

    def trailing_metadata(self):
        return (("error-code", self._code),) if self._code else ()


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted",
         "corrupted"),
        (grpc.StatusCode.INVALID_ARGUMENT,
         "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed", "corrupted"),
        (grpc.StatusCode.UNAUTHENTICATED, "", "auth"),
        (grpc.StatusCode.PERMISSION_DENIED, "sfdc.platform.eventbus.grpc.service.auth.error", "auth"),
        (grpc.StatusCode.UNAVAILABLE, "", "transient"),
        (grpc.StatusCode.INTERNAL, "sfdc.platform.eventbus.grpc.service.unavailable", "transient"),
        (grpc.StatusCode.NOT_FOUND, "sfdc.platform.eventbus.grpc.topic.not.found", "permanent"),
        (grpc.StatusCode.INVALID_ARGUMENT, "sfdc.platform.eventbus.grpc.subscription.fetch.topic.mismatch",
         "permanent"),
    ],
)
def test_errors_are_classified_by_status_and_error_code_trailer(status, code, kind) -> None:
    assert classify_rpc_error(_FakeError(status, code)) == kind


# ----------------------------------------------------------------------------- the retry policy

UNAVAILABLE = _FakeError(grpc.StatusCode.UNAVAILABLE, "sfdc.platform.eventbus.grpc.service.unavailable")
REFUSED = _FakeError(grpc.StatusCode.UNAUTHENTICATED, "sfdc.platform.eventbus.grpc.service.auth.error")
CORRUPTED = _FakeError(grpc.StatusCode.INVALID_ARGUMENT,
                       "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted")
NOT_FOUND = _FakeError(grpc.StatusCode.NOT_FOUND, "sfdc.platform.eventbus.grpc.schema.not.found")


def test_policy_retries_transient_failures_with_exponential_backoff_then_gives_up() -> None:
    budget = RetryPolicy(max_retries=3, backoff_seconds=0.5).start("GetTopic", can_refresh=True)
    assert [budget.after(UNAVAILABLE) for _ in range(3)] == [0.5, 1.0, 2.0]
    with pytest.raises(TransientError) as info:
        budget.after(UNAVAILABLE)
    assert info.value.code is ErrorCode.SALESFORCE_UNAVAILABLE
    assert info.value.message == (
        "Pub/Sub GetTopic: UNAVAILABLE: details [sfdc.platform.eventbus.grpc.service.unavailable] (after 3 retries)")


def test_policy_refreshes_the_token_once_per_operation_without_spending_retries() -> None:
    budget = RetryPolicy(max_retries=1, backoff_seconds=0.5).start("Publish", can_refresh=True)
    assert budget.after(REFUSED) is None  # refresh the token, then try again at once
    assert budget.after(UNAVAILABLE) == 0.5  # the one transient retry is still there
    with pytest.raises(PermanentError) as info:
        budget.after(REFUSED)  # refused again: the refresh did not help
    assert info.value.code is ErrorCode.SALESFORCE_CONFIGURATION_ERROR and "auth.error" in info.value.message
    assert RetryPolicy().start("Publish", can_refresh=True).after(REFUSED) is None  # the next operation may refresh
    with pytest.raises(PermanentError):
        RetryPolicy().start("Publish", can_refresh=False).after(REFUSED)  # no on_auth_error: final at once


def test_policy_reports_a_corrupted_replay_id_with_the_stream_position_and_fails_other_errors_at_once() -> None:
    stream = _Fetch(TOPIC, "CUSTOM", _event(9).replay_id, max_events=10, batch_size=10)
    budget = RetryPolicy().start("Subscribe", can_refresh=True)
    with pytest.raises(ReplayIdCorrupted) as info:
        budget.after(CORRUPTED, stream)
    assert info.value.replay_id == _event(9).replay_id and "replayid.corrupted" in info.value.message
    with pytest.raises(ReplayIdCorrupted) as info:
        budget.after(CORRUPTED)  # a unary call has no position
    assert info.value.replay_id is None
    with pytest.raises(PermanentError) as permanent:
        budget.after(NOT_FOUND, stream)
    assert not isinstance(permanent.value, ReplayIdCorrupted) and stream.resubscribes == 0


def test_a_stream_that_made_progress_starts_its_retry_budget_over() -> None:
    stream = _Fetch(TOPIC, "EARLIEST", None, max_events=100, batch_size=2)
    budget = RetryPolicy(max_retries=1, backoff_seconds=0.25).start("Subscribe", can_refresh=True)
    for n in range(1, 4):  # every reset follows a delivered batch: the single retry is never used up
        stream.subscribe_request()
        stream.on_response(pb2.FetchResponse(latest_replay_id=_event(50).replay_id), [_event(n)])
        assert budget.after(UNAVAILABLE, stream) == 0.25
    stream.subscribe_request()
    with pytest.raises(TransientError):  # a reset before anything arrived: the budget is spent
        budget.after(UNAVAILABLE, stream)
    assert stream.resubscribes == 3
    assert stream.subscribe_request().replay_id == _event(3).replay_id  # resubscribed from the last event


def test_policy_messages_never_carry_the_token() -> None:
    token = "an-access-token-value-1234567890"
    err = _FakeError(grpc.StatusCode.NOT_FOUND, "", details=f"token {token} not accepted here")
    with pytest.raises(PermanentError) as info:
        RetryPolicy().start("GetTopic", can_refresh=False, secrets=lambda: [token]).after(err)
    assert token not in str(info.value) and "***" in str(info.value)


def _client(on_auth_error=None) -> PubSubClient:
    return PubSubClient("localhost:1", lambda: "token-1234", "https://org.example.com/", "00D000000000001AAA",
                        None, on_auth_error, max_retries=2, backoff_seconds=0)


def _tries(*errors: grpc.RpcError):
    """One try of an RPC: raises ``errors`` in turn, then answers "ok"."""
    pending = list(errors)

    def attempt(metadata) -> str:
        assert ("accesstoken", "token-1234") in metadata and ("instanceurl", "https://org.example.com") in metadata
        if pending:
            raise pending.pop(0)
        return "ok"

    return attempt


def _async(attempt):
    async def run(metadata) -> str:
        await asyncio.sleep(0)
        return attempt(metadata)

    return run


def test_blocking_and_asyncio_rpcs_run_under_the_same_policy() -> None:
    refreshed_on: list[int] = []
    client = _client(lambda: refreshed_on.append(threading.get_ident()))
    assert client._call("GetTopic", _tries(REFUSED, UNAVAILABLE, UNAVAILABLE)) == "ok"
    assert asyncio.run(client._acall("GetSchema", _async(_tries(REFUSED, UNAVAILABLE, UNAVAILABLE)))) == "ok"
    # The refresh ran once per operation: inline when blocking, on a worker thread from the event loop.
    assert refreshed_on[0] == threading.get_ident() and len(refreshed_on) == 2
    assert refreshed_on[1] != threading.get_ident()
    with pytest.raises(TransientError, match=r"after 2 retries"):
        client._call("Publish", _tries(UNAVAILABLE, UNAVAILABLE, UNAVAILABLE))
    with pytest.raises(TransientError, match=r"after 2 retries"):
        asyncio.run(client._acall("Subscribe", _async(_tries(UNAVAILABLE, UNAVAILABLE, UNAVAILABLE))))
    with pytest.raises(ReplayIdCorrupted):
        asyncio.run(client._acall("Subscribe", _async(_tries(CORRUPTED))))
    assert client.calls == {"GetTopic": 4, "GetSchema": 4, "Publish": 3, "Subscribe": 4}  # every try counts


# ----------------------------------------------------------------------------- decoding

AVRO = {"type": "record", "name": "E", "fields": [{"name": "OrderId__c", "type": ["null", "string"]}]}


def _avro(record, schema=AVRO) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return buf.getvalue()


def _consumer(n: int, payload: bytes, schema_id: str = "s1") -> pb2.ConsumerEvent:
    return pb2.ConsumerEvent(replay_id=n.to_bytes(8, "big"),
                             event=pb2.ProducerEvent(id=f"e{n}", schema_id=schema_id, payload=payload))


def test_decode_event_reports_every_payload_problem_and_never_raises() -> None:
    schema = _Schema("s1", json.dumps(AVRO), fastavro.parse_schema(AVRO))
    good = decode_event(_consumer(1, _avro({"OrderId__c": "801"})), schema)
    assert good == DecodedEvent((1).to_bytes(8, "big"), "0000000000000001", "e1", {"OrderId__c": "801"}, "s1")

    trailing = decode_event(_consumer(2, _avro({"OrderId__c": "801"}) + b"\x00"), schema)
    assert trailing.payload == {} and trailing.decode_error == "ValueError: 1 bytes left after the Avro datum"
    garbage = decode_event(_consumer(3, b"\xff" * 10), schema)
    assert garbage.payload == {} and garbage.decode_error and garbage.replay_id_hex == "0000000000000003"
    scalar = decode_event(_consumer(4, _avro("x", "string")), _Schema("s2", '"string"', fastavro.parse_schema("string")))
    assert scalar.decode_error == "ValueError: the Avro datum is not a record"
    missing = decode_event(_consumer(5, b"", "gone"), "schema 'gone' unavailable: not found")
    assert (missing.payload, missing.decode_error, missing.schema_id) == ({}, "schema 'gone' unavailable: not found",
                                                                         "gone")


class _SchemaStub:
    """GetSchema of a blocking or an asyncio stub: s1 parses, "broken" does not, anything else is not found."""

    def __init__(self, asynchronous: bool) -> None:
        self.asynchronous = asynchronous

    def GetSchema(self, request, metadata, timeout):  # noqa: N802 - the generated stub's name
        def answer() -> pb2.SchemaInfo:
            if request.schema_id == "s1":
                return pb2.SchemaInfo(schema_id="s1", schema_json=json.dumps(AVRO))
            if request.schema_id == "broken":
                return pb2.SchemaInfo(schema_id="broken", schema_json="{not json")
            raise NOT_FOUND

        if not self.asynchronous:
            return answer()

        async def later() -> pb2.SchemaInfo:
            return answer()

        return later()


def test_fetch_and_afetch_decode_a_batch_through_the_same_path(monkeypatch: pytest.MonkeyPatch) -> None:
    good = _avro({"OrderId__c": "801"})
    batch = [_consumer(1, good), _consumer(2, b"\xff" * 10), _consumer(3, good, "gone"), _consumer(4, good + b"\x00"),
             _consumer(5, good, "broken"), _consumer(6, good)]
    blocking = _client()
    monkeypatch.setattr(blocking, "_sync_stub", lambda: _SchemaStub(asynchronous=False))
    on_loop = _client()

    decoded = _decode_batch(batch, blocking._schemas_for(batch))
    assert decoded == _decode_batch(batch, asyncio.run(on_loop._aschemas_for(_SchemaStub(asynchronous=True), batch)))
    assert [e.event_id for e in decoded if e.decode_error is None] == ["e1", "e6"]
    assert decoded[2].decode_error.startswith("schema 'gone' unavailable: SALESFORCE_CONFIGURATION_ERROR: ")
    assert decoded[4].decode_error.startswith("schema 'broken' unavailable: ")  # a schema that does not parse
    assert blocking.calls == on_loop.calls == {"GetSchema": 3}  # once per schema id of the batch
