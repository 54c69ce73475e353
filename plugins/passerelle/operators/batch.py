"""A flow's batch, back office to shop: the build operators' base, publish, confirm.

build (:mod:`passerelle.operators.catalog`, :mod:`passerelle.operators.exchange`: files into the
outbox) -> :class:`PublishBatchOperator` (atomic upload, manifest last) ->
:class:`ConfirmBatchOperator` (snapshot advances, run summary). Between tasks only small values
travel (XCom): the batch id and counts; the files live in the outbox table. The bookkeeping
(folder, manifest, status) is :mod:`passerelle.core.batches`; the snapshot is
:mod:`passerelle.core.differ`.
"""

from __future__ import annotations

import datetime
import functools
import posixpath
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, BaseXCom
from airflow.sdk.exceptions import AirflowSkipException

from passerelle.core.values import parse_bool
from passerelle.operators.common import ErpMixin, ShopMixin, check_mode
from passerelle.operators.outcome import BATCH_LINKS, OutcomeMixin

#: A batch folder, or a ``.part`` upload, left unfinished this long ago was abandoned (a failed or killed run).
ABANDONED_AFTER = datetime.timedelta(days=1)


def _check_batch(batch: Any, name: str = "batch") -> dict:
    if not isinstance(batch, dict) or "batch_id" not in batch:
        raise ValueError(f"{name} must be the build task's result (a dict with batch_id), got {batch!r:.200}")
    return batch


class BuildBatchOperator(ErpMixin, BaseOperator):
    """Base of the operators that compute a flow's batch and write its files to the outbox.

    :param flow: the flow's name (templated).
    :param mode: ``delta``, ``new`` (only rows never sent) or ``full`` (templated; the first run is always full).
    :param entities: run-form entity names (templated; a list or a comma-separated string; empty: all).
    :param dry_run: compute and show what would be sent, upload nothing (templated).
    :param erp_conn_id: the back office's Postgres connection; default ``shop.erp_conn_id``.
    :param config_path: configuration file; default ``PASSERELLE_CONFIG`` or the project's.
    """

    template_fields: Sequence[str] = ("flow", "mode", "entities", "dry_run")

    def __init__(
        self,
        *,
        flow: str,
        mode: str = "delta",
        entities: Any = None,
        dry_run: Any = False,
        erp_conn_id: str | None = None,
        config_path: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.flow = flow
        self.mode = mode
        self.entities = entities
        self.dry_run = dry_run
        self.erp_conn_id = erp_conn_id
        self.config_path = config_path

    def checked_arguments(self) -> tuple[list[str] | None, bool]:
        """(entity names or None for all, dry run), after checking the rendered arguments."""
        check_mode(self.mode)
        names = self.entities.split(",") if isinstance(self.entities, str) else self.entities
        if names is not None and not isinstance(names, (list, tuple)):
            raise ValueError(f"entities must be a list of names or a comma-separated text, got {self.entities!r}")
        return (list(names) if names else None), parse_bool(self.dry_run, "dry_run", default=False)

    def log_counts(self, counts: dict[str, dict]) -> None:
        """One line per entity: created, changed, removed, unchanged, rejected (and any ``pdf_*``)."""
        width = max((len(e) for e in counts), default=0)
        for entity, c in counts.items():
            extra = "".join(f"  {k} {v}" for k, v in c.items() if k.startswith("pdf_"))
            self.log.info(
                "%-*s created %6d  changed %6d  removed %6d  unchanged %7d  rejected %4d%s",
                width,
                entity,
                c.get("created", 0),
                c.get("changed", 0),
                c.get("removed", 0),
                c.get("unchanged", 0),
                c.get("rejected", 0),
                extra,
            )

    def log_files(self, files: Sequence[dict]) -> list[dict]:
        """Log each outbox file; return them as the XCom carries them (name, rows, bytes)."""
        for f in files:
            self.log.info("file %s: %d rows, %d bytes, sha256 %s", f["name"], f["rows"], f["bytes"], f["sha256"])
        return [{k: f[k] for k in ("name", "rows", "bytes")} for f in files]


class PublishBatchOperator(OutcomeMixin, ErpMixin, ShopMixin, BaseOperator):
    """Upload a batch's files to the shop: temporary name, size check, rename; manifest last.

    :param batch: the build task's return value (templated; an XComArg).
    :param shop_conn_id: the shop server's connection (FTP, FTPS or SFTP); default ``shop.shop_conn_id``.
    :param erp_conn_id: the back office's Postgres connection (the outbox lives there); default
        ``shop.erp_conn_id``.
    :param folder: remote folder; default ``<shop.outbound_dir>/<flow>`` (templated).
    :param extra: more entries for the manifest, e.g. ``{"images": <images summary>}`` (templated;
        must not replace the manifest's own keys). Republishing a batch keeps the entries of its
        first publication.
    :param config_path: configuration file; default ``PASSERELLE_CONFIG`` or the project's.

    A batch overtaken by a later one (a rerun of an old run that failed, before or after its publish:
    :func:`passerelle.core.batches.superseded_by`) is not published: the task ends skipped and says
    why. After a publication, the flow's batch folders left unfinished
    by failed runs are reported and their abandoned ``.part`` files deleted.

    With ``outlets`` (the catalog's published Asset), a dry run or a batch with no file to send
    (the manifest alone is uploaded) ends the task skipped, its result still pushed as XCom, so
    that no asset event announces a publication that did not happen.
    """

    template_fields: Sequence[str] = ("batch", "folder", "extra")
    #: Links to the batch folder and its manifest (with ``shop.public_base_url``).
    operator_extra_links = BATCH_LINKS

    def __init__(
        self,
        *,
        batch: Any,
        shop_conn_id: str | None = None,
        erp_conn_id: str | None = None,
        folder: str | None = None,
        config_path: str | None = None,
        extra: Any = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.extra = extra
        self.folder = folder
        self.config_path = config_path
        self.shop_conn_id = shop_conn_id
        self.erp_conn_id = erp_conn_id

    def execute(self, context: Any) -> dict:
        from passerelle.core import batches
        from passerelle.core.export import iter_outbox
        from passerelle.hooks.shop import PublishedFile

        batch = _check_batch(self.batch)
        if self.extra is not None and not isinstance(self.extra, dict):
            raise ValueError(f"extra must be a mapping of manifest entries, got {self.extra!r:.200}")
        if batch["status"] == "dry_run":
            self.log.info("dry run: %d files would be published, nothing uploaded", len(batch["files"]))
            return self._unannounced(
                context, {"published": 0, "dry_run": True, "files": batch["files"]}, "dry run, nothing uploaded"
            )
        later = batches.superseded_by(self.erp, batch["batch_id"])
        self.erp.commit()
        if later is not None:
            why = (
                f"batch {batch['batch_id']} ({batch['flow']}, {batch['run_key']}) is overtaken: batch {later[0]} "
                f"({later[1]}) was built after it, from what the shop has or will get; publishing this one now "
                "would send older values after newer ones, so nothing is uploaded"
            )
            self.log.warning("%s", why)
            context["ti"].xcom_push(
                key=BaseXCom.XCOM_RETURN_KEY, value={"published": 0, "superseded_by": later[0], "files": []}
            )
            raise AirflowSkipException(why)
        shop_settings = self.settings.shop
        base = self.folder or posixpath.join(shop_settings.outbound_dir, batch["flow"])
        # A batch whose manifest went up (or was going up) goes to that folder again, with that
        # manifest, byte for byte (its first publication's extra entries included); else its own.
        recorded, first, done_before = batches.publication(self.erp, batch["batch_id"])
        self.erp.commit()
        folder = recorded or posixpath.join(base, batches.batch_folder(batch["batch_id"], batch["run_key"]))
        if recorded and first:
            manifest = {k: v for k, v in first.items() if k != "files"}
        else:
            manifest = batches.manifest(
                batch, dialect=shop_settings.dialect, extra=self.extra, first=first if self.extra else None
            )
        with self.shop as shop:
            if recorded and not done_before and self._shop_has(shop, folder):
                done = [PublishedFile(**f) for f in first["files"]]
            else:
                done = shop.publish(
                    folder,
                    iter_outbox(self.erp, batch["batch_id"]),
                    manifest,
                    before_manifest=functools.partial(self._manifest_going_up, batch["batch_id"], folder),
                )
            manifest["files"] = [f.__dict__ for f in done]
            batches.mark_published(self.erp, batch["batch_id"], manifest)
            self.erp.commit()
            unfinished = self._housekeeping(shop, base, batch["batch_id"])
        sent = sum(f.bytes for f in done)
        self.log.info("published %d files (%d bytes) to %s", len(done), sent, folder)
        self.link(batch_folder=folder + "/", manifest=posixpath.join(folder, "manifest.json"))
        result = {"folder": folder, "published": len(done), "bytes": sent}
        if unfinished:
            result["unfinished_folders"] = unfinished
        if not done:
            return self._unannounced(context, result, "no file to send, the manifest alone uploaded")
        self.announce(
            context,
            {
                "batch_id": batch["batch_id"],
                "run_key": batch["run_key"],
                "mode": batch["mode"],
                "folder": folder,
                "files": len(done),
                "bytes": sent,
                "counts": batch["counts"],
            },
        )
        return result

    def _shop_has(self, shop: Any, folder: str) -> bool:
        """Whether the shop has the batch of ``folder``, whose publication was cut after its manifest
        started going up: its manifest is there, or the folder is gone (only the shop removes a
        folder, once imported, and this one held the batch's files then). Putting it again would
        have a shop that removes what it imports import it twice."""
        if shop.exists(posixpath.join(folder, "manifest.json")):
            self.log.warning(
                "%s: its manifest is on %s, its publication was cut before it was recorded: recorded now",
                folder,
                shop.where,
            )
            return True
        if not shop.exists(folder):
            self.log.warning(
                "%s is gone from %s: the shop imported it (its publication was cut before it was recorded): "
                "recorded now",
                folder,
                shop.where,
            )
            return True
        return False

    def _manifest_going_up(self, batch_id: int, folder: str, body: dict) -> None:
        """Record the folder and manifest before the manifest's upload (committed): should the
        publication then go unrecorded, the next run publishes this batch there again rather than
        sending its rows anew (:func:`passerelle.core.batches.record_manifest`)."""
        from passerelle.core import batches

        batches.record_manifest(self.erp, batch_id, folder, body)
        self.erp.commit()

    def _housekeeping(self, shop: Any, base: str, keep: int) -> list[str]:
        """Report the flow's batch folders whose publication never ended (no manifest, batch older than
        :data:`ABANDONED_AFTER`) and delete their abandoned ``.part`` uploads. The shop ignores a folder
        without a manifest; the report says it may be deleted. Returns the folders' paths."""
        from passerelle.core import batches
        from passerelle.hooks.shop import TransferError

        # After the publication's commit: a server refusing to list here must not fail the task
        # (confirm would not run, and the next run would send the batch's rows again); a refused
        # deletion is cleanup_parts' own warning.
        try:
            listing = shop.list(base, missing_ok=True)
        except TransferError as exc:
            self.log.warning("housekeeping of %s skipped: %s", base, exc)
            return []
        folders = batches.unfinished_folders(self.erp, listing, keep=keep, older_than=ABANDONED_AFTER)
        self.erp.commit()
        out = []
        for name in folders:
            path = posixpath.join(base, name)
            removed = shop.cleanup_parts(path, ABANDONED_AFTER)
            self.log.warning(
                "unfinished batch folder %s on %s: its batch was never published whole (no manifest)"
                "%s; the shop ignores it, it may be deleted",
                path,
                shop.where,
                f", {len(removed)} abandoned .part files deleted" if removed else "",
            )
            out.append(path)
        return out

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


class ConfirmBatchOperator(OutcomeMixin, ErpMixin, BaseOperator):
    """Advance the snapshot to the published batch and record the run's summary.

    :param batch: the build task's return value (templated).
    :param published: the publish task's return value (templated; None when publish pushed nothing).
    :param erp_conn_id: the back office's Postgres connection; default ``shop.erp_conn_id``.
    :param config_path: configuration file; default ``PASSERELLE_CONFIG`` or the project's.

    Runs once publish succeeded or was skipped (nothing announced): trigger rule ``none_failed``.
    """

    template_fields: Sequence[str] = ("batch", "published")

    def __init__(
        self, *, batch: Any, published: Any, erp_conn_id: str | None = None, config_path: str | None = None, **kwargs
    ) -> None:
        kwargs.setdefault("trigger_rule", "none_failed")  # a publish that announced nothing is skipped
        super().__init__(**kwargs)
        self.batch = batch
        self.published = published
        self.erp_conn_id = erp_conn_id
        self.config_path = config_path

    def execute(self, context: Any) -> dict:
        from passerelle.core.differ import confirm_batch
        from passerelle.core.outcome import batch_reasons, note_text, rejected_rows, sent_rows
        from passerelle.core.summary import record_run

        batch = _check_batch(self.batch)
        published = self.published or {}
        if not isinstance(published, dict):
            raise ValueError(f"published must be the publish task's result (a dict), got {published!r:.200}")
        dry = batch["status"] == "dry_run"
        advanced = False if dry else confirm_batch(self.erp, batch["batch_id"], published_only=True)
        overtaken = published.get("superseded_by")
        counts = {} if overtaken else batch["counts"]  # an overtaken batch sent nothing
        rejects = rejected_rows(counts)
        reasons = batch_reasons(self.erp, batch["batch_id"]) if counts else {}
        files = [] if overtaken else batch.get("files") or []
        more = [f"nothing uploaded: batch {batch['batch_id']} is overtaken by batch {overtaken}"] if overtaken else []
        if batch.get("taken_from"):
            more.append(
                f"batch {batch['batch_id']} of {batch['taken_from']} finished: its publication had been cut before "
                "it was recorded; this run's own changes go with the next run"
            )
        if batch.get("not_built"):
            more.append(f"{batch['not_built']} was asked of this run and not built: trigger it again")
        more.extend(batch.get("counted") or [])  # a dry run's: earlier batches it counted as on the shop
        note = note_text(
            verb="sent",
            rows=sent_rows(counts),
            files=len(files),
            quarantined=rejects,
            reasons=reasons,
            dry_run=dry,
            more=more,
        )
        # A rerun that sent nothing keeps the summary the run has: what it sent before (its batch confirmed
        # by the next build, which wrote that summary, passerelle.core.summary.record_late_confirm).
        record_run(
            self.erp,
            flow=batch["flow"],
            dag_run_id=context["run_id"],
            run_key=batch["run_key"],
            mode=batch["mode"],
            dry_run=dry,
            counts=counts,
            rejects=rejects,
            bytes_sent=published.get("bytes", 0),
            started_at=getattr(context.get("dag_run"), "start_date", None),
            note=note,
            replace=not overtaken,
        )
        self.erp.commit()
        totals = {
            k: sum(c.get(k, 0) for c in counts.values())
            for k in ("created", "changed", "removed", "unchanged", "rejected")
        }
        self.log.info("run summary: %s%s", totals, " (dry run)" if dry else "")
        self.say(context, note, reasons)
        return {"batch_id": batch["batch_id"], "snapshot_advanced": advanced, **totals}


__all__ = ["BuildBatchOperator", "ConfirmBatchOperator", "PublishBatchOperator"]
