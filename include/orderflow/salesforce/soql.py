"""Safe SOQL building: inputs that reach a query are validated (ids by pattern) or escaped.

Never format user input into SOQL directly; use :func:`quote` / :func:`literal` for values and
:func:`validate_id` / :func:`validate_order_id` for record ids (an id can't carry a quote).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from orderflow import settings

ID_RE = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")
ORDER_ID_RE = re.compile(settings.ORDER_ID_PATTERN)
KEY_PREFIXES = {"Account": "001", "Product2": "01t", "Order": "801", "OrderItem": "802", "Pricebook2": "01s",
                "PricebookEntry": "01u"}
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_FIELD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


class InvalidSalesforceId(ValueError):
    """A value that is not a well-formed Salesforce record id (of the expected object)."""


def to_18(record_id: str) -> str:
    """The case-safe 18-char form of a 15- or 18-char id (suffix recomputed)."""
    id15 = record_id[:15]
    suffix = "".join(
        _SUFFIX[sum(1 << i for i, ch in enumerate(id15[c:c + 5]) if "A" <= ch <= "Z")] for c in (0, 5, 10)
    )
    return id15 + suffix


def validate_id(value: object, sobject: str | None = None, field: str = "id") -> str:
    """Return the 18-char id, or raise :class:`InvalidSalesforceId` naming ``field``."""
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise InvalidSalesforceId(f"{field} must be a Salesforce id: 15 or 18 letters/digits, got {str(value)[:40]!r}")
    prefix = KEY_PREFIXES.get(sobject or "")
    if prefix and not value.startswith(prefix):
        raise InvalidSalesforceId(f"{field} must be a {sobject} id starting with {prefix!r}, got {value[:40]!r}")
    full = to_18(value)
    if len(value) == 18 and value[15:].upper() != full[15:]:
        raise InvalidSalesforceId(f"{field} has a wrong case-safe suffix: {value!r}")
    return full


def validate_order_id(value: object, field: str = "order_id") -> str:
    """An Order id (prefix 801, 15 or 18 chars) in its 18-char form."""
    if not isinstance(value, str) or not ORDER_ID_RE.fullmatch(value):
        raise InvalidSalesforceId(
            f"{field} must be a Salesforce Order id (15 or 18 letters/digits starting with 801), got {str(value)[:40]!r}"
        )
    return validate_id(value, "Order", field)


def escape(value: str) -> str:
    """Escape a string for use inside single quotes in SOQL."""
    return "".join(_ESCAPES.get(ch, ch) for ch in value)


def escape_like(value: str) -> str:
    """Escape a string for a LIKE pattern (wildcards become literal)."""
    return escape(value).replace("%", "\\%").replace("_", "\\_")


def quote(value: str) -> str:
    return f"'{escape(value)}'"


def literal(value: object) -> str:
    """A SOQL literal for a Python value (str, bool, number, date, datetime, None)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return quote(value)
    raise TypeError(f"no SOQL literal for {type(value).__name__}")


def id_list(ids: Iterable[str], sobject: str | None = None) -> str:
    """``('id1','id2')`` after validating every id."""
    values = [validate_id(i, sobject) for i in ids]
    if not values:
        raise ValueError("an IN list needs at least one id")
    return "(" + ",".join(f"'{v}'" for v in values) + ")"


def field_list(fields: Iterable[str]) -> str:
    """Join field names after checking each is a plain (dotted) API name."""
    names = list(fields)
    for name in names:
        if not _FIELD_RE.match(name):
            raise ValueError(f"not a field name: {name!r}")
    return ", ".join(names)
