"""What a support agent typed into the Orders search box, checked before it reaches SOQL or WHMCS."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from orderflow.salesforce.soql import InvalidSalesforceId, validate_order_id

MAX_QUERY_LENGTH = 40
_DIGITS_RE = re.compile(r"^[0-9]{1,12}$")
ORDER_NUMBER_WIDTH = 8  # Salesforce auto-numbers Orders as 00000123


class InvalidQuery(ValueError):
    """``q`` is none of the accepted forms; the message names the field and the forms."""


class QueryKind(StrEnum):
    ORDER_ID = "order_id"  # a Salesforce Order Id (801..., 15 or 18 chars), normalised to 18
    NUMBER = "number"  # digits: an OrderNumber or a WHMCS order id (both are tried)


@dataclass(frozen=True)
class OrderQuery:
    kind: QueryKind
    value: str

    @property
    def order_numbers(self) -> tuple[str, ...]:
        """The OrderNumber forms to try: as typed and zero-padded the way Salesforce numbers Orders."""
        padded = self.value.zfill(ORDER_NUMBER_WIDTH)
        return (self.value,) if padded == self.value else (self.value, padded)


def parse_query(raw: str | None, field: str = "q") -> OrderQuery:
    """Accept a Salesforce Order Id, an OrderNumber or a WHMCS order id; refuse anything else by name."""
    text = (raw or "").strip()
    if text.startswith("#"):
        text = text[1:].strip()
    if not text:
        raise InvalidQuery(f"{field} is empty: enter a Salesforce Order Id (801…), an OrderNumber or a WHMCS order id")
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidQuery(f"{field} is too long ({len(text)} characters); an order id has at most 18")
    if _DIGITS_RE.match(text):
        return OrderQuery(QueryKind.NUMBER, text)
    try:
        return OrderQuery(QueryKind.ORDER_ID, validate_order_id(text, field=field))
    except InvalidSalesforceId as exc:
        raise InvalidQuery(
            f"{field} must be a Salesforce Order Id (15 or 18 letters/digits starting with 801), "
            f"an OrderNumber or a WHMCS order id (digits only): {exc}"
        ) from None
