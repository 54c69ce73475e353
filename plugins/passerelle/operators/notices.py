"""Customer notices mailed by Passerelle (``notices.mail.enabled``): the order_status flow's last
task, after confirm. The notices themselves are :mod:`passerelle.core.notices`."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from passerelle.operators.common import ErpMixin


class NotifyCustomersOperator(ErpMixin, BaseOperator):
    """Mail each customer the notices of a confirmed order_status batch, once each, through
    Airflow's SMTP connection (``notices.mail.smtp_conn_id``, the SMTP provider's ``SmtpHook``).

    :param batch: the build task's return value (templated; an XComArg).
    :param smtp_conn_id: the SMTP connection; default ``notices.mail.smtp_conn_id``.
    :param erp_conn_id: the back office's Postgres connection; default ``shop.erp_conn_id``.
    :param config_path: configuration file; default ``PASSERELLE_CONFIG`` or the project's.

    Returns ``{"sent", "skipped_old", "no_email"}``. A dry run, or a batch not confirmed, mails nothing.
    """

    template_fields: Sequence[str] = ("batch",)

    def __init__(
        self,
        *,
        batch: Any,
        smtp_conn_id: str | None = None,
        erp_conn_id: str | None = None,
        config_path: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.smtp_conn_id = smtp_conn_id
        self.erp_conn_id = erp_conn_id
        self.config_path = config_path

    @cached_property
    def smtp(self):
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        return SmtpHook(smtp_conn_id=self.smtp_conn_id or self.settings.notices.mail.smtp_conn_id)

    def execute(self, context: Any) -> dict:
        from passerelle.core.notices import send_notices

        batch = self.batch
        if not isinstance(batch, dict) or "batch_id" not in batch:
            raise ValueError(f"batch must be the build task's result (a dict with batch_id), got {batch!r:.200}")
        mail = self.settings.notices.mail
        if not mail.enabled:
            self.log.info("notices.mail.enabled is false: the shop tells the customers (notify flags)")
            return {"sent": 0, "skipped_old": 0, "no_email": 0}
        if batch.get("status") == "dry_run":
            self.log.info("dry run: no customer notice")
            return {"sent": 0, "skipped_old": 0, "no_email": 0}

        with self.smtp as smtp:

            def send(recipient: str, subject: str, html: str, language: str) -> None:
                smtp.send_email_smtp(
                    to=recipient,
                    subject=subject,
                    html_content=html,
                    from_email=mail.from_email,
                    mime_subtype="alternative",
                    custom_headers={"Content-Language": language},
                )

            counts = send_notices(self.erp, int(batch["batch_id"]), self.settings, send)
        self.log.info(
            "customer notices: %d sent, %d too old (recorded, not sent), %d without an e-mail",
            counts["sent"],
            counts["skipped_old"],
            counts["no_email"],
        )
        return counts


__all__ = ["NotifyCustomersOperator"]
