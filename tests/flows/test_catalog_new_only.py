"""The catalog's new-only mode, run for real with dag.test() against PostgreSQL and FTP: only the
articles created since the last confirmed send travel, and the snapshot keeps the others as they
were, so the next delta still sends their changes and removals."""

from __future__ import annotations

import csv
import json

import pendulum
import pytest

from passerelle_demo.seed import apply_demo_changes


def _run(dag, when, conf=None):
    dr = dag.test(logical_date=when, run_conf=conf or {})
    assert dr.state == "success", f"run ended {dr.state}"
    return dr


def _manifests(ftp_server):
    return sorted(ftp_server.path("/outbound/catalog").glob("*/manifest.json"))


def _references(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return {r["Reference #"] for r in csv.DictReader(fh, delimiter=";")}


@pytest.fixture
def catalog(airflow_db, connections):
    from passerelle.flows.catalog import catalog_dag

    return catalog_dag()


def _snapshot_hash(erp, reference):
    row = erp.execute(
        "SELECT hash FROM passerelle.snapshot WHERE entity = 'article' AND key = %s", (reference,)
    ).fetchone()
    return row and row[0]


def test_new_only_sends_the_created_article_and_leaves_changes_for_the_next_delta(
    catalog, connections, erp, ftp_server
):
    day1 = pendulum.datetime(2026, 11, 20, 2, tz="Europe/Paris")
    _run(catalog, day1)
    changes = apply_demo_changes(erp)
    new_ref = changes["created"][0]
    # The new article has a photo; a known article gets a new cover (a changed photo at a known slot).
    erp.execute(
        "INSERT INTO erp.image (article_id, position, filename, content) "
        "SELECT (SELECT id FROM erp.article WHERE reference = %s), 1, 'new.jpg', content FROM erp.image "
        "ORDER BY id LIMIT 1",
        (new_ref,),
    )
    touched = erp.execute(
        "UPDATE erp.image i SET content = (SELECT o.content FROM erp.image o WHERE o.content <> i.content "
        "ORDER BY o.id LIMIT 1), updated_at = now() "
        "WHERE id = (SELECT min(i.id) FROM erp.image i JOIN erp.article a ON a.id = i.article_id "
        "WHERE a.reference = %s) RETURNING id",
        (changes["changed"][0],),
    ).fetchone()
    erp.commit()
    hashes_before = {ref: _snapshot_hash(erp, ref) for ref in changes["changed"] + changes["removed"]}
    images_before = erp.execute("SELECT reference, position, source_hash FROM passerelle.image_snapshot").fetchall()

    _run(catalog, day1.add(days=1), {"mode": "new"})
    manifests = _manifests(ftp_server)
    assert len(manifests) == 2
    m2 = json.loads(manifests[1].read_text())
    assert m2["mode"] == "new"
    art = m2["counts"]["article"]
    assert (art["created"], art["changed"], art["removed"]) == (1, 0, 0)
    assert art["held"] == 4  # 3 changed, 1 taken off the web: left for the next delta
    folder = manifests[1].parent
    assert _references(folder / "products_0001.csv") == {new_ref}
    assert not list(folder.glob("products_off_*.csv"))
    # Photos: the new article's rendered; the changed cover of a known article is not.
    assert m2["images"]["rendered"] == 1, m2["images"]
    after = {
        (r, p): h for r, p, h in erp.execute("SELECT reference, position, source_hash FROM passerelle.image_snapshot")
    }
    assert (new_ref, 1) in after
    for ref, pos, source_hash in images_before:
        assert after[(ref, pos)] == source_hash, (ref, pos)

    # The snapshot took the new article only: the others keep what the shop last confirmed.
    assert _snapshot_hash(erp, new_ref) is not None
    assert {ref: _snapshot_hash(erp, ref) for ref in hashes_before} == hashes_before

    # The next delta sends the changes and the removal, and not the new article again.
    # (the mode said explicitly: dag.test() in one process keeps the previous run's conf as params)
    _run(catalog, day1.add(days=2), {"mode": "delta"})
    m3 = json.loads(_manifests(ftp_server)[2].read_text())
    assert m3["mode"] == "delta"
    art = m3["counts"]["article"]
    assert (art["created"], art["changed"], art["removed"]) == (0, 3, 1)
    folder = _manifests(ftp_server)[2].parent
    assert _references(folder / "products_0001.csv") == set(changes["changed"])
    assert _references(folder / "products_off_0001.csv") == set(changes["removed"])
    assert touched is not None
    assert m3["images"]["rendered"] == 1  # the changed cover, left by the new-only run


def test_a_flow_set_to_new_offers_it_as_the_run_forms_default(tmp_path, monkeypatch):
    from passerelle.config import load_settings
    from passerelle.dag_settings import flow_settings

    path = tmp_path / "passerelle.yaml"
    path.write_text("flows:\n  catalog:\n    cron: '0 2 * * *'\n    mode: new\n")
    settings = load_settings(str(path))
    assert settings.flow("catalog").mode == "new"
    params = flow_settings("catalog", settings)["params"]
    assert params["mode"].value == "new"
    assert params["mode"].schema["enum"] == ["delta", "new", "full"]


def test_mode_is_checked_with_a_hint_and_refused_where_no_snapshot(tmp_path):
    from passerelle.config import ConfigError, load_settings

    path = tmp_path / "passerelle.yaml"
    path.write_text("flows:\n  catalog:\n    mode: nwe\n")
    with pytest.raises(
        ConfigError, match=r"flows\.catalog\.mode: expected one of delta, new, full, got 'nwe' \(did you mean 'new'\?\)"
    ):
        load_settings(str(path))
    path.write_text("flows:\n  orders_in:\n    mode: new\n")
    with pytest.raises(ConfigError, match=r"flows\.orders_in\.mode: orders_in reads the shop's files .*remove mode"):
        load_settings(str(path))


def test_plan_images_new_only_renders_new_slots_and_removes_nothing():
    import pandas as pd

    from passerelle.core.image_plan import plan_images

    previous = pd.DataFrame(
        {"image_key": ["A:1", "B:1"], "reference": ["A", "B"], "position": [1, 1], "source_hash": ["a", "b"]}
    )
    current = pd.DataFrame(
        {"image_key": ["A:1", "C:1"], "reference": ["A", "C"], "position": [1, 1], "source_hash": ["a2", "c"]}
    )
    plan = plan_images(current, previous, new_only=True)
    assert plan.render["reference"].tolist() == ["C"]  # A's changed photo waits for a delta
    assert plan.remove.empty  # B left the listing: removed by the next delta, not now
    delta = plan_images(current, previous)
    assert sorted(delta.render["reference"]) == ["A", "C"] and delta.remove["reference"].tolist() == ["B"]
