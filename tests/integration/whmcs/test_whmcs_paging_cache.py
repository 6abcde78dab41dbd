"""The emulator's read cache (COUNTs, where earlier pages ended) never changes what a page holds.

GetOrders and GetClientsProducts start a page from where an earlier page of the same list ended,
instead of an OFFSET scan from the top. Whatever order pages are asked for, and whoever commits in
between (the API itself, or another connection such as a seed script), each page must hold exactly
the rows of the plain ``ORDER BY id LIMIT n OFFSET start`` query on the data as they are then.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator

import pytest

from orderflow.whmcs.models import GET_CLIENTS_PRODUCTS, GET_ORDERS
from orderflow_sandbox.connections import whmcs_client
from orderflow_sandbox.seed import seed_provisioned
from orderflow_sandbox.server import Sandbox


@pytest.fixture
def sandbox(tmp_path) -> Iterator[Sandbox]:
    seed_provisioned(tmp_path, orders=300, rng_seed=11)
    box = Sandbox(tmp_path, components={"whmcs"})
    box.start()
    try:
        yield box
    finally:
        box.stop()


def _ids(sandbox: Sandbox, sql: str, args: tuple = ()) -> list[str]:
    with sqlite3.connect(sandbox.whmcs.db_path) as db:
        return [str(r[0]) for r in db.execute(sql, args)]


def test_pages_asked_in_any_order_hold_the_rows_of_the_plain_query(sandbox: Sandbox):
    orders = _ids(sandbox, "SELECT id FROM orders ORDER BY id DESC")
    services = _ids(sandbox, "SELECT id FROM services ORDER BY id")
    client = _ids(sandbox, "SELECT userid FROM orders GROUP BY userid ORDER BY COUNT(*) DESC LIMIT 1")[0]
    theirs = _ids(sandbox, "SELECT id FROM orders WHERE userid = ? ORDER BY id DESC", (client,))
    rng = random.Random(3)
    with whmcs_client(sandbox.endpoints) as wh:
        for read, expected, size, filters in ((GET_ORDERS, orders, 37, {}), (GET_CLIENTS_PRODUCTS, services, 53, {}),
                                              (GET_ORDERS, theirs, 1, {"userid": client})):
            starts = [*range(0, len(expected) + size, size), 0, size, 5, len(expected) - 1]
            rng.shuffle(starts)
            for start in [*range(0, len(expected), size), *starts]:  # in order first, then out of order
                page = wh.page(read, start, size, **filters)
                assert [str(r.id) for r in page.rows] == expected[start:start + size], (read.action, start)
                assert page.total == len(expected)


def test_a_commit_from_anywhere_shows_in_the_next_page(sandbox: Sandbox):
    with whmcs_client(sandbox.endpoints) as wh:
        for start in range(0, 200, 50):  # pages known to the cache
            wh.page(GET_ORDERS, start, 50)
            wh.page(GET_CLIENTS_PRODUCTS, start, 50)
        gone = _ids(sandbox, "SELECT id FROM orders ORDER BY id DESC LIMIT 1 OFFSET 10")[0]
        with sqlite3.connect(sandbox.whmcs.db_path) as db:  # another connection, as a seed script's
            db.execute("DELETE FROM services WHERE orderid = ?", (gone,))
            db.execute("DELETE FROM orders WHERE id = ?", (gone,))
        orders = _ids(sandbox, "SELECT id FROM orders ORDER BY id DESC")
        services = _ids(sandbox, "SELECT id FROM services ORDER BY id")
        for start in (100, 50, 150):
            page = wh.page(GET_ORDERS, start, 50)
            assert [str(r.id) for r in page.rows] == orders[start:start + 50] and page.total == len(orders)
            page = wh.page(GET_CLIENTS_PRODUCTS, start, 50)
            assert [str(r.id) for r in page.rows] == services[start:start + 50] and page.total == len(services)

        cid = int(_ids(sandbox, "SELECT userid FROM orders LIMIT 1")[0])
        placed = wh.add_order(cid, "banktransfer", [(182, "monthly", 1)], notes="sfOrderId=801000000000001")
        page = wh.page(GET_ORDERS, 0, 50)  # through the API: newest first, the count one up
        assert str(page.rows[0].id) == placed.order_id and page.total == len(orders) + 1
        assert [str(r.id) for r in wh.page(GET_ORDERS, 100, 50).rows] == [placed.order_id, *orders][100:150]
