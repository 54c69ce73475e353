"""The catalog flow: families, brands, suppliers, articles, variants (and photos) to the shop.

build (delta, new-only or full, files into the outbox) -> publish (atomic upload, manifest last)
-> confirm (snapshot advances, run summary). A rerun of the same logical date finds the
batch already built and republishes the same files. publish updates the Asset
``CATALOG_PUBLISHED`` (flows with ``after: [catalog]`` follow it) only when catalog files were
sent: a dry run, or a delta with nothing to send, ends it skipped and confirm still runs.
Tasks connecting to the shop's server (render_images, finish_images, publish) run in the
pool ``shop.ftp_pool``.

Photos, beside the build: plan_images -> render_images (mapped over chunks, each render
uploaded to ``<outbound_dir>/images/``) -> finish_images (removals, image snapshot; held when the
build took up a batch whose publication was cut, as its product files may name them). publish
waits for finish_images, so the product files never name a render not yet on the server, and
its manifest carries the images' counts under ``images``.
"""

from __future__ import annotations

from datetime import date

from airflow.sdk import DAG

from passerelle.assets import CATALOG_PUBLISHED
from passerelle.config import Settings, load_settings
from passerelle.dag_settings import flow_settings
from passerelle.operators.batch import ConfirmBatchOperator, PublishBatchOperator
from passerelle.operators.catalog import BuildCatalogOperator
from passerelle.operators.images import FinishImagesOperator, PlanImagesOperator, RenderImagesOperator

ENTITIES = ["family", "brand", "supplier", "article", "variant"]
DEFAULT_START = (2026, 1, 1)


def _schedule(settings: Settings) -> dict:
    """The DAG's rhythm, run form, tags, owner/retries and run limit from ``flows.catalog``
    (passerelle.dag_settings); the start date defaults to 1 January 2026 in the shop's timezone."""
    return flow_settings("catalog", settings, default_start=date(*DEFAULT_START), extra_tags=("erp-to-shop",))


def catalog_dag(dag_id: str = "catalog") -> DAG:
    settings = load_settings()  # the whole file checked: any mistake fails this DAG's import
    with DAG(
        dag_id=dag_id,
        **_schedule(settings),
        render_template_as_native_obj=True,
        doc_md=__doc__,
    ) as dag:
        build = BuildCatalogOperator(
            task_id="build",
            flow="catalog",
            mode="{{ params.mode }}",
            entities="{{ params.entities }}",
            dry_run="{{ params.dry_run }}",
        )
        plan = PlanImagesOperator(task_id="plan_images", mode="{{ params.mode }}", dry_run="{{ params.dry_run }}")
        # The tasks that connect to the shop's server share its pool (a render task uploads each
        # photo as soon as it is encoded, so it holds a session while it renders).
        shop_pool = settings.ftp_pool("catalog")
        render = RenderImagesOperator.partial(task_id="render_images", pool=shop_pool).expand(chunk=plan.output)
        # finish_images reads the build's batch: one taken up (publication cut) holds the removals.
        images = FinishImagesOperator(
            task_id="finish_images", plan=plan.output["plan"], results=render.output, batch=build.output, pool=shop_pool
        )
        # Updates CATALOG_PUBLISHED only when catalog files reach the shop: a dry run, or a run
        # with nothing but the manifest to send, ends this task skipped (no asset event).
        publish = PublishBatchOperator(
            task_id="publish",
            batch=build.output,
            extra={"images": images.output},
            outlets=[CATALOG_PUBLISHED],
            pool=shop_pool,
        )
        ConfirmBatchOperator(task_id="confirm", batch=build.output, published=publish.output)
    return dag
