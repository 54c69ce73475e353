"""Customer notices mailed by Passerelle itself (``notices.mail.enabled``; off by default, when
the shop sends its own e-mails from the notify flags of the status files).

After an order_status batch is confirmed, each status row it sent (created or changed) whose
status is notified (``notices.notify``), and each invoice it sent for the first time
(``notices.invoice_available``), becomes one notice to the order's customer, in the customer's
language (``passerelle_src.order_customer``; a language without templates gets
``notices.mail.default_language``'s), from the template ``<status>.<language>.html`` of
``notices.mail.templates_dir``: its first line ``Subject: ...``, the rest the HTML body (Jinja2,
autoescaped).

Exactly once: each notice is recorded in ``passerelle.customer_notice`` (key: the status row's key,
or ``invoice:<number>``) in the same transaction as it is sent; a notice already recorded is not
sent again (a rerun, a retry, a status row sent again). A failed send rolls its record back and
stops the run (the task retries the rest). A batch whose run failed after its publish, before its
confirm and notices, is confirmed by the next batch's build, and that batch's notices include its
ones. Statuses older than ``notices.mail.max_age_hours``
before the batch was built are recorded as ``skipped`` without a mail: the first send of the
statuses of every past order does not mail every customer about their old orders.

Plain Python (psycopg, jinja2); the mail goes through a ``send`` callable the operator gives
(Airflow's SMTP connection, :class:`airflow.providers.smtp.hooks.smtp.SmtpHook`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from passerelle import INCLUDE
from passerelle.config import Settings
from passerelle.core.batches import CONFIRMED_BY_BUILD_OF

log = logging.getLogger(__name__)

#: The notice of an invoice made available in the customer's area.
INVOICE_AVAILABLE = "invoice_available"

#: (recipient, subject, HTML body, language) -> None; raises if the mail was not accepted.
Sender = Callable[[str, str, str, str], None]


class NoticeError(ValueError):
    """A template missing or unreadable: the file and what was expected."""


@dataclass(frozen=True)
class Notice:
    key: str
    kind: str  # status | invoice
    status: str
    order_number: str
    shop_order_id: str | None
    recipient: str | None
    language: str
    first_name: str | None
    last_name: str | None
    carrier: str | None
    tracking_number: str | None
    invoice_number: str | None
    recent: bool

    @property
    def parcel(self) -> str | None:
        """The delivery note of a parcel's status row (``<order>:partly_shipped:<note>``)."""
        parts = self.key.split(":", 2)
        return parts[2] if self.kind == "status" and len(parts) == 3 else None


def templates_dir(settings: Settings) -> Path:
    folder = Path(settings.notices.mail.templates_dir)
    return folder if folder.is_absolute() else INCLUDE / folder


def template_path(settings: Settings, status: str, language: str) -> Path:
    return templates_dir(settings) / f"{status}.{language}.html"


def notified_statuses(settings: Settings) -> list[str]:
    """The statuses (and ``invoice_available``) the configuration tells the customer of."""
    out = [status for status, on in settings.notices.notify.items() if on]
    return out + ([INVOICE_AVAILABLE] if settings.notices.invoice_available else [])


def check_templates(settings: Settings) -> None:
    """Every notified status has a template in the default language; else a NoticeError naming them."""
    default = settings.notices.mail.default_language
    missing = [
        str(template_path(settings, status, default))
        for status in notified_statuses(settings)
        if not template_path(settings, status, default).is_file()
    ]
    if missing:
        raise NoticeError(
            f"notices.mail: no template in the default language {default!r} for {len(missing)} notified "
            f"statuses: {', '.join(missing)} (first line 'Subject: ...', then the HTML body)"
        )


def render(settings: Settings, notice: Notice) -> tuple[str, str, str]:
    """(subject, HTML body, language used) of *notice* from its template."""
    import jinja2

    language = notice.language
    path = template_path(settings, notice.status, language)
    if not path.is_file():
        language = settings.notices.mail.default_language
        path = template_path(settings, notice.status, language)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NoticeError(f"{path}: cannot read the notice template ({exc})") from None
    head, _, body = text.partition("\n")
    if not head.startswith("Subject:"):
        raise NoticeError(f"{path}: line 1 is {head[:60]!r}; expected 'Subject: ...' then the HTML body")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    values = {
        "order_number": notice.order_number,
        "shop_order_id": notice.shop_order_id or notice.order_number,
        "first_name": notice.first_name or "",
        "last_name": notice.last_name or "",
        "carrier": notice.carrier or "",
        "tracking_number": notice.tracking_number or "",
        "parcel": notice.parcel or "",
        "invoice_number": notice.invoice_number or "",
        "shop_url": settings.shop.public_base_url or "",
    }
    try:
        subject = env.from_string(head.removeprefix("Subject:").strip()).render(values)
        html = env.from_string(body).render(values)
    except jinja2.TemplateError as exc:
        raise NoticeError(f"{path}: {exc}") from None
    return " ".join(subject.split()), html, language


#: The batches whose notices a batch gives: itself, and the earlier ones of its flow its build confirmed
#: (published, their run failed before its confirm and notices).
_COVERED = f"""
SELECT a.id FROM passerelle.batch n
JOIN passerelle.batch a ON a.flow = n.flow AND a.id <= n.id
WHERE n.id = %(batch)s AND (a.id = n.id OR {CONFIRMED_BY_BUILD_OF.format(a="a", n="n")})
"""

_STATUS_ROWS = f"""
SELECT b.key, 'status' AS kind, v.status, v.order_number, v.shop_order_id, c.customer_email AS recipient,
       c.language, c.first_name, c.last_name, v.carrier, v.tracking_number, v.invoice_number,
       v.changed_at::timestamptz >= batch.created_at - make_interval(hours => %(hours)s) AS recent
FROM passerelle.batch batch
JOIN passerelle.batch_row b ON b.batch_id = batch.id AND b.entity = 'order_status' AND b.op <> 'D'
JOIN passerelle_src.order_status v ON v.key = b.key
LEFT JOIN passerelle_src.order_customer c ON c.order_number = v.order_number
WHERE batch.id IN ({_COVERED}) AND v.status = ANY(%(statuses)s)
  AND NOT EXISTS (SELECT 1 FROM passerelle.customer_notice n WHERE n.key = b.key)
ORDER BY v.changed_at, b.key
"""

_INVOICE_ROWS = f"""
SELECT 'invoice:' || b.key AS key, 'invoice' AS kind, 'invoice_available' AS status, v.order_number,
       v.shop_order_id, c.customer_email AS recipient, c.language, c.first_name, c.last_name,
       NULL AS carrier, NULL AS tracking_number, v.invoice_number,
       v.invoice_date >= (batch.created_at - make_interval(hours => %(hours)s))::date AS recent
FROM passerelle.batch batch
JOIN passerelle.batch_row b ON b.batch_id = batch.id AND b.entity = 'invoice' AND b.op = 'C'
JOIN passerelle_src.invoice v ON v.key = b.key
LEFT JOIN passerelle_src.order_customer c ON c.order_number = v.order_number
WHERE batch.id IN ({_COVERED})
  AND NOT EXISTS (SELECT 1 FROM passerelle.customer_notice n WHERE n.key = 'invoice:' || b.key)
ORDER BY v.invoice_date, b.key
"""


def pending_notices(conn: psycopg.Connection, batch_id: int, settings: Settings) -> list[Notice]:
    """The notices a confirmed order_status batch gives that were never sent (set-wise reads), with
    those of the earlier batches its build confirmed (:data:`_COVERED`)."""
    mail = settings.notices.mail
    params = {
        "batch": batch_id,
        "hours": mail.max_age_hours,
        "statuses": [s for s in notified_statuses(settings) if s != INVOICE_AVAILABLE],
    }
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_STATUS_ROWS, params).fetchall()
        if settings.notices.invoice_available:
            rows += cur.execute(_INVOICE_ROWS, params).fetchall()
    out = []
    for r in rows:
        language = (r.pop("language") or "").strip().lower()
        out.append(Notice(**r, language=language if language in mail.languages else mail.default_language))
    return out


def _record(conn: psycopg.Connection, notice: Notice, batch_id: int, subject: str, language: str) -> bool:
    row = conn.execute(
        "INSERT INTO passerelle.customer_notice (key, kind, order_number, status, recipient, language, subject, "
        "batch_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING RETURNING key",
        (
            notice.key,
            notice.kind,
            notice.order_number,
            notice.status,
            notice.recipient or "",
            language,
            subject,
            batch_id,
        ),
    ).fetchone()
    return row is not None


def send_notices(conn: psycopg.Connection, batch_id: int, settings: Settings, send: Sender) -> dict[str, int]:
    """Mail the batch's pending notices once each; return ``{"sent", "skipped_old", "no_email"}``.

    The batch must be confirmed (what the shop was told is what the customer is told); another
    status returns zeros. Each mail is sent inside the transaction that records it.
    """
    status = conn.execute("SELECT status FROM passerelle.batch WHERE id = %s", (batch_id,)).fetchone()
    conn.commit()
    counts = {"sent": 0, "skipped_old": 0, "no_email": 0}
    if status is None or status[0] != "confirmed":
        log.info("batch %s is %s: no customer notice", batch_id, status[0] if status else "missing")
        return counts
    check_templates(settings)
    notices = pending_notices(conn, batch_id, settings)
    conn.commit()
    for notice in notices:
        if not notice.recent or not notice.recipient:
            reason = "skipped_old" if not notice.recent else "no_email"
            with conn.transaction():
                _record(conn, notice, batch_id, f"({reason})", notice.language)
            counts[reason] += 1
            continue
        subject, html, language = render(settings, notice)
        with conn.transaction():
            if _record(conn, notice, batch_id, subject, language):
                send(notice.recipient, subject, html, language)
                counts["sent"] += 1
        log.info("notice %s (%s, %s) sent to %s: %s", notice.key, notice.status, language, notice.recipient, subject)
    return counts


__all__ = [
    "INVOICE_AVAILABLE",
    "Notice",
    "NoticeError",
    "check_templates",
    "notified_statuses",
    "pending_notices",
    "render",
    "send_notices",
]
