"""PrestaShop's orders as its own SQL Manager exports them (Advanced Parameters > Database > SQL
Manager, "Export": ``request_sql_<id>.csv``, ``;``-separated, the query's column names as header),
from the query given in docs/formats/prestashop.md ("Orders in"): one row per order line
(``order_detail``), the order's fields (``orders``, its customer's e-mail, its invoice and delivery
addresses) repeated on each, under PrestaShop's own field names (classes/order/Order.php,
OrderDetail.php, classes/Address.php).

Prices are PrestaShop's: ``unit_price_tax_excl`` and ``unit_price_tax_incl`` per line (after the
catalog's reductions), vouchers on the order (``total_discounts_tax_*``), shipping with its rate
(``carrier_tax_rate``). A line's VAT rate is ``tax_rate`` (the ``tax`` of its ``order_detail_tax``)
when the query gives it, else what its two prices say.

Same interface as :mod:`passerelle.core.inbound.generic_orders`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from passerelle.core.inbound.fields import _each_distinct, _filled, _first_rows, _per_order, no_refunded_lines
from passerelle.core.inbound.model import NUMBER_PREFIX, InboundError
from passerelle.core.inbound.reading import _Context, _source, _text
from passerelle.core.inbound.shopify import _said

#: PrestaShop's default order states (install/data/xml/order_state.xml, ids of a new shop) to ours.
PRESTASHOP_STATES = {
    "1": "validated",  # Awaiting check payment
    "2": "paid",  # Payment accepted
    "3": "paid",  # Processing in progress
    "4": "paid",  # Shipped
    "5": "paid",  # Delivered
    "6": "cancelled",  # Canceled
    "7": "refunded",  # Refunded: a credit note request, the order is left as it is
    "8": "pending",  # Payment error
    "9": "paid",  # On backorder (paid)
    "10": "validated",  # Awaiting bank wire payment
    "11": "paid",  # Remote payment accepted
    "12": "pending",  # On backorder (not paid)
    "13": "validated",  # Awaiting Cash On Delivery validation
}
_PAID = {"2", "3", "4", "5", "9", "11"}

_ADDRESS = (
    ("first_name", "firstname"),
    ("last_name", "lastname"),
    ("company", "company"),
    ("address1", "address1"),
    ("address2", "address2"),
    ("postcode", "postcode"),
    ("city", "city"),
    ("region", "state"),
    ("country", "country"),
    ("phone", "phone"),
)
_ORDER_LEVEL: dict[str, tuple[str, ...]] = {
    "shop_order_id": ("reference",),
    "order_date": ("date_add",),
    "status": ("current_state",),
    "valid": ("valid",),
    "state_name": ("order_state",),
    "shop_customer_id": ("id_customer",),
    "email": ("email",),
    "phone": ("invoice_phone",),
    "currency": ("currency",),
    "shipping_method": ("carrier",),
    "shipping_amount": ("total_shipping_tax_excl",),
    "shipping_incl": ("total_shipping_tax_incl",),
    "shipping_rate": ("carrier_tax_rate",),
    "order_discount": ("total_discounts_tax_excl",),
    "order_discount_incl": ("total_discounts_tax_incl",),
    "discount_code": ("discount_code",),
    "payment_method": ("payment",),
    "payment_transaction_id": ("transaction_id",),
    "paid_at": ("payment_date",),
    "note": ("message",),
    "products_incl": ("total_products_wt",),
    "total": ("total_paid_tax_incl",),
    "total_excl": ("total_paid_tax_excl",),
    "wrapping_incl": ("total_wrapping_tax_incl",),
    **{
        f"{kind}_{f}": (f"{prefix}_{col}",)
        for kind, prefix in (("billing", "invoice"), ("delivery", "delivery"))
        for f, col in _ADDRESS
    },
    "billing_mobile": ("invoice_phone_mobile",),
    "delivery_mobile": ("delivery_phone_mobile",),
}
_LINE_LEVEL: dict[str, tuple[str, ...]] = {
    "sku": ("product_reference",),
    "label": ("product_name",),
    "quantity": ("product_quantity",),
    "unit_price": ("unit_price_tax_excl",),
    "unit_price_incl": ("unit_price_tax_incl",),
    "tax_rate": ("tax_rate",),
    "id_order": ("id_order",),
    "orders_in_cart": ("orders_in_cart",),
}
REQUIRED_COLUMNS = [
    "reference",
    "date_add",
    "current_state",
    "product_reference",
    "product_name",
    "product_quantity",
    "unit_price_tax_excl",
    "unit_price_tax_incl",
    "total_paid_tax_incl",
]
REQUIRED: list[str] = []
SKU_REQUIRED = False
TOLERANCE = 0.015
MONEY = [
    "shipping_incl",
    "order_discount_incl",
    "products_incl",
    "total",
    "total_excl",
    "unit_price_incl",
    "wrapping_incl",
]
#: Amounts that may be below 0 (none: every amount here is refused when negative).
SIGNED: list[str] = []
#: Quantities are those sold (order_detail.product_quantity): a 0 is refused.
refunded_lines = no_refunded_lines


def order_rows(ctx: _Context) -> tuple[dict[str, np.ndarray], dict[str, str], list[str], set[str]]:
    """Canonical text columns, the file's own name of each, which are order-level, which are absent."""
    missing = [c for c in REQUIRED_COLUMNS if c.lower() not in ctx.table.lookup]
    if missing:
        raise InboundError(
            f"{ctx.name}: PrestaShop orders export (SQL Manager) lacks the columns {missing}; its header is "
            f"{ctx.table.header}; export with the query of docs/formats/prestashop.md"
        )
    spec = {**_ORDER_LEVEL, **_LINE_LEVEL}
    src = {c: _source(ctx, *alts) for c, alts in spec.items()}
    rows = {c: _text(ctx, *alts) for c, alts in spec.items()}
    absent = {c for c, alts in spec.items() if not any(a.lower() in ctx.table.lookup for a in alts)}
    for col in ("line_number", "line_discount", "payment_amount", "payment_paid", "refunded_amount"):
        rows[col] = np.full(len(ctx.table.cells), "", dtype=object)
        src[col] = col
        absent.add(col)
    for kind in ("billing", "delivery"):  # the landline, else the mobile
        rows[f"{kind}_phone"] = np.where(rows[f"{kind}_phone"] != "", rows[f"{kind}_phone"], rows[f"{kind}_mobile"])
    rows["phone"] = rows["billing_phone"]
    # MySQL's NULL of an empty optional field comes out as an empty cell; a zero date as 0000-00-00.
    rows["paid_at"] = np.where(np.char.startswith(rows["paid_at"].astype(str), "0000-00-00"), "", rows["paid_at"])
    rows["label"] = np.where(rows["sku"] == "", _each_distinct(rows["label"], variant_title), rows["label"])
    rows["shop_order_id"] = _package_keys(rows)
    return rows, src, list(_ORDER_LEVEL), absent


def _package_keys(rows: dict[str, np.ndarray]) -> np.ndarray:
    """Each order's key: its ``reference``; for an order of a cart PrestaShop split into one order
    per package (``PaymentModule::validateOrder`` gives each the cart's reference), which the
    query's ``orders_in_cart`` says (the orders sharing the reference, counted on the shop's
    ``reference`` index), ``<reference>-<id_order>``. Every file that holds such an order gives it
    the same key, whether or not its sibling orders are in the file: each is integrated once, as
    its own order. A reference PrestaShop makes has 9 letters and no dash
    (``Order::generateReference``).

    Sets ``rows["alias"]`` and ``rows["alias_reason"]``: the key the same order has from a file of
    the other query (a package keyed by the reference alone by a query without ``orders_in_cart``,
    and the other way round), refused if the back office holds it under that key
    (:func:`passerelle.core.integrate.rules.reject_held_aliases`): once under each key, the same
    package would be integrated twice."""
    key, id_order = rows["shop_order_id"], rows["id_order"]
    n = len(key)
    count = pd.to_numeric(pd.Series(rows["orders_in_cart"], dtype=object), errors="coerce").to_numpy()
    known = (key != "") & (id_order != "")
    split = known & (count > 1)
    old_query = known & np.isnan(count)
    rows["alias"] = np.full(n, "", dtype=object)
    rows["alias_reason"] = np.full(n, "", dtype=object)
    if split.any():
        rows["alias"][split] = key[split]
        rows["alias_reason"][split] = [
            f"PrestaShop split cart {r} into several orders, and the back office already holds order "
            f"{NUMBER_PREFIX}{r}, integrated from a file without orders_in_cart: it is one of these packages; "
            f"compare it with {r}-{i} and integrate the missing package by hand"
            for r, i in zip(key[split], id_order[split], strict=True)
        ]
    if old_query.any():
        rows["alias"][old_query] = key[old_query] + "-" + id_order[old_query]
        rows["alias_reason"][old_query] = [
            f"order {r} (id_order {i}) is package {r}-{i} of a cart PrestaShop split, which the back office already "
            f"holds as order {NUMBER_PREFIX}{r}-{i}, from a file with orders_in_cart; this file's query lacks that "
            "column: add it (docs/formats/prestashop.md)"
            for r, i in zip(key[old_query], id_order[old_query], strict=True)
        ]
    return np.where(split, key + "-" + id_order, key) if split.any() else key


_COMBINATION = re.compile(r"^(?P<name>.+?) - (?P<attributes>[^:,]+ ?: ?[^,]+(?:, [^:,]+ ?: ?[^,]+)*)$")


def variant_title(label: str) -> str:
    """A combination's ``product_name`` as PrestaShop writes it (``Chemisier - Taille : M, Couleur :
    BLEU``: OrderDetail::create, the product's name then its attributes) in the back office's
    form (``Chemisier - M / BLEU``, as Passerelle publishes titles); any other name as it is."""
    m = _COMBINATION.match(label)
    if not m:
        return label
    values = [part.split(":", 1)[1].strip() for part in m["attributes"].split(", ")]
    return f"{m['name']} - {' / '.join(values)}"


def typed(
    ctx: _Context,
    rows: dict[str, np.ndarray],
    add: Callable[..., None],
    codes: np.ndarray,
    qty: pd.Series,
    money: dict[str, pd.Series],
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    state = rows["status"]
    valid = rows["valid"]
    # A state the shop added (a module's): the order's ``valid`` flag says whether PrestaShop counts it.
    status = _each_distinct(state, lambda v: PRESTASHOP_STATES.get(v, ""))
    custom = (state != "") & (status == "")
    status = np.where(custom & (valid == "1"), "validated", np.where(custom & (valid == "0"), "pending", status))
    add(
        (state != "") & (status == ""),
        "status",
        "unknown current_state: not one of PrestaShop's default states (1 to 13); add the column valid "
        "(orders.valid) to the query so that the shop's own states are read",
    )
    paid = _each_distinct(state, lambda v: v in _PAID, bool) | (rows["paid_at"] != "")
    split = _split_carts(rows["id_order"], codes, add)
    first = _first_rows(codes)
    aliases = {c: np.where(first, rows[c], "") for c in ("alias", "alias_reason")}
    return status, paid, {**_amounts(rows, add, codes, qty, money, split), **aliases}


def _split_carts(id_order: np.ndarray, codes: np.ndarray, add: Callable[..., None]) -> np.ndarray:
    """Orders PrestaShop made of one cart share its ``reference`` (``PaymentModule::validateOrder``:
    one order per package, i.e. per carrier, warehouse or address, each ``$order->reference =
    $reference``). With the query's ``orders_in_cart`` each has its own key
    (:func:`_package_keys`); from a query without it, only the ones that meet in one file can be
    seen, and keyed apart here they would clash with the same order keyed by its reference alone
    in another file. Their rows are refused, saying so (merged under one key they would not add
    up: "export the order again" would never help). Returns the rows refused so (their totals are
    not checked as one order's: that reason would be false)."""
    ids = pd.Series(id_order, dtype=object).where(id_order != "")
    keyed = codes >= 0
    none = np.zeros(len(codes), dtype=bool)
    if not ids.notna().any() or not keyed.any():
        return none
    per = ids[keyed].groupby(codes[keyed]).agg(lambda s: sorted(set(s.dropna()), key=lambda v: (len(v), v)))
    split = {code: found for code, found in per.items() if len(found) > 1}
    if not split:
        return none
    mask = keyed & np.isin(codes, list(split))
    why = np.full(len(codes), "", dtype=object)
    why[mask] = [
        f"PrestaShop split one cart into {len(split[c])} orders (id_order {', '.join(split[c])}) under the same "
        "reference: add orders_in_cart to the SQL Manager query (docs/formats/prestashop.md) and export these "
        "orders again, to integrate each as its own order"
        for c in codes[mask]
    ]
    add(mask, "id_order", why)
    return mask


def _rate(excl: np.ndarray, incl: np.ndarray) -> np.ndarray:
    """The rate two prices of the shop make, to one decimal when it is one give or take rounding."""
    with np.errstate(invalid="ignore", divide="ignore"):
        one = np.round(100 * (incl / excl - 1), 1)
        ok = np.abs(excl * (1 + one / 100) - incl) <= 0.0051
    return np.where(ok & (excl > 0), one, np.nan)


def _amounts(
    rows: dict[str, np.ndarray],
    add: Callable[..., None],
    codes: np.ndarray,
    qty: pd.Series,
    money: dict[str, pd.Series],
    split: np.ndarray,
) -> dict[str, Any]:
    q = qty.to_numpy()
    excl = money["unit_price"].to_numpy()
    incl = money["unit_price_incl"].to_numpy()
    stated = pd.to_numeric(pd.Series(rows["tax_rate"]).str.replace(",", ".", regex=False), errors="coerce").to_numpy()
    vat = np.where(~np.isnan(stated), stated, _rate(excl, incl))
    vat = np.where(np.isnan(vat) & (excl == 0) & (incl == 0), 0.0, vat)
    ship = _filled(money["shipping_amount"].to_numpy(), 0.0)
    ship_incl_stated = money["shipping_incl"].to_numpy()
    ship_rate = pd.to_numeric(pd.Series(rows["shipping_rate"]).str.replace(",", ".", regex=False), errors="coerce")
    ship_rate = np.where(~np.isnan(ship_rate.to_numpy()), ship_rate.to_numpy(), _rate(ship, ship_incl_stated))
    ship_incl = np.where(np.isnan(ship_incl_stated), ship * (1 + _filled(ship_rate, 0.0) / 100), ship_incl_stated)
    disc = _filled(money["order_discount"].to_numpy(), 0.0)
    disc_incl = _filled(money["order_discount_incl"].to_numpy(), disc)
    with np.errstate(invalid="ignore"):
        lines_incl = _per_order(q * incl, codes, "sum")
        lines_excl = _per_order(q * excl, codes, "sum")
    slack = TOLERANCE + 0.005 * _per_order(q, codes, "sum")
    total = money["total"].to_numpy()
    with np.errstate(invalid="ignore"):
        expected = lines_incl + ship_incl - disc_incl
        off = ~np.isnan(total) & ~np.isnan(expected) & (np.abs(total - expected) > slack) & ~split
    # Gift wrapping (Cart::ONLY_WRAPPING) is in total_paid_tax_incl and in no line: the back office's
    # order has no place for it. Refused saying so, not with "export the order again".
    wrapping = _filled(money["wrapping_incl"].to_numpy(), 0.0)
    with np.errstate(invalid="ignore"):
        wrapped = off & (wrapping > TOLERANCE) & (np.abs(total - wrapping - expected) <= slack)
    _said(
        add,
        wrapped,
        "wrapping_incl",
        lambda i: (
            f"total_wrapping_tax_incl {wrapping[i]:.2f}: the order's total_paid_tax_incl {total[i]:.2f} includes "
            "gift wrapping, which the back office's order has no place for; integrate this order by hand"
        ),
    )
    off &= ~wrapped
    _said(
        add,
        off,
        "total",
        lambda i: (
            f"total_paid_tax_incl {total[i]:.2f} but the order's lines in this file (product_quantity x "
            f"unit_price_tax_incl) + total_shipping_tax_incl - total_discounts_tax_incl = {expected[i]:.2f}: a line "
            "is missing (file cut?) or altered; export the order again"
        ),
    )
    products = money["products_incl"].to_numpy()
    with np.errstate(invalid="ignore"):
        off = ~np.isnan(products) & ~np.isnan(lines_incl) & (np.abs(products - lines_incl) > slack) & ~split
    _said(
        add,
        off,
        "products_incl",
        lambda i: (
            f"total_products_wt {products[i]:.2f} but the order's lines in this file add up to {lines_incl[i]:.2f}: "
            "a line is missing (file cut?) or altered; export the order again"
        ),
    )
    total_incl = np.where(np.isnan(total), expected, total)
    total_excl = money["total_excl"].to_numpy()
    with np.errstate(invalid="ignore"):
        total_excl = np.where(np.isnan(total_excl), lines_excl + ship - disc, total_excl)
    rates = pd.Series(vat).groupby(codes).transform(lambda s: ";".join(f"{r:g}" for r in dict.fromkeys(s.dropna())))
    return {
        "vat_rates": rates.to_numpy(dtype=object),
        "unit_price_excl_vat": pd.Series(excl).round(4),
        "unit_price_incl_vat": pd.Series(np.where(np.isnan(incl), excl * (1 + vat / 100), incl)).round(4),
        "vat_rate": pd.Series(vat),
        "discount_excl_vat": pd.Series(np.zeros(len(q))),
        "discount_incl_vat": pd.Series(np.zeros(len(q))),
        "shipping_excl_vat": pd.Series(ship).round(2),
        "shipping_incl_vat": pd.Series(ship_incl).round(2),
        "shipping_vat_rate": pd.Series(ship_rate),
        "order_discount_excl_vat": pd.Series(disc).round(2),
        "order_discount_incl_vat": pd.Series(disc_incl).round(2),
        "total_excl_vat": pd.Series(total_excl).round(2),
        "total_incl_vat": pd.Series(total_incl).round(2),
        "taxes_total": pd.Series(total_incl - total_excl).round(2),
        "payment_amount": pd.Series(total_incl).round(2),
    }
