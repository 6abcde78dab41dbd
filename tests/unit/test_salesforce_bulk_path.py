"""The one Bulk 2.0 path (SalesforceClient.bulk_query_to_file) and reconciliation's extract on it.

simple-salesforce's Bulk 2.0 handler is replaced by a stub that serves result pages or fails the
way the real one does (``SalesforceOperationError`` when a job ends Failed/Aborted or the wait runs
out), so these run without a sandbox; tests/integration/salesforce covers the same path end to end.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from simple_salesforce.exceptions import SalesforceOperationError

from orderflow.errors import ErrorCode, PermanentError, TransientError
from orderflow.reconcile import extract
from orderflow.salesforce.client import SalesforceClient, csv_records


class _Handler:
    def __init__(self, sobject: str, pages: list[str] | Exception, jobs: list) -> None:
        self.sobject, self.pages, self.jobs = sobject, pages, jobs

    def query(self, soql: str, max_records: int, wait: float):
        self.jobs.append((self.sobject, soql, max_records, wait))
        if isinstance(self.pages, Exception):
            raise self.pages
        yield from self.pages


class _Bulk2:
    def __init__(self, pages: dict[str, list[str] | Exception]) -> None:
        self.pages, self.jobs = pages, []

    def __getattr__(self, sobject: str) -> _Handler:
        return _Handler(sobject, self.pages[sobject], self.jobs)


class _StubSalesforce:
    def __init__(self, pages: dict[str, list[str] | Exception]) -> None:
        self.bulk2 = _Bulk2(pages)


def client_with(pages: dict[str, list[str] | Exception]) -> tuple[SalesforceClient, _Bulk2]:
    client = SalesforceClient("https://login.example.test", "integration@example.test", "consumer", private_key="k" * 8)
    stub = _StubSalesforce(pages)
    client.simple_salesforce = lambda: stub  # type: ignore[method-assign]
    return client, stub.bulk2


def test_pages_are_appended_under_one_header_and_records_counted_as_csv(tmp_path: Path):
    page1 = '"Id","Note"\n"801A","one"\n"801B","two\nlines"\n'
    page2 = '"Id","Note"\n"801C","three"'
    client, bulk2 = client_with({"Order": [page1, page2]})
    target = tmp_path / "deep" / "orders.csv"
    assert client.bulk_query_to_file("SELECT Id, Note FROM Order", target, max_records=2, poll_interval=0.01) == 3
    with target.open(newline="") as fh:
        assert list(csv.DictReader(fh)) == [{"Id": "801A", "Note": "one"}, {"Id": "801B", "Note": "two\nlines"},
                                            {"Id": "801C", "Note": "three"}]
    assert bulk2.jobs == [("Order", "SELECT Id, Note FROM Order", 2, 0.01)]


def test_a_job_without_pages_still_leaves_a_readable_file(tmp_path: Path):
    client, _ = client_with({"Order": []})
    assert client.bulk_query_to_file("SELECT Id FROM Order", str(tmp_path / "x.csv")) == 0
    assert (tmp_path / "x.csv").read_text() == "\n"


@pytest.mark.parametrize(("message", "cls", "code"), [
    ("Job failure. Response content: UNKNOWN_EXCEPTION: InternalServerError", TransientError,
     ErrorCode.SALESFORCE_UNAVAILABLE),
    ("Job timeout. Job status: InProgress", TransientError, ErrorCode.SALESFORCE_UNAVAILABLE),
    ("Job failure. Response content: INVALID_FIELD: No such column 'Foo__c' on entity 'Order'", PermanentError,
     ErrorCode.SALESFORCE_CONFIGURATION_ERROR),
])
def test_a_job_that_ends_failed_is_classified_by_the_one_rule(tmp_path: Path, message, cls, code):
    client, _ = client_with({"Order": SalesforceOperationError(message)})
    with pytest.raises(cls) as err:
        client.bulk_query_to_file("SELECT Id FROM Order", tmp_path / "x.csv")
    assert err.value.code is code and "Bulk 2.0 query of Order" in err.value.message


def test_extract_runs_one_bulk_job_per_object_through_the_client(tmp_path: Path):
    client, bulk2 = client_with({"Order": ['"Id","Status"\n"801A","Activated"\n'],
                                 "OrderItem": ['"Id","OrderId"\n"802A","801A"\n', '"Id","OrderId"\n"802B","801A"\n']})
    result = extract.extract_salesforce(client, tmp_path / "extract", extract.Scope(lookback_days=3))
    assert [(job[0], job[2], job[3]) for job in bulk2.jobs] == [("Order", extract.BULK_PAGE_ROWS, extract.BULK_POLL_SECONDS),
                                                                ("OrderItem", extract.BULK_PAGE_ROWS, extract.BULK_POLL_SECONDS)]
    assert bulk2.jobs[0][1] == extract.soql_orders(extract.Scope(lookback_days=3))
    assert bulk2.jobs[1][1] == extract.soql_items(extract.Scope(lookback_days=3))
    assert result.rows == {extract.SF_ORDERS_FILE: 1, extract.SF_ITEMS_FILE: 2}
    assert (tmp_path / "extract" / extract.SF_ITEMS_FILE).read_text() == '"Id","OrderId"\n"802A","801A"\n"802B","801A"\n'


def test_extract_passes_the_clients_classification_through(tmp_path: Path):
    failed = SalesforceOperationError("Job failure. Response content: UNKNOWN_EXCEPTION: InternalServerError")
    client, _ = client_with({"Order": failed, "OrderItem": []})
    with pytest.raises(TransientError) as err:
        extract.extract_salesforce(client, tmp_path, extract.Scope())
    assert err.value.code is ErrorCode.SALESFORCE_UNAVAILABLE


@pytest.mark.parametrize("text", [
    "", "a", "a\n", "a\nb", "a\n\nb\n", '"x\ny",1\n2,3', '"a""b",c\r\nd\r\n', '"",""\n', '""', '"q\nq"\n\n',
    '"801A","two\nlines"\n"801B","say ""hi""\nagain"', "x,y\r\n", '"Id"\r\n"801A"',
])
def test_records_are_counted_as_the_csv_module_counts_them(text):
    assert csv_records(text) == sum(1 for _ in csv.reader(io.StringIO(text)))
