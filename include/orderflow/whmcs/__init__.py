"""WHMCS: the API client (usable without Airflow), its typed results, and the Airflow hook.

The hook lives in ``orderflow.whmcs.hook`` and is not imported here, so importing the client
never pulls in Airflow.
"""

from orderflow.whmcs.client import WhmcsClient, php_params
from orderflow.whmcs.models import (
    AddOrderResult,
    ClientDetails,
    OrderLine,
    PaymentGateway,
    PayMethod,
    WhmcsLineItem,
    WhmcsOrder,
    WhmcsProduct,
    WhmcsService,
)

__all__ = [
    "AddOrderResult",
    "ClientDetails",
    "OrderLine",
    "PayMethod",
    "PaymentGateway",
    "WhmcsClient",
    "WhmcsLineItem",
    "WhmcsOrder",
    "WhmcsProduct",
    "WhmcsService",
    "php_params",
]
