"""Backfills: the catalog DAG run for three consecutive nights in order, then a night run again.

The nights are the ones the configured schedule gives (``timetables.next_runs``, what an Airflow
backfill over the range creates, in order); each run is a real dag.test() against PostgreSQL
and the FTP server, with edits to the back office between the nights.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from passerelle_demo.seed import apply_demo_changes

UTC = UTC


def _published(ftp_server) -> dict[str, dict[str, bytes]]:
    """run_key -> {file name: bytes} of every batch folder on the server (manifest included)."""
    out: dict[str, dict[str, bytes]] = {}
    for manifest in sorted(ftp_server.path("/outbound/catalog").glob("*/manifest.json")):
        run_key = json.loads(manifest.read_text())["run_key"]
        out[run_key] = {p.name: p.read_bytes() for p in sorted(manifest.parent.iterdir())}
    return out


def _folder_of(ftp_server, run_key: str) -> Path:
    for manifest in ftp_server.path("/outbound/catalog").glob("*/manifest.json"):
        if json.loads(manifest.read_text())["run_key"] == run_key:
            return manifest.parent
    raise AssertionError(f"no batch folder for {run_key}")


@pytest.fixture
def catalog(airflow_db, connections):
    from passerelle.flows.catalog import catalog_dag

    return catalog_dag()


def test_backfill_runs_in_order_and_a_rerun_reproduces_the_night(catalog, erp, ftp_server):
    from passerelle.config import load_settings
    from passerelle.dag_settings import flow_settings
    from passerelle.timetables import next_runs

    # The backfill's nights: 02:00 in Paris (CET, UTC+1), in order, the same as the DAG's own timetable.
    schedule = flow_settings("catalog", load_settings())["schedule"]
    start, until = datetime(2026, 11, 19, 12, tzinfo=UTC), datetime(2026, 11, 22, 12, tzinfo=UTC)
    nights = next_runs(schedule, start, 10, until=until)
    assert nights == [datetime(2026, 11, d, 1, tzinfo=UTC) for d in (20, 21, 22)]
    assert next_runs(catalog.timetable, start, 10, until=until) == nights

    edits = [
        lambda: None,  # the first night sends everything
        lambda: apply_demo_changes(erp),  # 3 changed, 1 created, 1 off the web
        lambda: (
            erp.execute(
                "UPDATE erp.article SET price_excl_vat = price_excl_vat + 2 "
                "WHERE reference IN ('ART-000010', 'ART-000011')"
            ),
            erp.commit(),
        ),
    ]
    for night, edit in zip(nights, edits):
        edit()
        assert catalog.test(logical_date=night).state == "success"

    batches = erp.execute(
        "SELECT id, run_key, mode, status, counts FROM passerelle.batch WHERE flow = 'catalog' ORDER BY id"
    ).fetchall()
    assert [b[1] for b in batches] == [n.isoformat() for n in nights]  # one batch per night, in night order
    assert [b[2] for b in batches] == ["full", "delta", "delta"]
    assert {b[3] for b in batches} == {"confirmed"}
    assert batches[1][4]["article"]["created"] == 1 and batches[1][4]["article"]["removed"] == 1
    assert batches[2][4]["article"]["changed"] == 2

    first_time = _published(ftp_server)
    assert list(first_time) == [n.isoformat() for n in nights]
    snapshot = erp.execute("SELECT entity, key, hash, batch_id FROM passerelle.snapshot ORDER BY 1, 2").fetchall()

    # Someone edits the back office again, the shop cleans its folder, then the middle night is run again.
    erp.execute("UPDATE erp.article SET name = name || ' (bis)' WHERE reference = 'ART-000012'")
    erp.commit()
    middle = nights[1].isoformat()
    folder = _folder_of(ftp_server, middle)
    for path in folder.iterdir():
        path.unlink()
    assert catalog.test(logical_date=nights[1]).state == "success"

    again = _published(ftp_server)
    assert again[middle] == first_time[middle]  # byte for byte, manifest included
    assert again == first_time
    assert erp.execute("SELECT count(*) FROM passerelle.batch WHERE flow = 'catalog'").fetchone()[0] == 3
    # The rerun of a past night does not move what the shop is known to have.
    assert (
        erp.execute("SELECT entity, key, hash, batch_id FROM passerelle.snapshot ORDER BY 1, 2").fetchall() == snapshot
    )


def test_each_catalog_publish_updates_the_catalog_published_asset(catalog, erp):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    from passerelle.assets import CATALOG_PUBLISHED

    night = datetime(2026, 11, 20, 1, tzinfo=UTC)

    def events() -> int:
        with create_session() as session:
            return session.scalar(
                select(func.count())
                .select_from(AssetEvent)
                .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
                .where(AssetModel.uri == CATALOG_PUBLISHED.uri)
            )

    before = events()
    assert catalog.test(logical_date=night).state == "success"
    assert events() == before + 1


def test_a_shared_pool_keeps_runs_apart_and_no_pool_means_the_default_pool():
    from airflow.sdk import DAG
    from airflow.sdk.bases.operator import BaseOperator

    from passerelle.dag_settings import flow_settings

    cfg = {
        "_path": "passerelle.yaml",
        "shop": {"timezone": "Europe/Paris"},
        "catalog": {"entities": ["family", "article"]},
        "flows": {"catalog": {"pool": "shop_products"}, "prices_stock": {"pool": "shop_products"}},
    }
    for flow in ("catalog", "prices_stock"):
        settings = flow_settings(flow, cfg)
        assert settings["max_active_runs"] == 1
        with DAG(f"{flow}_pool_check", **settings):
            task = BaseOperator(task_id="publish")
        assert task.pool == "shop_products" and task.weight_rule == "upstream"

    with DAG("customers_pool_check", **flow_settings("customers", cfg)):
        task = BaseOperator(task_id="publish")
    assert task.pool == "default_pool"  # no pool configured: Airflow's own, which always exists
