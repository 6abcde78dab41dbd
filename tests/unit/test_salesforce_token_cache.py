"""The cross-process access-token cache (file + flock)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from orderflow.salesforce.token_cache import CachedToken, TokenCache, cache_key, default_cache_path


def _token(value: str = "00D5g0000000001!AQsecretvalue") -> CachedToken:
    return CachedToken(value, "https://example.my.salesforce.com", "00D5g0000000001AAA", time.time())


def test_login_once_then_reuse(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path / "c" / "cache.json")
    calls: list[int] = []

    def login() -> CachedToken:
        calls.append(1)
        return _token()

    first, fresh = cache.get_or_login("k", login)
    second, again = TokenCache(tmp_path / "c" / "cache.json").get_or_login("k", login)
    assert fresh is True and again is False and calls == [1]
    assert second == first
    assert (tmp_path / "c" / "cache.json").stat().st_mode & 0o777 == 0o600


def test_invalidate_only_the_stale_token(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path / "cache.json")
    cache.get_or_login("k", lambda: _token("00D5g0000000001!AQnew"))
    cache.invalidate("k", "00D5g0000000001!AQold")  # another process already refreshed: keep the new one
    assert cache.get("k") is not None
    cache.invalidate("k", "00D5g0000000001!AQnew")
    assert cache.get("k") is None


def test_max_age_and_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    TokenCache(path).get_or_login("k", _token)
    assert TokenCache(path, max_age_seconds=0).get("k") is None
    path.write_text("{not json")
    assert TokenCache(path).get("k") is None


def test_repr_hides_the_token() -> None:
    assert "secretvalue" not in repr(_token())


def test_key_and_default_path(monkeypatch, tmp_path: Path) -> None:
    assert cache_key("https://a/", "u", "c") == cache_key("https://a", "u", "c") != cache_key("https://a", "v", "c")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert default_cache_path() == tmp_path / ".orderflow" / "salesforce_token_cache.json"


def _worker(path: str, out: multiprocessing.Queue) -> None:
    def login() -> CachedToken:
        time.sleep(0.2)  # slow login: the others must wait for it, not log in themselves
        return _token()

    _, fresh = TokenCache(path).get_or_login("k", login)
    out.put(fresh)


def test_concurrent_processes_log_in_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(tmp_path / "cache.json"), out)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(20)
    assert sorted(out.get(timeout=5) for _ in procs) == [False, False, False, True]
