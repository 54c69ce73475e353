"""Generic orders file: one row per order line, order columns repeated (or left empty) on each
line; amounts excl. VAT, VAT rate per line (docs/formats/inbound.md, "Generic orders").

A format module gives :mod:`passerelle.core.inbound.orders` its columns (:func:`order_rows`),
the values it requires (:data:`REQUIRED`), its amount columns (:data:`MONEY`) and its
statuses, payment flag and amounts (:func:`typed`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from passerelle.core.inbound.fields import _filled, _parse_bool, _parse_rate, _per_order, no_refunded_lines
from passerelle.core.inbound.model import _ADDR_CANON, _STATUS_ALIASES, STATUSES, InboundError
from passerelle.core.inbound.reading import _Context, _require_columns, _text

# Generic orders: canonical name -> column of the file (same names). Order-level first.
_GENERIC_ORDER_LEVEL = [
    "shop_order_id",
    "order_date",
    "status",
    "shop_customer_id",
    "email",
    "phone",
    "currency",
    "shipping_method",
    "shipping_amount",
    "shipping_vat_rate",
    "order_discount",
    "discount_code",
    "payment_method",
    "payment_amount",
    "payment_transaction_id",
    "payment_paid",
    "paid_at",
    "refunded_amount",
    "note",
    *_ADDR_CANON,
]
_GENERIC_LINE_LEVEL = ["line_number", "sku", "label", "quantity", "unit_price", "vat_rate", "line_discount"]
_GENERIC_RENAMES = {
    "shipping_amount": "shipping_excl_vat",
    "order_discount": "order_discount_excl_vat",
    "unit_price": "unit_price_excl_vat",
    "line_discount": "line_discount_excl_vat",
}
GENERIC_ORDER_COLUMNS = [_GENERIC_RENAMES.get(c, c) for c in _GENERIC_ORDER_LEVEL + _GENERIC_LINE_LEVEL]
GENERIC_ORDER_REQUIRED = ["shop_order_id", "order_date", "status", "sku", "quantity", "unit_price_excl_vat", "vat_rate"]
#: Values every row needs, beyond those of every orders file.
REQUIRED = ["vat_rate"]
#: Every line names its article: a generic file is written from the shop's own references.
SKU_REQUIRED = True
#: Amount columns, beyond those of every orders file.
MONEY: list[str] = ["refunded_amount"]
#: Amounts that may be below 0 (none: every amount here is refused when negative).
SIGNED: list[str] = []
#: Quantities are those sold: a 0 is refused.
refunded_lines = no_refunded_lines
#: How far the stated payment may be from the computed total (cents rounded line by line).
TOLERANCE = 0.015


def order_rows(ctx: _Context) -> tuple[dict[str, np.ndarray], dict[str, str], list[str], set[str]]:
    """Canonical text columns (object arrays of str), the file's own name of each, which are
    order-level, and which the file lacks (all empty)."""
    _require_columns(ctx, GENERIC_ORDER_REQUIRED, "generic orders")
    if "email" not in ctx.table.lookup and "shop_customer_id" not in ctx.table.lookup:
        raise InboundError(f"{ctx.name}: generic orders file needs an email or a shop_customer_id column")
    src = {c: _GENERIC_RENAMES.get(c, c) for c in _GENERIC_ORDER_LEVEL + _GENERIC_LINE_LEVEL}
    rows = {c: _text(ctx, s) for c, s in src.items()}
    absent = {c for c, s in src.items() if s.lower() not in ctx.table.lookup}
    return rows, src, list(_GENERIC_ORDER_LEVEL), absent


def typed(
    ctx: _Context,
    rows: dict[str, np.ndarray],
    add: Callable[..., None],
    codes: np.ndarray,
    qty: pd.Series,
    money: dict[str, pd.Series],
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Status, paid flag and amounts of each row; problems reported through ``add(mask, column,
    reason)``. ``codes`` numbers the order of each row."""
    which, distinct = pd.factorize(rows["status"])
    distinct = [_STATUS_ALIASES.get(v.lower(), v.lower()) for v in distinct]
    status = np.array(distinct, dtype=object)[which]
    unknown = (rows["status"] != "") & ~np.array([v in STATUSES for v in distinct], dtype=bool)[which]
    add(unknown, "status", f"unknown status: expected one of {', '.join(STATUSES)}")
    paid, bad = _parse_bool(rows["payment_paid"])
    add(bad, "payment_paid", "expected 1 or 0 (paid or not)")
    paid = paid.to_numpy() | ((rows["payment_paid"] == "") & (status == "paid"))
    vat, bad, out = _parse_rate(rows["vat_rate"], ctx.decimal)
    svat, sbad, sout = _parse_rate(rows["shipping_vat_rate"], ctx.decimal)
    for col, b, o in (("vat_rate", bad, out), ("shipping_vat_rate", sbad, sout)):
        add(b, col, "not a VAT rate: expected a percentage such as 20 or 5" + (",5" if ctx.decimal == "," else ".5"))
        add(o & ~b, col, "VAT rate out of range: write a percentage (20, not 0.2)")
    amounts = _generic_amounts(codes, qty, money, vat, svat)
    # Orders with an amount, quantity or rate that cannot be read are refused for it: not checked.
    unread = np.isnan(qty.to_numpy()) | np.isnan(money["unit_price"].to_numpy()) | np.isnan(vat.to_numpy())
    for col, values in (
        ("line_discount", money["line_discount"]),
        ("shipping_amount", money["shipping_amount"]),
        ("order_discount", money["order_discount"]),
        ("shipping_vat_rate", svat),
    ):
        unread |= (rows[col] != "") & np.isnan(values.to_numpy())
    total = np.where(_per_order(unread.astype("float64"), codes, "sum") > 0, np.nan, amounts["total_incl_vat"])
    _check_payment(add, money["payment_amount"].to_numpy(), total)
    return status, paid, amounts


def _check_payment(add: Callable[..., None], stated: np.ndarray, total: np.ndarray) -> None:
    """The order's stated ``payment_amount`` (its only stated total) must be what its lines, shipping
    and discount add up to, or the order is refused with both figures: a lost column (shipping) or
    a lost line would otherwise integrate an order that does not add up to what the customer paid.
    Said on the rows that write the amount (``add`` keeps those); ``total`` is the order's, on each
    of its rows (NaN: not checked)."""
    with np.errstate(invalid="ignore"):
        off = ~np.isnan(stated) & ~np.isnan(total) & (np.abs(stated - total) > TOLERANCE)
    if off.any():
        why = np.full(len(off), "", dtype=object)
        why[off] = [
            f"payment_amount {stated[i]:.2f} but the order works out at {total[i]:.2f} (lines, shipping and "
            "discount, incl. VAT): a line or a column is missing or altered; export the order again"
            for i in np.flatnonzero(off)
        ]
        add(off, "payment_amount", why)


@np.errstate(all="ignore")  # as with Series: NaN and inf are results, not warnings
def _generic_amounts(
    key: np.ndarray, qty: pd.Series, money: dict[str, pd.Series], vat: pd.Series, svat: pd.Series
) -> dict[str, np.ndarray]:
    """Excl. VAT amounts as given; incl. VAT computed; totals per order (an order-level discount
    is spread over VAT rates like the lines). ``key`` numbers the order of each row.

    The same arithmetic as on Series, on their numpy arrays (much less overhead)."""
    qty, vat, svat = qty.to_numpy(), vat.to_numpy(), svat.to_numpy()
    price = money["unit_price"].to_numpy()
    disc = _filled(money["line_discount"].to_numpy(), 0.0)
    net = qty * price - disc
    net_incl = net * (1 + vat / 100)
    lines_excl = _per_order(net, key, "sum")
    lines_incl = _per_order(net_incl, key, "sum")
    ship = _filled(money["shipping_amount"].to_numpy(), 0.0)
    ship_incl = ship * (1 + _filled(svat, _per_order(vat, key, "max")) / 100)
    odisc = _filled(money["order_discount"].to_numpy(), 0.0)
    odisc_incl = odisc * _filled(lines_incl / np.where(lines_excl != 0, lines_excl, np.nan), 1.0)
    total_excl = lines_excl + ship - odisc
    total_incl = lines_incl + ship_incl - odisc_incl
    return {
        "unit_price_excl_vat": price.round(4),
        "unit_price_incl_vat": (price * (1 + vat / 100)).round(4),
        "vat_rate": vat,
        "discount_excl_vat": disc.round(2),
        "discount_incl_vat": (disc * (1 + vat / 100)).round(2),
        "shipping_excl_vat": ship.round(2),
        "shipping_incl_vat": ship_incl.round(2),
        "shipping_vat_rate": svat,
        "order_discount_excl_vat": odisc.round(2),
        "order_discount_incl_vat": odisc_incl.round(2),
        "total_excl_vat": total_excl.round(2),
        "total_incl_vat": total_incl.round(2),
        "taxes_total": (total_incl - total_excl).round(2),
        "payment_amount": _filled(money["payment_amount"].to_numpy(), total_incl).round(2),
    }
