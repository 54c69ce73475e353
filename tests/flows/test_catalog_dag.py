"""End to end: the catalog DAG run for real with dag.test() against PostgreSQL and FTP."""

from __future__ import annotations

import csv
import hashlib
import json

import pendulum
import pytest

from passerelle.demo import apply_demo_changes


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
        "SELECT count(*) FROM passerelle_src.article a WHERE a.web AND a.price_excl_vat > 0").fetchone()[0]
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
    off = _rows(folder / "products_off_0001.csv")
    assert [(r["Reference #"], r["Active (0/1)"], r["Name"]) for r in off] == [(changes["removed"][0], "0", "")]
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
