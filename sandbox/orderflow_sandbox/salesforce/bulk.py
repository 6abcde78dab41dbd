"""Bulk API 2.0 query jobs: create, poll (UploadComplete -> InProgress -> JobComplete), CSV results.

Results are written once to ``<data_dir>/bulk/<jobId>.csv`` (streamed, a chunk of rows at a time,
so 700,000 OrderItems do not sit in memory) and served in pages: ``maxRecords`` per
request, ``Sforce-Locator`` for the next page (the literal ``null`` at the end) and
``Sforce-NumberOfRecords`` on every page, as simple-salesforce's ``bulk2`` requires.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime as dt
import io
import logging
import threading
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orderflow_sandbox.salesforce import soql as soql_mod
from orderflow_sandbox.salesforce.ids import make_id, normalize_id

if TYPE_CHECKING:
    from orderflow_sandbox.salesforce.org import SalesforceOrg

log = logging.getLogger(__name__)

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
DEFAULT_MAX_RECORDS = 50_000
STREAM_CHUNK = 20_000  # rows evaluated at a time when a query job streams (see BulkJobs._evaluate)


class BulkError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class QueryJob:
    id: str
    operation: str
    query: str
    object: str
    column_delimiter: str
    line_ending: str
    api_version: str
    created_by: str
    created_date: str
    state: str = "UploadComplete"
    records: int = 0
    error: str | None = None
    path: Path | None = None
    offsets: array = field(default_factory=lambda: array("q"))  # byte offset of each data row (header excluded)
    header: bytes = b""
    polled: int = 0

    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": self.created_date,
            "systemModstamp": self.created_date,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "jobType": "V2Query",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
            "numberRecordsProcessed": self.records if self.state == "JobComplete" else 0,
            "retries": 0,
            "totalProcessingTime": 0,
        }
        if self.error:
            data["errorMessage"] = self.error
        return data


def _csv_value(f: soql_mod.Field, value: Any) -> str:
    return "" if value is None else _csv_converter(f)(value)


def _csv_converter(f: soql_mod.Field) -> Callable[[Any], str]:
    """How one field's non-null value is written (decided once per column, not per cell)."""
    if f.type == "boolean":
        return lambda v: "true" if v else "false"
    if f.type in ("double", "currency", "int"):
        def number(v: Any) -> str:
            n = float(v)
            return str(int(n)) if (f.scale == 0 and n.is_integer()) else repr(n)
        return number
    if f.type == "datetime":
        return lambda v: str(v).replace("+0000", "Z")
    return str


def _column(rows: list[dict], rels: dict, name: str, chain: tuple[str, ...],
            convert: Callable[[Any], str]) -> list[str]:
    """One CSV column of a chunk, a column at a time (a row at a time cost ~2x): the rows' own field, or
    their parents' through ``chain``."""
    if chain:
        parents = rels[chain]
        values = [None if (parent := parents.get(row["Id"])) is None else parent.get(name) for row in rows]
    else:
        values = [row.get(name) for row in rows]
    return ["" if value is None else convert(value) for value in values]


def _own_columns(schema: dict, query: soql_mod.Query) -> list[str]:
    """The base object's columns a query reads: selected and filtered fields, and the lookups it follows."""
    paths = list(query.fields) + [node.path for node in soql_mod._walk(query.where)]
    names = {"Id", "IsDeleted"}
    for path in paths:
        rp = soql_mod.resolve_path(schema, query.sobject, path)
        names.add(rp.hops[0][1].name if rp.hops else rp.field.name)
    return sorted(names)


class BulkJobs:
    """The org's Bulk 2.0 query jobs (in memory; results on disk)."""

    def __init__(self, org: SalesforceOrg) -> None:
        self.org = org
        self.jobs: dict[str, QueryJob] = {}
        self._lock = threading.Lock()
        self._seq = 0
        self.dir = org.data_dir / "bulk"

    def create(self, body: dict, api_version: str) -> dict:
        operation = body.get("operation")
        if operation not in ("query", "queryAll"):
            raise BulkError(400, "INVALIDJOB", f"Invalid operation: {operation}")
        text = body.get("query") or ""
        delim = body.get("columnDelimiter", "COMMA")
        ending = body.get("lineEnding", "LF")
        if delim not in DELIMITERS:
            raise BulkError(400, "INVALIDJOB", f"Invalid column delimiter: {delim}")
        if ending not in LINE_ENDINGS:
            raise BulkError(400, "INVALIDJOB", f"Invalid line ending: {ending}")
        if body.get("contentType", "CSV") != "CSV":
            raise BulkError(400, "INVALIDJOB", "Only CSV content type is supported")
        try:
            query = soql_mod.parse(text)
            soql_mod.validate(query, self.org.schema, allow_children=False)
        except soql_mod.SoqlError as exc:
            raise BulkError(400, exc.error_code, exc.message) from None
        if query.count or query.offset is not None:
            raise BulkError(400, "INVALIDJOB", "Aggregate queries and OFFSET are not supported by Bulk API 2.0 query")
        from orderflow_sandbox.salesforce.org import now_utc

        with self._lock:
            self._seq += 1
            job_id = make_id("750", self._seq + int(now_utc().timestamp()) % 10_000_000 * 100)
            job = QueryJob(job_id, operation, text, query.sobject, delim, ending, api_version, self.org.user_id,
                           soql_mod.format_datetime(now_utc()))
            self.jobs[job_id] = job
        threading.Thread(target=self._run, args=(job, query), name=f"bulk-{job_id}", daemon=True).start()
        return job.info()

    def _run(self, job: QueryJob, query: soql_mod.Query) -> None:
        job.state = "InProgress"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            path = self.dir / f"{job.id}.csv"
            paths = [p for p in query.select_order if isinstance(p, tuple)]
            resolved = [soql_mod.resolve_path(self.org.schema, query.sobject, p) for p in paths]
            header = [".".join([*rp.chain, rp.field.name]) for rp in resolved]
            columns = [(rp.field.name, rp.chain, _csv_converter(rp.field)) for rp in resolved]
            sep, eol = DELIMITERS[job.column_delimiter], LINE_ENDINGS[job.line_ending]
            offsets = array("q")
            with path.open("wb") as fh:
                buf = io.StringIO()
                writer = csv.writer(buf, delimiter=sep, lineterminator=eol, quoting=csv.QUOTE_MINIMAL)
                writer.writerow(header)
                job.header = buf.getvalue().encode()
                fh.write(job.header)
                pos = len(job.header)
                for rows, rels in self._evaluate(job, query):
                    buf.seek(0)
                    buf.truncate()
                    starts = []
                    cells = [_column(rows, rels, *column) for column in columns]
                    for values in zip(*cells, strict=True) if cells else ([] for _ in rows):
                        starts.append(buf.tell())
                        writer.writerow(values)
                    text = buf.getvalue()
                    if text.isascii():  # character offsets are byte offsets: one encode per chunk
                        offsets.extend(pos + start for start in starts)
                        data = text.encode()
                    else:
                        parts, size = [], 0
                        for start, end in zip(starts, [*starts[1:], len(text)], strict=True):
                            offsets.append(pos + size)
                            parts.append(text[start:end].encode())
                            size += len(parts[-1])
                        data = b"".join(parts)
                    fh.write(data)
                    pos += len(data)
            job.path, job.offsets, job.records = path, offsets, len(offsets)
            job.state = "JobComplete"
        except soql_mod.SoqlError as exc:
            job.state, job.error = "Failed", f"{exc.error_code}: {exc.message}"
        except Exception as exc:  # noqa: BLE001 - a failed job reports, it does not crash the server
            log.exception("bulk job %s failed", job.id)
            job.state, job.error = "Failed", f"UNKNOWN_EXCEPTION: {type(exc).__name__}"

    def _evaluate(self, job: QueryJob, query: soql_mod.Query) -> Iterator[tuple[list[dict], dict]]:
        """The job's rows in chunks of :data:`STREAM_CHUNK` (with their parent rows), so memory stays flat.

        Without ORDER BY, rows stream in storage order, a chunk of the table at a time, and each
        chunk is filtered and joined to its parents on its own: a 700,000-row extract never holds
        more than one chunk. A query with ORDER BY has to see every row first and is evaluated whole.
        """
        include_deleted = job.operation == "queryAll"
        if query.order_by:
            result = self.org.query_rows(job.query, include_deleted=include_deleted)
            yield result.rows, result.rels
            return
        from orderflow_sandbox.salesforce.org import _Source

        source = _Source(self.org, include_deleted)
        unlimited = dataclasses.replace(query, limit=None, offset=None)
        remaining = query.limit
        now = dt.datetime.now(dt.UTC)
        deleted = "" if include_deleted else " AND IsDeleted = 0"
        cols = ", ".join(f'"{c}"' for c in _own_columns(self.org.schema, query))
        sql = f'SELECT rowid AS "_rowid", {cols} FROM "{query.sobject}" WHERE rowid > ?{deleted} ORDER BY rowid LIMIT ?'  # noqa: S608
        last = -1
        while remaining is None or remaining > 0:
            chunk = self.org._rows(query.sobject, sql, [last, STREAM_CHUNK])
            if not chunk:
                return
            last = chunk[-1]["_rowid"]
            rows, rels = soql_mod._filter_sort(unlimited, self.org.schema, source, chunk, now)
            if remaining is not None:
                rows = rows[:remaining]
                remaining -= len(rows)
            yield rows, rels

    def get(self, job_id: str) -> QueryJob:
        rid = normalize_id(job_id) or job_id
        job = self.jobs.get(rid)
        if job is None:
            raise BulkError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def set_state(self, job_id: str, state: str) -> dict:
        job = self.get(job_id)
        if state != "Aborted":
            raise BulkError(400, "INVALIDJOBSTATE", f"Invalid state: {state}")
        if job.state in ("JobComplete", "Failed"):
            raise BulkError(400, "INVALIDJOBSTATE", f"Job is already {job.state}")
        job.state = "Aborted"
        return job.info()

    def delete(self, job_id: str) -> None:
        job = self.get(job_id)
        if job.path and job.path.exists():
            job.path.unlink()
        self.jobs.pop(job.id, None)

    def results(self, job_id: str, locator: str | None, max_records: int | None) -> tuple[bytes, str, int]:
        """One page of CSV (header + rows), the next locator (``"null"`` at the end) and the row count."""
        job = self.get(job_id)
        if job.state != "JobComplete":
            raise BulkError(
                412,
                "JOB_NOT_COMPLETE",
                "can only download query results of successfully completed bulk job with status: JOB_COMPLETE. "
                f"Current status: {job.state.upper()}",
            )
        start = 0
        if locator:
            try:
                start = int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode())
            except ValueError:
                raise BulkError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from None
        size = max_records if max_records and max_records > 0 else DEFAULT_MAX_RECORDS
        end = min(start + size, job.records)
        assert job.path is not None
        with job.path.open("rb") as fh:
            if start < job.records:
                fh.seek(job.offsets[start])
                stop = job.offsets[end] if end < job.records else None
                data = fh.read() if stop is None else fh.read(stop - job.offsets[start])
            else:
                data = b""
        next_locator = base64.b64encode(str(end).encode()).decode().rstrip("=") if end < job.records else "null"
        return job.header + data, next_locator, end - start
