"""From checked rows to the output frames: rows grouped into orders (:class:`_Orders`), then
orders, lines, payments, addresses and customers, shaped for COPY into the staging tables.

Frames are built from numpy arrays (building Series costs); text columns are of the "str"
dtype with '' as missing (NULL).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from passerelle.core.inbound.model import (
    _ADDR_CANON,
    _STR,
    _UTC,
    ADDRESS_FIELDS,
    ADDRESS_KINDS,
    CUSTOMER_COLUMNS,
    LINE_COLUMNS,
    ORDER_COLUMNS,
    PAYMENT_COLUMNS,
)


@dataclass
class _Orders:
    """The rows of an orders file grouped by order id, worked out once for all the order-level
    work (numpy indexing is much cheaper than a groupby per column).

    ``codes[i]`` numbers the order of row ``i``: 0, 1, ... in order of first appearance; an
    empty id is a group like any other, as in a groupby. ``first_rows[c]`` is the row where
    order ``c`` first appears.
    """

    codes: np.ndarray
    first_rows: np.ndarray

    @classmethod
    def of(cls, key: np.ndarray) -> _Orders:
        codes, _ = pd.factorize(key)
        _, first_rows = np.unique(codes, return_index=True)
        return cls(codes=codes, first_rows=first_rows)

    def first_of_order(self) -> np.ndarray:
        """True on the first row of each order."""
        out = np.zeros(len(self.codes), dtype=bool)
        out[self.first_rows] = True
        return out

    def first_where(self, mask: np.ndarray) -> np.ndarray:
        """For each order, the first of its rows where ``mask`` holds, or -1 if none does."""
        if mask.all():
            return self.first_rows
        rows = np.flatnonzero(mask)
        found, pos = np.unique(self.codes[rows], return_index=True)
        out = np.full(len(self.first_rows), -1, dtype=np.intp)
        out[found] = rows[pos]
        return out

    def position(self) -> np.ndarray:
        """1, 2, ... for the rows of each order, in file order."""
        by_order = np.argsort(self.codes, kind="stable")  # rows grouped by order, in file order
        grouped = self.codes[by_order]
        out = np.empty(len(self.codes), dtype=np.int64)
        out[by_order] = np.arange(len(grouped)) - np.searchsorted(grouped, grouped) + 1
        return out


def _str_array(values: Any) -> pd.api.extensions.ExtensionArray:
    """``values`` as an array of the "str" dtype, for a frame column; missing values (None, NaN,
    NaT) stay missing. The same as ``.astype("str")`` on a Series, but cheaper: building Series
    costs, frames are built from arrays here."""
    return pd.array(np.asarray(values, dtype=object), dtype=_STR)


def _nullable(values: Any) -> pd.api.extensions.ExtensionArray:
    """Text for COPY: an array of str where '' is missing (NULL), as are missing values."""
    values = np.asarray(values, dtype=object)
    blank = values == ""
    return _str_array(np.where(blank, np.nan, values) if blank.any() else values)


def _values(column: Any) -> Any:
    """The values of a column given as a Series or an array: a numpy array, or an extension
    array (datetimes with a time zone)."""
    if isinstance(column, pd.Series):
        return column.to_numpy() if isinstance(column.dtype, np.dtype) else column.array
    return column


def _order_frames(rows: Mapping[str, Any], orders: _Orders, keep: np.ndarray) -> dict[str, pd.DataFrame]:
    """Orders, lines, payments, addresses and customers from the kept rows (one per order line).

    ``rows`` holds one value per row of the file for each column: object arrays of str for the
    text (never missing: '' is a value), Series or arrays otherwise (where NaN or NaT may be).
    An order takes, for each column, the first value that is not missing among its kept rows,
    as ``groupby(...).first()`` would.
    """
    take = pd.api.extensions.take
    kept = np.flatnonzero(keep)
    order_rows = orders.first_where(keep)
    order_rows = np.sort(order_rows[order_rows >= 0])  # first kept row of each order, in file order

    def first(col: str) -> Any:
        values = _values(rows[col])
        out = take(values, order_rows)
        if values.dtype != object and pd.isna(out).any():  # missing on the order's first line: take another's
            found = orders.first_where(keep & ~pd.isna(values))[orders.codes[order_rows]]
            out = take(values, found, allow_fill=True)
        return out

    def each_line(col: str) -> Any:
        return take(_values(rows[col]), kept)

    line = rows["line"][order_rows]
    owners = {c: first(c) for c in ("shop_order_id", "shop_customer_id", "email")}
    orders_frame = pd.DataFrame(
        {
            "line": line,
            "shop_order_id": _str_array(owners["shop_order_id"]),
            "order_date": first("order_date"),
            "status": _str_array(first("status")),
            "shop_status": _nullable(first("shop_status")),
            "shop_customer_id": _nullable(owners["shop_customer_id"]),
            "email": _nullable(owners["email"]),
            "phone": _nullable(first("phone")),
            "currency": _str_array(first("currency")),
            "shipping_method": _nullable(first("shipping_method")),
            **{
                c: first(c)
                for c in (
                    "shipping_excl_vat",
                    "shipping_incl_vat",
                    "shipping_vat_rate",
                    "order_discount_excl_vat",
                    "order_discount_incl_vat",
                )
            },
            "discount_code": _nullable(first("discount_code")),
            **{c: first(c) for c in ("total_excl_vat", "total_incl_vat", "taxes_total", "refunded_amount")},
            "note": _nullable(first("note")),
            # The VAT rates the shop states for the order ("20;5.5"; Shopify's tax lines), else empty.
            "vat_rates": _nullable(first("vat_rates")),
        }
    )

    lines = pd.DataFrame(
        {
            "line": rows["line"][kept],
            "shop_order_id": _str_array(each_line("shop_order_id")),
            "line_number": each_line("line_number").astype("int64"),
            "sku": _str_array(each_line("sku")),
            "label": _nullable(each_line("label")),
            "quantity": each_line("quantity").astype("int64"),
            **{
                c: each_line(c)
                for c in (
                    "unit_price_excl_vat",
                    "unit_price_incl_vat",
                    "vat_rate",
                    "discount_excl_vat",
                    "discount_incl_vat",
                )
            },
        }
    )

    paying = first("has_payment").astype(bool)
    payments = pd.DataFrame(
        {
            "line": line[paying],
            "shop_order_id": _str_array(owners["shop_order_id"][paying]),
            "method": _nullable(first("payment_method")[paying]),
            "amount": first("payment_amount")[paying],
            "transaction_id": _nullable(first("payment_transaction_id")[paying]),
            "paid": first("paid")[paying].astype(bool),
            "paid_at": first("paid_at")[paying],
        }
    )

    addresses = _addresses(line, owners, {c: first(c) for c in _ADDR_CANON if c in rows})
    return {
        "orders": orders_frame,
        "lines": lines,
        "payments": payments,
        "addresses": addresses,
        "customers": _customers_from_orders_frame(orders_frame, addresses),
    }


def _addresses(line: np.ndarray, owners: Mapping[str, np.ndarray], fields: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Billing and delivery addresses of orders or customers, one per item of ``line``.

    ``fields`` holds their billing_*/delivery_* text and ``owners`` the columns naming them
    (shop_order_id, shop_customer_id, email): object arrays of str, absent ones empty. An
    address is kept when one of its fields other than country and phone is filled.
    """
    empty = np.full(len(line), "", dtype=object)
    at, is_delivery = [], []  # owner of each address, and its kind
    for kind in ADDRESS_KINDS:
        filled = np.zeros(len(line), dtype=bool)
        for f in ADDRESS_FIELDS:
            if f not in ("country", "phone"):
                filled |= fields.get(f"{kind}_{f}", empty) != ""
        at.append(np.flatnonzero(filled))
        is_delivery.append(np.full(len(at[-1]), kind == "delivery"))
    at, is_delivery = np.concatenate(at), np.concatenate(is_delivery)
    order = np.lexsort((is_delivery, line[at]))  # by line, billing first
    at, is_delivery = at[order], is_delivery[order]

    def field_(f: str) -> np.ndarray:
        """Field ``f`` of each address taken."""
        return np.where(is_delivery, fields.get(f"delivery_{f}", empty)[at], fields.get(f"billing_{f}", empty)[at])

    country = np.array([c.upper() if len(c) == 2 else c for c in field_("country")], dtype=object)
    return pd.DataFrame(
        {
            "line": line[at].astype("int64"),
            **{c: _nullable(owners.get(c, empty)[at]) for c in ("shop_order_id", "shop_customer_id", "email")},
            "kind": _str_array(np.where(is_delivery, "delivery", "billing").astype(object)),
            **{f: _nullable(country if f == "country" else field_(f)) for f in ADDRESS_FIELDS},
        }
    )


def _customers_from_orders_frame(orders: pd.DataFrame, addresses: pd.DataFrame) -> pd.DataFrame:
    """One customer per key (shop customer id and email) of the given orders, named after the
    billing address of its latest order."""
    take = pd.api.extensions.take
    line, date = orders["line"].to_numpy(), orders["order_date"].array
    # The latest order of each key: the last one by order date then line (orders without a
    # date last, as sort_values puts them); customers listed by line.
    by_date = np.lexsort((line, np.where(date.isna(), np.iinfo(np.int64).max, date.asi8)))
    latest = by_date[~orders[["shop_customer_id", "email"]].take(by_date).duplicated(keep="last").to_numpy()]
    latest = latest[np.argsort(line[latest], kind="stable")]
    # The first billing address of that order (-1: none).
    billing = np.flatnonzero(addresses["kind"].to_numpy(dtype=object) == "billing")
    billing_order = addresses["shop_order_id"].to_numpy(dtype=object)[billing]
    first = ~pd.Index(billing_order).duplicated()
    found = pd.Index(billing_order[first]).get_indexer(orders["shop_order_id"].to_numpy(dtype=object)[latest])
    address = take(billing[first], found, allow_fill=True, fill_value=-1)

    def billing_(f: str) -> np.ndarray:
        return take(addresses[f].to_numpy(dtype=object), address, allow_fill=True)

    phone = billing_("phone")
    phone = np.where(pd.isna(phone), orders["phone"].to_numpy(dtype=object)[latest], phone)
    return _customer_frame(
        {
            "line": line[latest],
            "shop_customer_id": orders["shop_customer_id"].to_numpy(dtype=object)[latest],
            "email": orders["email"].to_numpy(dtype=object)[latest],
            "first_name": billing_("first_name"),
            "last_name": billing_("last_name"),
            "company": billing_("company"),
            "phone": phone,
            "updated_at": date.take(latest),
            "source": np.full(len(latest), "order", dtype=object),
        }
    )


def _customer_frame(columns: Mapping[str, Any]) -> pd.DataFrame:
    """The customers frame from its columns (arrays, one per customer; absent ones missing):
    text with '' as missing, dates in UTC."""
    n = len(columns["line"])
    out = {}
    for col in CUSTOMER_COLUMNS:
        values = columns.get(col, np.full(n, None, dtype=object))
        if col == "line":
            out[col] = np.asarray(values).astype("int64")
        elif col == "updated_at":
            out[col] = pd.to_datetime(values, utc=True).astype(_UTC)
        else:
            out[col] = _nullable(values)
    return pd.DataFrame(out)


def _empty_order_frames() -> dict[str, pd.DataFrame]:
    return {
        "orders": pd.DataFrame(columns=ORDER_COLUMNS),
        "lines": pd.DataFrame(columns=LINE_COLUMNS),
        "payments": pd.DataFrame(columns=PAYMENT_COLUMNS),
    }
