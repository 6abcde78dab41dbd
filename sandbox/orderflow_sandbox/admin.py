"""Calls to a running sandbox's admin endpoints (``/__sandbox/...``): faults, stats, state.

The URLs and the CA come from ``<data-dir>/endpoints.json``; TLS is verified like any client's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def admin_call(data_dir: str | Path, system: str, method: str, path: str, body: dict | None = None) -> Any:
    """``method`` ``/__sandbox<path>`` on ``system`` (salesforce | whmcs); the JSON answer, or None."""
    import requests

    from orderflow_sandbox.server import read_endpoints

    endpoints = read_endpoints(data_dir)
    if system not in endpoints:
        raise SystemExit(f"the sandbox in {data_dir} does not run the '{system}' emulator")
    url = endpoints[system]["admin_url"] + path
    resp = requests.request(method, url, json=body, verify=endpoints["ca_bundle"], timeout=30)
    if resp.status_code >= 400:
        raise SystemExit(f"{method} {url}: HTTP {resp.status_code}: {resp.text[:500]}")
    return resp.json() if resp.content else None


def lose_next_events(data_dir: str | Path, count: int) -> None:
    """The Flow's next ``count`` approvals set ``Activating`` but publish no event (fault ``lose_event``)."""
    admin_call(data_dir, "salesforce", "POST", "/faults", {"kind": "lose_event", "target": "flow", "count": count})
