"""Inbound files from the shop: generic orders and customers CSV, and the shops' own orders
exports (Shopify's "Export orders", WooCommerce's through Advanced Order Export, PrestaShop's
through its SQL Manager).

Pure and vectorised: bytes in, DataFrames out, no database and no Airflow. The format is
described in docs/formats/inbound.md. In short:

* :func:`read_inbound` decodes a file (UTF-8 or cp1252, declared or detected; a row holding
  undecodable bytes is rejected alone), finds its delimiter and decimal mark, recognises its kind
  from the header, checks every field with whole-column operations and returns a
  :class:`ParsedFile`: one frame per target table (orders, lines, payments, customers,
  addresses), shaped for COPY into staging tables, plus the rejects.
* A rejected row takes its whole order with it ("order has a rejected line N"): an order is
  never integrated half. Rejects carry file, physical line (header is line 1), field, value,
  reason and the raw text of the row, for the quarantine and the shop's error folder.
* :func:`reject_orders` lets a later check (the integration's, which knows the back office)
  reject orders the same way; :func:`rejects_csv` writes the rejects for a spreadsheet
  (formulas neutralised).

Modules: :mod:`.reading` (decoding, dialect, rows, kind), :mod:`.fields` (field parsers),
:mod:`.problems` (row problems and rejects), :mod:`.frames` (output frames), :mod:`.orders`
with one module per orders format (:mod:`.generic_orders`, :mod:`.shopify`, :mod:`.woocommerce`,
:mod:`.prestashop`), :mod:`.customers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from passerelle.core.inbound.customers import GENERIC_CUSTOMER_COLUMNS, _parse_customers
from passerelle.core.inbound.generic_orders import GENERIC_ORDER_COLUMNS, GENERIC_ORDER_REQUIRED
from passerelle.core.inbound.model import (
    ADDRESS_COLUMNS,
    ADDRESS_FIELDS,
    ADDRESS_KINDS,
    CUSTOMER_COLUMNS,
    CUSTOMERS,
    KINDS,
    LINE_COLUMNS,
    NUMBER_PREFIX,
    ORDER_COLUMNS,
    ORDERS,
    OWN_COLUMNS,
    PAYMENT_COLUMNS,
    PRESTASHOP_ORDERS,
    REJECT_COLUMNS,
    REJECT_CSV_COLUMNS,
    SHOPIFY_ORDERS,
    STATUSES,
    WOOCOMMERCE_ORDERS,
    InboundError,
    ParsedFile,
)
from passerelle.core.inbound.orders import _parse_orders
from passerelle.core.inbound.problems import order_id_field, reject_orders, rejects_csv, sku_field
from passerelle.core.inbound.reading import (
    _Context,
    _declared_options,
    _decode,
    _detect_decimal,
    _detect_kind,
    _parse_dialect_line,
    _read_table,
    _shown,
    _split_dialect_line,
)
from passerelle.core.inbound.shopify import SHOPIFY_REQUIRED, SHOPIFY_STATUSES

__all__ = [
    "ADDRESS_COLUMNS",
    "ADDRESS_FIELDS",
    "ADDRESS_KINDS",
    "CUSTOMER_COLUMNS",
    "CUSTOMERS",
    "GENERIC_CUSTOMER_COLUMNS",
    "GENERIC_ORDER_COLUMNS",
    "GENERIC_ORDER_REQUIRED",
    "KINDS",
    "LINE_COLUMNS",
    "NUMBER_PREFIX",
    "ORDER_COLUMNS",
    "ORDERS",
    "OWN_COLUMNS",
    "PAYMENT_COLUMNS",
    "PRESTASHOP_ORDERS",
    "REJECT_COLUMNS",
    "REJECT_CSV_COLUMNS",
    "SHOPIFY_ORDERS",
    "SHOPIFY_REQUIRED",
    "SHOPIFY_STATUSES",
    "STATUSES",
    "WOOCOMMERCE_ORDERS",
    "InboundError",
    "ParsedFile",
    "order_id_field",
    "read_inbound",
    "reject_orders",
    "rejects_csv",
    "sku_field",
]


def read_inbound(name: str, data: bytes, *, declared: Mapping[str, Any] | None = None) -> ParsedFile:
    """Parse one file dropped by the shop.

    :param name: the file's name (only used in messages and rejects, never as a path).
    :param data: the file's bytes.
    :param declared: dialect and context set by configuration, all optional: ``encoding``
        (``utf-8``, ``cp1252``...), ``delimiter`` (``,`` ``;`` ``tab`` ``|``), ``decimal``
        (``.`` or ``,``), ``kind`` (``orders``, ``customers``, ``shopify_orders``, ``woocommerce_orders``,
        ``prestashop_orders``), ``timezone``
        of dates written without offset (default ``Europe/Paris``), ``currency`` when the file
        has none (default ``EUR``), ``taxes_included`` for Shopify prices (default: detected per
        order). A ``#passerelle key=value ...`` first line in the file overrides these.
    :raises InboundError: when the file as a whole cannot be read; row problems become rejects.
        Whatever the bytes, nothing else is raised (but MemoryError): an error nobody foresaw
        becomes an InboundError naming the file, so that one file never stops the others.
    """
    try:
        return _read(name, data, declared)
    except (InboundError, MemoryError):
        raise
    except Exception as exc:  # a reading bug or a byte sequence nobody foresaw: this file only
        raise InboundError(
            f"{name}: cannot be read: {type(exc).__name__}: {_shown(str(exc))[:300]}; "
            "the file is refused whole (see docs/formats/inbound.md)"
        ) from exc


def _read(name: str, data: bytes, declared: Mapping[str, Any] | None) -> ParsedFile:
    opts = _declared_options(name, declared)
    body, comment, first_line = _split_dialect_line(data)
    if comment:
        opts.update(_parse_dialect_line(name, comment))
    text, encoding = _decode(name, body, opts.get("encoding"))
    table = _read_table(name, text, first_line, opts.get("delimiter"))
    kind = opts.get("kind") or _detect_kind(name, table.header)
    if kind not in KINDS:
        raise InboundError(f"{name}: unknown kind {kind!r}; expected one of {list(KINDS)}")
    decimal = opts.get("decimal") or _detect_decimal(table, kind)
    ctx = _Context(
        name=name,
        table=table,
        decimal=decimal,
        timezone=opts.get("timezone", "Europe/Paris"),
        currency=opts.get("currency", "EUR"),
        taxes_included=opts.get("taxes_included"),
    )
    if kind == CUSTOMERS:
        frames = _parse_customers(ctx)
    else:
        frames = _parse_orders(ctx, kind)
    return ParsedFile(
        name=name,
        kind=kind,
        encoding=encoding,
        delimiter=table.delimiter,
        decimal=decimal,
        header=table.header_text,
        rows_read=len(table.cells),
        raw=table.raw_by_line,
        **frames,
    )
