"""A batch's publication bookkeeping: its folder on the shop's server, its manifest, its status.

A batch (``passerelle.batch``, built by :mod:`passerelle.core.differ`) is published once per
logical date; a rerun republishes the same files under the same folder with the same manifest,
byte for byte. These functions hold that rule and the SQL behind it; the publish operator only
moves bytes between the outbox and the shop's server.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from typing import Any

import psycopg

#: The keys every manifest carries (``files`` is added once the upload is done).
MANIFEST_KEYS = ("flow", "batch_id", "run_key", "mode", "dialect", "counts")

_DATED = re.compile(r"\d{4}-?\d{2}-?\d{2}.*")
_FOLDER = re.compile(r"(\d{8,})-[0-9A-Za-z]+")


def folder_stamp(run_key: str) -> str:
    """The readable part of a batch folder's name: the run key's date and time, digits and letters only.

    A run key is the logical date (``2026-11-20T02:00:00+01:00`` gives ``20261120T020000``) or, for
    a run without one (an asset-triggered run), its run id: its leading words
    (``asset_triggered__``) are skipped so that its folder is named by date too. A run id with no
    date keeps its first 15 letters and digits.
    """
    dated = _DATED.search(run_key)
    return re.sub(r"[^0-9A-Za-z]+", "", dated.group(0) if dated else run_key)[:15] or "run"


def batch_folder(batch_id: int, run_key: str) -> str:
    """The batch's folder name under the flow's outbound folder: ``<id, 8 digits>-<stamp>``."""
    return f"{batch_id:08d}-{folder_stamp(run_key)}"


def manifest(
    batch: Mapping[str, Any],
    *,
    dialect: str,
    extra: Mapping[str, Any] | None = None,
    first: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of *batch* (the build task's result) before its files are listed.

    :param extra: more entries (e.g. ``{"images": {...}}``); none may replace the manifest's own keys.
    :param first: the manifest of the batch's first publication, if any: an extra entry it already
        carried keeps its first value, so that republishing a batch gives the same manifest.
    :raises ValueError: naming the clashing keys.
    """
    out = {
        "flow": batch["flow"],
        "batch_id": batch["batch_id"],
        "run_key": batch["run_key"],
        "mode": batch["mode"],
        "dialect": dialect,
        "counts": batch["counts"],
    }
    extra = dict(extra or {})
    clash = sorted(set(extra) & {*out, "files"})
    if clash:
        raise ValueError(f"extra must not replace the manifest's own keys {clash}; got keys {sorted(extra)}")
    first = first or {}
    out.update({k: first.get(k, v) for k, v in extra.items()})
    return out


def publication(conn: psycopg.Connection, batch_id: int) -> tuple[str | None, dict[str, Any] | None, bool]:
    """What is recorded of the batch's publication: (the folder its manifest went up to or was going
    up to, or None; that manifest, files listed, or None: its publication never reached its
    manifest; whether the publication is recorded, :func:`mark_published`). A folder without its
    publication recorded is a cut one (:func:`record_manifest`): its publish looks on the server
    before putting anything again."""
    row = conn.execute(
        "SELECT publish_folder, manifest, published_at IS NOT NULL FROM passerelle.batch WHERE id = %s", (batch_id,)
    ).fetchone()
    return (row[0], row[1] or None, row[2]) if row else (None, None, False)


def record_manifest(conn: psycopg.Connection, batch_id: int, folder: str, manifest: Mapping[str, Any]) -> None:
    """Just before a built batch's manifest goes up: its folder and the manifest, files listed. From
    then on the shop may have the batch even if its publication is never recorded
    (:func:`mark_published`: the database lost between the two); the flow's next run publishes it
    again (:func:`unrecorded_publication`) instead of sending its rows again in a new batch. A batch
    already published keeps its first manifest. The caller commits."""
    conn.execute(
        "UPDATE passerelle.batch SET manifest = %s, publish_folder = %s WHERE id = %s AND status = 'built'",
        (json.dumps(manifest), folder, batch_id),
    )


def unrecorded_publication(conn: psycopg.Connection, flow: str) -> int | None:
    """The flow's latest batch, when its manifest was going up (:func:`record_manifest`) but its
    publication was never recorded (its publish task failed there, retries used up); else None.

    The shop may have imported it. A new batch would be diffed against a snapshot without it and
    send its rows again, in a new folder: a row the shop has no key for yet would be created twice
    (a PrestaShop customer). The flow's next run takes it up instead
    (:func:`passerelle.core.differ.build_batch`): published again in its folder, same bytes (the
    shop imports a folder once), then confirmed.
    """
    row = conn.execute(
        "SELECT b.id FROM passerelle.batch b WHERE b.flow = %s AND b.status = 'built' "
        "AND b.publish_folder IS NOT NULL AND b.published_at IS NULL AND NOT EXISTS ("
        "SELECT 1 FROM passerelle.batch n WHERE n.flow = b.flow AND n.id > b.id AND n.status <> 'dry_run') "
        "ORDER BY b.id LIMIT 1",
        (flow,),
    ).fetchone()
    return row[0] if row else None


def mark_published(conn: psycopg.Connection, batch_id: int, manifest: Mapping[str, Any]) -> None:
    """Record the uploaded manifest and the time; a built batch becomes ``published`` (a confirmed or
    superseded one keeps its status: republishing it must not reopen it). The caller commits."""
    conn.execute(
        "UPDATE passerelle.batch SET manifest = %s, published_at = now(), "
        "status = CASE WHEN status = 'built' THEN 'published' ELSE status END WHERE id = %s",
        (json.dumps(manifest), batch_id),
    )


#: SQL: batch ``{a}`` was confirmed by the build of the later batch ``{n}`` of its flow, not by its own
#: run (published, its run failed before its confirm): :func:`passerelle.core.differ.build_batch`
#: confirms it in that build's transaction, so at ``{n}``'s creation time.
CONFIRMED_BY_BUILD_OF = "({a}.status = 'confirmed' AND {a}.confirmed_at >= {n}.created_at)"


def superseded_by(conn: psycopg.Connection, batch_id: int) -> tuple[int, str] | None:
    """(id, status) of the later batch of the same flow that must not be overtaken by this one's files,
    when this one is ``superseded`` (built, never published, and a later batch was built over it),
    or was confirmed by a later batch's build (published, its run failed before its confirm:
    :func:`passerelle.core.differ.build_batch`); else None.

    Publishing it would send its old values (yesterday's prices, and creations the shop has already
    made) after the newer ones, and the snapshot, which holds the newer ones, would never send them
    again: it must not be published. A batch confirmed by its own run may be published again (a
    rerun reproduces what was sent, as a backfill does).
    """
    row = conn.execute(
        "SELECT n.id, n.status FROM passerelle.batch b JOIN passerelle.batch n ON n.flow = b.flow AND n.id > b.id "
        "AND n.status <> 'dry_run' WHERE b.id = %s AND (b.status = 'superseded' OR "
        f"{CONFIRMED_BY_BUILD_OF.format(a='b', n='n')}) ORDER BY n.id DESC LIMIT 1",
        (batch_id,),
    ).fetchone()
    if row is None:
        exists = conn.execute("SELECT status FROM passerelle.batch WHERE id = %s", (batch_id,)).fetchone()
        if exists and exists[0] == "superseded":  # superseded, its successor since deleted: still stale
            return (batch_id, "superseded")
        return None
    return row[0], row[1]


def batch_id_of_folder(name: str) -> int | None:
    """The batch id a folder name (:func:`batch_folder`) starts with, or None for another name."""
    match = _FOLDER.fullmatch(name)
    return int(match.group(1)) if match else None


def unfinished_folders(
    conn: psycopg.Connection, names: list[str], *, keep: int, older_than: datetime.timedelta
) -> list[str]:
    """The batch folders among ``names`` whose publication never ended: their batch was never marked
    published (the manifest, uploaded last, is missing) and was built more than ``older_than`` ago.
    The batch ``keep`` (being published now) is never one of them."""
    ids = {batch_id_of_folder(n): n for n in names}
    ids.pop(None, None)
    ids.pop(keep, None)
    if not ids:
        return []
    rows = conn.execute(
        "SELECT id FROM passerelle.batch WHERE id = ANY(%s) AND published_at IS NULL AND created_at < now() - %s",
        (sorted(ids), older_than),
    ).fetchall()
    return sorted(ids[r[0]] for r in rows)


__all__ = [
    "MANIFEST_KEYS",
    "batch_folder",
    "batch_id_of_folder",
    "folder_stamp",
    "manifest",
    "mark_published",
    "publication",
    "record_manifest",
    "superseded_by",
    "unfinished_folders",
    "unrecorded_publication",
]
