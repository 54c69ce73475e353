"""The catalog's build: families, brands, suppliers, articles, variants into the outbox.

Publish and confirm are the batch's (:mod:`passerelle.operators.batch`); the photos beside it
are :mod:`passerelle.operators.images`.
"""

from __future__ import annotations

from typing import Any

from passerelle.operators.batch import BuildBatchOperator
from passerelle.operators.common import run_day, run_key


class BuildCatalogOperator(BuildBatchOperator):
    """Compute the catalog's delta (or full send) and write its files to the outbox.

    :param flow: the flow's name (templated; default ``catalog``).
    :param mode: ``delta``, ``new`` (only rows never sent) or ``full`` (templated; the first run is always full).
    :param entities: among family, brand, supplier, article, variant (templated; a list or a
        comma-separated string; empty: ``catalog.entities``).
    :param dry_run: compute and show what would be sent, upload nothing (templated).
    :param erp_conn_id: the back office's Postgres connection; default ``shop.erp_conn_id``.
    :param config_path: configuration file; default ``PASSERELLE_CONFIG`` or the project's.
    """

    def __init__(self, *, flow: str = "catalog", **kwargs) -> None:
        super().__init__(flow=flow, **kwargs)

    def execute(self, context: Any) -> dict:
        from passerelle.core.dialects import dialect
        from passerelle.core.differ import catalog_entities
        from passerelle.core.exchange import catalog_settings
        from passerelle.core.export import build_catalog
        from passerelle.core.photos import image_url_enricher

        names, dry = self.checked_arguments()
        settings = self.settings
        entities = catalog_entities(settings.catalog.selection_rule, names or settings.catalog.entities)
        batch, files = build_catalog(
            self.erp,
            flow=self.flow,
            run_key=run_key(context),
            dag_run_id=context["run_id"],
            entities=entities,
            dialect=dialect(settings.shop.dialect, settings, as_of=run_day(context, settings.shop.timezone)),
            mode=self.mode,
            dry_run=dry,
            rows_per_file=settings.shop.rows_per_file,
            enrich=image_url_enricher(settings),
            # The quantities follow the hourly stock file's rule, safety stock included; the
            # promotions the articles carry are those of the run's day.
            settings=catalog_settings(settings, run_day(context, settings.shop.timezone)),
        )
        self.erp.commit()
        self.log_counts(batch.counts)
        return {**batch.as_xcom(), "files": self.log_files(files)}


__all__ = ["BuildCatalogOperator"]
