"""The staff's list of web orders (issue #14, item 6): integrated orders with their lines, payment
state, status history, deliveries, credit note requests and what was quarantined, for the
Passerelle view's pages (``desk/``) and as the daily file the report flow writes beside its report
(``orders-YYYY-MM-DD.csv``, for people who do not open Airflow).

Read-only SQL over a psycopg (3) connection; no Airflow. Delivery note lines are shown when the
back office's parcel lines (``erp.delivery_note_line``).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from passerelle.core.quarantine import DeskError

#: What the payment state column says, in the order the filter offers them.
PAYMENT_STATES = ("paid", "awaiting payment", "not paid", "no payment", "partly refunded", "refunded")

#: A customer as the staff name them: person, then company.
CUSTOMER_NAME = "concat_ws(' ', c.first_name, c.last_name, nullif(c.company, ''))"

# One row per web order: its payment state worked out from its payments and credit note requests.
_ORDERS = f"""
WITH o AS (
    SELECT o.*, {CUSTOMER_NAME} AS customer, c.email,
           (o.order_date AT TIME ZONE %(tz)s)::date AS order_day,
           (SELECT count(*) FROM erp.sales_order_line l WHERE l.order_id = o.id) AS lines,
           (SELECT count(*) FROM erp.payment p WHERE p.order_id = o.id) AS payments,
           (SELECT coalesce(sum(p.amount), 0) FROM erp.payment p WHERE p.order_id = o.id AND p.paid) AS paid_amount,
           (SELECT max(p.paid_at) FROM erp.payment p WHERE p.order_id = o.id AND p.paid) AS paid_at,
           (SELECT string_agg(DISTINCT p.method, ', ') FROM erp.payment p WHERE p.order_id = o.id) AS payment_method,
           (SELECT coalesce(max(r.refunded_total), 0) FROM erp.credit_note_request r WHERE r.order_id = o.id)
               AS refunded,
           (SELECT count(*) FROM erp.credit_note_request r WHERE r.order_id = o.id AND r.status = 'requested')
               AS credit_notes_open,
           (SELECT count(*) FROM erp.delivery_note d WHERE d.order_id = o.id) AS deliveries,
           (SELECT string_agg(concat_ws(' ', d.number, d.carrier, d.tracking_number), '; ' ORDER BY d.shipped_at, d.id)
              FROM erp.delivery_note d WHERE d.order_id = o.id) AS delivery_text,
           (SELECT count(*) FROM passerelle.quarantine q WHERE q.shop_order_id = o.shop_order_id AND q.status = 'open')
               AS quarantined
      FROM erp.sales_order o JOIN erp.customer c ON c.id = o.customer_id
     WHERE o.origin = 'web'
)
SELECT o.*,
       CASE WHEN o.refunded > 0 AND o.refunded >= o.total_incl_vat - 0.005 THEN 'refunded'
            WHEN o.refunded > 0 THEN 'partly refunded'
            WHEN EXISTS (SELECT 1 FROM erp.payment p WHERE p.order_id = o.id AND p.paid) THEN 'paid'
            WHEN o.status = 'awaiting_payment' THEN 'awaiting payment'
            WHEN o.payments > 0 THEN 'not paid'
            ELSE 'no payment' END AS payment_state
  FROM o
"""


@dataclass(frozen=True)
class OrderFilter:
    """What the staff narrow the list to; every part optional. Dates are days in the shop's
    timezone, both ends included."""

    search: str = ""
    status: str = ""
    payment: str = ""
    date_from: date | None = None
    date_to: date | None = None

    @classmethod
    def parse(cls, *, search: str = "", status: str = "", payment: str = "", date_from: str = "", date_to: str = ""):
        """From a form's text fields; a date that is not YYYY-MM-DD raises ValueError naming it."""

        def day(name: str, value: str) -> date | None:
            value = (value or "").strip()
            if not value:
                return None
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{name}: {value!r} is not a date; expected YYYY-MM-DD") from None

        payment = (payment or "").strip()
        if payment and payment not in PAYMENT_STATES:
            raise ValueError(f"payment: {payment!r} is not a payment state; expected one of {list(PAYMENT_STATES)}")
        return cls((search or "").strip(), (status or "").strip(), payment, day("from", date_from), day("to", date_to))


def _dicts(conn: psycopg.Connection, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


def list_orders(
    conn: psycopg.Connection, where: OrderFilter | None = None, *, timezone: str = "Europe/Paris", limit: int = 200
) -> list[dict[str, Any]]:
    """The integrated web orders matching ``where``, newest first, with their payment state,
    deliveries, open credit note requests and open quarantined rows."""
    f = where or OrderFilter()
    return _dicts(
        conn,
        f"""
        SELECT * FROM ({_ORDERS}) t
         WHERE (%(all)s OR t.shop_order_id ILIKE %(s)s OR t.number ILIKE %(s)s OR t.customer ILIKE %(s)s
                OR t.email ILIKE %(s)s)
           AND (%(status)s = '' OR t.status = %(status)s OR (%(status)s = 'quote' AND t.kind = 'quote'))
           AND (%(payment)s = '' OR t.payment_state = %(payment)s)
           AND (%(from)s::date IS NULL OR t.order_day >= %(from)s::date)
           AND (%(to)s::date IS NULL OR t.order_day <= %(to)s::date)
         ORDER BY t.order_date DESC, t.id DESC LIMIT %(n)s""",
        {
            "tz": timezone,
            "s": f"%{f.search}%",
            "all": not f.search,
            "status": f.status,
            "payment": f.payment,
            "from": f.date_from,
            "to": f.date_to,
            "n": limit,
        },
    )


def statuses(conn: psycopg.Connection) -> list[str]:
    """The statuses web orders have now (the status filter's choices)."""
    return [r[0] for r in conn.execute("SELECT DISTINCT status FROM erp.sales_order WHERE origin = 'web' ORDER BY 1")]


def order_detail(conn: psycopg.Connection, order_id: int, *, timezone: str = "Europe/Paris") -> dict[str, Any] | None:
    """One web order with its lines, payments, status history, deliveries (and their lines when
    the back office has them), credit note requests and quarantined rows; None if absent."""
    found = _dicts(
        conn,
        f"""
        SELECT t.*, l.file_id, f.name AS file FROM ({_ORDERS}) t
          LEFT JOIN passerelle.order_ledger l ON l.shop_order_id = t.shop_order_id
          LEFT JOIN passerelle.inbound_file f ON f.id = l.file_id
         WHERE t.id = %(id)s""",
        {"tz": timezone, "id": order_id},
    )
    if not found:
        return None
    order = found[0]
    order["lines"] = _dicts(
        conn,
        """
        SELECT l.line_number, coalesce(v.reference, a.reference) AS reference, l.label, l.quantity,
               l.unit_price_excl_vat, l.discount_excl_vat, l.vat_rate, l.shipped_qty
          FROM erp.sales_order_line l JOIN erp.article a ON a.id = l.article_id
          LEFT JOIN erp.variant v ON v.id = l.variant_id
         WHERE l.order_id = %s ORDER BY l.line_number""",
        (order_id,),
    )
    order["payments"] = _dicts(
        conn,
        "SELECT method, amount, transaction_id, paid, paid_at FROM erp.payment WHERE order_id = %s ORDER BY id",
        (order_id,),
    )
    order["history"] = _dicts(
        conn,
        "SELECT status, changed_at FROM erp.order_status_history WHERE order_id = %s ORDER BY changed_at, id",
        (order_id,),
    )
    order["deliveries"] = _dicts(
        conn,
        "SELECT id, number, shipped_at, carrier, tracking_number FROM erp.delivery_note "
        "WHERE order_id = %s ORDER BY shipped_at, id",
        (order_id,),
    )
    order["delivery_columns"] = DELIVERY_COLUMNS
    lines = delivery_lines(conn, [d["id"] for d in order["deliveries"]])
    for d in order["deliveries"]:
        d["lines"] = lines.get(d["id"], [])
    order["credit_notes"] = _dicts(
        conn,
        "SELECT id, amount, refunded_total, reason, shop_status, source_file, status, requested_at, "
        "handled_at, handled_by, note FROM erp.credit_note_request WHERE order_id = %s ORDER BY id",
        (order_id,),
    )
    order["quarantine"] = quarantine_rows(conn, order["shop_order_id"])
    return order


#: What the accountant answers to a credit note request (``erp.credit_note_request.status``).
CREDIT_NOTE_OUTCOMES = ("issued", "refused")


def handle_credit_note(
    conn: psycopg.Connection, order_id: int, request_id: int, outcome: str, note: str, *, by: str
) -> None:
    """Record the answer to an open credit note request of an order: ``issued`` (the credit note
    was made in the back office; the note may give its number) or ``refused`` (the note says why),
    with when and by whom. Once only: a request already answered is left as it is. Commits.

    :raises DeskError: an unknown outcome, a refusal without a note, a request that is not one of
        this order's, or one already answered (the message names it and its state).
    """
    if outcome not in CREDIT_NOTE_OUTCOMES:
        raise DeskError(f"outcome: {outcome!r} is not one of {', '.join(CREDIT_NOTE_OUTCOMES)}")
    note = (note or "").strip()
    if outcome == "refused" and not note:
        raise DeskError("note: a refusal needs a note saying why (e.g. 'goods not returned')")
    with conn.transaction():
        done = conn.execute(
            "UPDATE erp.credit_note_request SET status = %s, note = nullif(%s, ''), handled_at = now(), "
            "handled_by = %s WHERE id = %s AND order_id = %s AND status = 'requested'",
            (outcome, note, by, request_id, order_id),
        ).rowcount
        if not done:
            row = conn.execute(
                "SELECT status FROM erp.credit_note_request WHERE id = %s AND order_id = %s", (request_id, order_id)
            ).fetchone()
            if row is None:
                raise DeskError(f"credit note request {request_id}: not a request of order {order_id}")
            raise DeskError(f"credit note request {request_id}: already {row[0]}; nothing changed")


def quarantine_rows(conn: psycopg.Connection, shop_order_id: str) -> list[dict[str, Any]]:
    """Every quarantined row of a shop order, open or closed, oldest first."""
    return _dicts(
        conn,
        "SELECT file, line, field, value, reason, status, created_at FROM passerelle.quarantine "
        "WHERE shop_order_id = %s ORDER BY created_at, file, line, id",
        (shop_order_id,),
    )


#: What the staff see of each parcel line: the order line shipped and the quantity in the parcel.
DELIVERY_COLUMNS = ["line_number", "label", "quantity"]


def delivery_lines(conn: psycopg.Connection, note_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """The lines of the given delivery notes (``erp.delivery_note_line``, with the label of the
    order line each ships), per note id, in the order's line order."""
    if not note_ids:
        return {}
    rows = _dicts(
        conn,
        "SELECT d.delivery_note_id AS _note, d.line_number, l.label, d.quantity FROM erp.delivery_note_line d "
        "JOIN erp.sales_order_line l ON l.order_id = d.order_id AND l.line_number = d.line_number "
        "WHERE d.delivery_note_id = ANY(%s) ORDER BY d.delivery_note_id, d.line_number",
        ([int(i) for i in note_ids],),
    )
    out: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row.pop("_note"), []).append(row)
    return out


def quarantined_orders(conn: psycopg.Connection, *, limit: int = 200) -> list[dict[str, Any]]:
    """Shop orders with open quarantined rows that the back office does not hold: what the shop
    sold and is not integrated yet (the quarantine page says what to do)."""
    return _dicts(
        conn,
        """
        SELECT q.shop_order_id, min(q.file) AS file, count(*) AS rows, min(q.created_at) AS since,
               string_agg(DISTINCT q.reason, ' / ') AS reasons
          FROM passerelle.quarantine q
         WHERE q.status = 'open' AND q.shop_order_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM erp.sales_order o WHERE o.shop_order_id = q.shop_order_id)
         GROUP BY q.shop_order_id ORDER BY min(q.created_at) DESC, q.shop_order_id LIMIT %s""",
        (limit,),
    )


# --------------------------------------------------------------------------------------------
# The daily file
# --------------------------------------------------------------------------------------------

#: Columns of the daily file: one row per order line (order columns repeated), then one row per
#: quarantined order not integrated (``status`` = ``quarantined``, no line).
DAILY_COLUMNS = [
    "order_number",
    "shop_order_id",
    "order_date",
    "customer",
    "email",
    "status",
    "status_history",
    "payment_state",
    "payment_method",
    "paid_amount",
    "paid_at",
    "refund_requested",
    "total_incl_vat",
    "currency",
    "line_number",
    "reference",
    "label",
    "quantity",
    "shipped_qty",
    "unit_price_excl_vat",
    "vat_rate",
    "deliveries",
    "source_file",
    "quarantine",
]

_DAILY = f"""
WITH day AS (SELECT %(start)s::timestamptz AS t0, %(end)s::timestamptz AS t1),
ids AS (   -- orders placed, changed, paid, shipped or refunded on the day
    SELECT o.id FROM erp.sales_order o, day WHERE o.origin = 'web' AND o.order_date >= t0 AND o.order_date < t1
    UNION SELECT h.order_id FROM erp.order_status_history h, day WHERE h.changed_at >= t0 AND h.changed_at < t1
    UNION SELECT p.order_id FROM erp.payment p, day WHERE p.paid_at >= t0 AND p.paid_at < t1
    UNION SELECT d.order_id FROM erp.delivery_note d, day WHERE d.shipped_at >= t0 AND d.shipped_at < t1
    UNION SELECT r.order_id FROM erp.credit_note_request r, day WHERE r.requested_at >= t0 AND r.requested_at < t1
)
SELECT t.number, t.shop_order_id, t.order_date, t.customer, t.email, t.status,
       (SELECT string_agg(h.status || ' ' || to_char(h.changed_at AT TIME ZONE %(tz)s, 'YYYY-MM-DD HH24:MI'), '; '
                          ORDER BY h.changed_at, h.id)
          FROM erp.order_status_history h WHERE h.order_id = t.id) AS status_history,
       t.payment_state, t.payment_method, t.paid_amount, t.paid_at, t.refunded, t.total_incl_vat, t.currency,
       l.line_number, coalesce(v.reference, a.reference) AS reference, l.label, l.quantity, l.shipped_qty,
       l.unit_price_excl_vat, l.vat_rate, t.delivery_text,
       (SELECT f.name FROM passerelle.order_ledger g JOIN passerelle.inbound_file f ON f.id = g.file_id
         WHERE g.shop_order_id = t.shop_order_id) AS source_file,
       (SELECT string_agg(DISTINCT q.reason, ' / ') FROM passerelle.quarantine q
         WHERE q.shop_order_id = t.shop_order_id AND q.status = 'open') AS quarantine
  FROM ({_ORDERS}) t
  JOIN ids ON ids.id = t.id
  LEFT JOIN erp.sales_order_line l ON l.order_id = t.id
  LEFT JOIN erp.article a ON a.id = l.article_id
  LEFT JOIN erp.variant v ON v.id = l.variant_id
 ORDER BY t.order_date, t.number, l.line_number
"""

_DAILY_QUARANTINE = """
SELECT q.shop_order_id, min(q.file) AS file, string_agg(DISTINCT q.reason, ' / ') AS reasons
  FROM passerelle.quarantine q
 WHERE q.status = 'open' AND q.shop_order_id IS NOT NULL AND q.created_at < %(end)s::timestamptz
   AND NOT EXISTS (SELECT 1 FROM erp.sales_order o WHERE o.shop_order_id = q.shop_order_id)
 GROUP BY q.shop_order_id ORDER BY q.shop_order_id
"""


def file_window(day: date, timezone: str, *, until: datetime | None = None) -> tuple[datetime, datetime]:
    """What the daily file of ``day`` covers: the day before, whole, and ``day`` until ``until``
    (the run's logical moment: the file made at 06:00 holds yesterday and the night), midnight to
    midnight in ``timezone`` when ``until`` is None or later."""
    tz = ZoneInfo(timezone)
    before, after = day - timedelta(days=1), day + timedelta(days=1)
    start = datetime(before.year, before.month, before.day, tzinfo=tz)
    end = datetime(after.year, after.month, after.day, tzinfo=tz)
    if until is not None:
        if until.tzinfo is None:
            raise ValueError(f"until must be an aware datetime, got {until!r}")
        end = max(min(end, until.astimezone(tz)), datetime(day.year, day.month, day.day, tzinfo=tz))
    return start, end


def daily_rows(
    conn: psycopg.Connection, start: datetime, end: datetime, *, timezone: str = "Europe/Paris"
) -> list[list[Any]]:
    """The rows of the daily file (:data:`DAILY_COLUMNS`) for the instants ``start`` (included)
    to ``end`` (excluded): the web orders placed, changed (status), paid, shipped or refunded
    then, one row per line, as they stand now; then the orders still open in the quarantine,
    quarantined before ``end``, that the back office does not hold."""
    params = {"start": start, "end": end, "tz": timezone}
    rows = [list(r) for r in conn.execute(_DAILY, params).fetchall()]
    for sid, file, reasons in conn.execute(_DAILY_QUARANTINE, params).fetchall():
        row: list[Any] = [None] * len(DAILY_COLUMNS)
        row[DAILY_COLUMNS.index("shop_order_id")] = sid
        row[DAILY_COLUMNS.index("status")] = "quarantined"
        row[DAILY_COLUMNS.index("source_file")] = file
        row[DAILY_COLUMNS.index("quarantine")] = reasons
        rows.append(row)
    return rows


def _cell(value: Any, timezone: str) -> str:
    """A value as a person reads it in a spreadsheet: times in the shop's timezone to the minute,
    amounts with 2 decimals (quantities and rates as short as they are), text a spreadsheet would
    take for a formula prefixed with ``'``."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


_MONEY = {"paid_amount", "refund_requested", "total_incl_vat", "unit_price_excl_vat"}


def orders_csv(rows: Sequence[Sequence[Any]], *, timezone: str = "Europe/Paris") -> bytes:
    """The daily file: UTF-8 with BOM, ``;``, CRLF (as the rejects files: a spreadsheet opens it
    as is), the header :data:`DAILY_COLUMNS`."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    writer.writerow(DAILY_COLUMNS)
    for row in rows:
        out = []
        for name, value in zip(DAILY_COLUMNS, row, strict=True):
            if value is not None and name in _MONEY:
                out.append(f"{value:.2f}")
            elif value is not None and name in ("quantity", "shipped_qty", "vat_rate"):
                out.append(f"{value:f}".rstrip("0").rstrip(".") if "." in f"{value:f}" else f"{value:f}")
            else:
                out.append(_cell(value, timezone))
        writer.writerow(out)
    return codecs.BOM_UTF8 + buf.getvalue().encode("utf-8")


def daily_name(day: date) -> str:
    return f"orders-{day.isoformat()}.csv"


_DAILY_NAME = re.compile(r"^orders-(\d{4}-\d{2}-\d{2})\.csv$")


def daily_day(name: str) -> date | None:
    """The day of a daily file's name (``orders-YYYY-MM-DD.csv``), else None."""
    match = _DAILY_NAME.match(name)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


__all__ = [
    "CUSTOMER_NAME",
    "DAILY_COLUMNS",
    "PAYMENT_STATES",
    "OrderFilter",
    "daily_day",
    "daily_name",
    "daily_rows",
    "file_window",
    "delivery_lines",
    "list_orders",
    "order_detail",
    "orders_csv",
    "quarantine_rows",
    "quarantined_orders",
    "statuses",
]
