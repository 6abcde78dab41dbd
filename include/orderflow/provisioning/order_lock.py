"""A per-order mutex around find-or-create, so two concurrent runs for one order can't both AddOrder.

Find-before-create closes the crash window for runs that follow each other; this closes it for
runs that overlap (an event run and a manual trigger, say): the second waits until the first has
created the WHMCS order, then finds it by its note.

Backends: Redis (``ORDERFLOW_LOCK_URL=redis://host:6379/0``) for workers on several hosts (the
Celery shape); otherwise an ``flock`` file under ``$AIRFLOW_HOME/.orderflow/locks`` (one host:
the embedded default). Locks expire, so a killed worker can't block an order for long.

The same backend keeps the *AddOrder stamps* (:class:`AddOrderStamps`): "AddOrder for this order was
sent at T and has no clear answer yet". Neither the lock nor find-before-create covers a WHMCS that is
still working on an AddOrder when the task's retry looks for the order (docs/architecture.md,
"Idempotency", the settle window); the stamp lets the retry know that it must wait instead of adding
another. It lives here because this is the one store every run of an order already shares, on one host
(the lock folder) or on several (Redis), and it outlives the process that wrote it: a SIGKILLed task
leaves its stamp behind, which is the point. Airflow Variables or XCom would tie the step to Airflow
and to one run; the Salesforce Order is not ours to write for this.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from orderflow import settings
from orderflow.errors import ErrorCode, TransientError

log = logging.getLogger(__name__)

# Longer than one find_or_create attempt: AddOrder (timeout 30 s), the lookups and the wait for a marked
# order (tasks.find_or_create_order keeps that wait inside this TTL).
DEFAULT_TTL_SECONDS = 300
DEFAULT_WAIT_SECONDS = 120


def _lock_dir() -> Path:
    path = settings.state_dir() / "locks"
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
    url = settings.lock_url()
    started = time.monotonic()
    cm = _redis_lock(url, name, wait_seconds, ttl_seconds) if url else _file_lock(name, wait_seconds)
    with cm:
        waited = time.monotonic() - started
        if waited > 0.5:
            log.info("Waited %.1f s for another run of order %s", waited, order_id)
        yield


# ----------------------------------------------------------------------------- AddOrder stamps

STAMP_KEEP_SECONDS = 24 * 3600  # how long Redis keeps a stamp; readers judge its age against the settle window


class AddOrderStamps:
    """Per order: when AddOrder was last sent without a clear answer (wall-clock epoch seconds), in the lock's backend.

    ``set`` is called right before AddOrder is sent, ``clear`` once the outcome is known (an order was
    found or created, or WHMCS refused the request). A stamp left behind (a timeout, a dropped
    connection, a killed process) makes later attempts wait for the settle window before adding again.
    Wall-clock time, not monotonic: the stamp is read by other processes and, with Redis, other hosts
    (their clocks must agree to within seconds, which NTP gives; the window is minutes).
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url if url is not None else settings.lock_url()
        self._redis = None

    def __repr__(self) -> str:
        return f"AddOrderStamps({'redis' if self.url else 'file'})"

    @staticmethod
    def _name(order_id: str) -> str:
        if not (order_id and order_id.isascii() and order_id.isalnum()):  # a file name and a Redis key
            raise ValueError(f"order_id must be ASCII letters and digits, got {order_id!r}")
        return f"order-{order_id}"

    def _client(self):
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(self.url)
        return self._redis

    def _path(self, order_id: str) -> Path:
        return _lock_dir() / f"{self._name(order_id)}.addorder"

    def _key(self, order_id: str) -> str:
        return f"orderflow:{self._name(order_id)}:addorder"

    def get(self, order_id: str) -> float | None:
        """When AddOrder was sent without a clear answer, or None."""
        if self.url:
            raw = self._client().get(self._key(order_id))
            return None if raw is None else float(raw)
        path = self._path(order_id)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            return float(text)
        except ValueError:  # never half-written (atomic replace), but don't let a stray file hide a stamp
            return path.stat().st_mtime

    def set(self, order_id: str, at: float | None = None) -> float:
        """Record that AddOrder is about to be sent (durably: on disk or in Redis before the request leaves)."""
        at = time.time() if at is None else at
        if self.url:
            self._client().set(self._key(order_id), repr(at), ex=STAMP_KEEP_SECONDS)
            return at
        path = self._path(order_id)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, repr(at).encode())
            os.fsync(fd)  # a host crash must not lose the stamp of a request that may have gone out
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return at

    def clear(self, order_id: str) -> None:
        if self.url:
            self._client().delete(self._key(order_id))
        else:
            self._path(order_id).unlink(missing_ok=True)
