"""The inbound flow's operators, shop to back office: import the shop's files, propose reorders.

:class:`ImportOrdersOperator` moves files between the shop's server and
:mod:`passerelle.core.integrate` (which parses, integrates, quarantines and ledgers them);
:class:`ProposeReordersOperator` runs the reorder rule and records the run's summary.
"""

from __future__ import annotations

import datetime
import logging
import posixpath
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from typing import Any

from airflow.sdk import BaseOperator

from passerelle.core.values import parse_bool
from passerelle.operators.common import ErpMixin, ShopMixin, run_key
from passerelle.operators.outcome import INBOUND_LINKS, OutcomeMixin

log = logging.getLogger(__name__)

#: The flow's name in the configuration and in ``passerelle.run_summary``.
FLOW = "orders_in"


#: Folder under ``shop.inbound_dir`` where a run claims the files it imports (see :func:`claim_name`); hidden,
#: so no listing of the inbound folder takes it for a file.
CLAIMED = ".claimed"
#: A ``.part`` upload older than this was abandoned (a killed run): deleted by the import.
ABANDONED_AFTER = datetime.timedelta(days=1)
#: Longest file name most servers' file systems take; a claimed name adds :data:`CLAIM_SUFFIX_BYTES`.
MAX_NAME_BYTES = 255
CLAIM_SUFFIX_BYTES = 24
_CLAIM_TOKEN = re.compile(r"\.c\d{8}T\d{6}Z[0-9a-f]{6}$")


def claim_name(name: str) -> str:
    """The name under which a run claims ``name``: ``<name>.c<UTC time><random>``, unique per claim,
    so that a file claimed and left by a killed run never collides with a newer one."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{name}.c{stamp}{secrets.token_hex(3)}"


def claimed_names(names: Iterable[str]) -> list[tuple[str, str]]:
    """(claimed name, original name) of the claimed files of a listing, oldest claim first, and
    files claimed in the same second in their own names' order (the order they were claimed in:
    a run claims in name order, and shops name files by time). The token's random part is not
    an order: a file cancelling an order must not come back before the file creating it."""
    out = []
    for claimed in names:
        token = _CLAIM_TOKEN.search(claimed)
        if token:
            second = token.group(0)[:-6]  # ".c<UTC time>", without the random part
            out.append((second, claimed[: token.start()], claimed))
    return [(claimed, name) for _, name, claimed in sorted(out)]


def inbound_names(names: Iterable[str]) -> list[str]:
    """The names of a listing worth reading: CSV or TXT files, no partial uploads (``.part``),
    no hidden or path-like names (:func:`safe_name`); sorted (shops name files by time)."""
    from passerelle.hooks.shop import TransferError, safe_name

    out = []
    for name in names:
        wanted = name.lower().endswith((".csv", ".txt"))
        try:
            safe_name(name)
        except TransferError as exc:
            if wanted and not name.startswith("."):
                # A file the shop meant us to read, under a name we do not touch: said, not ignored.
                log.warning("inbound file left where it is, its name is not safe to use: %s", exc)
            continue
        if wanted:
            out.append(name)
    return sorted(out)


def _seen(stat: tuple | None) -> str:
    """A file's (size, date) for a log line."""
    if stat is None:
        return "not there"
    size, changed = stat
    size_text = "?" if size is None else f"{size:,}"
    return f"{size_text} bytes, changed {'?' if changed is None else changed.strftime('%H:%M:%S UTC')}"


class ImportOrdersOperator(OutcomeMixin, ErpMixin, ShopMixin, BaseOperator):
    """Integrate the shop's inbound files, then (optionally) replay the quarantine.

    Each file is first claimed by a rename on the server into ``<shop.inbound_dir>/.claimed/``
    (:func:`claim_name`), then downloaded from there, integrated, and the claimed file moved to the
    archive: a newer file the shop uploads under the same name meanwhile is never archived unread.
    A kill at any point loses and doubles nothing: a claimed file not yet archived is taken again
    by the next run (the ledger knows its content, so it is integrated once), and a file moved to
    the archive before its ledger row said so is completed (:func:`passerelle.core.integrate.
    complete_archives`). A file gone since the listing is skipped; a file's content never fails
    the task (its rows are quarantined or the file refused whole); the server or the database
    does, with a message naming the file, the server and the path. Abandoned ``.part`` uploads of
    rejects older than :data:`ABANDONED_AFTER` are deleted. A file still being written (its size or
    date changed within ``shop.inbound_settle_seconds``) is left for the next run.

    :param replay_quarantine: also integrate again the open quarantined rows (templated).
    :param dry_run: parse and count the files; write nothing, move nothing (templated).
    :param erp_conn_id: the back office's Postgres connection; default ``shop.erp_conn_id``.
    :param shop_conn_id: the shop's FTP/FTPS/SFTP connection; default ``shop.shop_conn_id``.
    :param config_path: configuration file; default ``PASSERELLE_CONFIG`` or the project's.
    """

    template_fields: Sequence[str] = ("replay_quarantine", "dry_run")
    #: Link to the rejects file this run wrote (the errors folder when it wrote several).
    operator_extra_links = INBOUND_LINKS

    def __init__(
        self,
        *,
        replay_quarantine: Any = False,
        dry_run: Any = False,
        erp_conn_id: str | None = None,
        shop_conn_id: str | None = None,
        config_path: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.replay_quarantine = replay_quarantine
        self.dry_run = dry_run
        self.erp_conn_id = erp_conn_id
        self.shop_conn_id = shop_conn_id
        self.config_path = config_path

    def execute(self, context: Any) -> dict:
        from passerelle.core import integrate as core
        from passerelle.core.inbound import InboundError, read_inbound
        from passerelle.core.outcome import inbound_totals, quarantine_reasons
        from passerelle.hooks.shop import FileVanished, FolderMissing

        dry = parse_bool(self.dry_run, "dry_run", default=False)
        replay = parse_bool(self.replay_quarantine, "replay_quarantine", default=False)
        rules, declared = core.inbound_settings(self.settings)
        shop_settings = self.settings.shop
        folders = {
            "inbound_dir": shop_settings.inbound_dir,
            "archive_dir": shop_settings.archive_dir,
            "errors_dir": shop_settings.errors_dir,
        }
        claimed_dir = posixpath.join(folders["inbound_dir"], CLAIMED)
        files: list[dict] = []
        received = 0
        with self.shop as shop:
            try:
                listed = shop.list(folders["inbound_dir"])
            except FolderMissing as exc:
                raise FolderMissing(
                    f"the inbound folder {folders['inbound_dir']} does not exist on {shop.where}: "
                    "check the setting shop.inbound_dir (or create the folder on the server); "
                    f"{exc}"
                ) from exc
            names = inbound_names(listed)
            if dry:
                for name in names:
                    path = posixpath.join(folders["inbound_dir"], name)
                    try:
                        data = shop.get_bytes(path)
                    except FileVanished as exc:
                        self.log.warning("%s: gone from the server before it was read; skipped (%s)", name, exc)
                        files.append({"name": name, "status": "vanished"})
                        continue
                    received += len(data)
                    try:
                        files.append(
                            {
                                "name": name,
                                "status": "dry_run",
                                "counts": read_inbound(name, data, declared=declared).counts,
                            }
                        )
                    except InboundError as exc:
                        files.append({"name": name, "status": "refused", "error": str(exc)})
            else:
                for folder in (folders["archive_dir"], folders["errors_dir"], claimed_dir):
                    shop.makedirs(folder)
                shop.cleanup_parts(folders["errors_dir"], ABANDONED_AFTER)  # rejects uploads a kill left
                completed = core.complete_archives(self.erp, shop.exists)
                if completed:
                    self.log.warning(
                        "ledger completed for %d files archived by a run that stopped before recording it: %s",
                        len(completed),
                        ", ".join(completed),
                    )
                # Files claimed by a run that stopped before archiving them come first (they are older).
                todo = [(posixpath.join(claimed_dir, c), name) for c, name in claimed_names(shop.list(claimed_dir))]
                names, left = self._settled(shop, folders["inbound_dir"], names, shop_settings.inbound_settle_seconds)
                files.extend(left)
                for name in names:
                    if len(claim_name(name).encode()) > MAX_NAME_BYTES:
                        self.log.error(
                            "%s: name too long (%d bytes) to be claimed, archived or refused on %s "
                            "(names up to %d bytes); left in %s: rename it shorter",
                            name,
                            len(name.encode()),
                            shop.where,
                            MAX_NAME_BYTES - CLAIM_SUFFIX_BYTES,
                            folders["inbound_dir"],
                        )
                        files.append({"name": name, "status": "name_too_long"})
                        continue
                    claimed = self._claim(shop, posixpath.join(folders["inbound_dir"], name), claimed_dir, name)
                    if claimed is None:
                        files.append({"name": name, "status": "vanished"})
                    else:
                        todo.append((claimed, name))
                for claimed, name in todo:
                    done = self._import_one(shop, core, claimed, name, folders, rules, declared)
                    received += done.pop("bytes", 0)
                    files.append(done)
        replayed = core.replay_quarantine(self.erp, rules=rules, declared=declared) if replay and not dry else []
        for r in replayed:
            if r.get("error"):
                self.log.warning(
                    "replay of %s failed, its %d rows stay open: %s", r["file"], r["rows_still_open"], r["error"]
                )
            else:
                self.log.info(
                    "replayed %s: %d rows integrated, %d still open",
                    r["file"],
                    r["rows_replayed"],
                    r["rows_still_open"],
                )
        totals = inbound_totals(files, replayed)  # a replay does not count again the rows it leaves open
        integrated = [f["file_id"] for f in files if f.get("status") == "integrated"]
        reasons = quarantine_reasons(self.erp, integrated) if integrated else {}
        self.erp.rollback()  # end the read transaction
        self.warn(reasons)
        written = [f["rejects_file"] for f in files if f.get("rejects_file")]
        if written:
            self.link(
                rejects=posixpath.join(folders["errors_dir"], written[0])
                if len(written) == 1
                else folders["errors_dir"] + "/"
            )
        return {
            "files": files,
            "replayed": replayed,
            "counts": totals,
            "bytes_received": received,
            "dry_run": dry,
            "reasons": reasons,
        }

    def _settled(self, shop, folder: str, names: list[str], settle: float) -> tuple[list[str], list[dict]]:
        """(the files to take, the run's entries of those left): each file's size and date looked at
        twice, ``settle`` seconds apart; a file that changed in between (a shop writing it in place
        rather than under a temporary name) is left for the next run (``incomplete``); one gone
        meanwhile is taken, and its claim says it vanished. On a server that tells neither size nor
        date nothing can be seen growing: said once, and the files are taken."""
        from passerelle.hooks.shop import FileVanished

        if settle <= 0 or not names:
            return names, []

        def look() -> dict[str, tuple | None]:
            listing = shop.stats(folder)  # one listing where the server has one
            if listing is not None:
                return {name: listing.get(name) for name in names}
            seen: dict[str, tuple | None] = {}
            for name in names:
                try:
                    seen[name] = shop.stat(posixpath.join(folder, name))
                except FileVanished:
                    seen[name] = None
            return seen

        before = look()
        time.sleep(settle)
        after = look()
        if any(seen == (None, None) for seen in after.values()):
            self.log.warning(
                "%s tells neither the size nor the date of the inbound files: a file still being written "
                "cannot be told from a whole one (have the shop write under a temporary name, then rename)",
                shop.where,
            )
        taken, left = [], []
        for name in names:
            if after[name] is None or before[name] == after[name]:
                taken.append(name)
            else:
                self.log.info(
                    "%s: still being written (%s, then %s, %g s later); left for the next run",
                    name,
                    _seen(before[name]),
                    _seen(after[name]),
                    settle,
                )
                left.append({"name": name, "status": "incomplete"})
        return taken, left

    def _claim(self, shop, path: str, claimed_dir: str, name: str) -> str | None:
        """Take the file out of the inbound folder by a rename on the server, before reading it: a
        newer file the shop uploads under the same name meanwhile stays there for the next run,
        instead of being archived unread. None when the file vanished since the listing."""
        from passerelle.hooks.shop import FileVanished

        claimed = posixpath.join(claimed_dir, claim_name(name))
        try:
            shop.rename(path, claimed)
        except FileVanished as exc:
            self.log.warning("%s: gone from %s before it was claimed; skipped (%s)", name, shop.where, exc)
            return None
        return claimed

    def _import_one(
        self, shop, core, claimed: str, name: str, folders: dict[str, str], rules: Any, declared: Any
    ) -> dict:
        """Integrate one claimed file, then move it to the archive (or the error folder when refused).

        The file's content never fails the task (its rows are quarantined, or the file refused whole);
        the server or the database does, with a message naming the file, the server and the path.
        """
        import psycopg

        from passerelle.core.inbound import InboundError
        from passerelle.hooks.shop import FileVanished, TransferError

        try:
            try:
                data = shop.get_bytes(claimed)
            except FileVanished as exc:
                self.log.warning("%s: gone from the server before it was read; skipped (%s)", name, exc)
                return {"name": name, "status": "vanished"}
            size = shop.size(claimed)
            if size is not None and size != len(data):  # still being written: next run
                self.log.warning(
                    "%s: downloaded %d bytes, server now holds %d; left in %s for the next run",
                    name,
                    len(data),
                    size,
                    claimed,
                )
                return {"name": name, "status": "incomplete"}
            try:
                result = core.integrate_file(self.erp, name, data, rules=rules, declared=declared)
            except InboundError as exc:
                core.refuse_file(self.erp, name, exc)
                shop.rename(claimed, posixpath.join(folders["errors_dir"], core.archive_name(name, core.sha256(data))))
                self.log.error("%s refused and moved to %s: %s", name, folders["errors_dir"], exc)
                return {"name": name, "status": "refused", "error": str(exc), "bytes": len(data)}
            archive = lambda n: posixpath.join(folders["archive_dir"], n)
            done = core.finish_file(
                self.erp,
                result,
                put=lambda n, b: shop.put_atomic(posixpath.join(folders["errors_dir"], n), b),
                move=lambda n: self._move(shop, claimed, archive(n)),
                planned=archive,
            )
        except FileVanished as exc:
            raise TransferError(
                f"{name}: the claimed copy {claimed} disappeared from {shop.where} during its "
                f"import; it was not archived ({exc})"
            ) from exc
        except TransferError as exc:
            raise TransferError(f"{name} (claimed as {claimed} on {shop.where}): {exc}") from exc
        except psycopg.Error as exc:
            raise RuntimeError(
                f"{name} (claimed as {claimed} on {shop.where}): the back office failed: "
                f"{type(exc).__name__}: {exc}; the file stays claimed and the next run imports "
                "it"
            ) from exc
        self.log.info(
            "%s: %s%s %s",
            name,
            result.status,
            f" (same content as {result.duplicate_of})" if result.duplicate_of else "",
            result.counts,
        )
        return {**result.as_dict(), **done, "bytes": len(data)}

    @staticmethod
    def _move(shop, src: str, dst: str) -> str:
        shop.rename(src, dst)
        return dst


class ProposeReordersOperator(OutcomeMixin, ErpMixin, BaseOperator):
    """Reorder proposals after integration, then the run summary and the run's note.

    :param imported: the import task's XCom (templated).
    :param erp_conn_id: the back office's Postgres connection; default ``shop.erp_conn_id``.
    :param config_path: configuration file; default ``PASSERELLE_CONFIG`` or the project's.

    The proposals are recomputed only when what they are computed from changed (stock, open web
    orders: :func:`passerelle.core.integrate.propose_reorders`); otherwise, and in a dry run, the
    summary and the note are still written, then the task is skipped with a log line saying why.
    """

    template_fields: Sequence[str] = ("imported",)

    def __init__(
        self, *, imported: Any, erp_conn_id: str | None = None, config_path: str | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.imported = imported
        self.erp_conn_id = erp_conn_id
        self.config_path = config_path

    def execute(self, context: Any) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from passerelle.core.integrate import Reorders, propose_reorders
        from passerelle.core.outcome import note_text
        from passerelle.core.summary import record_run

        imported = self.imported or {}
        if not isinstance(imported, dict):
            raise ValueError(f"imported must be the import task's result (a dict), got {type(imported).__name__}")
        dry = bool(imported.get("dry_run"))
        orders = sum(int(imported.get("counts", {}).get(k, 0)) for k in ("orders_created", "orders_cancelled"))
        reorders = (
            Reorders(skipped="dry run: nothing was integrated, no proposal computed")
            if dry
            else propose_reorders(self.erp)
        )
        files = imported.get("files", [])
        # Files read (integrated, a duplicate, refused, parsed in a dry run); those left on the server
        # (still being written, gone, a name too long) are said apart.
        growing = sum(1 for f in files if f.get("status") == "incomplete")
        counts = {
            **imported.get("counts", {}),
            "files": sum(1 for f in files if f.get("status") not in ("incomplete", "vanished", "name_too_long")),
            "reorder_proposals": reorders.added,
            "reorder_proposals_updated": reorders.updated,
            "reorder_proposals_withdrawn": reorders.withdrawn,
        }
        rows = max(int(counts.get("rows_read", 0)) - int(counts.get("rejected_rows", 0)), 0)
        more = [f"{counts['rows_replayed']} quarantined rows replayed"] if counts.get("rows_replayed") else []
        for key, words in (
            ("payments_seen_later", "payments seen later"),
            ("orders_confirmed_by_payment", "orders confirmed by their payment"),
            ("credit_notes_requested", "credit notes requested"),
        ):
            if counts.get(key):
                more.append(f"{counts[key]} {words}")
        if growing:
            more.append(f"{growing} file{'s' if growing > 1 else ''} still being written, left for the next run")
        if reorders.added or reorders.updated or reorders.withdrawn:
            said = f"reorder proposals: {reorders.added} new, {reorders.updated} updated"
            more.append(said + (f", {reorders.withdrawn} withdrawn (back in stock)" if reorders.withdrawn else ""))
        note = note_text(
            verb="integrated",
            rows=rows,
            files=counts["files"],
            quarantined=int(counts.get("rejected_rows", 0)),
            reasons=imported.get("reasons"),
            dry_run=dry,
            more=more,
        )
        record_run(
            self.erp,
            flow=FLOW,
            dag_run_id=context["run_id"],
            run_key=run_key(context),
            mode=None,
            dry_run=dry,
            counts=counts,
            rejects=int(counts.get("rejected_rows", 0)),
            bytes_received=int(imported.get("bytes_received", 0)),
            started_at=getattr(context.get("dag_run"), "start_date", None),
            note=note,
        )
        self.erp.commit()
        self.log.info(
            "%d reorder proposals added, %d updated, %d withdrawn; run counts %s",
            reorders.added,
            reorders.updated,
            reorders.withdrawn,
            counts,
        )
        self.say(context, note)
        if reorders.skipped:
            self.log.info(
                "reorder proposals not recomputed (%d order%s created or cancelled in this run): %s",
                orders,
                "" if orders == 1 else "s",
                reorders.skipped,
            )
            raise AirflowSkipException(f"reorder proposals not recomputed: {reorders.skipped}")
        return counts


__all__ = [
    "CLAIMED",
    "FLOW",
    "ImportOrdersOperator",
    "ProposeReordersOperator",
    "claim_name",
    "claimed_names",
    "inbound_names",
]
