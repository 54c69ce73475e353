"""Thin operators of the images step: plan, render (mapped over chunks), finish.

They move data between the back office (view ``passerelle_src.image``, table
``passerelle.image_snapshot``), the shop's server and the pure core
(:mod:`passerelle.core.images`). Only small values travel through XCom: image keys, names,
hashes, counts and errors; never bytes. Renders go to ``<shop.outbound_dir>/images/``.

::

    plan_images -> render_images.expand(chunk=plan_images.output) -> finish_images(plan_images.output["plan"])
"""

from __future__ import annotations

import ftplib  # nosec: B402 (only for its error type: a removal of a file already gone)
import posixpath
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from passerelle.config import load_config
from passerelle.operators.batch import ErpMixin

#: Columns of ``passerelle_src.image`` the plan reads (never ``content``).
LISTING_QUERY = "SELECT key AS image_key, reference, position, source_hash, path FROM passerelle_src.image"
SNAPSHOT_QUERY = (
    "SELECT key AS image_key, reference, position, source_hash, path, stat_signature, names, settings "
    "FROM passerelle.image_snapshot"
)
#: Errors listed in a run's summary (all are logged; the count is always complete).
MAX_ERRORS_LISTED = 50
#: Rows fetched at a time by a render task's server-side cursor: memory stays flat.
FETCH_ROWS = 16


def _truthy(value: Any) -> bool:
    return value in (True, "true", "True", "1", 1)


def images_folder(cfg: Mapping[str, Any]) -> str:
    """The renders' folder on the shop's server: ``<shop.outbound_dir>/images``."""
    return posixpath.join(cfg["shop"]["outbound_dir"], "images")


class _ShopMixin:
    shop_conn_id: str

    @cached_property
    def shop(self):
        from passerelle.hooks.shop import ShopFilesHook

        return ShopFilesHook(self.shop_conn_id)


class PlanImagesOperator(ErpMixin, BaseOperator):
    """List the back office's photos, compare with what the shop holds, cut the work in chunks.

    Returns the chunks (lists of ``{image_key, reference, position, path}``, no bytes), for
    ``render_images.expand(chunk=plan_images.output)`` (Airflow maps over return values only);
    pushes the plan's counts and the slots to remove under the XCom key ``plan``, for
    ``finish_images``. A dry run plans and returns no chunk.

    :param mode: ``delta`` or ``full`` (templated); full renders every photo again.
    :param dry_run: plan and log only (templated).
    :param erp_conn_id: the back office's Postgres connection.
    :param config_path: configuration file; default: ``PASSERELLE_CONFIG`` or the project's.
    """

    template_fields: Sequence[str] = ("mode", "dry_run")

    def __init__(self, *, mode: str = "delta", dry_run: Any = False, erp_conn_id: str | None = None,
                 config_path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.dry_run = dry_run
        self.config_path = config_path
        self.erp_conn_id = erp_conn_id or load_config(config_path)["shop"]["erp_conn_id"]

    def execute(self, context: Any) -> list[list[dict[str, Any]]]:
        import pandas as pd

        from passerelle.core.images import chunk_items, fingerprint_files, image_settings, plan_images

        if self.mode not in ("delta", "full"):
            raise ValueError(f"mode must be 'delta' or 'full', got {self.mode!r}")
        settings = image_settings(load_config(self.config_path))
        with self.erp.cursor() as cur:
            cur.execute(LISTING_QUERY + " ORDER BY reference, position, image_id")
            listing = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
            cur.execute(SNAPSHOT_QUERY)
            previous = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
        self.erp.rollback()
        # A slot rendered with other settings is rendered again (its previous hash is forgotten).
        previous.loc[previous["settings"] != settings.fingerprint, "source_hash"] = None
        files = listing["path"].notna()
        if files.any():
            hashed = fingerprint_files(listing.loc[files], previous[["path", "stat_signature", "source_hash"]])
            listing.loc[files, "source_hash"] = hashed["source_hash"]
        plan = plan_images(listing, previous.drop(columns=["names", "settings"]), full=self.mode == "full")
        counts = plan.counts()
        self.log.info("images: %d to render, %d unchanged, %d to remove, %d duplicates (mode %s)",
                      counts["render"], counts["unchanged"], counts["remove"], counts["duplicates"], self.mode)
        for row in plan.duplicates.itertuples():
            self.log.warning("photo %s of article %s: another photo holds position %s, not rendered",
                             row.image_key, row.reference, row.position)
        dry = _truthy(self.dry_run)
        chunks = [] if dry else chunk_items(plan.render.drop(columns=["source_hash"]), settings.chunk_size)
        names = previous.set_index(["reference", "position"])["names"]
        remove = [
            {"image_key": r.image_key, "reference": r.reference, "position": int(r.position),
             "names": list(names.get((r.reference, r.position)) or [])}
            for r in plan.remove.itertuples()
        ]
        context["ti"].xcom_push(key="plan", value={
            "dry_run": dry, "mode": self.mode, "settings": settings.fingerprint, "chunks": len(chunks),
            "counts": counts, "remove": remove})
        return chunks


class RenderImagesOperator(ErpMixin, _ShopMixin, BaseOperator):
    """Render one chunk of photos and upload each render atomically (one mapped task).

    Reads the chunk's sources from ``passerelle_src.image`` a few rows at a time, renders one
    photo at a time and uploads each file with ``ShopFilesHook.put_atomic`` as soon as it is
    encoded. A bad source is reported (with its article reference) and skipped; a server error
    fails the task, which retries. Returns ``{"rendered": [...], "errors": [...]}``: keys,
    hashes and file names, no bytes.

    :param chunk: one of the plan's chunks (templated; mapped with ``.expand(chunk=...)``).
    :param erp_conn_id: the back office's Postgres connection.
    :param shop_conn_id: the shop server's connection (FTP, FTPS or SFTP).
    :param config_path: configuration file; default: ``PASSERELLE_CONFIG`` or the project's.
    """

    template_fields: Sequence[str] = ("chunk",)

    def __init__(self, *, chunk: Any, erp_conn_id: str | None = None, shop_conn_id: str | None = None,
                 config_path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        cfg = load_config(config_path)
        self.chunk = chunk
        self.config_path = config_path
        self.erp_conn_id = erp_conn_id or cfg["shop"]["erp_conn_id"]
        self.shop_conn_id = shop_conn_id or cfg["shop"]["shop_conn_id"]

    def _sources(self, items: Sequence[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
        """The chunk's items with their ``content`` (bytes sources), fetched a few at a time."""
        by_key = {item["image_key"]: dict(item) for item in items}
        wanted = {k for k, item in by_key.items() if not item.get("path")}
        for item in by_key.values():
            if item.get("path"):
                yield item
        if not wanted:
            return
        with self.erp.cursor(name="passerelle_image_sources") as cur:
            cur.itersize = FETCH_ROWS
            cur.execute("SELECT key, content, path FROM passerelle_src.image WHERE key = ANY(%s) "
                        "ORDER BY key, image_id", (sorted(wanted),))
            for key, content, path in cur:
                item = by_key.pop(key, None)
                if item is None:
                    continue  # a second photo at the same slot: the plan reported it
                yield {**item, "content": content, "path": path}
        self.erp.rollback()
        # Left: photos deleted since the plan; render_chunk reports them as having no source.
        yield from (item for key, item in by_key.items() if key in wanted)

    def execute(self, context: Any) -> dict:
        from passerelle.core.images import image_settings, render_chunk
        from passerelle.hooks.shop import safe_name

        chunk = self.chunk
        if not isinstance(chunk, list) or not all(isinstance(i, Mapping) and "image_key" in i for i in chunk):
            raise ValueError(f"chunk must be a list of the plan's items (dicts with image_key), got {chunk!r:.200}")
        cfg = load_config(self.config_path)
        settings = image_settings(cfg)
        folder = images_folder(cfg)
        if not chunk:
            return {"rendered": [], "errors": []}
        with self.shop as shop:
            shop.makedirs(folder)

            def upload(name: str, data: bytes) -> None:
                shop.put_atomic(posixpath.join(folder, safe_name(name)), data)

            rendered, errors = render_chunk(self._sources(chunk), settings, sink=upload)
        self.log.info("rendered %d photos (%d files) into %s; %d bad sources", len(rendered),
                      sum(len(r["files"]) for r in rendered), folder, len(errors))
        return {"rendered": [_small(r) for r in rendered], "errors": errors}


def _small(rendered: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("image_key", "reference", "position", "source_hash", "path", "stat_signature")
    return {**{k: rendered.get(k) for k in keep},
            "files": [{"name": f["name"], "size": f["size"]} for f in rendered["files"]]}


class FinishImagesOperator(ErpMixin, _ShopMixin, BaseOperator):
    """Delete removed photos' renders on the server, advance the snapshot, count the run.

    The snapshot advances only for photos rendered and uploaded; a bad source keeps its slot's
    previous row (the shop keeps the old render and the next run retries). Returns the run's
    image summary: ``rendered, unchanged, removed, bad, duplicates, files, bytes, errors``.

    :param plan: the plan task's XCom ``plan`` (templated: ``plan_images.output["plan"]``).
    :param results: the render tasks' return values (templated; the mapped task's output).
    :param erp_conn_id: the back office's Postgres connection.
    :param shop_conn_id: the shop server's connection.
    :param config_path: configuration file; default: ``PASSERELLE_CONFIG`` or the project's.
    """

    template_fields: Sequence[str] = ("plan", "results")

    def __init__(self, *, plan: Any, results: Any = None, erp_conn_id: str | None = None,
                 shop_conn_id: str | None = None, config_path: str | None = None, **kwargs) -> None:
        kwargs.setdefault("trigger_rule", "none_failed")  # no chunk to render: the mapped task skips
        super().__init__(**kwargs)
        cfg = load_config(config_path)
        self.plan = plan
        self.results = results
        self.config_path = config_path
        self.erp_conn_id = erp_conn_id or cfg["shop"]["erp_conn_id"]
        self.shop_conn_id = shop_conn_id or cfg["shop"]["shop_conn_id"]

    def execute(self, context: Any) -> dict:
        from passerelle.core.images import image_settings, summarize

        plan = self.plan
        if not isinstance(plan, Mapping) or "counts" not in plan:
            raise ValueError(f"plan must be the plan task's XCom 'plan' (a dict with counts), got {plan!r:.200}")
        results = [r for r in (self.results or []) if r]
        summary = summarize((r["rendered"], r["errors"]) for r in results)
        counts = plan["counts"]
        out = {"dry_run": plan["dry_run"], "mode": plan["mode"], "planned": counts["render"],
               "rendered": summary["rendered"], "unchanged": counts["unchanged"],
               "removed": 0, "bad": summary["failed"], "duplicates": counts["duplicates"],
               "files": summary["files"], "bytes": summary["bytes"],
               "errors": summary["errors"][:MAX_ERRORS_LISTED]}
        if plan["dry_run"]:
            out["removed"] = counts["remove"]
            self.log.info("dry run: images %s, nothing uploaded or removed", counts)
            return out
        cfg = load_config(self.config_path)
        settings = image_settings(cfg)
        removed = self._remove(plan["remove"], images_folder(cfg), settings)
        self._advance(results, removed, plan["settings"])
        out["removed"] = len(removed)
        for error in summary["errors"]:
            self.log.warning("bad photo %s of article %s (position %s): %s", error.get("image_key"),
                             error.get("reference"), error.get("position"), error.get("reason"))
        self.log.info("images: %s", {k: v for k, v in out.items() if k != "errors"})
        return out

    def _remove(self, remove: Iterable[Mapping[str, Any]], folder: str, settings) -> list[Mapping[str, Any]]:
        """Delete the removed slots' renders (safe names only); returns the slots done."""
        import pandas as pd

        from passerelle.core.images import removal_names
        from passerelle.hooks.shop import safe_name

        done = []
        with self.shop as shop:
            for slot in remove:
                names = slot.get("names") or removal_names(
                    pd.DataFrame([{"reference": slot["reference"], "position": slot["position"]}]), settings)
                for name in names:
                    path = posixpath.join(folder, safe_name(name))
                    try:
                        shop.delete(path)
                    except (ftplib.error_perm, FileNotFoundError):
                        self.log.info("%s already gone from the server", path)
                self.log.info("removed the renders of %s position %s: %s", slot["reference"], slot["position"],
                              ", ".join(names))
                done.append(slot)
        return done

    def _advance(self, results: Sequence[Mapping[str, Any]], removed: Sequence[Mapping[str, Any]],
                 fingerprint: str) -> None:
        rows = [
            (r["reference"], int(r["position"]), r["image_key"], r["source_hash"], r.get("path"),
             r.get("stat_signature"), [f["name"] for f in r["files"]], fingerprint)
            for result in results for r in result["rendered"]
        ]
        with self.erp.cursor() as cur:
            if rows:
                cur.executemany(
                    "INSERT INTO passerelle.image_snapshot AS s (reference, position, key, source_hash, path, "
                    "stat_signature, names, settings) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (reference, position) DO UPDATE SET key = excluded.key, "
                    "source_hash = excluded.source_hash, path = excluded.path, "
                    "stat_signature = excluded.stat_signature, names = excluded.names, "
                    "settings = excluded.settings, updated_at = now()",
                    rows,
                )
            if removed:
                cur.executemany("DELETE FROM passerelle.image_snapshot WHERE reference = %s AND position = %s",
                                [(s["reference"], int(s["position"])) for s in removed])
        self.erp.commit()


__all__ = ["FinishImagesOperator", "PlanImagesOperator", "RenderImagesOperator", "images_folder"]
