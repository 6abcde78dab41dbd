"""``ActivationNotifier``: the "order activated" mail as ``write_back``'s success callback.

Not a task of its own: a mail is not a step ops retry or clear, and as a task it cost every order
one more task start (a worker slot, a process, a DAG parse) after the order was already
Activated. As a notifier it runs in ``write_back``'s process right after that task has reported
success, so a lost mail never marks an Activated order Failed (the notifier logs the failure).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseNotifier

from orderflow import settings
from orderflow.notify import ProvisioningNotice, send_notice
from orderflow.statuses import ActivationStatus

log = logging.getLogger(__name__)


class ActivationNotifier(BaseNotifier):
    """Mail ``ORDERFLOW_NOTIFY_EMAIL`` (if set) that the task's order is Activated; its return value names it."""

    template_fields = ()

    def __init__(self, smtp_conn_id: str = settings.SMTP_CONN_ID) -> None:
        super().__init__()
        self.smtp_conn_id = smtp_conn_id

    def notify(self, context: Any) -> None:
        if not settings.notify_recipients():  # off (the default): not even the XCom read the mail would need
            return
        ti = context["ti"]
        result = ti.xcom_pull(task_ids=ti.task_id)
        if not result:
            log.warning("no result from %s: no activation mail", ti.task_id)
            return
        send_notice(ProvisioningNotice(order_id=result["order_id"], outcome=ActivationStatus.ACTIVATED,
                                       whmcs_order_id=result["whmcs_order_id"]), self.smtp_conn_id)
