"""`DEMO_EXIT_WHEN_DONE=1 make demo`, end to end: Airflow standalone (SQLite + LocalExecutor), the
sandbox, the Flow's events, the sensor, provisioning, the table, then one reconciliation of drift injected on
purpose — with a small batch of orders.

The same script with DEMO_SHAPE=distributed runs in CI (.ci/run) against PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# A whole Airflow instance starts and stops here: more than the suite's default 300 s on a busy machine.
pytestmark = pytest.mark.timeout(900)


def test_demo_provisions_every_seeded_order_through_events(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ORDERFLOW_"))}
    env.update(
        DEMO_EXIT_WHEN_DONE="1",
        DEMO_ORDERS="20",  # enough healthy orders for the reconciliation act to drift one per category
        DEMO_TIMEOUT="400",
        AIRFLOW_PORT="8097",
        DEMO_SMTP_PORT="8027",
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        SANDBOX_DIR=str(tmp_path / "sandbox"),
        PATH=f"{REPO / '.venv' / 'bin'}:{env['PATH']}",
    )
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "20/20 orders were started by order_event_sensor" in out
    assert "20/20 orders settled as expected" in out
    rows = [line for line in out.splitlines() if re.match(r"^801\w{15} ", line)]
    assert len(rows) == 20 and all(row.endswith("yes") for row in rows)
    # The reconciliation act: drift injected after provisioning, one reconcile_orders run found each category.
    assert "reconcile: every category came out as injected" in out, out[-4000:]
    for code in ("PRODUCT_MAPPING_MISSING", "CLIENT_MAPPING_MISSING", "PAYMENT_METHOD_MISSING"):
        assert any(code in row and "Failed" in row for row in rows), code
    assert "login: admin / admin" in out
    # Nothing left behind: no sandbox process (its command line names the folder), no API server.
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], "the demo left processes behind"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", 8097)) != 0, "the Airflow API server is still listening"
