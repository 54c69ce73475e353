"""The hourly exchanges, back office to shop: prices and stock; order statuses and invoices.

Same machinery as the catalog: the differ (:func:`passerelle.core.differ.build_batch`) computes
each entity's delta set-wise against the snapshot, :func:`passerelle.core.export.write_files`
writes the files into the outbox, and the catalog's publisher and confirmer send them. What is
specific here:

- run settings reach the views as transaction-local options (:func:`exchange_settings`): the
  as-of date for promotions, the safety stock (:func:`stock_settings`, which the catalog's
  exporter sets too, so that both flows send the same stock), the shop's timezone;
- ``stock.variant_display: in_stock`` leaves out-of-stock variants out of the selection
  (where the dialect hides variants that way, see ``filters_variant_display``);
- some removals are forgotten without a file (``silent_removals`` of the dialect);
- each invoice of the batch gets its PDF in the outbox (back-office bytes or rendered), before
  the index file that names it.

Run-form entity names are the flows' words (``price``, ``stock``; ``order_status``,
``tracking``, ``invoice``), each standing for one or more views (:data:`FORM_ENTITIES`):
``tracking`` is the status rows and the parcels (``delivery``, one per delivery note with lines).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pandas as pd
import psycopg

from passerelle.config import Settings, StockSection
from passerelle.core.dialects.generic import GenericExchangeDialect
from passerelle.core.dialects.prestashop import PrestaShopExchangeDialect
from passerelle.core.differ import VIEW_SCHEMA, Batch, Entity, build_batch
from passerelle.core.export import (
    _record_rejects,
    _store,
    apply_settings,
    builder_transaction,
    outbox_files,
    write_files,
)
from passerelle.core.invoices import InvoiceError, invoice_pdf, load_invoices, load_seller, pdf_name

log = logging.getLogger(__name__)

ExchangeDialect = GenericExchangeDialect | PrestaShopExchangeDialect

#: What each name of a flow's run form (and of ``flows.<flow>.entities``) stands for.
FORM_ENTITIES: dict[str, dict[str, tuple[str, ...]]] = {
    "prices_stock": {
        "price": ("price", "specific_price"),
        "stock": ("stock", "variant_stock"),
    },
    "order_status": {
        "order_status": ("order_status",),
        # carrier and tracking number ride on the "shipped" rows, and on each parcel
        "tracking": ("order_status", "delivery"),
        "invoice": ("invoice",),
    },
}

#: Invoices whose PDF is made (and kept in memory) at a time.
INVOICE_CHUNK = 100

#: Suffix hiding removed rows from the file writer while their batch is written (see below).
_HELD = "#held"


@dataclass(frozen=True)
class ExchangeEntity(Entity):
    """An exported entity read from a view that may hold other entities' rows too
    (``stock`` and ``variant_stock`` are the two levels of the view ``passerelle_src.stock``)."""

    source: str = ""

    @property
    def view(self) -> str:
        return f"{VIEW_SCHEMA}.{self.source or self.name}"


def expand_entities(flow: str, names: Iterable[str] | None) -> list[str]:
    """The views' entity names for run-form names (default: all of the flow's), in import order."""
    groups = FORM_ENTITIES[flow]
    wanted: list[str] = []
    for name in names or groups:
        if name in groups:
            wanted += groups[name]
        elif any(name in members for members in groups.values()):
            wanted.append(name)
        else:
            known = sorted(set(groups) | {m for members in groups.values() for m in members})
            raise ValueError(f"unknown entity {name!r} for flow {flow}; expected some of {known}")
    return list(dict.fromkeys(wanted))


def _selected(column: str, selection_rule: str) -> str:
    """Rows whose article the shop sells: the catalog's selection (web flag and rule)."""
    return f"EXISTS (SELECT 1 FROM {VIEW_SCHEMA}.article a WHERE a.key = v.{column} AND a.web AND ({selection_rule}))"


def prices_stock_entities(
    selection_rule: str,
    *,
    variant_display: str = "all",
    filter_variants: bool = True,
    names: Iterable[str] | None = None,
) -> list[ExchangeEntity]:
    """Entities of the ``prices_stock`` flow, for the articles the catalog sends.

    :param variant_display: ``all`` or ``in_stock`` (``stock.variant_display``).
    :param filter_variants: apply ``in_stock`` by leaving out-of-stock variants out (the
        dialect's ``filters_variant_display``).
    """
    if variant_display not in ("all", "in_stock"):
        raise ValueError(f"stock.variant_display is {variant_display!r}; expected 'all' or 'in_stock'")
    variant_rule = f"v.level = 'variant' AND {_selected('article_reference', selection_rule)}"
    if variant_display == "in_stock" and filter_variants:
        variant_rule += " AND v.available_qty > 0"
    entities = [
        ExchangeEntity("price", where=_selected("reference", selection_rule)),
        ExchangeEntity(
            "specific_price", where=_selected("article_reference", selection_rule), label="article_reference"
        ),
        ExchangeEntity(
            "stock", source="stock", where=f"v.level = 'article' AND {_selected('article_reference', selection_rule)}"
        ),
        ExchangeEntity("variant_stock", source="stock", where=variant_rule, label="article_reference"),
    ]
    wanted = expand_entities("prices_stock", names)
    return [e for e in entities if e.name in wanted]


def order_status_entities(names: Iterable[str] | None = None) -> list[ExchangeEntity]:
    """Entities of the ``order_status`` flow: status changes (with tracking), parcels (the delivery
    notes with their lines, view ``passerelle_src.delivery``), invoices."""
    entities = [
        ExchangeEntity("order_status", label="order_number"),
        ExchangeEntity("delivery", label="order_number"),
        ExchangeEntity("invoice", label="order_number"),
    ]
    wanted = expand_entities("order_status", names)
    return [e for e in entities if e.name in wanted]


def safety_stock(settings: Settings | StockSection) -> Decimal:
    """``stock.safety_stock`` (checked >= 0 by the configuration model) as a Decimal."""
    section = settings if isinstance(settings, StockSection) else settings.stock
    return Decimal(str(section.safety_stock))


def stock_settings(settings: Settings | StockSection) -> dict[str, str]:
    """The option the stock the shop sees depends on (``passerelle_src.shop_stock``): set by the
    catalog's exporter and the hourly stock file's alike, so both send the same quantities."""
    return {"passerelle.safety_stock": str(safety_stock(settings))}


def catalog_settings(settings: Settings, as_of: date) -> dict[str, str]:
    """The options the catalog's views read: the stock rule (:func:`stock_settings`) and the run's
    day (``passerelle.as_of``: the article's running promotion, passerelle_src.article_promotion),
    so that a rerun of a logical date sends the same rows whatever day it runs."""
    return {"passerelle.as_of": as_of.isoformat(), **stock_settings(settings)}


def exchange_settings(settings: Settings, as_of: date) -> dict[str, str]:
    """The transaction-local options the exchange views read (include/sql/views/20_exchange.sql)."""
    return {
        "passerelle.as_of": as_of.isoformat(),
        **stock_settings(settings),
        "passerelle.timezone": settings.shop.timezone,
    }


def _hold_removals(conn: psycopg.Connection, batch_id: int, names: Sequence[str], *, hold: bool) -> int:
    """Hide (or show again) the removed rows of *names* from the file writer.

    They stay in the batch, so the snapshot forgets them on confirmation (a row coming back is
    sent as new), but no file tells the shop: the rename keeps them out of write_files' reach.
    """
    if not names:
        return 0
    if hold:
        cur = conn.execute(
            "UPDATE passerelle.batch_row SET entity = entity || %s WHERE batch_id = %s AND op = 'D' "
            "AND entity = ANY(%s)",
            (_HELD, batch_id, list(names)),
        )
    else:
        cur = conn.execute(
            "UPDATE passerelle.batch_row SET entity = left(entity, -%s) WHERE batch_id = %s AND entity LIKE %s",
            (len(_HELD), batch_id, f"%{_HELD}"),
        )
    return cur.rowcount


def write_invoice_pdfs(conn: psycopg.Connection, batch: Batch, *, chunk_size: int = INVOICE_CHUNK) -> dict[str, int]:
    """Put the PDF of every invoice of the batch into the outbox; return counts by source.

    Invoices are read a chunk at a time through a server-side cursor (memory stays flat). An
    invoice that cannot be sent (a stored "PDF" that is not one, no lines) is recorded in
    ``passerelle.outbound_reject`` and left out of the batch, to be tried again next run.
    """
    counts = {"pdf_back_office": 0, "pdf_rendered": 0, "pdf_rejected": 0}
    seller = None
    refused: list[dict[str, str]] = []
    with conn.cursor(name=f"passerelle_invoices_{batch.id}") as keys:
        keys.execute(
            "SELECT key FROM passerelle.batch_row WHERE batch_id = %s AND entity = 'invoice' "
            "AND op <> 'D' ORDER BY key",
            (batch.id,),
        )
        while chunk := [row[0] for row in keys.fetchmany(chunk_size)]:
            if seller is None:
                seller = load_seller(conn)
            for invoice in load_invoices(conn, chunk):
                try:
                    content, source = invoice_pdf(invoice, seller)
                except InvoiceError as exc:
                    refused.append({"key": invoice.number, "field": "pdf", "value": "", "reason": str(exc)})
                    continue
                _store(conn, batch.id, "invoice", pdf_name(invoice.number), content, rows=1)
                counts[f"pdf_{source}"] += 1
    if refused:
        _record_rejects(conn, batch, "invoice", pd.DataFrame(refused))
        counts["pdf_rejected"] = len(refused)
    return counts


def _writers(
    entities: Sequence[ExchangeEntity], dialect: ExchangeDialect
) -> list[tuple[ExchangeDialect, list[ExchangeEntity]]]:
    """Which dialect writes which entities: the shop's, and for the entities it has no file for
    (WooCommerce's and Shopify's importers take no order status or invoice) the generic exchange
    files (docs/formats/exchange.md), for an app or script on the shop's side, as PrestaShop's
    order states are. Import order is kept within each group."""
    own = [e for e in entities if e.name in dialect.stems]
    others = [e for e in entities if e.name not in dialect.stems]
    if not others:
        return [(dialect, own)]
    log.info("%s has no %s file: written in the generic exchange format", dialect.name, [e.name for e in others])
    fallback = GenericExchangeDialect(dialect.settings, as_of=dialect.as_of)
    return [(dialect, own), (fallback, others)] if own else [(fallback, others)]


def build_exchange(
    conn: psycopg.Connection,
    *,
    flow: str,
    run_key: str,
    entities: Sequence[ExchangeEntity],
    dialect: ExchangeDialect,
    settings: dict[str, str],
    mode: str = "delta",
    dry_run: bool = False,
    rows_per_file: int = 50_000,
    dag_run_id: str | None = None,
) -> tuple[Batch, list[dict]]:
    """Compute the batch of an exchange flow and write its files, in one REPEATABLE READ
    transaction (what the snapshot records is exactly what the files hold). *dag_run_id*: the
    Airflow run building it, kept with the batch (:func:`~passerelle.core.differ.build_batch`).

    A batch already built for this run key is returned with its stored files, untouched.
    """
    with builder_transaction(conn, flow, dry_run=dry_run):
        apply_settings(conn, settings)
        batch = build_batch(
            conn, flow=flow, run_key=run_key, entities=entities, mode=mode, dry_run=dry_run, dag_run_id=dag_run_id
        )
        if batch.reused:
            return batch, outbox_files(conn, batch.id)
        writers = _writers(entities, dialect)
        silent = [e.name for d, group in writers for e in group if e.name in d.silent_removals]
        held = _hold_removals(conn, batch.id, silent, hold=True)
        pdfs = write_invoice_pdfs(conn, batch) if any(e.name == "invoice" for e in entities) else None
        files = [f for d, group in writers for f in write_files(conn, batch, group, d, rows_per_file=rows_per_file)]
        _hold_removals(conn, batch.id, silent, hold=False)
        if held:
            log.info("%d removed rows of %s forgotten without a file (the shop takes no removal of them)", held, silent)
        if pdfs is not None:
            invoice_counts = batch.counts.setdefault("invoice", {})
            invoice_counts.update({k: v for k, v in pdfs.items() if k != "pdf_rejected"})
            invoice_counts["rejected"] = invoice_counts.get("rejected", 0) + pdfs["pdf_rejected"]
            conn.execute("UPDATE passerelle.batch SET counts = %s WHERE id = %s", (json.dumps(batch.counts), batch.id))
    return batch, files
