"""What a photos run does: the sources' fingerprints, the plan against the snapshot of what the
shop last received, the chunks handed to the mapped render tasks, and the next snapshot.

Pure functions over DataFrames (no Airflow, no database: :mod:`passerelle.core.image_store`
reads and writes the listing and the snapshot), in the order of a run:

1. :func:`fingerprint_files` hashes only the file sources whose size or mtime moved;
2. :func:`plan_images` compares the listing with the snapshot: what to render, what is
   unchanged, which renders to remove (:func:`removal_names`);
3. :func:`chunk_items` cuts the render list into XCom-sized chunks, each rendered by
   :func:`passerelle.core.images.render_chunk`;
4. :func:`snapshot_after` gives the next snapshot once renders and removals reached the shop.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from passerelle.core.images import ImageSettings, image_settings, render_name, stat_signature

#: Columns of a listing and of the snapshot that :func:`plan_images` compares.
PLAN_COLUMNS = ("image_key", "reference", "position", "source_hash")
#: A render's place: one article (or variant) reference and the photo's position (0 = cover).
SLOT = ["reference", "position"]


def _file_hash(path: str | os.PathLike[str]) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def fingerprint_files(listing: pd.DataFrame, previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """Add ``stat_signature`` and ``source_hash`` to a listing of file sources (column ``path``).

    A file whose path and stat signature are the same as in ``previous`` (a snapshot with columns
    ``path, stat_signature, source_hash``) keeps its previous hash without being read, so a rerun
    with nothing changed costs one ``stat`` per file. Other files are read and hashed. A missing
    file gets no hash (None): :func:`plan_images` then plans it and :func:`render_chunk` reports it.
    """
    if "path" not in listing.columns:
        raise ValueError(f"fingerprint_files: the listing needs a 'path' column; it has {list(listing.columns)}")
    out = listing.copy()
    paths = out["path"].astype(str)
    out["stat_signature"] = pd.Series([stat_signature(p) for p in paths], index=out.index, dtype=object)
    hashes = pd.Series([None] * len(out), index=out.index, dtype=object)
    wanted = {"path", "stat_signature", "source_hash"}
    if previous is not None and wanted <= set(previous.columns) and len(previous):
        known = previous.loc[previous["stat_signature"].notna(), ["path", "stat_signature", "source_hash"]]
        known = known.astype({"path": str, "stat_signature": str}).drop_duplicates(["path", "stat_signature"])
        lookup = pd.MultiIndex.from_frame(known[["path", "stat_signature"]])
        keys = pd.MultiIndex.from_arrays([paths, out["stat_signature"].astype(str)])
        at = lookup.get_indexer(keys)
        found = at >= 0
        hashes[found] = known["source_hash"].to_numpy()[at[found]]
    todo = hashes.isna() & out["stat_signature"].notna()
    for idx in out.index[todo]:
        hashes[idx] = _file_hash(paths[idx])
    out["source_hash"] = hashes
    return out


@dataclass
class ImagePlan:
    """What a run does: ``render`` (rows of the listing), ``unchanged`` (rows skipped),
    ``remove`` (slots of the snapshot no longer listed: their renders are deleted) and
    ``duplicates`` (listing rows sharing a slot with an earlier row: not rendered, to report)."""

    render: pd.DataFrame
    unchanged: pd.DataFrame
    remove: pd.DataFrame
    duplicates: pd.DataFrame

    def counts(self) -> dict[str, int]:
        """Number of rows in each part, for the run's summary."""
        return {
            "render": len(self.render),
            "unchanged": len(self.unchanged),
            "remove": len(self.remove),
            "duplicates": len(self.duplicates),
        }


def _normalise(frame: pd.DataFrame | None, label: str) -> pd.DataFrame:
    if frame is None:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PLAN_COLUMNS}).astype({"position": "int64"})
    missing = [c for c in PLAN_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"plan_images: {label} lacks column(s) {missing}; it has {list(frame.columns)}, "
            f"expected {list(PLAN_COLUMNS)}"
        )
    out = frame.reset_index(drop=True)
    bad_ref = out["reference"].isna() | (out["reference"].astype(str).str.strip() == "")
    if bad_ref.any():
        row = out.loc[bad_ref].iloc[0]
        raise ValueError(f"plan_images: {label} has an empty reference (image_key {row['image_key']!r})")
    position = pd.to_numeric(out["position"], errors="coerce")
    if position.isna().any() or (position < 0).any() or (position % 1 != 0).any():
        row = out.loc[position.isna() | (position < 0) | (position % 1 != 0)].iloc[0]
        raise ValueError(
            f"plan_images: {label} row image_key {row['image_key']!r} (reference {row['reference']!r}) "
            f"has position {row['position']!r}; expected an integer >= 0"
        )
    return out.assign(reference=out["reference"].astype(str), position=position.astype("int64"))


def plan_images(
    current: pd.DataFrame, previous: pd.DataFrame | None = None, full: bool = False, new_only: bool = False
) -> ImagePlan:
    """Compare the listing with the snapshot of what the shop last received (set-wise, vectorised).

    Both frames have ``image_key, reference, position, source_hash`` (``current`` may carry more,
    e.g. ``path``: kept in ``render``). A render lives at a slot (reference, position):

    * a listed photo whose slot held the same ``source_hash`` is unchanged (not rendered, not sent);
    * any other listed photo is rendered (new, changed, moved to another position or article, or no
      hash known); with ``full`` every listed photo is rendered;
    * a slot of the snapshot no longer listed is in ``remove`` (its renders are deleted);
    * two listed photos at the same slot: the first is kept, the others go to ``duplicates``.

    With ``new_only`` (a new-only catalog send), only slots the snapshot does not hold are
    rendered; a changed photo at a known slot is left for the next delta, and nothing is removed
    (the snapshot keeps every slot it holds, see :func:`passerelle.core.image_store.save_snapshot`).
    """
    if full and new_only:
        raise ValueError("plan_images: full and new_only exclude each other")
    cur = _normalise(current, "current")
    prev = _normalise(previous, "previous").drop_duplicates(SLOT, keep="last")
    dup = cur.duplicated(SLOT, keep="first")
    duplicates, cur = cur.loc[dup], cur.loc[~dup]
    if full:
        same = np.zeros(len(cur), dtype=bool)
    elif new_only:
        same = pd.MultiIndex.from_frame(cur[SLOT]).isin(pd.MultiIndex.from_frame(prev[SLOT]))
    else:
        before = prev[[*SLOT, "source_hash"]].rename(columns={"source_hash": "_previous_hash"})
        merged = cur[[*SLOT, "source_hash"]].merge(before, on=SLOT, how="left", validate="one_to_one")
        same = (merged["_previous_hash"].notna() & (merged["source_hash"] == merged["_previous_hash"])).to_numpy()
    listed = pd.MultiIndex.from_frame(cur[SLOT])
    gone = ~pd.MultiIndex.from_frame(prev[SLOT]).isin(listed)
    if new_only:
        gone = np.zeros(len(prev), dtype=bool)
    return ImagePlan(
        render=cur.loc[~same].reset_index(drop=True),
        unchanged=cur.loc[same].reset_index(drop=True),
        remove=prev.loc[gone, ["image_key", *SLOT]].reset_index(drop=True),
        duplicates=duplicates.reset_index(drop=True),
    )


def removal_names(remove: pd.DataFrame, cfg: Mapping[str, Any] | ImageSettings) -> list[str]:
    """File names to delete on the shop for the removed slots (every configured format)."""
    settings = image_settings(cfg)
    return [
        render_name(ref, int(pos), spec.name, settings.ext)
        for ref, pos in zip(remove["reference"].astype(str), remove["position"], strict=True)
        for spec in settings.formats
    ]


def chunk_items(frame: pd.DataFrame, chunk_size: int) -> list[list[dict[str, Any]]]:
    """Cut ``plan.render`` into lists of JSON-ready dicts, one per mapped task (no bytes carried).

    Keeps ``image_key, reference, position, source_hash`` and ``path`` when present.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_items: chunk_size must be >= 1, got {chunk_size!r}")
    keep = [c for c in (*PLAN_COLUMNS, "path") if c in frame.columns]
    records = frame[keep].astype(object).where(frame[keep].notna(), None).to_dict("records")
    return [records[i : i + chunk_size] for i in range(0, len(records), chunk_size)]


def snapshot_after(
    previous: pd.DataFrame | None, plan: ImagePlan, rendered: Iterable[Mapping[str, Any]]
) -> pd.DataFrame:
    """The snapshot once the run's renders and removals reached the shop.

    Unchanged rows stay; rendered photos take their new hash; a planned photo that failed keeps the
    slot's previous row, if any (the shop still has the old render and the next run retries);
    removed slots leave. Columns: ``image_key, reference, position, source_hash`` and, when known,
    ``path, stat_signature`` (for :func:`fingerprint_files`).
    """
    columns = [*PLAN_COLUMNS, "path", "stat_signature"]
    done = pd.DataFrame([{k: r.get(k) for k in columns} for r in rendered], columns=columns)
    done = done.astype({"position": "int64"}) if len(done) else done
    prev = _normalise(previous, "previous").drop_duplicates(SLOT, keep="last")
    planned = pd.MultiIndex.from_frame(plan.render[SLOT])
    succeeded = pd.MultiIndex.from_frame(done[SLOT].astype({"reference": str, "position": "int64"}))
    failed_slots = planned[~planned.isin(succeeded)]
    kept = prev.loc[pd.MultiIndex.from_frame(prev[SLOT]).isin(failed_slots)]
    parts = [p for p in (plan.unchanged, done, kept) if len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    out = pd.concat([p.reindex(columns=columns) for p in parts], ignore_index=True)
    out = out.astype({"reference": str, "position": "int64"})
    return out.sort_values(SLOT, kind="stable").reset_index(drop=True)


__all__ = [
    "PLAN_COLUMNS",
    "SLOT",
    "ImagePlan",
    "chunk_items",
    "fingerprint_files",
    "plan_images",
    "removal_names",
    "snapshot_after",
]
