"""Salesforce Pub/Sub API (gRPC): the ``eventbus.v1`` proto, its generated modules and the client.

``pubsub_api.proto`` is the contract (messages and field numbers as Salesforce publishes them);
``pubsub_api_pb2*.py`` are generated from it by ``python -m orderflow.salesforce.pubsub.codegen``.
"""

from orderflow.salesforce.pubsub.client import (
    DecodedEvent,
    FetchResult,
    PublishFailed,
    PubSubClient,
    ReplayIdCorrupted,
    ReplayPreset,
    classify_rpc_error,
    replay_id_from_hex,
    replay_id_to_hex,
)

__all__ = [
    "DecodedEvent",
    "FetchResult",
    "PubSubClient",
    "PublishFailed",
    "ReplayIdCorrupted",
    "ReplayPreset",
    "classify_rpc_error",
    "replay_id_from_hex",
    "replay_id_to_hex",
]
