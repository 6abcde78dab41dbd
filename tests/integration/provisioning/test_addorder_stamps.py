"""The AddOrder stamps of the settle window (``order_lock.AddOrderStamps``), in both lock backends.

A stamp must outlive the store that wrote it and be seen by a new one (another process, a task's
retry): in the lock folder under ``$AIRFLOW_HOME``, and in Redis (``backend`` fixture).
"""

from __future__ import annotations

import stat
import time
import uuid

import pytest

from orderflow.provisioning.order_lock import AddOrderStamps


def _order_id() -> str:
    return f"801{uuid.uuid4().hex[:15]}"


def test_a_stamp_is_seen_by_a_new_store_until_cleared(backend):
    order_id = _order_id()
    writer = AddOrderStamps()
    assert bool(writer.url) is (backend == "redis") and writer.get(order_id) is None
    at = writer.set(order_id)
    assert abs(at - time.time()) < 5
    reader = AddOrderStamps()  # a new connection / a fresh process's view
    assert reader.get(order_id) == at
    assert reader.get(_order_id()) is None  # per order
    reader.clear(order_id)
    assert writer.get(order_id) is None
    reader.clear(order_id)  # clearing twice is fine


def test_a_stamp_keeps_the_time_it_was_given(backend):
    order_id = _order_id()
    AddOrderStamps().set(order_id, 1_700_000_000.25)
    assert AddOrderStamps().get(order_id) == 1_700_000_000.25


def test_the_file_stamp_is_private_and_a_garbled_one_still_counts(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("ORDERFLOW_LOCK_URL", raising=False)
    order_id = _order_id()
    stamps = AddOrderStamps()
    stamps.set(order_id)
    (path,) = (tmp_path / ".orderflow" / "locks").glob(f"order-{order_id}.addorder")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(path.parent.glob("*.tmp")) == []  # written through a temporary file, then renamed
    path.write_text("not a number")
    assert stamps.get(order_id) == pytest.approx(path.stat().st_mtime)


@pytest.mark.parametrize("bad", ["", "801/../x", "801 AAA", "８０１"])
def test_an_order_id_that_is_no_plain_id_is_refused(bad):
    with pytest.raises(ValueError):
        AddOrderStamps(url="").set(bad)
