"""Access-token cache shared by every task process on a host (a 0600 JSON file + a file lock).

Salesforce caps logins per user per hour, and each provisioning task runs in its own process, so
the token obtained by one task is reused by the next. The lock also serialises logins: when many
processes start at once, one logs in and the others read its token. Tokens are never logged.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from orderflow import settings

log = logging.getLogger(__name__)

CACHE_FILE_NAME = "salesforce_token_cache.json"


@dataclass(frozen=True)
class CachedToken:
    access_token: str
    instance_url: str
    org_id: str | None
    issued_at: float

    def __repr__(self) -> str:  # keep the token out of reprs, logs and tracebacks
        return f"CachedToken(instance_url={self.instance_url!r}, org_id={self.org_id!r}, issued_at={self.issued_at})"


def default_cache_path() -> Path:
    """``$AIRFLOW_HOME/.orderflow/salesforce_token_cache.json`` (``~/airflow`` when unset)."""
    return settings.state_dir() / CACHE_FILE_NAME


def cache_key(login_url: str, username: str, consumer_key: str) -> str:
    return hashlib.sha256(f"{login_url.rstrip('/')}|{username}|{consumer_key}".encode()).hexdigest()[:32]


class TokenCache:
    """File-backed token cache; safe across processes (``flock``) and threads."""

    def __init__(self, path: str | Path | None = None, max_age_seconds: float | None = None) -> None:
        self.path = Path(path) if path else default_cache_path()
        self.max_age_seconds = max_age_seconds

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return {}
        except (ValueError, OSError):
            log.warning("Salesforce token cache %s is unreadable; starting afresh", self.path)
            return {}

    def _write(self, data: dict[str, dict]) -> None:
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def _valid(self, entry: dict | None) -> CachedToken | None:
        if not entry or not entry.get("access_token"):
            return None
        token = CachedToken(entry["access_token"], entry.get("instance_url", ""), entry.get("org_id"),
                            float(entry.get("issued_at", 0)))
        if self.max_age_seconds is not None and time.time() - token.issued_at > self.max_age_seconds:
            return None
        return token

    def get(self, key: str) -> CachedToken | None:
        with self._locked():
            return self._valid(self._read().get(key))

    def get_or_login(self, key: str, login: Callable[[], CachedToken]) -> tuple[CachedToken, bool]:
        """The cached token, or a new one from ``login()`` stored for the other processes.

        Returns ``(token, logged_in)``. The lock is held during the login so concurrent
        processes wait for one login instead of each doing their own.
        """
        with self._locked():
            data = self._read()
            token = self._valid(data.get(key))
            if token is not None:
                return token, False
            token = login()
            data[key] = asdict(token)
            self._write(data)
            return token, True

    def invalidate(self, key: str, access_token: str | None = None) -> None:
        """Forget the cached token; with ``access_token``, only if it is still that (stale) one."""
        with self._locked():
            data = self._read()
            entry = data.get(key)
            if entry and (access_token is None or entry.get("access_token") == access_token):
                del data[key]
                self._write(data)


class MemoryTokenCache(TokenCache):
    """Per-process cache for callers that must not touch the filesystem."""

    def __init__(self) -> None:
        self._data: dict[str, dict] = {}
        self.max_age_seconds = None
        self.path = Path("<memory>")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        yield

    def _read(self) -> dict[str, dict]:
        return self._data

    def _write(self, data: dict[str, dict]) -> None:
        self._data = data
