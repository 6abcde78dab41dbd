"""Approve orders through the sandbox org's REST API, so the Flow runs exactly as it would in an org."""

from __future__ import annotations

import logging
from pathlib import Path

from orderflow.salesforce.client import SalesforceClient
from orderflow.salesforce.soql import validate_order_id
from orderflow.salesforce.token_cache import TokenCache
from orderflow_sandbox.server import read_endpoints

log = logging.getLogger(__name__)

APPROVAL_STATUSES = ("Approved", "Reactivate")


def sandbox_client(data_dir: Path) -> SalesforceClient:
    """A client for the running sandbox org (credentials and CA from ``endpoints.json``)."""
    from orderflow_sandbox.connections import salesforce_client

    token_cache = TokenCache(Path(data_dir).resolve() / "cli_token_cache.json")
    return salesforce_client(read_endpoints(data_dir), token_cache=token_cache)


def approve_orders(data_dir: Path, order_ids: list[str] | None, status: str = "Approved") -> list[str]:
    """Set ``Status`` (Approved or Reactivate) on the given orders, or on every order in Pending Review.

    Goes through ``PATCH /composite/sobjects`` (200 per call); returns the ids that were updated.
    """
    if status not in APPROVAL_STATUSES:
        raise ValueError(f"status must be one of {APPROVAL_STATUSES}, got {status!r}")
    client = sandbox_client(data_dir)
    if order_ids is None:
        ids = [r["Id"] for r in client.iter_query("SELECT Id FROM Order WHERE Status = 'Pending Review' ORDER BY Id")]
    else:
        ids = [validate_order_id(i) for i in order_ids]
    if not ids:
        return []
    results = client.update_collection([{"Id": i, "Status": status} for i in ids], sobject="Order")
    approved = []
    for order_id, result in zip(ids, results, strict=True):
        if result.success:
            approved.append(order_id)
        else:
            log.warning("order %s not approved: %s", order_id, result.error())
    return approved
