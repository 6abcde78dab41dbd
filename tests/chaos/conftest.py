"""A real sandbox (Salesforce org + WHMCS over HTTPS, a few seeded orders) per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orderflow_sandbox.seed import seed_sandbox
from orderflow_sandbox.server import Sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path_factory.mktemp("chaos-sandbox"), components={"salesforce", "whmcs"})
    box.start()
    seed_sandbox(box.data_dir, orders=4, rng_seed=5)
    yield box
    box.stop()
