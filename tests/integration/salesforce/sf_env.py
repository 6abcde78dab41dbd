"""Helpers shared by the Salesforce integration tests: the running sandbox and clients for it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jwt
import requests

from orderflow.salesforce.client import SalesforceClient
from orderflow.salesforce.token_cache import TokenCache
from orderflow_sandbox.server import Sandbox

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class SfEnv:
    sandbox: Sandbox
    data_dir: Path
    seed: dict

    @property
    def ep(self) -> dict:
        return self.sandbox.endpoints["salesforce"]

    @property
    def ca(self) -> str:
        return self.sandbox.endpoints["ca_bundle"]

    @property
    def org(self):
        return self.sandbox.org

    def admin(self, method: str, path: str, body: dict | None = None) -> object:
        resp = requests.request(method, self.ep["admin_url"] + path, json=body, verify=self.ca, timeout=30)
        assert resp.status_code < 300, resp.text
        return resp.json()

    def stats(self) -> dict:
        return self.admin("GET", "/stats")  # type: ignore[return-value]

    def fault(self, kind: str, target: str = "*", count: int = 1, **extra: object) -> None:
        self.admin("POST", "/faults", {"kind": kind, "target": target, "count": count, **extra})

    def client(self, cache_path: Path | None = None, **kwargs: object) -> SalesforceClient:
        return SalesforceClient(
            login_url=self.ep["login_url"],
            username=self.ep["username"],
            consumer_key=self.ep["consumer_key"],
            private_key_path=self.ep["private_key_path"],
            ca_bundle=self.ca,
            api_version=self.ep["api_version"],
            pubsub_endpoint=self.ep["pubsub_endpoint"],
            token_cache=TokenCache(cache_path or self.data_dir / f"cache-{time.monotonic_ns()}.json"),
            **kwargs,  # type: ignore[arg-type]
        )

    def assertion(self, **overrides: object) -> str:
        claims = {"iss": self.ep["consumer_key"], "sub": self.ep["username"], "aud": self.ep["login_url"],
                  "exp": str(int(time.time()) + 180)}
        claims.update(overrides)
        key = Path(self.ep["private_key_path"]).read_text()
        return jwt.encode(claims, key, algorithm="RS256")

    def token(self) -> str:
        resp = requests.post(self.ep["login_url"] + "/services/oauth2/token",
                             data={"grant_type": JWT_GRANT, "assertion": self.assertion()}, verify=self.ca, timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()["access_token"]

    def orders(self, outcome: str = "Activated") -> list[str]:
        return [oid for oid, o in self.seed["expected"].items() if o == outcome]
