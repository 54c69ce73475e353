"""The catalog flow: families, brands, suppliers, articles, variants (and photos) to the shop.

build (delta or full, files into the outbox) -> publish (atomic upload, manifest last)
-> confirm (snapshot advances, run summary). A rerun of the same logical date finds the
batch already built and republishes the same files.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from passerelle.config import load_config
from passerelle.operators.batch import BuildCatalogOperator, ConfirmBatchOperator, PublishBatchOperator

ENTITIES = ["family", "brand", "supplier", "article", "variant"]


def _schedule(cfg: dict):
    from airflow.timetables.trigger import CronTriggerTimetable

    flow = cfg["flows"].get("catalog") or {"cron": "0 2 * * *"}
    if flow.get("manual"):
        return None
    return CronTriggerTimetable(flow.get("cron", "0 2 * * *"), timezone=cfg["shop"]["timezone"])


def catalog_dag(dag_id: str = "catalog_nightly") -> DAG:
    cfg = load_config()
    with DAG(
        dag_id=dag_id,
        description="Catalog from the back office to the shop: delta (or full) since the last confirmed send",
        schedule=_schedule(cfg),
        start_date=pendulum.datetime(2026, 1, 1, tz=cfg["shop"]["timezone"]),
        catchup=False,
        max_active_runs=1,
        tags=["passerelle", "catalog", "erp-to-shop"],
        default_args={"owner": "passerelle", "retries": 2, "retry_delay": timedelta(minutes=1)},
        params={
            "mode": Param("delta", enum=["delta", "full"], title="Mode",
                          description="delta: what changed since the last confirmed send; full: everything"),
            "entities": Param(ENTITIES, type="array", title="Entities",
                              description=f"Among {', '.join(ENTITIES)}"),
            "dry_run": Param(False, type="boolean", title="Dry run",
                             description="Compute and show what would be sent; upload nothing"),
        },
        render_template_as_native_obj=True,
        doc_md=__doc__,
    ) as dag:
        build = BuildCatalogOperator(
            task_id="build", flow="catalog", mode="{{ params.mode }}", entities="{{ params.entities }}",
            dry_run="{{ params.dry_run }}",
        )
        publish = PublishBatchOperator(task_id="publish", batch=build.output)
        ConfirmBatchOperator(task_id="confirm", batch=build.output, published=publish.output)
    return dag
