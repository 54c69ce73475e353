"""Thin operators over the core: build a batch, publish it to the shop, confirm it.

They move data between the hooks (back office, shop server) and the plain-Python core
(passerelle.core); nothing connects at import or in ``__init__``. Between tasks only small
values travel (XCom): the batch id and counts; the files live in the outbox table.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, BaseXCom
from airflow.sdk.exceptions import AirflowSkipException

from passerelle.config import load_config


def run_key(context: Any) -> str:
    """The logical date (what a backfill or a rerun reproduces), else the run id."""
    logical_date = context.get("logical_date")
    if logical_date is not None:
        return logical_date.isoformat()
    return context["run_id"]


def _stamp(key: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "", key)[:15] or "run"


class ErpMixin:
    erp_conn_id: str

    @cached_property
    def erp(self):
        from passerelle.db import erp_connection

        return erp_connection(self.erp_conn_id)


class BuildBatchOperator(ErpMixin, BaseOperator):
    """Base of the operators that compute a flow's batch and write its files to the outbox.

    :param flow: the flow's name.
    :param mode: ``delta`` or ``full`` (templated; the first run is always full).
    :param entities: run-form entity names (templated; a list or a comma-separated string).
    :param dry_run: compute and show what would be sent, upload nothing (templated).
    :param erp_conn_id: the back office's Postgres connection; default ``shop.erp_conn_id``.
    :param config_path: configuration file; default: ``PASSERELLE_CONFIG`` or the project's.
    """

    template_fields: Sequence[str] = ("flow", "mode", "entities", "dry_run")

    def __init__(self, *, flow: str, mode: str = "delta", entities: Any = None, dry_run: Any = False,
                 erp_conn_id: str | None = None, config_path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.flow = flow
        self.mode = mode
        self.entities = entities
        self.dry_run = dry_run
        self.config_path = config_path
        self.erp_conn_id = erp_conn_id or load_config(config_path)["shop"]["erp_conn_id"]

    def checked_arguments(self) -> tuple[list[str] | None, bool]:
        """(entity names or None for all, dry run), after checking the rendered arguments."""
        if self.mode not in ("delta", "full"):
            raise ValueError(f"mode must be 'delta' or 'full', got {self.mode!r}")
        names = self.entities.split(",") if isinstance(self.entities, str) else self.entities
        return names or None, self.dry_run in (True, "true", "True", "1", 1)


class BuildCatalogOperator(BuildBatchOperator):
    """Compute the catalog's delta (or full send) and write its files to the outbox.

    Arguments as :class:`BuildBatchOperator`; entities among family, brand, supplier, article,
    variant.
    """

    def __init__(self, *, flow: str = "catalog", **kwargs) -> None:
        super().__init__(flow=flow, **kwargs)

    def execute(self, context: Any) -> dict:
        from passerelle.core.differ import catalog_entities
        from passerelle.core.exchange import stock_settings
        from passerelle.core.export import build_catalog
        from passerelle.core.dialects import dialect
        from passerelle.core.photos import image_url_enricher

        names, dry = self.checked_arguments()
        cfg = load_config(self.config_path)
        entities = catalog_entities(cfg["catalog"]["selection_rule"], names or cfg["catalog"]["entities"])
        shop = cfg["shop"]
        batch, files = build_catalog(
            self.erp, flow=self.flow, run_key=run_key(context), entities=entities,
            dialect=dialect(shop["dialect"], {**cfg.get("prestashop", {}), **cfg["catalog"]}), mode=self.mode,
            dry_run=dry, rows_per_file=shop["rows_per_file"], enrich=image_url_enricher(cfg),
            # The quantities follow the hourly stock file's rule, safety stock included.
            settings=stock_settings(cfg),
        )
        self.erp.commit()
        for entity, c in batch.counts.items():
            self.log.info("%-9s created %6d  changed %6d  removed %6d  unchanged %7d  rejected %4d", entity,
                          c.get("created", 0), c.get("changed", 0), c.get("removed", 0), c.get("unchanged", 0),
                          c.get("rejected", 0))
        for f in files:
            self.log.info("file %s: %d rows, %d bytes, sha256 %s", f["name"], f["rows"], f["bytes"], f["sha256"])
        return {**batch.as_xcom(), "files": [{k: f[k] for k in ("name", "rows", "bytes")} for f in files]}


class PublishBatchOperator(ErpMixin, BaseOperator):
    """Upload a batch's files to the shop: temporary name, size check, rename; manifest last.

    :param batch: the build task's return value (templated; an XComArg).
    :param shop_conn_id: the shop server's connection (FTP, FTPS or SFTP).
    :param erp_conn_id: the back office's Postgres connection (the outbox lives there).
    :param folder: remote folder; default ``<shop.outbound_dir>/<flow>`` (templated).
    :param extra: more entries for the manifest, e.g. ``{"images": <images summary>}`` (templated;
        must not replace the manifest's own keys). Republishing a batch keeps the entries of its
        first publication.

    With ``outlets`` (the catalog's published Asset), a dry run or a batch with no file to send
    (the manifest alone is uploaded) ends the task skipped, its result still pushed as XCom, so
    that no asset event announces a publication that did not happen.
    """

    template_fields: Sequence[str] = ("batch", "folder", "extra")

    def __init__(self, *, batch: Any, shop_conn_id: str | None = None, erp_conn_id: str | None = None,
                 folder: str | None = None, config_path: str | None = None, extra: Any = None, **kwargs) -> None:
        super().__init__(**kwargs)
        cfg = load_config(config_path)
        self.batch = batch
        self.extra = extra
        self.folder = folder
        self.config_path = config_path
        self.shop_conn_id = shop_conn_id or cfg["shop"]["shop_conn_id"]
        self.erp_conn_id = erp_conn_id or cfg["shop"]["erp_conn_id"]

    @cached_property
    def shop(self):
        from passerelle.hooks.shop import ShopFilesHook

        return ShopFilesHook(self.shop_conn_id)

    def execute(self, context: Any) -> dict:
        from passerelle.core.export import iter_outbox

        batch = self.batch
        if not isinstance(batch, dict) or "batch_id" not in batch:
            raise ValueError(f"batch must be the build task's result (a dict with batch_id), got {batch!r}")
        if batch["status"] == "dry_run":
            self.log.info("dry run: %d files would be published, nothing uploaded", len(batch["files"]))
            return self._unannounced(context, {"published": 0, "dry_run": True, "files": batch["files"]},
                                     "dry run, nothing uploaded")
        cfg = load_config(self.config_path)
        base = self.folder or posixpath.join(cfg["shop"]["outbound_dir"], batch["flow"])
        folder = posixpath.join(base, f"{batch['batch_id']:08d}-{_stamp(batch['run_key'])}")
        manifest = {"flow": batch["flow"], "batch_id": batch["batch_id"], "run_key": batch["run_key"],
                    "mode": batch["mode"], "dialect": cfg["shop"]["dialect"], "counts": batch["counts"]}
        extra = dict(self.extra or {})
        clash = sorted(set(extra) & {*manifest, "files"})
        if clash:
            raise ValueError(f"extra must not replace the manifest's own keys {clash}; got keys {sorted(extra)}")
        if extra:
            # A rerun of a published batch republishes its first manifest's extra entries, so that
            # the manifest is the same byte for byte (the extra reflects the first publication).
            row = self.erp.execute("SELECT manifest FROM passerelle.batch WHERE id = %s",
                                   (batch["batch_id"],)).fetchone()
            before = (row[0] if row else None) or {}
            extra = {k: before.get(k, v) for k, v in extra.items()}
        manifest.update(extra)
        with self.shop as shop:
            done = shop.publish(folder, iter_outbox(self.erp, batch["batch_id"]), manifest)
        manifest["files"] = [f.__dict__ for f in done]
        self.erp.execute(
            "UPDATE passerelle.batch SET manifest = %s, published_at = now(), "
            "status = CASE WHEN status = 'built' THEN 'published' ELSE status END WHERE id = %s",
            (json.dumps(manifest), batch["batch_id"]),
        )
        self.erp.commit()
        sent = sum(f.bytes for f in done)
        self.log.info("published %d files (%d bytes) to %s", len(done), sent, folder)
        result = {"folder": folder, "published": len(done), "bytes": sent}
        if not done:
            return self._unannounced(context, result, "no file to send, the manifest alone uploaded")
        return result

    def _unannounced(self, context: Any, result: dict, why: str) -> dict:
        """Return *result*, unless this task has outlets: then end it skipped, *result* kept as its XCom.

        Airflow records an asset event for every outlet of a task that succeeds and none for a
        skipped one; a skip is how a run that sent no file keeps flows scheduled on the asset
        (``after: [catalog]``) from starting. The next task (confirm) runs after a skip too.
        """
        if not self.outlets:
            return result
        context["ti"].xcom_push(key=BaseXCom.XCOM_RETURN_KEY, value=result)
        assets = ", ".join(getattr(outlet, "name", None) or str(outlet) for outlet in self.outlets)
        raise AirflowSkipException(f"{why}: {assets} not updated")


class ConfirmBatchOperator(ErpMixin, BaseOperator):
    """Advance the snapshot to the published batch and record the run's summary.

    :param batch: the build task's return value (templated).
    :param published: the publish task's return value (templated).

    Runs once publish succeeded or was skipped (nothing announced): trigger rule ``none_failed``.
    """

    template_fields: Sequence[str] = ("batch", "published")

    def __init__(self, *, batch: Any, published: Any, erp_conn_id: str | None = None,
                 config_path: str | None = None, **kwargs) -> None:
        kwargs.setdefault("trigger_rule", "none_failed")  # a publish that announced nothing is skipped
        super().__init__(**kwargs)
        self.batch = batch
        self.published = published
        self.erp_conn_id = erp_conn_id or load_config(config_path)["shop"]["erp_conn_id"]

    def execute(self, context: Any) -> dict:
        from passerelle.core.differ import confirm_batch
        from passerelle.core.summary import record_run

        batch, published = self.batch, self.published or {}
        dry = batch["status"] == "dry_run"
        advanced = False if dry else confirm_batch(self.erp, batch["batch_id"])
        rejects = sum(c.get("rejected", 0) for c in batch["counts"].values())
        record_run(self.erp, flow=batch["flow"], dag_run_id=context["run_id"], run_key=batch["run_key"],
                   mode=batch["mode"], dry_run=dry, counts=batch["counts"], rejects=rejects,
                   bytes_sent=published.get("bytes", 0),
                   started_at=getattr(context.get("dag_run"), "start_date", None))
        self.erp.commit()
        totals = {k: sum(c.get(k, 0) for c in batch["counts"].values())
                  for k in ("created", "changed", "removed", "unchanged", "rejected")}
        self.log.info("run summary: %s%s", totals, " (dry run)" if dry else "")
        return {"batch_id": batch["batch_id"], "snapshot_advanced": advanced, **totals}
