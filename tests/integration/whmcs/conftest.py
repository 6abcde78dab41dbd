"""One WHMCS emulator per test session, over real HTTPS with the sandbox CA."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import requests

from orderflow.whmcs.client import WhmcsClient
from orderflow_sandbox.server import Sandbox
from orderflow_sandbox.whmcs.state import WhmcsState

_emails = itertools.count(1)


@pytest.fixture(scope="session")
def whmcs_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sandbox = Sandbox(tmp_path_factory.mktemp("whmcs-sandbox"), components={"whmcs"})
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture(scope="session")
def endpoints(whmcs_sandbox: Sandbox) -> dict:
    """``endpoints.json``'s WHMCS entry plus ``ca_bundle``."""
    return {**whmcs_sandbox.endpoints["whmcs"], "ca_bundle": whmcs_sandbox.endpoints["ca_bundle"]}


@pytest.fixture(scope="session")
def state(whmcs_sandbox: Sandbox) -> WhmcsState:
    return whmcs_sandbox.whmcs


@pytest.fixture(autouse=True)
def _reset_emulator(endpoints: dict, state: WhmcsState) -> Iterator[None]:
    """Each test starts with no faults and the default IP allow-list."""
    yield
    requests.delete(f"{endpoints['admin_url']}/faults", verify=endpoints["ca_bundle"], timeout=10)
    state.update_settings({"api_allowed_ips": ["127.0.0.1", "::1"], "empty_lists_as_string": True})


@pytest.fixture
def add_fault(endpoints: dict):
    """Inject a fault through the admin API, as the CLI does."""

    def add(kind: str, target: str = "*", **spec: object) -> dict:
        resp = requests.post(
            f"{endpoints['admin_url']}/faults",
            json={"kind": kind, "target": target, **spec},
            verify=endpoints["ca_bundle"],
            timeout=10,
        )
        assert resp.status_code == 201, resp.text
        return resp.json()

    return add


@pytest.fixture
def client(endpoints: dict) -> Iterator[WhmcsClient]:
    """The pipeline's client: the least-privilege API role."""
    with WhmcsClient(
        endpoints["url"], endpoints["identifier"], endpoints["secret"], ca_bundle=endpoints["ca_bundle"], timeout=10
    ) as c:
        yield c


@pytest.fixture
def admin_client(endpoints: dict, state: WhmcsState) -> Iterator[WhmcsClient]:
    """A client whose API role allows every action."""
    creds = state.admin_credentials()
    with WhmcsClient(
        endpoints["url"], creds["identifier"], creds["secret"], ca_bundle=endpoints["ca_bundle"], timeout=10
    ) as c:
        yield c


@pytest.fixture
def new_customer(state: WhmcsState):
    """Create a fresh WHMCS client (with a pay method unless told otherwise); returns its id."""

    def make(with_paymethod: bool = True) -> int:
        n = next(_emails)
        return state.create_client("Hanako", f"Test{n}", f"hanako.test{n}@example.jp", with_paymethod=with_paymethod)

    return make


@pytest.fixture
def raw_post(endpoints: dict):
    """POST a form to api.php with the pipeline credential (override any field)."""

    def post(fields: dict | list, with_auth: bool = True) -> requests.Response:
        base = {"identifier": endpoints["identifier"], "secret": endpoints["secret"]} if with_auth else {}
        data = list(base.items()) + (list(fields.items()) if isinstance(fields, dict) else list(fields))
        return requests.post(endpoints["url"], data=data, verify=endpoints["ca_bundle"], timeout=10)

    return post
