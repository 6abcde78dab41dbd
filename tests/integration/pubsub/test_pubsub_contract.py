"""Contract tests: the Pub/Sub client against the emulator, over gRPC + TLS, with a real org."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import queue
import re
import threading
import time

import grpc
import pytest
from pubsub_env import KEEPALIVE_SECONDS, TOPIC, PubSubEnv

from orderflow.errors import ErrorCode, PermanentError, TransientError
from orderflow.salesforce.pubsub import (
    ReplayIdCorrupted,
    replay_id_from_hex,
    replay_id_to_hex,
)
from orderflow.salesforce.pubsub import pubsub_api_pb2 as pb2
from orderflow_sandbox.salesforce.eventbus import replay_id_bytes

CORRUPTED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"


def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


class RawSubscription:
    """A Subscribe call driven by hand: send FetchRequests, read FetchResponses with a timeout."""

    def __init__(self, stub, metadata, first: pb2.FetchRequest) -> None:
        self.requests: queue.Queue = queue.Queue()
        self.requests.put(first)
        self.responses: queue.Queue = queue.Queue()
        self.call = stub.Subscribe(iter(self.requests.get, None), metadata=metadata)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        try:
            for resp in self.call:
                self.responses.put(resp)
        except grpc.RpcError as err:
            self.responses.put(err)

    def request(self, n: int) -> None:
        self.requests.put(pb2.FetchRequest(topic_name=TOPIC, num_requested=n))

    def next(self, timeout: float = 3.0):
        item = self.responses.get(timeout=timeout)
        if isinstance(item, grpc.RpcError):
            raise item
        return item

    def events_until_quiet(self, quiet: float = 0.4) -> list:
        """Collect delivered events until no response arrives for ``quiet`` s (keepalives skipped)."""
        events, sizes = [], []
        while True:
            try:
                resp = self.next(quiet)
            except queue.Empty:
                return events
            sizes.append(len(resp.events))
            events.extend(resp.events)

    def close(self) -> None:
        self.requests.put(None)
        self.call.cancel()


def _keys(result) -> list[str]:
    return [e.payload["IdemKey__c"] for e in result.events]


# ----------------------------------------------------------------------------- topics and schemas


def test_get_topic_and_schema_describe_the_platform_event_and_schemas_are_cached(pubsub: PubSubEnv) -> None:
    client = pubsub.client()
    topic = client.get_topic(TOPIC)
    assert topic.topic_name == TOPIC
    assert topic.tenant_guid == pubsub.org.org_id
    assert topic.can_subscribe and topic.can_publish
    assert len(topic.schema_id) == 22

    schema = client.get_schema(topic.schema_id)
    assert schema["name"] == "OrderProvisionRequested__e"
    assert schema["namespace"] == "com.sforce.eventbus"
    assert schema["uuid"] == topic.schema_id
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert types["CreatedDate"] == "long" and types["CreatedById"] == "string"
    assert types["OrderId__c"] == ["null", "string"] and types["IdemKey__c"] == ["null", "string"]

    pubsub.publish(3)
    client.fetch(TOPIC, "EARLIEST", wait_seconds=2)
    assert client.calls["GetSchema"] == 1  # decoding reused the cached schema


def test_unknown_topic_is_a_permanent_error(pubsub: PubSubEnv) -> None:
    with pytest.raises(PermanentError, match="topic.not.found"):
        pubsub.client().get_topic("/event/NoSuchEvent__e")


# ----------------------------------------------------------------------------- replay presets


def test_publish_then_earliest_returns_every_retained_event_in_order(pubsub: PubSubEnv) -> None:
    client = pubsub.client()
    ids = client.publish(TOPIC, [{"OrderId__c": f"801{i:015d}", "IdemKey__c": f"k{i}"} for i in range(5)],
                         created_by_id=pubsub.org.user_id)
    assert [len(i) for i in ids] == [8] * 5
    pubsub.bus.backdate(int.from_bytes(ids[1], "big"), hours=73)  # the first two fall out of retention

    result = client.fetch(TOPIC, "EARLIEST", wait_seconds=2)
    assert _keys(result) == ["k2", "k3", "k4"]
    assert [e.replay_id for e in result.events] == ids[2:]
    assert result.latest_replay_id == ids[-1]
    first = result.events[0]
    assert first.payload["OrderId__c"] == "801000000000000002"
    assert first.payload["CreatedById"] == pubsub.org.user_id
    assert abs(first.payload["CreatedDate"] - time.time() * 1000) < 60_000  # epoch ms
    assert first.replay_id_hex == replay_id_to_hex(first.replay_id)
    assert first.decode_error is None and first.event_id


def test_custom_starts_strictly_after_the_given_replay_id(pubsub: PubSubEnv) -> None:
    pubsub.publish(6)
    client = pubsub.client()
    everything = client.fetch(TOPIC, "EARLIEST", wait_seconds=2)
    checkpoint = replay_id_from_hex(everything.events[2].replay_id_hex)  # stored as hex, read back

    result = client.fetch(TOPIC, "CUSTOM", checkpoint, wait_seconds=2)
    assert _keys(result) == ["k3", "k4", "k5"]

    # Re-draining from the final checkpoint returns nothing and keeps the checkpoint.
    again = client.fetch(TOPIC, "CUSTOM", result.latest_replay_id, wait_seconds=1)
    assert again.events == [] and again.latest_replay_id == result.latest_replay_id


def test_latest_sees_only_events_published_after_subscribing(pubsub: PubSubEnv) -> None:
    pubsub.publish(3, prefix="old")
    client = pubsub.client()
    out: dict = {}

    def drain() -> None:
        out["result"] = client.fetch(TOPIC, "LATEST", max_events=2, wait_seconds=5)

    requests_before = pubsub.org.stats.snapshot().get("pubsub.FetchRequest", 0)
    worker = threading.Thread(target=drain)
    worker.start()
    # The stream's position is fixed once the first FetchRequest is accepted.
    _wait_for(lambda: pubsub.org.stats.snapshot().get("pubsub.FetchRequest", 0) > requests_before)
    pubsub.publish(2, prefix="new")
    worker.join(10)
    assert _keys(out["result"]) == ["new0", "new1"]


# ----------------------------------------------------------------------------- flow control


def test_server_never_delivers_more_than_requested_and_caps_requests_at_100(pubsub: PubSubEnv, raw_stub) -> None:
    pubsub.publish(130)
    sub = RawSubscription(raw_stub, pubsub.metadata(),
                          pb2.FetchRequest(topic_name=TOPIC, replay_preset=pb2.EARLIEST, num_requested=3))
    try:
        first = sub.events_until_quiet()
        assert len(first) == 3  # nothing beyond what was asked, however many are available

        sub.request(250)  # more than the cap: the server owes 100, not 250
        responses = []
        while sum(len(r.events) for r in responses) < 100:
            responses.append(sub.next())
        owed = 100
        for resp in responses:
            assert len(resp.events) <= owed
            owed -= len(resp.events)
            assert resp.pending_num_requested == owed
        assert sub.events_until_quiet() == []  # the 27 remaining events wait for a request

        sub.request(5)
        assert len(sub.events_until_quiet()) == 5
    finally:
        sub.close()


def test_client_fetch_requests_at_most_100_per_fetch_request_and_stops_at_max_events(pubsub: PubSubEnv) -> None:
    pubsub.publish(250)
    client = pubsub.client()
    result = client.fetch(TOPIC, "EARLIEST", max_events=230, batch_size=500, wait_seconds=2)
    assert len(result.events) == 230
    assert len({e.replay_id for e in result.events}) == 230
    assert result.latest_replay_id == result.events[-1].replay_id
    assert client.calls["FetchRequest"] == 3  # 100 + 100 + 30
    assert pubsub.org.stats.snapshot()["pubsub.events_delivered"] == 230


def test_keepalive_carries_latest_replay_id(pubsub: PubSubEnv, raw_stub) -> None:
    ids = pubsub.publish(2)
    sub = RawSubscription(raw_stub, pubsub.metadata(),
                          pb2.FetchRequest(topic_name=TOPIC, replay_preset=pb2.LATEST, num_requested=10))
    try:
        started = time.monotonic()
        resp = sub.next(timeout=KEEPALIVE_SECONDS * 10)
        assert list(resp.events) == []
        assert resp.latest_replay_id == replay_id_bytes(ids[-1])
        assert resp.pending_num_requested == 10
        assert time.monotonic() - started >= KEEPALIVE_SECONDS * 0.8
    finally:
        sub.close()

    # The client treats a keepalive as "caught up" and returns its position as the checkpoint.
    result = pubsub.client().fetch(TOPIC, "LATEST", wait_seconds=5)
    assert result.events == [] and result.latest_replay_id == replay_id_bytes(ids[-1])


# ----------------------------------------------------------------------------- errors and retries


def test_stream_reset_mid_delivery_loses_no_event_and_duplicates_none(pubsub: PubSubEnv) -> None:
    pubsub.publish(30)
    pubsub.org.faults.add_from_dict({"kind": "stream_reset", "target": "pubsub.Subscribe", "count": 3})
    client = pubsub.client()
    result = client.fetch(TOPIC, "EARLIEST", batch_size=8, wait_seconds=2)

    assert _keys(result) == [f"k{i}" for i in range(30)]
    assert result.resubscribes == 3
    stats = pubsub.org.stats.snapshot()
    assert stats["pubsub.stream_resets"] == 3
    assert stats["pubsub.Subscribe"] == 4
    assert stats["pubsub.events_delivered"] == 30  # the server re-sent nothing either


def test_service_unavailable_is_retried_then_reported_as_transient(pubsub: PubSubEnv) -> None:
    pubsub.publish(2)
    client = pubsub.client(max_retries=2)
    pubsub.org.faults.add_from_dict({"kind": "service_unavailable", "target": "pubsub.Subscribe", "count": 2})
    assert len(client.fetch(TOPIC, "EARLIEST", wait_seconds=2).events) == 2

    pubsub.org.faults.add_from_dict({"kind": "service_unavailable", "target": "pubsub.GetTopic", "count": 3})
    with pytest.raises(TransientError) as info:
        client.get_topic(TOPIC)
    assert info.value.code is ErrorCode.SALESFORCE_UNAVAILABLE
    assert "service.unavailable" in info.value.message
    assert client.calls["GetTopic"] == 3  # first try + 2 retries


def test_replay_id_outside_retention_raises_replay_id_corrupted(pubsub: PubSubEnv, raw_stub) -> None:
    ids = pubsub.publish(4)
    pubsub.bus.backdate(ids[1], hours=73)
    client = pubsub.client()

    with pytest.raises(ReplayIdCorrupted) as info:
        client.fetch(TOPIC, "CUSTOM", replay_id_bytes(ids[0]), wait_seconds=1)
    assert info.value.replay_id == replay_id_bytes(ids[0])
    assert "replayid.corrupted" in info.value.message
    assert pubsub.org.stats.snapshot()["pubsub.Subscribe"] == 1  # not retried: the caller must choose

    for bogus in (replay_id_bytes(999), b"\x01\x02"):  # never assigned; not a replay id at all
        with pytest.raises(ReplayIdCorrupted):
            client.fetch(TOPIC, "CUSTOM", bogus, wait_seconds=1)

    # Once the expired events are purged, their ids stay invalid.
    assert pubsub.bus.purge_expired() == 2
    with pytest.raises(ReplayIdCorrupted):
        client.fetch(TOPIC, "CUSTOM", replay_id_bytes(ids[1]), wait_seconds=1)

    # The documented fallback works: EARLIEST returns what is retained.
    assert [e.replay_id for e in client.fetch(TOPIC, "EARLIEST", wait_seconds=1).events] == [
        replay_id_bytes(i) for i in ids[2:]
    ]

    # On the wire: INVALID_ARGUMENT with the documented error-code trailer.
    sub = RawSubscription(raw_stub, pubsub.metadata(), pb2.FetchRequest(
        topic_name=TOPIC, replay_preset=pb2.CUSTOM, replay_id=replay_id_bytes(ids[0]), num_requested=1))
    with pytest.raises(grpc.RpcError) as raw:
        sub.next()
    assert raw.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("error-code", CORRUPTED) in tuple(raw.value.trailing_metadata())
    sub.close()


def test_bad_auth_metadata_is_refused_and_the_token_never_leaks(pubsub: PubSubEnv, raw_stub, caplog) -> None:
    good = pubsub.token()
    cases = {
        "unknown token": pubsub.metadata(token="00D000000000000!AQbogus-token-value-1234567890"),
        "wrong tenant": (("accesstoken", good), ("instanceurl", pubsub.org.instance_url),
                         ("tenantid", "00D000000000000AAA")),
        "wrong instance": (("accesstoken", good), ("instanceurl", "https://evil.example.com"),
                           ("tenantid", pubsub.org.org_id)),
        "missing headers": (("accesstoken", good),),
    }
    for name, metadata in cases.items():
        with pytest.raises(grpc.RpcError) as info:
            raw_stub.GetTopic(pb2.TopicRequest(topic_name=TOPIC), metadata=metadata)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
        assert ("error-code", "sfdc.platform.eventbus.grpc.service.auth.error") in tuple(
            info.value.trailing_metadata()), name

    pubsub.publish(1)
    secret = "00D000000000000!AQthis-is-a-secret-token-value"
    client = pubsub.client(token_provider=lambda: secret)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PermanentError) as err:
        client.fetch(TOPIC, "EARLIEST", wait_seconds=1)
    assert err.value.code is ErrorCode.SALESFORCE_CONFIGURATION_ERROR
    assert secret not in str(err.value) and secret not in caplog.text
    assert pubsub.org.stats.snapshot().get("pubsub.events_delivered", 0) == 0


def test_auth_error_refreshes_the_token_once_and_retries(pubsub: PubSubEnv) -> None:
    pubsub.publish(3)
    tokens = [pubsub.token()]
    refreshes = []

    def refresh() -> None:
        refreshes.append(1)
        tokens.append(pubsub.token())

    client = pubsub.client(token_provider=lambda: tokens[-1], on_auth_error=refresh)
    pubsub.org.revoke_access_token(tokens[0])  # the session was revoked mid-run
    assert len(client.fetch(TOPIC, "EARLIEST", wait_seconds=2).events) == 3
    assert len(refreshes) == 1

    pubsub.org.revoke_access_token()  # every token revoked, and the refresh cannot help for long
    client._on_auth_error = lambda: refreshes.append(1)  # a refresh that yields the same dead token
    with pytest.raises(PermanentError):
        client.get_topic(TOPIC)
    assert len(refreshes) == 2  # called once more, not in a loop


def test_undecodable_payload_is_returned_with_decode_error_and_the_drain_continues(pubsub: PubSubEnv) -> None:
    client = pubsub.client()
    topic = client.get_topic(TOPIC)
    pubsub.publish(1, prefix="before")
    pubsub.bus.publish_raw(TOPIC, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")  # admin hook
    # Pub/Sub Publish stores payloads without validating them, as Salesforce does.
    client.publish_raw(TOPIC, [pb2.ProducerEvent(id="bad-1", schema_id=topic.schema_id, payload=b"\x02\x04no")])
    pubsub.publish(2, prefix="after")

    result = client.fetch(TOPIC, "EARLIEST", wait_seconds=2)
    assert len(result.events) == 5
    bad = [e for e in result.events if e.decode_error]
    assert len(bad) == 2 and all(e.payload == {} for e in bad)
    assert bad[1].event_id == "bad-1"
    assert [e.payload["IdemKey__c"] for e in result.events if not e.decode_error] == ["before0", "after0", "after1"]
    assert result.latest_replay_id == result.events[-1].replay_id
    assert pubsub.org.stats.snapshot()["pubsub.undecodable_published"] == 1


def test_publish_refuses_an_event_with_a_foreign_schema_id(pubsub: PubSubEnv) -> None:
    from orderflow.salesforce.pubsub import PublishFailed

    client = pubsub.client()
    with pytest.raises(PublishFailed) as info:
        client.publish_raw(TOPIC, [pb2.ProducerEvent(id="x", schema_id="AAAAAAAAAAAAAAAAAAAAAA", payload=b"")])
    assert info.value.results == [(None, info.value.results[0][1])] and "schema" in info.value.results[0][1].lower()
    assert pubsub.bus.count(TOPIC) == 0


# ----------------------------------------------------------------------------- durability


def test_events_persist_across_a_restart_on_the_same_data_dir(pubsub: PubSubEnv) -> None:
    ids = pubsub.publish(3)
    org_id = pubsub.org.org_id
    pubsub.restart()
    assert pubsub.org.org_id == org_id
    result = pubsub.client().fetch(TOPIC, "EARLIEST", wait_seconds=2)
    assert [e.replay_id for e in result.events] == [replay_id_bytes(i) for i in ids]
    assert _keys(result) == ["k0", "k1", "k2"]
    assert pubsub.publish(1)[0] == ids[-1] + 1  # ids keep increasing after a restart


# ----------------------------------------------------------------------------- asyncio (triggers)


def test_async_afetch_from_a_checkpoint(pubsub: PubSubEnv) -> None:
    ids = pubsub.publish(2)
    client = pubsub.client()
    checkpoint = replay_id_bytes(ids[-1])
    pubsub.publish(3, prefix="n")

    async def scenario() -> list[str]:
        fetched = await client.afetch(TOPIC, "CUSTOM", checkpoint, batch_size=2, wait_seconds=2)
        return [e.payload["IdemKey__c"] for e in fetched.events]

    started = time.monotonic()
    keys = asyncio.run(scenario())
    assert keys == ["n0", "n1", "n2"]  # only what came after the checkpoint, in batches of two
    assert time.monotonic() - started < 5


def test_async_afetch_resubscribes_refreshes_the_token_off_the_loop_and_retries_getschema(pubsub: PubSubEnv) -> None:
    pubsub.publish(12)
    tokens = [pubsub.token()]
    refreshed_on: list[int] = []

    def refresh() -> None:
        refreshed_on.append(threading.get_ident())
        tokens.append(pubsub.token())

    client = pubsub.client(token_provider=lambda: tokens[-1], on_auth_error=refresh)
    pubsub.org.revoke_access_token(tokens[0])
    pubsub.org.faults.add_from_dict({"kind": "service_unavailable", "target": "pubsub.GetSchema", "count": 1})
    pubsub.org.faults.add_from_dict({"kind": "stream_reset", "target": "pubsub.Subscribe", "count": 2})

    async def scenario():
        return threading.get_ident(), await client.afetch(TOPIC, "EARLIEST", batch_size=4, wait_seconds=2)

    loop_thread, result = asyncio.run(scenario())
    assert _keys(result) == [f"k{i}" for i in range(12)]  # nothing lost, nothing twice
    assert result.resubscribes == 3 and result.at_tip  # after the refused token, then after each reset
    assert len(refreshed_on) == 1 and refreshed_on[0] != loop_thread  # once, on a worker thread
    assert client.calls["Subscribe"] == 4 and client.calls["GetSchema"] == 2  # GetSchema retried once
    stats = pubsub.org.stats.snapshot()
    assert stats["pubsub.stream_resets"] == 2 and stats["pubsub.events_delivered"] == 12


def test_fetch_and_afetch_decode_bad_payloads_and_unknown_schemas_alike(pubsub: PubSubEnv) -> None:
    pubsub.publish(1, prefix="before")
    pubsub.bus.publish_raw(TOPIC, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")
    pubsub.bus.publish_raw(TOPIC, b"\x02\x04no", schema_id="AAAAAAAAAAAAAAAAAAAAAA")  # GetSchema: not found
    pubsub.publish(1, prefix="after")

    def alike(result) -> list:  # each GetSchema answer names its own rpcId
        return [dataclasses.replace(e, decode_error=re.sub(r"rpcId: \S+", "rpcId: -", e.decode_error or ""))
                for e in result.events]

    blocking = pubsub.client().fetch(TOPIC, "EARLIEST", wait_seconds=2)
    on_loop = asyncio.run(pubsub.client().afetch(TOPIC, "EARLIEST", wait_seconds=2))
    assert alike(on_loop) == alike(blocking) and len(blocking.events) == 4
    assert [e.decode_error is None for e in blocking.events] == [True, False, False, True]
    assert blocking.events[2].decode_error.startswith("schema 'AAAAAAAAAAAAAAAAAAAAAA' unavailable: ")
    assert (on_loop.latest_replay_id, on_loop.at_tip) == (blocking.latest_replay_id, blocking.at_tip)


def test_pubsub_stats_count_calls_per_rpc(pubsub: PubSubEnv) -> None:
    client = pubsub.client()
    client.publish(TOPIC, [{"OrderId__c": "801000000000000001"}], created_by_id=pubsub.org.user_id)
    client.fetch(TOPIC, "EARLIEST", wait_seconds=1)
    stats = pubsub.org.stats.snapshot()
    assert stats["pubsub.Publish"] == 1 and stats["pubsub.events_published"] == 1
    assert stats["pubsub.GetTopic"] == 1 and stats["pubsub.GetSchema"] == 1
    assert stats["pubsub.Subscribe"] == 1 and stats["pubsub.events_delivered"] == 1
    assert dict(client.calls) == {"GetTopic": 1, "GetSchema": 1, "Publish": 1, "Subscribe": 1, "FetchRequest": 1}
    assert json.dumps(stats)  # served as JSON by /__sandbox/stats
