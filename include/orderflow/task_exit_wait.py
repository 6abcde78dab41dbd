"""Notice that a task process has ended when it ends, not up to ``[workers] min_heartbeat_interval`` later.

Airflow 3.3.2's task supervisor (``airflow.sdk.execution_time.supervisor.WatchedSubprocess``) waits for
its child in ``select()`` on the child's sockets, then asks whether the child has exited. The child
closes those sockets as it exits, so the last EOF can arrive a moment before the kernel makes the
child reapable: the supervisor then finds no exit code, has no socket left to wake it, and its next
``select()`` sleeps the whole heartbeat interval (5 s by default) with nothing to watch. Measured on
this project's 2-core bench: one task in three held its executor slot 5 s after it had finished, and a
burst of no-op runs went 2.8x faster without that sleep (bench/latency_bench.py).

:func:`install` wraps ``_service_subprocess``: when no socket is left to watch and the exit code is
still unknown, it waits on the process itself (bounded by the same timeout) instead of on an empty
selector. Everything else (heartbeats, overtime, log draining) is Airflow's own code, unchanged.
Installed in the worker processes that run supervisors (``orderflow.worker_preload``), never by DAGs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Any

log = logging.getLogger(__name__)

_MARK = "_orderflow_waits_on_exit"


def install() -> bool:
    """Wrap the supervisor's wait once per process; False when this Airflow has no such method."""
    try:
        from airflow.sdk.execution_time.supervisor import WatchedSubprocess
    except ImportError:
        return False
    original = getattr(WatchedSubprocess, "_service_subprocess", None)
    if original is None:
        log.warning("task_exit_wait: this Airflow has no WatchedSubprocess._service_subprocess; not installed")
        return False
    if getattr(original, _MARK, False):
        return True

    @functools.wraps(original)
    def _service_subprocess(self: Any, max_wait_time: float, *args: Any, **kwargs: Any) -> int | None:
        if self._exit_code is None and not self.selector.get_map():
            # Every socket is closed: the process is exiting. Wait for that, not for a select() on nothing.
            # (The tracker is Airflow's: psutil- or Popen-backed, each with its own TimeoutExpired.)
            with contextlib.suppress(self._process.TimeoutExpired):
                self._process.wait(timeout=max(0.01, max_wait_time))
                max_wait_time = 0  # it has exited: the original's select() below has nothing to wait for
        return original(self, max_wait_time, *args, **kwargs)

    setattr(_service_subprocess, _MARK, True)
    WatchedSubprocess._service_subprocess = _service_subprocess
    return True
