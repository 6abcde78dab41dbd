"""Run the emulators (Salesforce REST + Pub/Sub gRPC, WHMCS) in one process.

``Sandbox.start()`` binds the listening sockets first (port 0 = any free port), so the real
URLs are known before ``endpoints.json`` is written; tests use it in-process, the CLI's
``serve`` runs it until interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from orderflow_sandbox.tls import TlsFiles, ensure_tls

log = logging.getLogger(__name__)

ENDPOINTS_FILE = "endpoints.json"


@dataclass(frozen=True)
class Ports:
    salesforce: int = 0
    whmcs: int = 0
    pubsub: int = 0


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class _ThreadedUvicorn:
    """A uvicorn server on a pre-bound socket, in a daemon thread."""

    def __init__(self, app, sock: socket.socket, tls: TlsFiles, name: str) -> None:
        config = uvicorn.Config(
            app,
            ssl_certfile=str(tls.server_cert),
            ssl_keyfile=str(tls.server_key),
            log_level=os.environ.get("ORDERFLOW_SANDBOX_LOG_LEVEL", "warning"),
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
        )
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.sock = sock
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"{self.thread.name} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.server.force_exit = True  # don't wait for idle keep-alive client sessions
        self.thread.join(timeout=10)
        self.sock.close()


class Sandbox:
    """The Salesforce org and WHMCS emulators sharing one data folder and one CA."""

    ALL = frozenset({"salesforce", "pubsub", "whmcs"})

    def __init__(
        self,
        data_dir: str | Path,
        host: str = "127.0.0.1",
        ports: Ports = Ports(),
        components: frozenset[str] | set[str] = ALL,
    ) -> None:
        unknown = set(components) - self.ALL
        if unknown:
            raise ValueError(f"unknown sandbox component(s): {sorted(unknown)}")
        if "pubsub" in components and "salesforce" not in components:
            raise ValueError("the 'pubsub' component needs the 'salesforce' component")
        self.components = frozenset(components)
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.ports = ports
        self.tls: TlsFiles | None = None
        self.whmcs = None
        self.org = None
        self._servers: list[_ThreadedUvicorn] = []
        self._grpc = None
        self.endpoints: dict = {}

    def start(self) -> dict:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.tls = ensure_tls(self.data_dir)
        self.endpoints = {"ca_bundle": str(self.tls.ca_cert), "data_dir": str(self.data_dir)}

        if "whmcs" in self.components:
            from orderflow_sandbox.whmcs.app import create_app as create_whmcs_app
            from orderflow_sandbox.whmcs.state import WhmcsState

            wh_sock = _bind(self.host, self.ports.whmcs)
            wh_url = f"https://{self.host}:{wh_sock.getsockname()[1]}"
            self.whmcs = WhmcsState(self.data_dir)
            server = _ThreadedUvicorn(create_whmcs_app(self.whmcs), wh_sock, self.tls, "sandbox-whmcs")
            server.start()
            self._servers.append(server)
            self.endpoints["whmcs"] = {
                **self.whmcs.credentials(),
                "url": f"{wh_url}/includes/api.php",
                "admin_url": f"{wh_url}/__sandbox",
            }

        if "salesforce" in self.components:
            from orderflow_sandbox.salesforce.app import create_app as create_salesforce_app
            from orderflow_sandbox.salesforce.org import SalesforceOrg

            sf_sock = _bind(self.host, self.ports.salesforce)
            sf_url = f"https://{self.host}:{sf_sock.getsockname()[1]}"
            pubsub_port = self.ports.pubsub or _free_port(self.host)
            self.org = SalesforceOrg(self.data_dir, instance_url=sf_url, pubsub_endpoint=f"localhost:{pubsub_port}")
            server = _ThreadedUvicorn(create_salesforce_app(self.org), sf_sock, self.tls, "sandbox-salesforce")
            server.start()
            self._servers.append(server)
            if "pubsub" in self.components:
                from orderflow_sandbox.salesforce.pubsub_server import start_pubsub_server

                self._grpc = start_pubsub_server(self.org, self.host, pubsub_port, self.tls)
            self.endpoints["salesforce"] = {**self.org.credentials(), "admin_url": f"{sf_url}/__sandbox"}

        write_endpoints(self.data_dir, self.endpoints)
        log.info("sandbox up in %s: %s", self.data_dir, sorted(self.components))
        return self.endpoints

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=1).wait(5)
            self._grpc = None
        for server in self._servers:
            server.stop()
        self._servers = []
        for part in (self.org, self.whmcs):
            close = getattr(part, "close", None)
            if close:
                close()

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_endpoints(data_dir: Path, endpoints: dict) -> Path:
    """Write ``endpoints.json`` atomically, readable by the owner only (it holds sandbox credentials)."""
    path = data_dir / ENDPOINTS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(endpoints, indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def read_endpoints(data_dir: str | Path) -> dict:
    path = Path(data_dir) / ENDPOINTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: start the sandbox with 'orderflow-sandbox serve --data-dir {data_dir}'")
    return json.loads(path.read_text())
