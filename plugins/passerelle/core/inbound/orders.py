"""Orders files (generic, Shopify, WooCommerce, PrestaShop): what the formats share.

Each row is checked with whole-column operations; order-level values must agree between the
lines of an order; a rejected row takes its whole order with it ("order has a rejected line
N"): an order is never integrated half. The format's own columns, statuses and amounts come
from its module (:mod:`~passerelle.core.inbound.generic_orders`,
:mod:`~passerelle.core.inbound.shopify`).
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pandas as pd

from passerelle.core.inbound import generic_orders, prestashop, shopify, woocommerce
from passerelle.core.inbound.fields import (
    _CURRENCY_RE,
    _DATE_HELP,
    ID_COLUMNS,
    _emails,
    _filled,
    _not_whole_positive,
    _number_help,
    _parse_datetime,
    _parse_number,
    _too_long,
)
from passerelle.core.inbound.frames import _order_frames, _Orders
from passerelle.core.inbound.model import (
    ALIAS_COLUMNS,
    IF_NEW_COLUMNS,
    ORDERS,
    PRESTASHOP_ORDERS,
    SHOPIFY_ORDERS,
    WOOCOMMERCE_ORDERS,
)
from passerelle.core.inbound.problems import _check_shape, _Problems, _rejects_frame
from passerelle.core.inbound.reading import _Context

#: The module of each orders format.
FORMATS: dict[str, ModuleType] = {
    ORDERS: generic_orders,
    SHOPIFY_ORDERS: shopify,
    WOOCOMMERCE_ORDERS: woocommerce,
    PRESTASHOP_ORDERS: prestashop,
}
#: Every number must stay below this: the back office keeps amounts as numeric(12, 4).
LIMIT = 1e8
_TOO_LARGE = "too large: the back office takes numbers below 100,000,000"
#: Line numbers are integers in the back office.
MAX_LINE_NUMBER = 2**31 - 1
#: Computed amounts of the order (the same on each of its rows), checked on its first row only.
_ORDER_AMOUNTS = (
    "shipping_incl_vat",
    "order_discount_incl_vat",
    "total_excl_vat",
    "total_incl_vat",
    "taxes_total",
    "payment_amount",
)
#: Amount columns of every orders file.
_MONEY = ["unit_price", "line_discount", "shipping_amount", "order_discount", "payment_amount"]


def _parse_orders(ctx: _Context, kind: str) -> dict[str, pd.DataFrame]:
    """The frames and rejects of an orders file of ``kind`` (a key of :data:`FORMATS`)."""
    fmt = FORMATS[kind]
    rows, src, order_level, absent = fmt.order_rows(ctx)
    problems = _Problems()
    _check_shape(ctx, problems)
    key = rows["shop_order_id"]
    n = len(key)
    has_key = key != ""
    orders = _Orders.of(key)
    first_of_order = orders.first_of_order()
    line_of = ctx.table.line

    # Order-level values: the first non-empty value of each order stands for the order; a
    # different non-empty value on another line of the same order is an error.
    written = {col: np.zeros(n, dtype=bool) if col in absent else rows[col] != "" for col in order_level}

    def add(mask, col: str, reason) -> None:
        """A problem with column ``col``; for an order-level column, only on the lines where the
        value is written (Shopify writes them on the order's first line only)."""
        mask = np.asarray(mask, dtype=bool)
        problems.add(mask & written[col] if col in written else mask, src[col], rows[col], reason)

    for col in order_level:
        values, present = rows[col], written[col]
        if not present.any():
            continue
        ref_row = orders.first_where(present)[orders.codes]  # row holding the order's value; -1: none
        ref = values[ref_row]  # the order's value (meaningless where ref_row is -1, never used there)
        differs = np.flatnonzero(present & has_key & (values != ref))
        problems.add_rows(
            differs,
            src[col],
            values[differs],
            [f"differs from line {line_of[r]} of the same order ({v})" for r, v in zip(ref_row[differs], ref[differs])],
        )
        if not present.all():  # lines without the value take the order's
            rows[col] = np.where(present | (ref_row < 0), values, ref)

    # Required values. (Shopify lines without a SKU, gift cards and custom items, are matched at
    # integration: :func:`passerelle.core.integrate.rules.resolve_lines`.)
    required = [
        "shop_order_id",
        "order_date",
        "status",
        *(["sku"] if fmt.SKU_REQUIRED else []),
        "quantity",
        "unit_price",
        *fmt.REQUIRED,
    ]
    for col in required:
        missing = rows[col] == ""
        # An order-level value missing from the whole order is said once, on its first line;
        # but rows without an order id belong to no order: each one is rejected.
        if col in written and col != "shop_order_id":
            missing = missing & first_of_order
        problems.add(missing, src[col], "", "required value is empty")
    # An order without e-mail nor customer id (draft and point-of-sale orders) is not refused here:
    # the integration gives it the walk-in customer, or quarantines it (rules.attach_walk_in).

    for col in ID_COLUMNS:
        too_long, why = _too_long(rows[col])
        add(too_long, col, why)

    # Types.
    email, valid = _emails(rows["email"])
    add((rows["email"] != "") & ~valid, "email", "not an email address")
    order_date, bad = _parse_datetime(rows["order_date"], ctx.timezone)
    add(bad, "order_date", "not a date: " + _DATE_HELP)
    paid_at, bad = _parse_datetime(rows["paid_at"], ctx.timezone)
    add(bad, "paid_at", "not a date: " + _DATE_HELP)
    # Currency and status codes: worked out once per distinct value, then spread to the rows.
    which, distinct = pd.factorize(rows["currency"])
    distinct = [v.upper() if v != "" else ctx.currency for v in distinct]
    currency = np.array(distinct, dtype=object)[which]
    add(
        ~np.array([_CURRENCY_RE.fullmatch(v) is not None for v in distinct], dtype=bool)[which],
        "currency",
        "not a currency code: expected 3 letters such as EUR",
    )

    money: dict[str, pd.Series] = {}
    for col in _MONEY + fmt.MONEY:
        values, bad = _parse_number(rows[col], ctx.decimal)
        add(bad, col, "not a number: " + _number_help(ctx.decimal))
        if col in fmt.SIGNED:
            add(np.abs(values.to_numpy()) >= LIMIT, col, _TOO_LARGE)
        else:  # a negative one is refused for its sign alone
            add((values.to_numpy() < 0) & ~bad, col, "must not be negative")
            add(values.to_numpy() >= LIMIT, col, _TOO_LARGE)
        money[col] = values

    qty, bad = _parse_number(rows["quantity"], ctx.decimal)
    # A format whose quantities are less the refunds reads 0 on a refunded order's lines (WooCommerce).
    refunded_away = fmt.refunded_lines(rows, src, money) & (qty.to_numpy() == 0)
    add(bad | (_not_whole_positive(qty) & ~refunded_away), "quantity", "quantity must be a whole number greater than 0")
    add(qty.to_numpy() >= LIMIT, "quantity", _TOO_LARGE)

    # A line discount larger than its line would make a negative line (and order) total.
    gross = qty.to_numpy() * money["unit_price"].to_numpy()
    with np.errstate(invalid="ignore"):
        too_much = money["line_discount"].to_numpy() > gross + 0.005
    if too_much.any():
        why = np.full(n, "", dtype=object)
        why[too_much] = [
            f"discount larger than its line ({g:.2f} = quantity x price): refused, not clipped" for g in gross[too_much]
        ]
        add(too_much, "line_discount", why)

    line_number, bad = _parse_number(rows["line_number"], ".")
    add(bad | _not_whole_positive(line_number), "line_number", "line_number must be a whole number greater than 0")
    add(line_number.to_numpy() > MAX_LINE_NUMBER, "line_number", f"line_number must be at most {MAX_LINE_NUMBER}")
    line_number = _filled(line_number.to_numpy(), orders.position().astype("float64"))
    dup = pd.DataFrame({"k": orders.codes, "n": line_number}).duplicated(keep="first").to_numpy() & has_key
    add(dup, "line_number", "line number appears twice in the same order")

    status, paid, typed = fmt.typed(ctx, rows, add, orders.codes, qty, money)
    # Per row, on an order's first row, else "": a reason to refuse it if new; another key of it.
    if_new = typed.pop("if_new", None)
    alias, alias_reason = typed.pop("alias", None), typed.pop("alias_reason", None)
    _check_computed(typed, first_of_order, problems)

    # Reject: the bad rows and every other row of their orders.
    bad_rows = np.zeros(n, dtype=bool)
    bad_rows[problems.rows()] = True
    first_bad = orders.first_where(bad_rows & has_key)[orders.codes]  # the order's first bad row; -1: none
    in_bad_order = (first_bad >= 0) & has_key
    collateral = np.flatnonzero(in_bad_order & ~bad_rows)
    problems.add_rows(
        collateral,
        src["shop_order_id"],
        key[collateral],
        [f"order {k} has a rejected line {line_of[r]}" for k, r in zip(key[collateral], first_bad[collateral])],
    )
    keep = ~(bad_rows | in_bad_order)
    has_payment = (
        (rows["payment_method"] != "") | (rows["payment_transaction_id"] != "") | (rows["payment_amount"] != "") | paid
    )
    rejects = _rejects_frame(ctx, problems, key)

    # Build the frames from the rows kept.
    per_row = {
        "line": line_of,
        "shop_order_id": key,
        "order_date": order_date,
        "status": status,
        "shop_status": rows["status"],
        "shop_customer_id": rows["shop_customer_id"],
        "email": email,
        "currency": currency,
        "shipping_method": rows["shipping_method"],
        "discount_code": rows["discount_code"],
        "note": rows["note"],
        "refunded_amount": money.get("refunded_amount", np.zeros(n)),
        "line_number": line_number,
        "sku": rows["sku"],
        "label": rows["label"],
        "quantity": qty,
        "payment_method": rows["payment_method"],
        "payment_transaction_id": rows["payment_transaction_id"],
        "paid": paid,
        "paid_at": paid_at,
        "phone": rows["phone"],
        "has_payment": has_payment,
        "vat_rates": np.full(n, "", dtype=object),
        **typed,
        **{c: rows[c] for c in rows if c.startswith(("billing_", "delivery_"))},
    }
    return {
        **_order_frames(per_row, orders, keep),
        "rejects": rejects,
        "if_new": _if_new(if_new, keep, per_row, src),
        "aliases": _aliases(alias, alias_reason, keep, per_row),
    }


def _if_new(reasons: np.ndarray | None, keep: np.ndarray, per_row: dict, src: dict[str, str]) -> pd.DataFrame:
    """The format's problems that refuse an order only if the back office does not hold it yet,
    on the kept rows (:attr:`~passerelle.core.inbound.model.ParsedFile.if_new`)."""
    if reasons is None:
        return pd.DataFrame(columns=IF_NEW_COLUMNS)
    idx = np.flatnonzero(keep & (reasons != ""))
    return pd.DataFrame(
        {
            "line": per_row["line"][idx],
            "shop_order_id": per_row["shop_order_id"][idx],
            "field": src["quantity"],
            "value": np.asarray(per_row["quantity"])[idx].astype("int64").astype(str),
            "reason": reasons[idx],
        },
        columns=IF_NEW_COLUMNS,
    )


def _aliases(alias: np.ndarray | None, reason: np.ndarray | None, keep: np.ndarray, per_row: dict) -> pd.DataFrame:
    """Another key of each kept order, with the reason to refuse it if the back office holds it
    under that key (:attr:`~passerelle.core.inbound.model.ParsedFile.aliases`)."""
    if alias is None or reason is None:
        return pd.DataFrame(columns=ALIAS_COLUMNS)
    idx = np.flatnonzero(keep & (alias != ""))
    return pd.DataFrame(
        {
            "line": per_row["line"][idx],
            "shop_order_id": per_row["shop_order_id"][idx],
            "alias": alias[idx],
            "reason": reason[idx],
        },
        columns=ALIAS_COLUMNS,
    )


def _check_computed(typed: dict, first_of_order: np.ndarray, problems: _Problems) -> None:
    """Amounts worked out from the file's (incl. VAT prices, totals) must fit the back office
    too: a file of amounts each below the limit may still add up to an order above it."""
    for col in ("unit_price_incl_vat", "discount_incl_vat", *_ORDER_AMOUNTS):
        values = typed[col]
        v = np.asarray(values.to_numpy() if isinstance(values, pd.Series) else values, dtype="float64")
        with np.errstate(invalid="ignore"):
            over = np.abs(v) >= LIMIT
        if col in _ORDER_AMOUNTS:
            over &= first_of_order
        idx = np.flatnonzero(over)
        problems.add_rows(
            idx, col, [f"{x:.2f}" for x in v[idx]], [f"{col} works out at {x:,.2f}: {_TOO_LARGE}" for x in v[idx]]
        )
