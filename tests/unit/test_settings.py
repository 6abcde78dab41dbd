"""``orderflow.settings`` is the one place the pipeline reads its environment, and its table lists every setting."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from orderflow import settings
from orderflow.salesforce.soql import ORDER_ID_RE

REPO = Path(__file__).resolve().parents[2]
SETTINGS_FILE = REPO / "include" / "orderflow" / "settings.py"
_ENV_READ = re.compile(r"\bos\.environ\b|\bgetenv\(")
_NAME = re.compile(r"\b(?:ORDERFLOW_[A-Z0-9_]+|AIRFLOW_HOME)\b")


def _table_and_code() -> tuple[set[str], set[str]]:
    text = SETTINGS_FILE.read_text()
    doc, code = text.split('"""', 2)[1], text.split('"""', 2)[2]
    rows = {m.group(0) for line in doc.splitlines() if (m := _NAME.match(line))}
    read = {name for line in code.splitlines() if _ENV_READ.search(line) or "_seconds(" in line or "_text(" in line
            for name in _NAME.findall(line)}
    return rows, read


def test_only_the_settings_module_reads_the_environment():
    readers = [f"{path.relative_to(REPO)}:{n}" for folder in ("include", "dags")
               for path in sorted((REPO / folder).rglob("*.py")) if path != SETTINGS_FILE
               for n, line in enumerate(path.read_text().splitlines(), 1) if _ENV_READ.search(line)]
    assert readers == []


def test_the_table_lists_exactly_the_settings_read():
    rows, read = _table_and_code()
    assert rows == read
    assert len(rows) >= 20


def test_settings_import_without_airflow():
    code = "import sys, orderflow.settings; print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("value", ["8015g000000pnfq", "8015g000000pnfqAAA"])
def test_one_order_id_pattern(value):
    assert ORDER_ID_RE.pattern == settings.ORDER_ID_PATTERN
    assert ORDER_ID_RE.fullmatch(value) and ORDER_ID_RE.match(value)
    assert not ORDER_ID_RE.match(value + "\n") and not ORDER_ID_RE.match("001" + value[3:])


def test_functions_read_at_call_time(monkeypatch, tmp_path):
    monkeypatch.setenv("ORDERFLOW_SWEEP_MINUTES", "0")
    monkeypatch.setenv("ORDERFLOW_NOTIFY_EMAIL", " a@x.test, ,b@x.test ")
    monkeypatch.setenv("ORDERFLOW_LOCK_URL", "")
    monkeypatch.setenv("ORDERFLOW_REPORTS_URL", "  ")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert settings.sweep_minutes() == 1
    assert settings.notify_recipients() == ["a@x.test", "b@x.test"]
    assert settings.lock_url() is None
    assert settings.reports_url() == settings.DEFAULT_REPORTS_URL
    assert settings.state_dir() == tmp_path / ".orderflow"
    monkeypatch.setenv("ORDERFLOW_SWEEP_MINUTES", "soon")
    monkeypatch.setenv("ORDERFLOW_LOCK_URL", "redis://r:6379/0")
    assert settings.sweep_minutes() == settings.DEFAULT_SWEEP_MINUTES
    assert settings.lock_url() == "redis://r:6379/0"
