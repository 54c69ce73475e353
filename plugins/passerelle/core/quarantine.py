"""The quarantine as the operator's desk sees it: open rows grouped by file and order, a reason in
a shop manager's words, and the three ways out (replay, dismiss with a note, map a shop label).

Plain functions over a psycopg (3) connection; no Airflow. The Passerelle view
(:mod:`passerelle.desk`) calls them; so could a script. Each action commits.

* :func:`replay` is the DAG's "replay quarantine" run option, the same code
  (:func:`passerelle.core.integrate.replay_quarantine`) with the same settings;
* :func:`dismiss` closes open rows (status ``resolved``) with who, when and a note; a dismissed
  row is never replayed;
* :func:`map_label` records that a label the shop sends as SKU is a back-office reference
  (``passerelle.sku_alias``); the integration translates the label before checking SKUs
  (:func:`apply_sku_aliases`), so the next replay and every later file go through.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from passerelle.db import json_texts


class DeskError(ValueError):
    """An action refused because of what the person asked (a reference that does not exist, an
    empty note...): the message names the field and the value, for the page to show."""


@dataclass
class QuarantinedRow:
    id: int
    line: int
    field: str | None
    value: str | None
    reason: str
    raw: str | None
    explanation: str


@dataclass
class QuarantineGroup:
    """The open rows of one order (or of a row without an order) in one file: what is fixed,
    dismissed or replayed together."""

    file: str
    file_id: int | None
    shop_order_id: str | None
    received_at: Any
    rows: list[QuarantinedRow] = field(default_factory=list)
    #: Shop labels among the rows that the back office does not know (candidates for mapping).
    unknown_labels: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [r.id for r in self.rows]

    @property
    def key(self) -> str:
        return f"{self.file_id or 0}-{self.shop_order_id or 'file'}"


_UNKNOWN_SKU = "unknown SKU"

#: (pattern over the parser's reason, what a shop manager reads). ``{value}``, ``{field}``,
#: ``{line}`` and the pattern's named groups are filled in.
_EXPLAIN: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), t)
    for p, t in (
        (
            r"^unknown SKU",
            "The shop sold “{value}”, which is neither an article nor a variant reference in the back "
            "office. Create that article in the back office, or map the shop label “{value}” to an existing reference, "
            "then replay.",
        ),
        (
            r"^order (?P<order>.+) has a rejected line (?P<other>\d+)",
            "Held back with the rest of order {order}: line "
            "{other} of the same order has a problem. Fix that line; this one is replayed with it.",
        ),
        (
            r"^no customer",
            "Nobody to bill: the order has neither an e-mail address nor a shop customer id. Add the "
            "customer's e-mail to the order in the shop and send it again, or dismiss it.",
        ),
        (
            r"^required value is empty",
            "The column “{field}” is empty on line {line}; the back office needs it. Correct "
            "the order in the shop and send it again, or dismiss it.",
        ),
        (
            r"^expected (?P<n>\d+) fields as in the header, found (?P<f>\d+)",
            "Line {line} is cut or has extra "
            "columns ({f} instead of {n}): usually a separator inside a text that was not quoted. Export the order "
            "again from the shop.",
        ),
        (
            r"^not a number",
            "“{value}” in column “{field}” is not a number. Correct it in the shop and send the order again.",
        ),
        (
            r"^not a date",
            "“{value}” in column “{field}” is not a date. Correct it in the shop and send the order again.",
        ),
        (
            r"^order number (?P<number>\S+) is already",
            "The back office already has an order numbered {number} for "
            "another customer or shop order. Rename the order in the shop, "
            "or dismiss this one if it is the same order.",
        ),
        (
            r"^order (?P<sid>\S+) is already (?P<status>\w+): cancel it by hand",
            "The shop cancelled order {sid}, but "
            "it is already {status} in the back office: cancel it there by hand (credit note, return), then dismiss "
            "this row with a note.",
        ),
        (r"^not an email address", "“{value}” is not an e-mail address. Correct the customer in the shop."),
    )
)


def explain(field: str | None, value: str | None, reason: str, line: int | None = None) -> str:
    """The reason of a quarantined row in words a shop manager can act on (what is wrong, what
    to do). Unknown reasons keep the parser's own text, prefixed by where."""
    values = {"field": field or "", "value": value if value is not None else "", "line": line if line else "?"}
    for pattern, text in _EXPLAIN:
        match = pattern.search(reason or "")
        if match:
            return text.format(**values, **match.groupdict())
    where = f"line {values['line']}" + (f", column “{field}”" if field else "")
    shown = f" (value “{value}”)" if value not in (None, "") else ""
    return f"On {where}{shown}: {reason}."


def open_groups(conn: psycopg.Connection, *, limit: int = 500) -> list[QuarantineGroup]:
    """The open quarantined rows, grouped by file then order, oldest file first (rows a replay
    does not take, cancellations of orders already shipped, are shown too: the staff act on them)."""
    rows = conn.execute(
        "SELECT q.id, q.file_id, q.file, q.line, q.field, q.value, q.reason, q.raw, q.shop_order_id, "
        "coalesce(f.received_at, q.created_at) FROM passerelle.quarantine q "
        "LEFT JOIN passerelle.inbound_file f ON f.id = q.file_id WHERE q.status = 'open' "
        "ORDER BY coalesce(f.received_at, q.created_at), q.file, q.shop_order_id NULLS LAST, q.line, q.id LIMIT %s",
        (limit,),
    ).fetchall()
    groups: dict[tuple, QuarantineGroup] = {}
    for rid, file_id, file, line, fld, value, reason, raw, order, received in rows:
        key = (file_id, file, order if order else f"line-{line}")
        group = groups.setdefault(key, QuarantineGroup(file, file_id, order, received))
        group.rows.append(QuarantinedRow(rid, line, fld, value, reason, raw, explain(fld, value, reason, line)))
        if reason.startswith(_UNKNOWN_SKU) and value and value not in group.unknown_labels:
            group.unknown_labels.append(value)
    return list(groups.values())


def count_open(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM passerelle.quarantine WHERE status = 'open'").fetchone()[0]


def dismiss(conn: psycopg.Connection, ids: Sequence[int], note: str, *, by: str) -> int:
    """Close the open rows ``ids`` (status ``resolved``) with ``note``, saying who; rows already
    closed are left as they are. Returns the rows dismissed. Commits."""
    note = (note or "").strip()
    if not note:
        raise DeskError("note: a dismissal needs a note saying why (e.g. 'order re-entered by hand as WEB-1234')")
    if not ids:
        raise DeskError("rows: no quarantined row chosen to dismiss")
    with conn.transaction():
        return conn.execute(
            "UPDATE passerelle.quarantine SET status = 'resolved', note = %s, resolved_at = now(), resolved_by = %s "
            "WHERE id = ANY(%s) AND status = 'open'",
            (note, by, [int(i) for i in ids]),
        ).rowcount


def map_label(conn: psycopg.Connection, shop_label: str, reference: str, *, by: str, note: str | None = None) -> None:
    """Record that the shop's SKU ``shop_label`` is the back office's ``reference`` (an article or
    a variant). Replaces an earlier mapping of the same label. Commits."""
    label, ref = (shop_label or "").strip(), (reference or "").strip()
    if not label:
        raise DeskError("shop label: empty; give the SKU as the shop sends it")
    if not ref:
        raise DeskError(f"reference for shop label {label!r}: empty; give a back-office article or variant reference")
    if label == ref:
        raise DeskError(f"reference {ref!r}: the same as the shop label; nothing to map")
    with conn.transaction():
        known = conn.execute(
            "SELECT 1 FROM erp.article WHERE reference = %(r)s "
            "UNION ALL SELECT 1 FROM erp.variant WHERE reference = %(r)s",
            {"r": ref},
        ).fetchone()
        if not known:
            raise DeskError(
                f"reference {ref!r} (for shop label {label!r}): no article or variant with this "
                "reference in the back office; check its spelling, or create the article first"
            )
        conn.execute(
            "INSERT INTO passerelle.sku_alias (shop_sku, reference, note, created_by) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (shop_sku) DO UPDATE SET reference = EXCLUDED.reference, note = EXCLUDED.note, "
            "created_by = EXCLUDED.created_by, created_at = now()",
            (label, ref, note or None, by),
        )


def sku_aliases(conn: psycopg.Connection, labels: Iterable[str] | None = None) -> dict[str, str]:
    """Shop label -> back-office reference, for ``labels`` (one indexed lookup) or all."""
    if labels is None:
        rows = conn.execute("SELECT shop_sku, reference FROM passerelle.sku_alias ORDER BY shop_sku")
    else:
        rows = conn.execute(
            "SELECT shop_sku, reference FROM passerelle.sku_alias "
            "WHERE shop_sku IN (SELECT json_array_elements_text(%s::json))",
            (json_texts(labels, strip=True),),
        )
    return dict(rows.fetchall())


def apply_sku_aliases(conn: psycopg.Connection, parsed: Any) -> Any:
    """``parsed`` (a :class:`~passerelle.core.inbound.ParsedFile`) with the lines' mapped shop labels
    replaced by their back-office references; the same object when none is mapped."""
    from dataclasses import replace

    lines = parsed.lines
    if not len(lines):
        return parsed
    aliases = sku_aliases(conn, lines["sku"].dropna().unique())
    if not aliases:
        return parsed
    return replace(parsed, lines=lines.assign(sku=lines["sku"].map(lambda s: aliases.get(s, s))))


def replay(conn: psycopg.Connection, settings: Any) -> list[dict[str, Any]]:
    """Integrate again the open quarantined rows: the ``orders_in`` DAG's replay option, with the
    ``inbound`` rules and dialect of ``settings`` (:class:`passerelle.config.Settings`)."""
    from passerelle.core.integrate import inbound_settings, replay_quarantine

    rules, declared = inbound_settings(settings)
    conn.commit()
    return replay_quarantine(conn, rules=rules, declared=declared)


def summarise_replay(results: Iterable[Mapping[str, Any]]) -> str:
    """One sentence for the page: rows replayed, rows still open, files that failed."""
    results = list(results)
    if not results:
        return "Nothing to replay: no open quarantined row can be integrated again."
    done = sum(int(r.get("rows_replayed", 0)) for r in results)
    still = sum(int(r.get("rows_still_open", 0)) for r in results)
    errors = [f"{r['file']}: {r['error']}" for r in results if r.get("error")]
    text = f"Replayed {done} row(s) from {len(results)} file(s); {still} still open."
    return text + (" Failed: " + "; ".join(errors) if errors else "")


__all__ = [
    "DeskError",
    "QuarantineGroup",
    "QuarantinedRow",
    "apply_sku_aliases",
    "count_open",
    "dismiss",
    "explain",
    "map_label",
    "open_groups",
    "replay",
    "sku_aliases",
    "summarise_replay",
]
