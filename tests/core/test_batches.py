"""A batch's publication bookkeeping (passerelle.core.batches): folder names, manifests, status."""

from __future__ import annotations

import pytest

from passerelle.core import batches

BATCH = {
    "flow": "catalog",
    "batch_id": 12,
    "run_key": "2026-11-20T02:00:00+01:00",
    "mode": "delta",
    "counts": {"article": {"created": 3}},
    "status": "built",
    "files": [],
}


@pytest.mark.parametrize(
    ("run_key", "stamp"),
    [
        ("2026-11-20T02:00:00+01:00", "20261120T020000"),  # a scheduled run: its logical date
        ("asset_triggered__2026-11-20T10:15:00.123456+00:00", "20261120T101500"),  # issue #13: was assettriggered2
        ("manual__2026-11-20T10:15:00+00:00", "20261120T101500"),
        ("my run", "myrun"),  # a run id without a date keeps its letters and digits
        ("!!!", "run"),
    ],
)
def test_the_folder_stamp_is_the_run_key_s_date(run_key, stamp):
    assert batches.folder_stamp(run_key) == stamp


def test_the_batch_folder_is_the_id_on_eight_digits_then_the_stamp():
    assert batches.batch_folder(10, "asset_triggered__2026-11-20T10:15:00+00:00") == "00000010-20261120T101500"


def test_the_manifest_carries_the_batch_and_its_extra_entries():
    manifest = batches.manifest(BATCH, dialect="prestashop", extra={"images": {"rendered": 2}})
    assert manifest == {
        "flow": "catalog",
        "batch_id": 12,
        "run_key": BATCH["run_key"],
        "mode": "delta",
        "dialect": "prestashop",
        "counts": BATCH["counts"],
        "images": {"rendered": 2},
    }
    assert list(manifest)[: len(batches.MANIFEST_KEYS)] == list(batches.MANIFEST_KEYS)


def test_a_republished_batch_keeps_the_extra_entries_of_its_first_publication():
    first = {"flow": "catalog", "images": {"rendered": 2}}
    again = batches.manifest(BATCH, dialect="generic", extra={"images": {"rendered": 0}, "note": "x"}, first=first)
    assert again["images"] == {"rendered": 2} and again["note"] == "x"


@pytest.mark.parametrize("key", ["flow", "counts", "files"])
def test_an_extra_entry_may_not_replace_the_manifest_s_own_keys(key):
    with pytest.raises(ValueError, match=rf"extra must not replace the manifest's own keys \['{key}'\]"):
        batches.manifest(BATCH, dialect="generic", extra={key: 1, "images": {}})


def test_publication_is_recorded_and_never_reopens_a_confirmed_batch(erp):
    batch_id = erp.execute(
        "INSERT INTO passerelle.batch (flow, run_key, mode, status, entities) "
        "VALUES ('catalog', 'k1', 'delta', 'built', '{article}') RETURNING id"
    ).fetchone()[0]
    assert batches.publication(erp, batch_id)[1] is None
    batches.mark_published(erp, batch_id, {"flow": "catalog", "images": {"rendered": 1}})
    status, published_at = erp.execute(
        "SELECT status, published_at FROM passerelle.batch WHERE id = %s", (batch_id,)
    ).fetchone()
    assert status == "published" and published_at is not None
    assert batches.publication(erp, batch_id)[1] == {"flow": "catalog", "images": {"rendered": 1}}

    erp.execute("UPDATE passerelle.batch SET status = 'confirmed' WHERE id = %s", (batch_id,))
    batches.mark_published(erp, batch_id, {"flow": "catalog"})
    assert erp.execute("SELECT status FROM passerelle.batch WHERE id = %s", (batch_id,)).fetchone()[0] == "confirmed"
    assert batches.publication(erp, batch_id + 1000)[1] is None


def _batch(erp, flow, run_key, status="built"):
    return erp.execute(
        "INSERT INTO passerelle.batch (flow, run_key, mode, status, entities) "
        "VALUES (%s, %s, 'delta', %s, '{price}') RETURNING id",
        (flow, run_key, status),
    ).fetchone()[0]


def test_a_manifest_going_up_makes_its_batch_the_next_run_s_until_its_publication_is_recorded(erp):
    first = _batch(erp, "prices_stock", "k1")
    assert batches.unrecorded_publication(erp, "prices_stock") is None  # built, nothing uploaded yet
    assert batches.publication(erp, first)[::2] == (None, False)
    body = {"batch_id": first, "files": [{"name": "prices_0001.csv", "bytes": 10, "sha256": "x", "rows": 1}]}
    batches.record_manifest(erp, first, "/outbound/prices_stock/00000001-k1", body)
    assert batches.unrecorded_publication(erp, "prices_stock") == first
    assert batches.unrecorded_publication(erp, "catalog") is None  # another flow's
    assert batches.publication(erp, first)[::2] == ("/outbound/prices_stock/00000001-k1", False)
    assert batches.publication(erp, first)[1] == body
    _batch(erp, "prices_stock", "k1#dry", status="dry_run")  # a dry run built since changes nothing
    assert batches.unrecorded_publication(erp, "prices_stock") == first

    batches.mark_published(erp, first, body)
    assert batches.unrecorded_publication(erp, "prices_stock") is None
    assert batches.publication(erp, first)[::2] == ("/outbound/prices_stock/00000001-k1", True)
    # A published batch keeps its first manifest and folder.
    batches.record_manifest(erp, first, "/elsewhere", {"batch_id": first, "files": []})
    assert batches.publication(erp, first)[0] == "/outbound/prices_stock/00000001-k1"
    assert batches.publication(erp, first)[1] == body


def test_a_cut_publication_with_a_later_batch_is_not_taken_up(erp):
    """Older values must not go after newer ones: only the flow's latest real batch is taken up."""
    first = _batch(erp, "prices_stock", "k1")
    batches.record_manifest(erp, first, "/outbound/prices_stock/00000001-k1", {"files": []})
    _batch(erp, "prices_stock", "k2", status="confirmed")
    assert batches.unrecorded_publication(erp, "prices_stock") is None
