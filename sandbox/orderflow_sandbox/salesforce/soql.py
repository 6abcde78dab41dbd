"""The SOQL subset the sandbox org understands: a tokenizer, a parser and an evaluator.

Supported: field lists, parent relationship paths (``Account.WH_Account__c``), one level of child
subquery (``(SELECT ... FROM OrderItems)``), WHERE with ``= != <> < <= > >= IN NOT IN LIKE AND OR NOT``
and parentheses, NULL, TRUE/FALSE, string/number/date/datetime literals, TODAY, YESTERDAY,
``LAST_N_DAYS:n``, ``N_DAYS_AGO:n``, ORDER BY (ASC/DESC, NULLS FIRST/LAST), LIMIT, OFFSET and
``COUNT()``. Errors carry Salesforce's codes (MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE,
INVALID_QUERY_FILTER_OPERATOR) and message shapes, so client error handling is exercised for real.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from orderflow_sandbox.salesforce.ids import normalize_id
from orderflow_sandbox.salesforce.schema import Field, SObject


class SoqlError(Exception):
    """A query Salesforce would refuse: ``error_code`` plus the message it would send."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


# --------------------------------------------------------------------------- tokens

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\dT])
  | (?P<number>[+-]?\d+(?:\.\d+)?)(?![\w])
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),:])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.X,
)

KEYWORDS = {
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "NULL", "TRUE", "FALSE", "ORDER", "BY",
    "ASC", "DESC", "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "COUNT", "GROUP", "HAVING", "INCLUDES",
    "EXCLUDES", "TYPEOF", "FOR", "USING", "WITH",
}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\", "_": "\\_", "%": "\\%"}


@dataclass(frozen=True)
class Token:
    kind: str  # ident | keyword | string | number | date | datetime | op | punct | eof
    value: str
    pos: int


def _unescape(raw: str, soql: str, pos: int) -> str:
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\":
            nxt = raw[i + 1] if i + 1 < len(raw) else ""
            if nxt not in _ESCAPES:
                raise _malformed(soql, pos, f"Invalid string literal '{raw}'. Illegal character sequence '\\{nxt}' in string literal.")
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def tokenize(soql: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(soql):
        m = _TOKEN_RE.match(soql, pos)
        if not m:
            bad = soql[pos:].split()[0] if soql[pos:].split() else soql[pos]
            raise _malformed(soql, pos, f"unexpected token: '{bad}'")
        kind = m.lastgroup or ""
        text = m.group(kind)
        if kind == "ident" and text.upper() in KEYWORDS:
            tokens.append(Token("keyword", text.upper(), pos))
        elif kind == "string":
            tokens.append(Token("string", _unescape(text[1:-1], soql, pos), pos))
        elif kind != "ws":
            tokens.append(Token(kind, text, pos))
        pos = m.end()
    tokens.append(Token("eof", "", len(soql)))
    return tokens


def _malformed(soql: str, pos: int, detail: str) -> SoqlError:
    before = soql[:pos]
    row = before.count("\n") + 1
    col = pos - (before.rfind("\n") + 1) + 1
    return SoqlError("MALFORMED_QUERY", f"\n{soql}\n{' ' * max(col - 1, 0)}^\nERROR at Row:{row}:Column:{col}\n{detail}")


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class DateRange:
    """A relative date literal such as LAST_N_DAYS:7, resolved to [start, end] at evaluation time."""

    name: str
    n: int | None = None


@dataclass
class Literal:
    kind: str  # string | number | boolean | null | date | datetime | range
    value: Any


@dataclass
class Compare:
    path: tuple[str, ...]
    op: str
    value: Literal


@dataclass
class InList:
    path: tuple[str, ...]
    values: list[Literal]
    negate: bool = False


@dataclass
class Like:
    path: tuple[str, ...]
    pattern: str


@dataclass
class BoolOp:
    op: str  # AND | OR
    items: list[Any]


@dataclass
class Not:
    item: Any


@dataclass
class OrderItem:
    path: tuple[str, ...]
    descending: bool = False
    nulls_last: bool | None = None


@dataclass
class Query:
    sobject: str
    fields: list[tuple[str, ...]] = field(default_factory=list)
    subqueries: list[Query] = field(default_factory=list)
    select_order: list[Any] = field(default_factory=list)  # paths and Query objects in SELECT order
    count: bool = False
    where: Any = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
    text: str = ""


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, soql: str) -> None:
        self.soql = soql
        self.tokens = tokenize(soql)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, tok: Token | None = None) -> SoqlError:
        tok = tok or self.tok
        if tok.kind == "eof":
            return _malformed(self.soql, tok.pos, "unexpected token: '<EOF>'")
        shown = f"'{tok.value}'" if tok.kind != "string" else f"'{tok.value}'"
        return _malformed(self.soql, tok.pos, f"unexpected token: {shown}")

    def take(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "keyword" and self.tok.value in words

    def expect_kw(self, word: str) -> None:
        if not self.is_kw(word):
            raise self.error()
        self.i += 1

    def expect_punct(self, ch: str) -> None:
        if not (self.tok.kind == "punct" and self.tok.value == ch):
            raise self.error()
        self.i += 1

    def path(self) -> tuple[str, ...]:
        if self.tok.kind != "ident":
            raise self.error()
        return tuple(self.take().value.split("."))

    def parse(self) -> Query:
        q = self.query(top=True)
        if self.tok.kind != "eof":
            raise self.error()
        q.text = self.soql
        return q

    def query(self, top: bool) -> Query:
        self.expect_kw("SELECT")
        fields: list[tuple[str, ...]] = []
        subs: list[Query] = []
        order: list[Any] = []
        count = False
        while True:
            if self.is_kw("COUNT"):
                self.take()
                self.expect_punct("(")
                self.expect_punct(")")
                count = True
            elif self.tok.kind == "punct" and self.tok.value == "(":
                if not top:
                    raise self.error()
                self.take()
                sub = self.query(top=False)
                self.expect_punct(")")
                subs.append(sub)
                order.append(sub)
            else:
                p = self.path()
                fields.append(p)
                order.append(p)
            if self.tok.kind == "punct" and self.tok.value == ",":
                self.take()
                continue
            break
        if count and (fields or subs):
            raise SoqlError("MALFORMED_QUERY", "COUNT() must be the only element in the SELECT list.")
        self.expect_kw("FROM")
        if self.tok.kind == "keyword" and self.tok.value == "ORDER":  # the Order object, not ORDER BY
            sobject = self.soql[self.tok.pos:self.tok.pos + 5]
            self.take()
        elif self.tok.kind == "ident":
            sobject = self.take().value
        else:
            raise self.error()
        q = Query(sobject, fields, subs, order, count)
        if self.is_kw("WHERE"):
            self.take()
            q.where = self.condition()
        if self.is_kw("ORDER"):
            self.take()
            self.expect_kw("BY")
            while True:
                item = OrderItem(self.path())
                if self.is_kw("ASC", "DESC"):
                    item.descending = self.take().value == "DESC"
                if self.is_kw("NULLS"):
                    self.take()
                    if not self.is_kw("FIRST", "LAST"):
                        raise self.error()
                    item.nulls_last = self.take().value == "LAST"
                q.order_by.append(item)
                if self.tok.kind == "punct" and self.tok.value == ",":
                    self.take()
                    continue
                break
        if self.is_kw("LIMIT"):
            self.take()
            q.limit = self.integer()
        if self.is_kw("OFFSET"):
            if not top:
                raise self.error()
            self.take()
            q.offset = self.integer()
        return q

    def integer(self) -> int:
        tok = self.tok
        if tok.kind != "number" or not tok.value.isdigit():
            raise self.error()
        self.i += 1
        return int(tok.value)

    def condition(self) -> Any:
        first = self.unary()
        if self.is_kw("AND", "OR"):
            op = self.tok.value
            items = [first]
            while self.is_kw("AND", "OR"):
                if self.tok.value != op:  # SOQL refuses mixing AND/OR without parentheses
                    raise self.error()
                self.take()
                items.append(self.unary())
            return BoolOp(op, items)
        return first

    def unary(self) -> Any:
        if self.is_kw("NOT"):
            self.take()
            return Not(self.unary())
        if self.tok.kind == "punct" and self.tok.value == "(":
            self.take()
            inner = self.condition()
            self.expect_punct(")")
            return inner
        return self.predicate()

    def predicate(self) -> Any:
        path = self.path()
        if self.is_kw("NOT"):
            self.take()
            if not self.is_kw("IN"):
                raise self.error()
            self.take()
            return InList(path, self.value_list(), negate=True)
        if self.is_kw("IN"):
            self.take()
            return InList(path, self.value_list())
        if self.is_kw("LIKE"):
            self.take()
            tok = self.tok
            if tok.kind != "string":
                raise self.error()
            self.take()
            return Like(path, tok.value)
        if self.tok.kind != "op":
            raise self.error()
        op = self.take().value
        return Compare(path, "!=" if op == "<>" else op, self.literal())

    def value_list(self) -> list[Literal]:
        self.expect_punct("(")
        if self.is_kw("SELECT"):
            raise SoqlError("MALFORMED_QUERY", "Semi-join subselects are not supported by the sandbox.")
        values = [self.literal()]
        while self.tok.kind == "punct" and self.tok.value == ",":
            self.take()
            values.append(self.literal())
        self.expect_punct(")")
        return values

    def literal(self) -> Literal:
        tok = self.tok
        if tok.kind == "string":
            self.take()
            return Literal("string", tok.value)
        if tok.kind == "number":
            self.take()
            return Literal("number", float(tok.value) if "." in tok.value else int(tok.value))
        if tok.kind == "keyword" and tok.value in ("NULL", "TRUE", "FALSE"):
            self.take()
            if tok.value == "NULL":
                return Literal("null", None)
            return Literal("boolean", tok.value == "TRUE")
        if tok.kind == "date":
            self.take()
            try:
                return Literal("date", dt.date.fromisoformat(tok.value))
            except ValueError:
                raise _malformed(self.soql, tok.pos, f"line 1:{tok.pos} no viable alternative at character '{tok.value}'") from None
        if tok.kind == "datetime":
            self.take()
            text = tok.value.replace("Z", "+00:00")
            if re.search(r"[+-]\d{4}$", text):
                text = text[:-2] + ":" + text[-2:]
            return Literal("datetime", dt.datetime.fromisoformat(text).astimezone(dt.UTC))
        if tok.kind == "ident":
            name = tok.value.upper()
            if name in ("TODAY", "YESTERDAY", "TOMORROW", "LAST_WEEK", "THIS_WEEK"):
                self.take()
                return Literal("range", DateRange(name))
            if name in ("LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO"):
                self.take()
                self.expect_punct(":")
                return Literal("range", DateRange(name, self.integer()))
        raise self.error()


def parse(soql: str) -> Query:
    """Parse a SOQL string; raises :class:`SoqlError` (MALFORMED_QUERY) on syntax errors."""
    if not soql or not soql.strip():
        raise SoqlError("MALFORMED_QUERY", "unexpected token: '<EOF>'")
    return _Parser(soql.strip()).parse()


# --------------------------------------------------------------------------- validation


def _no_such_column(name: str, entity: str) -> SoqlError:
    return SoqlError(
        "INVALID_FIELD",
        f"No such column '{name}' on entity '{entity}'. If you are attempting to use a custom field, be sure to "
        "append the '__c' after the custom field name. Please reference your WSDL or the describe call for the "
        "appropriate names.",
    )


def invalid_type(name: str) -> SoqlError:
    return SoqlError(
        "INVALID_TYPE",
        f"sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to append "
        "the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
    )


@dataclass(frozen=True)
class ResolvedPath:
    """A field path resolved against the schema: relationship hops and the final field."""

    hops: tuple[tuple[str, Field], ...]  # (canonical relationship name, lookup field) per hop
    field: Field
    objects: tuple[str, ...]  # object of each hop's target, last = object owning `field`

    @property
    def chain(self) -> tuple[str, ...]:
        return tuple(h[0] for h in self.hops)


def resolve_path(schema: dict[str, SObject], sobject: str, path: tuple[str, ...]) -> ResolvedPath:
    obj = schema[sobject]
    hops: list[tuple[str, Field]] = []
    objects: list[str] = []
    for part in path[:-1]:
        lookup = obj.parent_relationship(part)
        if lookup is None or lookup.reference_to not in schema:
            raise SoqlError(
                "INVALID_FIELD",
                f"Didn't understand relationship '{part}' in field path. If you are attempting to use a custom "
                "relationship, be sure to append the '__r' after the custom relationship name. Please reference "
                "your WSDL or the describe call for the appropriate names.",
            )
        hops.append((lookup.relationship_name or part, lookup))
        obj = schema[lookup.reference_to or ""]
        objects.append(obj.name)
    f = obj.field(path[-1])
    if f is None:
        raise _no_such_column(path[-1], obj.name)
    return ResolvedPath(tuple(hops), f, tuple(objects))


_STRINGY = {"id", "string", "picklist", "reference", "textarea"}
_NUMERIC = {"double", "currency", "int"}


def _check_literal(f: Field, lit: Literal, op: str) -> None:
    if lit.kind == "null":
        if op not in ("=", "!=", "IN", "NOT IN"):
            raise SoqlError("MALFORMED_QUERY", f"invalid operator on null for field '{f.name}'")
        return
    if f.type in _STRINGY:
        if lit.kind != "string":
            raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{f.name}' must be of type string and should be enclosed in quotes")
        if f.type in ("id", "reference") and op in ("=", "!=", "IN", "NOT IN") and normalize_id(lit.value) is None:
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {lit.value}")
    elif f.type in _NUMERIC:
        if lit.kind != "number":
            raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{f.name}' must be of type double and should not be enclosed in quotes")
    elif f.type == "boolean":
        if lit.kind != "boolean":
            raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{f.name}' must be of type boolean and should not be enclosed in quotes")
        if op not in ("=", "!=", "IN", "NOT IN"):
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on boolean field '{f.name}'")
    elif f.type == "date":
        if lit.kind not in ("date", "range"):
            raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{f.name}' must be of type date and should not be enclosed in quotes")
    elif f.type == "datetime":
        if lit.kind not in ("datetime", "range"):
            raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{f.name}' must be of type dateTime and should not be enclosed in quotes")


def _walk(where: Any) -> Iterable[Any]:
    if where is None:
        return
    if isinstance(where, BoolOp):
        for item in where.items:
            yield from _walk(item)
    elif isinstance(where, Not):
        yield from _walk(where.item)
    else:
        yield where


def validate(query: Query, schema: dict[str, SObject], allow_children: bool = True) -> None:
    """Check object, fields, relationships and literal types the way Salesforce does before running."""
    canonical = next((name for name in schema if name.lower() == query.sobject.lower()), None)
    if canonical is None or schema[canonical].is_event:
        raise invalid_type(query.sobject)
    query.sobject = canonical
    for path in query.fields:
        resolve_path(schema, query.sobject, path)
    for pred in _walk(query.where):
        rp = resolve_path(schema, query.sobject, pred.path)
        if isinstance(pred, Compare):
            _check_literal(rp.field, pred.value, pred.op)
        elif isinstance(pred, InList):
            for v in pred.values:
                _check_literal(rp.field, v, "NOT IN" if pred.negate else "IN")
        elif isinstance(pred, Like) and rp.field.type not in _STRINGY:
            raise SoqlError("INVALID_FIELD", f"invalid operator on field '{rp.field.name}': LIKE needs a string field")
    for item in query.order_by:
        resolve_path(schema, query.sobject, item.path)
    parent = schema[query.sobject]
    for sub in query.subqueries:
        if not allow_children:
            raise SoqlError("MALFORMED_QUERY", "Parent-to-child relationship queries are not supported here.")
        rel = parent.child_relationship(sub.sobject)
        if rel is None:
            raise SoqlError(
                "INVALID_TYPE",
                f"Didn't understand relationship '{sub.sobject}' in FROM part of query call. If you are attempting "
                "to use a custom relationship, be sure to append the '__r' after the custom relationship name.",
            )
        _, child, _fk = rel
        sub_q = Query(child, sub.fields, [], sub.select_order, False, sub.where, sub.order_by, sub.limit)
        validate(sub_q, schema, allow_children=False)


# --------------------------------------------------------------------------- evaluation


class DataSource(Protocol):
    """What the evaluator needs from storage (the org's SQLite tables)."""

    def scan(self, sobject: str, equals: dict[str, list[Any]]) -> Iterable[dict]: ...

    def get_many(self, sobject: str, ids: set[str]) -> dict[str, dict]: ...

    def children(self, sobject: str, fk: str, parent_ids: list[str]) -> dict[str, list[dict]]: ...


def _range_bounds(rng: DateRange, today: dt.date) -> tuple[dt.date, dt.date]:
    n = rng.n or 0
    if rng.name == "TODAY":
        return today, today
    if rng.name == "YESTERDAY":
        return today - dt.timedelta(days=1), today - dt.timedelta(days=1)
    if rng.name == "TOMORROW":
        return today + dt.timedelta(days=1), today + dt.timedelta(days=1)
    if rng.name == "LAST_N_DAYS":
        return today - dt.timedelta(days=n), today
    if rng.name == "NEXT_N_DAYS":
        return today, today + dt.timedelta(days=n)
    if rng.name == "N_DAYS_AGO":
        day = today - dt.timedelta(days=n)
        return day, day
    start = today - dt.timedelta(days=today.weekday() + 1)  # weeks start on Sunday
    if rng.name == "LAST_WEEK":
        start -= dt.timedelta(days=7)
    return start, start + dt.timedelta(days=6)


def format_datetime(value: dt.datetime) -> str:
    """Salesforce REST datetime form, always UTC: ``2013-05-20T20:49:32.000+0000``."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def _like_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.I | re.S)


class _Compiler:
    """Turns a WHERE tree into a Python predicate over (row, getter)."""

    def __init__(self, schema: dict[str, SObject], sobject: str, now: dt.datetime) -> None:
        self.schema = schema
        self.sobject = sobject
        self.now = now
        self.today = now.date()

    def norm(self, f: Field, lit: Literal) -> Any:
        if lit.kind == "null":
            return None
        if lit.kind == "range":
            start, end = _range_bounds(lit.value, self.today)
            if f.type == "datetime":
                return (format_datetime(dt.datetime.combine(start, dt.time(), dt.UTC)),
                        format_datetime(dt.datetime.combine(end, dt.time(23, 59, 59, 999000), dt.UTC)))
            return (start.isoformat(), end.isoformat())
        if lit.kind == "datetime":
            return format_datetime(lit.value)
        if lit.kind == "date":
            return lit.value.isoformat()
        if lit.kind == "string":
            if f.type in ("id", "reference"):
                return normalize_id(lit.value) or lit.value
            return lit.value.lower()
        if lit.kind == "number":
            return float(lit.value)
        return lit.value

    def compile(self, node: Any) -> Callable[[Callable[[tuple[str, ...]], Any]], bool]:
        if node is None:
            return lambda get: True
        if isinstance(node, BoolOp):
            parts = [self.compile(i) for i in node.items]
            if node.op == "AND":
                return lambda get: all(p(get) for p in parts)
            return lambda get: any(p(get) for p in parts)
        if isinstance(node, Not):
            inner = self.compile(node.item)
            return lambda get: not inner(get)
        rp = resolve_path(self.schema, self.sobject, node.path)
        f = rp.field
        path = node.path
        lower = f.type in ("string", "picklist", "textarea")

        def value_of(get: Callable[[tuple[str, ...]], Any]) -> Any:
            v = get(path)
            if lower and isinstance(v, str):
                return v.lower()
            if isinstance(v, bool) or v is None:
                return v
            if isinstance(v, int):
                return float(v)
            return v

        if isinstance(node, Like):
            rx = _like_regex(node.pattern)
            return lambda get: (v := get(path)) is not None and bool(rx.match(str(v)))
        if isinstance(node, InList):
            values = {self.norm(f, lit) for lit in node.values}
            if node.negate:
                return lambda get: value_of(get) not in values
            return lambda get: value_of(get) in values
        op = node.op
        target = self.norm(f, node.value)
        if node.value.kind == "range":
            lo, hi = target
            tests = {
                "=": lambda v: lo <= v <= hi, "!=": lambda v: not lo <= v <= hi,
                "<": lambda v: v < lo, "<=": lambda v: v <= hi, ">": lambda v: v > hi, ">=": lambda v: v >= lo,
            }
            test = tests[op]
            return lambda get: (v := value_of(get)) is not None and test(v[:10] if f.type == "date" else v)
        if op == "=":
            return lambda get: value_of(get) == target
        if op == "!=":
            return lambda get: value_of(get) != target
        cmp = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}[op]
        return lambda get: (v := value_of(get)) is not None and target is not None and cmp(v, target)


def pushdown(query: Query, schema: dict[str, SObject]) -> dict[str, list[Any]]:
    """Top-level ``field = x`` / ``field IN (...)`` on own id/reference/picklist fields, for an indexed prefilter.

    The evaluator still checks every row; this only narrows what storage has to read.
    """
    nodes = query.where.items if isinstance(query.where, BoolOp) and query.where.op == "AND" else [query.where]
    out: dict[str, list[Any]] = {}
    for node in nodes:
        if isinstance(node, Compare) and node.op == "=" and len(node.path) == 1:
            lits = [node.value]
        elif isinstance(node, InList) and not node.negate and len(node.path) == 1:
            lits = node.values
        else:
            continue
        f = schema[query.sobject].field(node.path[0])
        if f is None or f.type not in ("id", "reference", "picklist") or any(lit.kind != "string" for lit in lits):
            continue
        ids = [normalize_id(lit.value) or lit.value if f.type != "picklist" else lit.value for lit in lits]
        out[f.name] = sorted(set(ids) & set(out[f.name])) if f.name in out else ids
    return out


class Result:
    """An evaluated query: rows filtered and sorted; records are built page by page."""

    def __init__(self, query: Query, schema: dict[str, SObject], source: DataSource, rows: list[dict],
                 rels: dict[tuple[str, ...], dict[str, dict | None]], api_version: str) -> None:
        self.query = query
        self.schema = schema
        self.source = source
        self.rows = rows
        self.rels = rels
        self.api_version = api_version

    @property
    def total_size(self) -> int:
        return len(self.rows)

    def page(self, start: int, size: int) -> list[dict]:
        rows = self.rows[start:start + size]
        if self.query.count:
            return []
        children: dict[int, dict[str, list[dict]]] = {}
        parent = self.schema[self.query.sobject]
        for idx, sub in enumerate(self.query.subqueries):
            _, child, fk = parent.child_relationship(sub.sobject) or ("", "", "")
            children[idx] = _run_children(sub, child, fk, self.schema, self.source, [r["Id"] for r in rows],
                                           self.api_version)
        out = []
        for row in rows:
            rec = build_record(self.query.sobject, self.query.select_order, self.schema, row,
                               lambda chain, r=row: self.rels[chain].get(r["Id"]), self.api_version,
                               sub_records={
                                   id(sub): children[i].get(row["Id"], []) for i, sub in enumerate(self.query.subqueries)
                               })
            out.append(rec)
        return out


def _attributes(sobject: str, record_id: str | None, api_version: str) -> dict:
    attrs = {"type": sobject}
    if record_id:
        attrs["url"] = f"/services/data/v{api_version}/sobjects/{sobject}/{record_id}"
    return attrs


def json_value(f: Field, value: Any) -> Any:
    """Typed JSON value as the REST API returns it (numbers as doubles, booleans, ISO dates)."""
    if value is None:
        return None
    if f.type == "boolean":
        return bool(value)
    if f.type in _NUMERIC:
        return float(value)
    return value


def build_record(sobject: str, select_order: list[Any], schema: dict[str, SObject], row: dict,
                 parent_of: Callable[[tuple[str, ...]], dict | None], api_version: str,
                 sub_records: dict[int, list[dict]] | None = None) -> dict:
    rec: dict[str, Any] = {"attributes": _attributes(sobject, row.get("Id"), api_version)}
    for item in select_order:
        if isinstance(item, Query):
            children = (sub_records or {}).get(id(item), [])
            rel = schema[sobject].child_relationship(item.sobject)
            name = rel[0] if rel else item.sobject
            rec[name] = {"totalSize": len(children), "done": True, "records": children} if children else None
            continue
        rp = resolve_path(schema, sobject, item)
        if not rp.hops:
            rec[rp.field.name] = json_value(rp.field, row.get(rp.field.name))
            continue
        target = rec
        for depth, (rel_name, _lookup) in enumerate(rp.hops):
            chain = rp.chain[: depth + 1]
            parent = parent_of(chain)
            if parent is None:
                target[rel_name] = None
                break
            existing = target.get(rel_name)
            if not isinstance(existing, dict):
                existing = {"attributes": _attributes(rp.objects[depth], parent.get("Id"), api_version)}
                target[rel_name] = existing
            target = existing
        else:
            target[rp.field.name] = json_value(rp.field, parent_of(rp.chain)[rp.field.name])  # type: ignore[index]
    return rec


def _resolve_relations(query: Query, schema: dict[str, SObject], source: DataSource, rows: list[dict],
                       paths: Iterable[tuple[str, ...]]) -> dict[tuple[str, ...], dict[str, dict | None]]:
    """For each relationship chain used, map base row Id -> parent row (or None)."""
    rels: dict[tuple[str, ...], dict[str, dict | None]] = {}
    for path in paths:
        rp = resolve_path(schema, query.sobject, path)
        for depth in range(len(rp.hops)):
            chain = rp.chain[: depth + 1]
            if chain in rels:
                continue
            lookup = rp.hops[depth][1]
            if depth == 0:
                owners = {r["Id"]: r for r in rows}
            else:
                owners = rels[chain[:-1]]
            ids = {o[lookup.name] for o in owners.values() if o is not None and o.get(lookup.name)}
            parents = source.get_many(lookup.reference_to or "", ids) if ids else {}
            rels[chain] = {
                rid: (parents.get(o[lookup.name]) if o is not None and o.get(lookup.name) else None)
                for rid, o in owners.items()
            }
    return rels


def _sort_key_factory(order_by: list[OrderItem], getter_for: Callable[[dict], Callable[[tuple[str, ...]], Any]]):
    def key(row: dict) -> tuple:
        get = getter_for(row)
        parts = []
        for item in order_by:
            v = get(item.path)
            if isinstance(v, str):
                v = v.lower()
            nulls_last = item.nulls_last if item.nulls_last is not None else item.descending
            is_null = v is None
            # nulls sort first unless NULLS LAST; DESC reverses the value order only.
            parts.append((is_null if nulls_last else not is_null, _Desc(v) if item.descending and not is_null else v if not is_null else 0))
        return tuple(parts)

    return key


class _Desc:
    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: _Desc) -> bool:
        return other.v < self.v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and other.v == self.v


def _paths(query: Query) -> list[tuple[str, ...]]:
    paths = [p for p in query.fields if len(p) > 1]
    paths += [p.path for p in _walk(query.where) if len(p.path) > 1]
    paths += [o.path for o in query.order_by if len(o.path) > 1]
    return paths


def _filter_sort(query: Query, schema: dict[str, SObject], source: DataSource, rows: list[dict],
                 now: dt.datetime) -> tuple[list[dict], dict[tuple[str, ...], dict[str, dict | None]]]:
    rels = _resolve_relations(query, schema, source, rows, _paths(query))
    resolved: dict[tuple[str, ...], ResolvedPath] = {}

    def getter_for(row: dict) -> Callable[[tuple[str, ...]], Any]:
        def get(path: tuple[str, ...]) -> Any:
            rp = resolved.get(path)
            if rp is None:
                rp = resolved[path] = resolve_path(schema, query.sobject, path)
            if not rp.hops:
                return row.get(rp.field.name)
            parent = rels[rp.chain].get(row["Id"])
            return None if parent is None else parent.get(rp.field.name)

        return get

    predicate = _Compiler(schema, query.sobject, now).compile(query.where)
    rows = [r for r in rows if predicate(getter_for(r))]
    if query.order_by:
        rows.sort(key=_sort_key_factory(query.order_by, getter_for))
    start = query.offset or 0
    end = start + query.limit if query.limit is not None else None
    if start or end is not None:
        rows = rows[start:end]
    return rows, rels


def _run_children(sub: Query, child: str, fk: str, schema: dict[str, SObject], source: DataSource,
                  parent_ids: list[str], api_version: str) -> dict[str, list[dict]]:
    q = Query(child, sub.fields, [], sub.select_order, False, sub.where, sub.order_by, sub.limit)
    grouped = source.children(child, fk, parent_ids)
    out: dict[str, list[dict]] = {}
    now = dt.datetime.now(dt.UTC)
    for pid, rows in grouped.items():
        kept, rels = _filter_sort(q, schema, source, rows, now)
        if kept:
            out[pid] = [
                build_record(child, q.select_order, schema, r, lambda chain, r=r, rels=rels: rels[chain].get(r["Id"]),
                             api_version)
                for r in kept
            ]
    return out


def execute(query: Query, schema: dict[str, SObject], source: DataSource, api_version: str = "62.0",
            now: dt.datetime | None = None) -> Result:
    """Validate and run a parsed query against a data source."""
    validate(query, schema)
    now = now or dt.datetime.now(dt.UTC)
    rows = list(source.scan(query.sobject, pushdown(query, schema)))
    rows, rels = _filter_sort(query, schema, source, rows, now)
    result = Result(query, schema, source, rows, rels, api_version)
    return result
