"""The chaos driver finds the processes it must SIGKILL: a task by its process title, a component with its tree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from chaos import _proc_table, _sigkill, _tree, task_pid

TASK = """
import subprocess, sys, time
from setproctitle import setproctitle
setproctitle("airflow worker -- 01a2-test-ti")
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_task_process_is_found_by_its_title_and_killed_with_its_tree():
    proc = subprocess.Popen([sys.executable, "-c", TASK], stdout=subprocess.PIPE, text=True)
    try:
        child = int(proc.stdout.readline())
        deadline = time.monotonic() + 10
        while task_pid("01a2-test-ti") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert task_pid("01a2-test-ti") == proc.pid
        assert task_pid("01a2-other-ti") is None
        tree = _tree(proc.pid, _proc_table())
        assert set(tree) == {proc.pid, child}
        assert _sigkill(tree) == 2
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
