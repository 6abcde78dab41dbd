"""Starting and stopping what a newcomer runs: `make sandbox`, and `make demo | tee demo.log` then Ctrl-C.

Both broke once: the Makefile passed `--data-dir` after `serve` (the CLI refused it), and a Ctrl-C while
the demo's output went through `tee` killed the cleanup at its first `echo` (SIGPIPE: tee had already
exited), leaving every process the demo started running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
# A whole Airflow instance starts and stops here: more than the suite's default 300 s on a busy machine.
pytestmark = pytest.mark.timeout(900)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ORDERFLOW_"))}
    env.update(PATH=f"{REPO / '.venv' / 'bin'}:{env['PATH']}", **extra)
    return env


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_make_sandbox_starts_and_serves(tmp_path):
    data_dir = tmp_path / "sandbox"
    proc = subprocess.Popen(["make", "-s", "sandbox", f"SANDBOX_DIR={data_dir}"], cwd=REPO, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_for(lambda: (data_dir / "endpoints.json").exists() or proc.poll() is not None, 90, "endpoints.json")
        assert proc.poll() is None, proc.stdout.read()
        endpoints = json.loads((data_dir / "endpoints.json").read_text())
        import requests

        resp = requests.get(endpoints["salesforce"]["admin_url"] + "/stats", verify=endpoints["ca_bundle"], timeout=10)
        assert resp.status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=90)


@pytest.mark.parametrize("where", ["before", "after"])
def test_sandbox_cli_takes_data_dir_before_or_after_the_subcommand(tmp_path, where):
    from orderflow_sandbox.cli import build_parser

    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    for name in subcommands:
        args = ["--data-dir", str(tmp_path), name] if where == "before" else [name, "--data-dir", str(tmp_path)]
        if name == "faults":
            args.insert(args.index(name) + 1, "list")
            args += ["--system", "whmcs"]
        assert parser.parse_args(args).data_dir == str(tmp_path), name


def _demo_processes(shell_pid: int, run_dir: Path) -> list[psutil.Process]:
    """The pipeline's descendants plus the Airflow process groups (started detached, with pid files)."""
    groups = {int(p.read_text()) for p in run_dir.glob("*.pid")}
    found = {p.pid: p for p in psutil.Process(shell_pid).children(recursive=True)}
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) in groups:
                found[proc.pid] = proc
        except (ProcessLookupError, psutil.Error):
            continue
    return list(found.values())


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_through_tee_still_stops_everything(tmp_path):
    port, log = 8099, tmp_path / "demo.log"
    env = _env(tmp_path, AIRFLOW_PORT=str(port), DEMO_SMTP_PORT="8033", DEMO_TRAFFIC="off",
               AIRFLOW_HOME=str(tmp_path / "airflow"), SANDBOX_DIR=str(tmp_path / "sandbox"))
    # As a terminal runs `make demo 2>&1 | tee demo.log`: the pipeline is one process group.
    # A terminal's shell has Ctrl-C at its default; a runner started in the background (`cmd &` in a
    # script) passes SIGINT down as ignored, and then neither tee nor the demo's trap could see it.
    shell = subprocess.Popen(["bash", "-c", f"bash scripts/demo.sh 2>&1 | tee {log}"], cwd=REPO, env=env,
                             start_new_session=True, preexec_fn=_interruptible)
    try:
        _wait_for(lambda: log.exists() and "demo: running" in log.read_text(), 300, "the demo to come up")
        assert _port_open(port)
        started = _demo_processes(shell.pid, tmp_path / "airflow" / "run")
        tee = next(p for p in started if p.name() == "tee")
        assert any("airflow" in " ".join(p.cmdline()) for p in started), [p.name() for p in started]
        assert any("orderflow-sandbox" in " ".join(p.cmdline()) for p in started), [p.name() for p in started]
        # Ctrl-C: tee goes first, then the demo's trap runs its cleanup with nobody reading its output.
        tee.send_signal(signal.SIGINT)
        tee.wait(timeout=10)
        os.killpg(shell.pid, signal.SIGINT)
        gone, alive = psutil.wait_procs(started, timeout=90)
        assert alive == [], f"left running after Ctrl-C: {[(p.pid, p.name()) for p in alive]}"
        assert not _port_open(port), "the Airflow API server is still listening"
    finally:  # whatever failed above, leave nothing running for the next test
        for proc in _demo_processes(shell.pid, tmp_path / "airflow" / "run") if shell.poll() is None else []:
            proc.kill()
        for pid_file in (tmp_path / "airflow" / "run").glob("*.pid"):
            subprocess.run(["kill", "-KILL", "--", f"-{pid_file.read_text().strip()}"], check=False,
                           capture_output=True)
        subprocess.run(["pkill", "-KILL", "-f", str(tmp_path)], check=False)
