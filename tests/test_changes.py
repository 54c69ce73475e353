"""On change: the change marker, the event trigger (run for real against PostgreSQL), and the
configuration that wires it (AssetWatcher on the flow's change asset, ``after: [catalog]``).

The trigger's async generator is driven directly with asyncio, with poll and settle times of
a fraction of a second; the back office is a real copy of the demo database.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime

import psycopg
import pytest

from passerelle.assets import flow_change_asset, published_asset
from passerelle.config import FlowConfigError
from passerelle.core.changes import DEFAULT_WATCH, ChangeDetector, TableProbe, changed_entities, marker_sql
from passerelle.dag_settings import flow_settings, watched_tables
from passerelle.timetables import next_runs
from passerelle.triggers import ErpChangeTrigger

CATALOG_TABLES = {
    "article": ["erp.article", "erp.stock", "erp.image"],
    "family": ["erp.family"],
    "invoice": ["erp.invoice"],  # no updated_at: summarised by a checksum of its rows
}
FAST = {"poll_seconds": 0.2, "settle_seconds": 0.4, "max_settle_seconds": 5.0}


def cfg_with(flows: dict) -> dict:
    return {
        "_path": "/etc/passerelle/passerelle.yaml",
        "shop": {"timezone": "Europe/Paris", "erp_conn_id": "passerelle_erp"},
        "catalog": {"entities": ["family", "brand", "supplier", "article", "variant"]},
        "flows": flows,
    }


# --------------------------------------------------------------------------- pure parts


def test_changed_entities_names_the_entities_of_the_moved_tables():
    tables = {
        "article": ["erp.article", "erp.stock"],
        "variant": ["erp.variant", "erp.stock"],
        "family": ["erp.family"],
    }
    before = {
        "erp.article": [1, "1", "1"],
        "erp.stock": [2, "2", "2"],
        "erp.variant": [3, "3", "3"],
        "erp.family": [4, "4", "4"],
    }
    assert changed_entities(tables, before, dict(before)) == []
    assert changed_entities(tables, before, {**before, "erp.stock": [2, "2", "3"]}) == ["article", "variant"]
    assert changed_entities(tables, before, {**before, "erp.family": [5, "4", "4"]}) == ["family"]


def test_marker_sql_reads_updated_at_or_a_checksum_without_binary_columns():
    query = marker_sql([TableProbe("erp.article", "updated_at"), TableProbe("erp.invoice", None, ("id", "number"))])
    text = query.as_string(None)
    assert 'max("updated_at")' in text and 'FROM "erp"."article"' in text
    assert 'hashtext(ROW("id", "number")::text)' in text and "pdf" not in text


def test_default_watch_covers_every_entity_of_the_outbound_flows():
    cfg = cfg_with({})
    for flow in ("catalog", "customers", "prices_stock", "order_status"):
        tables = watched_tables(flow, cfg)
        assert tables and all(tables.values()), flow
    assert set(DEFAULT_WATCH["article"]) >= {"erp.article", "erp.stock", "erp.image"}


# --------------------------------------------------------------------------- the marker on a real back office


def _detector(dsn: str, tables: dict, watcher: str = "test.marker", **times) -> ChangeDetector:
    async def connect() -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(dsn, autocommit=True)

    return ChangeDetector(watcher=watcher, tables=tables, connect=connect, **{**FAST, **times})


def test_marker_moves_on_insert_update_delete_and_on_a_late_commit(erp_dsn):
    async def scenario():
        detector = _detector(erp_dsn, CATALOG_TABLES)
        async with await psycopg.AsyncConnection.connect(erp_dsn, autocommit=True) as conn:
            first = await detector.read(conn)
            assert set(first) == {"erp.article", "erp.stock", "erp.image", "erp.family", "erp.invoice"}
            assert await detector.read(conn) == first  # stable while nothing changes

            await conn.execute("UPDATE erp.family SET name = name || ' ' WHERE id = 1")
            updated = await detector.read(conn)
            assert changed_entities(CATALOG_TABLES, first, updated) == ["family"]

            await conn.execute("DELETE FROM erp.image WHERE id = (SELECT min(id) FROM erp.image)")
            deleted = await detector.read(conn)
            assert deleted["erp.image"][0] == updated["erp.image"][0] - 1
            assert changed_entities(CATALOG_TABLES, updated, deleted) == ["article"]

            # A table without updated_at: a new row changes count and checksum.
            await conn.execute(
                "INSERT INTO erp.customer (code) VALUES ('CLI-CHG'); "
                "INSERT INTO erp.sales_order (number, customer_id, order_date) "
                "SELECT 'CMD-CHG', id, now() FROM erp.customer WHERE code = 'CLI-CHG'; "
                "INSERT INTO erp.invoice (number, order_id, total_excl_vat, total_vat, total_incl_vat, pdf) "
                "SELECT 'FAC-CHG', id, 10, 2, 12, '\\x00'::bytea FROM erp.sales_order WHERE number = 'CMD-CHG'"
            )
            invoiced = await detector.read(conn)
            assert changed_entities(CATALOG_TABLES, deleted, invoiced) == ["invoice"]
            await conn.execute("UPDATE erp.invoice SET total_vat = 2.5 WHERE number = 'FAC-CHG'")
            assert changed_entities(CATALOG_TABLES, invoiced, await detector.read(conn)) == ["invoice"]

            # A transaction that started earlier commits after a later one: its updated_at is older
            # than the maximum already seen, the row count does not move, yet the marker does.
            async with await psycopg.AsyncConnection.connect(erp_dsn) as slow:
                await slow.execute("UPDATE erp.article SET name = name || ' ' WHERE id = 2")  # now() = earlier
                await asyncio.sleep(0.05)
                await conn.execute("UPDATE erp.article SET name = name || ' ' WHERE id = 3")
                seen = await detector.read(conn)
                await slow.commit()
            after = await detector.read(conn)
            assert after["erp.article"][1] == seen["erp.article"][1]  # max(updated_at) unchanged
            assert after["erp.article"][0] == seen["erp.article"][0]  # count unchanged
            assert changed_entities(CATALOG_TABLES, seen, after) == ["article"]

    asyncio.run(scenario())


# --------------------------------------------------------------------------- the trigger


class Consumer:
    """Runs a trigger's ``run()`` in the background, collecting event payloads, as the triggerer does."""

    def __init__(self, trigger: ErpChangeTrigger):
        self.events: list[dict] = []
        self.task = asyncio.create_task(self._consume(trigger))

    async def _consume(self, trigger: ErpChangeTrigger) -> None:
        async for event in trigger.run():
            self.events.append(event.payload)

    async def wait_for(self, n: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.events) < n:
            if self.task.done():
                self.task.result()  # re-raise what stopped the trigger
            assert time.monotonic() < deadline, f"expected {n} events within {timeout}s, got {self.events}"
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
def erp_conn_id(monkeypatch, erp_dsn) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_PASSERELLE_CHANGES_TEST", erp_dsn.replace("postgresql://", "postgres://", 1))
    return "passerelle_changes_test"


def _trigger(conn_id: str, watcher: str = "passerelle.change.catalog", **times) -> ErpChangeTrigger:
    return ErpChangeTrigger(watcher=watcher, tables=CATALOG_TABLES, conn_id=conn_id, **{**FAST, **times})


async def _edit(dsn: str, statements: list[str], pause: float = 0.0) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            await conn.execute(statement)
            if pause:
                await asyncio.sleep(pause)


def _stored(dsn: str, watcher: str) -> tuple | None:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT events, fired_at IS NOT NULL FROM passerelle.change_marker WHERE watcher = %s", (watcher,)
        ).fetchone()


def test_no_event_while_nothing_changes(erp_conn_id, erp_dsn):
    async def scenario():
        consumer = Consumer(_trigger(erp_conn_id))
        await asyncio.sleep(2.0)  # ten polls
        await consumer.stop()
        return consumer.events

    assert asyncio.run(scenario()) == []
    assert _stored(erp_dsn, "passerelle.change.catalog") == (0, False)  # baseline kept, nothing fired


def test_a_burst_of_five_updates_fires_exactly_once_then_a_later_change_once_more(erp_conn_id, erp_dsn):
    burst = [f"UPDATE erp.article SET price_excl_vat = price_excl_vat + 1 WHERE id = {i}" for i in range(1, 6)]

    async def scenario():
        consumer = Consumer(_trigger(erp_conn_id))
        await asyncio.sleep(0.6)  # the trigger has its baseline
        assert consumer.events == []
        await _edit(erp_dsn, burst, pause=0.05)
        await consumer.wait_for(1)
        await asyncio.sleep(2.0)  # many polls later: still one event for the whole burst
        assert len(consumer.events) == 1
        await _edit(erp_dsn, ["UPDATE erp.family SET position = position + 1 WHERE id = 2"])
        await consumer.wait_for(2)
        await asyncio.sleep(1.5)
        await consumer.stop()
        return consumer.events

    first, second = asyncio.run(scenario())
    assert first["watcher"] == "passerelle.change.catalog"
    assert first["entities"] == ["article"] and first["tables"] == ["erp.article"]
    assert first["latest_change"]
    assert second["entities"] == ["family"] and second["tables"] == ["erp.family"]
    assert _stored(erp_dsn, "passerelle.change.catalog") == (2, True)


def test_a_restarted_trigger_neither_repeats_nor_loses_an_event(erp_conn_id, erp_dsn):
    async def scenario():
        consumer = Consumer(_trigger(erp_conn_id))
        await asyncio.sleep(0.6)
        await _edit(erp_dsn, ["DELETE FROM erp.image WHERE id = (SELECT max(id) FROM erp.image)"])
        await consumer.wait_for(1)
        await consumer.stop()  # the triggerer restarts

        again = Consumer(_trigger(erp_conn_id))
        await asyncio.sleep(2.0)
        assert again.events == [], "the change already announced fired again after a restart"
        await again.stop()  # down again; meanwhile someone edits the back office

        await _edit(erp_dsn, ["UPDATE erp.stock SET quantity = quantity + 3 WHERE article_id = 7"])
        last = Consumer(_trigger(erp_conn_id))
        await last.wait_for(1)  # the change made while it was down is not lost
        await asyncio.sleep(1.5)
        await last.stop()
        return consumer.events + again.events + last.events

    events = asyncio.run(scenario())
    assert [e["tables"] for e in events] == [["erp.image"], ["erp.stock"]]
    assert _stored(erp_dsn, "passerelle.change.catalog")[0] == 2


def test_edits_that_never_stop_still_fire_within_max_settle_and_the_last_one_is_not_lost(erp_conn_id, erp_dsn):
    async def scenario():
        consumer = Consumer(_trigger(erp_conn_id, max_settle_seconds=1.0))
        await asyncio.sleep(0.6)
        started = time.monotonic()
        edits = asyncio.create_task(
            _edit(
                erp_dsn,
                [f"UPDATE erp.article SET name = name || '.' WHERE id = {1 + i % 5}" for i in range(40)],
                pause=0.1,
            )
        )  # four seconds of edits, never still for settle_seconds
        await consumer.wait_for(1, timeout=3.0)
        fired_after = time.monotonic() - started
        await edits
        while True:  # wait until the trigger is quiet again
            seen = len(consumer.events)
            await asyncio.sleep(1.5)
            if len(consumer.events) == seen:
                break
        await consumer.stop()
        return fired_after, consumer.events

    fired_after, events = asyncio.run(scenario())
    assert fired_after < 3.0  # before the edits ended (about 4 s)
    assert 2 <= len(events) <= 6  # about one per max_settle_seconds, not one per edit
    with psycopg.connect(erp_dsn) as conn:
        last_edit = conn.execute("SELECT max(updated_at) FROM erp.article").fetchone()[0]
    assert events[-1]["latest_change"] == last_edit.astimezone(UTC).isoformat()


def test_a_watched_table_that_does_not_exist_is_named(erp_conn_id):
    trigger = ErpChangeTrigger(
        watcher="passerelle.change.catalog", tables={"article": ["erp.articles"]}, conn_id=erp_conn_id, **FAST
    )

    async def scenario():
        async for _ in trigger.run():
            pass

    with pytest.raises(Exception, match=r"table erp\.articles not found"):
        asyncio.run(asyncio.wait_for(scenario(), 10))


# --------------------------------------------------------------------------- configuration → DAG


def test_on_change_flow_is_scheduled_on_its_change_asset_with_a_watcher():
    from airflow.sdk import DAG, Asset
    from airflow.serialization.serialized_objects import DagSerialization

    cfg = cfg_with(
        {
            "catalog": {
                "on_change": True,
                "poll_seconds": 5,
                "settle_seconds": 3,
                "watch": {"article": ["erp.article", "erp.stock"]},
            }
        }
    )
    settings = flow_settings("catalog", cfg)
    schedule = settings["schedule"]
    assert isinstance(schedule, Asset)
    assert schedule.name == flow_change_asset("catalog").name == "passerelle.change.catalog"
    [watcher] = schedule.watchers
    trigger = watcher.trigger
    assert isinstance(trigger, ErpChangeTrigger)
    assert trigger.conn_id == "passerelle_erp" and trigger.poll_seconds == 5 and trigger.settle_seconds == 3
    assert trigger.tables["article"] == ["erp.article", "erp.stock"]  # configured
    assert trigger.tables["family"] == list(DEFAULT_WATCH["family"])  # default
    assert set(trigger.tables) == {"family", "brand", "supplier", "article", "variant"}

    # What the scheduler and the triggerer will see: the serialized DAG keeps watcher and trigger.
    dag = DAG("catalog_on_change", **settings)
    data = DagSerialization.to_dict(dag)
    text = str(data)
    assert "passerelle.triggers.ErpChangeTrigger" in text and "passerelle_erp_changes_catalog" in text
    back = DagSerialization.from_dict(data)
    assert "passerelle.change.catalog" in str(back.timetable.asset_condition)
    classpath, kwargs = trigger.serialize()
    rebuilt = ErpChangeTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_on_change_added_to_times_keeps_both_and_the_watcher():
    from airflow.sdk import AssetOrTimeSchedule

    settings = flow_settings("prices_stock", cfg_with({"prices_stock": {"times": ["08:00"], "on_change": True}}))
    schedule = settings["schedule"]
    assert isinstance(schedule, AssetOrTimeSchedule)
    [watcher] = schedule.asset_condition.watchers
    assert set(watcher.trigger.tables) == {"price", "stock"}


def test_after_catalog_adds_the_catalog_published_asset_to_the_schedule():
    from airflow.sdk import AssetAny, AssetOrTimeSchedule

    from passerelle.assets import CATALOG_PUBLISHED

    assert CATALOG_PUBLISHED == published_asset("catalog")
    assert CATALOG_PUBLISHED.name == "passerelle.catalog.published"
    assert CATALOG_PUBLISHED.uri == "passerelle://shop/catalog"

    schedule = flow_settings("prices_stock", cfg_with({"prices_stock": {"after": ["catalog"]}}))["schedule"]
    assert isinstance(schedule, AssetOrTimeSchedule)  # its default hourly rhythm, and after each catalog publish
    assert schedule.asset_condition == CATALOG_PUBLISHED
    utc = UTC
    assert next_runs(schedule, datetime(2026, 6, 1, 9, 30, tzinfo=utc), 2) == [
        datetime(2026, 6, 1, 10, tzinfo=utc),
        datetime(2026, 6, 1, 11, tzinfo=utc),
    ]

    both = flow_settings("prices_stock", cfg_with({"prices_stock": {"on_change": True, "after": "catalog"}}))
    assert isinstance(both["schedule"], AssetAny)
    assert {a.name for a in both["schedule"].objects} == {
        "passerelle.change.prices_stock",
        "passerelle.catalog.published",
    }
    assert "after each publish of catalog" in both["description"]


def test_the_catalog_dag_publishes_its_asset():
    from passerelle.assets import CATALOG_PUBLISHED
    from passerelle.flows.catalog import catalog_dag

    dag = catalog_dag()
    assert dag.get_task("publish").outlets == [CATALOG_PUBLISHED]


BAD = [
    # (flows section, the flow, words the message must contain)
    (
        {"prices_stock": {"after": ["prices_stock"]}},
        "prices_stock",
        "flows.prices_stock.after[0]: a flow cannot run after itself",
    ),
    (
        {"prices_stock": {"after": ["customers"]}},
        "prices_stock",
        "flows.prices_stock.after[0]: 'customers' publishes no asset",
    ),
    ({"prices_stock": {"after": ["catalog"], "manual": True}}, "prices_stock", "manual: true and after are both set"),
    (
        {"prices_stock": {"on_change": True, "poll_seconds": 0}},
        "prices_stock",
        "flows.prices_stock.poll_seconds: expected a number of seconds from 1 to 3600, got 0",
    ),
    ({"prices_stock": {"settle_seconds": "10"}}, "prices_stock", "flows.prices_stock.settle_seconds"),
    (
        {"prices_stock": {"watch": {"stock": ["stock"]}}},
        "prices_stock",
        "flows.prices_stock.watch.stock[0]: expected a table as schema.table",
    ),
    (
        {"prices_stock": {"watch": ["erp.stock"]}},
        "prices_stock",
        "flows.prices_stock.watch: expected a mapping of entity to tables",
    ),
    (
        {"prices_stock": {"on_change": True, "watch": {"stok": ["erp.stock"]}}},
        "prices_stock",
        "flows.prices_stock.watch.stok: 'stok' is not an entity of prices_stock",
    ),
    (
        {"orders_in": {"on_change": True}},
        "orders_in",
        "flows.orders_in.on_change: orders_in reads the files the shop drops",
    ),
    ({"report": {"on_change": True}}, "report", "flows.report.on_change"),
    ({"catalog": {"local_dir": "/tmp"}}, "catalog", "flows.catalog.local_dir: only the report flow takes"),
    ({"report": {"days": 0}}, "report", "flows.report.days: expected a whole number of days from 1 to 366, got 0"),
    ({"report": {"remote_dir": "/reports/../etc"}}, "report", "flows.report.remote_dir"),
]


@pytest.mark.parametrize(("flows", "flow", "expected"), BAD, ids=[e for _, _, e in BAD])
def test_bad_change_or_asset_configuration_names_the_flow_and_key(flows, flow, expected):
    with pytest.raises(FlowConfigError) as err:
        flow_settings(flow, cfg_with(flows))
    assert str(err.value).startswith("/etc/passerelle/passerelle.yaml: flows.")
    assert expected in str(err.value)


def test_triggers_serialized_under_the_former_classpath_still_load():
    # A triggerer may load a trigger row written by the previous release before the DAG is parsed again.
    import importlib

    from passerelle import triggers

    module, _, name = "passerelle.changes.ErpChangeTrigger".rpartition(".")
    assert getattr(importlib.import_module(module), name) is triggers.ErpChangeTrigger
    classpath, _ = ErpChangeTrigger(watcher="w", tables={"stock": ["erp.stock"]}).serialize()
    assert classpath == "passerelle.triggers.ErpChangeTrigger"
