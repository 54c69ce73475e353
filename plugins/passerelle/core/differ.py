"""Delta, new-only or full, computed set-wise in PostgreSQL.

For each exported entity, the content hash of every selected row of its view is compared with
the snapshot of what the shop last confirmed; created, changed and removed keys are recorded
in ``passerelle.batch_row`` in the same statement (a FULL JOIN, never a Python loop). A batch
is tied to a flow and a run key (the logical date), so computing it again for the same run key
returns the batch already built: a rerun republishes the same delta.

The snapshot advances only in :func:`confirm_batch`, once the upload is confirmed.

Modes (:data:`MODES`): ``delta`` sends what was created, changed or removed since the last
confirmed send; ``new`` only what the shop never confirmed (created rows: new articles, their
variants, new families...), leaving changes and removals for the next delta (they are not in the
batch, so the snapshot keeps its old hashes for them); ``full`` sends everything and resets
the snapshot.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace

import psycopg

from passerelle.core.batches import unrecorded_publication
from passerelle.core.summary import record_late_confirm
from passerelle.db import local_settings

log = logging.getLogger(__name__)

VIEW_SCHEMA = "passerelle_src"

#: The outbound modes (see the module's docstring); the first is the scheduled runs' default.
MODES: tuple[str, ...] = ("delta", "new", "full")


def check_mode(mode: object) -> str:
    """*mode* if it is one of :data:`MODES`; else a ValueError naming the value."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(repr(m) for m in MODES)}, got {mode!r}")
    return mode  # type: ignore[return-value]


@dataclass(frozen=True)
class Entity:
    """One exported entity: its view, the alias its rows take, and the predicate selecting
    the rows for the shop (written with that alias)."""

    name: str
    where: str = "TRUE"
    alias: str = "v"
    #: What identifies a removed row to the shop besides its key (kept in the snapshot,
    #: since a removed row is no longer in the view): a category's name, a variant's article.
    #: A column of the view, or an SQL expression over the alias (text).
    label: str = "key"

    @property
    def view(self) -> str:
        return f"{VIEW_SCHEMA}.{self.name}"

    @property
    def label_sql(self) -> str:
        return f"{self.alias}.{self.label}" if self.label.isidentifier() else f"({self.label})"


def catalog_entities(selection_rule: str, names: Sequence[str] | None = None) -> list[Entity]:
    """The catalog's entities, in the order the shop must import them.

    Articles: the web flag and the configured rule (written with alias ``a``). Variants
    follow their article: a variant is sent only while its article is selected.
    """
    rule = f"(a.web AND ({selection_rule}))"
    entities = [
        # A removed family is found again by its id, under its parent, and needs its name.
        Entity("family", label="v.family_id || E'\\t' || coalesce(v.parent_family_id::text, '') || E'\\t' || v.name"),
        Entity("brand", label="name"),
        Entity("supplier", label="name"),
        # The digest of the article's photos, then its name: a deactivation row carries the name
        # last sent, and a changed row's photos are sent only if the digest changed (the label
        # recorded for the row against the snapshot's, see passerelle.core.export.write_files).
        Entity("article", where=rule, alias="a", label="md5(coalesce(a.images, '')) || E'\\t' || coalesce(a.name, '')"),
        Entity(
            "variant",
            label="removal_label",
            where=f"EXISTS (SELECT 1 FROM {VIEW_SCHEMA}.article a WHERE a.key = v.article_reference AND {rule})",
        ),
    ]
    wanted = list(names or [e.name for e in entities])
    unknown = set(wanted) - {e.name for e in entities}
    if unknown:
        raise ValueError(f"unknown catalog entities {sorted(unknown)}; expected some of {[e.name for e in entities]}")
    return [e for e in entities if e.name in wanted]


#: The customers flow's entities, in the order the shop must import them (addresses find their
#: customer by e-mail, so customers come first).
CUSTOMER_ENTITIES: tuple[str, ...] = ("customer", "customer_address")


def customer_selection(alias: str, code: str = "key") -> str:
    """The customers the shop gets (SQL over the customer view's alias): web customers with an
    e-mail (a shop account is an e-mail), except those the shop created itself.

    A customer who signed up on the site comes back through orders_in with the shop's id
    (``passerelle.customer_link``): the shop has it already, and PrestaShop's import, which finds
    customers by ID only, would create it a second time. Such a customer is sent only if it was
    sent before (it is in the snapshot), so that getting linked later never reads as a removal.
    """
    return (
        f"({alias}.web AND nullif(btrim({alias}.email), '') IS NOT NULL AND ("
        f"NOT EXISTS (SELECT 1 FROM passerelle.customer_link l WHERE l.customer_id = {alias}.customer_id) "
        f"OR EXISTS (SELECT 1 FROM passerelle.snapshot s WHERE s.entity = 'customer' AND s.key = {alias}.{code})))"
    )


def customer_entities(names: Sequence[str] | None = None) -> list[Entity]:
    """The customers flow's entities: customers, then their addresses (billing, delivery).

    An address follows its customer: it is sent only while its customer is selected. Labels keep
    what a removal row needs once the row has left the view: the e-mail last sent (and, for an
    address, its kind), since shops find customers by e-mail.
    """
    entities = [
        Entity("customer", where=customer_selection("v"), label="lower(btrim(coalesce(v.email, '')))"),
        Entity(
            "customer_address",
            where=f"EXISTS (SELECT 1 FROM {VIEW_SCHEMA}.customer c WHERE c.key = v.customer "
            f"AND {customer_selection('c')})",
            label="lower(btrim(coalesce(v.customer_email, ''))) || E'\\t' || v.kind",
        ),
    ]
    wanted = list(names or CUSTOMER_ENTITIES)
    unknown = set(wanted) - set(CUSTOMER_ENTITIES)
    if unknown:
        raise ValueError(f"unknown customers entities {sorted(unknown)}; expected some of {list(CUSTOMER_ENTITIES)}")
    return [e for e in entities if e.name in wanted]


@dataclass
class Batch:
    id: int
    flow: str
    run_key: str
    mode: str
    status: str
    entities: list[str]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    reused: bool = False
    #: Entity -> a FROM item giving the rows this batch sends, whole, as the view gave them
    #: (:func:`kept_rows`, :func:`diff_entity` with the view's columns); gone when the building
    #: transaction ends.
    kept: dict[str, str] = field(default_factory=dict)
    #: Entities whose rows are not in ``passerelle.batch_row`` yet (a batch built with ``keep_rows``:
    #: its writer records them, :func:`record_batch_rows`, before the building transaction ends).
    unrecorded: list[str] = field(default_factory=list)
    #: The run key the batch was built for, when this run took it up (its publication cut before it
    #: was recorded: :func:`build_batch`).
    taken_from: str | None = None
    #: What this run was asked for and did not build, having taken up another batch instead
    #: ("a full send of article, variant"); None when the batch taken up holds it.
    not_built: str | None = None
    #: A dry run's: the earlier batches it counted as on the shop, as the next real build will
    #: (:func:`counted_as_sent`), each said in a sentence for the run's summary.
    counted: list[str] = field(default_factory=list)

    def as_xcom(self) -> dict:
        return {
            "batch_id": self.id,
            "flow": self.flow,
            "run_key": self.run_key,
            "mode": self.mode,
            "status": self.status,
            "entities": self.entities,
            "counts": self.counts,
            "reused": self.reused,
            **({"taken_from": self.taken_from} if self.taken_from else {}),
            **({"not_built": self.not_built} if self.not_built else {}),
            **({"counted": self.counted} if self.counted else {}),
        }


def find_batch(
    conn: psycopg.Connection, flow: str, run_key: str | None = None, *, batch_id: int | None = None
) -> Batch | None:
    """The flow's batch of *run_key* (or of id *batch_id*), as built, or None."""
    row = conn.execute(
        "SELECT id, run_key, mode, status, entities, counts FROM passerelle.batch WHERE flow = %s AND "
        + ("id = %s" if batch_id is not None else "run_key = %s"),
        (flow, batch_id if batch_id is not None else run_key),
    ).fetchone()
    if row is None:
        return None
    return Batch(row[0], flow, row[1], row[2], row[3], list(row[4]), row[5], reused=True)


def first_run(conn: psycopg.Connection, entities: Sequence[Entity]) -> bool:
    """True when the shop never confirmed anything for these entities: the send must be full."""
    row = conn.execute(
        "SELECT count(*) FROM passerelle.snapshot WHERE entity = ANY(%s)", ([e.name for e in entities],)
    ).fetchone()
    return row[0] == 0


def diff_table(entity: Entity) -> str:
    """The temporary table holding the diff of *entity* for the batch being built: one row per
    selected key and per removed one (see :func:`diff_entity`); dropped at commit."""
    return f"pg_temp.passerelle_diff_{entity.name}"


def view_columns(conn: psycopg.Connection, entity: Entity) -> list[str]:
    """The columns of *entity*'s view, in order (from PostgreSQL's catalog: the view is not run)."""
    return [name for name, _hashable in hashed_columns(conn, entity.view)]


#: A view's columns in order, each with whether PostgreSQL has a hash function for its type (a
#: default operator class of the hash method); the parameter is the view's name.
HASHED_COLUMNS_SQL = (
    "SELECT a.attname, EXISTS (SELECT 1 FROM pg_catalog.pg_opclass c JOIN pg_catalog.pg_am m ON m.oid = c.opcmethod "
    "WHERE m.amname = 'hash' AND c.opcdefault AND c.opcintype = a.atttypid) "
    "FROM pg_catalog.pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY a.attnum"
)


def hashed_columns(conn: psycopg.Connection, view: str) -> list[tuple[str, bool]]:
    """*view*'s columns in order, for :func:`row_hash`: each name, and whether its type has a hash
    function (from PostgreSQL's catalog: the view is not run)."""
    return conn.execute(HASHED_COLUMNS_SQL, (view,)).fetchall()


def row_hash(alias: str, columns: Sequence[tuple[str, bool]]) -> str:
    """The SQL of a view row's hash (the row of *alias*, its *columns* from :func:`hashed_columns`),
    as the snapshot keeps it: PostgreSQL's ``hash_record_extended`` of the row's values, each
    column hashed by its type's own hash function and the 64 bits combined, in decimal text. A
    column whose type has none (``json``, in a view rewritten for another back office) is hashed
    as its text. PostgreSQL 14 or later.

    Any change of any column's value changes it (two values equal to their type hash alike:
    ``1.50`` and ``1.5`` are one price, and neither is sent again for that). It replaced the md5 of
    the row's text form (migration 0008): hashing the values, not their text, costs about a third
    of it, and the view's whole row is hashed in one process (at 1,000,000 articles the pass over
    the article view took 16 s instead of 22 s, bench/README.md).
    """
    cells = ", ".join(f'{alias}."{name}"' + ("" if hashable else "::text") for name, hashable in columns)
    return f"hash_record_extended(ROW({cells}), 0)::text"


def _columns_sql(alias: str, columns: Sequence[str]) -> str:
    return ", ".join(f'{alias}."{c}"' for c in columns)


def kept_rows(entity: Entity, columns: Sequence[str]) -> str:
    """The rows of *entity* that the batch being built sends, whole, as the view gave them (its
    *columns*): a FROM item over :func:`diff_table` (valid until the building transaction ends)."""
    return f"(SELECT {_columns_sql('d', columns)} FROM {diff_table(entity)} d WHERE d.passerelle_kept)"


#: The planner's costs for the diff's one statement (see :func:`_parallel_diff`): a worker's start
#: and the tuples it hands over are cheap against a view read whole.
PARALLEL_DIFF_SETTINGS = {"parallel_setup_cost": "0", "parallel_tuple_cost": "0.01"}


def _parallel_diff(conn: psycopg.Connection) -> AbstractContextManager[None]:
    """Let the planner read the view with parallel workers for the block (:data:`PARALLEL_DIFF_SETTINGS`,
    put back after it: :func:`passerelle.db.local_settings`).

    The diff reads its view whole, and the view's joins and stock sums are CPU work in one
    server process; with PostgreSQL's default costs the planner keeps them to one core. With
    cheaper worker costs it splits the scans, joins and sorts over ``max_parallel_workers_per_gather``
    workers (at 1,000,000 articles on 2 cores, a delta's diff went from 27 s to 20 s,
    bench/README.md). Small tables stay serial (``min_parallel_table_scan_size``). The views'
    functions are PARALLEL SAFE (include/sql/views) and the run settings they read reach the
    workers with the rest of the transaction's settings.
    """
    return local_settings(conn, PARALLEL_DIFF_SETTINGS)


def diff_statement(entity: Entity, *, hashed: Sequence[tuple[str, bool]], columns: Sequence[str] = ()) -> str:
    """The statement creating :func:`diff_table` for *entity* (see :func:`diff_entity`), hashing
    the view's *hashed* columns (:func:`hashed_columns`) and keeping its *columns* of the rows to
    send (none if empty); its parameters: ``entity`` (the name), ``full`` and ``new_only`` (the
    mode).

    The table's own columns are named ``passerelle_*`` (key, hash, label, op, kept), apart from the
    view's. The view's columns are kept as columns, not as one value of the view's row type: read
    back, a row value is taken apart one field at a time, each time from its start (about 2 s more
    for 900,000 articles of 26 columns, bench/README.md)."""
    a = entity.alias
    kept = f", {_columns_sql('c', columns)}" if columns else ""
    return f"""
    CREATE TEMPORARY TABLE {diff_table(entity)} ON COMMIT DROP AS
    SELECT coalesce(c.passerelle_key, s.key) AS passerelle_key, c.passerelle_hash,
           coalesce(c.passerelle_label, s.label) AS passerelle_label,
           CASE WHEN s.key IS NULL THEN 'C' WHEN c.passerelle_key IS NULL THEN 'D'
                WHEN c.passerelle_hash <> s.hash THEN 'U' ELSE '=' END AS passerelle_op,
           c.passerelle_key IS NOT NULL AND (s.key IS NULL OR NOT %(new_only)s) AS passerelle_kept{kept}
    FROM (SELECT {a}.key AS passerelle_key, {entity.label_sql}::text AS passerelle_label,
                 {row_hash(a, hashed)} AS passerelle_hash{", " + a + ".*" if columns else ""}
          FROM {entity.view} {a}
          WHERE {entity.where}) c
    FULL JOIN (SELECT key, hash, label FROM passerelle.snapshot WHERE entity = %(entity)s) s
           ON s.key = c.passerelle_key
    WHERE %(full)s OR c.passerelle_hash IS DISTINCT FROM s.hash
    """


def diff_entity(
    conn: psycopg.Connection,
    batch_id: int,
    entity: Entity,
    *,
    full: bool = False,
    new_only: bool = False,
    columns: Sequence[str] = (),
    record: bool = True,
) -> dict[str, int]:
    """Record the entity's created/changed/removed keys for the batch; return the counts.

    The row hash (:func:`row_hash`) changes with any exported column. A full send records every
    current row (as created or changed) and the removed ones, so that the shop can deactivate
    what left the selection; its counts say so (a row unchanged since the snapshot but sent again
    counts as changed, none as unchanged).
    A new-only send (*new_only*) records the created rows alone; the changed and removed ones
    are counted as ``held`` (left for the next delta, the snapshot keeps them as they were).

    One pass over the view: each selected row is hashed and joined with the snapshot, and only the
    rows that differ (every row in a full send) are written to a temporary table
    (:func:`diff_table`), with their operation; that statement creates the table, so the planner may
    read the view with parallel workers (:func:`_parallel_diff`; a statement that inserts into an
    existing table is planned for one process). The batch's rows are then recorded from that table
    (:func:`record_rows`; later, by the caller, if not *record*).
    With the view's *columns* (:func:`view_columns`), the created and changed rows are kept there
    whole (:func:`kept_rows`), and the files are written from them: the view is not evaluated a
    second time to read them (at 1,000,000 articles that second pass cost as much as the diff
    itself, for 1 % of the rows). Unchanged rows
    are counted from the snapshot: a key of the snapshot is either unchanged, changed or removed.
    """
    if full and new_only:
        raise ValueError("diff_entity: full and new_only exclude each other")
    params = {"entity": entity.name, "full": full, "new_only": new_only}
    table = diff_table(entity)
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    with _parallel_diff(conn):
        conn.execute(diff_statement(entity, hashed=hashed_columns(conn, entity.view), columns=columns), params)
    if record:
        record_rows(conn, batch_id, entity, new_only=new_only)
    rows = dict(conn.execute(f"SELECT passerelle_op, count(*) FROM {table} GROUP BY 1").fetchall())
    if not full:
        # Every key of the snapshot is either unchanged, changed or removed.
        known = conn.execute("SELECT count(*) FROM passerelle.snapshot WHERE entity = %s", (entity.name,)).fetchone()[0]
        rows["="] = known - rows.get("U", 0) - rows.get("D", 0)
    # The counts say what was sent: a full send sends its unchanged rows again, as changes.
    same = rows.get("=", 0)
    if new_only:
        return {
            "created": rows.get("C", 0),
            "changed": 0,
            "removed": 0,
            "unchanged": same,
            "held": rows.get("U", 0) + rows.get("D", 0),
        }
    return {
        "created": rows.get("C", 0),
        "changed": rows.get("U", 0) + (same if full else 0),
        "removed": rows.get("D", 0),
        "unchanged": 0 if full else same,
    }


def record_rows(conn: psycopg.Connection, batch_id: int, entity: Entity, *, new_only: bool = False) -> None:
    """Record the keys the diff of *entity* found (:func:`diff_table`) in ``passerelle.batch_row``,
    with their hash, label and operation (a full send's unchanged rows as changes); a new-only
    batch records its created rows alone."""
    conn.execute(
        "INSERT INTO passerelle.batch_row (batch_id, entity, key, hash, label, op) "
        "SELECT %s, %s, passerelle_key, passerelle_hash, passerelle_label, "
        f"CASE passerelle_op WHEN '=' THEN 'U' ELSE passerelle_op END FROM {diff_table(entity)} "
        "WHERE passerelle_op = 'C' OR NOT %s "
        "ORDER BY passerelle_key",  # the primary key's index then grows at its end, page after page
        (batch_id, entity.name, new_only),
    )


def record_batch_rows(conn: psycopg.Connection, batch: Batch, entity: Entity) -> None:
    """Record *entity*'s rows of a batch built with ``keep_rows`` (:func:`build_batch`), once."""
    if entity.name in batch.unrecorded:
        record_rows(conn, batch.id, entity, new_only=batch.mode == "new")
        batch.unrecorded.remove(entity.name)


def _not_built(taken: Batch, mode: str, entities: Sequence[Entity]) -> str | None:
    """The full send a run was asked for that the batch it takes up is not (not full, or without
    some of the entities); None otherwise: a delta's or new rows' send is never lost, the next
    run's holds this run's changes."""
    names = [e.name for e in entities]
    if mode != "full" or (taken.mode == "full" and set(names) <= set(taken.entities)):
        return None
    return f"a full send of {', '.join(names)}"


def build_batch(
    conn: psycopg.Connection,
    *,
    flow: str,
    run_key: str,
    entities: Sequence[Entity],
    mode: str = "delta",
    dry_run: bool = False,
    keep_rows: bool = False,
    dag_run_id: str | None = None,
) -> Batch:
    """Compute (or find again) the batch of a flow for a run key.

    Runs in the caller's transaction, which should be REPEATABLE READ so that the hashes and
    the rows exported next come from one consistent view of the back office. With *keep_rows*,
    the rows to send are kept in temporary tables until the transaction ends
    (:func:`diff_entity`), and the batch says which (``Batch.kept``); the batch's rows are then left
    for the caller to record (``Batch.unrecorded``, :func:`record_batch_rows`), when it suits it
    (the files' writer does it while its rows are formatted, passerelle.core.export).
    *dag_run_id* (the Airflow run building it) is kept with the batch: should that run fail between
    its publish and its confirm, the build that confirms the batch records that run's summary.

    A real build takes up, rather than computes, the flow's latest batch when its publication was
    cut after its manifest started going up (:func:`passerelle.core.batches.unrecorded_publication`):
    the batch becomes this run's (``Batch.taken_from`` says whose it was), its publish finishes it
    in its folder, and this run's own changes go with the next run.
    """
    check_mode(mode)
    key = f"{run_key}#dry" if dry_run else run_key
    existing = find_batch(conn, flow, key)
    if existing is not None and not dry_run:
        log.info("batch %s of %s for %s already built (%s): reused", existing.id, flow, run_key, existing.status)
        return existing
    cut = None if dry_run else unrecorded_publication(conn, flow)
    if cut is not None:
        # The batch becomes this run's (its key, its run id): a rerun of this run finds it, one of the
        # run that built it builds anew, and this run's summary is the one that counts its rows.
        taken_from = conn.execute("SELECT run_key FROM passerelle.batch WHERE id = %s", (cut,)).fetchone()[0]
        conn.execute("UPDATE passerelle.batch SET run_key = %s, dag_run_id = %s WHERE id = %s", (key, dag_run_id, cut))
        log.warning(
            "batch %s of %s (%s): its manifest was going up when its publish failed, before the publication was "
            "recorded, and the shop may have it. This run takes it up (its folder, its files) rather than building "
            "a new batch, which would send its rows twice; this run's own changes go with the next run",
            cut,
            flow,
            taken_from,
        )
        taken = find_batch(conn, flow, batch_id=cut)
        return replace(taken, taken_from=taken_from, not_built=_not_built(taken, mode, entities))
    if existing is not None:  # a dry run is recomputed each time
        conn.execute("DELETE FROM passerelle.batch WHERE id = %s", (existing.id,))
    counted = [_COUNTED[why].format(id=batch_id) for batch_id, why in unconfirmed(conn, flow)] if dry_run else []
    if not dry_run:
        _confirm_published(conn, flow)
    if mode in ("delta", "new") and first_run(conn, entities):
        log.info("no snapshot yet for %s: first run, sending everything", [e.name for e in entities])
        mode = "full"
    status = "dry_run" if dry_run else "built"
    batch_id = conn.execute(
        "INSERT INTO passerelle.batch (flow, run_key, mode, status, entities, dag_run_id) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (flow, key, mode, status, [e.name for e in entities], dag_run_id),
    ).fetchone()[0]
    columns = {e.name: view_columns(conn, e) if keep_rows else [] for e in entities}
    counts = {
        e.name: diff_entity(
            conn,
            batch_id,
            e,
            full=mode == "full",
            new_only=mode == "new",
            columns=columns[e.name],
            record=not keep_rows,
        )
        for e in entities
    }
    conn.execute("UPDATE passerelle.batch SET counts = %s WHERE id = %s", (json.dumps(counts), batch_id))
    if not dry_run:
        # An earlier batch built but never published is contained in this one.
        conn.execute(
            "UPDATE passerelle.batch SET status = 'superseded' WHERE flow = %s AND id < %s AND status = 'built'",
            (flow, batch_id),
        )
    kept = {e.name: kept_rows(e, columns[e.name]) for e in entities} if keep_rows else {}
    return Batch(
        batch_id,
        flow,
        key,
        mode,
        status,
        [e.name for e in entities],
        counts,
        kept=kept,
        unrecorded=list(kept),
        counted=counted,
    )


def _confirm_published(conn: psycopg.Connection, flow: str) -> None:
    """Confirm the flow's earlier batches that were published but never confirmed (the run failed
    between its publish and its confirm: the database down, a worker lost), oldest first.

    Their files are on the shop's server, manifest and all, and the shop imports them: the snapshot
    must say so before the next batch is diffed against it. Superseded instead, their rows would be
    sent again, and a row the shop has no key for yet is then created twice: a PrestaShop customer
    or address without the shop's ``ID`` (its importer matches by ``ID`` only) becomes two.
    The run summary that run could not write is written here (:func:`passerelle.core.summary.record_late_confirm`).
    """
    published = conn.execute(
        "SELECT id, run_key FROM passerelle.batch WHERE flow = %s AND status = 'published' ORDER BY id", (flow,)
    ).fetchall()
    for batch_id, run_key in published:
        log.warning(
            "batch %s of %s (%s) was published but its confirm never ran: confirmed now, its rows are on the "
            "shop's server and are not sent again",
            batch_id,
            flow,
            run_key,
        )
        confirm_batch(conn, batch_id)
        record_late_confirm(conn, batch_id)


def confirm_batch(conn: psycopg.Connection, batch_id: int, *, published_only: bool = False) -> bool:
    """Advance the snapshot to what the batch sent; once only. Returns False if already done.

    A full batch replaces the snapshot of its entities; a delta upserts created and changed
    rows and forgets removed ones; a new-only batch upserts its created rows and leaves every
    other row of the snapshot as it was (changes and removals were not sent). Superseded or
    dry-run batches never touch the snapshot. With *published_only* (the flows' confirm task),
    a batch still ``built`` is refused with an error: its files never reached the shop (a publish
    task marked successful by hand), and advancing the snapshot would lose its changes for good.
    """
    row = conn.execute(
        "SELECT status, mode, entities FROM passerelle.batch WHERE id = %s FOR UPDATE", (batch_id,)
    ).fetchone()
    if row is None:
        raise ValueError(f"no batch {batch_id}")
    status, mode, entities = row
    if published_only and status == "built":
        raise ValueError(
            f"batch {batch_id} was built but never published: its files are not on the shop's server, so "
            "the snapshot is left as it is (was the publish task marked successful by hand? clear it to "
            "run it, or let the next run send these changes)"
        )
    if status not in ("built", "published"):
        log.info("batch %s is %s: snapshot left as it is", batch_id, status)
        return False
    _advance_snapshot(conn, batch_id, mode, entities)
    conn.execute("UPDATE passerelle.batch SET status = 'confirmed', confirmed_at = now() WHERE id = %s", (batch_id,))
    return True


def _advance_snapshot(conn: psycopg.Connection, batch_id: int, mode: str, entities: Sequence[str]) -> None:
    """The snapshot made to hold what the batch sent (:func:`confirm_batch`, its status aside)."""
    if mode == "full":
        conn.execute("DELETE FROM passerelle.snapshot WHERE entity = ANY(%s)", (list(entities),))
    else:
        conn.execute(
            "DELETE FROM passerelle.snapshot s USING passerelle.batch_row b "
            "WHERE b.batch_id = %s AND b.op = 'D' AND s.entity = b.entity AND s.key = b.key",
            (batch_id,),
        )
    conn.execute(
        "INSERT INTO passerelle.snapshot (entity, key, hash, label, batch_id) "
        "SELECT entity, key, hash, label, batch_id FROM passerelle.batch_row WHERE batch_id = %s AND op <> 'D' "
        "ON CONFLICT (entity, key) DO UPDATE "
        "SET hash = EXCLUDED.hash, label = EXCLUDED.label, batch_id = EXCLUDED.batch_id",
        (batch_id,),
    )


#: What a dry run says of a batch it counted as on the shop (:func:`unconfirmed`'s reasons).
_COUNTED = {
    "published": "batch {id} was published and its confirm never ran: the next run confirms it, so its rows "
    "are counted as on the shop",
    "cut": "batch {id}'s publication was cut before it was recorded: the next run publishes it again and "
    "these changes go with the run after",
}


def unconfirmed(conn: psycopg.Connection, flow: str) -> list[tuple[int, str]]:
    """The flow's batches the shop may have that the snapshot does not hold yet, oldest first, with
    why: ``published`` (its run failed before its confirm: the next build confirms it,
    :func:`_confirm_published`) or ``cut`` (its manifest was going up when its publish failed: the
    next build takes it up, :func:`passerelle.core.batches.unrecorded_publication`)."""
    cut = unrecorded_publication(conn, flow)
    rows = conn.execute(
        "SELECT id, CASE WHEN status = 'published' THEN 'published' ELSE 'cut' END FROM passerelle.batch "
        "WHERE flow = %s AND (status = 'published' OR id = %s) ORDER BY id",
        (flow, cut),
    ).fetchall()
    return [(batch_id, why) for batch_id, why in rows]


@contextmanager
def counted_as_sent(conn: psycopg.Connection, flow: str) -> Iterator[list[int]]:
    """A dry run's snapshot, within the caller's transaction: what the next real build will diff
    against, the flow's :func:`unconfirmed` batches counted as sent. Without them, a dry run after
    a failed confirm or a cut publication lists their rows as still to send, which the real run
    never sends again. The snapshot is put back as it was when the block ends: a dry run changes
    nothing. Yields the batches' ids; with none, sends no other statement.

    Every reader of the snapshot in between sees it advanced: the diff, the views that ask what the
    shop has, the file writer's previous labels."""
    pending = unconfirmed(conn, flow)
    if not pending:
        yield []
        return
    ids = [batch_id for batch_id, _ in pending]
    batches = conn.execute(
        "SELECT id, mode, entities FROM passerelle.batch WHERE id = ANY(%s) ORDER BY id", (ids,)
    ).fetchall()
    full = sorted({e for _, mode, entities in batches if mode == "full" for e in entities})
    # The rows the batches touch: every row of an entity a full batch replaces, the keys of the others.
    touched = (
        "(s.entity = ANY(%(full)s) OR EXISTS (SELECT 1 FROM passerelle.batch_row b "
        "WHERE b.batch_id = ANY(%(ids)s) AND b.entity = s.entity AND b.key = s.key))"
    )
    params = {"full": full, "ids": ids}
    conn.execute(
        f"CREATE TEMP TABLE passerelle_dry_snapshot ON COMMIT DROP AS "
        f"SELECT s.* FROM passerelle.snapshot s WHERE {touched}",
        params,
    )
    for batch_id, mode, entities in batches:
        _advance_snapshot(conn, batch_id, mode, entities)
    yield ids
    conn.execute(f"DELETE FROM passerelle.snapshot s WHERE {touched}", params)
    conn.execute("INSERT INTO passerelle.snapshot SELECT * FROM passerelle_dry_snapshot")
    conn.execute("DROP TABLE passerelle_dry_snapshot")
