"""Test-wide setup: an isolated Airflow home before anything imports Airflow.

`make test` (scripts/run-tests.sh) sets these already; the defaults here make a bare
`pytest` work the same way.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

if "AIRFLOW_HOME" not in os.environ:
    _home = tempfile.mkdtemp(prefix="orderflow-test-airflow.")
    os.environ["AIRFLOW_HOME"] = _home
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_home}/airflow.db"
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "False")

if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))
