"""On change: notice edits in the back office and start the affected flow within a minute.

A **change marker** summarises the tables behind a flow's entities, in one cheap query: per
table, the row count, the latest ``updated_at`` and the sum of every row's ``updated_at``
(every table of the reference back office has one, kept by a trigger). An insert, an update or
a delete moves it, and so does a transaction that commits late with an older ``updated_at``
(the sum moves even when the maximum does not). A table without ``updated_at`` is summarised
by its row count and a checksum of its rows (``bytea`` columns left out).

:class:`passerelle.triggers.ErpChangeTrigger` is the Airflow event trigger over it: attached to
the flow's change Asset by an ``AssetWatcher`` (see :func:`passerelle.assets.change_watch_asset`),
it runs in the triggerer, polls the marker every ``poll_seconds`` and, when it moves, waits until it has been
still for ``settle_seconds`` (a burst of edits gives one event; at most ``max_settle_seconds``)
before firing **one** event. Nothing fires while nothing changes.

The last marker fired for is kept in ``passerelle.change_marker`` (one row per watcher), so a
restarted triggerer neither fires again for a change already announced nor forgets one made
while it was down. The row is moved with a compare-and-set before the event is handed to
Airflow: if two triggerers briefly run the same watcher, only one fires. To make a watcher
start afresh, delete its row: the next start takes the current marker as its baseline.

The query builder (:func:`marker_sql`), the comparison (:func:`changed_entities`) and the
polling loop (:class:`ChangeDetector`, over any async connection factory) and :func:`conninfo`
use no Airflow API; the trigger adds what the triggerer needs: serialisation and the
connection, read from ``shop.erp_conn_id`` when the trigger starts (never at DAG parse time).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

log = logging.getLogger(__name__)

#: Tables whose changes mean an entity must be sent again: everything the entity's view in
#: ``include/sql/views`` reads. Override per flow with ``flows.<flow>.watch`` when the views
#: are rewritten for another back office.
DEFAULT_WATCH: dict[str, tuple[str, ...]] = {
    # catalog (quantities are the shop's stock, net of downloaded shop orders: erp.sales_order)
    "family": ("erp.family",),
    "brand": ("erp.brand",),
    "supplier": ("erp.supplier",),
    "article": (
        "erp.article",
        "erp.family",
        "erp.brand",
        "erp.supplier",
        "erp.stock",
        "erp.location",
        "erp.image",
        "erp.variant",
        "erp.sales_order",
    ),
    "variant": ("erp.variant", "erp.article", "erp.stock", "erp.location", "erp.sales_order"),
    # customers
    "customer": ("erp.customer", "erp.address"),
    "customer_address": ("erp.address", "erp.customer"),
    # prices_stock (stock is net of orders placed in the back office, hence erp.sales_order)
    "price": ("erp.article", "erp.promotion", "erp.price_list_item", "erp.price_list"),
    "stock": ("erp.stock", "erp.location", "erp.article", "erp.variant", "erp.sales_order"),
    # order_status (a status change touches erp.sales_order.updated_at)
    "order_status": ("erp.sales_order",),
    "tracking": ("erp.sales_order", "erp.delivery_note", "erp.delivery_note_line", "erp.order_line_cancellation"),
    "invoice": ("erp.sales_order", "erp.invoice"),
}

#: The column a back-office trigger keeps at the time of the row's last change.
CHANGE_COLUMN = "updated_at"

MARKER_DDL = """
CREATE SCHEMA IF NOT EXISTS passerelle;
CREATE TABLE IF NOT EXISTS passerelle.change_marker (
    watcher     text PRIMARY KEY,              -- the change asset's name, e.g. passerelle.change.catalog
    marker      jsonb NOT NULL,                -- per table: [row count, latest change, checksum]
    events      bigint NOT NULL DEFAULT 0,     -- events fired so far
    created_at  timestamptz NOT NULL DEFAULT now(),
    fired_at    timestamptz                    -- when the last event fired
)
"""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: A marker: per table (``schema.table``), ``[row count, latest change (epoch text), checksum]``.
Marker = dict[str, list]


class ChangeWatchError(RuntimeError):
    """A watched table cannot be read; the message names the watcher and the table."""


@dataclass(frozen=True)
class TableProbe:
    """How one table is summarised: through its change column, or through a checksum of
    *columns* (its non-binary columns) when it has none."""

    table: str
    change_column: str | None
    columns: tuple[str, ...] = ()

    @property
    def identifier(self) -> sql.Composable:
        schema, name = self.table.split(".", 1)
        return sql.Identifier(schema, name)


def marker_sql(probes: Sequence[TableProbe]) -> sql.Composed:
    """One query returning ``(table, row count, latest change, checksum)`` per probed table.

    Text forms are exact (numeric epochs), so markers compare equal across connections.
    """
    parts = []
    for probe in probes:
        name = sql.Literal(probe.table)
        if probe.change_column:
            col = sql.Identifier(probe.change_column)
            part = sql.SQL(
                "SELECT {name}::text, count(*), extract(epoch FROM max({col}))::text, "
                "sum(extract(epoch FROM {col}))::text FROM {table}"
            ).format(name=name, col=col, table=probe.identifier)
        elif probe.columns:
            row = sql.SQL(", ").join(sql.Identifier(c) for c in probe.columns)
            part = sql.SQL(
                "SELECT {name}::text, count(*), NULL::text, sum(hashtext(ROW({row})::text)::bigint)::text FROM {table}"
            ).format(name=name, row=row, table=probe.identifier)
        else:
            part = sql.SQL("SELECT {name}::text, count(*), NULL::text, NULL::text FROM {table}").format(
                name=name, table=probe.identifier
            )
        parts.append(part)
    return sql.SQL("\nUNION ALL\n").join(parts)


def all_tables(tables: Mapping[str, Sequence[str]]) -> list[str]:
    """The distinct tables of an entity → tables mapping, in a stable (sorted) order."""
    return sorted({t for names in tables.values() for t in names})


def changed_entities(tables: Mapping[str, Sequence[str]], before: Marker, after: Marker) -> list[str]:
    """Entities (keys of *tables*) one of whose tables has a different marker."""
    moved = {t for t in set(before) | set(after) if before.get(t) != after.get(t)}
    return [entity for entity, names in tables.items() if moved.intersection(names)]


def latest_change(marker: Marker) -> str | None:
    """The most recent ``updated_at`` in *marker*, as ISO 8601 UTC, if any table has one."""
    epochs = [Decimal(v[1]) for v in marker.values() if v[1] is not None]
    if not epochs:
        return None
    micros = int(max(epochs) * 1_000_000)  # exact: no float rounding of the microseconds
    return (EPOCH + timedelta(microseconds=micros)).isoformat()


def change_payload(watcher: str, tables: Mapping[str, Sequence[str]], before: Marker, after: Marker) -> dict[str, Any]:
    """What an event says (kept in the asset event's ``extra``): the watcher, the entities and
    tables that changed, and the time of the latest change."""
    moved = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
    return {
        "watcher": watcher,
        "entities": changed_entities(tables, before, after),
        "tables": moved,
        "latest_change": latest_change(after),
    }


Connect = Callable[[], Awaitable[psycopg.AsyncConnection]]


@dataclass
class ChangeDetector:
    """Polls the change marker of *tables* and yields one payload per settled change.

    :param watcher: the name the last fired marker is kept under (the change asset's name).
    :param tables: entity → ``schema.table`` names watched for it.
    :param connect: opens an async connection to the back office (called again after a failure).
    :param poll_seconds: seconds between two reads of the marker while nothing changes.
    :param settle_seconds: after a change, the marker must stay still this long before firing.
    :param max_settle_seconds: fire anyway once a change has been seen this long ago (edits that
        never stop still start the flow; what comes later gives another event).
    """

    watcher: str
    tables: Mapping[str, Sequence[str]]
    connect: Connect
    poll_seconds: float = 20.0
    settle_seconds: float = 10.0
    max_settle_seconds: float = 30.0
    _query: sql.Composed | None = field(default=None, init=False, repr=False)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Yield forever: one payload per settled change; reconnect after a lost connection."""
        while True:
            try:
                async with await self.connect() as conn:
                    async for payload in self._watch(conn):
                        yield payload
            except psycopg.OperationalError as exc:
                log.warning("%s: back office unreachable (%s); retrying in %gs", self.watcher, exc, self.poll_seconds)
                await asyncio.sleep(self.poll_seconds)

    async def _watch(self, conn: psycopg.AsyncConnection) -> AsyncIterator[dict[str, Any]]:
        await self._prepare(conn)
        baseline = await self._baseline(conn)
        while True:
            current = await self.read(conn)
            if current != baseline:
                current = await self._settle(conn, current)
            if current != baseline:
                stored = await self._fire(conn, baseline, current)
                if stored is None:  # moved by us: announce it
                    payload = change_payload(self.watcher, self.tables, baseline, current)
                    baseline = current
                    log.info("%s: change in %s; firing", self.watcher, ", ".join(payload["entities"]))
                    yield payload
                    continue
                baseline = stored  # another triggerer fired for it (or the row was reset)
                continue
            await asyncio.sleep(self.poll_seconds)

    async def _prepare(self, conn: psycopg.AsyncConnection) -> None:
        await conn.execute("SET TimeZone = 'UTC'")
        await conn.execute("SET DateStyle = 'ISO'")
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('passerelle.change_marker'))")
            for statement in MARKER_DDL.split(";"):
                if statement.strip():
                    await conn.execute(statement)
        probes = [await self._probe(conn, table) for table in all_tables(self.tables)]
        self._query = marker_sql(probes)

    async def _probe(self, conn: psycopg.AsyncConnection, table: str) -> TableProbe:
        schema, name = table.split(".", 1)
        cur = await conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, name),
        )
        columns = await cur.fetchall()
        if not columns:
            raise ChangeWatchError(
                f"{self.watcher}: table {table} not found in the back office (or not readable); "
                f"fix the flow's watch list in passerelle.yaml (flows.<flow>.watch)"
            )
        names = [c for c, _ in columns]
        if CHANGE_COLUMN in names:
            return TableProbe(table, CHANGE_COLUMN)
        return TableProbe(table, None, tuple(c for c, kind in columns if kind != "bytea"))

    async def read(self, conn: psycopg.AsyncConnection) -> Marker:
        """The current marker (prepares the query on first use)."""
        if self._query is None:
            await self._prepare(conn)
        cur = await conn.execute(self._query)
        return {table: [count, latest, checksum] for table, count, latest, checksum in await cur.fetchall()}

    async def _baseline(self, conn: psycopg.AsyncConnection) -> Marker:
        """The marker last fired for; on the very first start, the current one (no event)."""
        cur = await conn.execute("SELECT marker FROM passerelle.change_marker WHERE watcher = %s", (self.watcher,))
        row = await cur.fetchone()
        if row is not None:
            return row[0]
        current = await self.read(conn)
        await conn.execute(
            "INSERT INTO passerelle.change_marker (watcher, marker) VALUES (%s, %s) ON CONFLICT (watcher) DO NOTHING",
            (self.watcher, Jsonb(current)),
        )
        cur = await conn.execute("SELECT marker FROM passerelle.change_marker WHERE watcher = %s", (self.watcher,))
        return (await cur.fetchone())[0]

    async def _settle(self, conn: psycopg.AsyncConnection, current: Marker) -> Marker:
        first_seen = time.monotonic()
        while True:
            await asyncio.sleep(self.settle_seconds)
            again = await self.read(conn)
            if again == current or time.monotonic() - first_seen >= self.max_settle_seconds:
                return again
            current = again

    async def _fire(self, conn: psycopg.AsyncConnection, baseline: Marker, current: Marker) -> Marker | None:
        """Move the stored marker from *baseline* to *current*; ``None`` if we did, else the
        marker found stored (someone else moved it: do not fire)."""
        cur = await conn.execute(
            "UPDATE passerelle.change_marker SET marker = %s, events = events + 1, fired_at = now() "
            "WHERE watcher = %s AND marker = %s",
            (Jsonb(current), self.watcher, Jsonb(baseline)),
        )
        if cur.rowcount == 1:
            return None
        cur = await conn.execute("SELECT marker FROM passerelle.change_marker WHERE watcher = %s", (self.watcher,))
        row = await cur.fetchone()
        if row is None:  # the row was deleted: start afresh from the current marker, no event
            await conn.execute(
                "INSERT INTO passerelle.change_marker (watcher, marker) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (self.watcher, Jsonb(current)),
            )
            return current
        return row[0]


def conninfo(conn: Any) -> str:
    """A libpq connection string from an Airflow (Postgres) connection: host, port, login,
    password, schema (the database) and the libpq options found in its extra (sslmode...)."""
    libpq_extras = (
        "sslmode",
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslcrl",
        "connect_timeout",
        "application_name",
        "options",
        "target_session_attrs",
        "keepalives",
        "keepalives_idle",
    )
    extra = conn.extra_dejson if conn.extra else {}
    params = {
        "host": conn.host,
        "port": conn.port,
        "user": conn.login,
        "password": conn.password,
        "dbname": conn.schema,
        **{k: extra[k] for k in libpq_extras if k in extra},
    }
    params.setdefault("application_name", "passerelle-change-watcher")
    return make_conninfo("", **{k: v for k, v in params.items() if v not in (None, "")})
