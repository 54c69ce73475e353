"""End to end: the catalog DAG run for real with dag.test() against PostgreSQL and FTP."""

from __future__ import annotations

import csv
import hashlib
import json

import pendulum
import pytest

from passerelle_demo.seed import apply_demo_changes


def _run(dag, when, conf=None):
    dr = dag.test(logical_date=when, run_conf=conf or {})
    assert dr.state == "success", f"run ended {dr.state}"
    return dr


def _rows(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter=";"))


def _manifests(ftp_server):
    root = ftp_server.path("/outbound/catalog")
    return sorted(root.glob("*/manifest.json"))


@pytest.fixture
def catalog(airflow_db, connections):
    from passerelle.flows.catalog import catalog_dag

    return catalog_dag()


def test_full_then_delta(catalog, connections, erp, ftp_server):
    day1 = pendulum.datetime(2026, 11, 20, 2, tz="Europe/Paris")
    _run(catalog, day1)
    (first,) = _manifests(ftp_server)
    m1 = json.loads(first.read_text())
    assert m1["mode"] == "full"
    web_articles = erp.execute(
        "SELECT count(*) FROM passerelle_src.article a WHERE a.web AND a.price_excl_vat > 0"
    ).fetchone()[0]
    assert m1["counts"]["article"]["created"] == web_articles

    changes = apply_demo_changes(erp)
    _run(catalog, day1.add(days=1))
    manifests = _manifests(ftp_server)
    assert len(manifests) == 2
    m2 = json.loads(manifests[1].read_text())
    assert m2["mode"] == "delta"
    art = m2["counts"]["article"]
    assert (art["created"], art["changed"], art["removed"]) == (1, 3, 1)
    for entity in ("family", "brand", "supplier", "variant"):
        c = m2["counts"][entity]
        assert c["created"] == c["changed"] == c["removed"] == 0, entity

    # The server holds exactly the files the manifest names, with matching sha256.
    folder = manifests[1].parent
    on_server = sorted(p.name for p in folder.iterdir() if p.name != "manifest.json")
    assert on_server == sorted(f["name"] for f in m2["files"])
    for f in m2["files"]:
        assert hashlib.sha256((folder / f["name"]).read_bytes()).hexdigest() == f["sha256"]
    products = _rows(folder / "products_0001.csv")
    assert {r["Reference #"] for r in products} == set(changes["changed"]) | set(changes["created"])
    # A price-only change carries no photo: PrestaShop would download every photo again.
    price_only = next(r for r in products if r["Reference #"] == changes["changed"][0])
    assert (
        erp.execute(
            "SELECT count(*) FROM erp.image i JOIN erp.article a ON a.id = i.article_id WHERE a.reference = %s",
            (changes["changed"][0],),
        ).fetchone()[0]
        > 0
    )
    assert (price_only["Image URLs (x,y,z...)"], price_only["Delete existing images (0 = No, 1 = Yes)"]) == ("", "")
    off = _rows(folder / "products_off_0001.csv")
    # Deactivated by reference with its name (PrestaShop refuses a product row with an empty name).
    name = erp.execute("SELECT name FROM erp.article WHERE reference = %s", (changes["removed"][0],)).fetchone()[0]
    assert [(r["Reference #"], r["Active (0/1)"], r["Name"]) for r in off] == [(changes["removed"][0], "0", name)]
    assert not list(folder.glob("*.part"))


def test_rerun_same_logical_date_republishes_same_delta(catalog, connections, erp, ftp_server):
    day1 = pendulum.datetime(2026, 11, 20, 2, tz="Europe/Paris")
    _run(catalog, day1)
    apply_demo_changes(erp)
    day2 = day1.add(days=1)
    _run(catalog, day2)
    folder = _manifests(ftp_server)[1].parent
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "manifest.json"}
    for p in folder.iterdir():
        p.unlink()  # the shop imported and cleaned up; the engineer reruns the day
    _run(catalog, day2)
    after = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "manifest.json"}
    assert after == before
    batches = erp.execute("SELECT count(*) FROM passerelle.batch WHERE flow = 'catalog'").fetchone()[0]
    assert batches == 2


def test_dry_run_uploads_nothing(catalog, connections, erp, ftp_server):
    _run(catalog, pendulum.datetime(2026, 11, 20, 2, tz="Europe/Paris"), {"dry_run": True})
    assert not ftp_server.path("/outbound").exists() or not any(ftp_server.path("/outbound").rglob("*"))
    assert erp.execute("SELECT count(*) FROM passerelle.snapshot").fetchone()[0] == 0


def _catalog_events(dr) -> int:
    """Asset events of the catalog's published asset that run *dr* left in Airflow's metadata DB."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    from passerelle.assets import CATALOG_PUBLISHED

    with create_session() as session:
        return session.scalar(
            select(func.count())
            .select_from(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(
                AssetModel.uri == CATALOG_PUBLISHED.uri,
                AssetEvent.source_dag_id == dr.dag_id,
                AssetEvent.source_run_id == dr.run_id,
            )
        )


def _states(dr) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dr.dag_id, TaskInstance.run_id == dr.run_id)
        )
        return {ti.task_id: ti.state for ti in tis if ti.map_index < 1}


def test_only_a_run_that_sends_catalog_files_announces_the_publication(catalog, connections, erp, ftp_server):
    night = pendulum.datetime(2026, 11, 20, 2, tz="Europe/Paris")
    summaries = "SELECT dry_run, counts FROM passerelle.run_summary WHERE flow = 'catalog' ORDER BY id"

    # A dry run: nothing uploaded, no asset event; the run succeeds and its summary is recorded.
    dry = _run(catalog, night.subtract(hours=1), {"dry_run": True})
    assert _catalog_events(dry) == 0
    assert _states(dry)["publish"] == "skipped" and _states(dry)["confirm"] == "success"
    assert not ftp_server.path("/outbound/catalog").exists()
    ((was_dry, counts),) = erp.execute(summaries).fetchall()
    assert was_dry and counts["article"]["created"] > 0

    # A real run: the files reach the shop and the asset is updated once.
    real = _run(catalog, night, {"dry_run": False})
    assert _catalog_events(real) == 1
    assert _states(real)["publish"] == "success"
    assert len(_manifests(ftp_server)) == 1

    # The next night, nothing changed: the manifest alone is uploaded, nothing is announced.
    quiet = _run(catalog, night.add(days=1))
    assert _catalog_events(quiet) == 0
    assert _states(quiet)["publish"] == "skipped" and _states(quiet)["confirm"] == "success"
    manifest = json.loads(_manifests(ftp_server)[-1].read_text())
    assert manifest["mode"] == "delta" and manifest["files"] == []
    assert [dry for dry, _ in erp.execute(summaries).fetchall()] == [True, False, False]


def test_a_catalog_run_logs_no_xcom_not_found(catalog, connections, erp, ftp_server, monkeypatch):
    """Issue #13: every catalog run logged ``[error] XCom not found``: finish_images iterated the
    mapped render_images' output, which asks the API server for one item past the end, and the
    Task SDK's client logs that 404 as an error. A run whose photos are rendered in several chunks
    reads every chunk's result and logs no error from the client."""
    from airflow.sdk.api import client

    logged: list[tuple[str, str]] = []
    reads: list[int] = []

    class Recorder:
        """The client's logger, recording what it says (and still saying it)."""

        def __init__(self, log):
            self._log = log

        def __getattr__(self, level):
            def say(event, *args, **kwargs):
                logged.append((level, str(event)))
                return getattr(self._log, level)(event, *args, **kwargs)

            return say

    read_item = client.XComOperations.get_sequence_item

    def counted(self, *args, **kwargs):
        reads.append(kwargs.get("offset", args[-1] if args else None))
        return read_item(self, *args, **kwargs)

    monkeypatch.setattr(client, "log", Recorder(client.log))
    monkeypatch.setattr(client.XComOperations, "get_sequence_item", counted)
    dr = _run(catalog, pendulum.datetime(2026, 11, 20, 2, tz="Europe/Paris"))
    chunks = [ti for ti in dr.get_task_instances() if ti.task_id == "render_images"]
    assert len(chunks) > 1 and {ti.state for ti in chunks} == {"success"}  # the mapped task ran, in chunks
    assert [event for level, event in logged if level in ("error", "exception", "critical")] == []
    assert sorted(reads) == list(range(len(chunks)))  # each chunk's result read once, none past the end
