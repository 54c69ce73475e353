"""The inbound flow, shop to back office, as a DAG: ``orders_in``.

``import_files``: every order or customer file in ``shop.inbound_dir`` is integrated in its own
transaction (:func:`passerelle.core.integrate.integrate_file`); once committed, its rejects go
to ``shop.errors_dir`` and the file to ``shop.archive_dir``. With the run option
``replay_quarantine``, open quarantined rows are integrated again. ``propose_reorders``: reorder
proposals for articles whose projected stock falls below their minimum, and the run summary.

A rerun, a retry or the same file dropped again under another name integrates nothing twice (the
file ledger knows its sha256, the order ledger its orders); a crash after commit only leaves the
archive to do, which the next run does.
"""

from __future__ import annotations

from datetime import date

from airflow.sdk import DAG

from passerelle.config import load_settings
from passerelle.dag_settings import flow_settings
from passerelle.operators.inbound import FLOW, ImportOrdersOperator, ProposeReordersOperator

DEFAULT_START = (2026, 1, 1)


def orders_in_dag(dag_id: str = "orders_in") -> DAG:
    """Orders and customers from the shop's files, hourly by default."""
    settings = load_settings()  # the whole file checked: any mistake fails this DAG's import
    arguments = flow_settings(FLOW, settings, default_start=date(*DEFAULT_START), extra_tags=("shop-to-erp",))
    with DAG(dag_id=dag_id, render_template_as_native_obj=True, doc_md=__doc__, **arguments) as dag:
        # Lists, downloads and moves the shop's files: in the pool of the shop's server.
        imported = ImportOrdersOperator(
            task_id="import_files",
            replay_quarantine="{{ params.replay_quarantine }}",
            dry_run="{{ params.dry_run }}",
            pool=settings.ftp_pool(FLOW),
        )
        ProposeReordersOperator(task_id="propose_reorders", imported=imported.output)
    return dag
