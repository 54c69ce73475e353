"""What the Passerelle view reads from the back office, as plain rows for the templates.

Read-only SQL over a psycopg (3) connection: web orders (:mod:`passerelle.core.order_list`:
lines, payment state, status history, deliveries, credit note requests, quarantine), the last
runs per flow (``passerelle.run_summary``), each send's batch and manifest
(``passerelle.batch``), and the daily reports and order files the report flow keeps on disk.
The actions live in :mod:`passerelle.core.quarantine`.
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


def web_orders(
    conn: psycopg.Connection,
    *,
    search: str = "",
    where: Any = None,
    timezone: str = "Europe/Paris",
    limit: int = 200,
) -> list[dict[str, Any]]:
    """The integrated web orders, newest first (:func:`passerelle.core.order_list.list_orders`);
    ``search`` matches the shop's order id, the back-office number or the customer's name or
    e-mail, ``where`` (an :class:`~passerelle.core.order_list.OrderFilter`) narrows by status,
    payment state and dates."""
    from passerelle.core.order_list import OrderFilter, list_orders

    where = where or OrderFilter(search=search.strip())
    return list_orders(conn, where, timezone=timezone, limit=limit)


def web_order(conn: psycopg.Connection, order_id: int, *, timezone: str = "Europe/Paris") -> dict[str, Any] | None:
    """One web order with its lines, payments, status history, deliveries, credit note requests
    and quarantined rows; None if absent."""
    from passerelle.core.order_list import order_detail

    return order_detail(conn, order_id, timezone=timezone)


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


def daily_orders_files(folder: Path) -> list[Report]:
    """The daily files of web orders the report flow wrote in ``folder`` (``orders-YYYY-MM-DD.csv``),
    newest first."""
    from passerelle.core.order_list import daily_day

    if not folder.is_dir():
        return []
    found = [Report(d, p) for p in folder.iterdir() if (d := daily_day(p.name)) is not None and p.is_file()]
    return sorted(found, key=lambda r: r.day, reverse=True)


def daily_orders_path(folder: Path, day: str) -> Path | None:
    """The daily orders file of ``day`` (YYYY-MM-DD) in ``folder``, or None; never a path outside it."""
    from passerelle.core.order_list import daily_name

    try:
        wanted = date.fromisoformat(day)
    except ValueError:
        return None
    path = folder / daily_name(wanted)
    return path if path.is_file() else None


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
    "daily_orders_files",
    "daily_orders_path",
    "last_runs",
    "report_path",
    "reports",
    "web_order",
    "web_orders",
]
