"""The inbound flow's operators, shop to back office: import the shop's files, propose reorders.

:class:`ImportOrdersOperator` moves files between the shop's server and
:mod:`passerelle.core.integrate` (which parses, integrates, quarantines and ledgers them);
:class:`ProposeReordersOperator` runs the reorder rule and records the run's summary.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from typing import Any

from airflow.sdk import BaseOperator

from passerelle.core.values import parse_bool
from passerelle.operators.common import ErpMixin, ShopMixin, run_key
from passerelle.operators.outcome import INBOUND_LINKS, OutcomeMixin

#: The flow's name in the configuration and in ``passerelle.run_summary``.
FLOW = "orders_in"


def inbound_names(names: Iterable[str]) -> list[str]:
    """The names of a listing worth reading: CSV or TXT files, no partial uploads (``.part``),
    no hidden or path-like names (:func:`safe_name`); sorted (shops name files by time)."""
    from passerelle.hooks.shop import TransferError, safe_name

    out = []
    for name in names:
        try:
            safe_name(name)
        except TransferError:
            continue
        if name.lower().endswith((".csv", ".txt")):
            out.append(name)
    return sorted(out)


class ImportOrdersOperator(OutcomeMixin, ErpMixin, ShopMixin, BaseOperator):
    """Integrate the shop's inbound files, then (optionally) replay the quarantine.

    :param replay_quarantine: also integrate again the open quarantined rows (templated).
    :param dry_run: parse and count the files; write nothing, move nothing (templated).
    :param erp_conn_id: the back office's Postgres connection; default ``shop.erp_conn_id``.
    :param shop_conn_id: the shop's FTP/FTPS/SFTP connection; default ``shop.shop_conn_id``.
    :param config_path: configuration file; default ``PASSERELLE_CONFIG`` or the project's.
    """

    template_fields: Sequence[str] = ("replay_quarantine", "dry_run")
    #: Link to the rejects file this run wrote (the errors folder when it wrote several).
    operator_extra_links = INBOUND_LINKS

    def __init__(self, *, replay_quarantine: Any = False, dry_run: Any = False, erp_conn_id: str | None = None,
                 shop_conn_id: str | None = None, config_path: str | None = None, **kwargs) -> None:
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

        dry = parse_bool(self.dry_run, "dry_run", default=False)
        replay = parse_bool(self.replay_quarantine, "replay_quarantine", default=False)
        cfg = self.config
        rules, declared = core.inbound_settings(cfg)
        folders = {k: cfg["shop"][k] for k in ("inbound_dir", "archive_dir", "errors_dir")}
        files: list[dict] = []
        received = 0
        with self.shop as shop:
            names = inbound_names(shop.list(folders["inbound_dir"]))
            if not dry:
                shop.makedirs(folders["archive_dir"])
                shop.makedirs(folders["errors_dir"])
            for name in names:
                path = posixpath.join(folders["inbound_dir"], name)
                data = shop.get_bytes(path)
                size = shop.size(path)
                if size is not None and size != len(data):  # still being written: next run
                    self.log.warning("%s: downloaded %d bytes, server now holds %d; left for the next run",
                                     name, len(data), size)
                    files.append({"name": name, "status": "incomplete"})
                    continue
                received += len(data)
                if dry:
                    try:
                        files.append({"name": name, "status": "dry_run", "counts": read_inbound(name, data,
                                      declared=declared).counts})
                    except InboundError as exc:
                        files.append({"name": name, "status": "refused", "error": str(exc)})
                    continue
                try:
                    result = core.integrate_file(self.erp, name, data, rules=rules, declared=declared)
                except InboundError as exc:
                    core.refuse_file(self.erp, name, exc)
                    shop.rename(path, posixpath.join(folders["errors_dir"], core.archive_name(name, core.sha256(data))))
                    self.log.error("%s refused and moved to %s: %s", name, folders["errors_dir"], exc)
                    files.append({"name": name, "status": "refused", "error": str(exc)})
                    continue
                done = core.finish_file(
                    self.erp, result,
                    put=lambda n, b: shop.put_atomic(posixpath.join(folders["errors_dir"], n), b),
                    move=lambda n, p=path: self._move(shop, p, posixpath.join(folders["archive_dir"], n)),
                )
                self.log.info("%s: %s%s %s", name, result.status,
                              f" (same content as {result.duplicate_of})" if result.duplicate_of else "",
                              result.counts)
                files.append({**result.as_dict(), **done})
        replayed = core.replay_quarantine(self.erp, rules=rules, declared=declared) if replay and not dry else []
        for r in replayed:
            self.log.info("replayed %s: %d rows integrated, %d still open", r["file"], r["rows_replayed"],
                          r["rows_still_open"])
        totals = inbound_totals(files, replayed)  # a replay does not count again the rows it leaves open
        integrated = [f["file_id"] for f in files if f.get("status") == "integrated"]
        reasons = quarantine_reasons(self.erp, integrated) if integrated else {}
        self.erp.rollback()  # end the read transaction
        self.warn(reasons)
        written = [f["rejects_file"] for f in files if f.get("rejects_file")]
        if written:
            self.link(rejects=posixpath.join(folders["errors_dir"], written[0]) if len(written) == 1
                      else folders["errors_dir"] + "/")
        return {"files": files, "replayed": replayed, "counts": totals, "bytes_received": received, "dry_run": dry,
                "reasons": reasons}

    @staticmethod
    def _move(shop, src: str, dst: str) -> str:
        shop.rename(src, dst)
        return dst


class ProposeReordersOperator(OutcomeMixin, ErpMixin, BaseOperator):
    """Reorder proposals after integration, then the run summary.

    :param imported: the import task's XCom (templated).
    :param erp_conn_id: the back office's Postgres connection; default ``shop.erp_conn_id``.
    :param config_path: configuration file; default ``PASSERELLE_CONFIG`` or the project's.
    """

    template_fields: Sequence[str] = ("imported",)

    def __init__(self, *, imported: Any, erp_conn_id: str | None = None, config_path: str | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.imported = imported
        self.erp_conn_id = erp_conn_id
        self.config_path = config_path

    def execute(self, context: Any) -> dict:
        from passerelle.core.integrate import propose_reorders
        from passerelle.core.outcome import note_text
        from passerelle.core.summary import record_run

        imported = self.imported or {}
        if not isinstance(imported, dict):
            raise ValueError(f"imported must be the import task's result (a dict), got {type(imported).__name__}")
        dry = bool(imported.get("dry_run"))
        proposals = 0 if dry else propose_reorders(self.erp)
        counts = {**imported.get("counts", {}), "files": len(imported.get("files", [])),
                  "reorder_proposals": proposals}
        record_run(self.erp, flow=FLOW, dag_run_id=context["run_id"], run_key=run_key(context), mode=None,
                   dry_run=dry, counts=counts, rejects=int(counts.get("rejected_rows", 0)),
                   bytes_received=int(imported.get("bytes_received", 0)),
                   started_at=getattr(context.get("dag_run"), "start_date", None))
        self.erp.commit()
        self.log.info("%d reorder proposals; run counts %s", proposals, counts)
        rows = max(int(counts.get("rows_read", 0)) - int(counts.get("rejected_rows", 0)), 0)
        more = [f"{counts['rows_replayed']} quarantined rows replayed"] if counts.get("rows_replayed") else []
        self.say(context, note_text(verb="integrated", rows=rows, files=counts["files"],
                                    quarantined=int(counts.get("rejected_rows", 0)), reasons=imported.get("reasons"),
                                    dry_run=dry, more=more))
        return counts


__all__ = ["FLOW", "ImportOrdersOperator", "ProposeReordersOperator", "inbound_names"]
