"""A client nobody here wrote: stdlib urllib posting forms the way the WHMCS docs' PHP sample does.

It follows whmcspy's conventions (lists flattened to ``key[i]``, ``responsetype=json``, errors
read from the body), shares no code with orderflow, and must get correct answers.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request


class TinyWhmcs:
    """~ ``curl_setopt($ch, CURLOPT_POSTFIELDS, http_build_query($postfields))``."""

    def __init__(self, url: str, identifier: str, secret: str, cafile: str) -> None:
        self.url, self.identifier, self.secret = url, identifier, secret
        self.ssl = ssl.create_default_context(cafile=cafile)

    def call(self, action: str, **params: object) -> dict:
        fields: list[tuple[str, str]] = [
            ("identifier", self.identifier), ("secret", self.secret), ("action", action), ("responsetype", "json"),
        ]
        for key, value in params.items():
            if isinstance(value, (list, tuple)):
                fields += [(f"{key}[{i}]", str(v)) for i, v in enumerate(value)]
            else:
                fields.append((key, str(value)))
        request = urllib.request.Request(self.url, data=urllib.parse.urlencode(fields).encode(), method="POST")
        try:
            with urllib.request.urlopen(request, context=self.ssl, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 403s still carry a JSON body
            return json.loads(exc.read())


def test_third_party_client_reads_and_orders(endpoints, state):
    api = TinyWhmcs(endpoints["url"], endpoints["identifier"], endpoints["secret"], endpoints["ca_bundle"])
    cid = state.create_client("Saburo", "Kato", "saburo.kato@example.jp")

    details = api.call("GetClientsDetails", clientid=cid)
    assert details["result"] == "success" and details["client"]["email"] == "saburo.kato@example.jp"
    assert details["client"]["id"] == str(cid)
    paymethods = api.call("GetPayMethods", clientid=cid)
    assert paymethods["result"] == "success" and paymethods["paymethods"][0]["gateway_name"] == "banktransfer"
    products = api.call("GetProducts", pid=33)
    assert products["products"]["product"][0]["name"] == "VPN USA (San Francisco)"
    clients = api.call("GetClients", search="saburo")
    assert int(clients["totalresults"]) == 1

    added = api.call(
        "AddOrder", clientid=cid, paymentmethod="banktransfer", pid=[33, 37], billingcycle=["monthly", "onetime"],
        notes="sfOrderId=801THIRDPARTY00AAA",
    )
    assert added["result"] == "success"
    service_ids = added["serviceids"].split(",")
    assert api.call("AcceptOrder", orderid=added["orderid"], autosetup=1) == {"result": "success"}
    again = api.call("AcceptOrder", orderid=added["orderid"], autosetup=1)
    assert again == {"result": "error", "message": "Order ID not found or Status not Pending"}

    orders = api.call("GetOrders", userid=cid)
    order = orders["orders"]["order"][0]
    assert order["id"] == added["orderid"] and order["status"] == "Active"
    assert order["notes"] == "sfOrderId=801THIRDPARTY00AAA"
    services = api.call("GetClientsProducts", clientid=cid, limitnum=100)["products"]["product"]
    assert sorted(s["id"] for s in services) == sorted(service_ids)
    assert {s["status"] for s in services} == {"Active"}

    denied = api.call("ModuleTerminate", serviceid=service_ids[0])
    assert denied == {"result": "error", "message": 'Invalid Permissions: API action "moduleterminate" is not allowed'}
