"""What a kill round's child runs: the operators of a flow, as Airflow's task runner would call them.

The connections (``AIRFLOW_CONN_PASSERELLE_ERP``, ``AIRFLOW_CONN_PASSERELLE_SHOP``) and the
configuration (``PASSERELLE_CONFIG``) come from the environment the test gives the job.
"""

from __future__ import annotations

import pendulum

from passerelle.operators.batch import ConfirmBatchOperator, PublishBatchOperator
from passerelle.operators.exchange import BuildExchangeOperator
from passerelle.operators.inbound import ImportOrdersOperator


def import_files() -> dict:
    """The orders_in flow's import task."""
    return ImportOrdersOperator(task_id="import_files").execute({})


def publish_flow(flow: str, logical_date: str, mode: str = "delta") -> dict:
    """An exchange flow's three tasks for one logical date: build, publish, confirm."""
    when = pendulum.parse(logical_date)
    context = {"logical_date": when, "run_id": f"scheduled__{logical_date}", "dag_run": None}
    batch = BuildExchangeOperator(task_id="build", flow=flow, mode=mode).execute(context)
    published = PublishBatchOperator(task_id="publish", batch=batch).execute(context)
    confirmed = ConfirmBatchOperator(task_id="confirm", batch=batch, published=published).execute(context)
    return {"batch": batch["batch_id"], "published": published, "confirmed": confirmed}
