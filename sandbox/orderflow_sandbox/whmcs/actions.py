"""The WHMCS API actions, as documented (shared/reference/whmcs.md §2-§5).

Each action takes the decoded request parameters and returns the success body; a documented
failure is raised as :class:`ActionError` carrying WHMCS's exact message. Output follows real
WHMCS quirks on purpose: database ids as strings, ``"0000-00-00"`` for unset dates, ``""`` for
an empty collection (switchable), display names for billing cycles.
"""

from __future__ import annotations

import random
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from orderflow_sandbox.whmcs.state import DEFAULT_MODULE_ERROR, GATEWAYS, WhmcsState, now, today

Params = dict[str, Any]

UNSET_DATE = "0000-00-00"
DEFAULT_PAGE_SIZE = 25
CURRENCY = {"id": "1", "code": "JPY", "prefix": "¥", "suffix": " JPY"}

# Input (lower-case system names) -> the display names WHMCS stores and returns.
BILLING_CYCLES = {
    "free": "Free Account",
    "onetime": "One Time",
    "monthly": "Monthly",
    "quarterly": "Quarterly",
    "semiannually": "Semi-Annually",
    "annually": "Annually",
    "biennially": "Biennially",
    "triennially": "Triennially",
}
SERVICE_STATUSES = ("Pending", "Active", "Suspended", "Terminated", "Cancelled", "Fraud", "Completed")
ORDER_NOT_PENDING = "Order ID not found or Status not Pending"


class ActionError(Exception):
    """A documented WHMCS error: ``{"result": "error", "message": ...}`` with this HTTP status."""

    def __init__(self, message: str, status: int = 200, *, keep_changes: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.keep_changes = keep_changes  # commit what the action did before failing


@dataclass
class Context:
    """What an action may use besides its parameters."""

    state: WhmcsState
    db: sqlite3.Connection
    client_ip: str
    empty_as_string: bool = True
    module_fault: bool = False  # a ``module_error`` fault fired for this call


# ---------------------------------------------------------------------- parameter helpers


def php_truthy(value: Any) -> bool:
    """PHP's truthiness of a request value: ``""`` and ``"0"`` are false, ``"false"`` is true."""
    if isinstance(value, (dict, list)):
        return bool(value)
    return value not in (None, "", "0")


def text(params: Params, key: str, default: str = "") -> str:
    value = params.get(key, default)
    return value if isinstance(value, str) else default


def integer(params: Params, key: str) -> int | None:
    value = text(params, key).strip()
    try:
        return int(value)
    except ValueError:
        return None


def array(params: Params, key: str) -> dict[str, str] | None:
    """A PHP array parameter (``key[0]=..``/``key[]=..``) as ``{index: value}`` in request order.

    WHMCS pairs per-item arrays by index (``pid[i]`` with ``billingcycle[i]``), not by position;
    a scalar counts as the single item ``{"0": value}``.
    """
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: v if isinstance(v, str) else "" for k, v in value.items()}
    return {"0": value if isinstance(value, str) else ""}


def paging(params: Params) -> tuple[int, int]:
    start = max(integer(params, "limitstart") or 0, 0)
    num = integer(params, "limitnum")
    return start, DEFAULT_PAGE_SIZE if num is None or num <= 0 else num


def money(value: float) -> str:
    return f"{value:.2f}"


def collection(ctx: Context, outer: str, inner: str, items: list) -> dict:
    """``{outer: {inner: [...]}}``, or ``{outer: ""}`` when empty (the real API's habit)."""
    if not items and ctx.empty_as_string:
        return {outer: ""}
    return {outer: {inner: items}}


def page(total: int, start: int, items: list) -> dict:
    return {"totalresults": total, "startnumber": start, "numreturned": len(items)}


# ---------------------------------------------------------------------- clients


def _client_row(db: sqlite3.Connection, clientid: int | None = None, email: str = "") -> sqlite3.Row | None:
    if clientid is not None:
        return db.execute("SELECT * FROM clients WHERE id = ?", (clientid,)).fetchone()
    return db.execute("SELECT * FROM clients WHERE lower(email) = lower(?)", (email,)).fetchone()


_ADDCLIENT_REQUIRED = (
    ("firstname", "You did not enter your first name"),
    ("lastname", "You did not enter your last name"),
    ("email", "You did not enter your email address"),
    ("address1", "You did not enter your  address line 1"),
    ("city", "You did not enter your city"),
    ("state", "You did not enter your state"),
    ("postcode", "You did not enter your postcode"),
)


def add_client(ctx: Context, params: Params) -> dict:
    for key, message in _ADDCLIENT_REQUIRED:
        if not text(params, key).strip():
            raise ActionError(message)
    email = text(params, "email").strip()
    if "@" not in email or "." not in email.rsplit("@", 1)[-1]:
        raise ActionError("The email address you entered was not valid")
    country = text(params, "country").strip()
    if len(country) != 2 or not country.isalpha():
        raise ActionError("Valid country required")
    if not text(params, "phonenumber").strip():
        raise ActionError("You did not enter your phone number")
    if _client_row(ctx.db, email=email) is not None:
        raise ActionError("A user already exists with that email address")
    fields = {k: text(params, k).strip() for k in (
        "firstname", "lastname", "companyname", "email", "address1", "address2", "city", "state", "postcode",
        "country", "phonenumber", "notes", "groupid",
    )}
    clientid = ctx.state.insert_client(ctx.db, fields)
    return {"clientid": str(clientid), "owner_user_id": str(clientid)}


def _client_summary(row: sqlite3.Row) -> dict:
    return {
        "id": str(row["id"]),
        "firstname": row["firstname"],
        "lastname": row["lastname"],
        "companyname": row["companyname"],
        "email": row["email"],
        "datecreated": row["datecreated"],
        "groupid": str(row["groupid"]),
        "status": row["status"],
    }


_CLIENT_ORDER_BY = {"id", "firstname", "lastname", "companyname", "email", "groupid", "datecreated", "status"}


def get_clients(ctx: Context, params: Params) -> dict:
    start, num = paging(params)
    where, args = [], []
    if status := text(params, "status"):
        where.append("status = ?")
        args.append(status)
    if search := text(params, "search"):
        where.append(
            "(email LIKE ?1 OR firstname LIKE ?1 OR lastname LIKE ?1 OR (firstname || ' ' || lastname) LIKE ?1 "
            "OR companyname LIKE ?1)".replace("?1", "?")
        )
        args += [search.replace("%", r"\%") + "%"] * 5
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    orderby = text(params, "orderby", "id")
    orderby = orderby if orderby in _CLIENT_ORDER_BY else "id"
    direction = "DESC" if text(params, "sorting").upper() == "DESC" else "ASC"
    total = ctx.db.execute(f"SELECT COUNT(*) FROM clients {clause}", args).fetchone()[0]  # noqa: S608
    rows = ctx.db.execute(
        f"SELECT * FROM clients {clause} ORDER BY {orderby} {direction}, id {direction} LIMIT ? OFFSET ?",  # noqa: S608
        [*args, num, start],
    ).fetchall()
    items = [_client_summary(r) for r in rows]
    return {**page(total, start, items), **collection(ctx, "clients", "client", items)}


def get_clients_details(ctx: Context, params: Params) -> dict:
    clientid, email = integer(params, "clientid"), text(params, "email").strip()
    if clientid is None and not email:
        raise ActionError("Either clientid Or email Is Required")
    row = _client_row(ctx.db, clientid, email)
    if row is None:
        raise ActionError("Client Not Found")
    cid = str(row["id"])
    fullname = f"{row['firstname']} {row['lastname']}".strip()
    client = {
        "client_id": cid,
        "owner_user_id": cid,
        "userid": cid,
        "id": cid,
        "uuid": row["uuid"],
        "firstname": row["firstname"],
        "lastname": row["lastname"],
        "fullname": fullname,
        "companyname": row["companyname"],
        "email": row["email"],
        "address1": row["address1"],
        "address2": row["address2"],
        "city": row["city"],
        "fullstate": row["state"],
        "state": row["state"],
        "postcode": row["postcode"],
        "countrycode": row["country"],
        "country": row["country"],
        "phonenumber": row["phonenumber"],
        "tax_id": "",
        "statecode": row["state"],
        "countryname": "Japan" if row["country"] == "JP" else row["country"],
        "phonecc": 81,
        "billingcid": "0",
        "notes": row["notes"],
        "currency": CURRENCY["id"],
        "defaultgateway": row["defaultgateway"],
        "groupid": str(row["groupid"]),
        "status": row["status"],
        "credit": "0.00",
        "taxexempt": False,
        "latefeeoveride": False,
        "overideduenotices": False,
        "separateinvoices": False,
        "disableautocc": False,
        "emailoptout": False,
        "marketing_emails_opt_in": False,
        "overrideautoclose": False,
        "allowSingleSignOn": 1,
        "email_verified": False,
        "language": "",
        "lastlogin": "No Login Logged",
        "currency_code": CURRENCY["code"],
        "customfields": [],
        "users": {"user": [{"id": 1, "name": fullname, "email": row["email"], "is_owner": True}]},
    }
    body: dict = {**{k: v for k, v in client.items() if k not in ("users",)}, "client": client}
    if php_truthy(params.get("stats")):
        active = ctx.db.execute(
            "SELECT COUNT(*) FROM services WHERE clientid = ? AND status = 'Active'", (row["id"],)
        ).fetchone()[0]
        body["stats"] = {"productsnumactive": active, "numunpaidinvoices": 0, "numpaidinvoices": 0}
    return body


def get_pay_methods(ctx: Context, params: Params) -> dict:
    clientid = integer(params, "clientid")
    if clientid is None:
        raise ActionError("Client ID Is Required")
    kind = text(params, "type")
    if kind and kind not in ("BankAccount", "CreditCard"):
        raise ActionError("Invalid Pay Method Type. Should be 'BankAccount' or 'CreditCard'")
    if _client_row(ctx.db, clientid) is None:
        raise ActionError("Client Not Found")
    sql, args = "SELECT * FROM paymethods WHERE clientid = ?", [clientid]
    if (pmid := integer(params, "paymethodid")) is not None:
        sql, args = sql + " AND id = ?", [*args, pmid]
    if kind:
        sql, args = sql + " AND type IN (?, ?)", [*args, kind, f"Remote{kind}"]
    methods = [
        {
            "id": r["id"],
            "type": r["type"],
            "description": r["description"],
            "gateway_name": r["gateway_name"],
            "contact_type": "Client",
            "contact_id": r["clientid"],
            "card_last_four": r["card_last_four"],
            "expiry_date": r["expiry_date"],
            "start_date": "",
            "issue_number": "",
            "card_type": r["card_type"],
            "bank_name": r["bank_name"],
            "remote_token": "",
            "last_updated": r["last_updated"],
        }
        for r in ctx.db.execute(sql + " ORDER BY id", args)
    ]
    return {"clientid": str(clientid), "paymethods": methods}


PAY_METHOD_TYPES = ("BankAccount", "CreditCard", "RemoteCreditCard")
_MMYY = re.compile(r"^(0[1-9]|1[0-2])\d{2}$")


def _card_brand(number: str) -> str:
    return {"4": "Visa", "5": "MasterCard", "3": "American Express", "6": "Discover"}.get(number[:1], "Card")


def add_pay_method(ctx: Context, params: Params) -> dict:
    """Store a bank account or card for a client (WHMCS 7.8+), checks in the documented order.

    Like WHMCS, only what GetPayMethods shows is kept (last four digits, expiry, bank name): a
    full card or account number never reaches the database or a response.
    """
    if not text(params, "clientid").strip():
        raise ActionError("Client ID Is Required")
    clientid = integer(params, "clientid")
    if clientid is None or _client_row(ctx.db, clientid) is None:
        raise ActionError("Invalid Client ID")
    kind = text(params, "type").strip() or "CreditCard"
    if kind not in PAY_METHOD_TYPES:
        raise ActionError("Invalid Pay Method Type. Type should be one of 'BankAccount', 'CreditCard', or 'RemoteCreditCard'")
    gateway = text(params, "gateway_module_name").strip()
    gateways = [m for m, _ in GATEWAYS]
    if kind == "RemoteCreditCard" and not gateway:
        raise ActionError("Gateway is Required for RemoteCreditCard type")
    fields = {"card_last_four": "", "expiry_date": "", "card_type": "", "bank_name": ""}
    if kind in ("CreditCard", "RemoteCreditCard"):
        number = re.sub(r"[\s-]", "", text(params, "card_number"))
        if not number:
            raise ActionError("Card Number is required for 'CreditCard' or 'RemoteCreditCard' type")
        expiry = text(params, "card_expiry").strip()
        if not expiry:
            raise ActionError("Expiry Date is required for 'CreditCard' or 'RemoteCreditCard' type")
        if not _MMYY.match(expiry):
            raise ActionError("Expiry Date is invalid")
        if text(params, "card_start").strip() and not _MMYY.match(text(params, "card_start").strip()):
            raise ActionError("Start Date is invalid")
        if text(params, "card_issue_number").strip() and not text(params, "card_issue_number").strip().isdigit():
            raise ActionError("Issue Number is invalid")
        fields.update(card_last_four=number[-4:], expiry_date=f"{expiry[:2]}/{expiry[2:]}", card_type=_card_brand(number))
        default_gateway = "stripe"
    else:
        if not text(params, "bank_code").strip():
            raise ActionError("Routing number is required")
        if not text(params, "bank_account").strip():
            raise ActionError("Account number is required")
        fields["bank_name"] = text(params, "bank_name").strip()
        default_gateway = "banktransfer"
    if gateway and gateway not in gateways:
        raise ActionError(f"Invalid Gateway Module Name. Must be one of: {', '.join(gateways)}")
    gateway_name = gateway or default_gateway
    description = text(params, "description").strip()
    cur = ctx.db.execute(
        "INSERT INTO paymethods(clientid, type, description, gateway_name, card_last_four, expiry_date, card_type, "
        "bank_name, last_updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (clientid, kind, description, gateway_name, fields["card_last_four"], fields["expiry_date"],
         fields["card_type"], fields["bank_name"], now()),
    )
    if php_truthy(params.get("set_as_default")):
        ctx.db.execute("UPDATE clients SET defaultgateway = ? WHERE id = ?", (gateway_name, clientid))
    return {"clientid": str(clientid), "paymethodid": str(cur.lastrowid)}


def get_payment_methods(ctx: Context, params: Params) -> dict:
    items = [{"module": m, "displayname": d} for m, d in GATEWAYS]
    return {"totalresults": len(items), **collection(ctx, "paymentmethods", "paymentmethod", items)}


# ---------------------------------------------------------------------- orders


def _order_row(db: sqlite3.Connection, orderid: int | None) -> sqlite3.Row | None:
    if orderid is None:
        return None
    return db.execute("SELECT * FROM orders WHERE id = ?", (orderid,)).fetchone()


def add_order(ctx: Context, params: Params) -> dict:
    clientid = integer(params, "clientid")
    client = _client_row(ctx.db, clientid) if clientid is not None else None
    if client is None:
        raise ActionError("Client ID Not Found")
    if client["status"] == "Closed":
        raise ActionError("Unable to add order when client status is Closed")
    gateways = [m for m, _ in GATEWAYS]
    paymentmethod = text(params, "paymentmethod")
    if paymentmethod not in gateways:
        raise ActionError(f"Invalid Payment Method. Valid options include {','.join(gateways)}")
    for key in ("billingcycle", "qty", "domain", "priceoverride"):
        if key in params and "pid" in params and isinstance(params["pid"], dict) and isinstance(params[key], str):
            raise ActionError(f"Expecting parameter '{key}' to be an array")
    pids = array(params, "pid") or {}
    cycles = array(params, "billingcycle") or {}
    qtys = array(params, "qty") or {}
    domains = array(params, "domain") or {}
    overrides = array(params, "priceoverride") or {}
    items = []
    for index, raw_pid in pids.items():
        try:
            product = ctx.db.execute("SELECT * FROM products WHERE pid = ?", (int(raw_pid),)).fetchone()
        except ValueError:
            product = None
        if product is None:
            raise ActionError("No items added to cart so order cannot proceed")
        cycle = cycles.get(index, "").strip().lower().replace("-", "").replace(" ", "")
        if product["paytype"] == "onetime":
            cycle = "onetime"
        elif cycle not in BILLING_CYCLES or cycle in ("onetime", "free"):
            cycle = "monthly"
        try:
            qty = max(int(qtys.get(index) or 1), 1)
        except ValueError:
            qty = 1
        price = float(product["price"])
        try:
            price = float(overrides[index]) if overrides.get(index) else price
        except ValueError:
            pass
        items.append((product, cycle, qty, price, domains.get(index, "")))
    if not items:
        raise ActionError("No items added to cart so order cannot proceed")

    total = sum(price * qty for _, _, qty, price, _ in items)
    orderid = int(ctx.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM orders").fetchone()[0])
    ordernum = str(random.Random(orderid).randint(1_000_000_000, 9_999_999_999))
    invoiceid = 0
    if not php_truthy(params.get("noinvoice")):
        invoiceid = int(
            ctx.db.execute(
                "INSERT INTO invoices(userid, date, duedate, total, status, paymentmethod) "
                "VALUES (?, ?, ?, ?, 'Unpaid', ?)",
                (client["id"], today(), today(), total, paymentmethod),
            ).lastrowid  # type: ignore[arg-type]
        )
    ctx.db.execute(
        "INSERT INTO orders(id, ordernum, userid, date, amount, paymentmethod, invoiceid, status, ipaddress, notes, "
        "promocode) VALUES (?, ?, ?, ?, ?, ?, ?, 'Pending', ?, ?, ?)",
        (
            orderid,
            ordernum,
            client["id"],
            now(),
            total,
            paymentmethod,
            invoiceid,
            text(params, "clientip") or ctx.client_ip,
            text(params, "notes"),
            text(params, "promocode"),
        ),
    )
    service_ids = []
    for position, (product, cycle, qty, price, domain) in enumerate(items):
        recurring = 0.0 if cycle in ("onetime", "free") else price * qty
        cur = ctx.db.execute(
            "INSERT INTO services(orderid, clientid, pid, position, qty, regdate, domain, paymentmethod, "
            "firstpaymentamount, recurringamount, billingcycle, nextduedate, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'Pending')",
            (
                orderid,
                client["id"],
                product["pid"],
                position,
                qty,
                today(),
                domain,
                paymentmethod,
                price * qty,
                recurring,
                BILLING_CYCLES[cycle],
                UNSET_DATE if cycle in ("onetime", "free") else today(),
            ),
        )
        service_ids.append(str(cur.lastrowid))
    joined = ",".join(service_ids)
    return {
        "orderid": str(orderid),
        "serviceids": joined,
        "productids": joined,  # legacy name, always equal to serviceids
        "addonids": "",
        "domainids": "",
        "invoiceid": str(invoiceid),
    }


def _run_module_create(ctx: Context, service: sqlite3.Row) -> None:
    """Run the product's provisioning module for one service; raise the module's error text."""
    product = ctx.db.execute("SELECT module, module_error FROM products WHERE pid = ?", (service["pid"],)).fetchone()
    if product is None or not product["module"]:
        ctx.db.execute("UPDATE services SET status = 'Active' WHERE id = ?", (service["id"],))
        return
    if ctx.module_fault or product["module_error"]:
        raise ActionError(product["module_error"] or DEFAULT_MODULE_ERROR)
    ctx.db.execute(
        "UPDATE services SET status = 'Active', username = ? WHERE id = ?",
        (f"svc{service['id']}", service["id"]),
    )


def accept_order(ctx: Context, params: Params) -> dict:
    order = _order_row(ctx.db, integer(params, "orderid"))
    if order is None or order["status"] != "Pending":
        raise ActionError(ORDER_NOT_PENDING)
    autosetup = php_truthy(params.get("autosetup"))
    services = ctx.db.execute(
        "SELECT * FROM services WHERE orderid = ? AND status = 'Pending' ORDER BY position", (order["id"],)
    ).fetchall()
    errors = []
    for service in services:
        if autosetup:
            try:
                _run_module_create(ctx, service)
            except ActionError as exc:
                errors.append(exc.message)
        else:
            ctx.db.execute("UPDATE services SET status = 'Active' WHERE id = ?", (service["id"],))
    if errors:
        # As reported from real instances: the module failure is passed through, the order
        # stays Pending, and a later AcceptOrder retries the module.
        raise ActionError(errors[0], keep_changes=True)
    ctx.db.execute("UPDATE orders SET status = 'Active' WHERE id = ?", (order["id"],))
    return {}


def _set_order_status(ctx: Context, params: Params, status: str, not_found: str, only_pending: bool = False) -> dict:
    order = _order_row(ctx.db, integer(params, "orderid"))
    if order is None or (only_pending and order["status"] != "Pending"):
        raise ActionError(not_found)
    ctx.db.execute("UPDATE orders SET status = ? WHERE id = ?", (status, order["id"]))
    ctx.db.execute("UPDATE services SET status = ? WHERE orderid = ?", (status, order["id"]))
    if status in ("Cancelled", "Fraud") and order["invoiceid"]:
        ctx.db.execute(
            "UPDATE invoices SET status = 'Cancelled' WHERE id = ? AND status = 'Unpaid'", (order["invoiceid"],)
        )
    return {}


def cancel_order(ctx: Context, params: Params) -> dict:
    return _set_order_status(ctx, params, "Cancelled", ORDER_NOT_PENDING, only_pending=True)


def pending_order(ctx: Context, params: Params) -> dict:
    return _set_order_status(ctx, params, "Pending", "Order ID Not Found")


def fraud_order(ctx: Context, params: Params) -> dict:
    return _set_order_status(ctx, params, "Fraud", "Order ID Not Found")


def _tuples(db: sqlite3.Connection, sql: str, args: list | tuple = ()) -> list[tuple]:
    """Rows as plain tuples: the list views unpack them (a lookup by name on ``sqlite3.Row`` scans the
    column names, and a page of 1,000 services reads ~20,000 fields)."""
    cur = db.cursor()
    cur.row_factory = None
    return cur.execute(sql, args).fetchall()


def _in_chunks(db: sqlite3.Connection, sql: str, ids: list[int]) -> list[tuple]:
    """Run ``sql`` (with one ``{ids}`` placeholder list) for ``ids`` in chunks under SQLite's variable limit."""
    rows: list[tuple] = []
    for i in range(0, len(ids), 900):
        chunk = ids[i:i + 900]
        rows += _tuples(db, sql.format(ids=",".join("?" * len(chunk))), chunk)
    return rows


def _page_rows(ctx: Context, table: str, columns: str, where: list[str], args: list, start: int, num: int,
               descending: bool) -> list[tuple]:
    """``SELECT <columns> FROM <table> t WHERE ... ORDER BY t.id LIMIT num OFFSET start`` (``columns`` start with
    ``t.id``), the same rows, read from where an earlier page ended when one did (the state's ``ReadCache``).

    Why: clients page a list from start to end; an OFFSET scan of everything before each page made a
    full read grow with the square of the table.
    """
    key = (table, tuple(where), tuple(args), descending)
    version, known = ctx.state.reads.page_start(key, start)
    where, args, skip = list(where), list(args), start
    if known is not None:
        where.append("t.id < ?" if descending else "t.id > ?")
        args.append(known[1])
        skip = start - known[0]
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = _tuples(ctx.db, f"SELECT {columns} FROM {table} t {clause} "  # noqa: S608
                           f"ORDER BY t.id {'DESC' if descending else 'ASC'} LIMIT ? OFFSET ?", [*args, num, skip])
    if rows:
        ctx.state.reads.page_end(key, version, start + len(rows), rows[-1][0])
    return rows


def _count(ctx: Context, table: str, where: list[str], args: list) -> int:
    """``SELECT COUNT(*)`` of a list's filter, counted once per data version (every page asks for it)."""
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return ctx.state.reads.value(("count", table, tuple(where), tuple(args)), lambda: ctx.db.execute(
        f"SELECT COUNT(*) FROM {table} t {clause}", args).fetchone()[0])  # noqa: S608


_GATEWAY_NAMES = dict(GATEWAYS)
_ORDER_COLUMNS = ("t.id, t.ordernum, t.userid, t.date, t.amount, t.paymentmethod, t.invoiceid, t.status, t.ipaddress, "
                  "t.notes, t.promocode")


# The list views are structs, fields in WHMCS's key order: ~2x faster to build and to encode than dicts, and
# a page holds 1,000 of them (the encoders of the xml and nvp answers read them as dicts).

class LineItem(msgspec.Struct):
    """One ``lineitems.lineitem`` entry of a GetOrders order."""

    type: str
    relid: str
    producttype: str
    product: str
    domain: str
    billingcycle: str
    amount: str
    status: str


class OrderView(msgspec.Struct):
    """One ``orders.order`` entry of GetOrders."""

    id: str
    ordernum: str
    userid: str
    contactid: str
    requestor_id: str
    admin_requestor_id: str
    date: str
    nameservers: str
    transfersecret: str
    renewals: str
    promocode: str
    promotype: str
    promovalue: str
    orderdata: str
    amount: str
    paymentmethod: str
    invoiceid: str
    status: str
    ipaddress: str
    fraudmodule: str
    fraudoutput: str
    notes: str
    paymentmethodname: str
    paymentstatus: str
    name: str
    currencyprefix: str
    currencysuffix: str
    frauddata: str
    validationdata: str
    lineitems: dict | str


def _order_views(ctx: Context, orders: list[tuple]) -> list[OrderView]:
    """GetOrders entries for a page of orders (rows of ``_ORDER_COLUMNS``): clients, invoices and line items
    fetched once per page."""
    db = ctx.db
    clients = {cid: f"{first} {last}" for cid, first, last in _in_chunks(
        db, "SELECT id, firstname, lastname FROM clients WHERE id IN ({ids})", sorted({o[2] for o in orders}))}
    invoices = dict(_in_chunks(
        db, "SELECT id, status FROM invoices WHERE id IN ({ids})", sorted({o[6] for o in orders if o[6]})))
    lines: dict[int, list[LineItem]] = {}
    prefix, suffix = CURRENCY["prefix"], CURRENCY["suffix"]
    for sid, orderid, domain, billingcycle, amount, status, name in _in_chunks(
        db,
        "SELECT s.id, s.orderid, s.domain, s.billingcycle, s.firstpaymentamount, s.status, p.name FROM services s "
        "JOIN products p ON p.pid = s.pid WHERE s.orderid IN ({ids}) ORDER BY s.orderid, s.position",
        [o[0] for o in orders],
    ):
        lines.setdefault(orderid, []).append(LineItem(
            "product", str(sid), "Other", name, domain, billingcycle, f"{prefix}{amount:.2f}{suffix}", status))
    return [
        OrderView(
            id=str(oid), ordernum=ordernum, userid=str(userid), contactid="0", requestor_id=str(userid),
            admin_requestor_id="0", date=date, nameservers="", transfersecret="", renewals="", promocode=promocode,
            promotype="", promovalue="", orderdata="[]", amount=f"{amount:.2f}", paymentmethod=method,
            invoiceid=str(invoiceid), status=status, ipaddress=ip, fraudmodule="", fraudoutput="", notes=notes,
            paymentmethodname=_GATEWAY_NAMES.get(method, method),
            paymentstatus=invoices.get(invoiceid, "") if invoiceid else "", name=clients.get(userid, ""),
            currencyprefix=prefix, currencysuffix=suffix, frauddata="", validationdata="",
            lineitems=collection(ctx, "lineitems", "lineitem", lines.get(oid, []))["lineitems"],
        )
        for oid, ordernum, userid, date, amount, method, invoiceid, status, ip, notes, promocode in orders
    ]


def get_orders(ctx: Context, params: Params) -> dict:
    """Newest first. Cost per page: the page's rows and three batched look-ups (no N+1); the COUNT and where
    the page starts come from the read cache while the data stay the same."""
    start, num = paging(params)
    where, args = [], []
    for key, column in (("id", "id"), ("userid", "userid"), ("requestor_id", "userid")):
        if text(params, key):
            where.append(f"t.{column} = ?")
            args.append(integer(params, key) if integer(params, key) is not None else -1)
    if status := text(params, "status"):
        where.append("t.status = ?")
        args.append(status)
    total = _count(ctx, "orders", where, args)
    items = _order_views(ctx, _page_rows(ctx, "orders", _ORDER_COLUMNS, where, args, start, num, descending=True))
    return {**page(total, start, items), **collection(ctx, "orders", "order", items)}


def delete_order(ctx: Context, params: Params) -> dict:
    """Remove a Cancelled or Fraud order and everything that came with it (services, invoice)."""
    order = _order_row(ctx.db, integer(params, "orderid"))
    if order is None:
        raise ActionError("Order ID not found")
    if order["status"] not in ("Cancelled", "Fraud"):
        raise ActionError("The order status must be in Cancelled or Fraud to be deleted")
    ctx.db.execute("DELETE FROM services WHERE orderid = ?", (order["id"],))
    if order["invoiceid"]:
        ctx.db.execute("DELETE FROM invoices WHERE id = ?", (order["invoiceid"],))
    ctx.db.execute("DELETE FROM orders WHERE id = ?", (order["id"],))
    return {}


# ---------------------------------------------------------------------- services


_SERVICE_COLUMNS = ("t.id, t.qty, t.clientid, t.orderid, t.pid, t.regdate, t.domain, t.dedicatedip, t.suspensionreason, "
                    "t.firstpaymentamount, t.recurringamount, t.paymentmethod, t.billingcycle, t.nextduedate, t.status, "
                    "t.username, t.notes")
_NO_CUSTOMFIELDS: dict = {"customfield": []}  # shared by every view: views are encoded, never changed
_NO_CONFIGOPTIONS: dict = {"configoption": []}
# ServiceView, one ``products.product`` entry of GetClientsProducts: the keys in WHMCS's order, (key, value)
# for those every service shows the same.
_SERVICE_KEYS: tuple = (
    "id", "qty", "clientid", "orderid", "ordernumber", "pid", "regdate", "name", "translated_name", "groupname",
    "translated_groupname", "domain", "dedicatedip", ("serverid", "0"), ("servername", ""), ("serverip", None),
    ("serverhostname", None), "suspensionreason", "firstpaymentamount", "recurringamount", "paymentmethod",
    "paymentmethodname", "billingcycle", "nextduedate", "status", "username", ("password", ""),
    ("subscriptionid", ""), ("promoid", "0"), ("overideautosuspend", "0"), ("overidesuspenduntil", UNSET_DATE),
    ("ns1", ""), ("ns2", ""), ("assignedips", ""), "notes", ("diskusage", "0"), ("disklimit", "0"), ("bwusage", "0"),
    ("bwlimit", "0"), ("lastupdate", f"{UNSET_DATE} 00:00:00"),
    ("customfields", msgspec.field(default_factory=lambda: _NO_CUSTOMFIELDS)),
    ("configoptions", msgspec.field(default_factory=lambda: _NO_CONFIGOPTIONS)),
)
ServiceView = msgspec.defstruct("ServiceView", [k if isinstance(k, str) else (k[0], Any, k[1]) for k in _SERVICE_KEYS],
                                kw_only=True, module=__name__)


def _service_views(ctx: Context, rows: list[tuple]) -> list[Any]:
    """GetClientsProducts entries for a page of services (rows of ``_SERVICE_COLUMNS``): their products and
    order numbers looked up once per page, not joined before the page is cut."""
    products = {pid: (name, group) for pid, name, group in _in_chunks(
        ctx.db, "SELECT pid, name, groupname FROM products WHERE pid IN ({ids})", sorted({r[4] for r in rows}))}
    ordernums = dict(_in_chunks(
        ctx.db, "SELECT id, ordernum FROM orders WHERE id IN ({ids})", sorted({r[3] for r in rows})))
    views = []
    for (sid, qty, clientid, orderid, pid, regdate, domain, dedicatedip, suspensionreason, first, recurring, method,
         billingcycle, nextduedate, status, username, notes) in rows:
        name, group = products.get(pid, ("", ""))
        views.append(ServiceView(
            id=str(sid), qty=str(qty), clientid=str(clientid), orderid=str(orderid),
            ordernumber=ordernums.get(orderid, ""), pid=str(pid), regdate=regdate, name=name, translated_name=name,
            groupname=group, translated_groupname=group, domain=domain, dedicatedip=dedicatedip,
            suspensionreason=suspensionreason, firstpaymentamount=f"{first:.2f}", recurringamount=f"{recurring:.2f}",
            paymentmethod=method, paymentmethodname=_GATEWAY_NAMES.get(method, method), billingcycle=billingcycle,
            nextduedate=nextduedate, status=status, username=username, notes=notes,
        ))
    return views


def get_clients_products(ctx: Context, params: Params) -> dict:
    start, num = paging(params)
    where, args = [], []
    for key, column in (("clientid", "t.clientid"), ("serviceid", "t.id"), ("pid", "t.pid")):
        if text(params, key):
            where.append(f"{column} = ?")
            args.append(integer(params, key) if integer(params, key) is not None else -1)
    if text(params, "domain"):
        where.append("t.domain = ?")
        args.append(text(params, "domain"))
    if text(params, "username2"):
        where.append("t.username = ?")
        args.append(text(params, "username2"))
    # Count and page on the services table alone (indexed filters), then look up only the page's products and
    # orders: at 700,000 services a join in the COUNT or before the OFFSET costs ~100 ms a page.
    total = _count(ctx, "services", where, args)
    items = _service_views(ctx, _page_rows(ctx, "services", _SERVICE_COLUMNS, where, args, start, num,
                                           descending=False))
    echo = {k: (text(params, k) or None) for k in ("clientid", "serviceid", "pid", "domain")}
    return {**echo, **page(total, start, items), **collection(ctx, "products", "product", items)}


def _service_for_module(ctx: Context, params: Params) -> sqlite3.Row:
    raw = text(params, "serviceid") or text(params, "accountid")
    if not raw:
        raise ActionError("Service ID is required")
    try:
        service = ctx.db.execute(
            "SELECT s.*, p.module FROM services s JOIN products p ON p.pid = s.pid WHERE s.id = ?", (int(raw),)
        ).fetchone()
    except ValueError:
        service = None
    if service is None:
        raise ActionError("Service ID not found")
    if not service["module"]:
        raise ActionError("Service not assigned to a module")
    return service


def module_create(ctx: Context, params: Params) -> dict:
    service = _service_for_module(ctx, params)
    if service["status"] in ("Active", "Suspended"):
        raise ActionError("Module Create Failed: an account already exists for this service")
    _run_module_create(ctx, service)
    return {}


def module_suspend(ctx: Context, params: Params) -> dict:
    service = _service_for_module(ctx, params)
    if service["status"] != "Active":
        raise ActionError(f"Module Suspend Failed: service is {service['status']}, not Active")
    ctx.db.execute(
        "UPDATE services SET status = 'Suspended', suspensionreason = ? WHERE id = ?",
        (text(params, "suspendreason"), service["id"]),
    )
    return {}


def module_terminate(ctx: Context, params: Params) -> dict:
    service = _service_for_module(ctx, params)
    if service["status"] in ("Terminated", "Cancelled", "Fraud"):
        raise ActionError(f"Module Terminate Failed: service is already {service['status']}")
    ctx.db.execute(
        "UPDATE services SET status = 'Terminated', terminationdate = ? WHERE id = ?", (today(), service["id"])
    )
    return {}


_UPDATABLE_SERVICE_FIELDS = ("domain", "notes", "regdate", "nextduedate", "terminationdate", "dedicatedip",
                             "suspensionreason", "paymentmethod")


def update_client_product(ctx: Context, params: Params) -> dict:
    serviceid = integer(params, "serviceid")
    service = ctx.db.execute("SELECT * FROM services WHERE id = ?", (serviceid,)).fetchone() if serviceid else None
    if service is None:
        raise ActionError("Service ID Not Found")
    updates: dict[str, Any] = {}
    for key in _UPDATABLE_SERVICE_FIELDS:
        if key in params and isinstance(params[key], str):
            updates[key] = params[key]
    if "suspendreason" in params:
        updates["suspensionreason"] = text(params, "suspendreason")
    if "serviceusername" in params:
        updates["username"] = text(params, "serviceusername")
    if status := text(params, "status"):
        if status not in SERVICE_STATUSES:
            raise ActionError(f"Invalid status {status}")
        updates["status"] = status  # setting the status does not run module commands
    for key in ("firstpaymentamount", "recurringamount"):
        if text(params, key):
            try:
                updates[key] = float(text(params, key))
            except ValueError:
                pass
    if cycle := text(params, "billingcycle"):
        key = cycle.lower().replace("-", "").replace(" ", "")
        updates["billingcycle"] = BILLING_CYCLES.get(key, cycle)
    for key in (array(params, "unset") or {}).values():
        if key in ("domain", "notes", "dedicatedip", "suspendreason"):
            updates["suspensionreason" if key == "suspendreason" else key] = ""
    if updates:
        assignments = ", ".join(f"{k} = ?" for k in updates)
        ctx.db.execute(f"UPDATE services SET {assignments} WHERE id = ?", [*updates.values(), serviceid])  # noqa: S608
    return {"serviceid": str(serviceid)}


# ---------------------------------------------------------------------- catalogue


def get_products(ctx: Context, params: Params) -> dict:
    where, args = [], []
    if pids := text(params, "pid"):
        wanted = [int(p) for p in pids.split(",") if p.strip().isdigit()]
        where.append(f"pid IN ({','.join('?' * len(wanted))})" if wanted else "0")
        args += wanted
    if text(params, "gid"):
        where.append("gid = ?")
        args.append(integer(params, "gid"))
    if module := text(params, "module"):
        where.append("module = ?")
        args.append(module)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    items = []
    for p in ctx.db.execute(f"SELECT * FROM products {clause} ORDER BY gid, pid", args):  # noqa: S608
        price = money(p["price"])
        pricing = {
            "prefix": CURRENCY["prefix"],
            "suffix": CURRENCY["suffix"],
            **{f"{c[0]}setupfee": "0.00" for c in ("m", "q", "s", "a", "b", "t")},
            "monthly": price,  # one-time prices live in the monthly column, as in WHMCS
            # Only the monthly cycle is offered; "-1.00" marks a disabled cycle.
            **{c: "-1.00" for c in ("quarterly", "semiannually", "annually", "biennially", "triennially")},
        }
        items.append(
            {
                "pid": str(p["pid"]),
                "gid": str(p["gid"]),
                "type": p["type"],
                "name": p["name"],
                "slug": p["slug"],
                "product-url": f"https://whmcs.sandbox.invalid/store/{p['groupname'].lower()}/{p['slug']}",
                "description": "",
                "module": p["module"],
                "paytype": p["paytype"],
                "allowqty": "1",
                "quantity_available": 0,
                "pricing": {CURRENCY["code"]: pricing},
                "customfields": {"customfield": []},
                "configoptions": {"configoption": []},
            }
        )
    return {"totalresults": len(items), **collection(ctx, "products", "product", items)}


# ---------------------------------------------------------------------- registry

ACTIONS: dict[str, Callable[[Context, Params], dict]] = {
    "addclient": add_client,
    "getclients": get_clients,
    "getclientsdetails": get_clients_details,
    "getpaymethods": get_pay_methods,
    "getpaymentmethods": get_payment_methods,
    "addorder": add_order,
    "acceptorder": accept_order,
    "getorders": get_orders,
    "getclientsproducts": get_clients_products,
    "cancelorder": cancel_order,
    "pendingorder": pending_order,
    "fraudorder": fraud_order,
    "deleteorder": delete_order,
    "addpaymethod": add_pay_method,
    "modulecreate": module_create,
    "modulesuspend": module_suspend,
    "moduleterminate": module_terminate,
    "updateclientproduct": update_client_product,
    "getproducts": get_products,
}
READ_ONLY = frozenset(
    {"getclients", "getclientsdetails", "getpaymethods", "getpaymentmethods", "getorders", "getclientsproducts",
     "getproducts"}
)
MODULE_ACTIONS = frozenset({"acceptorder", "modulecreate"})
