"""The Salesforce Order as provisioning sees it, loaded in one SOQL query."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from orderflow import order_marker
from orderflow.errors import ErrorCode, PermanentError, TransientError
from orderflow.salesforce.soql import validate_order_id

# Provisioning step 1 (docs/architecture.md, "Provisioning"): the order, its account and its items with their products, in ONE query.
ORDER_QUERY = (
    "SELECT Id, OrderNumber, Status, Activation_Status__c, WHMCS_Order_ID__c, AccountId, "
    "Account.Name, Account.WH_Account__c, "
    "(SELECT Id, Quantity, WHMCS_Service_ID__c, Product2Id, Product2.Name, Product2.StockKeepingUnit, "
    "Product2.WH_Product_ID__c, Product2.Billing_Cycle__c FROM OrderItems) "
    "FROM Order WHERE Id = '{order_id}'"
)

_WH_ACCOUNT_RE = re.compile(r"^\s*#\s*(\d+)\s*(?:-.*)?$")
BILLING_CYCLES = {"monthly": "monthly", "onetime": "onetime", "one-time": "onetime", "one time": "onetime"}


@dataclass(frozen=True)
class OrderLine:
    item_id: str
    sku: str
    product_name: str
    whmcs_pid: int | None
    billing_cycle: str | None
    quantity: int
    whmcs_service_id: str | None = None


@dataclass(frozen=True)
class OrderSnapshot:
    """What step 1 read; passed to later tasks as a plain dict (XCom), never re-queried."""

    order_id: str
    order_number: str
    status: str
    activation_status: str | None
    whmcs_order_id: str | None
    account_id: str
    account_name: str
    wh_account: str | None
    lines: tuple[OrderLine, ...] = field(default_factory=tuple)

    @property
    def marker(self) -> str:
        """The note that ties a WHMCS order to this Salesforce order (find-before-create)."""
        return order_marker.marker(self.order_id)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> OrderSnapshot:
        lines = tuple(OrderLine(**line) for line in data.get("lines", ()))
        return cls(**{**data, "lines": lines})

    @classmethod
    def from_record(cls, rec: dict) -> OrderSnapshot:
        """The snapshot of a queried Order; a record of the wrong shape (no Id, items not a subquery, a
        quantity that is no number) is a garbled answer: transient SALESFORCE_UNAVAILABLE, never a traceback."""
        try:
            return cls._from_record(rec)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TransientError(ErrorCode.SALESFORCE_UNAVAILABLE,
                                 f"Salesforce answered an Order record that cannot be read "
                                 f"({type(exc).__name__}: {exc})") from None

    @classmethod
    def _from_record(cls, rec: dict) -> OrderSnapshot:
        account = rec.get("Account") or {}
        items = (rec.get("OrderItems") or {}).get("records") or []
        lines = []
        for item in sorted(items, key=lambda r: r["Id"]):
            product = item.get("Product2") or {}
            pid = product.get("WH_Product_ID__c")
            lines.append(
                OrderLine(
                    item_id=item["Id"],
                    sku=product.get("StockKeepingUnit") or product.get("Name") or item.get("Product2Id") or "?",
                    product_name=product.get("Name") or "",
                    whmcs_pid=_product_id(pid),
                    billing_cycle=product.get("Billing_Cycle__c") or None,
                    quantity=max(1, int(float(item.get("Quantity") or 1))),
                    whmcs_service_id=item.get("WHMCS_Service_ID__c") or None,
                )
            )
        return cls(
            order_id=rec["Id"],
            order_number=str(rec.get("OrderNumber") or ""),
            status=str(rec.get("Status") or ""),
            activation_status=rec.get("Activation_Status__c"),
            whmcs_order_id=rec.get("WHMCS_Order_ID__c") or None,
            account_id=str(rec.get("AccountId") or ""),
            account_name=str(account.get("Name") or ""),
            wh_account=account.get("WH_Account__c") or None,
            lines=tuple(lines),
        )


@dataclass(frozen=True)
class PlanItem:
    pid: int
    billing_cycle: str  # lower-case WHMCS system name
    quantity: int


@dataclass(frozen=True)
class ProvisioningPlan:
    """The validated mapping of one Salesforce order onto a WHMCS AddOrder."""

    order_id: str
    client_id: int
    items: tuple[PlanItem, ...]

    @property
    def marker(self) -> str:
        return order_marker.marker(self.order_id)


def _product_id(value: object) -> int | None:
    """``WH_Product_ID__c`` (Number 18,0; JSON gives 12.0) as an int; None when unset or not a whole number,
    so the item is reported under PRODUCT_MAPPING_MISSING with its SKU."""
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return int(number) if number.is_integer() and number > 0 else None


def query_for(order_id: str) -> str:
    return ORDER_QUERY.format(order_id=validate_order_id(order_id, field="order_id"))


def parse_wh_account(value: str | None) -> int | None:
    """``'#1234 - Customer Name'`` -> 1234; anything else -> None."""
    if not value:
        return None
    match = _WH_ACCOUNT_RE.match(value)
    return int(match.group(1)) if match and int(match.group(1)) > 0 else None


def build_plan(order: OrderSnapshot) -> ProvisioningPlan:
    """Validate the mappings (step 1 in docs/architecture.md, "Provisioning") and turn the order into AddOrder items."""
    client_id = parse_wh_account(order.wh_account)
    if client_id is None:
        shown = repr(order.wh_account) if order.wh_account else "empty"
        raise PermanentError(
            ErrorCode.CLIENT_MAPPING_MISSING,
            f"Account {order.account_name or order.account_id}: WH_Account__c is {shown}; expected '#<WHMCS client id> - <name>'",
        )
    if not order.lines:
        raise PermanentError(ErrorCode.PRODUCT_MAPPING_MISSING, "Order has no items to provision")
    missing = [
        line.sku
        for line in order.lines
        if line.whmcs_pid is None or (line.billing_cycle or "").strip().lower() not in BILLING_CYCLES
    ]
    if missing:
        raise PermanentError(
            ErrorCode.PRODUCT_MAPPING_MISSING,
            f"Products without WH_Product_ID__c or Billing_Cycle__c: {', '.join(sorted(set(missing)))}",
        )
    items = tuple(
        PlanItem(int(line.whmcs_pid), BILLING_CYCLES[(line.billing_cycle or "").strip().lower()], line.quantity)
        for line in order.lines
    )
    return ProvisioningPlan(order_id=order.order_id, client_id=client_id, items=items)
