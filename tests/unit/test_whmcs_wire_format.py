"""Both ends of the wire format: the client's PHP-array encoding and the emulator's decoding."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode

from orderflow.whmcs.client import php_params
from orderflow.whmcs.models import AddOrderResult, WhmcsOrder, WhmcsService, items_of
from orderflow_sandbox.whmcs.app import nvp, parse_php_form, php_json


def test_php_params_flattens_lists_dicts_and_booleans():
    pairs = php_params({"pid": [182, 242], "billingcycle": ("monthly", "onetime"), "noemail": True,
                        "noinvoice": False, "notes": None, "custom": {"a": 1}})
    assert pairs == [("pid[0]", "182"), ("pid[1]", "242"), ("billingcycle[0]", "monthly"),
                     ("billingcycle[1]", "onetime"), ("noemail", "1"), ("noinvoice", "0"), ("custom[a]", "1")]


def test_round_trip_through_the_emulator_parser():
    encoded = urlencode(php_params({"pid": [1, 2, 3], "notes": "sfOrderId=801x&y", "x": {"k": [5]}}))
    decoded = parse_php_form(parse_qsl(encoded, keep_blank_values=True))
    assert decoded == {"pid": {"0": "1", "1": "2", "2": "3"}, "notes": "sfOrderId=801x&y", "x": {"k": {"0": "5"}}}


def test_parser_appends_empty_brackets_like_php():
    assert parse_php_form([("pid[]", "a"), ("pid[]", "b"), ("pid[5]", "c"), ("pid[]", "d")]) == {
        "pid": {"0": "a", "1": "b", "5": "c", "6": "d"}
    }


def test_php_json_escapes_quotes_and_slashes_but_stays_json():
    data = {"message": 'API action "x" is not allowed', "url": "a/b", "tricky": 'ends with \\'}
    raw = php_json(data).decode()
    assert "\\u0022x\\u0022" in raw and "a\\/b" in raw
    assert json.loads(raw) == data


def test_nvp_is_the_legacy_format():
    assert nvp({"result": "error", "message": "Invalid IP 1.2.3.4"}) == b"result=error;message=Invalid IP 1.2.3.4;"


def test_models_absorb_whmcs_quirks():
    assert items_of("", "order") == [] and items_of({"order": {"id": "1"}}, "order") == [{"id": "1"}]
    order = WhmcsOrder.from_api({"id": 7, "userid": "3", "invoiceid": "0", "notes": None, "lineitems": "",
                                 "date": "0000-00-00 00:00:00"})
    assert (order.id, order.invoice_id, order.notes, order.line_items, order.date) == ("7", None, "", [], None)
    service = WhmcsService.from_api({"id": "9", "pid": "182", "qty": "", "nextduedate": "0000-00-00"})
    assert (service.pid, service.qty, service.nextduedate) == (182, 1, None)
    result = AddOrderResult.from_api({"orderid": 5, "productids": "11,12", "invoiceid": ""})
    assert result == AddOrderResult("5", ["11", "12"], None)
