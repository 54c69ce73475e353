"""What a run says: its note ("sent N rows in K files; M rows quarantined, top reasons"), the
reject reasons counted, the public addresses of what it produced. Plain Python and SQL over the
state schema; the Airflow side (note, log lines, links, asset events) is
:mod:`passerelle.operators.outcome`.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

#: Reasons named in a run's note; the log has a line for each.
TOP_REASONS = 3

#: Counts of an entity that are rows sent to the shop (``unchanged`` and ``rejected`` are not).
SENT_KEYS = ("created", "changed", "removed")

#: A row's own values inside a reason: quoted text, numbers and references of 3 digits or more,
#: line and row numbers.
_VARYING = re.compile(r"'[^']*'|\"[^\"]*\"|#?\b[A-Za-z]*-?\d{3,}[\w./-]*|(?<=\bline )\d+|(?<=\brow )\d+")


def reason_kind(reason: str) -> str:
    """*reason* with its row's own values (quoted text, numbers, references) made generic, so that
    "order 1042 has a rejected line" and "order 1043 has a rejected line" count as one reason."""
    return _VARYING.sub("…", str(reason)).strip()


def count_reasons(reasons: Iterable[tuple[str | None, str, int]]) -> dict[str, int]:
    """``{"field: reason": rows}`` from (field, reason, rows) tuples, most frequent first."""
    totals: Counter[str] = Counter()
    for field, reason, rows in reasons:
        label = reason_kind(reason)
        totals[f"{field}: {label}" if field else label] += int(rows)
    return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))


def sent_rows(counts: Mapping[str, Any]) -> int:
    """Rows a batch sent: per entity, created + changed + removed, less the rows refused before
    sending (``rejected``, counted among the created or changed). A full send counts every row it
    sends as created or changed (:func:`passerelle.core.differ.diff_entity`)."""
    total = 0
    for c in counts.values():
        if isinstance(c, Mapping):
            total += max(sum(int(c.get(k, 0) or 0) for k in SENT_KEYS) - int(c.get("rejected", 0) or 0), 0)
    return total


def rejected_rows(counts: Mapping[str, Any]) -> int:
    """Rows a batch refused to send (``rejected``, over its entities)."""
    return sum(int(c.get("rejected", 0) or 0) for c in counts.values() if isinstance(c, Mapping))


def _n(value: int, word: str) -> str:
    return f"{value:,} {word}{'' if value == 1 else 's'}".replace(",", "\u202f")


def top_reasons(reasons: Mapping[str, int], limit: int = TOP_REASONS) -> str:
    """``"unknown article (4), bad price (2)"`` for the *limit* most frequent reasons (and "…")."""
    items = list(reasons.items())
    text = ", ".join(f"{reason} ({rows})" for reason, rows in items[:limit])
    return text + (", …" if len(items) > limit else "")


def note_text(
    *,
    verb: str,
    rows: int,
    files: int,
    quarantined: int = 0,
    reasons: Mapping[str, int] | None = None,
    dry_run: bool = False,
    more: Iterable[str] = (),
) -> str:
    """A run's note: "sent 120 rows in 3 files; 6 rows quarantined, top reasons: …".

    :param verb: what the run did with its rows ("sent", "integrated", "reported").
    :param quarantined: rows refused by this run (a replay does not count again rows it leaves open).
    :param more: further clauses, e.g. "2 rows replayed".
    """
    head = f"{'dry run: would have ' if dry_run else ''}{verb} {_n(rows, 'row')} in {_n(files, 'file')}"
    parts = [head, *more]
    if quarantined:
        tail = f"{_n(quarantined, 'row')} quarantined"
        if reasons:
            tail += f", top reasons: {top_reasons(reasons)}"
        parts.append(tail)
    else:
        parts.append("nothing quarantined")
    return "; ".join(parts)


def public_url(base: str, path: str) -> str:
    """The address of *path* (on the shop's server) under ``shop.public_base_url``; "" if none."""
    if not base or not path:
        return ""
    return base.rstrip("/") + "/" + posixpath.normpath(path).lstrip("/")


# --------------------------------------------------------------------------- reasons from the state schema


def batch_reasons(conn: Any, batch_id: int) -> dict[str, int]:
    """Reasons of the rows a batch refused to send (``passerelle.outbound_reject``), rows per reason."""
    rows = conn.execute(
        "SELECT field, reason, count(DISTINCT (entity, key)) FROM passerelle.outbound_reject WHERE batch_id = %s "
        "GROUP BY field, reason",
        (batch_id,),
    ).fetchall()
    return count_reasons(rows)


def quarantine_reasons(conn: Any, file_ids: Iterable[int]) -> dict[str, int]:
    """Reasons of the rows quarantined from the files *file_ids* and still open, rows per reason."""
    ids = [int(i) for i in file_ids]
    if not ids:
        return {}
    rows = conn.execute(
        "SELECT field, reason, count(DISTINCT (file_id, line)) FROM passerelle.quarantine "
        "WHERE file_id = ANY(%s) AND status = 'open' GROUP BY field, reason",
        (ids,),
    ).fetchall()
    return count_reasons(rows)


#: Counts of a replay that are not the run's own: the rows read again and those still refused
#: were counted when their file came in (a replay does not count them twice).
REPLAY_RECOUNTED = ("rows_read", "rejected_rows", "rejected_orders")


def inbound_totals(files: Iterable[Mapping[str, Any]], replayed: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """The run's counts: every file's counts, and what the replay integrated (``rows_replayed``,
    ``rows_still_open``, orders created...), not the rows it read again or leaves refused."""
    totals: dict[str, int] = {}
    parts = [f.get("counts", {}) for f in files]
    parts += [
        {
            k: v
            for k, v in r.items()
            if isinstance(v, int) and not isinstance(v, bool) and k != "file_id" and k not in REPLAY_RECOUNTED
        }
        for r in replayed
    ]
    for part in parts:
        for k, v in part.items():
            totals[k] = totals.get(k, 0) + int(v)
    return totals


__all__ = [
    "REPLAY_RECOUNTED",
    "SENT_KEYS",
    "TOP_REASONS",
    "batch_reasons",
    "count_reasons",
    "inbound_totals",
    "note_text",
    "public_url",
    "quarantine_reasons",
    "reason_kind",
    "sent_rows",
    "top_reasons",
]
