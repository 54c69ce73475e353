"""The customers' build: customers and their addresses into the outbox.

Publish and confirm are the batch's (:mod:`passerelle.operators.batch`), as for the catalog.
"""

from __future__ import annotations

from typing import Any

from passerelle.operators.batch import BuildBatchOperator
from passerelle.operators.common import run_key


class BuildCustomersOperator(BuildBatchOperator):
    """Compute the customers' delta (or full send) and write their files to the outbox.

    :param flow: the flow's name (templated; default ``customers``).
    :param mode: ``delta``, ``new`` (only rows never sent) or ``full`` (templated; the first run is always full).
    :param entities: among customer, customer_address (templated; a list or a comma-separated
        string; empty: both).
    :param dry_run: compute and show what would be sent, upload nothing (templated).
    :param erp_conn_id: the back office's Postgres connection; default ``shop.erp_conn_id``.
    :param config_path: configuration file; default ``PASSERELLE_CONFIG`` or the project's.

    The catalog's builder cannot serve as it is: it reads the catalog's selection rule and adds
    the photos' URLs. The files are the shop's (``shop.dialect``); a shop without a customer
    import (WooCommerce) gets the generic files, said in the log.
    """

    def __init__(self, *, flow: str = "customers", **kwargs) -> None:
        super().__init__(flow=flow, **kwargs)

    def execute(self, context: Any) -> dict:
        from passerelle.core.dialects import dialect
        from passerelle.core.differ import customer_entities
        from passerelle.core.export import build_catalog

        names, dry = self.checked_arguments()
        shop = self.settings.shop
        shop_dialect = dialect(shop.dialect, self.settings)
        note = getattr(shop_dialect, "customers_note", None)
        if note:
            self.log.info("%s", note)
        batch, files = build_catalog(
            self.erp,
            flow=self.flow,
            run_key=run_key(context),
            dag_run_id=context["run_id"],
            entities=customer_entities(names),
            dialect=shop_dialect,
            mode=self.mode,
            dry_run=dry,
            rows_per_file=shop.rows_per_file,
        )
        self.erp.commit()
        self.log_counts(batch.counts)
        return {**batch.as_xcom(), "files": self.log_files(files)}


__all__ = ["BuildCustomersOperator"]
