"""The order marker: the note that ties a WHMCS order to the Salesforce Order it was made for.

WHMCS has no idempotency key and cannot filter on notes, so exactly-once provisioning (the
find-before-create step) and reconciliation both rest on one question: which Salesforce Order
ids does this WHMCS order's ``notes`` text carry? This module is the only place that answers it
(see docs/architecture.md, "Idempotency").

The rule:

* A marker is ``sfOrderId=<id>``. The key ``sfOrderId=`` is case-sensitive and must not be
  preceded by a letter, digit or ``_`` (``xsfOrderId=...`` is not a marker).
* The id runs from after ``=`` to the first character that is not an ASCII letter or digit, or
  to the end of the text: in ``sfOrderId=801...AAAB`` the id is ``801...AAAB`` (so it never
  matches ``801...AAA``); ``,``, ``;``, a space or a newline end it.
* 15 vs 18 characters: a Salesforce 18-character id is the case-sensitive 15-character id plus
  a 3-character checksum of its letter case, and both name the same record. Ids are therefore
  compared in their 18-character form: a 15-character id is extended by its computed checksum
  (an 18-character id's suffix is compared upper-cased, as Salesforce treats it). A 15-character
  id thus matches exactly the one 18-character id it abbreviates, and no other 18-character id
  that merely starts with it (a wrong suffix is a different id). Ids of any other length are
  compared as written.
"""

from __future__ import annotations

import re

from orderflow.salesforce.soql import to_18

__all__ = ["MARKER_KEY", "carries_marker", "marked_order_ids", "marker"]

MARKER_KEY = "sfOrderId="

_MARKER_RE = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(MARKER_KEY)}([A-Za-z0-9]+)")
_ID_RE = re.compile(r"[A-Za-z0-9]+")


def _canonical(record_id: str) -> str:
    """The 18-character form of a 15-character id; 18-character ids with their suffix upper-cased."""
    if len(record_id) == 15:
        return to_18(record_id)
    if len(record_id) == 18:
        return record_id[:15] + record_id[15:].upper()
    return record_id


def _checked_id(order_id: str) -> str:
    if not isinstance(order_id, str) or not _ID_RE.fullmatch(order_id):
        raise ValueError(f"order_id must be a non-empty string of ASCII letters and digits, got {order_id!r}")
    return order_id


def marker(order_id: str) -> str:
    """The note text AddOrder writes for ``order_id``: ``sfOrderId=<order_id>``."""
    return MARKER_KEY + _checked_id(order_id)


def marked_order_ids(notes: str | None) -> list[str]:
    """Every Salesforce Order id a marker in ``notes`` carries, in order of appearance, without repeats.

    Ids come back in their 18-character form when they have 15 or 18 characters, so they compare
    directly with the ids the Salesforce API returns.
    """
    seen: dict[str, None] = {}
    for match in _MARKER_RE.finditer(notes or ""):
        seen.setdefault(_canonical(match.group(1)), None)
    return list(seen)


def carries_marker(notes: str | None, order_id: str) -> bool:
    """True when ``notes`` holds a marker for ``order_id`` (the same record, 15- or 18-character form)."""
    wanted = _canonical(_checked_id(order_id))
    return wanted in marked_order_ids(notes)
