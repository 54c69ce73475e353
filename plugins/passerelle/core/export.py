"""Build a batch's outbound files and keep them in the outbox (``passerelle.outbox_file``).

The rows sent are read in the same REPEATABLE READ transaction that computed their hashes
(see :func:`build_catalog`), so what the snapshot will record is exactly what the shop got.
Files are cut in parts of ``rows_per_file`` rows, read and written chunk by chunk: memory
stays flat whatever the catalog size. Rows a dialect refuses are recorded with their reason
and dropped from the batch, so the snapshot does not advance for them and they are tried
again on the next run (once fixed in the back office).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import pickle
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import psycopg

from passerelle.core.dialects.base import Dialect, Rejects
from passerelle.core.differ import Batch, Entity, build_batch, counted_as_sent, record_batch_rows
from passerelle.db import copy_in, copy_parts, local_settings, read_part, read_query_chunks

log = logging.getLogger(__name__)

#: The memory PostgreSQL may give each sort or hash of the catalog's statements (``work_mem``, for
#: the building transaction only; hashes get ``hash_mem_multiplier`` times it). The diff holds the
#: snapshot's keys and hashes in one hash table and the article view groups every stock row:
#: with the server's default (4 MB) both spill to disk in many batches, which at 1,000,000
#: articles cost more than reading the rows (measured by bench/catalog_diff.py).
WORK_MEM = "128MB"

#: PostgreSQL's JIT compilation (``jit``), off for the building transaction: the article view's
#: expressions are compiled again in every parallel worker, about 1.2 s at 1,000,000 articles, more
#: than the compiled code saves on a read whose cost is its joins and stock sums (the pass over the
#: view hashing each row: 10.3 s with it, 9.1 s without, bench/README.md). Small sends never reach
#: the server's ``jit_above_cost`` anyway.
JIT = "off"

#: Optional hook adding columns to an entity's rows before the dialect sees them
#: (e.g. the image URLs of articles): (entity, DataFrame) -> DataFrame.
Enricher = Callable[[str, pd.DataFrame], pd.DataFrame]


def _store(conn: psycopg.Connection, batch_id: int, entity: str, name: str, content: bytes, *, rows: int) -> dict:
    digest = hashlib.sha256(content).hexdigest()
    conn.execute(
        "INSERT INTO passerelle.outbox_file (batch_id, position, name, entity, rows, bytes, sha256, content) "
        "SELECT %s, coalesce(max(position), 0) + 1, %s, %s, %s, %s, %s, %b "
        "FROM passerelle.outbox_file WHERE batch_id = %s",
        (batch_id, name, entity, rows, len(content), digest, content, batch_id),
    )
    return {"name": name, "entity": entity, "rows": rows, "bytes": len(content), "sha256": digest}


def view_options(dialect: Dialect) -> dict[str, str]:
    """The view options a dialect's files need (its ``view_options``, e.g. WooCommerce's and
    Shopify's ``passerelle.article_variants: on``: the article view's ``variants`` column, built
    only for them; see include/sql/views/10_catalog.sql). Set with the run settings."""
    return dict(getattr(dialect, "view_options", None) or {})


def apply_settings(conn: psycopg.Connection, settings: Mapping[str, str]) -> None:
    """Set run settings the views read (``passerelle.*`` options) for the current transaction
    only (``set_config(..., true)``), e.g. ``passerelle.safety_stock``."""
    for name, value in settings.items():
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))


def _hash_joins_only(conn: psycopg.Connection) -> AbstractContextManager[None]:
    """Plan the block's statements without nested loops; the setting is put back after it
    (:func:`passerelle.db.local_settings`).

    The files are read by joining each view with the batch's rows, which this very transaction
    has just written: batch_row's statistics do not know them (a first full send of 100,000
    articles is estimated at one row), and the planner would then put the view's grouped
    subqueries (the stock sums of passerelle_src.shop_stock) on the inner side of a nested loop,
    evaluated again for every row. A whole view read against a set of keys is a job for hash
    joins.
    """
    return local_settings(conn, {"enable_nestloop": "off"})


def _format_chunk(dialect: Dialect, entity: str, chunk: pd.DataFrame) -> tuple[list[tuple[str, bytes, int]], list]:
    """A chunk of rows turned into the shop's files: each file's stem, bytes and row count, in
    order, and the rows the dialect refused (:class:`Rejects` rows)."""
    rejects = Rejects()
    bad = dialect.common_checks(entity, chunk, rejects)
    files = [
        (stem, dialect.to_bytes(out), len(out))
        for stem, out in _live_files(dialect, entity, chunk[~bad], rejects).items()
        if len(out)
    ]
    return files, rejects.rows


class _Part(NamedTuple):
    """A part of an entity's rows, as :func:`passerelle.db.copy_parts` wrote them to ``path``: the
    offsets of the header and of the part, its row count, and where its files go (``out``, a
    prefix of paths)."""

    path: str
    header: tuple[int, int]
    rows: tuple[int, int]
    count: int
    out: str


def _format_part(
    dialect: Dialect, entity: str, enrich: Enricher | None, part: _Part
) -> tuple[list[tuple[str, str, int]], list]:
    """A part of the rows turned into the shop's files (:func:`_format_chunk`), each written to a
    file of its own next to the rows: each file's stem, path and row count, in order, and the rows
    refused. Runs in this process or in a formatting one (:class:`_Formatter`)."""
    chunk = read_part(part.path, part.header, part.rows)
    if len(chunk) != part.count:  # one COPY message per row (copy_parts): a part is whole rows
        raise RuntimeError(f"{entity}: {len(chunk)} rows read back from a part of {part.count}")
    if enrich is not None:
        chunk = enrich(entity, chunk)
    files, refused = _format_chunk(dialect, entity, chunk)
    written = []
    for i, (stem, content, rows) in enumerate(files):
        path = f"{part.out}.{i}"
        with open(path, "wb") as f:
            f.write(content)
        written.append((stem, path, rows))
    return written, refused


def _ready(_dialect_class: type) -> None:
    """Nothing: sent to a formatting process as it starts, so that it imports this module and the
    dialect's (unpickling the argument) before the first rows come."""


class _Formatter:
    """Turns a send's rows into the shop's files (:func:`_format_part`: the dialect's checks, its
    rows, its CSV) and hands them over in order.

    That is most of a large send's Python work (at 1,000,000 articles, 18 parts of 0.6 to 0.8 s
    each: parsing the rows, the checks, the CSV), while the database is idle. Once :meth:`start` is
    called (a send of two parts or more), parts are turned into files in another process
    (:attr:`workers`) as soon as their rows are on disk, while this one reads the next rows and
    records the batch's: on 2 cores, they overlap. Until then, and for small sends, everything
    happens here; if that process cannot start or dies, here again (:meth:`_fall_back`).
    Wherever a part was formatted, what comes of it is handed over in this process, in the order the
    parts were submitted (the files are stored from here), and an error raised formatting it is
    raised here, failing the send. The dialects hold no state from one part to the next; the rows
    they refuse come back with the files. The enricher (``enrich``) goes to
    the formatting process with the dialect: if it cannot be pickled, everything happens here.
    """

    def __init__(self, dialect: Dialect, enrich: Enricher | None = None):
        self._dialect = dialect
        self._enrich = enrich
        #: Parts formatted at once (one process each). One: at 1,000,000 articles, a second one
        #: gave the same writing time (23.0 and 25.6 s with one, 26.7 and 24.2 s with two, in
        #: alternating runs: the two cores are busy anyway, with the database reading and recording
        #: the rows) for 220 MB more (bench/README.md).
        self.workers = 1
        self._pool: ProcessPoolExecutor | None = None
        #: (result or its future, take, entity, part), in submission order.
        self._pending: deque[tuple[Future | tuple, Callable[..., list[dict]], str, _Part]] = deque()

    def __enter__(self) -> _Formatter:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def start(self) -> None:
        """Format in another process from now on (once per send). Not where there is one core, nor
        in a daemonic process (a ``multiprocessing.Pool``'s), which may not start one, nor with an
        enricher that cannot be pickled. The process starts now, and imports what formatting needs,
        while the rows are read."""
        if self._pool is not None or (os.cpu_count() or 1) < 2 or multiprocessing.current_process().daemon:
            return
        try:
            pickle.dumps((self._dialect, self._enrich))
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            log.info("formatting the files in this process: %s", exc)
            return
        # forkserver: a clean process, not a fork of this one and its threads and connections.
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("forkserver"))
        for _ in range(self.workers):
            self._pool.submit(_ready, type(self._dialect))

    def submit(self, entity: str, part: _Part, take: Callable[..., list[dict]]) -> None:
        """Format *part*; ``take(files, refused)`` gets what comes of it (:func:`_format_part`), in
        submission order (:meth:`done`), and returns the files it stored."""
        result: Future | tuple | None = None
        if self._pool is not None:
            try:
                result = self._pool.submit(_format_part, self._dialect, entity, self._enrich, part)
            except BrokenProcessPool:
                self._fall_back()
        if result is None:
            result = _format_part(self._dialect, entity, self._enrich, part)
        self._pending.append((result, take, entity, part))

    def _fall_back(self) -> None:
        """The other processes could not start or died (not a formatting error, which is raised as
        it is): the parts not handed over yet, and the next ones, are formatted here."""
        log.warning("the processes formatting the files stopped: formatting them in this one")
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        self._pending = deque(
            (_format_part(self._dialect, e, self._enrich, p), t, e, p) for _r, t, e, p in self._pending
        )

    def done(self) -> list[dict]:
        """Hand over every part submitted, oldest first (waiting for them); the files stored."""
        stored = []
        while self._pending:
            result, take, entity, part = self._pending.popleft()
            if isinstance(result, Future):
                try:
                    result = result.result()
                except BrokenProcessPool:
                    self._fall_back()
                    result = _format_part(self._dialect, entity, self._enrich, part)
            stored += take(*result)
        return stored


def _take_files(
    conn: psycopg.Connection,
    batch_id: int,
    entity: str,
    parts: dict[str, int],
    rejects: Rejects,
    files: list[tuple[str, str, int]],
    refused: list,
) -> list[dict]:
    """Store a part's files in the outbox, each named after its stem and part number (*parts*,
    counted per stem over the entity's parts), and keep the rows refused; the files stored."""
    rejects.rows.extend(refused)
    stored = []
    for stem, path, rows in files:
        parts[stem] = parts.get(stem, 0) + 1
        content = Path(path).read_bytes()
        os.unlink(path)
        stored.append(_store(conn, batch_id, entity, f"{stem}_{parts[stem]:04d}.csv", content, rows=rows))
    return stored


def write_files(
    conn: psycopg.Connection,
    batch: Batch,
    entities: Sequence[Entity],
    dialect: Dialect,
    *,
    rows_per_file: int = 50_000,
    enrich: Enricher | None = None,
) -> list[dict]:
    """Write the batch's files (live rows first, in import order, then deactivations).

    Each entity's rows are read in one ``COPY`` written to a temporary file, part by part
    (:func:`passerelle.db.copy_parts`): a part is formatted as soon as its rows are on disk, in
    another process for a large send (:class:`_Formatter`), while the next rows come; the files are
    stored once the ``COPY`` is over (the connection serves nothing else while it runs). Neither
    the rows nor the files are held in memory, but one part at a time. A batch built with
    ``keep_rows`` has its rows recorded here (:func:`passerelle.core.differ.record_batch_rows`),
    while the parts are formatted.
    """
    files: list[dict] = []
    removals: list[tuple[Entity, str]] = []
    with tempfile.TemporaryDirectory(prefix="passerelle-files-") as work, _Formatter(dialect, enrich) as formatter:
        for entity in entities:
            stem = dialect.stems[entity.name]
            rejects = Rejects()
            parts: dict[str, int] = {}
            query, params = _live_rows_query(batch, entity, entity.name in dialect.with_previous)
            counts = batch.counts.get(entity.name, {})
            if counts.get("created", 0) + counts.get("changed", 0) > rows_per_file:
                formatter.start()  # two parts or more: a large send; started before its rows are read
            take = partial(_take_files, conn, batch.id, entity.name, parts, rejects)
            rows_path = os.path.join(work, f"{entity.name}.csv")
            if entity.name in dialect.with_previous:
                record_batch_rows(conn, batch, entity)  # the rows are read with the batch's labels
            with (
                _hash_joins_only(conn),
                open(rows_path, "w+b") as rows_file,
                # closed on an error too: the COPY is cancelled before the transaction rolls back
                closing(copy_parts(conn, query, params, rows_file, rows=rows_per_file)) as copied,
            ):
                header = next(copied)[:2]
                for n, (start, end, count) in enumerate(copied):
                    out = os.path.join(work, f"{entity.name}.{n}")
                    formatter.submit(entity.name, _Part(rows_path, header, (start, end), count, out), take)
            # The batch's rows recorded while the last parts are formatted (at 1,000,000 articles,
            # 5 s of the database's time), before the rows refused leave the batch.
            record_batch_rows(conn, batch, entity)
            files += formatter.done()
            os.unlink(rows_path)
            refused = rejects.frame()
            if len(refused):
                _record_rejects(conn, batch, entity.name, refused)
            batch.counts.setdefault(entity.name, {})["rejected"] = refused["key"].nunique()
            removals.append((entity, stem))

    # Deactivations after every live file, children first (combinations before products...).
    for entity, _stem in reversed(removals):
        part = 0
        query = (
            "SELECT key, label FROM passerelle.batch_row WHERE batch_id = %s AND entity = %s AND op = 'D' ORDER BY key"
        )
        for chunk in read_query_chunks(conn, query, (batch.id, entity.name), chunksize=rows_per_file):
            if not len(chunk):
                continue
            off_stem, out = dialect.removed(entity.name, chunk)
            if not len(out):
                # The shop has no removal for this entity (WooCommerce and Shopify take no family,
                # brand or supplier file): the snapshot forgets the rows, no file is written.
                continue
            part += 1
            files.append(
                _store(conn, batch.id, entity.name, f"{off_stem}_{part:04d}.csv", dialect.to_bytes(out), rows=len(out))
            )
    conn.execute("UPDATE passerelle.batch SET counts = %s WHERE id = %s", (json.dumps(batch.counts), batch.id))
    return files


def _live_files(dialect: Dialect, entity: str, df: pd.DataFrame, rejects: Rejects) -> dict[str, pd.DataFrame]:
    """File stem -> rows of a chunk. A dialect that splits an entity's live rows over several
    files (PrestaShop: the customers its import creates, and the changes its import cannot
    apply) has a ``live_files`` method; the others write one file, the entity's stem."""
    split = getattr(dialect, "live_files", None)
    if split is not None:
        return split(entity, df, rejects)
    return {dialect.stems[entity]: dialect.live(entity, df, rejects)}


def _live_rows_query(batch: Batch, entity: Entity, with_previous: bool) -> tuple[str, tuple | None]:
    """The view's rows of the batch's created and changed keys, from the rows the diff kept
    (``batch.kept``) when it did, else from the view itself; with *with_previous*, three more
    columns: ``batch_label`` (the label the snapshot will record), ``previous_label`` (the
    snapshot's, from the last confirmed send; NULL for a new row and in a full send, which
    sends everything as if the shop had nothing) and ``batch_op`` (``C``: the shop never
    confirmed the row, full send included; ``U``: it did)."""
    source = batch.kept.get(entity.name, entity.view)
    if not with_previous and entity.name in batch.kept:
        # The kept rows are the batch's created and changed rows, no more (rows a dialect refuses
        # leave the batch after they are read): no join with the batch's rows needed.
        return f"SELECT v.* FROM {source} v ORDER BY v.key", None
    if not with_previous:
        return (
            f"SELECT v.* FROM {source} v JOIN passerelle.batch_row b "
            f"ON b.key = v.key AND b.batch_id = %s AND b.entity = %s AND b.op <> 'D' ORDER BY v.key",
            (batch.id, entity.name),
        )
    return (
        f"SELECT v.*, b.label AS batch_label, s.label AS previous_label, b.op AS batch_op FROM {source} v "
        f"JOIN passerelle.batch_row b ON b.key = v.key AND b.batch_id = %s AND b.entity = %s AND b.op <> 'D' "
        f"LEFT JOIN passerelle.snapshot s ON s.entity = b.entity AND s.key = b.key AND %s "
        f"ORDER BY v.key",
        (batch.id, entity.name, batch.mode != "full"),
    )


def _record_rejects(conn: psycopg.Connection, batch: Batch, entity: str, rejects: pd.DataFrame) -> None:
    for key, field, value, reason in rejects.head(20).itertuples(index=False):
        log.warning("%s %s refused: %s=%r: %s", entity, key, field, value, reason)
    copy_in(
        conn,
        "passerelle.outbound_reject",
        rejects.assign(batch_id=batch.id, entity=entity),
        ["batch_id", "entity", "key", "field", "value", "reason"],
    )
    conn.execute(
        "DELETE FROM passerelle.batch_row WHERE batch_id = %s AND entity = %s AND key = ANY(%s)",
        (batch.id, entity, list(rejects["key"].unique())),
    )


@contextmanager
def builder_transaction(conn: psycopg.Connection, flow: str, *, dry_run: bool = False) -> Iterator[None]:
    """The REPEATABLE READ transaction a flow's batch is built in, by one builder at a time per flow
    whatever the scheduler does (max_active_runs above 1, a backfill beside the schedule). A dry
    run's sees the snapshot the next real build will diff against (:func:`~passerelle.core.differ.counted_as_sent`),
    put back as it was before the transaction commits.

    The lock is a session lock taken before the transaction starts: a REPEATABLE READ snapshot is
    taken at the transaction's first statement, so a lock taken inside it would leave the second
    builder diffing against what it saw before the first one committed its batch. Released after;
    a lost connection releases it with the session.
    """
    lock = f"passerelle:{flow}"
    conn.commit()  # the isolation level can only change between transactions
    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (lock,))
    conn.commit()
    previous = conn.isolation_level
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        with conn.transaction(), counted_as_sent(conn, flow) if dry_run else nullcontext():
            yield
    finally:
        conn.isolation_level = previous
        try:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock,))
            conn.commit()
        except psycopg.Error as exc:  # a dead connection released its session locks with it
            log.warning("could not release the builder lock %s: %s", lock, exc)


def build_catalog(
    conn: psycopg.Connection,
    *,
    flow: str,
    run_key: str,
    entities: Sequence[Entity],
    dialect: Dialect,
    mode: str = "delta",
    dry_run: bool = False,
    rows_per_file: int = 50_000,
    enrich: Enricher | None = None,
    settings: Mapping[str, str] | None = None,
    dag_run_id: str | None = None,
) -> tuple[Batch, list[dict]]:
    """Compute the batch and write its files in one consistent transaction.

    :param settings: run settings the views read, set for this transaction only
        (:func:`apply_settings`): the catalog's quantities read ``passerelle.safety_stock``
        (:func:`passerelle.core.exchange.stock_settings`), as the hourly stock file does, and its
        promotions ``passerelle.as_of`` (:func:`passerelle.core.exchange.catalog_settings`). The
        dialect's own :func:`view_options` are set with them.
    :param dag_run_id: the Airflow run building it, kept with the batch (:func:`~passerelle.core.differ.build_batch`).

    A batch already built for this run key is returned with its stored files, untouched.
    """
    with builder_transaction(conn, flow, dry_run=dry_run):
        apply_settings(conn, {**view_options(dialect), **(settings or {})})
        conn.execute("SELECT set_config('work_mem', %s, true), set_config('jit', %s, true)", (WORK_MEM, JIT))
        batch = build_batch(
            conn,
            flow=flow,
            run_key=run_key,
            entities=entities,
            mode=mode,
            dry_run=dry_run,
            keep_rows=True,
            dag_run_id=dag_run_id,
        )
        if batch.reused:
            files = outbox_files(conn, batch.id)
        else:
            files = write_files(conn, batch, entities, dialect, rows_per_file=rows_per_file, enrich=enrich)
            for entity in entities:  # every row recorded (write_files does it as it goes)
                record_batch_rows(conn, batch, entity)
    return batch, files


def outbox_files(conn: psycopg.Connection, batch_id: int) -> list[dict]:
    rows = conn.execute(
        "SELECT name, entity, rows, bytes, sha256 FROM passerelle.outbox_file WHERE batch_id = %s ORDER BY position",
        (batch_id,),
    ).fetchall()
    return [dict(zip(("name", "entity", "rows", "bytes", "sha256"), r)) for r in rows]


def iter_outbox(conn: psycopg.Connection, batch_id: int) -> Iterator[tuple[str, bytes, dict]]:
    """The batch's files with their content, one at a time, in the order they were written."""
    for info in outbox_files(conn, batch_id):
        content = conn.execute(
            "SELECT content FROM passerelle.outbox_file WHERE batch_id = %s AND name = %s", (batch_id, info["name"])
        ).fetchone()[0]
        yield info["name"], bytes(content), info
