"""The customers flow: customers and their addresses (billing, delivery), back office to shop.

build (delta or full, files into the outbox; the customer family becomes the shop's group or
tag) -> publish (atomic upload, manifest last; the only task connecting to the shop's server,
in the pool ``shop.ftp_pool``) -> confirm (snapshot advances, run summary). A rerun of the same
logical date finds its batch already built and republishes the same files. Rhythm (nightly
02:30 by default), run form (mode, entities, dry run), owner and retries come from
``flows.customers``. Rows whose e-mail is not one are refused with their reason
(``passerelle.outbound_reject``) and tried again on the next run. The files per shop are
described in docs/formats/ (section "Customers").
"""

from __future__ import annotations

from datetime import date

from airflow.sdk import DAG

from passerelle.config import load_settings
from passerelle.dag_settings import flow_settings
from passerelle.operators.batch import ConfirmBatchOperator, PublishBatchOperator
from passerelle.operators.customers import BuildCustomersOperator

DEFAULT_START = (2026, 1, 1)


def customers_dag(dag_id: str = "customers") -> DAG:
    settings = load_settings()  # the whole file checked: any mistake fails this DAG's import
    arguments = flow_settings("customers", settings, default_start=date(*DEFAULT_START), extra_tags=("erp-to-shop",))
    with DAG(dag_id=dag_id, render_template_as_native_obj=True, doc_md=__doc__, **arguments) as dag:
        build = BuildCustomersOperator(
            task_id="build",
            flow="customers",
            mode="{{ params.mode }}",
            entities="{{ params.entities }}",
            dry_run="{{ params.dry_run }}",
        )
        publish = PublishBatchOperator(task_id="publish", batch=build.output, pool=settings.ftp_pool("customers"))
        ConfirmBatchOperator(task_id="confirm", batch=build.output, published=publish.output)
    return dag
