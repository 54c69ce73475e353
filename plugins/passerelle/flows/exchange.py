"""The hourly exchanges, back office to shop, as DAGs.

``prices_stock_export``: prices (base, promotions, customer-group prices) and stock (per article
and variant, net of downloaded shop orders and safety stock).
``order_status_export``: order status changes (with carrier and tracking number) and invoice PDFs.

Each: build (delta or full into the outbox, one consistent transaction) -> publish (atomic
upload, manifest last; the only task connecting to the shop's server, in the pool
``shop.ftp_pool``) -> confirm (snapshot advances, run summary). A rerun of the same logical
date finds its batch already built and republishes the same files. Rhythm, run form (mode,
entities, dry run), owner and retries come from the configuration's ``flows`` section.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pendulum
from airflow.sdk import DAG

from passerelle.config import load_config, load_settings
from passerelle.operators.batch import BuildBatchOperator, ConfirmBatchOperator, PublishBatchOperator, run_key
from passerelle.dag_settings import flow_settings

DEFAULT_START = (2026, 1, 1)


def as_of_date(context: Any, timezone: str) -> date:
    """The run's day in the shop's timezone: the logical date's, else (manual runs without one)
    the day the run was due."""
    when = context.get("logical_date")
    if when is None:
        dag_run = context.get("dag_run")
        when = getattr(dag_run, "run_after", None) or pendulum.now("UTC")
    return pendulum.instance(when).in_timezone(timezone).date()


class BuildExchangeOperator(BuildBatchOperator):
    """Compute an exchange flow's delta (or full send) and write its files to the outbox.

    Arguments as :class:`~passerelle.operators.batch.BuildBatchOperator`, with ``flow``
    ``prices_stock`` or ``order_status`` and entities run-form names such as
    ``["price", "stock"]``.
    """

    FLOWS = ("prices_stock", "order_status")

    def __init__(self, *, flow: str, **kwargs) -> None:
        if flow not in self.FLOWS:
            raise ValueError(f"flow must be one of {self.FLOWS}, got {flow!r}")
        super().__init__(flow=flow, **kwargs)

    def execute(self, context: Any) -> dict:
        from passerelle.core.exchange import (
            build_exchange,
            exchange_settings,
            order_status_entities,
            prices_stock_entities,
        )
        from passerelle.core.dialects import exchange_dialect

        names, dry = self.checked_arguments()
        cfg = load_config(self.config_path)
        shop = cfg["shop"]
        dialect = exchange_dialect(shop["dialect"], {**cfg.get("prestashop", {}), "timezone": shop["timezone"]})
        if self.flow == "prices_stock":
            entities = prices_stock_entities(cfg["catalog"]["selection_rule"],
                                             variant_display=cfg["stock"]["variant_display"],
                                             filter_variants=dialect.filters_variant_display, names=names)
        else:
            entities = order_status_entities(names)
        batch, files = build_exchange(
            self.erp, flow=self.flow, run_key=run_key(context), entities=entities, dialect=dialect,
            settings=exchange_settings(cfg, as_of_date(context, shop["timezone"])), mode=self.mode, dry_run=dry,
            rows_per_file=shop["rows_per_file"],
        )
        self.erp.commit()
        for entity, c in batch.counts.items():
            extra = "".join(f"  {k} {v}" for k, v in c.items() if k.startswith("pdf_"))
            self.log.info("%-14s created %6d  changed %6d  removed %6d  unchanged %7d  rejected %4d%s", entity,
                          c.get("created", 0), c.get("changed", 0), c.get("removed", 0), c.get("unchanged", 0),
                          c.get("rejected", 0), extra)
        self.log.info("%d files in the outbox (%d bytes)%s", len(files), sum(f["bytes"] for f in files),
                      " (reused: same logical date)" if batch.reused else "")
        return {**batch.as_xcom(), "files": [{k: f[k] for k in ("name", "rows", "bytes")} for f in files]}


def _exchange_dag(flow: str, dag_id: str, doc: str) -> DAG:
    settings = load_settings()  # the whole file checked: any mistake fails this DAG's import
    arguments = flow_settings(flow, settings, default_start=date(*DEFAULT_START), extra_tags=("erp-to-shop",))
    with DAG(dag_id=dag_id, render_template_as_native_obj=True, doc_md=doc, **arguments) as dag:
        build = BuildExchangeOperator(
            task_id="build", flow=flow, mode="{{ params.mode }}", entities="{{ params.entities }}",
            dry_run="{{ params.dry_run }}",
        )
        publish = PublishBatchOperator(task_id="publish", batch=build.output, pool=settings.ftp_pool(flow))
        ConfirmBatchOperator(task_id="confirm", batch=build.output, published=publish.output)
    return dag


def prices_stock_dag(dag_id: str = "prices_stock_export") -> DAG:
    """Prices (base, promotions, customer-group prices) and stock, hourly by default."""
    return _exchange_dag("prices_stock", dag_id, __doc__)


def order_status_dag(dag_id: str = "order_status_export") -> DAG:
    """Order status changes with tracking, and invoice PDFs, hourly by default."""
    return _exchange_dag("order_status", dag_id, __doc__)
