"""Pub/Sub contract tests against the real sandbox: ``Sandbox(components={"salesforce", "pubsub"})``.

Each test gets its own data folder and sandbox (fast: the CA is generated once per session and
copied). Access tokens come from the org's OAuth JWT bearer endpoint over HTTPS, and clients
verify the gRPC server against the sandbox CA like production clients do.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from pubsub_env import KEEPALIVE_SECONDS, PubSubEnv

from orderflow_sandbox.tls import TlsFiles, ensure_tls


@pytest.fixture(scope="session")
def session_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return ensure_tls(tmp_path_factory.mktemp("pubsub-ca"))


@pytest.fixture
def pubsub(tmp_path: Path, session_tls: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> Iterator[PubSubEnv]:
    # Short keepalives (Salesforce: 270 s); the emulator reads this whenever a stream opens.
    monkeypatch.setenv("ORDERFLOW_SANDBOX_PUBSUB_KEEPALIVE_SECONDS", str(KEEPALIVE_SECONDS))
    data_dir = tmp_path / "sandbox"
    data_dir.mkdir()
    for src in (session_tls.ca_cert, session_tls.server_cert, session_tls.server_key):
        shutil.copy2(src, data_dir / src.name)
    env = PubSubEnv(data_dir, ensure_tls(data_dir)).start()
    try:
        yield env
    finally:
        env.stop()


@pytest.fixture
def raw_stub(pubsub: PubSubEnv):
    """The generated stub on a TLS channel, for wire-level assertions."""
    from orderflow.salesforce.pubsub import pubsub_api_pb2_grpc as pb2_grpc

    channel = grpc.secure_channel(pubsub.endpoint, grpc.ssl_channel_credentials(pubsub.tls.ca_cert.read_bytes()))
    try:
        yield pb2_grpc.PubSubStub(channel)
    finally:
        channel.close()
