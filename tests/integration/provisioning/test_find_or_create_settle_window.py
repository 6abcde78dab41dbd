"""Exactly one WHMCS order when AddOrder's answer never comes (docs/architecture.md, "Idempotency").

WHMCS may commit an AddOrder after the client gave up on it (its timeout) or after the task waiting for
it was killed. A retry's find-before-create then sees nothing *yet*; without the settle window it sent
AddOrder again and WHMCS ended up with two orders for one Salesforce order. These tests drive the real
task body (``tasks.find_or_create_order``: connection, client, lock, stamps) against the WHMCS emulator,
whose ``latency`` fault holds AddOrder before committing it, so the commit really comes late.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from orderflow.errors import ErrorCode, PermanentError, TransientError
from orderflow.provisioning import steps, tasks
from orderflow.provisioning.order import OrderSnapshot, build_plan
from orderflow.provisioning.order_lock import AddOrderStamps

pytestmark = pytest.mark.slow

KILLED_ATTEMPT = """
import json, sys
from orderflow.provisioning import tasks
tasks.find_or_create_order(json.loads(sys.argv[1]), "banktransfer")
"""


def attempt(order: dict) -> dict:
    """One try of the task body, as a task (re)try runs it."""
    return tasks.find_or_create_order(order, "banktransfer")


@pytest.mark.parametrize("fault", [{"kind": "commit_then_drop"}, {"kind": "commit_then_latency", "latency_ms": 3000}],
                         ids=["commit_then_drop", "commit_then_latency"])
def test_a_committed_addorder_whose_answer_is_lost_is_found_in_the_same_try(whmcs, new_order, connect, settle, fault):
    """The common case: WHMCS committed, the answer was lost (dropped, or held past the timeout)."""
    settle(60)
    connect(timeout=1.0)
    order = new_order()
    adds = whmcs.calls("AddOrder")
    whmcs.fault(**fault)
    ref = attempt(order)
    assert ref["created"] is False
    assert whmcs.calls("AddOrder") - adds == 1
    assert [o.id for o in whmcs.marked_orders(order)] == [ref["order_id"]]
    assert AddOrderStamps().get(order["order_id"]) is None


def test_addorder_committed_after_the_client_timeout_is_not_sent_again_by_the_retry(
    whmcs, new_order, connect, settle, backend
):
    settle(20)  # lookups every 2 s while waiting
    connect(timeout=1.0)
    order = new_order()
    adds = whmcs.calls("AddOrder")
    whmcs.fault("latency", latency_ms=6000)  # WHMCS works on AddOrder for 6 s, then commits

    started = time.monotonic()
    with pytest.raises(TransientError) as first:
        attempt(order)  # timed out after 1 s, looked for the marker for as long again: nothing yet
    assert whmcs.marked_orders(order) == []  # not committed yet: a plain find-before-create would add again

    ref = attempt(order)  # the task's retry, right away
    assert ref["created"] is False
    assert time.monotonic() - started >= 6  # it waited for WHMCS's commit instead of adding
    assert whmcs.calls("AddOrder") - adds == 1
    assert [o.id for o in whmcs.marked_orders(order)] == [ref["order_id"]]
    assert AddOrderStamps().get(order["order_id"]) is None  # the order is known: nothing left to wait for
    assert first.value.code is ErrorCode.WHMCS_UNAVAILABLE and "no second AddOrder" in first.value.message


def test_the_stamp_of_a_killed_attempt_keeps_the_next_attempt_from_adding(whmcs, new_order, connect, settle):
    """A task SIGKILLed while WHMCS works on its AddOrder: the next attempt, a new process, must wait for it."""
    settle(20)
    env = {**os.environ, **connect(timeout=30.0)}
    order = new_order()
    adds = whmcs.calls("AddOrder")
    whmcs.fault("latency", latency_ms=6000)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_ATTEMPT, json.dumps(order)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120  # the process imports Airflow's hook first
        while whmcs.armed() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        exited = proc.poll() is not None
        assert not whmcs.armed(), f"the attempt never sent AddOrder: {proc.stderr.read()[-2000:] if exited else ''}"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert AddOrderStamps().get(order["order_id"]) is not None  # stamped before the request left; outlived it
    assert whmcs.marked_orders(order) == []  # the killed attempt's AddOrder is still being worked on

    ref = attempt(order)  # fresh process state: new hook, client and stamp store
    assert ref["created"] is False
    assert whmcs.calls("AddOrder") - adds == 1
    assert [o.id for o in whmcs.marked_orders(order)] == [ref["order_id"]]


def test_after_the_window_an_unanswered_addorder_is_sent_again(whmcs, new_order, connect, settle):
    """A dropped AddOrder that WHMCS never ran: once the window has passed, the order is added (nothing stuck)."""
    settle(3)
    connect(timeout=1.0)
    order = new_order()
    adds = whmcs.calls("AddOrder")
    whmcs.fault("drop")  # the connection drops before WHMCS runs AddOrder: no order, no answer
    with pytest.raises(TransientError):
        attempt(order)
    sent = AddOrderStamps().get(order["order_id"])
    assert sent is not None and whmcs.marked_orders(order) == []

    ref = attempt(order)
    assert ref["created"] is True
    assert time.time() - sent >= 3  # not before the window had passed
    assert whmcs.calls("AddOrder") - adds == 2
    assert [o.id for o in whmcs.marked_orders(order)] == [ref["order_id"]]
    assert AddOrderStamps().get(order["order_id"]) is None


@pytest.mark.parametrize("answer", ["rejected", "http_503"])
def test_an_addorder_whmcs_answered_leaves_no_stamp_so_the_re_run_adds_at_once(
    whmcs, new_order, connect, settle, answer
):
    """WHMCS refused AddOrder (ops fix the product and re-run), or a 503 page came before WHMCS ran it
    (the task retries): nothing of that request can commit later, so the next attempt must not wait."""
    settle(180)
    connect(timeout=5.0)
    order = new_order()
    adds = whmcs.calls("AddOrder")
    if answer == "rejected":  # a product WHMCS does not have
        first, expected = {**order, "lines": [{**order["lines"][0], "whmcs_pid": 987654}]}, PermanentError
    else:
        first, expected = order, TransientError
        whmcs.fault("http_503")
    with pytest.raises(expected):
        attempt(first)
    assert AddOrderStamps().get(order["order_id"]) is None

    started = time.monotonic()
    ref = attempt(order)
    assert ref["created"] is True
    assert time.monotonic() - started < 10  # far inside the 180 s window: it did not wait
    assert whmcs.calls("AddOrder") - adds == 2
    assert [o.id for o in whmcs.marked_orders(order)] == [ref["order_id"]]


def test_an_attempt_whose_budget_ends_inside_the_window_raises_without_adding(whmcs, new_order, settle):
    """The step never sends AddOrder inside the window: past its own budget it raises, the task retries."""
    settle(60)
    order = OrderSnapshot.from_dict(new_order())
    stamps = AddOrderStamps()
    stamps.set(order.order_id, time.time() - 10)  # an earlier attempt's AddOrder, 10 s ago, no answer
    adds = whmcs.calls("AddOrder")
    started = time.monotonic()
    with whmcs.client() as client, pytest.raises(TransientError) as err:
        steps.find_or_create_whmcs_order(client, order, build_plan(order), "banktransfer", stamps=stamps,
                                         wait_seconds=1.5)
    assert 1.5 <= time.monotonic() - started < 10
    assert "settle window" in err.value.message and err.value.code is ErrorCode.WHMCS_UNAVAILABLE
    assert whmcs.calls("AddOrder") == adds
    assert stamps.get(order.order_id) is not None  # still unknown: the next try waits too
