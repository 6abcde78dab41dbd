"""orderflow is registered as an Airflow provider, so the `whmcs` connection type shows in the UI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_airflow_lists_orderflow_as_a_provider():
    airflow = Path(sys.executable).with_name("airflow")
    out = subprocess.run(
        [str(airflow), "providers", "list", "-o", "json"],
        capture_output=True, text=True, timeout=120, env=os.environ, check=True,
    ).stdout
    names = {p["package_name"] for p in json.loads(out[out.index("[") :])}
    assert "orderflow" in names


def test_whmcs_connection_type_is_known_to_the_providers_manager():
    from airflow.providers_manager import ProvidersManager

    hooks = ProvidersManager().hooks
    assert "whmcs" in hooks
    info = hooks["whmcs"]
    assert info.hook_class_name == "orderflow.whmcs.hook.WhmcsHook"
    assert info.connection_type == "whmcs"
