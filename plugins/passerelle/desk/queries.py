"""What the Passerelle view reads from the back office, as plain rows for the templates.

Read-only SQL over a psycopg (3) connection: web orders (lines, payment, status history,
deliveries), the last runs per flow (``passerelle.run_summary``), each send's batch and manifest
(``passerelle.batch``), and the daily reports the report flow keeps on disk. The actions live in
:mod:`passerelle.core.quarantine`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

#: The flows, in the order people think of them (DAG id = flow name).
FLOWS: tuple[str, ...] = ("catalog", "prices_stock", "orders_in", "order_status", "report")


def _dicts(conn: psycopg.Connection, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


#: A customer as the staff name them: person, then company.
_CUSTOMER_NAME = "concat_ws(' ', c.first_name, c.last_name, nullif(c.company, ''))"


def web_orders(conn: psycopg.Connection, *, search: str = "", limit: int = 100) -> list[dict[str, Any]]:
    """The integrated web orders, newest first; ``search`` matches the shop's order id, the
    back-office number or the customer's name or e-mail."""
    like = f"%{search.strip()}%"
    return _dicts(
        conn,
        f"""
        SELECT o.id, o.number, o.shop_order_id, o.kind, o.status, o.order_date, o.total_incl_vat, o.currency,
               {_CUSTOMER_NAME} AS customer, c.email,
               (SELECT count(*) FROM erp.sales_order_line l WHERE l.order_id = o.id) AS lines,
               (SELECT bool_and(p.paid) FROM erp.payment p WHERE p.order_id = o.id) AS paid
          FROM erp.sales_order o JOIN erp.customer c ON c.id = o.customer_id
         WHERE o.origin = 'web'
           AND (%(all)s OR o.shop_order_id ILIKE %(s)s OR o.number ILIKE %(s)s
                OR {_CUSTOMER_NAME} ILIKE %(s)s OR c.email ILIKE %(s)s)
         ORDER BY o.order_date DESC, o.id DESC LIMIT %(n)s""",
        {"s": like, "all": not search.strip(), "n": limit},
    )


def web_order(conn: psycopg.Connection, order_id: int) -> dict[str, Any] | None:
    """One web order with its lines, payments, status history and delivery notes; None if absent."""
    found = _dicts(
        conn,
        f"""
        SELECT o.*, {_CUSTOMER_NAME} AS customer, c.email, l.file_id, f.name AS file
          FROM erp.sales_order o JOIN erp.customer c ON c.id = o.customer_id
          LEFT JOIN passerelle.order_ledger l ON l.shop_order_id = o.shop_order_id
          LEFT JOIN passerelle.inbound_file f ON f.id = l.file_id
         WHERE o.id = %s AND o.origin = 'web'""",
        (order_id,),
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
        "SELECT number, shipped_at, carrier, tracking_number FROM erp.delivery_note "
        "WHERE order_id = %s ORDER BY shipped_at, id",
        (order_id,),
    )
    return order


def last_runs(conn: psycopg.Connection, *, per_flow: int = 10) -> dict[str, list[dict[str, Any]]]:
    """The last ``per_flow`` runs of each flow (``passerelle.run_summary``), newest first, flows in
    :data:`FLOWS` order then any other."""
    rows = _dicts(
        conn,
        """
        SELECT * FROM (
            SELECT r.*, row_number() OVER (PARTITION BY r.flow ORDER BY r.finished_at DESC, r.id DESC) AS n
              FROM passerelle.run_summary r) t
         WHERE n <= %s ORDER BY finished_at DESC, id DESC""",
        (per_flow,),
    )
    out: dict[str, list[dict[str, Any]]] = {f: [] for f in FLOWS}
    for row in rows:
        row["counts_text"] = counts_text(row["counts"])
        out.setdefault(row["flow"], []).append(row)
    return out


def counts_text(counts: Any) -> str:
    """A run's counts (nested JSON) on one line: ``article: created 3, changed 1; variant: ...``."""
    if isinstance(counts, str):
        counts = json.loads(counts or "{}")
    if not isinstance(counts, dict) or not counts:
        return ""
    parts = []
    for key, value in counts.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} {v}" for k, v in value.items() if not isinstance(v, (dict, list)))
            parts.append(f"{key}: {inner}" if inner else key)
        elif not isinstance(value, list):
            parts.append(f"{key} {value}")
    return "; ".join(parts)


def batches(conn: psycopg.Connection, *, limit: int = 50) -> list[dict[str, Any]]:
    """The last sends (``passerelle.batch``), newest first, with their files' count and size."""
    rows = _dicts(
        conn,
        """
        SELECT b.id, b.flow, b.run_key, b.mode, b.status, b.entities, b.counts, b.created_at, b.published_at,
               b.confirmed_at, count(f.name) AS files, coalesce(sum(f.rows), 0) AS rows,
               coalesce(sum(f.bytes), 0) AS bytes
          FROM passerelle.batch b LEFT JOIN passerelle.outbox_file f ON f.batch_id = b.id
         GROUP BY b.id ORDER BY b.id DESC LIMIT %s""",
        (limit,),
    )
    for row in rows:
        row["counts_text"] = counts_text(row["counts"])
    return rows


def batch(conn: psycopg.Connection, batch_id: int) -> dict[str, Any] | None:
    """One send: its batch row, manifest (pretty JSON), files and outbound rejects; None if absent."""
    found = _dicts(conn, "SELECT * FROM passerelle.batch WHERE id = %s", (batch_id,))
    if not found:
        return None
    row = found[0]
    row["counts_text"] = counts_text(row["counts"])
    row["manifest_text"] = (
        json.dumps(row["manifest"], indent=2, ensure_ascii=False, default=str) if row["manifest"] is not None else ""
    )
    row["files"] = _dicts(
        conn,
        "SELECT position, name, entity, rows, bytes FROM passerelle.outbox_file "
        "WHERE batch_id = %s ORDER BY position, name",
        (batch_id,),
    )
    row["rejects"] = _dicts(
        conn,
        "SELECT entity, key, field, value, reason FROM passerelle.outbound_reject "
        "WHERE batch_id = %s ORDER BY entity, key LIMIT 500",
        (batch_id,),
    )
    return row


@dataclass(frozen=True)
class Report:
    day: date
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


_REPORT_NAME = re.compile(r"^report-(\d{4}-\d{2}-\d{2})\.html$")


def reports(folder: Path) -> list[Report]:
    """The daily reports the report flow wrote in ``folder`` (``report-YYYY-MM-DD.html``), newest first."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _REPORT_NAME.match(path.name)
        if match and path.is_file():
            found.append(Report(date.fromisoformat(match.group(1)), path))
    return sorted(found, key=lambda r: r.day, reverse=True)


def report_path(folder: Path, day: str) -> Path | None:
    """The report of ``day`` (YYYY-MM-DD) in ``folder``, or None; never a path outside it."""
    try:
        wanted = date.fromisoformat(day)
    except ValueError:
        return None
    path = folder / f"report-{wanted.isoformat()}.html"
    return path if path.is_file() else None


__all__ = [
    "FLOWS",
    "Report",
    "batch",
    "batches",
    "counts_text",
    "last_runs",
    "report_path",
    "reports",
    "web_order",
    "web_orders",
]
