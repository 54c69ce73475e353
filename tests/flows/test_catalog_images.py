"""End to end: the catalog DAG renders and publishes the photos (dag.test(), PostgreSQL, FTP).

Night 1 renders every photo to both formats into /outbound/images and the product files name
files that exist there. Between the nights one photo changes, one is deleted and one is
corrupted: night 2 uploads only the changed photo's renders, removes the deleted one's and
reports the bad one with its article reference, and the run succeeds.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path

import pendulum
import pytest
import yaml

from passerelle.core.images import image_settings, render_name
from passerelle_demo.seed import photo

DAY1 = pendulum.datetime(2026, 11, 20, 2, tz="Europe/Paris")
OLD = 946_684_800  # 2000-01-01: mtime given to every render between the nights


def _run(dag, when, conf=None):
    dr = dag.test(logical_date=when, run_conf=conf or {})
    assert dr.state == "success", f"run ended {dr.state}"
    return dr


def _manifest(ftp_server, index: int) -> dict:
    manifests = sorted(ftp_server.path("/outbound/catalog").glob("*/manifest.json"))
    return json.loads(manifests[index].read_text())


def _renders(ftp_server) -> dict[str, Path]:
    return {p.name: p for p in ftp_server.path("/outbound/images").iterdir()}


def _image_urls(folder: Path, base: str) -> list[str]:
    """Every image URL in the batch's product files (PrestaShop: comma-separated in one column)."""
    urls = []
    for products in folder.glob("products_*.csv"):
        for row in csv.reader(io.StringIO(products.read_text(encoding="utf-8")), delimiter=";"):
            for cell in row:
                urls += [u for u in cell.split(",") if u.startswith(base)]
    return urls


@pytest.fixture
def cfg_path(tmp_path, monkeypatch):
    """The project's configuration with bigger chunks (fewer mapped tasks, faster test)."""
    cfg = yaml.safe_load(Path(os.environ["PASSERELLE_CONFIG"]).read_text(encoding="utf-8"))
    cfg["images"]["chunk_size"] = 400
    path = tmp_path / "passerelle.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    monkeypatch.setenv("PASSERELLE_CONFIG", str(path))
    return cfg


@pytest.fixture
def catalog(cfg_path, airflow_db, connections):
    from passerelle.flows.catalog import catalog_dag

    return catalog_dag()


def test_photos_rendered_then_only_changes_sent(catalog, cfg_path, erp, ftp_server, tmp_path):
    settings = image_settings(cfg_path["images"])
    # One photo given as a file path rather than bytes (hashed in Python, not in SQL).
    on_disk = tmp_path / "third-view.jpg"
    on_disk.write_bytes(photo("third view", (30, 120, 200), seed=3))
    path_ref = erp.execute(
        "INSERT INTO erp.image (article_id, position, path) "
        "SELECT id, 3, %s FROM erp.article WHERE web ORDER BY reference LIMIT 1 "
        "RETURNING (SELECT reference FROM erp.article a WHERE a.id = article_id)",
        (str(on_disk),),
    ).fetchone()[0]
    erp.commit()
    listing = erp.execute(
        "SELECT reference, position FROM passerelle_src.image ORDER BY reference, position"
    ).fetchall()
    assert len(listing) > 500
    expected = {render_name(ref, pos, spec.name, settings.ext) for ref, pos in listing for spec in settings.formats}

    # Night 1: every photo, two formats each; the product files name renders on the server.
    _run(catalog, DAY1)
    renders = _renders(ftp_server)
    assert set(renders) == expected
    m1 = _manifest(ftp_server, 0)
    assert m1["images"]["rendered"] == len(listing) and m1["images"]["bad"] == 0
    assert m1["images"]["files"] == 2 * len(listing)
    base = cfg_path["shop"]["public_base_url"].rstrip("/") + "/images/"
    folder = sorted(ftp_server.path("/outbound/catalog").glob("*/manifest.json"))[0].parent
    urls = _image_urls(folder, base)
    assert len(urls) > 500
    assert {u.removeprefix(base) for u in urls} <= set(renders)
    assert erp.execute("SELECT count(*) FROM passerelle.image_snapshot").fetchone()[0] == len(listing)
    assert (path_ref, 3) in listing and render_name(path_ref, 3, "large", settings.ext) in renders
    assert (
        erp.execute(
            "SELECT source_hash FROM passerelle.image_snapshot WHERE reference = %s AND position = 3", (path_ref,)
        ).fetchone()[0]
        == hashlib.sha256(on_disk.read_bytes()).hexdigest()
    )
    for p in renders.values():
        os.utime(p, (OLD, OLD))

    # Between the nights: one photo changes, a second view is deleted, one photo is corrupted.
    changed, deleted, bad = erp.execute(
        "SELECT (array_agg(reference ORDER BY reference) FILTER (WHERE position = 1))[1], "
        "(array_agg(reference ORDER BY reference) FILTER (WHERE position = 2))[1], "
        "(array_agg(reference ORDER BY reference) FILTER (WHERE position = 1))[2] "
        "FROM passerelle_src.image"
    ).fetchone()
    new_bytes = photo(changed + " new", (200, 30, 30), seed=7)
    erp.execute(
        "UPDATE erp.image i SET content = %s FROM erp.article a "
        "WHERE a.id = i.article_id AND a.reference = %s AND i.position = 1",
        (new_bytes, changed),
    )
    erp.execute(
        "DELETE FROM erp.image i USING erp.article a WHERE a.id = i.article_id AND a.reference = %s AND i.position = 2",
        (deleted,),
    )
    erp.execute(
        "UPDATE erp.image i SET content = 'not an image'::bytea FROM erp.article a "
        "WHERE a.id = i.article_id AND a.reference = %s AND i.position = 1",
        (bad,),
    )
    erp.commit()

    _run(catalog, DAY1.add(days=1))
    after = _renders(ftp_server)
    uploaded = {name for name, p in after.items() if p.stat().st_mtime != OLD}
    assert uploaded == {render_name(changed, 1, spec.name, settings.ext) for spec in settings.formats}
    gone = {render_name(deleted, 2, spec.name, settings.ext) for spec in settings.formats}
    assert set(after) == expected - gone  # the bad photo's previous renders stay for the shop
    assert not [n for n in after if n.endswith(".part")]

    images = _manifest(ftp_server, 1)["images"]
    assert (images["rendered"], images["removed"], images["bad"]) == (1, 1, 1)
    assert images["unchanged"] == len(listing) - 3
    (error,) = images["errors"]
    assert error["reference"] == bad and error["position"] == 1 and "not an image" in error["reason"]

    snapshot = {
        (r, p): h for r, p, h in erp.execute("SELECT reference, position, source_hash FROM passerelle.image_snapshot")
    }
    assert snapshot[(changed, 1)] == hashlib.sha256(new_bytes).hexdigest()
    assert (deleted, 2) not in snapshot
    assert snapshot[(bad, 1)] != hashlib.sha256(b"not an image").hexdigest()  # retried next night

    # A full run renders every listed photo again (the bad one is still reported).
    for p in after.values():
        os.utime(p, (OLD, OLD))
    _run(catalog, DAY1.add(days=2), {"mode": "full"})
    images = _manifest(ftp_server, 2)["images"]
    assert (images["rendered"], images["bad"], images["unchanged"]) == (len(listing) - 2, 1, 0)
    renewed = {name for name, p in _renders(ftp_server).items() if p.stat().st_mtime != OLD}
    assert renewed == expected - gone - {render_name(bad, 1, s.name, settings.ext) for s in settings.formats}


def test_a_run_taking_up_a_cut_batch_keeps_the_renders_its_product_files_name(
    catalog, cfg_path, erp, ftp_server, monkeypatch, tmp_path
):
    """Night 2 changes an article's second photo: its product row names all its renders. Its publish
    is cut after the manifest went up, before it was recorded. Then that second photo is deleted.
    Night 3 takes night 2's batch up and publishes it as it was built, naming the second photo's
    renders: they stay on the server that night (removal held, the image snapshot keeps the slot),
    so no product file points at a missing render; night 4 removes them and sends the article's
    photos without it."""
    import passerelle.core.batches as batches

    settings = image_settings(cfg_path["images"])
    base = cfg_path["shop"]["public_base_url"].rstrip("/") + "/images/"
    cfg = dict(cfg_path)
    cfg["flows"] = {**cfg["flows"], "catalog": {**cfg["flows"]["catalog"], "retries": 0}}
    (tmp_path / "passerelle.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    from passerelle.flows.catalog import catalog_dag

    catalog = catalog_dag()
    _run(catalog, DAY1)
    ref = erp.execute(
        "SELECT reference FROM passerelle_src.image GROUP BY reference HAVING count(*) >= 2 ORDER BY 1 LIMIT 1"
    ).fetchone()[0]
    erp.execute(
        "UPDATE erp.image i SET content = %s FROM erp.article a WHERE a.id = i.article_id AND a.reference = %s "
        "AND i.position = 2",
        (photo(ref + " second", (20, 160, 60), seed=11), ref),
    )
    erp.commit()

    def gone(*args, **kwargs):
        import psycopg

        raise psycopg.OperationalError("server closed the connection unexpectedly")

    mark = batches.mark_published
    monkeypatch.setattr(batches, "mark_published", gone)
    cut = catalog.test(logical_date=DAY1.add(days=1), run_conf={"dry_run": False})
    assert cut.get_task_instance("publish").state == "failed"
    monkeypatch.setattr(batches, "mark_published", mark)
    second = {render_name(ref, 2, spec.name, settings.ext) for spec in settings.formats}
    erp.execute(
        "DELETE FROM erp.image i USING erp.article a WHERE a.id = i.article_id AND a.reference = %s AND i.position = 2",
        (ref,),
    )
    erp.commit()

    night3 = _run(catalog, DAY1.add(days=2), {"dry_run": False})
    assert night3.get_task_instance("build").xcom_pull(task_ids="build")["taken_from"]
    folders = sorted(ftp_server.path("/outbound/catalog").glob("*/manifest.json"))
    named = {u.removeprefix(base) for u in _image_urls(folders[-1].parent, base)}
    assert second & named  # the taken-up batch names the deleted photo's render
    assert named <= set(_renders(ftp_server))  # ... and every render it names is on the server
    images = night3.get_task_instance("finish_images").xcom_pull(task_ids="finish_images")
    assert (images["removed"], images["removals_held"]) == (0, 1)
    assert erp.execute(
        "SELECT count(*) FROM passerelle.image_snapshot WHERE reference = %s AND position = 2", (ref,)
    ).fetchone() == (1,)

    _run(catalog, DAY1.add(days=3), {"dry_run": False})
    assert not second & set(_renders(ftp_server))
    assert _manifest(ftp_server, -1)["images"]["removed"] == 1
    folder = sorted(ftp_server.path("/outbound/catalog").glob("*/manifest.json"))[-1].parent
    sent = {u.removeprefix(base) for u in _image_urls(folder, base)}
    first = {render_name(ref, 1, spec.name, settings.ext) for spec in settings.formats}
    assert first & sent and not second & sent  # the article's photos, sent again without the deleted one
