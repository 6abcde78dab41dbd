"""Salesforce access for orderflow: JWT login with a shared token cache, REST, Bulk 2.0, safe SOQL.

``SalesforceClient`` works without Airflow; ``SalesforceJwtHook`` (``orderflow.salesforce.hook``)
wraps it for tasks. Pub/Sub lives in ``orderflow.salesforce.pubsub``.
"""

from orderflow.salesforce.client import SalesforceClient
from orderflow.salesforce.records import SaveResult
from orderflow.salesforce.token_cache import TokenCache

__all__ = ["SalesforceClient", "SaveResult", "TokenCache"]
