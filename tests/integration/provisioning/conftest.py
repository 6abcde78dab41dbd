"""Provisioning step 3 against the WHMCS emulator over HTTPS, through the real task body.

``tasks.find_or_create_order`` builds its client from the ``whmcs_default`` connection (an
``AIRFLOW_CONN_*`` variable pointing at the sandbox), takes the per-order lock and keeps its AddOrder
stamps in the lock's backend: the local lock folder under ``$AIRFLOW_HOME`` or, with the ``redis``
backend, Redis on 127.0.0.1 (skipped when no Redis answers there).
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import requests

from orderflow.salesforce.soql import to_18
from orderflow.whmcs.client import WhmcsClient
from orderflow_sandbox.connections import airflow_connections
from orderflow_sandbox.server import Sandbox

REDIS_URL = "redis://127.0.0.1:6379/13"  # a database of its own (the DAG tests use 9, chaos 10)
ITEMS = ((182, "Monthly"), (242, "Onetime"))  # two catalogue products of the emulator
_orders = itertools.count(1)


@pytest.fixture(scope="session")
def whmcs_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(tmp_path_factory.mktemp("provisioning-whmcs"), components={"whmcs"}) as sandbox:
        yield sandbox


@dataclass
class Whmcs:
    """The emulator as a test drives it: faults, call counters, the orders that carry a marker."""

    box: Sandbox

    @property
    def endpoints(self) -> dict:
        return self.box.endpoints

    def _admin(self, method: str, path: str, body: dict | None = None):
        resp = requests.request(method, self.endpoints["whmcs"]["admin_url"] + path, json=body,
                                verify=self.endpoints["ca_bundle"], timeout=10)
        assert resp.status_code < 400, resp.text
        return resp.json()

    def fault(self, kind: str, target: str = "AddOrder", **spec: object) -> None:
        self._admin("POST", "/faults", {"kind": kind, "target": target, "count": 1, **spec})

    def armed(self) -> list[dict]:
        return self._admin("GET", "/faults")

    def calls(self, action: str) -> int:
        return self._admin("GET", "/stats").get(action, 0)

    def client(self, timeout: float = 10) -> WhmcsClient:
        wh = self.endpoints["whmcs"]
        return WhmcsClient(wh["url"], wh["identifier"], wh["secret"], accesskey=wh.get("accesskey"),
                           ca_bundle=self.endpoints["ca_bundle"], timeout=timeout)

    def marked_orders(self, order: dict) -> list:
        """Every WHMCS order of the order's client that carries its marker (any status)."""
        client_id = int(order["wh_account"].split()[0].lstrip("#"))
        with self.client() as client:
            return client.find_orders_by_note(client_id, f"sfOrderId={order['order_id']}")

    def connection_env(self, timeout: float) -> dict[str, str]:
        """``AIRFLOW_CONN_WHMCS_DEFAULT`` for the sandbox, with the client timeout a test wants."""
        conn = airflow_connections({"whmcs": self.endpoints["whmcs"], "ca_bundle": self.endpoints["ca_bundle"]})
        conn["whmcs_default"]["extra"]["timeout"] = timeout
        return {"AIRFLOW_CONN_WHMCS_DEFAULT": json.dumps(conn["whmcs_default"])}


@pytest.fixture
def whmcs(whmcs_box: Sandbox) -> Iterator[Whmcs]:
    wh = Whmcs(whmcs_box)
    wh._admin("DELETE", "/faults")
    yield wh
    wh._admin("DELETE", "/faults")


@pytest.fixture(params=["file", "redis"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where the lock and the AddOrder stamps live (ORDERFLOW_LOCK_URL unset, or Redis)."""
    monkeypatch.delenv("ORDERFLOW_LOCK_URL", raising=False)
    if request.param == "redis":
        redis = pytest.importorskip("redis")
        try:
            redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        except redis.RedisError:
            pytest.skip("no Redis on 127.0.0.1:6379")
        monkeypatch.setenv("ORDERFLOW_LOCK_URL", REDIS_URL)
    return request.param


@pytest.fixture
def settle(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Set the AddOrder settle window (``ORDERFLOW_ADDORDER_SETTLE_SECONDS``) for this test."""
    return lambda seconds: monkeypatch.setenv("ORDERFLOW_ADDORDER_SETTLE_SECONDS", str(seconds))


@pytest.fixture
def connect(whmcs: Whmcs, monkeypatch: pytest.MonkeyPatch) -> Callable[[float], dict[str, str]]:
    """Point the ``whmcs_default`` connection at the sandbox with the given client timeout; returns the env."""

    def set_timeout(timeout: float) -> dict[str, str]:
        env = whmcs.connection_env(timeout)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return env

    return set_timeout


@pytest.fixture
def new_order(whmcs: Whmcs) -> Callable[..., dict]:
    """An order snapshot (what load_order puts in XCom) for a fresh WHMCS client with a pay method."""

    def make(items: tuple[tuple[int, str], ...] = ITEMS) -> dict:
        n = next(_orders)
        order_id = to_18(f"801{uuid.uuid4().int % 10**12:012d}")  # stamps in Redis outlive a test session
        client_id = whmcs.box.whmcs.create_client("Aiko", f"Settle{n}", f"aiko.settle{n}@example.jp")
        lines = [
            {"item_id": f"802{n:06d}{i:06d}AAA", "sku": f"SKU-{pid}", "product_name": f"Product {pid}",
             "whmcs_pid": pid, "billing_cycle": cycle, "quantity": 1}
            for i, (pid, cycle) in enumerate(items)
        ]
        return {"order_id": order_id, "order_number": f"{n:08d}", "status": "Approved",
                "activation_status": "Activating", "whmcs_order_id": None, "account_id": "001000000000001AAA",
                "account_name": f"Aiko Settle{n}", "wh_account": f"#{client_id} - Aiko Settle{n}", "lines": lines}

    return make
