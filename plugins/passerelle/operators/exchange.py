"""The hourly exchanges' build: prices and stock, order statuses and invoices into the outbox.

Publish and confirm are the batch's (:mod:`passerelle.operators.batch`).
"""

from __future__ import annotations

from typing import Any

from passerelle.operators.batch import BuildBatchOperator
from passerelle.operators.common import run_day, run_key

#: The flows this operator builds.
FLOWS = ("prices_stock", "order_status")


class BuildExchangeOperator(BuildBatchOperator):
    """Compute an exchange flow's delta (or full send) and write its files to the outbox.

    :param flow: ``prices_stock`` or ``order_status`` (templated).
    :param mode: ``delta``, ``new`` (only rows never sent) or ``full`` (templated; the first run is always full).
    :param entities: run-form entity names such as ``["price", "stock"]`` (templated; a list or a
        comma-separated string; empty: all).
    :param dry_run: compute and show what would be sent, upload nothing (templated).
    :param erp_conn_id: the back office's Postgres connection; default ``shop.erp_conn_id``.
    :param config_path: configuration file; default ``PASSERELLE_CONFIG`` or the project's.
    """

    FLOWS = FLOWS

    def execute(self, context: Any) -> dict:
        from passerelle.core.dialects import exchange_dialect
        from passerelle.core.exchange import (
            build_exchange,
            exchange_settings,
            order_status_entities,
            prices_stock_entities,
        )

        if self.flow not in FLOWS:
            raise ValueError(f"flow must be one of {FLOWS}, got {self.flow!r}")
        names, dry = self.checked_arguments()
        settings = self.settings
        day = run_day(context, settings.shop.timezone)
        dialect = exchange_dialect(settings.shop.dialect, settings, as_of=day)
        if self.flow == "prices_stock":
            entities = prices_stock_entities(
                settings.catalog.selection_rule,
                variant_display=settings.stock.variant_display,
                filter_variants=dialect.filters_variant_display,
                names=names,
            )
        else:
            entities = order_status_entities(names)
        batch, files = build_exchange(
            self.erp,
            flow=self.flow,
            run_key=run_key(context),
            dag_run_id=context["run_id"],
            entities=entities,
            dialect=dialect,
            settings=exchange_settings(settings, day),
            mode=self.mode,
            dry_run=dry,
            rows_per_file=settings.shop.rows_per_file,
        )
        self.erp.commit()
        self.log_counts(batch.counts)
        self.log.info(
            "%d files in the outbox (%d bytes)%s",
            len(files),
            sum(f["bytes"] for f in files),
            " (reused: same logical date)" if batch.reused else "",
        )
        return {**batch.as_xcom(), "files": [{k: f[k] for k in ("name", "rows", "bytes")} for f in files]}


__all__ = ["FLOWS", "BuildExchangeOperator"]
