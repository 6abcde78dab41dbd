"""Typed views of the WHMCS answers the pipeline uses.

WHMCS returns most numbers as strings, ``"0000-00-00"`` for unset dates and ``""`` for empty
collections; these constructors absorb those quirks once, so callers get ids as strings (how
Salesforce stores them), real lists, and ``None`` for "not set".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Generic, TypeVar

import msgspec

UNSET_DATES = frozenset({"", "0000-00-00", "0000-00-00 00:00:00"})


def items_of(container: Any, inner: str) -> list[dict]:
    """``{"orders": {"order": [...]}}`` -> the list; ``""``/``None``/``{}`` -> ``[]``; one dict -> ``[dict]``."""
    if not container:
        return []
    if isinstance(container, Mapping):
        container = container.get(inner, [])
    if isinstance(container, Mapping):
        return [dict(container)]
    if isinstance(container, list):
        return [dict(x) for x in container if isinstance(x, Mapping)]
    return []


def id_str(value: Any) -> str:
    """An id as WHMCS's decimal string (``5``, ``"5"`` -> ``"5"``); ``""`` when missing."""
    return "" if value is None else str(value).strip()


def optional_id(value: Any) -> str | None:
    """An id, or None when WHMCS says "none" with ``""``/``0``."""
    text = id_str(value)
    return None if text in ("", "0") else text


def date_or_none(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return None if text in UNSET_DATES else text


def as_int(value: Any, default: int = 0) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class OrderLine:
    """One ``AddOrder`` item: the product id, the lower-case billing cycle and a quantity."""

    pid: int
    billingcycle: str
    qty: int = 1


@dataclass(frozen=True)
class AddOrderResult:
    """``AddOrder``'s answer; ``service_ids`` are in ``pid[]`` order, so they map to the items."""

    order_id: str
    service_ids: list[str]
    invoice_id: str | None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> AddOrderResult:
        raw = data.get("serviceids") or data.get("productids") or ""
        ids = [s.strip() for s in str(raw).split(",") if s.strip()] if not isinstance(raw, list) else [
            id_str(s) for s in raw
        ]
        return cls(order_id=id_str(data.get("orderid")), service_ids=ids, invoice_id=optional_id(data.get("invoiceid")))


@dataclass(frozen=True)
class ClientDetails:
    """The parts of ``GetClientsDetails`` the pipeline needs."""

    id: str
    firstname: str
    lastname: str
    companyname: str
    email: str
    status: str
    defaultgateway: str
    currency_code: str

    @property
    def fullname(self) -> str:
        return f"{self.firstname} {self.lastname}".strip()

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> ClientDetails:
        client = data.get("client") if isinstance(data.get("client"), Mapping) else data
        return cls(
            id=id_str(client.get("id") or client.get("client_id") or client.get("userid")),
            firstname=str(client.get("firstname") or ""),
            lastname=str(client.get("lastname") or ""),
            companyname=str(client.get("companyname") or ""),
            email=str(client.get("email") or ""),
            status=str(client.get("status") or ""),
            defaultgateway=str(client.get("defaultgateway") or ""),
            currency_code=str(client.get("currency_code") or ""),
        )


@dataclass(frozen=True)
class PayMethod:
    """A stored card or bank account of a client (``GetPayMethods``)."""

    id: str
    type: str
    description: str
    gateway_name: str
    card_last_four: str = ""
    bank_name: str = ""

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> PayMethod:
        return cls(
            id=id_str(data.get("id")),
            type=str(data.get("type") or ""),
            description=str(data.get("description") or ""),
            gateway_name=str(data.get("gateway_name") or ""),
            card_last_four=str(data.get("card_last_four") or ""),
            bank_name=str(data.get("bank_name") or ""),
        )


@dataclass(frozen=True)
class PaymentGateway:
    """An active payment gateway (``GetPaymentMethods``); ``module`` is what AddOrder expects."""

    module: str
    displayname: str


@dataclass(frozen=True)
class WhmcsLineItem:
    """A product line of an order; ``service_id`` is ``relid``, the service it created."""

    service_id: str
    type: str
    product: str
    billingcycle: str
    amount: str
    status: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> WhmcsLineItem:
        return cls(
            service_id=id_str(data.get("relid")),
            type=str(data.get("type") or ""),
            product=str(data.get("product") or ""),
            billingcycle=str(data.get("billingcycle") or ""),
            amount=str(data.get("amount") or ""),
            status=str(data.get("status") or ""),
        )


@dataclass(frozen=True)
class WhmcsOrder:
    """An order as ``GetOrders`` shows it, with its line items in order."""

    id: str
    ordernum: str
    userid: str
    date: str | None
    status: str
    paymentstatus: str
    paymentmethod: str
    amount: str
    invoice_id: str | None
    notes: str
    line_items: list[WhmcsLineItem] = field(default_factory=list)

    @property
    def service_ids(self) -> list[str]:
        return [li.service_id for li in self.line_items if li.type == "product" and li.service_id]

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> WhmcsOrder:
        return cls(
            id=id_str(data.get("id")),
            ordernum=id_str(data.get("ordernum")),
            userid=id_str(data.get("userid")),
            date=date_or_none(data.get("date")),
            status=str(data.get("status") or ""),
            paymentstatus=str(data.get("paymentstatus") or ""),
            paymentmethod=str(data.get("paymentmethod") or ""),
            amount=str(data.get("amount") or ""),
            invoice_id=optional_id(data.get("invoiceid")),
            notes=str(data.get("notes") or ""),
            line_items=[WhmcsLineItem.from_api(li) for li in items_of(data.get("lineitems"), "lineitem")],
        )


@dataclass(frozen=True)
class WhmcsService:
    """A client's service (``GetClientsProducts``); statuses Pending/Active/Suspended/Terminated/..."""

    id: str
    clientid: str
    orderid: str
    pid: int
    name: str
    groupname: str
    status: str
    billingcycle: str
    qty: int
    regdate: str | None
    nextduedate: str | None
    recurringamount: str
    domain: str
    notes: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> WhmcsService:
        return cls(
            id=id_str(data.get("id")),
            clientid=id_str(data.get("clientid")),
            orderid=id_str(data.get("orderid")),
            pid=as_int(data.get("pid")),
            name=str(data.get("name") or ""),
            groupname=str(data.get("groupname") or ""),
            status=str(data.get("status") or ""),
            billingcycle=str(data.get("billingcycle") or ""),
            qty=as_int(data.get("qty"), 1),
            regdate=date_or_none(data.get("regdate")),
            nextduedate=date_or_none(data.get("nextduedate")),
            recurringamount=str(data.get("recurringamount") or ""),
            domain=str(data.get("domain") or ""),
            notes=str(data.get("notes") or ""),
        )


@dataclass(frozen=True)
class WhmcsProduct:
    """A catalogue product (``GetProducts``); ``paytype`` is free, onetime or recurring."""

    pid: int
    gid: int
    name: str
    module: str
    paytype: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> WhmcsProduct:
        return cls(
            pid=as_int(data.get("pid")),
            gid=as_int(data.get("gid")),
            name=str(data.get("name") or ""),
            module=str(data.get("module") or ""),
            paytype=str(data.get("paytype") or ""),
        )


# ---------------------------------------------------------------------- paged reads, typed

# A WHMCS scalar: ids and counts come as strings or numbers depending on the action and version.
Scalar = str | int | float | bool | None
RowT = TypeVar("RowT", bound=msgspec.Struct)


class OrderRow(msgspec.Struct, frozen=True):
    """The ``GetOrders`` fields reconciliation reads; decoding skips the rest (line items, amounts ...)."""

    id: Scalar = None
    userid: Scalar = None
    status: Scalar = None
    date: Scalar = None
    notes: Scalar = None


class ServiceRow(msgspec.Struct, frozen=True):
    """The ``GetClientsProducts`` fields reconciliation reads."""

    id: Scalar = None
    orderid: Scalar = None
    clientid: Scalar = None
    status: Scalar = None


@dataclass(frozen=True)
class Page(Generic[RowT]):
    """One page of a paged read: its rows and the paging counters WHMCS sent with them."""

    rows: list[RowT]
    total: int
    returned: int


@dataclass(frozen=True)
class PagedRead(Generic[RowT]):
    """A paged read action (``{outer: {inner: [...]}}``) decoded straight into ``row`` structs.

    Why: a page of 1,000 orders is ~1 MB of JSON; decoding only the wanted fields into structs is
    ~7x cheaper than ``json.loads`` plus a dict per row, which dominated the extraction's CPU.
    """

    action: str
    outer: str
    inner: str
    row: type[RowT]

    def decode(self, body: bytes) -> Page[RowT] | None:
        """The page of a plain ``result=success`` answer; None for anything else (classify it the slow way)."""
        try:
            data = _page_decoder(self.outer, self.inner, self.row).decode(body)
        except msgspec.DecodeError:  # not JSON, or a shape the typed decoder does not know
            return None
        if str(data.result).lower() != "success":
            return None
        rows = _listed(getattr(data, self.outer), self.inner)
        return Page(rows, as_int(data.totalresults, 0), as_int(data.numreturned, len(rows)))

    def from_dict(self, data: Mapping[str, Any]) -> Page[RowT]:
        """The page of an answer already decoded to a dict (any shape :func:`items_of` accepts).

        Raises ``msgspec.ValidationError`` when a row's field is not a scalar.
        """
        rows = [msgspec.convert(r, self.row) for r in items_of(data.get(self.outer), self.inner)]
        return Page(rows, as_int(data.get("totalresults"), 0), as_int(data.get("numreturned"), len(rows)))


def _listed(container: Any, inner: str) -> list:
    """:func:`items_of` for the typed decoder's output (a wrapper struct, a list, ``""`` or None)."""
    if isinstance(container, msgspec.Struct):
        container = getattr(container, inner)
    if isinstance(container, list):
        return container
    if isinstance(container, msgspec.Struct):
        return [container]
    return []


@cache
def _page_decoder(outer: str, inner: str, row: type[msgspec.Struct]) -> msgspec.json.Decoder:
    wrapper = msgspec.defstruct(f"{inner.title()}List", [(inner, list[row] | row | str | None, None)])
    page = msgspec.defstruct(f"{outer.title()}Page", [
        ("result", Scalar, None), ("totalresults", Scalar, None), ("numreturned", Scalar, None),
        (outer, wrapper | list[row] | str | None, None)])
    return msgspec.json.Decoder(page)


GET_ORDERS = PagedRead("GetOrders", "orders", "order", OrderRow)
GET_CLIENTS_PRODUCTS = PagedRead("GetClientsProducts", "products", "product", ServiceRow)
