"""Thin operators of the photos step: plan, render (mapped over chunks), finish.

They move data between the back office (:mod:`passerelle.core.image_store`: the listing, the
sources, the snapshot), the shop's server and the pure renderer (:mod:`passerelle.core.images`).
Only small values travel through XCom: image keys, names, hashes, counts and errors; never
bytes. Renders go to ``<shop.outbound_dir>/images/``.

::

    plan_images -> render_images.expand(chunk=plan_images.output) -> finish_images(plan_images.output["plan"])
"""

from __future__ import annotations

import ftplib  # nosec: B402 (only for its error type: a removal of a file already gone)
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from passerelle.core.values import parse_bool
from passerelle.operators.common import ErpMixin, ShopMixin, check_mode

if TYPE_CHECKING:
    from passerelle.config import Settings

#: Errors listed in a run's summary (all are logged; the count is always complete).
MAX_ERRORS_LISTED = 50


def images_folder(settings: Settings) -> str:
    """The renders' folder on the shop's server: ``<shop.outbound_dir>/images``."""
    return posixpath.join(settings.shop.outbound_dir, "images")


class PlanImagesOperator(ErpMixin, BaseOperator):
    """List the back office's photos, compare with what the shop holds, cut the work in chunks.

    Returns the chunks (lists of ``{image_key, reference, position, path}``, no bytes), for
    ``render_images.expand(chunk=plan_images.output)`` (Airflow maps over return values only);
    pushes the plan's counts and the slots to remove under the XCom key ``plan``, for
    ``finish_images``. A dry run plans and returns no chunk.

    :param mode: ``delta``, ``new`` or ``full`` (templated); full renders every photo again, new
        only the photos of slots never sent (new articles), leaving changes and removals.
    :param dry_run: plan and log only (templated).
    :param erp_conn_id: the back office's Postgres connection; default ``shop.erp_conn_id``.
    :param config_path: configuration file; default ``PASSERELLE_CONFIG`` or the project's.
    """

    template_fields: Sequence[str] = ("mode", "dry_run")

    def __init__(
        self,
        *,
        mode: str = "delta",
        dry_run: Any = False,
        erp_conn_id: str | None = None,
        config_path: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.dry_run = dry_run
        self.erp_conn_id = erp_conn_id
        self.config_path = config_path

    def execute(self, context: Any) -> list[list[dict[str, Any]]]:
        from passerelle.core.image_store import plan_run
        from passerelle.core.images import image_settings

        check_mode(self.mode)
        dry = parse_bool(self.dry_run, "dry_run", default=False)
        settings = image_settings(self.settings)
        run = plan_run(self.erp, settings, full=self.mode == "full", new_only=self.mode == "new", dry_run=dry)
        counts = run.plan.counts()
        self.log.info(
            "images: %d to render, %d unchanged, %d to remove, %d duplicates (mode %s)",
            counts["render"],
            counts["unchanged"],
            counts["remove"],
            counts["duplicates"],
            self.mode,
        )
        for row in run.plan.duplicates.itertuples():
            self.log.warning(
                "photo %s of article %s: another photo holds position %s, not rendered",
                row.image_key,
                row.reference,
                row.position,
            )
        context["ti"].xcom_push(
            key="plan",
            value={
                "dry_run": dry,
                "mode": self.mode,
                "settings": settings.fingerprint,
                "chunks": len(run.chunks),
                "counts": counts,
                "remove": run.remove,
            },
        )
        return run.chunks


class RenderImagesOperator(ErpMixin, ShopMixin, BaseOperator):
    """Render one chunk of photos and upload each render atomically (one mapped task).

    Reads the chunk's sources a few rows at a time (:func:`passerelle.core.image_store.iter_sources`),
    renders one photo at a time and uploads each file with ``ShopFilesHook.put_atomic`` as soon as
    it is encoded. A bad source is reported (with its article reference) and skipped; a server
    error fails the task, which retries. Returns ``{"rendered": [...], "errors": [...]}``: keys,
    hashes and file names, no bytes.

    :param chunk: one of the plan's chunks (templated; mapped with ``.expand(chunk=...)``).
    :param erp_conn_id: the back office's Postgres connection; default ``shop.erp_conn_id``.
    :param shop_conn_id: the shop server's connection (FTP, FTPS or SFTP); default ``shop.shop_conn_id``.
    :param config_path: configuration file; default ``PASSERELLE_CONFIG`` or the project's.
    """

    template_fields: Sequence[str] = ("chunk",)

    def __init__(
        self,
        *,
        chunk: Any,
        erp_conn_id: str | None = None,
        shop_conn_id: str | None = None,
        config_path: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.chunk = chunk
        self.erp_conn_id = erp_conn_id
        self.shop_conn_id = shop_conn_id
        self.config_path = config_path

    def execute(self, context: Any) -> dict:
        from passerelle.core.image_store import iter_sources
        from passerelle.core.images import image_settings, render_chunk
        from passerelle.hooks.shop import safe_name

        chunk = self.chunk
        if not isinstance(chunk, list) or not all(isinstance(i, Mapping) and "image_key" in i for i in chunk):
            raise ValueError(f"chunk must be a list of the plan's items (dicts with image_key), got {chunk!r:.200}")
        settings = image_settings(self.settings)
        folder = images_folder(self.settings)
        if not chunk:
            return {"rendered": [], "errors": []}
        with self.shop as shop:
            shop.makedirs(folder)

            def upload(name: str, data: bytes) -> None:
                shop.put_atomic(posixpath.join(folder, safe_name(name)), data)

            rendered, errors = render_chunk(iter_sources(self.erp, chunk), settings, sink=upload)
        self.log.info(
            "rendered %d photos (%d files) into %s; %d bad sources",
            len(rendered),
            sum(len(r["files"]) for r in rendered),
            folder,
            len(errors),
        )
        return {"rendered": [_small(r) for r in rendered], "errors": errors}


def _small(rendered: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("image_key", "reference", "position", "source_hash", "path", "stat_signature")
    return {
        **{k: rendered.get(k) for k in keep},
        "files": [{"name": f["name"], "size": f["size"]} for f in rendered["files"]],
    }


def mapped_values(values: Any) -> list:
    """A mapped task's return values as a list, read by index within their count.

    Airflow's ``LazyXComSequence`` (a mapped task's output) is iterated by asking for item 0, 1, ...
    until the API server answers 404, and the Task SDK logs that last answer as
    ``[error] XCom not found`` (apache/airflow#73175): every catalog run said so. Its ``len()`` is
    one request (the count), then one per item, none past the end. Lists (tests) pass as they are.
    """
    if values is None:
        return []
    if isinstance(values, (list, tuple)):
        return list(values)
    return [values[i] for i in range(len(values))]


class FinishImagesOperator(ErpMixin, ShopMixin, BaseOperator):
    """Delete removed photos' renders on the server, advance the snapshot, count the run.

    The snapshot advances only for photos rendered and uploaded; a bad source keeps its slot's
    previous row (the shop keeps the old render and the next run retries): see
    :func:`passerelle.core.image_store.save_snapshot`. Returns the run's image summary:
    ``rendered, unchanged, removed, bad, duplicates, files, bytes, errors``.

    A run that takes up a batch whose publication was cut (the build's ``taken_from``) publishes
    product files built before this run: they may name renders of photos deleted since. Their
    removal is held (``removals_held``): the renders stay on the server and their slots in the
    snapshot, and the next run removes them, with product files that no longer name them.

    :param plan: the plan task's XCom ``plan`` (templated: ``plan_images.output["plan"]``).
    :param results: the render tasks' return values (templated; the mapped task's output).
    :param batch: the build task's return value (templated; optional): its ``taken_from`` holds the removals.
    :param erp_conn_id: the back office's Postgres connection; default ``shop.erp_conn_id``.
    :param shop_conn_id: the shop server's connection; default ``shop.shop_conn_id``.
    :param config_path: configuration file; default ``PASSERELLE_CONFIG`` or the project's.
    """

    template_fields: Sequence[str] = ("plan", "results", "batch")

    def __init__(
        self,
        *,
        plan: Any,
        results: Any = None,
        batch: Any = None,
        erp_conn_id: str | None = None,
        shop_conn_id: str | None = None,
        config_path: str | None = None,
        **kwargs,
    ) -> None:
        kwargs.setdefault("trigger_rule", "none_failed")  # no chunk to render: the mapped task skips
        super().__init__(**kwargs)
        self.plan = plan
        self.results = results
        self.batch = batch
        self.erp_conn_id = erp_conn_id
        self.shop_conn_id = shop_conn_id
        self.config_path = config_path

    def execute(self, context: Any) -> dict:
        from passerelle.core.image_store import save_snapshot
        from passerelle.core.images import image_settings, summarize

        plan = self.plan
        if not isinstance(plan, Mapping) or "counts" not in plan:
            raise ValueError(f"plan must be the plan task's XCom 'plan' (a dict with counts), got {plan!r:.200}")
        results = [r for r in mapped_values(self.results) if r]
        summary = summarize((r["rendered"], r["errors"]) for r in results)
        counts = plan["counts"]
        out = {
            "dry_run": plan["dry_run"],
            "mode": plan["mode"],
            "planned": counts["render"],
            "rendered": summary["rendered"],
            "unchanged": counts["unchanged"],
            "removed": 0,
            "bad": summary["failed"],
            "duplicates": counts["duplicates"],
            "files": summary["files"],
            "bytes": summary["bytes"],
            "errors": summary["errors"][:MAX_ERRORS_LISTED],
        }
        if plan["dry_run"]:
            out["removed"] = counts["remove"]
            self.log.info("dry run: images %s, nothing uploaded or removed", counts)
            return out
        settings = image_settings(self.settings)
        remove = plan["remove"]
        taken_from = self.batch.get("taken_from") if isinstance(self.batch, Mapping) else None
        if taken_from and remove:
            self.log.warning(
                "%d photo removals held: this run publishes batch %s, built by the run %s, whose product files may "
                "name their renders; the next run removes them",
                len(remove),
                self.batch.get("batch_id"),
                taken_from,
            )
            out["removals_held"] = len(remove)
            remove = []
        removed = self._remove(remove, images_folder(self.settings), settings)
        save_snapshot(
            self.erp,
            rendered=[r for result in results for r in result["rendered"]],
            removed=removed,
            settings=plan["settings"],
        )
        self.erp.commit()
        out["removed"] = len(removed)
        for error in summary["errors"]:
            self.log.warning(
                "bad photo %s of article %s (position %s): %s",
                error.get("image_key"),
                error.get("reference"),
                error.get("position"),
                error.get("reason"),
            )
        self.log.info("images: %s", {k: v for k, v in out.items() if k != "errors"})
        return out

    def _remove(self, remove: Iterable[Mapping[str, Any]], folder: str, settings) -> list[Mapping[str, Any]]:
        """Delete the removed slots' renders (safe names only); returns the slots done."""
        import pandas as pd

        from passerelle.core.image_plan import removal_names
        from passerelle.hooks.shop import safe_name

        done = []
        with self.shop as shop:
            for slot in remove:
                names = slot.get("names") or removal_names(
                    pd.DataFrame([{"reference": slot["reference"], "position": slot["position"]}]), settings
                )
                for name in names:
                    path = posixpath.join(folder, safe_name(name))
                    try:
                        shop.delete(path)
                    except (ftplib.error_perm, FileNotFoundError):
                        self.log.info("%s already gone from the server", path)
                self.log.info(
                    "removed the renders of %s position %s: %s", slot["reference"], slot["position"], ", ".join(names)
                )
                done.append(slot)
        return done


__all__ = ["FinishImagesOperator", "PlanImagesOperator", "RenderImagesOperator", "images_folder", "mapped_values"]
