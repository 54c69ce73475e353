"""The daily report's operator: render the run's day, put the page (and the day's web orders as
CSV) on the shop's server, keep a copy.

Reading and rendering are :mod:`passerelle.core.report`; the run's summary is
:mod:`passerelle.core.summary`. This operator only moves the page to its two places.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from passerelle.core.values import parse_bool
from passerelle.operators.common import ErpMixin, ShopMixin, run_day
from passerelle.operators.outcome import REPORT_LINKS, OutcomeMixin


def write_atomically(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write *data* to *path* through a temporary file in the same folder, then rename; the file
    gets *mode* (default 0644: a web server serving the folder can read it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class PublishReportOperator(OutcomeMixin, ErpMixin, ShopMixin, BaseOperator):
    """Render the report for the run's day, upload it to the shop's server, keep a local copy;
    the same for the staff's daily file of web orders (``orders-YYYY-MM-DD.csv``,
    :mod:`passerelle.core.order_list`: the day before whole and the run's day so far).

    The page covers the run's day until the run's logical moment and the ``days`` whole days
    before (:func:`passerelle.core.report.window`); it is linked from the task ("Report") when
    ``shop.public_base_url`` is set.

    :param dry_run: render and log, write and upload nothing (templated).
    :param erp_conn_id: the back office's Postgres connection; default ``shop.erp_conn_id``.
    :param shop_conn_id: the shop server's connection; default ``shop.shop_conn_id``.
    :param config_path: configuration file; default ``PASSERELLE_CONFIG`` or the project's.
    """

    template_fields: Sequence[str] = ("dry_run",)
    operator_extra_links = REPORT_LINKS

    def __init__(
        self,
        *,
        dry_run: Any = False,
        erp_conn_id: str | None = None,
        shop_conn_id: str | None = None,
        config_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dry_run = dry_run
        self.erp_conn_id = erp_conn_id
        self.shop_conn_id = shop_conn_id
        self.config_path = config_path

    def execute(self, context: Any) -> dict:
        from passerelle.core.order_list import daily_name, daily_rows, file_window, orders_csv
        from passerelle.core.report import collect_report, render_html
        from passerelle.core.summary import record_run
        from passerelle.dag_settings import report_settings

        dry = parse_bool(self.dry_run, "dry_run")
        options = report_settings(self.settings)
        timezone = self.settings.shop.timezone
        day = run_day(context, timezone)
        until = context.get("logical_date") or getattr(context.get("dag_run"), "run_after", None)
        data = collect_report(self.erp, day=day, days=options["days"], timezone=timezone, until=until)
        start, end = file_window(day, timezone, until=until)
        orders = daily_rows(self.erp, start, end, timezone=timezone)
        self.erp.rollback()  # end the read transaction
        content = render_html(data).encode("utf-8")
        orders_content = orders_csv(orders, timezone=timezone)
        name = f"report-{day.isoformat()}.html"
        remote = posixpath.join(options["remote_dir"], name)
        local = options["local_dir"] / name
        orders_name = daily_name(day)
        orders_remote = posixpath.join(options["remote_dir"], orders_name)
        orders_local = options["local_dir"] / orders_name
        result = {
            "day": day.isoformat(),
            "bytes": len(content),
            "runs": data.total_runs,
            "flows": len(data.flows),
            "orders": data.total_orders,
            "stock_alerts": data.stock_alert_count,
            "orders_file_rows": len(orders),
            "dry_run": dry,
        }
        if dry:
            self.log.info("dry run: %s would be %d bytes; nothing written or uploaded", name, len(content))
        else:
            write_atomically(local, content)
            write_atomically(orders_local, orders_content)  # 0644: the web server beside the desk reads it
            with self.shop as shop:
                shop.makedirs(options["remote_dir"])
                shop.put_atomic(remote, content)
                shop.put_atomic(orders_remote, orders_content)
            self.log.info(
                "report %s: %d bytes, kept in %s and put on the shop's server as %s", name, len(content), local, remote
            )
            self.log.info(
                "web orders %s: %d rows (%s to %s), kept in %s and put on the shop's server as %s",
                orders_name,
                len(orders),
                start.isoformat(),
                end.isoformat(),
                orders_local,
                orders_remote,
            )
            result.update(remote=remote, local=str(local), orders_remote=orders_remote, orders_local=str(orders_local))
            self.link(report=remote)
        dag_run = context.get("dag_run")
        note = (
            f"report {name}: {data.total_runs} runs, {data.total_orders} orders, "
            f"{data.stock_alert_count} stock alerts" + (" (dry run, nothing written)" if dry else "")
        )
        record_run(
            self.erp,
            flow="report",
            dag_run_id=context["run_id"],
            run_key=day.isoformat(),
            mode=None,
            dry_run=dry,
            counts={
                "report": {"runs": data.total_runs, "orders": data.total_orders, "stock_alerts": data.stock_alert_count}
            },
            bytes_sent=0 if dry else len(content),
            started_at=getattr(dag_run, "start_date", None),
            note=note,
        )
        self.erp.commit()
        self.say(context, note)
        return result


__all__ = ["PublishReportOperator", "write_atomically"]
