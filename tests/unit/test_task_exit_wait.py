"""orderflow.task_exit_wait: a task supervisor notices its child's exit when it happens.

What ops rely on: a finished task frees its executor slot at once. Airflow 3.3.2's supervisor, once
every socket of the child is closed but the child is not yet reapable, sleeps in a select() on
nothing for the whole heartbeat interval. These tests drive Airflow's own WatchedSubprocess code
with a real child process, in exactly that state (no socket left to watch, exit code unknown).
"""

from __future__ import annotations

import selectors
import socket
import subprocess
import sys
import time

import psutil
import pytest
from airflow.sdk.execution_time.supervisor import PsutilTracker, WatchedSubprocess

from orderflow import task_exit_wait


@pytest.fixture(autouse=True)
def installed():
    assert task_exit_wait.install() is True


def _supervisor_of(child: subprocess.Popen, selector: selectors.BaseSelector) -> WatchedSubprocess:
    """Airflow's supervisor state for ``child``, as its monitor loop has it after the sockets closed."""
    sup = object.__new__(WatchedSubprocess)
    sup.selector = selector
    sup._exit_code = None
    sup._process = PsutilTracker(psutil.Process(child.pid))  # the forking model's tracker
    sup._process_exit_monotonic = None
    return sup


def test_an_exiting_child_with_no_socket_left_is_noticed_when_it_exits_not_after_the_timeout():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    sup = _supervisor_of(child, selectors.DefaultSelector())  # every socket closed already

    started = time.monotonic()
    exit_code = sup._service_subprocess(max_wait_time=60)

    assert exit_code == 0
    # Unpatched, select() on an empty selector sleeps all 60 s before it looks at the process.
    assert time.monotonic() - started < 30


def test_a_child_that_outlives_the_wait_is_reported_alive_and_can_still_be_waited_for():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    sup = _supervisor_of(child, selectors.DefaultSelector())

    assert sup._service_subprocess(max_wait_time=0.05) is None  # still running: the loop goes on (heartbeats)
    assert sup._service_subprocess(max_wait_time=60) == 0


def test_while_a_socket_is_open_the_supervisor_selects_on_it_as_before():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    ours, theirs = socket.socketpair()
    selector = selectors.DefaultSelector()
    seen = []
    selector.register(ours, selectors.EVENT_READ, (lambda sock: seen.append(sock.recv(16)) or True, lambda s: None))
    sup = _supervisor_of(child, selector)
    try:
        theirs.sendall(b"log line")
        assert sup._service_subprocess(max_wait_time=5) is None  # the socket's data was served; child alive
        assert seen == [b"log line"]
    finally:
        child.kill()
        child.wait()
        ours.close()
        theirs.close()


def test_install_wraps_once():
    first = WatchedSubprocess._service_subprocess
    assert task_exit_wait.install() is True
    assert WatchedSubprocess._service_subprocess is first


def test_the_worker_preload_installs_it():
    from orderflow import worker_preload  # noqa: F401  (importing it warms a worker, and installs the wait)

    assert getattr(WatchedSubprocess._service_subprocess, task_exit_wait._MARK, False)
