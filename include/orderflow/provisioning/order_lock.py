"""A per-order mutex around find-or-create, so two concurrent runs for one order can't both AddOrder.

Find-before-create closes the crash window for runs that follow each other; this closes it for
runs that overlap (an event run and a manual trigger, say): the second waits until the first has
created the WHMCS order, then finds it by its note.

Backends: Redis (``ORDERFLOW_LOCK_URL=redis://host:6379/0``) for workers on several hosts (the
Celery shape); otherwise an ``flock`` file under ``$AIRFLOW_HOME/.orderflow/locks`` (one host:
the embedded default). Locks expire, so a killed worker can't block an order for long.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from orderflow.errors import ErrorCode, TransientError

log = logging.getLogger(__name__)

LOCK_URL_ENV = "ORDERFLOW_LOCK_URL"
DEFAULT_TTL_SECONDS = 300  # longer than AddOrder's worst case (timeout 30 s + retry of reads)
DEFAULT_WAIT_SECONDS = 120


def _lock_dir() -> Path:
    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    path = home / ".orderflow" / "locks"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


@contextlib.contextmanager
def _file_lock(name: str, wait_seconds: float) -> Iterator[None]:
    path = _lock_dir() / f"{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TransientError(ErrorCode.WHMCS_UNAVAILABLE, f"{name} is locked by another run") from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # closing releases the flock, also when the process dies


@contextlib.contextmanager
def _redis_lock(url: str, name: str, wait_seconds: float, ttl_seconds: float) -> Iterator[None]:
    import redis

    client = redis.Redis.from_url(url)
    lock = client.lock(f"orderflow:{name}", timeout=ttl_seconds, blocking_timeout=wait_seconds)
    if not lock.acquire():
        raise TransientError(ErrorCode.WHMCS_UNAVAILABLE, f"{name} is locked by another run")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # expired meanwhile: nothing left to release
            lock.release()


@contextlib.contextmanager
def order_lock(
    order_id: str, wait_seconds: float = DEFAULT_WAIT_SECONDS, ttl_seconds: float = DEFAULT_TTL_SECONDS
) -> Iterator[None]:
    """Hold the order's provisioning mutex; a busy lock past ``wait_seconds`` is a transient error."""
    name = f"order-{order_id}"
    url = os.environ.get(LOCK_URL_ENV)
    started = time.monotonic()
    cm = _redis_lock(url, name, wait_seconds, ttl_seconds) if url else _file_lock(name, wait_seconds)
    with cm:
        waited = time.monotonic() - started
        if waited > 0.5:
            log.info("Waited %.1f s for another run of order %s", waited, order_id)
        yield
