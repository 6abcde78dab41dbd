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
# dag.test() drops the XComs of a trigger's TaskSuccessEvent (Airflow 3.3.2): under it the sensor's wait
# resumes on the "worker" instead (orderflow.settings.wait_ends_in_triggerer). The soak, the chaos suite and
# the e2e tests run a real scheduler and triggerer with the default (on).
os.environ.setdefault("ORDERFLOW_WAIT_ENDS_IN_TRIGGERER", "0")

if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))


# --------------------------------------------------------------------------- Airflow's REST API
# The sensor, the sweep and reconciliation start provision_order runs through Airflow's REST API
# (orderflow.airflow_api). Under dag.test() there is no API server, so tests that run those DAGs
# get a real one: `airflow api-server` on the test metadata DB, logged in to as a user of its own.
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

RUNS_USER, RUNS_PASSWORD = "orderflow-runs", "runs-test-password-7f3a"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def airflow_api_server(tmp_path_factory: pytest.TempPathFactory):
    """``http://127.0.0.1:<port>`` of a running API server; ``AIRFLOW_CONN_ORDERFLOW_AIRFLOW_API`` points at it."""
    import requests

    folder = tmp_path_factory.mktemp("api-server")
    passwords = folder / "passwords.json"
    passwords.write_text(json.dumps({RUNS_USER: RUNS_PASSWORD}))
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{RUNS_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-api-server-jwt-secret-" + "y" * 40,
    }
    airflow = Path(sys.executable).with_name("airflow")
    # The API server starts runs of DAGs it finds in the metadata DB: put the repo's DAGs there first.
    subprocess.run([str(airflow), "dags", "reserialize"], env=env, check=True, capture_output=True, timeout=300)
    log = (folder / "api-server.log").open("w")
    proc = subprocess.Popen([str(airflow), "api-server", "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(f"{base}/api/v2/monitor/health", timeout=2).ok:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"airflow api-server did not start; see {folder / 'api-server.log'}")
        time.sleep(0.5)
    conn = json.dumps({"conn_type": "airflow_api", "host": base, "login": RUNS_USER, "password": RUNS_PASSWORD})
    previous = os.environ.get("AIRFLOW_CONN_ORDERFLOW_AIRFLOW_API")
    os.environ["AIRFLOW_CONN_ORDERFLOW_AIRFLOW_API"] = conn
    try:
        yield base
    finally:
        if previous is None:
            os.environ.pop("AIRFLOW_CONN_ORDERFLOW_AIRFLOW_API", None)
        else:
            os.environ["AIRFLOW_CONN_ORDERFLOW_AIRFLOW_API"] = previous
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()
