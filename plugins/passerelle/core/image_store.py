"""The photos step against the back office: what to render, the sources' bytes, the snapshot.

:mod:`passerelle.core.images` is pure (bytes, files, DataFrames); this module is its database
side: it reads the view ``passerelle_src.image`` and the table ``passerelle.image_snapshot``
(what renders the shop holds) and writes the snapshot once a run's renders reached the shop.
Every function takes a psycopg connection and leaves transaction ends to the caller, except
where its docstring says otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import psycopg

from passerelle.core.image_plan import SLOT, ImagePlan, chunk_items, fingerprint_files, plan_images, snapshot_after
from passerelle.core.images import ImageSettings

#: Columns of ``passerelle_src.image`` the plan reads (never ``content``).
LISTING_QUERY = (
    "SELECT key AS image_key, reference, position, source_hash, path FROM passerelle_src.image "
    "ORDER BY reference, position, image_id"
)
SNAPSHOT_QUERY = (
    "SELECT key AS image_key, reference, position, source_hash, path, stat_signature, names, settings "
    "FROM passerelle.image_snapshot"
)
#: Rows fetched at a time by :func:`iter_sources`' server-side cursor: memory stays flat.
FETCH_ROWS = 16
#: Snapshot columns written for each slot, beside (reference, position).
_ROW = ("image_key", "source_hash", "path", "stat_signature", "names", "settings")


def _frame(conn: psycopg.Connection, query: str) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(query)
        return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])


def read_listing(conn: psycopg.Connection) -> pd.DataFrame:
    """The back office's photos: ``image_key, reference, position, source_hash, path`` (no bytes)."""
    return _frame(conn, LISTING_QUERY)


def read_snapshot(conn: psycopg.Connection) -> pd.DataFrame:
    """What the shop holds: ``image_key, reference, position, source_hash, path, stat_signature,
    names, settings``, one row per slot."""
    return _frame(conn, SNAPSHOT_QUERY)


@dataclass
class PhotoRun:
    """A run's plan in XCom-sized pieces: ``chunks`` for the mapped render tasks (no bytes) and
    ``remove``, the slots whose renders are deleted, each with the file names last uploaded."""

    plan: ImagePlan
    chunks: list[list[dict[str, Any]]]
    remove: list[dict[str, Any]]


def plan_run(
    conn: psycopg.Connection, settings: ImageSettings, *, full: bool, dry_run: bool, new_only: bool = False
) -> PhotoRun:
    """Compare the back office's photos with the snapshot and cut the renders in chunks.

    A slot last rendered with other settings (``settings.fingerprint``) is rendered again; file
    sources are hashed only when their size or mtime moved (:func:`fingerprint_files`). A dry run
    plans and returns no chunk. *new_only* (mode ``new``) renders only slots the snapshot does not
    hold, removes nothing (:func:`plan_images`). Ends the read transaction (rollback).
    """
    listing = read_listing(conn)
    previous = read_snapshot(conn)
    conn.rollback()
    # A slot rendered with other settings is rendered again (its previous hash is forgotten).
    previous.loc[previous["settings"] != settings.fingerprint, "source_hash"] = None
    files = listing["path"].notna()
    if files.any():
        hashed = fingerprint_files(listing.loc[files], previous[["path", "stat_signature", "source_hash"]])
        listing.loc[files, "source_hash"] = hashed["source_hash"]
    plan = plan_images(listing, previous.drop(columns=["names", "settings"]), full=full, new_only=new_only)
    chunks = [] if dry_run else chunk_items(plan.render.drop(columns=["source_hash"]), settings.chunk_size)
    names = previous.set_index(SLOT)["names"]
    remove = [
        {
            "image_key": r.image_key,
            "reference": r.reference,
            "position": int(r.position),
            "names": list(names.get((r.reference, r.position)) or []),
        }
        for r in plan.remove.itertuples()
    ]
    return PhotoRun(plan, chunks, remove)


def iter_sources(conn: psycopg.Connection, items: Sequence[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """The chunk's items ready to render: file sources as they are, bytes sources with their
    ``content``, fetched :data:`FETCH_ROWS` at a time through a server-side cursor.

    A second photo at the same key is skipped (the plan reported it); a photo deleted since the
    plan comes last, without content (the renderer reports it as having no source). Ends the read
    transaction (rollback).
    """
    by_key = {item["image_key"]: dict(item) for item in items}
    wanted = {k for k, item in by_key.items() if not item.get("path")}
    for item in by_key.values():
        if item.get("path"):
            yield item
    if not wanted:
        return
    with conn.cursor(name="passerelle_image_sources") as cur:
        cur.itersize = FETCH_ROWS
        cur.execute(
            "SELECT key, content, path FROM passerelle_src.image WHERE key = ANY(%s) ORDER BY key, image_id",
            (sorted(wanted),),
        )
        for key, content, path in cur:
            item = by_key.pop(key, None)
            if item is None:
                continue
            yield {**item, "content": content, "path": path}
    conn.rollback()
    yield from (item for key, item in by_key.items() if key in wanted)


def _plain(value: Any) -> Any:
    """A cell as the database holds it: NaN/NA as None, arrays as lists, numpy scalars as Python."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value


def _rows(frame: pd.DataFrame) -> dict[tuple[str, int], tuple]:
    return {
        (str(r["reference"]), int(r["position"])): tuple(_plain(r[c]) for c in _ROW) for r in frame.to_dict("records")
    }


def save_snapshot(
    conn: psycopg.Connection,
    *,
    rendered: Iterable[Mapping[str, Any]],
    removed: Iterable[Mapping[str, Any]],
    settings: str,
) -> dict[str, int]:
    """Write the snapshot once the run's renders and removals reached the shop.

    The next snapshot is :func:`passerelle.core.images.snapshot_after` applied to the stored one:
    rendered photos take their new hash, file names and *settings* (fingerprint); removed slots
    leave; every other slot (unchanged, or whose render failed: the shop still holds the old
    render and the next run retries) keeps its row. Only the rows that differ are written.

    :param rendered: the render tasks' photos (``image_key, reference, position, source_hash, path,
        stat_signature, files``).
    :param removed: the slots whose renders were deleted (``reference, position``).
    :returns: ``{"written": n, "deleted": m}``. The caller commits.
    """
    rendered = list(rendered)
    previous = read_snapshot(conn)
    done = {(str(r["reference"]), int(r["position"])) for r in rendered}
    gone = {(str(s["reference"]), int(s["position"])) for s in removed}
    slots = list(zip(previous["reference"].astype(str), previous["position"].astype(int), strict=True))
    keep = [slot not in done and slot not in gone for slot in slots]
    plan = ImagePlan(
        render=pd.DataFrame([{k: r[k] for k in ("image_key", *SLOT)} for r in rendered], columns=["image_key", *SLOT]),
        unchanged=previous.loc[keep].drop(columns=["names", "settings"]),
        remove=previous.loc[[slot in gone for slot in slots], ["image_key", *SLOT]],
        duplicates=previous.iloc[0:0],
    )
    after = snapshot_after(previous.drop(columns=["names", "settings"]), plan, rendered)
    # snapshot_after carries the plan's columns; the file names and settings follow the slot.
    extra = {(str(r["reference"]), int(r["position"])): ([f["name"] for f in r["files"]], settings) for r in rendered}
    extra_before = {
        slot: (names, s) for slot, names, s in zip(slots, previous["names"], previous["settings"], strict=True)
    }
    after_slots = list(zip(after["reference"].astype(str), after["position"].astype(int), strict=True))
    after = after.assign(
        names=[(extra.get(slot) or extra_before[slot])[0] for slot in after_slots],
        settings=[(extra.get(slot) or extra_before[slot])[1] for slot in after_slots],
    )
    before, wanted = _rows(previous), _rows(after)
    write = [(*slot, *row) for slot, row in wanted.items() if before.get(slot) != row]
    delete = sorted(set(before) - set(wanted))
    with conn.cursor() as cur:
        if write:
            cur.executemany(
                "INSERT INTO passerelle.image_snapshot AS s (reference, position, key, source_hash, path, "
                "stat_signature, names, settings) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (reference, position) DO UPDATE SET key = excluded.key, "
                "source_hash = excluded.source_hash, path = excluded.path, "
                "stat_signature = excluded.stat_signature, names = excluded.names, "
                "settings = excluded.settings, updated_at = now()",
                write,
            )
        if delete:
            cur.executemany("DELETE FROM passerelle.image_snapshot WHERE reference = %s AND position = %s", delete)
    return {"written": len(write), "deleted": len(delete)}


__all__ = ["FETCH_ROWS", "PhotoRun", "iter_sources", "plan_run", "read_listing", "read_snapshot", "save_snapshot"]
