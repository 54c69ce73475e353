"""The daily report as a DAG: render the last days' runs, sales and stock alerts as HTML,
put the page on the shop's server and keep a copy locally.

One task: read (run summaries, orders, stock) -> render (passerelle.core.report) -> upload
``<remote_dir>/report-YYYY-MM-DD.html`` atomically (temporary name, size check, rename) and
write the same bytes to ``<local_dir>/report-YYYY-MM-DD.html``; the run's own summary is
recorded like any flow's. The date is the run's logical date in the shop's timezone; the page
covers the ``days`` whole days before it, so running a past date again shows the same runs.

With ``accounting.enabled``, a second task beside it, ``export_journal``, writes the sales journal
of the day before the run's day (web invoices and payments) as the FEC and a CSV journal to
``accounting.folder`` (passerelle.core.accounting; docs/formats/accounting.md).
"""

from __future__ import annotations

from datetime import date

from airflow.sdk import DAG

from passerelle.config import load_settings
from passerelle.dag_settings import flow_settings
from passerelle.operators.accounting import ExportJournalOperator
from passerelle.operators.report import PublishReportOperator

DEFAULT_START = (2026, 1, 1)


def report_dag(dag_id: str = "report") -> DAG:
    """The ``report`` flow: rhythm and run form from ``flows.report`` (default daily at 06:00)."""
    settings = load_settings()  # the whole file checked: any mistake fails this DAG's import
    arguments = flow_settings("report", settings, default_start=date(*DEFAULT_START))
    with DAG(dag_id=dag_id, render_template_as_native_obj=True, doc_md=__doc__, **arguments) as dag:
        PublishReportOperator(
            task_id="publish_report", dry_run="{{ params.dry_run }}", pool=settings.ftp_pool("report")
        )
        if settings.accounting.enabled:
            ExportJournalOperator(task_id="export_journal", dry_run="{{ params.dry_run }}")
    return dag
