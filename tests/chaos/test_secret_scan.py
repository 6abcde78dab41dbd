"""The chaos suite's secret scan finds a planted secret in each kind of place it must cover, and only there.

A real sandbox (Salesforce org + WHMCS over HTTPS) issues the secrets; the places are a temporary
AIRFLOW_HOME, a reports folder, an SQLite database with Airflow's table and column names, and the
org's Order error fields.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from secret_scan import Matcher, Secret, private_key_lines, sandbox_secrets, scan_database, scan_files, scan_run

from orderflow_sandbox.connections import salesforce_client
from orderflow_sandbox.server import Sandbox


@pytest.fixture(scope="module")
def issued_token(sandbox: Sandbox) -> str:
    """A token the org issued and then revoked (the INVALID_SESSION_ID fault): still a secret."""
    client = salesforce_client(sandbox.endpoints)
    client.query("SELECT Id FROM Order LIMIT 1")
    tokens = requests.get(sandbox.endpoints["salesforce"]["admin_url"] + "/tokens",
                          verify=sandbox.endpoints["ca_bundle"], timeout=10).json()["issued"]
    requests.delete(sandbox.endpoints["salesforce"]["admin_url"] + "/tokens",
                    verify=sandbox.endpoints["ca_bundle"], timeout=10)
    assert tokens
    return tokens[-1]


@pytest.fixture
def clean_home(tmp_path: Path) -> Path:
    home = tmp_path / "airflow"
    (home / "logs" / "dag_id=provision_order" / "run_id=x" / "task_id=load_order").mkdir(parents=True)
    (home / "logs" / "dag_id=provision_order" / "run_id=x" / "task_id=load_order" / "attempt=1.log").write_text(
        '{"event": "Loaded order 801000000000001AAA", "level": "info"}\n')
    (home / "scheduler.log").write_text("scheduler started\n")
    return home


def _db(path: Path, xcom: str = '"ok"', rendered: str = '{"op_args": []}') -> str:
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE xcom (id INTEGER PRIMARY KEY, value BLOB)"))
        conn.execute(sa.text("CREATE TABLE rendered_task_instance_fields (id INTEGER PRIMARY KEY, rendered_fields TEXT)"))
        conn.execute(sa.text("INSERT INTO xcom (value) VALUES (:v)"), {"v": xcom.encode()})
        conn.execute(sa.text("INSERT INTO rendered_task_instance_fields (rendered_fields) VALUES (:v)"), {"v": rendered})
    engine.dispose()
    return url


def test_sandbox_secrets_cover_whmcs_the_private_key_and_every_issued_token(sandbox, issued_token):
    secrets = {s.name: s.value for s in sandbox_secrets(sandbox.data_dir)}
    wh = sandbox.endpoints["whmcs"]
    assert secrets["whmcs identifier"] == wh["identifier"]
    assert secrets["whmcs secret"] == wh["secret"]
    assert secrets["whmcs accesskey"] == wh["accesskey"]
    pem = Path(sandbox.endpoints["salesforce"]["private_key_path"]).read_text()
    assert [v for n, v in secrets.items() if n.startswith("jwt private key")] == private_key_lines(pem)
    assert len(private_key_lines(pem)) > 10  # an RSA key body, not the armour
    assert issued_token in secrets.values()  # revoked, but listed by GET /__sandbox/tokens


def test_clean_run_has_no_hits(sandbox, issued_token, clean_home, tmp_path):
    result = scan_run(sandbox.data_dir, clean_home, _db(tmp_path / "meta.db"), reports=[tmp_path / "reports"])
    assert result.hits == []
    assert result.files == 2 and result.db_values == 2 and result.salesforce_records >= 4


@pytest.mark.parametrize("where", ["task log", "component log", "mail sink"])
def test_a_secret_in_a_file_under_airflow_home_is_found(sandbox, issued_token, clean_home, tmp_path, where):
    path = {"task log": clean_home / "logs" / "dag_id=provision_order" / "run_id=x" / "task_id=load_order" / "attempt=2.log",
            "component log": clean_home / "triggerer.log",
            "mail sink": clean_home / "mail" / "1700000000.eml"}[where]
    path.parent.mkdir(parents=True, exist_ok=True)
    # URL-encoded, as a token would appear in a logged request URL
    path.write_text("GET /services/data?access_token=" + requests.utils.quote(issued_token, safe="") + "\n")
    result = scan_run(sandbox.data_dir, clean_home, _db(tmp_path / "meta.db"))
    assert [(h.place, h.secret.startswith("salesforce access token")) for h in result.hits] == [(f"file {path}", True)]


def test_a_secret_in_the_reports_folder_is_found(sandbox, clean_home, tmp_path):
    secret = sandbox.endpoints["whmcs"]["secret"]
    report = tmp_path / "reports" / "reconcile" / "run1" / "drift.csv"
    report.parent.mkdir(parents=True)
    report.write_text(f"sf_order_id,detail\n801x,auth failed for secret {secret}\n")
    result = scan_run(sandbox.data_dir, clean_home, None, reports=[tmp_path / "reports"])
    assert [(h.secret, h.place) for h in result.hits] == [("whmcs secret", f"file {report}")]


def test_a_private_key_line_json_escaped_in_xcom_is_found(sandbox, clean_home, tmp_path):
    pem = Path(sandbox.endpoints["salesforce"]["private_key_path"]).read_text()
    line = next(line for line in private_key_lines(pem) if "/" in line)  # JSON writers may escape it as \/
    url = _db(tmp_path / "meta.db", xcom=json.dumps({"key": line}).replace("/", "\\/"))
    result = scan_run(sandbox.data_dir, clean_home, url)
    assert [h.place for h in result.hits] == ["db xcom.value row 1"]
    assert result.hits[0].secret.startswith("jwt private key line")


def test_a_secret_in_rendered_fields_is_found(sandbox, clean_home, tmp_path):
    access_key = sandbox.endpoints["whmcs"]["accesskey"]
    url = _db(tmp_path / "meta.db", rendered=json.dumps({"op_kwargs": {"accesskey": access_key}}))
    result = scan_run(sandbox.data_dir, clean_home, url)
    assert [(h.secret, h.place) for h in result.hits] == [("whmcs accesskey", "db rendered_task_instance_fields.rendered_fields row 1")]


def test_a_secret_in_a_salesforce_error_field_is_found(sandbox, clean_home):
    identifier = sandbox.endpoints["whmcs"]["identifier"]
    client = salesforce_client(sandbox.endpoints)
    order_id = client.query("SELECT Id FROM Order LIMIT 1")[0]["Id"]
    client.update("Order", order_id, {"Activation_Error_Message__c": f"login {identifier} refused"})
    try:
        result = scan_run(sandbox.data_dir, clean_home, None)
    finally:
        client.update("Order", order_id, {"Activation_Error_Message__c": None})
    assert [(h.secret, h.place) for h in result.hits] == [
        ("whmcs identifier", f"salesforce Order {order_id} Activation_Error_Message__c")]


def test_the_token_cache_is_skipped_and_named(sandbox, issued_token, clean_home):
    cache = clean_home / ".orderflow" / "salesforce_token_cache.json"
    cache.parent.mkdir()
    cache.write_text(json.dumps({"k": {"access_token": issued_token}}))
    result = scan_files(clean_home, Matcher([Secret("t", issued_token)]))
    assert result.hits == [] and result.skipped == [f"{cache} (the pipeline's access-token cache)"]


def test_postgres_bytes_and_json_values_are_read(tmp_path):
    """PostgreSQL hands back memoryview (bytea) and dicts (jsonb); both are searched."""
    from secret_scan import _as_text

    assert "s3cr3t-value" in _as_text(memoryview(b"x s3cr3t-value y"))
    assert "s3cr3t-value" in _as_text({"nested": ["s3cr3t-value"]})
    url = _db(tmp_path / "m.db", xcom='"nothing"')
    assert scan_database(url, Matcher([Secret("s", "s3cr3t-value")])).hits == []
