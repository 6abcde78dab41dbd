"""Client logic that needs no server: replay id helpers, fetch bookkeeping, error classification."""

from __future__ import annotations

import grpc
import pytest

from orderflow.salesforce.pubsub import classify_rpc_error, replay_id_from_hex, replay_id_to_hex
from orderflow.salesforce.pubsub import pubsub_api_pb2 as pb2
from orderflow.salesforce.pubsub.client import DecodedEvent, _Fetch

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
    state = _Fetch(TOPIC, "EARLIEST", None, max_events=250, batch_size=400, stop_on_keepalive=True)
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
    state = _Fetch(TOPIC, "CUSTOM", _event(5).replay_id, max_events=10, batch_size=4, stop_on_keepalive=True)
    assert state.subscribe_request().num_requested == 4
    tip = pb2.FetchResponse(latest_replay_id=_event(7).replay_id, pending_num_requested=2)
    state.on_response(tip, [_event(6), _event(7)])
    assert state.done and state.result().latest_replay_id == _event(7).replay_id

    state = _Fetch(TOPIC, "LATEST", None, max_events=3, batch_size=100, stop_on_keepalive=True)
    assert state.subscribe_request().num_requested == 3
    state.on_response(pb2.FetchResponse(latest_replay_id=_event(99).replay_id), [_event(1), _event(2), _event(3)])
    assert state.done and [e.event_id for e in state.result().events] == ["e1", "e2", "e3"]
    assert state.result().latest_replay_id == _event(3).replay_id  # not the server's tip: e4.. were not returned


def test_keepalive_advances_the_position_and_ends_a_drain_but_not_a_wait() -> None:
    drain = _Fetch(TOPIC, "LATEST", None, max_events=10, batch_size=10, stop_on_keepalive=True)
    drain.subscribe_request()
    drain.on_response(pb2.FetchResponse(latest_replay_id=_event(42).replay_id, pending_num_requested=10), [])
    assert drain.done and drain.result().latest_replay_id == _event(42).replay_id
    assert drain.subscribe_request().replay_preset == pb2.CUSTOM

    wait = _Fetch(TOPIC, "LATEST", None, max_events=1, batch_size=1, stop_on_keepalive=False)
    wait.subscribe_request()
    wait.on_response(pb2.FetchResponse(latest_replay_id=_event(42).replay_id, pending_num_requested=1), [])
    assert not wait.done


def test_invalid_fetch_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="CUSTOM needs a replay_id"):
        _Fetch(TOPIC, "CUSTOM", None, 1, 1, True)
    with pytest.raises(ValueError, match="replay_preset"):
        _Fetch(TOPIC, "OLDEST", None, 1, 1, True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_events"):
        _Fetch(TOPIC, "LATEST", None, 0, 1, True)


class _FakeError(grpc.RpcError):
    def __init__(self, status: grpc.StatusCode, code: str = "") -> None:
        self._status, self._code = status, code

    def code(self) -> grpc.StatusCode:
        return self._status

    def details(self) -> str:
        return "details"

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
