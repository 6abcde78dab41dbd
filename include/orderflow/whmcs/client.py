"""A thin WHMCS ``api.php`` client, usable with or without Airflow.

Every answer is classified once, in :mod:`orderflow.errors` (body first, then status), so
callers only see ``dict``/typed results or a :class:`~orderflow.errors.TransientError` /
:class:`~orderflow.errors.PermanentError`. Mutating actions are never retried here: WHMCS has
no idempotency key, so a lost ``AddOrder`` answer is recovered by the caller's
find-before-create (:meth:`WhmcsClient.find_orders_by_note`), not by sending it twice.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import requests

from orderflow.errors import (
    OrderflowError,
    TransientError,
    classify_transport_error,
    classify_whmcs_page,
    classify_whmcs_response,
    register_secret,
)
from orderflow.order_marker import MARKER_KEY, carries_marker
from orderflow.whmcs.models import (
    AddOrderResult,
    ClientDetails,
    OrderLine,
    Page,
    PagedRead,
    PaymentGateway,
    PayMethod,
    RowT,
    WhmcsOrder,
    WhmcsProduct,
    WhmcsService,
    as_int,
    items_of,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0  # the WHMCS sample code's CURLOPT_TIMEOUT; AcceptOrder runs modules synchronously
DEFAULT_PAGE_SIZE = 100
DEFAULT_PAYMENT_METHOD = "banktransfer"

# Reads are safe to send twice; everything else may have committed before the answer was lost.
READ_ACTIONS = frozenset(
    {
        "getclients",
        "getclientsdetails",
        "getpaymethods",
        "getpaymentmethods",
        "getorders",
        "getclientsproducts",
        "getproducts",
        "getinvoice",
        "getinvoices",
        "getorderstatuses",
        "getmodulequeue",
    }
)
_RESERVED = frozenset({"action", "identifier", "secret", "username", "password", "accesskey", "responsetype"})

ItemSpec = OrderLine | tuple[int, str] | tuple[int, str, int]


def php_params(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Flatten params the way PHP's ``http_build_query`` does.

    Lists become ``key[0]``, ``key[1]``...; dicts ``key[name]``; booleans ``1``/``0`` (never the
    string ``"false"``, which PHP reads as true); ``None`` is left out.
    """
    out: list[tuple[str, str]] = []

    def add(key: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool):
            out.append((key, "1" if value else "0"))
        elif isinstance(value, Mapping):
            for sub, item in value.items():
                add(f"{key}[{sub}]", item)
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                add(f"{key}[{index}]", item)
        else:
            out.append((key, str(value)))

    for key, value in params.items():
        add(key, value)
    return out


class WhmcsClient:
    """Calls WHMCS ``api.php`` over one reused HTTPS session, with TLS verified against ``ca_bundle``.

    ``calls`` counts HTTP requests per action (the API budget); ``total_calls`` their sum.
    Read actions are retried once after a transient *transport* error (timeout, dropped
    connection); mutating actions never are.
    """

    def __init__(
        self,
        url: str,
        identifier: str,
        secret: str,
        accesskey: str | None = None,
        ca_bundle: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        retry_reads: bool = True,
    ) -> None:
        if not url.lower().startswith("https://"):
            raise ValueError("the WHMCS API URL must be https://.../includes/api.php")
        self.url = url
        self.identifier = identifier
        self._secret = secret
        self._accesskey = accesskey or None
        self.ca_bundle = ca_bundle
        self.timeout = float(timeout)
        self.retry_reads = retry_reads
        self.calls: Counter[str] = Counter()
        self._session = session
        for value in (secret, accesskey):
            register_secret(value)

    def __repr__(self) -> str:  # never show the secret
        return f"WhmcsClient(url={self.url!r}, identifier={self.identifier!r})"

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
            self._session.headers["User-Agent"] = "orderflow-whmcs/1"
        return self._session

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def __enter__(self) -> WhmcsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport

    def call(self, action: str, **params: Any) -> dict:
        """Call any action; return the decoded success body or raise a classified error."""
        return self._send(action, params, None)

    def page(self, read: PagedRead[RowT], start: int, size: int, **filters: Any) -> Page[RowT]:
        """One page (``limitstart``/``limitnum``) of a paged read, its rows decoded straight into ``read.row``.

        Errors are classified exactly as :meth:`call` classifies them; a success answer whose rows
        are not rows of scalars is transient (``WHMCS_UNAVAILABLE``), never a silently short page.
        """
        return self._send(read.action, {**filters, "limitstart": start, "limitnum": size}, read)

    def _send(self, action: str, params: Mapping[str, Any], read: PagedRead | None) -> Any:
        clash = _RESERVED & set(params)
        if clash:
            raise ValueError(f"reserved WHMCS parameter(s): {', '.join(sorted(clash))}")
        attempts = 2 if self.retry_reads and action.lower() in READ_ACTIONS else 1
        for attempt in range(1, attempts + 1):
            try:
                return self._post(action, params, read)
            except TransientError as exc:
                if attempt >= attempts or not exc.from_transport:
                    raise
                log.warning("WHMCS %s: %s; retrying the read once", action, exc.message)
        raise AssertionError("unreachable")  # pragma: no cover

    def _post(self, action: str, params: Mapping[str, Any], read: PagedRead | None = None) -> Any:
        form = [("action", action), ("identifier", self.identifier), ("secret", self._secret)]
        if self._accesskey:
            form.append(("accesskey", self._accesskey))
        form.append(("responsetype", "json"))
        form += php_params(params)
        self.calls[action] += 1
        started = time.monotonic()
        try:
            resp = self.session.post(self.url, data=form, timeout=self.timeout, verify=self.ca_bundle or True)
            content = resp.content
        except requests.RequestException as exc:
            error = classify_transport_error("whmcs", exc)
            log.warning("WHMCS %s failed after %.2fs: %s", action, time.monotonic() - started, error.message)
            raise error from None
        if read is not None and resp.status_code < 400:
            page = read.decode(content)  # the fast path: a plain success page, typed rows
            if page is not None:
                log.debug("WHMCS %s: HTTP %s in %.2fs", action, resp.status_code, time.monotonic() - started)
                return page
        result = classify_whmcs_response(action, resp.status_code, resp.text, resp.headers.get("Content-Type", ""))
        if read is not None and not isinstance(result, OrderflowError):
            result = classify_whmcs_page(action, result, read.from_dict)
        elapsed = time.monotonic() - started
        if isinstance(result, OrderflowError):
            log.warning("WHMCS %s: HTTP %s in %.2fs: %s", action, resp.status_code, elapsed, result.message)
            raise result
        log.debug("WHMCS %s: HTTP %s in %.2fs", action, resp.status_code, elapsed)
        return result

    # ------------------------------------------------------------------ clients

    def get_client(self, clientid: int | str) -> ClientDetails:
        """``GetClientsDetails``; an unknown client raises ``WHMCS_CLIENT_NOT_FOUND``."""
        return ClientDetails.from_api(self.call("GetClientsDetails", clientid=clientid, stats=False))

    def get_pay_methods(self, clientid: int | str) -> list[PayMethod]:
        """``GetPayMethods``: the client's stored cards/bank accounts ([] = none)."""
        data = self.call("GetPayMethods", clientid=clientid)
        methods = data.get("paymethods") or []
        if isinstance(methods, Mapping):  # tolerate {"paymethod": [...]} too
            methods = items_of(methods, "paymethod")
        return [PayMethod.from_api(m) for m in methods if isinstance(m, Mapping)]

    def get_payment_methods(self) -> list[PaymentGateway]:
        """``GetPaymentMethods``: the active gateways (AddOrder's ``paymentmethod`` values)."""
        data = self.call("GetPaymentMethods")
        return [
            PaymentGateway(module=str(m.get("module", "")), displayname=str(m.get("displayname", "")))
            for m in items_of(data.get("paymentmethods"), "paymentmethod")
        ]

    @staticmethod
    def payment_method_for(pay_methods: Sequence[PayMethod], default: str = DEFAULT_PAYMENT_METHOD) -> str:
        """The gateway to put in AddOrder's ``paymentmethod``: the first pay method's gateway."""
        for method in pay_methods:
            if method.gateway_name:
                return method.gateway_name
        return default

    # ------------------------------------------------------------------ orders

    def add_order(
        self,
        clientid: int | str,
        paymentmethod: str,
        items: Iterable[ItemSpec],
        notes: str | None = None,
        noinvoice: bool = False,
        noemail: bool = False,
    ) -> AddOrderResult:
        """``AddOrder`` (never retried): one service per item, ids returned in item order."""
        lines = [item if isinstance(item, OrderLine) else OrderLine(*item) for item in items]
        if not lines:
            raise ValueError("add_order needs at least one item")
        data = self.call(
            "AddOrder",
            clientid=clientid,
            paymentmethod=paymentmethod,
            pid=[line.pid for line in lines],
            billingcycle=[line.billingcycle.lower() for line in lines],
            qty=[line.qty for line in lines],
            notes=notes,
            noinvoice=noinvoice or None,
            noemail=noemail or None,
        )
        result = AddOrderResult.from_api(data)
        log.info("WHMCS AddOrder: order %s, services %s", result.order_id, ",".join(result.service_ids))
        return result

    def accept_order(self, order_id: int | str, autosetup: bool = True, sendemail: bool = False) -> None:
        """``AcceptOrder`` (never retried); "Status not Pending" raises ``WhmcsOrderNotPending``."""
        self.call("AcceptOrder", orderid=order_id, autosetup=autosetup, sendemail=sendemail)
        log.info("WHMCS AcceptOrder: order %s accepted", order_id)

    def get_order(self, order_id: int | str) -> WhmcsOrder | None:
        """One order by id, or None when WHMCS does not know it."""
        data = self.call("GetOrders", id=order_id, limitnum=1)
        orders = [WhmcsOrder.from_api(o) for o in items_of(data.get("orders"), "order")]
        return next((o for o in orders if o.id == str(order_id)), None)

    def iter_orders(
        self, userid: int | str | None = None, status: str | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[WhmcsOrder]:
        """All orders (of a client / with a status), fetched page by page."""
        for row in self._paged("GetOrders", "orders", "order", page_size, userid=userid, status=status):
            yield WhmcsOrder.from_api(row)

    def find_orders_by_note(self, clientid: int | str, marker: str) -> list[WhmcsOrder]:
        """The client's orders whose notes carry ``marker`` (``sfOrderId=<Id>``), oldest first.

        WHMCS cannot filter on notes, so this scans the client's orders and applies the one
        marker rule (:mod:`orderflow.order_marker`); more than one hit means duplicates the
        caller must report, never pick from silently.
        """
        order_id = marker.removeprefix(MARKER_KEY)
        if order_id == marker or not (order_id.isascii() and order_id.isalnum()):
            raise ValueError(f"marker must be 'sfOrderId=<Salesforce Order Id>', got {marker!r}")
        found = [o for o in self.iter_orders(userid=clientid) if carries_marker(o.notes, order_id)]
        return sorted(found, key=lambda o: as_int(o.id))

    def iter_client_products(
        self,
        clientid: int | str | None = None,
        serviceid: int | str | None = None,
        pid: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[WhmcsService]:
        """Services (of a client / one service / one product), page by page."""
        for row in self._paged(
            "GetClientsProducts", "products", "product", page_size, clientid=clientid, serviceid=serviceid, pid=pid
        ):
            yield WhmcsService.from_api(row)

    def get_products(self, pids: Iterable[int] | None = None) -> list[WhmcsProduct]:
        """The catalogue (``GetProducts`` is not paginated)."""
        pid = ",".join(str(p) for p in pids) if pids is not None else None
        data = self.call("GetProducts", pid=pid)
        return [WhmcsProduct.from_api(p) for p in items_of(data.get("products"), "product")]

    def _paged(self, action: str, outer: str, inner: str, page_size: int, **filters: Any) -> Iterator[dict]:
        """``limitstart``/``limitnum`` paging until ``totalresults`` is reached (or a page is empty)."""
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        start = 0
        while True:
            data = self.call(action, limitstart=start, limitnum=page_size, **filters)
            rows = items_of(data.get(outer), inner)
            yield from rows
            returned = as_int(data.get("numreturned"), len(rows))
            total = as_int(data.get("totalresults"), 0)
            start += returned
            if returned == 0 or not rows or start >= total:
                return
