"""The WHMCS emulator's persistent state: one SQLite file, ``<data_dir>/whmcs.db``.

Every request opens the database afresh (WAL mode), so a seed script in another process and a
restarted sandbox see the same data. Credentials are generated once and stored in the database,
so ``endpoints.json`` stays valid across restarts.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import hashlib
import json
import re
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from orderflow_sandbox.catalogue import CATALOGUE, CatalogueProduct

DB_FILE = "whmcs.db"

# Every action the emulator implements, in WHMCS's spelling.
ALL_ACTIONS: tuple[str, ...] = (
    "AddClient",
    "GetClients",
    "GetClientsDetails",
    "GetPayMethods",
    "GetPaymentMethods",
    "AddOrder",
    "AcceptOrder",
    "GetOrders",
    "GetClientsProducts",
    "CancelOrder",
    "PendingOrder",
    "FraudOrder",
    "DeleteOrder",
    "AddPayMethod",
    "ModuleCreate",
    "ModuleSuspend",
    "ModuleTerminate",
    "UpdateClientProduct",
    "GetProducts",
)

# What the provisioning pipeline's API role may call: nothing more (least privilege).
PIPELINE_ACTIONS: tuple[str, ...] = (
    "GetClientsDetails",
    "GetPayMethods",
    "AddOrder",
    "AcceptOrder",
    "GetOrders",
    "GetClientsProducts",
    "GetProducts",
    "GetClients",
    "PendingOrder",
)

# Payment gateways (GetPaymentMethods); AddOrder's ``paymentmethod`` must be one of these.
GATEWAYS: tuple[tuple[str, str], ...] = (
    ("banktransfer", "Bank Transfer"),
    ("mailin", "Mail In Payment"),
    ("paypal", "PayPal"),
    ("stripe", "Credit Card (Stripe)"),
)

GROUP_IDS = {"Internet": 1, "VPN": 2, "SIM": 3, "Other": 4}
DEFAULT_ALLOWED_IPS = ("127.0.0.1", "::1")
DEFAULT_MODULE_ERROR = "Remote provisioning API returned an error: line activation rejected"
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_roles (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, permissions TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_credentials (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, identifier TEXT UNIQUE NOT NULL,
    secret TEXT NOT NULL, role_id INTEGER NOT NULL REFERENCES api_roles(id));
CREATE TABLE IF NOT EXISTS admins (
    id INTEGER PRIMARY KEY, username TEXT UNIQUE NOT NULL, password_md5 TEXT NOT NULL,
    role_id INTEGER NOT NULL REFERENCES api_roles(id));
CREATE TABLE IF NOT EXISTS products (
    pid INTEGER PRIMARY KEY, gid INTEGER NOT NULL, groupname TEXT NOT NULL, name TEXT NOT NULL,
    slug TEXT NOT NULL, type TEXT NOT NULL DEFAULT 'other', module TEXT NOT NULL DEFAULT '',
    paytype TEXT NOT NULL, price REAL NOT NULL, sku TEXT NOT NULL DEFAULT '',
    module_error TEXT);
CREATE TABLE IF NOT EXISTS clients (
    id INTEGER PRIMARY KEY, uuid TEXT NOT NULL, firstname TEXT NOT NULL, lastname TEXT NOT NULL,
    companyname TEXT NOT NULL DEFAULT '', email TEXT NOT NULL, address1 TEXT NOT NULL DEFAULT '',
    address2 TEXT NOT NULL DEFAULT '', city TEXT NOT NULL DEFAULT '', state TEXT NOT NULL DEFAULT '',
    postcode TEXT NOT NULL DEFAULT '', country TEXT NOT NULL DEFAULT 'JP',
    phonenumber TEXT NOT NULL DEFAULT '', notes TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'Active', groupid INTEGER NOT NULL DEFAULT 0,
    defaultgateway TEXT NOT NULL DEFAULT '', datecreated TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS clients_email ON clients(lower(email));
CREATE TABLE IF NOT EXISTS paymethods (
    id INTEGER PRIMARY KEY, clientid INTEGER NOT NULL REFERENCES clients(id), type TEXT NOT NULL,
    description TEXT NOT NULL, gateway_name TEXT NOT NULL, card_last_four TEXT NOT NULL DEFAULT '',
    expiry_date TEXT NOT NULL DEFAULT '', card_type TEXT NOT NULL DEFAULT '',
    bank_name TEXT NOT NULL DEFAULT '', last_updated TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS paymethods_client ON paymethods(clientid);
CREATE TABLE IF NOT EXISTS invoices (
    id INTEGER PRIMARY KEY, userid INTEGER NOT NULL, date TEXT NOT NULL, duedate TEXT NOT NULL,
    total REAL NOT NULL, status TEXT NOT NULL, paymentmethod TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY, ordernum TEXT NOT NULL, userid INTEGER NOT NULL, date TEXT NOT NULL,
    amount REAL NOT NULL, paymentmethod TEXT NOT NULL, invoiceid INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL, ipaddress TEXT NOT NULL DEFAULT '', notes TEXT NOT NULL DEFAULT '',
    promocode TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS orders_user ON orders(userid);
CREATE INDEX IF NOT EXISTS orders_status ON orders(status);
CREATE TABLE IF NOT EXISTS services (
    id INTEGER PRIMARY KEY, orderid INTEGER NOT NULL, clientid INTEGER NOT NULL, pid INTEGER NOT NULL,
    position INTEGER NOT NULL, qty INTEGER NOT NULL DEFAULT 1, regdate TEXT NOT NULL,
    domain TEXT NOT NULL DEFAULT '', paymentmethod TEXT NOT NULL, firstpaymentamount REAL NOT NULL,
    recurringamount REAL NOT NULL, billingcycle TEXT NOT NULL, nextduedate TEXT NOT NULL,
    terminationdate TEXT NOT NULL DEFAULT '0000-00-00', status TEXT NOT NULL,
    suspensionreason TEXT NOT NULL DEFAULT '', username TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '', dedicatedip TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS services_order ON services(orderid);
CREATE INDEX IF NOT EXISTS services_client ON services(clientid);
"""


def read_admin_credentials(data_dir: str | Path) -> dict[str, str]:
    """The full-access API credential of a (running) emulator, read from its data file without writing.

    ``endpoints.json`` carries only the pipeline's least-privilege credential; tools that act as a
    WHMCS administrator (the drift injector) use this one, as an admin would use their own.
    """
    path = Path(data_dir) / DB_FILE
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute("SELECT identifier, secret FROM api_credentials WHERE name = 'admin'").fetchone()
    finally:
        db.close()
    if row is None:
        raise FileNotFoundError(f"no WHMCS emulator credentials in {path}")
    return {"identifier": row[0], "secret": row[1]}


def today() -> str:
    return dt.date.today().isoformat()


def now() -> str:
    return dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


class ReadCache:
    """What paged reads derive from the data (a COUNT, the id a page ends on), kept until the data change.

    Why: ``limitstart`` is an offset, so every page pays a COUNT and an OFFSET scan that grow with
    the table, and a full read grows with its square (300k orders: minutes, on the two cores the
    pipeline also uses). Answers stay what the plain queries give: ``PRAGMA data_version`` on a
    connection of its own changes whenever any other connection, of this process or another (a seed
    script), commits, and then everything here is dropped (a request racing a commit is answered as
    of just before it, as a slower server would have).
    """

    MAX_KEYS = 256  # distinct queries remembered per data version (filters vary per client)

    def __init__(self, db_path: Path) -> None:
        self._path = db_path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._version: int | None = None
        self._values: dict[Hashable, Any] = {}
        self._ends: dict[Hashable, tuple[list[int], dict[int, Any]]] = {}

    def _current(self) -> int:
        """The data version (call under the lock); a new one drops what was kept."""
        if self._db is None:
            self._db = sqlite3.connect(self._path, timeout=30, isolation_level=None, check_same_thread=False)
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:
            self._version = version
            self._values.clear()
            self._ends.clear()
        return version

    def value(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, or what it returned before on the same data."""
        with self._lock:
            version = self._current()
            if key in self._values:
                return self._values[key]
        value = compute()
        with self._lock:
            if self._current() == version and len(self._values) < self.MAX_KEYS:
                self._values[key] = value
        return value

    def page_start(self, key: Hashable, offset: int) -> tuple[int, tuple[int, Any] | None]:
        """The data version, and ``(k, last)``: the nearest offset ``k <= offset`` a page of ``key`` ended
        at with the id ``last`` (None when no page has)."""
        with self._lock:
            version = self._current()
            offsets, ids = self._ends.get(key, ([], {}))
            i = bisect.bisect_right(offsets, offset)
            return version, (None if i == 0 else (offsets[i - 1], ids[offsets[i - 1]]))

    def page_end(self, key: Hashable, version: int, offset: int, last: Any) -> None:
        """The rows of ``key`` before ``offset`` end with id ``last``, read on data ``version``."""
        with self._lock:
            if self._current() != version or (key not in self._ends and len(self._ends) >= self.MAX_KEYS):
                return
            offsets, ids = self._ends.setdefault(key, ([], {}))
            if offset not in ids:
                bisect.insort(offsets, offset)
            ids[offset] = last

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class WhmcsState:
    """The emulated WHMCS installation: billing data, API credentials and settings."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.data_dir / DB_FILE
        self._write_lock = threading.RLock()
        self.reads = ReadCache(self.db_path)
        with self._write_lock, self.read() as db:
            db.executescript(_SCHEMA)
        self._seed_credentials()
        self.seed_catalogue()

    # ------------------------------------------------------------------ database

    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=30000")
        return db

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        db = self.connect()
        try:
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``): all of an action's changes, or none."""
        with self._write_lock:
            db = self.connect()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            finally:
                db.close()

    def close(self) -> None:
        """Requests hold nothing open between them; only the read cache's version watch is closed."""
        self.reads.close()

    # ------------------------------------------------------------------ settings

    def get_config(self, key: str, default: object = None) -> object:
        """A setting (every request reads two): from the read cache while nothing was committed."""
        def stored() -> str | None:
            with self.read() as db:
                row = db.execute("SELECT value FROM config WHERE key = ?", (key,)).fetchone()
            return None if row is None else row["value"]

        raw = self.reads.value(("config", key), stored)
        return default if raw is None else json.loads(raw)

    def set_config(self, key: str, value: object) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO config(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    def allowed_ips(self) -> list[str]:
        return list(self.get_config("api_allowed_ips", list(DEFAULT_ALLOWED_IPS)))  # type: ignore[arg-type]

    def set_allowed_ips(self, ips: Iterable[str]) -> None:
        """WHMCS's "API IP Access Restriction" list: single addresses, no CIDR ranges."""
        self.set_config("api_allowed_ips", [str(ip).strip() for ip in ips if str(ip).strip()])

    def empty_lists_as_string(self) -> bool:
        """Real WHMCS answers ``""`` for an empty collection; switchable to catch client bugs."""
        return bool(self.get_config("empty_lists_as_string", True))

    def settings(self) -> dict:
        return {"api_allowed_ips": self.allowed_ips(), "empty_lists_as_string": self.empty_lists_as_string()}

    def update_settings(self, values: dict) -> dict:
        unknown = set(values) - {"api_allowed_ips", "empty_lists_as_string"}
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        if "api_allowed_ips" in values:
            self.set_allowed_ips(values["api_allowed_ips"])
        if "empty_lists_as_string" in values:
            self.set_config("empty_lists_as_string", bool(values["empty_lists_as_string"]))
        return self.settings()

    # ------------------------------------------------------------------ credentials

    def _seed_credentials(self) -> None:
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM api_credentials").fetchone():
                return
            roles = {"orderflow-pipeline": PIPELINE_ACTIONS, "full-access": ALL_ACTIONS}
            for name, actions in roles.items():
                perms = {a.lower(): 1 for a in actions}
                db.execute("INSERT INTO api_roles(name, permissions) VALUES (?, ?)", (name, json.dumps(perms)))
            role_id = {r["name"]: r["id"] for r in db.execute("SELECT id, name FROM api_roles")}
            # A full-access role also lets unknown actions through to "Command Not Found".
            db.execute(
                "UPDATE api_roles SET permissions = ? WHERE name = 'full-access'", (json.dumps({"*": 1}),)
            )
            for name, role in (("pipeline", "orderflow-pipeline"), ("admin", "full-access")):
                db.execute(
                    "INSERT INTO api_credentials(name, identifier, secret, role_id) VALUES (?, ?, ?, ?)",
                    (name, secrets.token_urlsafe(24), secrets.token_urlsafe(32), role_id[role]),
                )
            admin_password = secrets.token_urlsafe(16)
            db.execute(
                "INSERT INTO config(key, value) VALUES ('api_access_key', ?)",
                (json.dumps(secrets.token_urlsafe(24).replace("-", "!").replace("_", "@")),),
            )
            db.execute(
                "INSERT INTO config(key, value) VALUES ('legacy_admin_password', ?)", (json.dumps(admin_password),)
            )
            db.execute(
                "INSERT INTO admins(username, password_md5, role_id) VALUES ('sandboxadmin', ?, ?)",
                (hashlib.md5(admin_password.encode()).hexdigest(), role_id["full-access"]),
            )

    def access_key(self) -> str:
        return str(self.get_config("api_access_key"))

    def _credential(self, name: str) -> dict[str, str]:
        with self.read() as db:
            row = db.execute("SELECT identifier, secret FROM api_credentials WHERE name = ?", (name,)).fetchone()
        return {"identifier": row["identifier"], "secret": row["secret"], "accesskey": self.access_key()}

    def credentials(self) -> dict[str, str]:
        """The pipeline's API credential (its role allows exactly :data:`PIPELINE_ACTIONS`)."""
        return self._credential("pipeline")

    def admin_credentials(self) -> dict[str, str]:
        """A credential whose role allows every action (tests of the non-pipeline actions)."""
        return self._credential("admin")

    def legacy_admin_login(self) -> dict[str, str]:
        """The admin username and plain password (the API wants ``password`` as its MD5 hex)."""
        return {"username": "sandboxadmin", "password": str(self.get_config("legacy_admin_password"))}

    def authenticate(self, identifier: str, secret: str) -> set[str] | None:
        """Return the lower-cased actions the credential may call (``*`` = all), or None.

        Accepts an API credential (identifier + secret) or the legacy admin login
        (username + MD5 hex of the password).
        """
        if not identifier or not secret:
            return None
        with self.read() as db:
            row = db.execute(
                "SELECT c.secret, r.permissions FROM api_credentials c JOIN api_roles r ON r.id = c.role_id "
                "WHERE c.identifier = ?",
                (identifier,),
            ).fetchone()
            if row is not None:
                ok = secrets.compare_digest(row["secret"].encode(), secret.encode())
                return set(json.loads(row["permissions"])) if ok else None
            admin = db.execute(
                "SELECT a.password_md5, r.permissions FROM admins a JOIN api_roles r ON r.id = a.role_id "
                "WHERE a.username = ?",
                (identifier,),
            ).fetchone()
        if admin is not None and secrets.compare_digest(admin["password_md5"].encode(), secret.lower().encode()):
            return set(json.loads(admin["permissions"]))
        return None

    # ------------------------------------------------------------------ seeding

    def seed_catalogue(self, products: Iterable[CatalogueProduct] = CATALOGUE) -> None:
        """Load (or refresh) the product catalogue; idempotent, keeps module-error settings."""
        with self.transaction() as db:
            for p in products:
                paytype = "onetime" if p.billing_cycle.lower() == "onetime" else "recurring"
                slug = re.sub(r"[^a-z0-9]+", "-", p.name.lower()).strip("-")
                db.execute(
                    "INSERT INTO products(pid, gid, groupname, name, slug, module, paytype, price, sku) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(pid) DO UPDATE SET gid = excluded.gid, "
                    "groupname = excluded.groupname, name = excluded.name, slug = excluded.slug, "
                    "module = excluded.module, paytype = excluded.paytype, price = excluded.price, sku = excluded.sku",
                    (
                        p.whmcs_pid,
                        GROUP_IDS.get(p.whmcs_group, GROUP_IDS["Other"]),
                        p.whmcs_group,
                        p.name,
                        slug,
                        p.module,
                        paytype,
                        float(p.price),
                        p.sku,
                    ),
                )

    def create_client(
        self,
        firstname: str,
        lastname: str,
        email: str,
        companyname: str = "",
        with_paymethod: bool = True,
    ) -> int:
        """Create a client (Active, JPY, bank transfer) and optionally a pay method; return its id."""
        with self.transaction() as db:
            clientid = self.insert_client(
                db,
                {
                    "firstname": firstname,
                    "lastname": lastname,
                    "email": email,
                    "companyname": companyname,
                    "address1": "1-2-3 Shibuya",
                    "city": "Shibuya-ku",
                    "state": "Tokyo",
                    "postcode": "150-0002",
                    "country": "JP",
                    "phonenumber": "+81.312345678",
                },
            )
            if with_paymethod:
                self.insert_paymethod(db, clientid)
        return clientid

    def add_paymethod(self, clientid: int) -> int:
        """Give a client a bank-account pay method; return the pay method id."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM clients WHERE id = ?", (clientid,)).fetchone() is None:
                raise ValueError(f"no WHMCS client {clientid}")
            return self.insert_paymethod(db, clientid)

    def set_client_status(self, clientid: int, status: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE clients SET status = ? WHERE id = ?", (status, clientid))

    def set_module_error(self, pid: int, message: str | None = DEFAULT_MODULE_ERROR) -> None:
        """Make product ``pid``'s provisioning module fail (None = succeed again)."""
        with self.transaction() as db:
            if db.execute("UPDATE products SET module_error = ? WHERE pid = ?", (message, pid)).rowcount != 1:
                raise ValueError(f"no WHMCS product {pid}")

    @staticmethod
    def insert_client(db: sqlite3.Connection, fields: dict[str, str]) -> int:
        cur = db.execute(
            "INSERT INTO clients(uuid, firstname, lastname, companyname, email, address1, address2, city, state, "
            "postcode, country, phonenumber, notes, groupid, defaultgateway, datecreated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(uuid.uuid4()),
                fields.get("firstname", ""),
                fields.get("lastname", ""),
                fields.get("companyname", ""),
                fields.get("email", ""),
                fields.get("address1", ""),
                fields.get("address2", ""),
                fields.get("city", ""),
                fields.get("state", ""),
                fields.get("postcode", ""),
                fields.get("country", "JP").upper(),
                fields.get("phonenumber", ""),
                fields.get("notes", ""),
                int(fields.get("groupid") or 0),
                "banktransfer",
                today(),
            ),
        )
        return int(cur.lastrowid)  # type: ignore[arg-type]

    @staticmethod
    def insert_paymethod(db: sqlite3.Connection, clientid: int) -> int:
        last4 = f"{(clientid * 7919) % 10000:04d}"
        cur = db.execute(
            "INSERT INTO paymethods(clientid, type, description, gateway_name, bank_name, last_updated) "
            "VALUES (?, 'BankAccount', ?, 'banktransfer', 'Sandbox Bank', ?)",
            (clientid, f"Bank account ending {last4}", now()),
        )
        return int(cur.lastrowid)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ admin view

    def dump(self) -> dict:
        """Everything but credentials, for ``GET /__sandbox/state``."""
        out: dict = {"settings": self.settings()}
        with self.read() as db:
            for table in ("products", "clients", "paymethods", "orders", "services", "invoices"):
                out[table] = [dict(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY 1")]  # noqa: S608
        return out

    def counts(self) -> dict[str, int]:
        with self.read() as db:
            return {
                t: int(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])  # noqa: S608
                for t in ("clients", "orders", "services", "invoices")
            }
