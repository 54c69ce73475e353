"""WooCommerce's orders as "Advanced Order Export For WooCommerce" (algolplus, the most used
export plugin) writes them with its default fields, products as rows: one row per order line,
the order's columns repeated on each (docs/formats/woocommerce.md, "Orders in").

``Item Cost`` is the unit price excl. tax after discounts (WooCommerce's
``get_item_total($item, false, true)``); ``Order Total Amount`` incl. tax and ``Order Total Tax
Amount`` are the order's. A line's VAT rate is what the shop states: ``Item Tax Rate``, else
``Order Line Tax`` over the line, else (default fields) the order's taxes over its lines and
shipping when they make one rate; an order of several rates without those columns gets no rate
here, and the integration flags it (:func:`passerelle.core.integrate.rules.resolve_vat`).

Same interface as :mod:`passerelle.core.inbound.generic_orders`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from passerelle.core.inbound.fields import _each_distinct, _filled, _first_rows, _per_order
from passerelle.core.inbound.model import InboundError
from passerelle.core.inbound.reading import _Context, _source, _text
from passerelle.core.inbound.shopify import _said

#: WooCommerce's order statuses to ours: the slug (``wc-`` prefix or not) and the name the
#: plugin writes (``wc_get_order_status_name``), in English and French.
WOOCOMMERCE_STATUSES = {
    "processing": "paid",
    "en cours": "paid",
    "completed": "paid",
    "terminée": "paid",
    "on-hold": "validated",
    "on hold": "validated",
    "en attente": "validated",
    "pending": "pending",
    "pending payment": "pending",
    "attente paiement": "pending",
    "en attente de paiement": "pending",
    "failed": "pending",
    "échouée": "pending",
    "checkout-draft": "pending",
    "draft": "pending",
    "brouillon": "pending",
    "cancelled": "cancelled",
    "annulée": "cancelled",
    "refunded": "refunded",  # a credit note request, never a silent change of the order
    "remboursée": "refunded",
}
#: Statuses of orders the customer paid.
_PAID = {"processing", "en cours", "completed", "terminée", "refunded", "remboursée"}

_ORDER_LEVEL: dict[str, tuple[str, ...]] = {
    "shop_order_id": ("Order Number", "Order ID"),
    "order_date": ("Order Date",),
    "status": ("Order Status",),
    "shop_customer_id": ("Customer User ID",),
    "email": ("Email (Billing)", "Customer User Email"),
    "phone": ("Phone (Billing)",),
    "currency": ("Currency",),
    "shipping_method": ("Shipping Method Title",),
    "shipping_amount": ("Order Shipping Amount",),
    "shipping_tax": ("Order Shipping Tax Amount",),
    "order_discount": ("Cart Discount Amount",),
    "discount_code": ("Coupon Code", "Coupons Used"),
    "payment_method": ("Payment Method Title",),
    "payment_transaction_id": ("Transaction ID",),
    "paid_at": ("Paid Date",),
    "note": ("Customer Note",),
    "subtotal": ("Order Subtotal Amount",),
    "total": ("Order Total Amount",),
    "taxes": ("Order Total Tax Amount",),
    "refunded_amount": ("Order Refund Amount",),
    "fees": ("Order Total Fee",),
    **{
        f"{kind}_{f}": tuple(c.format(p=prefix) for c in cols)
        for kind, prefix in (("billing", "Billing"), ("delivery", "Shipping"))
        for f, cols in (
            ("first_name", ("First Name ({p})",)),
            ("last_name", ("Last Name ({p})",)),
            ("company", ("Company ({p})",)),
            ("address1", ("Address 1 ({p})", "Address 1&2 ({p})")),
            ("address2", ("Address 2 ({p})",)),
            ("postcode", ("Postcode ({p})", "Zip ({p})")),
            ("city", ("City ({p})",)),
            ("region", ("State Name ({p})", "State Code ({p})", "State ({p})")),
            ("country", ("Country Code ({p})",)),
            ("phone", ("Phone ({p})",)),
        )
    },
}
_LINE_LEVEL: dict[str, tuple[str, ...]] = {
    "line_number": ("Item #",),
    "sku": ("SKU",),
    "label": ("Item Name", "Product Name", "Name"),
    "quantity": ("Quantity", "Quantity (- Refund)"),
    "unit_price": ("Item Cost",),
    "unit_price_before_discount": ("Item Cost Before Discount",),
    "line_net": ("Order Line (w/o tax)",),
    "line_tax": ("Order Line Tax",),
    "item_tax_rate": ("Item Tax Rate",),
}
#: The plugin's columns this reader cannot do without (its default fields hold them all).
REQUIRED_COLUMNS = ["Order Number", "Order Status", "Order Date", "SKU", "Item Cost", "Order Total Amount"]
REQUIRED: list[str] = []
#: A line of a product made in the shop, or a gift card, has no SKU: matched at integration.
SKU_REQUIRED = False
TOLERANCE = 0.015
MONEY = [
    "shipping_tax",
    "subtotal",
    "total",
    "taxes",
    "refunded_amount",
    "fees",
    "unit_price_before_discount",
    "line_net",
    "line_tax",
]
#: A fee may be negative (WooCommerce's fee lines take any amount: a discount made a fee).
SIGNED = ["fees"]


def order_rows(ctx: _Context) -> tuple[dict[str, np.ndarray], dict[str, str], list[str], set[str]]:
    """Canonical text columns, the file's own name of each, which are order-level, which are absent."""
    missing = [c for c in REQUIRED_COLUMNS if c.lower() not in ctx.table.lookup]
    if not any(q.lower() in ctx.table.lookup for q in _LINE_LEVEL["quantity"]):
        missing.append("Quantity (- Refund)")
    if missing:
        raise InboundError(
            f"{ctx.name}: WooCommerce orders export (Advanced Order Export) lacks the columns {missing}; its "
            f"header is {ctx.table.header}; export with the plugin's default fields, products as rows "
            "(docs/formats/woocommerce.md)"
        )
    spec = {**_ORDER_LEVEL, **_LINE_LEVEL}
    src = {c: _source(ctx, *alts) for c, alts in spec.items()}
    rows = {c: _text(ctx, *alts) for c, alts in spec.items()}
    absent = {c for c, alts in spec.items() if not any(a.lower() in ctx.table.lookup for a in alts)}
    # A guest's "Customer User ID" is 0: no customer account.
    rows["shop_customer_id"] = _each_distinct(rows["shop_customer_id"], lambda v: "" if v in ("0", "") else v)
    for col in ("payment_amount", "payment_paid", "line_discount"):  # not in the export: worked out
        rows[col] = np.full(len(ctx.table.cells), "", dtype=object)
        src[col] = col
        absent.add(col)
    # A line without SKU is matched by its title: in the form Passerelle publishes titles.
    rows["label"] = np.where(rows["sku"] == "", _each_distinct(rows["label"], variant_title), rows["label"])
    return rows, src, list(_ORDER_LEVEL), absent


_WOO_VARIATION = re.compile(r"^(?P<name>.+) - (?P<values>[^-]+(?:, [^,]+)+)$")


def variant_title(label: str) -> str:
    """A variation's line name as WooCommerce writes it (``Chemisier - M, BLEU``: the parent's
    name, then the attribute values joined by ", ") in the back office's form (``Chemisier - M /
    BLEU``, as Passerelle publishes its titles); any other name as it is."""
    m = _WOO_VARIATION.match(label)
    return f"{m['name']} - {m['values'].replace(', ', ' / ')}" if m else label


def typed(
    ctx: _Context,
    rows: dict[str, np.ndarray],
    add: Callable[..., None],
    codes: np.ndarray,
    qty: pd.Series,
    money: dict[str, pd.Series],
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    which, distinct = pd.factorize(rows["status"])
    low = [_status_key(v) for v in distinct]
    status = np.array([WOOCOMMERCE_STATUSES.get(v, "") for v in low], dtype=object)[which]
    add(
        np.array([v != "" and v not in WOOCOMMERCE_STATUSES for v in low], dtype=bool)[which],
        "status",
        "unknown Order Status: expected one of WooCommerce's (Processing, Completed, On hold, Pending payment, "
        "Cancelled, Refunded, Failed, Draft)",
    )
    paid = np.array([v in _PAID for v in low], dtype=bool)[which] | (rows["paid_at"] != "")
    less_refund = _source(ctx, *_LINE_LEVEL["quantity"]).lower() == "quantity (- refund)"
    amounts = _amounts(rows, add, codes, qty, money, less_refund)
    return status, paid, amounts


def _status_key(value: str) -> str:
    return value.strip().lower().removeprefix("wc-")


def refunded_lines(rows: dict[str, np.ndarray], src: dict[str, str], money: dict[str, pd.Series]) -> np.ndarray:
    """Rows whose quantity may be 0: lines of a refunded order read from ``Quantity (- Refund)``,
    the plugin's default quantity, which is less the refunds (its ``qty_minus_refund``: ``_qty`` +
    ``get_qty_refunded_for_item()``, a negative number). A refunded order (status Refunded, or an
    ``Order Refund Amount``) is not refused for a line refunded whole: it goes on to its credit
    note request; one the back office does not hold yet cannot be created from these lines
    (:func:`_refunded_before`)."""
    if src.get("quantity", "").lower() != "quantity (- refund)":
        return np.zeros(len(rows["status"]), dtype=bool)
    which, distinct = pd.factorize(rows["status"])
    refunded = np.array([WOOCOMMERCE_STATUSES.get(_status_key(v)) == "refunded" for v in distinct], dtype=bool)
    amount = money["refunded_amount"].to_numpy()
    unreadable = np.isnan(amount) & (rows["refunded_amount"] != "")  # refused for that, not also its 0s
    with np.errstate(invalid="ignore"):
        return refunded[which] | (amount > 0) | unreadable


def _clean_rate(rate: np.ndarray, net: np.ndarray, tax: np.ndarray, slack: np.ndarray) -> np.ndarray:
    """``rate`` (tax / net, in percent) to one decimal when the shop's tax is that rate of the net
    amount give or take its rounding (``slack``: half a cent per rounded amount); NaN otherwise
    (amounts at several rates)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        one = np.round(rate, 1)
        ok = np.abs(net * one / 100 - tax) <= slack + 1e-9
    return np.where(ok & (net > 0), one, np.nan)


def _amounts(
    rows: dict[str, np.ndarray],
    add: Callable[..., None],
    codes: np.ndarray,
    qty: pd.Series,
    money: dict[str, pd.Series],
    less_refund: bool = False,
) -> dict[str, Any]:
    q = qty.to_numpy()
    cost = money["unit_price"].to_numpy()  # excl. tax, after discounts
    before = money["unit_price_before_discount"].to_numpy()
    price = np.where(np.isnan(before), cost, before)
    with np.errstate(invalid="ignore"):
        discount = np.where(np.isnan(before), 0.0, np.maximum(q * (before - cost), 0.0))
        net = q * cost
    lines_net = _per_order(net, codes, "sum")
    n_lines = _per_order(np.ones(len(q)), codes, "sum")
    ship = _filled(money["shipping_amount"].to_numpy(), 0.0)
    total = money["total"].to_numpy()
    taxes = money["taxes"].to_numpy()
    ship_tax = money["shipping_tax"].to_numpy()
    refunded = _filled(money["refunded_amount"].to_numpy(), 0.0)

    # The order's one rate, from its taxes over its lines and shipping (the default fields).
    with np.errstate(invalid="ignore", divide="ignore"):
        order_rate = _clean_rate(100 * taxes / (lines_net + ship), lines_net + ship, taxes, 0.005 * (n_lines + 1))
        # Each line's rate where the file states it: Item Tax Rate, or Order Line Tax over its line.
        line_net = np.where(np.isnan(money["line_net"].to_numpy()), net, money["line_net"].to_numpy())
        line_tax = money["line_tax"].to_numpy()
        from_line = _clean_rate(100 * line_tax / line_net, line_net, line_tax, np.full(len(q), 0.005))
        from_line = np.where((line_net == 0) & (line_tax == 0), 0.0, from_line)
    stated_rate = pd.to_numeric(
        pd.Series(rows["item_tax_rate"]).str.rstrip("%").str.replace(",", ".", regex=False), errors="coerce"
    ).to_numpy()
    vat = np.where(~np.isnan(stated_rate), stated_rate, np.where(~np.isnan(line_tax), from_line, order_rate))
    with np.errstate(invalid="ignore", divide="ignore"):
        ship_rate = np.where(
            ~np.isnan(ship_tax), np.where(ship > 0, np.round(100 * ship_tax / ship, 1), np.nan), order_rate
        )

    # The order must add up to the shop's own total (refunded orders excepted: their quantities
    # are less the refund, their total is not).
    with np.errstate(invalid="ignore"):
        expected = lines_net + ship + _filled(taxes, 0.0)
        slack = TOLERANCE + 0.005 * _per_order(q, codes, "sum")
        mismatch = ~np.isnan(total) & ~np.isnan(lines_net) & (np.abs(total - expected) > slack)
    # A fee (WooCommerce's fee lines: a payment surcharge, a packaging fee) is in Order Total Amount,
    # its tax in Order Total Tax Amount, and in no row of the export: the back office's order has no
    # place for it. With the plugin's "Order Total Fee" (the fees before tax), refused saying so.
    fees = _filled(money["fees"].to_numpy(), 0.0)
    with np.errstate(invalid="ignore"):
        with_fees = mismatch & (np.abs(fees) > TOLERANCE) & (np.abs(total - fees - expected) <= slack)
    _said(
        add,
        with_fees,
        "fees",
        lambda i: (
            f"Order Total Fee {fees[i]:.2f}: the order's Order Total Amount {total[i]:.2f} includes fees, which "
            "are in no line of the export and the back office's order has no place for; integrate this order by hand"
        ),
    )
    # A refunded order's lines may be less the refund (Quantity (- Refund)), its total is not:
    # not checked here (_refunded_before).
    off = mismatch & ~with_fees & (refunded == 0)
    _said(
        add,
        off,
        "total",
        lambda i: (
            f"Order Total Amount {total[i]:.2f} but the order's lines in this file (Quantity x Item Cost) + Order "
            f"Shipping Amount + Order Total Tax Amount = {expected[i]:.2f}: a line is missing (file cut?) or "
            "altered; export the order again"
        ),
    )
    subtotal = money["subtotal"].to_numpy()
    cart = _filled(money["order_discount"].to_numpy(), 0.0)
    with np.errstate(invalid="ignore"):
        off = (
            ~np.isnan(subtotal)
            & ~np.isnan(lines_net)
            & (refunded == 0)
            & (np.abs(subtotal - (lines_net + cart)) > slack)
        )
    _said(
        add,
        off,
        "subtotal",
        lambda i: (
            f"Order Subtotal Amount {subtotal[i]:.2f} but the order's lines in this file + Cart Discount Amount = "
            f"{lines_net[i] + cart[i]:.2f}: a line is missing (file cut?) or altered; export the order again"
        ),
    )
    total_incl = np.where(np.isnan(total), expected, total)
    tax_total = np.where(np.isnan(taxes), 0.0, taxes)
    if_new = _refunded_before(codes, q, refunded, total, expected, slack) if less_refund else None
    rates = pd.Series(vat).groupby(codes).transform(lambda s: ";".join(f"{r:g}" for r in dict.fromkeys(s.dropna())))
    return {
        "vat_rates": rates.to_numpy(dtype=object),
        "unit_price_excl_vat": pd.Series(price).round(4),
        "unit_price_incl_vat": pd.Series(price * (1 + vat / 100)).round(4),
        "vat_rate": pd.Series(vat),
        "discount_excl_vat": pd.Series(discount).round(2),
        "discount_incl_vat": pd.Series(discount * (1 + vat / 100)).round(2),
        "shipping_excl_vat": pd.Series(ship).round(2),
        "shipping_incl_vat": pd.Series(ship * (1 + _filled(ship_rate, 0.0) / 100)).round(2),
        "shipping_vat_rate": pd.Series(ship_rate),
        # Coupons are in the lines already (Item Cost is after discounts): none on the order.
        "order_discount_excl_vat": pd.Series(np.zeros(len(q))),
        "order_discount_incl_vat": pd.Series(np.zeros(len(q))),
        "total_excl_vat": pd.Series(total_incl - tax_total).round(2),
        "total_incl_vat": pd.Series(total_incl).round(2),
        "taxes_total": pd.Series(tax_total).round(2),
        "payment_amount": pd.Series(total_incl).round(2),
        **({"if_new": if_new} if if_new is not None else {}),
    }


def _refunded_before(
    codes: np.ndarray, q: np.ndarray, refunded: np.ndarray, total: np.ndarray, expected: np.ndarray, slack: np.ndarray
) -> np.ndarray:
    """On the first row of each order partly refunded before this export, read from ``Quantity
    (- Refund)``: why it cannot be created from this file; "" elsewhere. Its lines are less the
    refunded items while ``Order Total Amount`` (``get_total()``) is the order as sold: created
    from them, the order would lack the refunded items and its refund would be asked again as a
    credit note. An order the back office holds is not refused for it (its refund goes on to its
    credit note request): :func:`passerelle.core.integrate.rules.reject_new_orders`."""
    with np.errstate(invalid="ignore"):
        off = ~np.isnan(total) & ~np.isnan(expected) & (np.abs(total - expected) > slack)
        a_line_gone = _per_order((q == 0).astype("float64"), codes, "max") > 0  # a line refunded whole
        # Refunded in full (every line 0, status Refunded): never created, see refunded_lines.
        cut = (refunded > 0) & (off | a_line_gone) & (_per_order(q, codes, "sum") > 0)
    first = _first_rows(codes)
    why = np.full(len(codes), "", dtype=object)
    idx = np.flatnonzero(cut & first)
    why[idx] = [
        f"Order Refund Amount {refunded[i]:.2f}: the order was partly refunded before this export, whose Quantity "
        f"(- Refund) gives its lines less the refunded items while Order Total Amount {total[i]:.2f} is the order "
        f"as sold (its lines here with shipping and taxes make {expected[i]:.2f}); it cannot be created from them: "
        "add the field Quantity to the export profile (docs/formats/woocommerce.md) and export the order again, or "
        "integrate it by hand"
        for i in idx
    ]
    return why
