"""Provisioning notifications: a small message object, sent through Airflow's SMTP connection.

Off unless ``ORDERFLOW_NOTIFY_EMAIL`` names recipients (``settings.notify_recipients``; the demo sets it
and points ``smtp_default`` at a local sink).
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass

from orderflow import settings
from orderflow.statuses import ActivationStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProvisioningNotice:
    order_id: str
    outcome: str  # Activated | Failed
    whmcs_order_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def subject(self) -> str:
        if self.outcome == ActivationStatus.ACTIVATED:
            return f"[orderflow] Order {self.order_id} activated (WHMCS order {self.whmcs_order_id})"
        return f"[orderflow] Order {self.order_id} failed: {self.error_code}"

    def html(self) -> str:
        rows = [("Salesforce Order", self.order_id), ("Outcome", self.outcome)]
        if self.whmcs_order_id:
            rows.append(("WHMCS order", self.whmcs_order_id))
        if self.error_code:
            rows += [("Error code", self.error_code), ("Message", self.error_message or "")]
        body = "".join(f"<tr><th align=left>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        return f"<table>{body}</table>"


def send_notice(notice: ProvisioningNotice, smtp_conn_id: str = settings.SMTP_CONN_ID) -> bool:
    """Send the notice if notifications are on; returns whether a mail was sent."""
    to = settings.notify_recipients()
    if not to:
        log.info("Notifications are off (ORDERFLOW_NOTIFY_EMAIL is not set)")
        return False
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=smtp_conn_id) as smtp:
        smtp.send_email_smtp(
            to=to, subject=notice.subject, html_content=notice.html(), from_email="orderflow@localhost"
        )
    log.info("Notified %s about order %s (%s)", ",".join(to), notice.order_id, notice.outcome)
    return True
