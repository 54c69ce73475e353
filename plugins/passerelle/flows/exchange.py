"""The hourly exchanges, back office to shop, as DAGs.

``prices_stock``: prices (base, promotions, customer-group prices) and stock (per article
and variant, net of downloaded shop orders and safety stock).
``order_status``: order status changes (with carrier and tracking number), parcels (each
delivery note with its lines) and invoice PDFs; with ``notices.mail.enabled``, a last task
``notify_customers`` mails the customers their notices (passerelle.core.notices).

Each: build (delta or full into the outbox, one consistent transaction) -> publish (atomic
upload, manifest last; the only task connecting to the shop's server, in the pool
``shop.ftp_pool``) -> confirm (snapshot advances, run summary). A rerun of the same logical
date finds its batch already built and republishes the same files. Rhythm, run form (mode,
entities, dry run), owner and retries come from the configuration's ``flows`` section.
"""

from __future__ import annotations

from datetime import date

from airflow.sdk import DAG

from passerelle.config import load_settings
from passerelle.dag_settings import flow_settings
from passerelle.operators.batch import ConfirmBatchOperator, PublishBatchOperator
from passerelle.operators.exchange import BuildExchangeOperator

DEFAULT_START = (2026, 1, 1)


def _exchange_dag(flow: str, dag_id: str, doc: str) -> DAG:
    settings = load_settings()  # the whole file checked: any mistake fails this DAG's import
    arguments = flow_settings(flow, settings, default_start=date(*DEFAULT_START), extra_tags=("erp-to-shop",))
    with DAG(dag_id=dag_id, render_template_as_native_obj=True, doc_md=doc, **arguments) as dag:
        build = BuildExchangeOperator(
            task_id="build",
            flow=flow,
            mode="{{ params.mode }}",
            entities="{{ params.entities }}",
            dry_run="{{ params.dry_run }}",
        )
        publish = PublishBatchOperator(task_id="publish", batch=build.output, pool=settings.ftp_pool(flow))
        confirm = ConfirmBatchOperator(task_id="confirm", batch=build.output, published=publish.output)
        if flow == "order_status" and settings.notices.mail.enabled:
            # Passerelle mails the customer notices itself (else the shop does, from the notify flags).
            from passerelle.operators.notices import NotifyCustomersOperator

            confirm >> NotifyCustomersOperator(task_id="notify_customers", batch=build.output)
    return dag


def prices_stock_dag(dag_id: str = "prices_stock") -> DAG:
    """Prices (base, promotions, customer-group prices) and stock, hourly by default."""
    return _exchange_dag("prices_stock", dag_id, __doc__)


def order_status_dag(dag_id: str = "order_status") -> DAG:
    """Order status changes with tracking, and invoice PDFs, hourly by default."""
    return _exchange_dag("order_status", dag_id, __doc__)
