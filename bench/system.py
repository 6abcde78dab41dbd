"""Start and stop the system as `make demo` does (scripts/demo.sh), for the benchmarks in this folder."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parents[1]


def start_demo(env: dict[str, str], folder: Path) -> subprocess.Popen:
    """scripts/demo.sh in its own process group, its output in ``folder/launcher.log``."""
    return subprocess.Popen(["bash", str(REPO / "scripts/demo.sh")], env=env, start_new_session=True,
                            stdout=open(folder / "launcher.log", "w"), stderr=subprocess.STDOUT)


def wait_healthy(port: int, launcher: subprocess.Popen, folder: Path, timeout: float = 300) -> None:
    """Until Airflow's health endpoint answers; SystemExit naming the log if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://localhost:{port}/api/v2/monitor/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        if launcher.poll() is not None:
            break
        time.sleep(1)
    raise SystemExit(f"Airflow did not come up; see {folder / 'launcher.log'}")


def stop_demo(launcher: subprocess.Popen, grace: float = 120) -> None:
    """TERM the demo's process group (it stops everything it started), KILL after ``grace`` seconds."""
    os.killpg(launcher.pid, signal.SIGTERM)
    try:
        launcher.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)


def demo_roots(airflow_home: str) -> list[psutil.Process]:
    """The topmost processes of the demo using ``airflow_home``; walk their trees for the rest.

    demo.sh starts the components in sessions of their own, so the launcher's tree does not hold them;
    their environment (AIRFLOW_HOME) does, until a process retitles itself (setproctitle hides it). The
    components scripts/airflow-components.sh started are also named by their pid files.
    """
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("AIRFLOW_HOME") == airflow_home:
                found[proc.pid] = proc
        except psutil.Error:
            continue
    for pid_file in Path(airflow_home, "run").glob("*.pid"):
        try:
            proc = psutil.Process(int(pid_file.read_text().strip()))
        except (ValueError, OSError, psutil.Error):
            continue
        found.setdefault(proc.pid, proc)
    roots = []
    for proc in found.values():
        try:
            if proc.ppid() not in found:  # a process whose parent is in the set is walked from there
                roots.append(proc)
        except psutil.Error:
            continue
    return roots
