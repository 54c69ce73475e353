"""The daily report as a DAG: render the last days' runs, sales and stock alerts as HTML,
put the page on the shop's server and keep a copy locally.

One task: read (run summaries, orders, stock) -> render (passerelle.core.report) -> upload
``<remote_dir>/report-YYYY-MM-DD.html`` atomically (temporary name, size check, rename) and
write the same bytes to ``<local_dir>/report-YYYY-MM-DD.html``; the run's own summary is
recorded like any flow's. The date is the run's logical date in the shop's timezone; the page
covers the ``days`` whole days before it, so running a past date again shows the same runs.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from passerelle.config import load_config
from passerelle.operators.report import PublishReportOperator
from passerelle.schedules import flow_settings, ftp_pool


def report_dag(dag_id: str = "report") -> DAG:
    """The ``report`` flow: rhythm and run form from ``flows.report`` (default daily at 06:00)."""
    cfg = load_config()
    settings = flow_settings("report", cfg)
    settings.setdefault("start_date", pendulum.datetime(2026, 1, 1, tz=cfg["shop"]["timezone"]))
    settings["params"].pop("mode", None)  # a report has no delta: the form keeps only "dry run"
    with DAG(dag_id=dag_id, render_template_as_native_obj=True, doc_md=__doc__, **settings) as dag:
        PublishReportOperator(task_id="publish_report", dry_run="{{ params.dry_run }}", pool=ftp_pool("report", cfg))
    return dag
