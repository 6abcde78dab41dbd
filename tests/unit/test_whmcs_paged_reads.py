"""Paged reads decoded straight into typed rows (``PagedRead``) give what the dict path gives, for every shape.

The fast path (msgspec into structs) must never change an extraction: each answer shape WHMCS is
known to send (``""`` for an empty list, one object instead of a list, numbers or strings) yields
the rows :func:`items_of` yields from ``json.loads``; anything else falls back to that path, and rows
that are not rows of scalars are an error, not a silently short page.
"""

from __future__ import annotations

import json

import msgspec
import pytest

from orderflow.errors import ErrorCode, TransientError, classify_whmcs_page
from orderflow.whmcs.models import GET_CLIENTS_PRODUCTS, GET_ORDERS, OrderRow, ServiceRow, items_of

ORDER = {"id": "7", "userid": 3, "status": "Active", "date": "2026-01-02 03:04:05", "notes": "sfOrderId=801x",
         "lineitems": {"lineitem": [{"relid": "9", "amount": "\u00a53,300.00 JPY"}]}, "amount": "3300.00"}


def _expected(body: dict, outer: str, inner: str, row: type) -> list:
    fields = row.__struct_fields__
    return [row(**{k: v for k, v in r.items() if k in fields}) for r in items_of(body.get(outer), inner)]


@pytest.mark.parametrize("orders", [
    pytest.param({"order": [ORDER, {**ORDER, "id": 8, "notes": None}]}, id="list"),
    pytest.param({"order": ORDER}, id="one-object-not-a-list"),
    pytest.param("", id="empty-as-string"),
    pytest.param({}, id="empty-object"),
    pytest.param({"order": []}, id="empty-list"),
    pytest.param([ORDER], id="bare-list"),
    pytest.param(None, id="null"),
])
def test_every_known_shape_decodes_to_the_rows_of_the_dict_path(orders):
    body = {"result": "success", "totalresults": "2", "startnumber": 0, "numreturned": 2, "orders": orders}
    raw = json.dumps(body).encode()
    page = GET_ORDERS.decode(raw)
    assert page is not None
    assert page.rows == _expected(body, "orders", "order", OrderRow) == GET_ORDERS.from_dict(json.loads(raw)).rows
    assert (page.total, page.returned) == (2, 2)


def test_rows_keep_json_types_as_json_loads_gives_them():
    body = {"result": "success", "totalresults": 1, "products": {"product": [
        {"id": 12, "orderid": "5", "clientid": 4.0, "status": "Active", "customfields": {"customfield": []}}]}}
    page = GET_CLIENTS_PRODUCTS.decode(json.dumps(body).encode())
    assert page is not None and page.rows == [ServiceRow(id=12, orderid="5", clientid=4.0, status="Active")]


@pytest.mark.parametrize("raw", [
    pytest.param(b'{"result":"error","message":"Invalid IP 10.0.0.1"}', id="error-answer"),
    pytest.param(b'{"totalresults":1,"orders":""}', id="no-result"),
    pytest.param(b"<html><body>Maintenance</body></html>", id="html"),
    pytest.param(b'{"result":"success","orders":{"order":[{"id":"1"', id="truncated"),
    pytest.param(b'{"result":"success","orders":{"order":[{"id":"1"},7]}}', id="list-with-a-non-object"),
    pytest.param(b'{"result":"success","orders":{"order":[{"id":{"nested":1}}]}}', id="row-not-scalars"),
])
def test_anything_else_is_left_to_the_classifying_path(raw):
    assert GET_ORDERS.decode(raw) is None


def test_the_dict_path_skips_non_objects_like_items_of():
    data = {"result": "success", "totalresults": "2", "orders": {"order": [{"id": "1"}, 7, "x"]}}
    assert GET_ORDERS.from_dict(data).rows == [OrderRow(id="1")]


def test_rows_that_are_not_scalars_are_a_transient_error_not_a_short_page():
    data = {"result": "success", "totalresults": "1", "orders": {"order": [{"id": {"nested": 1}}]}}
    err = classify_whmcs_page("GetOrders", data, GET_ORDERS.from_dict)
    assert isinstance(err, TransientError) and err.code is ErrorCode.WHMCS_UNAVAILABLE
    assert "GetOrders" in err.message and "\n" not in err.message
    with pytest.raises(msgspec.ValidationError):
        GET_ORDERS.from_dict(data)
