"""The photos step against a real back office (passerelle.core.image_store): plan, sources, snapshot."""

from __future__ import annotations

import dataclasses

from passerelle.config import load_settings
from passerelle.core import image_store
from passerelle.core.images import image_settings


def _snapshot(erp) -> dict[tuple[str, int], tuple]:
    rows = erp.execute(
        "SELECT reference, position, key, source_hash, names, settings FROM passerelle.image_snapshot"
    ).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def _insert(erp, *rows) -> None:
    erp.cursor().executemany(
        "INSERT INTO passerelle.image_snapshot (reference, position, key, source_hash, names, settings) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        rows,
    )


def _rendered(reference, position, source_hash, names):
    return {
        "image_key": f"{reference}:{position}",
        "reference": reference,
        "position": position,
        "source_hash": source_hash,
        "path": None,
        "stat_signature": None,
        "files": [{"name": n, "size": 10} for n in names],
    }


def test_save_snapshot_writes_renders_drops_removals_and_keeps_a_failed_slot(erp):
    _insert(
        erp,
        ("A", 0, "A:0", "h-a0", ["a-0-large.jpg"], "old"),  # rendered again (changed)
        ("A", 1, "A:1", "h-a1", ["a-1-large.jpg"], "old"),  # its render failed: kept as it was
        ("B", 0, "B:0", "h-b0", ["b-0-large.jpg"], "cur"),  # unchanged
        ("C", 0, "C:0", "h-c0", ["c-0-large.jpg"], "cur"),
    )  # left the back office
    done = image_store.save_snapshot(
        erp,
        rendered=[
            _rendered("A", 0, "h-a0-new", ["a-0-large.jpg", "a-0-thumbnail.jpg"]),
            _rendered("D", 2, "h-d2", ["d-2-large.jpg"]),
        ],
        removed=[{"reference": "C", "position": 0, "image_key": "C:0", "names": ["c-0-large.jpg"]}],
        settings="cur",
    )
    assert done == {"written": 2, "deleted": 1}
    assert _snapshot(erp) == {
        ("A", 0): ("A:0", "h-a0-new", ["a-0-large.jpg", "a-0-thumbnail.jpg"], "cur"),
        ("A", 1): ("A:1", "h-a1", ["a-1-large.jpg"], "old"),
        ("B", 0): ("B:0", "h-b0", ["b-0-large.jpg"], "cur"),
        ("D", 2): ("D:2", "h-d2", ["d-2-large.jpg"], "cur"),
    }
    # Nothing rendered, nothing removed: nothing written.
    assert image_store.save_snapshot(erp, rendered=[], removed=[], settings="cur") == {"written": 0, "deleted": 0}


def test_a_run_whose_renders_are_saved_plans_nothing_the_next_time(erp):
    settings = image_settings(load_settings())
    first = image_store.plan_run(erp, settings, full=False, dry_run=False)
    planned = len(first.plan.render)
    assert planned > 0 and sum(len(c) for c in first.chunks) == planned and first.remove == []
    assert all("content" not in item for chunk in first.chunks for item in chunk)

    # The sources of the first chunk come with their bytes (the view's bytes sources).
    sources = list(image_store.iter_sources(erp, first.chunks[0]))
    assert [s["image_key"] for s in sources] == [i["image_key"] for i in first.chunks[0]]
    assert all(isinstance(s["content"], bytes) and s["content"] for s in sources)

    rendered = [
        _rendered(r.reference, int(r.position), r.source_hash, [f"{r.image_key}.jpg"])
        for r in first.plan.render.itertuples()
    ]
    assert image_store.save_snapshot(erp, rendered=rendered, removed=[], settings=settings.fingerprint) == {
        "written": planned,
        "deleted": 0,
    }
    erp.commit()
    again = image_store.plan_run(erp, settings, full=False, dry_run=False)
    assert again.plan.counts()["render"] == 0 and again.chunks == [] and len(again.plan.unchanged) == planned

    # Other rendering settings: every photo is rendered again; a dry run plans without chunks.
    other = image_store.plan_run(
        erp, dataclasses.replace(settings, quality=settings.quality - 1), full=False, dry_run=True
    )
    assert other.plan.counts()["render"] == planned and other.chunks == []
