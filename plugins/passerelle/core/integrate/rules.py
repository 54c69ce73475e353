"""The business rules applied to a parsed file before it is written, each in one place:

* an order whose SKU the back office does not know is rejected whole
  (:func:`reject_unknown_skus`, with :func:`known_skus` looking the file's SKUs up);
* a shop order id gives the back-office order number ``WEB-<id>`` (:func:`order_numbers`);
  an order whose number is already another shop order's (``100231`` and ``WEB-100231``), in
  the back office or earlier in the file, is rejected (:func:`reject_number_clashes`);
* orders are split by shop status into created, quotes, cancellations and ignored
  (:func:`filter_orders`, the ``inbound`` section's rules).

(An order without a customer key is refused by the parser itself, row by row, as a required
value: :mod:`passerelle.core.inbound.orders`.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import psycopg

from passerelle.core import inbound as ib

DEFAULT_RULES: dict[str, list[str]] = {"integrate": ["paid", "validated"], "quotes": ["quote"],
                                       "cancels": ["cancelled"]}


@dataclass
class OrderSelection:
    """Orders split by what the back office does with them (see :func:`filter_orders`)."""

    create: pd.DataFrame
    quotes: pd.DataFrame
    cancels: pd.DataFrame
    ignored: pd.DataFrame

    @property
    def counts(self) -> dict[str, int]:
        return {"create": len(self.create), "quotes": len(self.quotes), "cancels": len(self.cancels),
                "ignored": len(self.ignored)}


def known_skus(conn: psycopg.Connection, candidates: Iterable[str] | None = None) -> pd.Series:
    """References of the back office's articles and variants: those among ``candidates`` (a
    file's SKUs; one indexed lookup, whatever the size of the catalog), or all when None."""
    if candidates is None:
        rows = conn.execute("SELECT reference FROM erp.article UNION ALL SELECT reference FROM erp.variant")
    else:
        wanted = sorted({str(c).strip() for c in candidates if c is not None})
        rows = conn.execute("SELECT reference FROM erp.article WHERE reference = ANY(%(s)s) "
                            "UNION SELECT reference FROM erp.variant WHERE reference = ANY(%(s)s)", {"s": wanted})
    return pd.Series([r[0] for r in rows.fetchall()], dtype="str")


def reject_unknown_skus(parsed: ib.ParsedFile, known: Iterable[str] | pd.Series) -> ib.ParsedFile:
    """Move every order having a line whose SKU is not in ``known`` to the rejects.

    ``known`` holds the back office's article and variant references. Returns a new
    :class:`~passerelle.core.inbound.ParsedFile`; the given one is not changed.
    """
    known = pd.Index(pd.Series(list(known) if not isinstance(known, pd.Series) else known,
                               dtype="str").str.strip().unique())
    lines = parsed.lines
    unknown = ~lines["sku"].isin(known)
    if not unknown.any():
        return parsed
    bad = lines.loc[unknown, ["line", "shop_order_id", "sku"]]
    return ib.reject_orders(parsed, pd.DataFrame({
        "line": bad["line"].to_numpy(), "shop_order_id": bad["shop_order_id"].to_numpy(),
        "field": ib.sku_field(parsed.kind), "value": bad["sku"].to_numpy(),
        "reason": "unknown SKU: no article or variant with this reference in the back office",
    }))


#: Back-office numbers of web orders: the shop's id behind this prefix (unless it has it).
NUMBER_PREFIX = "WEB-"


def order_numbers(shop_order_ids: pd.Series) -> pd.Series:
    """The back-office order number of each shop order id: ``WEB-<id>``, or the id itself when
    it already starts with ``WEB-``."""
    ids = shop_order_ids.astype("str")
    return ids.where(ids.str.startswith(NUMBER_PREFIX), NUMBER_PREFIX + ids)


def taken_numbers(conn: psycopg.Connection, shop_order_ids: Iterable[str]) -> pd.DataFrame:
    """The back office's orders holding the numbers of ``shop_order_ids``: columns number and
    shop_order_id (the shop id that holds it; empty for an order made in the back office)."""
    numbers = sorted(set(order_numbers(pd.Series(list(shop_order_ids), dtype="str"))))
    rows = conn.execute("SELECT number, shop_order_id FROM erp.sales_order WHERE number = ANY(%s)",
                        (numbers,)).fetchall()
    return pd.DataFrame(rows, columns=["number", "shop_order_id"])


def reject_number_clashes(parsed: ib.ParsedFile, taken: pd.DataFrame) -> ib.ParsedFile:
    """Move to the rejects every order whose back-office number (:func:`order_numbers`) is
    already another order's: in the back office (``taken``, from :func:`taken_numbers`), or an
    earlier order of the file (the first one in the file keeps it)."""
    orders = parsed.orders[["line", "shop_order_id"]].sort_values("line", kind="stable")
    if not len(orders):
        return parsed
    numbers = order_numbers(orders["shop_order_id"]).to_numpy()
    ids, lines = orders["shop_order_id"].to_numpy(), orders["line"].to_numpy()
    owner = dict(zip(taken["number"], taken["shop_order_id"]))
    first: dict[str, tuple[str, int]] = {}
    bad = []
    for number, sid, line in zip(numbers, ids, lines):
        if number in owner and owner[number] != sid:
            held = f"order {owner[number]} of the shop" if owner[number] else "an order made in the back office"
            bad.append((line, sid, f"order number {number} is already {held}'s: rename the order in the shop "
                                   "or its number in the back office"))
        elif number in first and first[number][0] != sid:
            bad.append((line, sid, f"order number {number} is also that of order {first[number][0]} "
                                   f"(line {first[number][1]}): one shop order per back-office number"))
        else:
            first.setdefault(number, (sid, line))
    if not bad:
        return parsed
    own = pd.DataFrame(bad, columns=["line", "shop_order_id", "reason"])
    own["field"] = ib.order_id_field(parsed.kind)
    own["value"] = own["shop_order_id"]
    return ib.reject_orders(parsed, own)


def filter_orders(
    parsed: ib.ParsedFile,
    integrate: Iterable[str] = ("paid", "validated"),
    quotes: Iterable[str] = ("quote",),
    cancels: Iterable[str] = ("cancelled",),
) -> OrderSelection:
    """Split the file's orders by status: created in the back office, turned into quotes,
    cancelling an order already integrated, or ignored (counted, not rejected)."""
    sets = {"integrate": set(integrate), "quotes": set(quotes), "cancels": set(cancels)}
    for label, values in sets.items():
        unknown = values - set(ib.STATUSES)
        if unknown:
            raise ValueError(f"filter_orders: {label} has unknown statuses {sorted(unknown)}; "
                             f"expected some of {list(ib.STATUSES)}")
    clash = (sets["integrate"] & sets["quotes"]) | (sets["integrate"] & sets["cancels"]) \
        | (sets["quotes"] & sets["cancels"])
    if clash:
        raise ValueError(f"filter_orders: statuses {sorted(clash)} are in more than one group")
    status = parsed.orders["status"]
    m_create = status.isin(sets["integrate"])
    m_quote = status.isin(sets["quotes"])
    m_cancel = status.isin(sets["cancels"])
    orders = parsed.orders
    return OrderSelection(
        create=orders[m_create].reset_index(drop=True),
        quotes=orders[m_quote].reset_index(drop=True),
        cancels=orders[m_cancel].reset_index(drop=True),
        ignored=orders[~(m_create | m_quote | m_cancel)].reset_index(drop=True),
    )
