"""A full sandbox (Salesforce REST + Pub/Sub + WHMCS) and Airflow connections for DAG tests.

DAG tests run real DAG runs with ``dag.test()`` in this process against the sandbox over TLS.
Retry delays are shrunk through the environment before any DAG file is parsed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

os.environ["ORDERFLOW_TASK_RETRIES"] = "2"
os.environ["ORDERFLOW_RETRY_DELAY_SECONDS"] = "0.05"
os.environ["ORDERFLOW_MAX_RETRY_DELAY_SECONDS"] = "0.2"

SEED_ORDERS = 40


@dataclass
class SandboxEnv:
    sandbox: object
    endpoints: dict
    expected: dict[str, str]
    _taken: set[str] = field(default_factory=set)

    # ---------------------------------------------------------------- orders
    def take(self, outcome: str = "Activated") -> str:
        """A seeded order (not used by another test) whose expected outcome is ``outcome``."""
        for oid, exp in sorted(self.expected.items()):
            if exp == outcome and oid not in self._taken:
                self._taken.add(oid)
                return oid
        raise AssertionError(f"no unused seeded order with outcome {outcome}; raise SEED_ORDERS")

    def approve(self, *order_ids: str, status: str = "Approved") -> None:
        from orderflow_sandbox.salesforce.approve import approve_orders

        approve_orders(self.sandbox.data_dir, list(order_ids), status=status)

    def order(self, order_id: str) -> dict:
        rows = self.sf.query(
            "SELECT Id, Status, Activation_Status__c, Activation_Error_Code__c, Activation_Error_Message__c, "
            "WHMCS_Order_ID__c, AccountId, Account.WH_Account__c, "
            f"(SELECT Id, Product2Id, WHMCS_Service_ID__c FROM OrderItems) FROM Order WHERE Id = '{order_id}'"
        )
        return rows[0]

    def whmcs_orders_for(self, order_id: str) -> list:
        """Every WHMCS order (any client) whose notes carry this order's marker (the pipeline's own rule)."""
        from orderflow.order_marker import carries_marker

        return [o for o in self.wh_admin.iter_orders(page_size=250) if carries_marker(o.notes, order_id)]

    # ---------------------------------------------------------------- clients
    @property
    def sf(self):
        from orderflow_sandbox.connections import salesforce_client

        if not hasattr(self, "_sf"):
            self._sf = salesforce_client(self.endpoints)
        return self._sf

    @property
    def wh_admin(self):
        from orderflow_sandbox.connections import whmcs_client

        if not hasattr(self, "_wh"):
            self._wh = whmcs_client(self.endpoints, credentials=self.sandbox.whmcs.admin_credentials())
        return self._wh

    # ---------------------------------------------------------------- admin
    def _admin(self, system: str, method: str, path: str, body: dict | None = None):
        url = self.endpoints[system]["admin_url"] + path
        resp = requests.request(method, url, json=body, verify=self.endpoints["ca_bundle"], timeout=30)
        assert resp.status_code < 400, resp.text
        return resp.json() if resp.content else None

    def fault(self, system: str, kind: str, target: str = "*", count: int | None = 1, **extra) -> None:
        self._admin(system, "POST", "/faults", {"kind": kind, "target": target, "count": count, **extra})

    def clear_faults(self) -> None:
        for system in ("salesforce", "whmcs"):
            self._admin(system, "DELETE", "/faults")

    def stats(self, system: str) -> dict:
        return self._admin(system, "GET", "/stats")


@contextmanager
def running_sandbox(data_dir: Path, seed: Callable[[Path], dict], **extra_env: str) -> Iterator[SandboxEnv]:
    """A started sandbox seeded by ``seed(data_dir)``, its connections and ``extra_env`` in ``os.environ``.

    The environment is restored and the sandbox stopped when the block ends.
    """
    from orderflow_sandbox.connections import connection_env
    from orderflow_sandbox.server import Sandbox

    sandbox = Sandbox(data_dir)
    endpoints = sandbox.start()
    try:
        summary = seed(sandbox.data_dir)
        env_vars = {**connection_env(endpoints), **extra_env}
        saved = {k: os.environ.get(k) for k in env_vars}
        os.environ.update(env_vars)
        try:
            yield SandboxEnv(sandbox, endpoints, summary["expected"])
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        sandbox.stop()


@pytest.fixture(scope="session")
def start_sandbox() -> Callable[..., AbstractContextManager[SandboxEnv]]:
    """:func:`running_sandbox`, for a module that needs a sandbox of its own (another seed, more settings)."""
    return running_sandbox


@pytest.fixture(scope="session")
def sandbox_env(tmp_path_factory) -> Iterator[SandboxEnv]:
    from orderflow_sandbox.seed import seed_sandbox

    with running_sandbox(tmp_path_factory.mktemp("dag-sandbox"),
                         lambda data_dir: seed_sandbox(data_dir, orders=SEED_ORDERS, rng_seed=11)) as env:
        yield env


@pytest.fixture
def env(sandbox_env: SandboxEnv) -> Iterator[SandboxEnv]:
    sandbox_env.clear_faults()
    yield sandbox_env
    sandbox_env.clear_faults()


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"], safe_mode=False)
    assert bag.import_errors == {}, bag.import_errors
    return bag
