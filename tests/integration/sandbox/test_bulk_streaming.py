"""Bulk API 2.0 query jobs stream the table a chunk at a time and still return exactly what SOQL says.

The chunk size is shrunk so a few hundred orders cross many chunk boundaries; results are compared
with the same query through REST (``/query`` + ``nextRecordsUrl``), read with the pipeline's client.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderflow.salesforce.client import SalesforceClient
from orderflow.salesforce.token_cache import TokenCache
from orderflow_sandbox.connections import salesforce_client
from orderflow_sandbox.salesforce import bulk
from orderflow_sandbox.seed import seed_provisioned
from orderflow_sandbox.server import Sandbox

ORDERS = 300


@pytest.fixture(scope="module")
def sf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SalesforceClient]:
    data_dir = tmp_path_factory.mktemp("bulk-stream")
    seed_provisioned(data_dir, orders=ORDERS, rng_seed=2)
    sandbox = Sandbox(data_dir, components={"salesforce"})
    sandbox.start()
    try:
        yield salesforce_client(sandbox.endpoints, token_cache=TokenCache(data_dir / "tokens.json"))
    finally:
        sandbox.stop()


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "STREAM_CHUNK", 37)


def _bulk(sf: SalesforceClient, soql: str, path: Path) -> list[dict]:
    n = sf.bulk_query_to_file(soql, path, max_records=101)  # result pages (locators) cut across chunks too
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == n
    return rows


def _rest(sf: SalesforceClient, soql: str) -> list[dict]:
    out = []
    for rec in sf.iter_query(soql):
        out.append({
            "Id": rec["Id"], "OrderId": rec["OrderId"], "WHMCS_Service_ID__c": rec["WHMCS_Service_ID__c"] or "",
            "Order.Activation_Status__c": rec["Order"]["Activation_Status__c"],
            "Order.Account.WH_Account__c": rec["Order"]["Account"]["WH_Account__c"] or "",
        })
    return out


SOQL = ("SELECT Id, OrderId, WHMCS_Service_ID__c, Order.Activation_Status__c, Order.Account.WH_Account__c "
        "FROM OrderItem")


def test_every_row_once_with_parent_fields_across_chunks(sf: SalesforceClient, tmp_path: Path) -> None:
    rows = _bulk(sf, SOQL, tmp_path / "items.csv")
    assert len(rows) > 5 * 37 and len({r["Id"] for r in rows}) == len(rows)
    assert rows == _rest(sf, SOQL)  # same rows, same values, same (storage) order


def test_where_and_limit_span_chunks(sf: SalesforceClient, tmp_path: Path) -> None:
    where = " WHERE Order.Activation_Status__c = 'Failed'"
    failed = _bulk(sf, SOQL + where, tmp_path / "failed.csv")
    assert failed == _rest(sf, SOQL + where) and failed
    assert {r["WHMCS_Service_ID__c"] for r in failed} == {""}
    limited = _bulk(sf, SOQL + " LIMIT 130", tmp_path / "limited.csv")
    assert limited == _rest(sf, SOQL)[:130]


def test_order_by_still_sorts_the_whole_result(sf: SalesforceClient, tmp_path: Path) -> None:
    rows = _bulk(sf, "SELECT Id, CreatedDate FROM Order ORDER BY CreatedDate DESC", tmp_path / "sorted.csv")
    assert len(rows) == ORDERS
    assert [r["CreatedDate"] for r in rows] == sorted((r["CreatedDate"] for r in rows), reverse=True)
