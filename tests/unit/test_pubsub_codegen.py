"""The committed Pub/Sub modules are generated from the committed proto, and the proto matches the API."""

from __future__ import annotations

from pathlib import Path

from orderflow.salesforce.pubsub import codegen
from orderflow.salesforce.pubsub import pubsub_api_pb2 as pb2


def test_generated_modules_are_up_to_date_with_the_proto(tmp_path: Path) -> None:
    fresh = codegen.generate(tmp_path)
    for name, text in fresh.items():
        committed = (codegen.PACKAGE_DIR / name).read_text()
        assert committed == text, f"{name} is stale: run python -m orderflow.salesforce.pubsub.codegen"
    assert "from . import pubsub_api_pb2" in fresh["pubsub_api_pb2_grpc.py"]


def _numbers(message) -> dict[str, int]:
    return {f.name: f.number for f in message.DESCRIPTOR.fields}


def test_wire_contract_matches_the_published_field_numbers() -> None:
    assert pb2.DESCRIPTOR.package == "eventbus.v1"
    service = pb2.DESCRIPTOR.services_by_name["PubSub"]
    assert {m.name for m in service.methods} == {
        "Subscribe", "GetSchema", "GetTopic", "Publish", "PublishStream", "ManagedSubscribe"}
    subscribe = service.methods_by_name["Subscribe"]
    assert subscribe.client_streaming and subscribe.server_streaming
    assert _numbers(pb2.FetchRequest) == {
        "topic_name": 1, "replay_preset": 2, "replay_id": 3, "num_requested": 4, "auth_refresh": 5}
    assert _numbers(pb2.FetchResponse) == {
        "events": 1, "latest_replay_id": 2, "rpc_id": 3, "pending_num_requested": 4}
    assert _numbers(pb2.ConsumerEvent) == {"event": 1, "replay_id": 2}
    assert _numbers(pb2.ProducerEvent) == {"id": 1, "schema_id": 2, "payload": 3, "headers": 4}
    assert _numbers(pb2.TopicInfo) == {
        "topic_name": 1, "tenant_guid": 2, "can_publish": 3, "can_subscribe": 4, "schema_id": 5, "rpc_id": 6}
    assert _numbers(pb2.SchemaInfo) == {"schema_json": 1, "schema_id": 2, "rpc_id": 3}
    assert _numbers(pb2.PublishRequest) == {"topic_name": 1, "events": 2, "auth_refresh": 3}
    assert _numbers(pb2.PublishResponse) == {"results": 1, "schema_id": 2, "rpc_id": 3}
    assert _numbers(pb2.PublishResult) == {"replay_id": 1, "error": 2, "correlation_key": 3}
    assert _numbers(pb2.CommitReplayResponse) == {
        "commit_request_id": 1, "replay_id": 2, "error": 3, "process_time": 4}
    assert (pb2.LATEST, pb2.EARLIEST, pb2.CUSTOM) == (0, 1, 2)
    assert (pb2.UNKNOWN, pb2.PUBLISH, pb2.COMMIT) == (0, 1, 2)
