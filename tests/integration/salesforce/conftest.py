"""Salesforce contract tests against the running sandbox org (HTTPS, TLS verified against the sandbox CA).

One sandbox per test module, seeded with enough orders to page past 2,000 rows. Faults and config are
reset after every test so tests don't leak state into each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sf_env import SfEnv

from orderflow_sandbox.seed import seed_sandbox
from orderflow_sandbox.server import Sandbox

SEED_ORDERS = 2300  # > 2,000 query batch, so paging is exercised


@pytest.fixture(scope="module")
def sf_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SfEnv]:
    data_dir = tmp_path_factory.mktemp("sf-sandbox")
    summary = seed_sandbox(data_dir, orders=SEED_ORDERS, rng_seed=11)
    sandbox = Sandbox(data_dir, components={"salesforce"})
    sandbox.start()
    try:
        yield SfEnv(sandbox, data_dir, summary)
    finally:
        sandbox.stop()


@pytest.fixture
def sf(sf_env: SfEnv) -> Iterator[SfEnv]:
    config = sf_env.admin("GET", "/config")
    yield sf_env
    sf_env.admin("DELETE", "/faults")
    sf_env.admin("POST", "/config", {"token_ttl_seconds": config["token_ttl_seconds"],  # type: ignore[index]
                                     "daily_api_limit": config["daily_api_limit"]})  # type: ignore[index]


@pytest.fixture
def fresh_order(sf: SfEnv) -> Callable[[], str]:
    """Order ids handed out once per module, so tests that write don't step on each other."""
    pool = iter(sf.orders())
    used: set[str] = getattr(sf, "_used", set())
    sf._used = used  # type: ignore[attr-defined]

    def take() -> str:
        for oid in pool:
            if oid not in used:
                used.add(oid)
                return oid
        raise AssertionError("seed pool exhausted")

    return take
