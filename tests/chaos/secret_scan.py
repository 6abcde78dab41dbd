"""Secret scan: look for every secret the sandbox issued in everything a run left behind.

Secrets (from the sandbox's ``endpoints.json``, its key file and its admin API): the WHMCS API
identifier, secret and access key; each base64 body line of the connected app's JWT private key; every
access token the Salesforce org issued (``GET /__sandbox/tokens`` keeps revoked and expired ones).

Places: every file under ``AIRFLOW_HOME`` (task logs, component logs, the mail sink) and the reports
folder; XCom values, rendered template fields, run confs, Variables and the audit log in the metadata
database (any SQLAlchemy URL: SQLite or PostgreSQL); the error fields of every Salesforce Order.
Each secret is looked for as written, URL-encoded and JSON-escaped, so a token inside a logged URL or
a JSON blob is still found. The one file allowed to hold a secret is the 0600 access-token cache the
pipeline keeps on purpose (``.orderflow/salesforce_token_cache.json``); it is skipped and named in
the result so nobody mistakes the skip for a scan.

CLI: ``python tests/chaos/secret_scan.py --sandbox DIR --airflow-home DIR [--reports DIR]`` (the
database URL comes from ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``); exit 1 on any hit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

# The token cache is the pipeline's designated secret store (0600, never logged): not a leak.
ALLOWED_FILES = (".orderflow/salesforce_token_cache.json",)
# (table, columns) of the metadata database that hold values tasks produced or ops typed.
DB_COLUMNS = (
    ("xcom", ("value",)),
    ("rendered_task_instance_fields", ("rendered_fields", "k8s_pod_yaml")),
    ("dag_run", ("conf",)),
    ("variable", ("val",)),
    ("log", ("extra",)),
    ("task_instance", ("rendered_map_index",)),
)
MIN_KEY_LINE = 16  # a shorter base64 line (the key's last one) is too likely to occur by chance


@dataclass(frozen=True)
class Secret:
    name: str  # what it is, never its value: "whmcs secret", "salesforce access token 3"
    value: str

    def forms(self) -> set[str]:
        """The ways the value may be written: as is, URL-encoded, JSON-escaped (and PHP's ``\\/``)."""
        escaped = json.dumps(self.value)[1:-1]
        return {self.value, quote(self.value, safe=""), escaped, escaped.replace("/", "\\/")}


@dataclass(frozen=True)
class Hit:
    secret: str  # Secret.name
    place: str  # "file <path>", "db xcom.value row <n>", "salesforce Order <id> Activation_Error_Message__c"


@dataclass
class ScanResult:
    secrets: int = 0
    files: int = 0
    db_values: int = 0
    salesforce_records: int = 0
    skipped: list[str] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)

    def merge(self, other: ScanResult) -> None:
        self.files += other.files
        self.db_values += other.db_values
        self.salesforce_records += other.salesforce_records
        self.skipped += other.skipped
        self.hits += other.hits

    def summary(self) -> str:
        return (f"{len(self.hits)} secrets found ({self.secrets} secrets looked for in {self.files} files, "
                f"{self.db_values} database values, {self.salesforce_records} Salesforce records)")


# --------------------------------------------------------------------------- the secrets


def private_key_lines(pem: str) -> list[str]:
    """The base64 body lines of a PEM private key (not its BEGIN/END armour)."""
    return [line.strip() for line in pem.splitlines()
            if line.strip() and not line.startswith("-----") and len(line.strip()) >= MIN_KEY_LINE]


def sandbox_secrets(data_dir: str | Path, issued_tokens: Iterable[str] | None = None) -> list[Secret]:
    """Every secret the sandbox in ``data_dir`` issued; tokens from its admin API unless given."""
    from orderflow_sandbox.server import read_endpoints

    endpoints = read_endpoints(data_dir)
    secrets: list[Secret] = []
    wh = endpoints.get("whmcs") or {}
    for key in ("identifier", "secret", "accesskey"):
        if wh.get(key):
            secrets.append(Secret(f"whmcs {key}", wh[key]))
    sf = endpoints.get("salesforce") or {}
    if sf.get("private_key_path"):
        pem = Path(sf["private_key_path"]).read_text()
        secrets += [Secret(f"jwt private key line {n}", line) for n, line in enumerate(private_key_lines(pem), 1)]
        if issued_tokens is None:
            from orderflow_sandbox.admin import admin_call

            issued_tokens = (admin_call(data_dir, "salesforce", "GET", "/tokens") or {}).get("issued", [])
    secrets += [Secret(f"salesforce access token {n}", token) for n, token in enumerate(issued_tokens or [], 1)]
    return secrets


# --------------------------------------------------------------------------- the places


class Matcher:
    """Finds which secrets occur in a text (every form of every secret)."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        self.forms = [(secret.name, form) for secret in secrets for form in sorted(secret.forms())]

    def names_in(self, text: str) -> list[str]:
        return sorted({name for name, form in self.forms if form in text})


def _files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


def scan_files(root: str | Path, matcher: Matcher, allowed: Iterable[str] = ALLOWED_FILES) -> ScanResult:
    """Every regular file under ``root`` (logs, mail, reports, sqlite files too)."""
    result = ScanResult()
    root = Path(root)
    if not root.exists():
        return result
    allowed = {root / rel for rel in allowed}
    for path in _files(root):
        if path in allowed:
            result.skipped.append(f"{path} (the pipeline's access-token cache)")
            continue
        result.files += 1
        try:
            text = path.read_bytes().decode("latin-1")
        except OSError:
            continue
        result.hits += [Hit(name, f"file {path}") for name in matcher.names_in(text)]
    return result


def _as_text(value: object) -> str:
    """A database value as text: bytes (SQLite BLOBs, PostgreSQL bytea) as latin-1, JSON columns dumped."""
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else json.dumps(value, default=str)


def scan_database(url: str, matcher: Matcher, columns: Iterable[tuple[str, tuple[str, ...]]] = DB_COLUMNS) -> ScanResult:
    """XCom, rendered fields, run confs, Variables and the audit log of Airflow's metadata database."""
    import sqlalchemy as sa

    result = ScanResult()
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        tables = set(inspector.get_table_names())
        with engine.connect() as conn:
            for table, wanted in columns:
                if table not in tables:
                    continue
                present = {c["name"] for c in inspector.get_columns(table)}
                for column in (c for c in wanted if c in present):
                    rows = conn.execute(sa.text(f'SELECT "{column}" FROM "{table}"'))  # names from our own list
                    for n, (value,) in enumerate(rows, 1):
                        if value is None:
                            continue
                        result.db_values += 1
                        text = _as_text(value)
                        result.hits += [Hit(name, f"db {table}.{column} row {n}") for name in matcher.names_in(text)]
    finally:
        engine.dispose()
    return result


def scan_salesforce_errors(endpoints: dict, matcher: Matcher) -> ScanResult:
    """The activation error code and message of every Order in the org (what ops and agents read)."""
    from orderflow_sandbox.connections import salesforce_client

    result = ScanResult()
    client = salesforce_client(endpoints)
    for rec in client.query("SELECT Id, Activation_Error_Code__c, Activation_Error_Message__c FROM Order"):
        result.salesforce_records += 1
        for fname in ("Activation_Error_Code__c", "Activation_Error_Message__c"):
            text = rec.get(fname) or ""
            result.hits += [Hit(name, f"salesforce Order {rec['Id']} {fname}") for name in matcher.names_in(text)]
    return result


def scan_run(sandbox_dir: str | Path, airflow_home: str | Path, db_url: str | None,
             reports: Iterable[str | Path] = (), secrets: list[Secret] | None = None) -> ScanResult:
    """Everything a run left: files under AIRFLOW_HOME and the reports, the metadata DB, Salesforce."""
    from orderflow_sandbox.server import read_endpoints

    secrets = sandbox_secrets(sandbox_dir) if secrets is None else secrets
    matcher = Matcher(secrets)
    result = ScanResult(secrets=len(secrets))
    for root in (airflow_home, *reports):
        result.merge(scan_files(root, matcher))
    if db_url:
        result.merge(scan_database(db_url, matcher))
    result.merge(scan_salesforce_errors(read_endpoints(sandbox_dir), matcher))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests/chaos/secret_scan.py", description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", required=True, help="the sandbox data folder (endpoints.json)")
    parser.add_argument("--airflow-home", default=os.environ.get("AIRFLOW_HOME"))
    parser.add_argument("--reports", action="append", default=[], help="a reports folder (repeatable)")
    parser.add_argument("--db-url", default=os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"))
    args = parser.parse_args(argv)
    result = scan_run(args.sandbox, args.airflow_home, args.db_url, args.reports)
    for hit in result.hits:
        print(f"SECRET FOUND: {hit.secret} in {hit.place}")
    print(f"secret scan: {result.summary()}")
    return 1 if result.hits else 0


if __name__ == "__main__":
    sys.exit(main())
