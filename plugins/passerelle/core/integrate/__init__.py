"""Integrate the shop's inbound files into the back office, exactly once.

Plain functions over a psycopg (3) connection and bytes; no Airflow. One file, one
transaction (:func:`integrate_file`):

1. lock (one integrator at a time), look the file's sha256 up in ``passerelle.inbound_file``:
   already there (a rerun, a retry, the same file under another name) -> nothing is written;
2. read (:func:`passerelle.core.inbound.read_inbound`: every row and every order's amounts
   checked), then the rules that need the back office (:mod:`~passerelle.core.integrate.rules`):
   lines without a SKU matched (mapping, gift-card and custom-item articles, published titles),
   orders without a customer key given the walk-in customer or quarantined, orders with an
   unknown SKU to the rejects, VAT as the shop states it (disagreements flagged on the order),
   orders split by shop status (:func:`filter_orders`); every row read counted as integrated,
   quarantined or ignored;
3. COPY the frames into TEMP staging tables (made once per session, emptied at commit; the
   lines with the article and variant of their SKU, looked up once in step 2), then set-wise SQL
   (:mod:`~passerelle.core.integrate.writes`): customers (matched by shop
   customer id through ``passerelle.customer_link``, then by e-mail) and addresses upserted;
   orders inserted ``ON CONFLICT (shop_order_id) DO NOTHING`` (quotes as ``kind='quote'``),
   lines and payments for the newly inserted orders only, ``passerelle.order_ledger``;
   cancellations applied to orders already integrated; rejects to ``passerelle.quarantine``;
   the ledger row; commit.

What happens on the server afterwards (rejects CSV to the error folder, file to the archive) is
:func:`finish_file`, driven by the ledger row, so a crash between commit and archive only
leaves the archive to do. :func:`replay_quarantine` integrates again the open quarantined rows
once their cause is fixed; :func:`propose_reorders` writes reorder proposals.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
import psycopg

from passerelle.config import InboundSection, Settings
from passerelle.core import inbound as ib
from passerelle.core.integrate.rules import (
    DEFAULT_RULES,
    OrderSelection,
    attach_walk_in,
    filter_orders,
    known_skus,
    label_key,
    line_mappings,
    order_numbers,
    orders_held,
    published_titles,
    reject_held_aliases,
    reject_new_orders,
    reject_number_clashes,
    reject_unknown_skus,
    resolve_lines,
    resolve_vat,
    sku_references,
    status_rules,
    taken_numbers,
    vat_rates,
)
from passerelle.core.integrate.writes import (
    cancel_orders,
    insert_orders,
    request_credit_notes,
    stage,
    upsert_customers,
)
from passerelle.core.quarantine import apply_sku_aliases
from passerelle.db import copy_in

__all__ = [
    "DEFAULT_RULES",
    "LOCK_KEY",
    "FileResult",
    "OrderSelection",
    "Reorders",
    "archive_name",
    "complete_archives",
    "filter_orders",
    "finish_file",
    "inbound_settings",
    "integrate_file",
    "known_skus",
    "label_key",
    "order_numbers",
    "propose_reorders",
    "refuse_file",
    "reject_number_clashes",
    "reject_unknown_skus",
    "resolve_lines",
    "resolve_vat",
    "rejects_for_file",
    "rejects_name",
    "replay_quarantine",
    "sha256",
]

#: Advisory lock key: one integrator at a time, whatever the number of runs or workers.
LOCK_KEY = 0x5A55_0001


@dataclass
class FileResult:
    """What one file did: for the log, XCom and the run summary."""

    name: str
    sha256: str
    status: str  # integrated | duplicate | error
    file_id: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    duplicate_of: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# One file
# --------------------------------------------------------------------------------------------


def integrate_file(
    conn: psycopg.Connection,
    name: str,
    data: bytes,
    *,
    rules: Mapping[str, Any] | None = None,
    declared: Mapping[str, Any] | None = None,
) -> FileResult:
    """Integrate one file in one transaction (committed here), or nothing if already done.

    :param conn: the back office (psycopg 3); must not be inside a transaction.
    :param name: the file's name on the server (messages, ledger, quarantine).
    :param data: its bytes.
    :param rules: shop statuses ``integrate``/``quotes``/``cancels`` (default :data:`DEFAULT_RULES`),
        and optionally ``walk_in_customer`` (a back-office customer code), ``gift_card_article``
        and ``unmatched_line_article`` (back-office references): the ``inbound`` section's
        (:func:`inbound_settings`).
    :param declared: dialect options for :func:`read_inbound` (encoding, delimiter, decimal...).
    :raises InboundError: the file cannot be integrated: as a whole it cannot be read, or its
        content makes anything else fail (a value the back office refuses, an error nobody
        foresaw). The transaction is rolled back (nothing of the file is written) and the
        message names the file and the error: the caller refuses the file
        (:func:`refuse_file`) and goes on with the next one.
    :raises psycopg.Error: the database itself failed (connection lost, server restarting,
        missing schema): no file could be integrated, the run must stop.
    """
    digest = sha256(data)
    _idle(conn)
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            row = conn.execute("SELECT id, name FROM passerelle.inbound_file WHERE sha256 = %s", (digest,)).fetchone()
            if row:
                return FileResult(name, digest, "duplicate", file_id=row[0], duplicate_of=row[1])
            parsed = ib.read_inbound(name, data, declared=declared)
            file_id = conn.execute(
                "INSERT INTO passerelle.inbound_file (name, size, sha256, kind, status, header, delimiter, decimal) "
                "VALUES (%s, %s, %s, %s, 'integrated', %s, %s, %s) RETURNING id",
                (name, len(data), digest, parsed.kind, parsed.header, parsed.delimiter, parsed.decimal),
            ).fetchone()[0]
            counts, _ = _integrate_parsed(conn, parsed, file_id, rules or DEFAULT_RULES)
            conn.execute("UPDATE passerelle.inbound_file SET counts = %s WHERE id = %s", (json.dumps(counts), file_id))
    except ib.InboundError:
        raise
    except Exception as exc:
        if not _content_error(conn, exc):
            raise
        raise ib.InboundError(
            f"{name}: cannot be integrated: {_describe(exc)}; nothing of it was written, the file is refused whole"
        ) from exc
    return FileResult(name, digest, "integrated", file_id=file_id, counts=counts)


def _content_error(conn: psycopg.Connection, exc: Exception) -> bool:
    """Whether ``exc``, raised while integrating a file, comes from the file (refuse it, go on)
    rather than from the database or the machine (stop the run). The database's own failures
    (connection lost, server shutting down, a missing table, a lock timeout) are not the file's;
    values it refuses (``DataError``: overflow, NUL, bad encoding), a constraint the file's
    rows break (``IntegrityError``) and a value beyond the server's limits
    (``ProgramLimitExceeded``, an ``OperationalError``: an id too long for its index) are; so is
    anything raised by Python code on the file's content. A connection left broken is never the
    file's fault."""
    if isinstance(exc, MemoryError) or conn.closed or conn.broken:
        return False
    if isinstance(exc, psycopg.Error):
        return isinstance(exc, (psycopg.DataError, psycopg.IntegrityError, psycopg.errors.ProgramLimitExceeded))
    return True


def _describe(exc: Exception) -> str:
    """The error for a person: its type, message and, from PostgreSQL, where (a COPY's row)."""
    text = f"{type(exc).__name__}: {exc}".strip()
    context = getattr(getattr(exc, "diag", None), "context", None)
    if context:
        text += f" ({context.strip()})"
    return _storable(" ".join(text.split()))[:500]  # one line, for a log and a spreadsheet


def _idle(conn: psycopg.Connection) -> None:
    """Our transactions must be real ones, not savepoints inside the caller's."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise RuntimeError("integrate: the connection is inside a transaction; commit or roll back first")


def _integrate_parsed(
    conn: psycopg.Connection, parsed: ib.ParsedFile, file_id: int, rules: Mapping[str, Any], *, quarantine: bool = True
) -> tuple[dict[str, int], pd.DataFrame]:
    """The set-wise part, inside the caller's transaction. Returns counts and the rejects (the
    parser's and the back office checks'); when ``quarantine``, the rejects go to
    ``passerelle.quarantine`` (a replay handles its own)."""
    parsed = apply_sku_aliases(conn, parsed)  # shop labels mapped to references from the operator's desk
    walk_in_id = None
    if parsed.kind != ib.CUSTOMERS:
        labels = parsed.lines.loc[parsed.lines["sku"] == "", "label"].dropna().unique()
        parsed = resolve_lines(
            parsed,
            mappings=line_mappings(conn, labels),
            titles=published_titles(conn, labels),
            gift_card_article=rules.get("gift_card_article"),
            unmatched_line_article=rules.get("unmatched_line_article"),
        )
        walk_in = rules.get("walk_in_customer")
        if walk_in:
            row = conn.execute("SELECT id FROM erp.customer WHERE code = %s", (walk_in,)).fetchone()
            walk_in_id = row[0] if row else None
        parsed = attach_walk_in(parsed, walk_in, walk_in_id)
    references = sku_references(conn, parsed.lines["sku"].unique())  # articles and variants of the file's SKUs
    parsed = reject_unknown_skus(parsed, references["reference"])
    parsed = reject_number_clashes(parsed, taken_numbers(conn, parsed.orders["shop_order_id"]))
    keys = [*parsed.aliases["alias"], *parsed.aliases["shop_order_id"]]  # one probe: held under either key
    parsed = reject_held_aliases(parsed, orders_held(conn, keys))
    groups = status_rules(rules)
    creating = [s for g in ("integrate", "quotes", "awaiting_payment") for s in groups.get(g, ())]
    parsed = reject_new_orders(parsed, orders_held(conn, parsed.if_new["shop_order_id"]), creating)
    if parsed.kind != ib.CUSTOMERS:
        parsed = resolve_vat(parsed, vat_rates(references))
    sel = filter_orders(parsed, **groups)
    wanted = pd.concat(
        [
            sel.create.assign(kind="order", awaiting=False),
            sel.quotes.assign(kind="quote", awaiting=False),
            sel.awaiting.assign(kind="order", awaiting=True),
        ],
        ignore_index=True,
    )
    wanted["number"] = order_numbers(wanted["shop_order_id"])
    keep = set(wanted["shop_order_id"])
    if parsed.kind != ib.CUSTOMERS:  # customers of an order file: those of the orders integrated
        pairs = wanted[["shop_customer_id", "email"]].drop_duplicates()
        pairs = pairs[pairs["shop_customer_id"].notna() | pairs["email"].notna()]  # walk-in orders: no customer
        customers = parsed.customers.merge(pairs, how="inner", on=["shop_customer_id", "email"])
        addresses = parsed.addresses[parsed.addresses["shop_order_id"].isin(keep)]
        parsed = replace(parsed, customers=customers, addresses=addresses)
    lines = parsed.lines[parsed.lines["shop_order_id"].isin(keep)]
    payments = parsed.payments[parsed.payments["shop_order_id"].isin(keep)]
    counts: dict[str, int] = {"rows_read": int(parsed.rows_read), **{f"orders_{k}": v for k, v in sel.counts.items()}}

    stage(conn, parsed, wanted, lines, payments, sel.cancels, references)
    counts.update(upsert_customers(conn))
    counts.update(insert_orders(conn, file_id, walk_in_id))
    counts.update(cancel_orders(conn, file_id, parsed.name, quarantine=quarantine, staged=len(sel.cancels)))
    counts.update(request_credit_notes(conn, parsed.name))
    # Orders whose only news is a refund (status in no group) were handed to the back office too.
    refunded = {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT r.shop_order_id FROM s_refund r JOIN erp.sales_order o "
            "ON o.shop_order_id = r.shop_order_id AND o.kind = 'order'"
        )
    }
    counts.update(_row_outcomes(parsed, sel, refunded))
    rejects = parsed.rejects
    if quarantine and len(rejects):
        q = rejects.assign(file_id=file_id)
        copy_in(
            conn,
            "passerelle.quarantine",
            q,
            ["file_id", "file", "line", "field", "value", "reason", "raw", "shop_order_id"],
        )
    counts["rejected_rows"] = int(rejects["line"].nunique())
    counts["rejected_orders"] = int(rejects["shop_order_id"].dropna().nunique())
    return counts, rejects


def _row_outcomes(parsed: ib.ParsedFile, sel: OrderSelection, refunded: set[str] = frozenset()) -> dict[str, int]:
    """Every row read is integrated, quarantined or ignored, and said so: ``rows_integrated``
    (rows of the orders handed to the back office: created, awaiting their payment, quotes,
    cancellations, refunds of orders it holds (``refunded``), or already there; the customers
    kept of a customers file), ``rows_quarantined`` (rows with a reject),
    ``rows_ignored`` (rows of orders whose status is in no group; a customer given again further
    down a customers file). Their sum is ``rows_read``."""
    quarantined = int(parsed.rejects["line"].nunique())
    if parsed.kind == ib.CUSTOMERS:
        integrated = len(parsed.customers)
        return {
            "rows_integrated": integrated,
            "rows_quarantined": quarantined,
            "rows_ignored": int(parsed.rows_read) - quarantined - integrated,
        }
    handed = (
        set(sel.create["shop_order_id"])
        | set(sel.quotes["shop_order_id"])
        | set(sel.cancels["shop_order_id"])
        | set(sel.awaiting.get("shop_order_id", ()))
        | set(refunded)
    )
    rows = parsed.lines[["line", "shop_order_id"]].drop_duplicates("line")
    integrated = int(rows["shop_order_id"].isin(handed).sum())
    return {"rows_integrated": integrated, "rows_quarantined": quarantined, "rows_ignored": int(len(rows)) - integrated}


# --------------------------------------------------------------------------------------------
# After commit: rejects CSV and archive
# --------------------------------------------------------------------------------------------


def rejects_for_file(conn: psycopg.Connection, file_id: int) -> pd.DataFrame:
    """The quarantined rows of one file, as the parser's rejects frame."""
    rows = conn.execute(
        "SELECT file, line, field, value, reason, raw, shop_order_id FROM passerelle.quarantine "
        "WHERE file_id = %s ORDER BY line, id",
        (file_id,),
    ).fetchall()
    return pd.DataFrame(rows, columns=ib.REJECT_COLUMNS)


def archive_name(name: str, digest: str) -> str:
    """Name in the archive folder: the content's hash prefix avoids clashes between files
    dropped under the same name on different days."""
    return f"{digest[:12]}_{name}"


def rejects_name(name: str, digest: str) -> str:
    stem = name.rsplit(".", 1)[0]
    return f"{stem}.{digest[:8]}.rejects.csv"


def finish_file(
    conn: psycopg.Connection,
    result: FileResult,
    *,
    put: Callable[[str, bytes], None],
    move: Callable[[str], str],
    planned: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """After commit: upload the file's rejects (if any) with ``put(name, bytes)``, move the
    file away with ``move(archive_name) -> path``, mark the ledger row archived.

    Driven by the ledger row, not by this run: a file whose row is still ``integrated`` (a crash
    after commit, before the archive) gets its rejects and its archive now, even when this run
    found it a duplicate. Safe to run again.

    :param planned: ``planned(archive_name) -> path``, the path ``move`` will give, known before the
        move: it is written to the ledger row (``archived_as``, status still ``integrated``) before
        the move, so that a kill between the move and the ledger's update leaves a row that names
        where its file went, and :func:`complete_archives` finishes it on the next run.
    """
    _idle(conn)
    row = conn.execute("SELECT status FROM passerelle.inbound_file WHERE id = %s", (result.file_id,)).fetchone()
    pending = bool(row) and row[0] == "integrated"
    out: dict[str, Any] = {}
    if pending:
        rejects = rejects_for_file(conn, result.file_id)
        conn.commit()
        if len(rejects):
            rname = rejects_name(result.name, result.sha256)
            put(rname, ib.rejects_csv(rejects))
            out["rejects_file"] = rname
    target = archive_name(result.name, result.sha256)
    if pending and planned is not None:
        conn.execute(
            "UPDATE passerelle.inbound_file SET archived_as = %s WHERE id = %s AND status = 'integrated'",
            (planned(target), result.file_id),
        )
    conn.commit()
    archived = move(target)
    out["archived_as"] = archived
    if pending:
        _mark_archived(conn, result.file_id, archived)
    return out


def _mark_archived(conn: psycopg.Connection, file_id: int, path: str) -> None:
    conn.execute(
        "UPDATE passerelle.inbound_file SET status = 'archived', archived_at = now(), archived_as = %s WHERE id = %s",
        (path, file_id),
    )
    conn.commit()


def complete_archives(conn: psycopg.Connection, exists: Callable[[str], bool]) -> list[str]:
    """Finish the ledger rows a kill left between the archive move and the ledger's update.

    A row still ``integrated`` whose planned archive path (``archived_as``, written by
    :func:`finish_file` before the move) ``exists(path)`` on the server was moved: it becomes
    ``archived``. A row whose file is not there yet is left alone: its file is still to be moved
    (the next :func:`finish_file` of it does). Returns the paths completed. Commits.
    """
    _idle(conn)
    rows = conn.execute(
        "SELECT id, archived_as FROM passerelle.inbound_file "
        "WHERE status = 'integrated' AND archived_as IS NOT NULL ORDER BY id"
    ).fetchall()
    conn.commit()
    done = []
    for file_id, path in rows:
        if exists(path):
            _mark_archived(conn, file_id, path)
            done.append(path)
    return done


# --------------------------------------------------------------------------------------------
# Replay
# --------------------------------------------------------------------------------------------


#: Quarantined rows a replay takes: not the cancellations of orders already shipped or invoiced
#: (those are for the staff; nothing to fix in the file).
_REPLAYABLE = "NOT (q.field = 'status' AND q.value = 'cancelled')"


def replay_quarantine(
    conn: psycopg.Connection, *, rules: Mapping[str, Any] | None = None, declared: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Integrate again the open quarantined rows, one transaction per original file.

    Fix the cause first: add the missing article, or correct the row's ``raw`` text in
    ``passerelle.quarantine``. Rows that now pass become ``replayed``; rows still refused stay
    ``open`` with their new reason. Orders already integrated are never integrated twice.
    """
    files = conn.execute(
        "SELECT DISTINCT f.id, f.name, f.header, f.delimiter, f.decimal, f.kind FROM passerelle.quarantine q "
        "JOIN passerelle.inbound_file f ON f.id = q.file_id WHERE q.status = 'open' AND f.header IS NOT NULL "
        f"AND {_REPLAYABLE} ORDER BY f.id"
    ).fetchall()
    conn.commit()
    results = []
    _idle(conn)
    for file_id, name, header, delimiter, decimal, kind in files:
        try:
            result = _replay_file(conn, file_id, name, header, delimiter, decimal, kind, rules, declared)
        except Exception as exc:  # one file's rows failing again must not stop the others' replay
            if not _content_error(conn, exc):
                raise
            open_rows = conn.execute(
                "SELECT count(DISTINCT line) FROM passerelle.quarantine WHERE file_id = %s AND status = 'open'",
                (file_id,),
            ).fetchone()[0]
            conn.commit()
            result = {
                "file": name,
                "file_id": file_id,
                "rows_replayed": 0,
                "rows_still_open": int(open_rows),
                "error": _describe(exc),
            }
        if result:
            results.append(result)
    return results


def _replay_file(
    conn: psycopg.Connection,
    file_id: int,
    name: str,
    header: str,
    delimiter: str,
    decimal: str,
    kind: str,
    rules: Mapping[str, Any] | None,
    declared: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """Replay the open rows of one file in one transaction; None when it has none left."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        rows = conn.execute(
            "SELECT line, min(raw) FROM passerelle.quarantine q WHERE file_id = %s AND status = 'open' "
            f"AND {_REPLAYABLE} GROUP BY line ORDER BY line",
            (file_id,),
        ).fetchall()
        if not rows:
            return None
        text = "\n".join([header, *[r[1] or "" for r in rows]]) + "\n"
        opts = {**(declared or {}), "encoding": "utf-8", "delimiter": delimiter, "decimal": decimal, "kind": kind}
        parsed = ib.read_inbound(f"{name} (replay)", text.encode("utf-8"), declared=opts)
        # Replayed physical line i+2 is the original line rows[i].
        original = {i + 2: r[0] for i, r in enumerate(rows)}
        remap = lambda f: f.assign(line=f["line"].map(original).astype("int64"))
        parsed = replace(
            parsed,
            name=name,
            orders=remap(parsed.orders),
            lines=remap(parsed.lines),
            payments=remap(parsed.payments),
            customers=remap(parsed.customers),
            addresses=remap(parsed.addresses),
            rejects=remap(parsed.rejects).assign(file=name),
            if_new=remap(parsed.if_new),
            aliases=remap(parsed.aliases),
            raw=pd.Series(parsed.raw.to_numpy(), index=parsed.raw.index.map(original)),
        )
        counts, rejects = _integrate_parsed(conn, parsed, file_id, rules or DEFAULT_RULES, quarantine=False)
        still = rejects.drop_duplicates("line").set_index("line")["reason"]
        done = conn.execute(
            "UPDATE passerelle.quarantine q SET status = 'replayed', replayed_at = now() "
            f"WHERE file_id = %s AND status = 'open' AND {_REPLAYABLE} AND NOT (line = ANY(%s))",
            (file_id, [int(x) for x in still.index]),
        ).rowcount
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE passerelle.quarantine SET reason = %s WHERE file_id = %s AND line = %s AND status = 'open'",
                [(reason, file_id, int(line)) for line, reason in still.items()],
            )
        return {"file": name, "file_id": file_id, "rows_replayed": done, "rows_still_open": int(len(still)), **counts}


# --------------------------------------------------------------------------------------------
# Reorder proposals
# --------------------------------------------------------------------------------------------

#: Every stock row's projected stock (web available stock less the open web order quantities),
#: with its article's supplier, minimum and reorder quantity: what the reorder rule reads.
_REORDER_INPUTS = """
WITH open_web AS (
    SELECT l.article_id, l.variant_id, sum(l.quantity - l.shipped_qty) AS qty
      FROM erp.sales_order o JOIN erp.sales_order_line l ON l.order_id = o.id
     WHERE o.origin = 'web' AND o.kind = 'order' AND o.status IN ('awaiting_payment', 'confirmed', 'prepared')
     GROUP BY l.article_id, l.variant_id
), projected AS (
    SELECT sl.article_id, sl.variant_id, sl.available_qty - coalesce(w.qty, 0) AS projected_qty
      FROM passerelle_src.stock_level sl
      LEFT JOIN open_web w ON w.article_id = sl.article_id AND w.variant_id IS NOT DISTINCT FROM sl.variant_id
), inputs AS (
    SELECT p.article_id, p.variant_id, p.projected_qty, a.supplier_id, a.min_stock, a.reorder_qty
      FROM projected p JOIN erp.article a ON a.id = p.article_id
)"""

#: The fingerprint of the rule's inputs: unchanged, the proposals would come out the same.
_REORDER_BASIS = (
    _REORDER_INPUTS
    + """
SELECT md5(coalesce(string_agg(concat_ws(':', article_id, variant_id, projected_qty::text, supplier_id,
                                         min_stock::text, reorder_qty::text), ','
                               ORDER BY article_id, variant_id NULLS FIRST), ''))
  FROM inputs"""
)

#: Set-wise: an open proposal (status ``proposed``) of the same article and variant is updated to
#: the new figures (when they differ), any other wanted proposal inserted; never two open ones. An
#: open proposal no longer wanted (its stock is back at its minimum: a delivery, a cancelled web
#: order, a lower minimum) is withdrawn: the buyer never acted on it, and it would have them
#: order what is in stock.
#: ``NOT EXISTS`` rather than ``ON CONFLICT``, so that a back office without the partial unique
#: index ``reorder_open`` (include/sql/erp/20_orders.sql) gets no duplicate either.
_REORDER = (
    _REORDER_INPUTS
    + """, wanted AS (
    SELECT supplier_id, article_id, variant_id, projected_qty, min_stock,
           greatest(reorder_qty, min_stock - projected_qty) AS proposed_qty
      FROM inputs WHERE projected_qty < min_stock
), updated AS (
    UPDATE erp.reorder_proposal r
       SET supplier_id = w.supplier_id, projected_qty = w.projected_qty, min_stock = w.min_stock,
           proposed_qty = w.proposed_qty
      FROM wanted w
     WHERE r.status = 'proposed' AND r.article_id = w.article_id AND r.variant_id IS NOT DISTINCT FROM w.variant_id
       AND (r.supplier_id, r.projected_qty, r.min_stock, r.proposed_qty)
           IS DISTINCT FROM (w.supplier_id, w.projected_qty, w.min_stock, w.proposed_qty)
    RETURNING r.id
), inserted AS (
    INSERT INTO erp.reorder_proposal (supplier_id, article_id, variant_id, projected_qty, min_stock, proposed_qty)
    SELECT w.supplier_id, w.article_id, w.variant_id, w.projected_qty, w.min_stock, w.proposed_qty
      FROM wanted w
     WHERE NOT EXISTS (SELECT 1 FROM erp.reorder_proposal r
                        WHERE r.status = 'proposed' AND r.article_id = w.article_id
                          AND r.variant_id IS NOT DISTINCT FROM w.variant_id)
    RETURNING id
), withdrawn AS (
    DELETE FROM erp.reorder_proposal r
     WHERE r.status = 'proposed'
       AND NOT EXISTS (SELECT 1 FROM wanted w
                        WHERE w.article_id = r.article_id AND w.variant_id IS NOT DISTINCT FROM r.variant_id)
    RETURNING r.id
)
SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM updated), (SELECT count(*) FROM withdrawn)"""
)

#: pg_advisory_xact_lock key of the reorder rule (one run at a time; any constant: "reorder").
_REORDER_LOCK = 0x72656F72646572


@dataclass(frozen=True)
class Reorders:
    """What :func:`propose_reorders` did: proposals ``added``, open ones ``updated`` and open ones
    ``withdrawn`` (no longer needed), or why nothing was computed (``skipped``)."""

    added: int = 0
    updated: int = 0
    withdrawn: int = 0
    skipped: str | None = None


def propose_reorders(conn: psycopg.Connection, *, force: bool = False) -> Reorders:
    """Reorder proposals (per supplier) for articles and variants whose projected stock (web
    available stock less open web order quantities) is below the article's minimum. Commits.

    Recomputed only when what the rule reads changed since the last proposals (stock, open web
    orders, an article's minimum, reorder quantity or supplier: their fingerprint is kept in
    ``passerelle.reorder_basis``), or with *force*; otherwise nothing is written and
    ``skipped`` says why. An open proposal (status ``proposed``) of the same article and variant
    is updated to the new figures, never doubled, and withdrawn (deleted) once its article or
    variant is back at its minimum; proposals the buyer ordered or dismissed are left alone.
    """
    _idle(conn)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_REORDER_LOCK,))
        fingerprint = conn.execute(_REORDER_BASIS).fetchone()[0]
        last = conn.execute("SELECT fingerprint, computed_at FROM passerelle.reorder_basis").fetchone()
        if last and last[0] == fingerprint and not force:
            return Reorders(
                skipped="neither the stock nor the open web orders (nor an article's minimum, reorder quantity "
                f"or supplier) changed since the proposals computed at {last[1]:%Y-%m-%d %H:%M:%S %z}"
            )
        added, updated, withdrawn = conn.execute(_REORDER).fetchone()
        conn.execute(
            "INSERT INTO passerelle.reorder_basis (fingerprint, proposals, computed_at) VALUES (%s, %s, now()) "
            "ON CONFLICT (id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, proposals = EXCLUDED.proposals, "
            "computed_at = EXCLUDED.computed_at",
            (fingerprint, added + updated),
        )
    return Reorders(added=int(added), updated=int(updated), withdrawn=int(withdrawn))


# --------------------------------------------------------------------------------------------
# Configuration and whole-file refusals
# --------------------------------------------------------------------------------------------


def inbound_settings(
    settings: Settings | InboundSection, shop_timezone: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``inbound`` section as (rules, declared dialect for :func:`read_inbound`); the rules
    are the status groups plus, when set, ``walk_in_customer``, ``gift_card_article`` and
    ``unmatched_line_article``.

    *settings* is the whole :class:`passerelle.config.Settings` or its ``inbound`` section (then
    *shop_timezone* is the files' default timezone, else ``Europe/Paris``); the configuration
    model has checked it (a status not among the parser's, one in two groups...).
    """
    if isinstance(settings, InboundSection):
        section, timezone = settings, shop_timezone or "Europe/Paris"
    else:
        section, timezone = settings.inbound, shop_timezone or settings.shop.timezone
    return section.rules, section.declared(timezone)


def refuse_file(conn: psycopg.Connection, name: str, error: Exception) -> None:
    """A file that cannot be read at all goes to the quarantine as one row (line 0) with the
    parser's message (once: the same file refused again adds no row); the caller moves it to the
    error folder. Commits."""
    _idle(conn)
    with conn.transaction():
        # Once per file and reason: a run killed before the file left the server refuses it again.
        conn.execute(
            "INSERT INTO passerelle.quarantine (file, line, field, reason) SELECT %(f)s, 0, 'file', %(r)s "
            "WHERE NOT EXISTS (SELECT 1 FROM passerelle.quarantine WHERE file = %(f)s AND line = 0 "
            "AND field = 'file' AND reason = %(r)s AND status = 'open')",
            {"f": _storable(name), "r": _storable(str(error))},
        )


def _storable(text: str) -> str:
    """``text`` as PostgreSQL can store it: NUL and undecodable bytes (lone surrogates) shown
    as escapes (a file's name or an error quoting its content may hold them)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
