"""Salesforce-style record ids: 15-char case-sensitive ids plus the 3-char case-safe suffix."""

from __future__ import annotations

import re

KEY_PREFIXES = {
    "Account": "001",
    "User": "005",
    "Product2": "01t",
    "Pricebook2": "01s",
    "PricebookEntry": "01u",
    "Order": "801",
    "OrderItem": "802",
    "Organization": "00D",
    "BulkJob": "750",
    "PlatformEvent": "e00",
}
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")


def checksum(id15: str) -> str:
    """The 3-char suffix Salesforce appends: one char per 5-char chunk, a bitmap of upper-case letters."""
    out = []
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        out.append(_SUFFIX[bits])
    return "".join(out)


def make_id(prefix: str, number: int, pod: str = "5g") -> str:
    """An 18-char id: 3-char key prefix, 2-char pod, a base-62 counter, the case-safe suffix."""
    digits = []
    n = number
    for _ in range(10):
        n, r = divmod(n, 62)
        digits.append(_ALPHABET[r])
    id15 = prefix + pod + "".join(reversed(digits))
    return id15 + checksum(id15)


def normalize_id(value: str) -> str | None:
    """Return the 18-char form of a 15- or 18-char id, or None if it is not id-shaped or the suffix is wrong."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        return None
    id15 = value[:15]
    full = id15 + checksum(id15)
    if len(value) == 18 and value[15:].upper() != full[15:]:
        return None
    return full
