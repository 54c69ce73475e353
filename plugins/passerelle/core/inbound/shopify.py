"""Shopify's orders export (admin -> Orders -> Export): one row per order line, order columns
on the first line only; prices with or without taxes, VAT rates from the order's tax lines
(docs/formats/inbound.md, "Shopify orders export").

Same interface as :mod:`passerelle.core.inbound.generic_orders`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from passerelle.core.inbound.fields import (
    _DATE_HELP,
    _each_distinct,
    _filled,
    _on_unique,
    _parse_datetime,
    _per_order,
    no_refunded_lines,
)
from passerelle.core.inbound.reading import _Context, _require_columns, _source, _text

#: Shopify's Financial Status to ours. A non-empty ``Cancelled at`` makes an order cancelled.
SHOPIFY_STATUSES = {
    "pending": "pending",
    "partially_paid": "pending",
    "authorized": "validated",
    "paid": "paid",
    "partially_refunded": "paid",
    "refunded": "refunded",
    "voided": "cancelled",
    "expired": "cancelled",
}

# Shopify orders export: canonical name -> header (alternatives: first present wins).
_SHOPIFY_ORDER_LEVEL: dict[str, tuple[str, ...]] = {
    "shop_order_id": ("Name",),
    "order_date": ("Created at",),
    "status": ("Financial Status",),
    "email": ("Email",),
    "phone": ("Phone",),
    "currency": ("Currency",),
    "shipping_method": ("Shipping Method",),
    "shipping_amount": ("Shipping",),
    "order_discount": ("Discount Amount",),
    "discount_code": ("Discount Code",),
    "payment_method": ("Payment Method",),
    "payment_transaction_id": ("Payment Reference", "Payment References", "Payment ID"),
    "paid_at": ("Paid at",),
    "cancelled_at": ("Cancelled at",),
    "note": ("Notes",),
    "subtotal": ("Subtotal",),
    "taxes": ("Taxes",),
    "total": ("Total",),
    "duties": ("Duties",),
    "refunded_amount": ("Refunded Amount",),
    **{f"tax_{i}_name": (f"Tax {i} Name",) for i in range(1, 6)},
    **{f"tax_{i}_value": (f"Tax {i} Value",) for i in range(1, 6)},
    **{
        f"{kind}_{f}": (f"{prefix} {col}",)
        for kind, prefix in (("billing", "Billing"), ("delivery", "Shipping"))
        for f, col in (
            ("name", "Name"),
            ("company", "Company"),
            ("address1", "Address1"),
            ("address2", "Address2"),
            ("postcode", "Zip"),
            ("city", "City"),
            ("region", "Province"),
            ("country", "Country"),
            ("phone", "Phone"),
        )
    },
}
_SHOPIFY_LINE_LEVEL: dict[str, tuple[str, ...]] = {
    "sku": ("Lineitem sku",),
    "label": ("Lineitem name",),
    "quantity": ("Lineitem quantity",),
    "unit_price": ("Lineitem price",),
    "line_discount": ("Lineitem discount",),
    "taxable": ("Lineitem taxable",),
}
SHOPIFY_REQUIRED = ["Name", "Created at", "Financial Status", "Lineitem quantity", "Lineitem price", "Lineitem sku"]
#: Values every row needs, beyond those of every orders file (the VAT rate comes from tax lines).
REQUIRED: list[str] = []
#: Gift cards, custom items and products made in the shop have no SKU: the integration matches
#: them (configured articles, the shop's title against what Passerelle published, a mapping).
SKU_REQUIRED = False
#: Amounts the shop computed and ours may differ by rounding: at most this much.
TOLERANCE = 0.015
#: Amount columns, beyond those of every orders file.
MONEY = ["subtotal", "taxes", "total", "duties", "refunded_amount"] + [f"tax_{i}_value" for i in range(1, 6)]
#: Amounts that may be below 0 (none: every amount here is refused when negative).
SIGNED: list[str] = []
#: Quantities are those sold: a 0 is refused.
refunded_lines = no_refunded_lines


def order_rows(ctx: _Context) -> tuple[dict[str, np.ndarray], dict[str, str], list[str], set[str]]:
    """Canonical text columns (object arrays of str), the file's own name of each, which are
    order-level, and which the file lacks (all empty)."""
    _require_columns(ctx, SHOPIFY_REQUIRED, "Shopify orders export")
    spec = {**_SHOPIFY_ORDER_LEVEL, **_SHOPIFY_LINE_LEVEL}
    src = {c: _source(ctx, *alts) for c, alts in spec.items()}
    rows = {c: _text(ctx, *alts) for c, alts in spec.items()}
    absent = {c for c, alts in spec.items() if not any(a.lower() in ctx.table.lookup for a in alts)}
    for col in ("shop_customer_id", "line_number", "payment_amount", "payment_paid"):  # not in the export
        rows[col] = np.full(len(ctx.table.cells), "", dtype=object)
        src[col] = col
        absent.add(col)
    for col in ("billing_postcode", "delivery_postcode", "billing_phone", "delivery_phone", "phone"):
        # Shopify keeps leading zeros for Excel this way.
        rows[col] = _each_distinct(rows[col], lambda v: v.removeprefix("'"))
    return rows, src, list(_SHOPIFY_ORDER_LEVEL), absent


def typed(
    ctx: _Context,
    rows: dict[str, np.ndarray],
    add: Callable[..., None],
    codes: np.ndarray,
    qty: pd.Series,
    money: dict[str, pd.Series],
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Status (Financial Status, or cancelled when ``Cancelled at`` is set), paid flag and
    amounts of each row; problems reported through ``add(mask, column, reason)``."""
    which, distinct = pd.factorize(rows["status"])
    low = [v.lower() for v in distinct]
    mapped = np.array([SHOPIFY_STATUSES.get(v, "") for v in low], dtype=object)[which]
    add(
        np.array([v != "" and v not in SHOPIFY_STATUSES for v in low], dtype=bool)[which],
        "status",
        f"unknown Financial Status: expected one of {', '.join(SHOPIFY_STATUSES)}",
    )
    cancelled_at, bad = _parse_datetime(rows["cancelled_at"], ctx.timezone)
    add(bad, "cancelled_at", "not a date: " + _DATE_HELP)
    status = np.where(rows["cancelled_at"] == "", mapped, "cancelled")
    paid = np.array([v in ("paid", "partially_refunded", "refunded") for v in low], dtype=bool)[which] | (
        rows["paid_at"] != ""
    )
    amounts = _shopify_amounts(ctx, rows, money, codes, qty)
    _check_totals(rows, add, codes, qty, money, amounts.pop("_included"))
    return status, paid, amounts


def _check_totals(
    rows: dict[str, np.ndarray],
    add: Callable[..., None],
    codes: np.ndarray,
    qty: pd.Series,
    money: dict[str, pd.Series],
    included: pd.Series,
) -> None:
    """Every order must add up to the shop's own figures, or it is refused with both (a file cut
    at a row boundary loses lines but keeps its Subtotal; an edited cell changes one side):

    * Subtotal = sum of quantity x price less the line discounts (or less ``Discount Amount``);
    * Total = Subtotal + Shipping, plus Taxes when prices exclude them;
    * Taxes = the sum of the tax lines (``Tax 1 Value`` ...), when the order has tax lines;
    * a Total without a Subtotal (its column lost) is refused: neither can be checked.

    Problems are said on the order's first row (where Shopify writes Subtotal, Total, Taxes).
    """
    with np.errstate(invalid="ignore"):
        gross = qty.to_numpy() * money["unit_price"].to_numpy()
        net = gross - _filled(money["line_discount"].to_numpy(), 0.0)
        # Orders with an unreadable amount are refused for it already: not checked here.
        unread = _per_order(np.isnan(net).astype("float64"), codes, "sum") > 0
        lines_net = np.where(unread, np.nan, _per_order(net, codes, "sum"))
        lines_gross = _per_order(gross, codes, "sum") - _filled(money["order_discount"].to_numpy(), 0.0)
        subtotal = money["subtotal"].to_numpy()
        off = (
            ~np.isnan(subtotal)
            & ~np.isnan(lines_net)
            & (np.abs(subtotal - lines_net) > TOLERANCE)
            & (np.abs(subtotal - lines_gross) > TOLERANCE)
        )
        _said(
            add,
            off,
            "subtotal",
            lambda i: (
                f"Subtotal {subtotal[i]:.2f} but the order's lines in this file add up "
                f"to {lines_net[i]:.2f} (quantity x price less discounts): a line is missing (file cut?) or altered; "
                "export the order again"
            ),
        )
        ship = _filled(money["shipping_amount"].to_numpy(), 0.0)
        taxes = _filled(money["taxes"].to_numpy(), 0.0)
        total = money["total"].to_numpy()
        expected = subtotal + ship + np.where(included.to_numpy(dtype=bool), 0.0, taxes)
        off = (
            ~np.isnan(total)
            & ~np.isnan(subtotal)
            & (np.abs(total - expected) > TOLERANCE)
            & (np.abs(total - (subtotal + ship + taxes)) > TOLERANCE)
            & (np.abs(total - (subtotal + ship)) > TOLERANCE)
        )
        # Import duties charged at checkout (Shopify Markets, "Duties"): in the Total, and nowhere in
        # the back office's order (no line, no field for them). Refused with that reason: the staff
        # integrate the order by hand, not by exporting it again.
        duties = _filled(money["duties"].to_numpy(), 0.0)
        dutiable = off & (duties > TOLERANCE)
        dutiable &= (np.abs(total - duties - (subtotal + ship)) <= TOLERANCE) | (
            np.abs(total - duties - (subtotal + ship + taxes)) <= TOLERANCE
        )
        _said(
            add,
            dutiable,
            "duties",
            lambda i: (
                f"Duties {duties[i]:.2f}: the order's Total {total[i]:.2f} includes import duties paid at "
                "checkout, which the back office's order has no place for; integrate this order by hand"
            ),
        )
        off &= ~dutiable
        _said(
            add,
            off,
            "total",
            lambda i: (
                f"Total {total[i]:.2f} but Subtotal + Shipping = "
                f"{subtotal[i] + ship[i]:.2f} (prices including taxes), "
                f"+ Taxes = {subtotal[i] + ship[i] + taxes[i]:.2f} "
                "(excluding them): export the order again"
            ),
        )
        # No Subtotal (its column lost, its cell emptied): neither the lines nor whether prices include
        # taxes can be checked (that is told by Total = Subtotal + Shipping): refused, not guessed.
        off = np.isnan(subtotal) & ~np.isnan(total)
        _said(
            add,
            off,
            "total",
            lambda i: (
                f"Total {total[i]:.2f} but no Subtotal (Shopify writes it on the order's "
                f"first row; the order's lines in this file + Shipping = {lines_net[i] + ship[i]:.2f}): a column is "
                "missing or altered; export the order again"
            ),
        )
        values = [money[f"tax_{i}_value"].to_numpy() for i in range(1, 6)]
        has_lines = np.any([~np.isnan(v) for v in values], axis=0)
        stated = np.sum([_filled(v, 0.0) for v in values], axis=0)
        off = has_lines & ~np.isnan(money["taxes"].to_numpy()) & (np.abs(taxes - stated) > TOLERANCE)
        _said(
            add,
            off,
            "taxes",
            lambda i: (
                f"Taxes {taxes[i]:.2f} but the tax lines (Tax 1 Value ...) add up to "
                f"{stated[i]:.2f}: export the order again"
            ),
        )


def _said(add: Callable[..., None], mask: np.ndarray, col: str, reason: Callable[[int], str]) -> None:
    """``add`` a problem on the rows of ``mask``, the reason worked out for those rows only."""
    if mask.any():
        why = np.full(len(mask), "", dtype=object)
        why[mask] = [reason(i) for i in np.flatnonzero(mask)]
        add(mask, col, why)


_RATE_IN_NAME = r"(\d+(?:[.,]\d+)?)\s*%"


@_on_unique
def _tax_rate(names: pd.Series) -> tuple[pd.Series]:
    """The rate written in the names of Shopify's tax lines ("FR TVA 20%" -> 20); NaN if none."""
    return (pd.to_numeric(names.str.extract(_RATE_IN_NAME)[0].str.replace(",", "."), errors="coerce"),)


def _split_name(name: str) -> tuple[str, str]:
    """Shopify's "Billing Name" as first name and the rest."""
    first, _, rest = name.partition(" ")
    return first, rest


def _distinct_per_row(frame: pd.DataFrame) -> pd.Series:
    """``frame.nunique(axis=1)`` for numbers (distinct values of each row, NaN not counted),
    without its row-by-row loop: sort each row, count the values unlike the one before."""
    v = np.sort(frame.to_numpy(dtype="float64"), axis=1)  # NaN last
    new = ~np.isnan(v)
    new[:, 1:] &= v[:, 1:] != v[:, :-1]
    return pd.Series(new.sum(axis=1), index=frame.index)


def _shopify_amounts(
    ctx: _Context, rows: dict[str, np.ndarray], money: dict[str, pd.Series], key: np.ndarray, qty: pd.Series
) -> dict[str, Any]:
    """Shopify amounts to ours: VAT rate from the order's tax lines (``Tax 1 Name`` "TVA 20%"),
    prices excl. VAT from prices incl. VAT when the shop's prices include taxes.

    One rate in the order: taxable lines and shipping get it. Several rates: the rate of each
    line is unknown here (NaN, the back office's article rate applies) and excl. VAT amounts are
    left empty when prices include taxes. Taxes included: declared, else detected per order
    (Total = Subtotal + Shipping, rather than + Taxes).
    """
    rates = []
    for i in range(1, 6):
        (r,) = _tax_rate(rows[f"tax_{i}_name"])
        rates.append(r.where(money[f"tax_{i}_value"].fillna(0) > 0))
    R = pd.concat(rates, axis=1)
    distinct = _distinct_per_row(R)
    taxes = money["taxes"].fillna(0.0)
    single = R.max(axis=1).where(distinct == 1)
    order_rate = single.where(distinct > 0, np.where(taxes == 0, 0.0, np.nan))
    taxable = _each_distinct(rows["taxable"], lambda v: v.lower() not in ("false", "no", "0"), bool)
    vat = order_rate.where(taxable, 0.0)

    subtotal, ship, total = money["subtotal"].fillna(0.0), money["shipping_amount"].fillna(0.0), money["total"]
    if ctx.taxes_included is None:
        included = (total - (subtotal + ship)).abs() <= (total - (subtotal + ship + taxes)).abs()
        included = included & (taxes > 0)
    else:
        included = pd.Series(bool(ctx.taxes_included), index=taxes.index)

    def split(amount: pd.Series, rate: pd.Series) -> tuple[pd.Series, pd.Series]:
        excl = amount.where(~included, amount / (1 + rate / 100))
        incl = amount.where(included, amount * (1 + rate / 100))
        return excl, incl

    price = money["unit_price"]
    disc = money["line_discount"].fillna(0.0)
    p_excl, p_incl = split(price, vat)
    d_excl, d_incl = split(disc, vat)
    s_excl, s_incl = split(ship, order_rate)
    line_disc_sum = disc.groupby(key).transform("sum")
    odisc = (money["order_discount"].fillna(0.0) - line_disc_sum).clip(lower=0)
    # Discount Amount may hold more than the products lost: a free-shipping code's discount, which
    # Shipping already has off. The order discount is then what the products lost, from the figures
    # (quantity x price less the line discounts, against Subtotal), so it is not taken off twice.
    lost = ((qty * price).groupby(key).transform("sum") - line_disc_sum - money["subtotal"]).clip(lower=0).round(2)
    odisc = odisc.where(~(odisc > lost + TOLERANCE), lost)
    o_excl, o_incl = split(odisc, order_rate)
    total_incl = total.where(total.notna(), subtotal + ship + taxes.where(~included, 0.0))
    # The rates the order states (tax lines with a value), for the integration: with several, a
    # line's rate is the back office's when it is one of them (rules.resolve_vat).
    stated = np.nan_to_num(np.sort(R.to_numpy(dtype="float64"), axis=1), nan=-1.0)
    distinct_rows, which = np.unique(stated, axis=0, return_inverse=True)
    texts = np.array([";".join(f"{r:g}" for r in dict.fromkeys(row) if r >= 0) for row in distinct_rows], dtype=object)
    return {
        "_included": included,
        "vat_rates": texts[which.reshape(-1)],
        "unit_price_excl_vat": p_excl.round(4),
        "unit_price_incl_vat": p_incl.round(4),
        "vat_rate": vat,
        "discount_excl_vat": d_excl.round(2),
        "discount_incl_vat": d_incl.round(2),
        "shipping_excl_vat": s_excl.round(2),
        "shipping_incl_vat": s_incl.round(2),
        "shipping_vat_rate": order_rate,
        "order_discount_excl_vat": o_excl.round(2),
        "order_discount_incl_vat": o_incl.round(2),
        "total_excl_vat": (total_incl - taxes).round(2),
        "total_incl_vat": total_incl.round(2),
        "taxes_total": taxes.round(2),
        "payment_amount": total_incl.round(2),
        "billing_first_name": _each_distinct(rows["billing_name"], lambda v: _split_name(v)[0]),
        "billing_last_name": _each_distinct(rows["billing_name"], lambda v: _split_name(v)[1]),
        "delivery_first_name": _each_distinct(rows["delivery_name"], lambda v: _split_name(v)[0]),
        "delivery_last_name": _each_distinct(rows["delivery_name"], lambda v: _split_name(v)[1]),
    }
