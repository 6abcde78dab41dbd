"""The WHMCS secret and access key never reach log records or exception text."""

from __future__ import annotations

import logging

import pytest

from orderflow.errors import OrderflowError
from orderflow.whmcs.client import WhmcsClient


def test_secret_and_access_key_stay_out_of_logs_and_errors(endpoints, state, add_fault, caplog):
    caplog.set_level(logging.DEBUG)
    secret, accesskey = endpoints["secret"], endpoints["accesskey"]
    wrong = "wrong-" + secret[::-1]
    errors: list[BaseException] = []

    def attempt(client: WhmcsClient, action: str, **params: object) -> None:
        try:
            client.call(action, **params)
        except OrderflowError as exc:
            errors.append(exc)

    real = WhmcsClient(
        endpoints["url"], endpoints["identifier"], secret, accesskey=accesskey, ca_bundle=endpoints["ca_bundle"]
    )
    bad = WhmcsClient(endpoints["url"], endpoints["identifier"], wrong, ca_bundle=endpoints["ca_bundle"])
    with real, bad:
        attempt(bad, "GetProducts")
        for kind in ("http_500", "html_200", "drop", "commit_then_drop"):
            add_fault(kind, "GetOrders", count=2)
            attempt(real, "GetOrders", id=1)
        attempt(real, "ModuleCreate", serviceid=1)
        state.set_allowed_ips([])
        attempt(WhmcsClient(endpoints["url"], endpoints["identifier"], secret, ca_bundle=endpoints["ca_bundle"]),
                "GetProducts")
        attempt(WhmcsClient("https://127.0.0.1:9/includes/api.php", endpoints["identifier"], secret, timeout=2),
                "GetProducts")

    assert len(errors) == 8
    texts = [f"{e!s} {e!r} {getattr(e, 'message', '')} {e.__cause__!r}" for e in errors]
    texts += [r.getMessage() for r in caplog.records] + [caplog.text, repr(real)]
    for value in (secret, accesskey, wrong):
        assert not [t for t in texts if value in t], "a credential leaked"


@pytest.mark.parametrize("field", ["secret", "accesskey"])
def test_client_repr_has_no_credentials(endpoints, field):
    client = WhmcsClient(endpoints["url"], endpoints["identifier"], endpoints["secret"], accesskey=endpoints["accesskey"])
    assert endpoints[field] not in repr(client)
