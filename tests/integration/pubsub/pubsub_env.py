"""The Pub/Sub test environment: the real sandbox (Salesforce REST + Pub/Sub) on a data folder."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import requests

from orderflow.salesforce.pubsub import PubSubClient
from orderflow_sandbox.tls import TlsFiles

TOPIC = "/event/OrderProvisionRequested__e"
KEEPALIVE_SECONDS = 0.3



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PubSubEnv:
    """A running org + Pub/Sub emulator on one data folder; restartable on the same folder."""

    data_dir: Path
    tls: TlsFiles
    port: int = field(default_factory=_free_port)
    org: object = None
    sandbox: object = None
    clients: list[PubSubClient] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"localhost:{self.port}"

    def start(self) -> PubSubEnv:
        from orderflow_sandbox.server import Ports, Sandbox

        self.sandbox = Sandbox(self.data_dir, ports=Ports(pubsub=self.port), components={"salesforce", "pubsub"})
        endpoints = self.sandbox.start()
        assert endpoints["salesforce"]["pubsub_endpoint"] == self.endpoint
        self.org = self.sandbox.org
        return self

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None
            self.org = None

    def restart(self) -> PubSubEnv:
        self.stop()
        return self.start()

    @property
    def bus(self):
        return self.org.eventbus

    def token(self) -> str:
        """Log in as the integration user: JWT bearer grant against the org's token endpoint."""
        creds = self.sandbox.endpoints["salesforce"]
        assertion = jwt.encode(
            {"iss": creds["consumer_key"], "sub": creds["username"], "aud": creds["login_url"],
             "exp": int(time.time()) + 120},
            Path(creds["private_key_path"]).read_bytes(), algorithm="RS256")
        resp = requests.post(f"{creds['login_url']}/services/oauth2/token", timeout=10,
                             data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
                             verify=self.sandbox.endpoints["ca_bundle"])
        resp.raise_for_status()
        return resp.json()["access_token"]

    def client(self, token_provider: Callable[[], str] | None = None, **kwargs) -> PubSubClient:
        if token_provider is None:
            token = self.token()
            token_provider = lambda: token  # noqa: E731
        kwargs.setdefault("backoff_seconds", 0.01)
        client = PubSubClient(self.endpoint, token_provider, self.org.instance_url, self.org.org_id,
                              str(self.tls.ca_cert), **kwargs)
        self.clients.append(client)
        return client

    def publish(self, n: int, prefix: str = "k") -> list[int]:
        return [
            self.bus.publish(TOPIC, {"OrderId__c": f"801{i:015d}", "IdemKey__c": f"{prefix}{i}"})
            for i in range(n)
        ]

    def metadata(self, token: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("accesstoken", token or self.token()), ("instanceurl", self.org.instance_url),
                ("tenantid", self.org.org_id))
