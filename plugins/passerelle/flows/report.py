"""The daily report as a DAG: render the last days' runs, sales and stock alerts as HTML,
put the page on the shop's server and keep a copy locally.

One task: read (run summaries, orders, stock) -> render (passerelle.core.report) -> upload
``<remote_dir>/report-YYYY-MM-DD.html`` atomically (temporary name, size check, rename) and
write the same bytes to ``<local_dir>/report-YYYY-MM-DD.html``; the run's own summary is
recorded like any flow's. The date is the run's logical date in the shop's timezone; the page
covers the ``days`` whole days before it, so running a past date again shows the same runs.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Sequence
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, BaseOperator

from passerelle.config import load_config, load_settings
from passerelle.dag_settings import flow_settings, report_settings

DEFAULT_START = (2026, 1, 1)


def report_day(context: Any, timezone: str) -> date:
    """The report's date: the logical date in the shop's timezone; for a manual run without
    one, the day the run was due."""
    when = context.get("logical_date")
    if when is None:
        dag_run = context.get("dag_run")
        when = getattr(dag_run, "run_after", None) or pendulum.now("UTC")
    return pendulum.instance(when).in_timezone(timezone).date()


def write_atomically(path: Path, data: bytes) -> None:
    """Write *data* to *path* through a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class PublishReportOperator(BaseOperator):
    """Render the report for the run's day, upload it to the shop's server, keep a local copy.

    :param dry_run: render and log, write and upload nothing (templated).
    :param erp_conn_id: the back office's Postgres connection; default ``shop.erp_conn_id``.
    :param shop_conn_id: the shop server's connection; default ``shop.shop_conn_id``.
    :param config_path: configuration file; default ``PASSERELLE_CONFIG`` or the project's.
    """

    template_fields: Sequence[str] = ("dry_run",)

    def __init__(self, *, dry_run: Any = False, erp_conn_id: str | None = None, shop_conn_id: str | None = None,
                 config_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        cfg = load_config(config_path)
        self.dry_run = dry_run
        self.config_path = config_path
        self.erp_conn_id = erp_conn_id or cfg["shop"]["erp_conn_id"]
        self.shop_conn_id = shop_conn_id or cfg["shop"]["shop_conn_id"]

    @cached_property
    def erp(self):
        from passerelle.db import erp_connection

        return erp_connection(self.erp_conn_id)

    @cached_property
    def shop(self):
        from passerelle.hooks.shop import ShopFilesHook

        return ShopFilesHook(self.shop_conn_id)

    def execute(self, context: Any) -> dict:
        from passerelle.core.report import collect_report, render_html
        from passerelle.core.summary import record_run

        if self.dry_run not in (True, False, "true", "false", "True", "False"):
            raise ValueError(f"dry_run must be true or false, got {self.dry_run!r}")
        dry = self.dry_run in (True, "true", "True")
        cfg = load_config(self.config_path)
        options = report_settings(cfg)
        timezone = cfg["shop"]["timezone"]
        day = report_day(context, timezone)
        data = collect_report(self.erp, day=day, days=options["days"], timezone=timezone)
        self.erp.rollback()  # end the read transaction
        content = render_html(data).encode("utf-8")
        name = f"report-{day.isoformat()}.html"
        remote = posixpath.join(options["remote_dir"], name)
        local = options["local_dir"] / name
        result = {"day": day.isoformat(), "bytes": len(content), "runs": data.total_runs, "flows": len(data.flows),
                  "orders": data.total_orders, "stock_alerts": data.stock_alert_count, "dry_run": dry}
        if dry:
            self.log.info("dry run: %s would be %d bytes; nothing written or uploaded", name, len(content))
        else:
            write_atomically(local, content)
            with self.shop as shop:
                shop.makedirs(options["remote_dir"])
                shop.put_atomic(remote, content)
            self.log.info("report %s: %d bytes, kept in %s and put on the shop's server as %s", name,
                          len(content), local, remote)
            result.update(remote=remote, local=str(local))
        dag_run = context.get("dag_run")
        record_run(self.erp, flow="report", dag_run_id=context["run_id"], run_key=day.isoformat(), mode=None,
                   dry_run=dry, counts={"report": {"runs": data.total_runs, "orders": data.total_orders,
                                                   "stock_alerts": data.stock_alert_count}},
                   bytes_sent=0 if dry else len(content), started_at=getattr(dag_run, "start_date", None))
        self.erp.commit()
        return result


def report_dag(dag_id: str = "daily_report") -> DAG:
    """The ``report`` flow: rhythm and run form from ``flows.report`` (default daily at 06:00)."""
    settings = load_settings()  # the whole file checked: any mistake fails this DAG's import
    arguments = flow_settings("report", settings, default_start=date(*DEFAULT_START))
    arguments["params"].pop("mode", None)  # a report has no delta: the form keeps only "dry run"
    with DAG(dag_id=dag_id, render_template_as_native_obj=True, doc_md=__doc__, **arguments) as dag:
        PublishReportOperator(task_id="publish_report", dry_run="{{ params.dry_run }}",
                              pool=settings.ftp_pool("report"))
    return dag
