"""Event-sensor tests: the real sandbox (Salesforce REST + Pub/Sub gRPC over TLS) and the real DAG.

Each test gets a freshly seeded sandbox and a clean slate in the metadata DB (orderflow's
Variables, provision_order runs named ``order__*`` and order_event_sensor runs). The DAG runs
with ``dag.test()``, which runs the deferrable sensor's trigger inline; the runs it starts go
through a real Airflow API server on the same metadata DB (``airflow_api_server``) and stay
queued (no scheduler), so tests assert on their rows.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from events_env import EventsEnv

from orderflow_sandbox.tls import TlsFiles, ensure_tls


@pytest.fixture(scope="session")
def session_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return ensure_tls(tmp_path_factory.mktemp("events-ca"))


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Migrate the metadata DB once when the runner script did not (a bare ``pytest``)."""
    from airflow import settings
    from airflow.utils import db

    if settings.Session is None:
        settings.configure_orm()
    db.initdb()


@pytest.fixture
def events_env(tmp_path: Path, session_tls: TlsFiles, airflow_db: None, airflow_api_server: str,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[EventsEnv]:
    monkeypatch.setenv("ORDERFLOW_SANDBOX_PUBSUB_KEEPALIVE_SECONDS", "0.5")
    monkeypatch.setenv("ORDERFLOW_EVENT_WAIT_SECONDS", "1.5")
    data_dir = tmp_path / "sandbox"
    data_dir.mkdir()
    for src in (session_tls.ca_cert, session_tls.server_cert, session_tls.server_key):
        shutil.copy2(src, data_dir / src.name)
    env = EventsEnv(data_dir, monkeypatch)
    env.reset_airflow_state()
    env.start()
    try:
        yield env
    finally:
        env.stop()
