"""The business rules applied to a parsed file before it is written, each in one place:

* an order whose SKU the back office does not know is rejected whole
  (:func:`reject_unknown_skus`, with :func:`known_skus` looking the file's SKUs up);
* a shop order id gives the back-office order number ``WEB-<id>``, without Shopify's ``#``
  (:func:`order_numbers`);
  an order whose number is already another shop order's (``100231`` and ``WEB-100231``), in
  the back office or earlier in the file, is rejected (:func:`reject_number_clashes`);
* an order the back office holds under another key the file gives it (a PrestaShop package of a
  split cart, keyed by its reference alone by a query without ``orders_in_cart`` and with its
  id_order by one with it) is rejected (:func:`reject_held_aliases`);
* an order the file cannot give as it was sold (WooCommerce's quantities less a refund made
  before its first export) is rejected if the back office does not hold it yet
  (:func:`reject_new_orders`);
* orders are split by shop status into created, quotes, cancellations and ignored
  (:func:`filter_orders`, the ``inbound`` section's rules);
* a line without a SKU is matched (:func:`resolve_lines`: the staff's mapping, the gift-card
  or custom-item article, the shop's title against what Passerelle published), or its order
  quarantined with what to do;
* an order without e-mail nor customer id goes to the walk-in customer, or is quarantined
  (:func:`attach_walk_in`);
* each line's VAT rate is the shop's; a disagreement with the back office is flagged on the
  order, and missing excl. VAT amounts are worked out (:func:`resolve_vat`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from passerelle.core import inbound as ib
from passerelle.db import json_texts

DEFAULT_RULES: dict[str, list[str]] = {
    "integrate": ["paid", "validated"],
    "quotes": ["quote"],
    "cancels": ["cancelled"],
}


@dataclass
class OrderSelection:
    """Orders split by what the back office does with them (see :func:`filter_orders`)."""

    create: pd.DataFrame
    quotes: pd.DataFrame
    cancels: pd.DataFrame
    ignored: pd.DataFrame
    #: Orders created before their payment (``awaiting_payment`` group): back-office status ``awaiting_payment``.
    awaiting: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "create": len(self.create),
            "quotes": len(self.quotes),
            "cancels": len(self.cancels),
            "ignored": len(self.ignored),
            "awaiting_payment": len(self.awaiting),
        }


#: What :func:`sku_references` gives for each reference found.
REFERENCE_COLUMNS = ["reference", "article_id", "variant_id", "vat_rate", "name"]


def sku_references(conn: psycopg.Connection, skus: Iterable[str]) -> pd.DataFrame:
    """The back office's article or variant of each of ``skus`` (a file's SKUs), in one indexed
    lookup whatever the size of the catalog: columns :data:`REFERENCE_COLUMNS`. A variant's
    reference gives that variant (``article_id`` its article's); else an article's gives the
    article (``variant_id`` NA). ``vat_rate`` and ``name`` are the article's. SKUs found in
    neither are absent: :func:`reject_unknown_skus` rejects their orders, :func:`resolve_vat`
    compares the rates, the lines are written with these ids."""
    wanted = json_texts(skus, strip=True)
    if wanted == "[]":
        return pd.DataFrame({c: pd.Series(dtype="object") for c in REFERENCE_COLUMNS})
    rows = conn.execute(
        """
        WITH wanted AS (SELECT DISTINCT json_array_elements_text(%s::json) AS reference)
        SELECT w.reference, coalesce(v.article_id, a.id), v.id, coalesce(va.vat_rate, a.vat_rate),
               coalesce(va.name, a.name)
          FROM wanted w
          LEFT JOIN erp.variant v ON v.reference = w.reference
          LEFT JOIN erp.article va ON va.id = v.article_id
          LEFT JOIN erp.article a ON v.id IS NULL AND a.reference = w.reference
         WHERE v.id IS NOT NULL OR a.id IS NOT NULL""",
        (wanted,),
    ).fetchall()
    out = pd.DataFrame(rows, columns=REFERENCE_COLUMNS)
    return out.astype({"article_id": "int64", "variant_id": "Int64", "vat_rate": "float64"})


def known_skus(conn: psycopg.Connection, candidates: Iterable[str] | None = None) -> pd.Series:
    """References of the back office's articles and variants: those among ``candidates`` (a
    file's SKUs; one indexed lookup, whatever the size of the catalog), or all when None."""
    if candidates is None:
        rows = conn.execute("SELECT reference FROM erp.article UNION ALL SELECT reference FROM erp.variant")
        return pd.Series([r[0] for r in rows.fetchall()], dtype="str")
    return sku_references(conn, candidates)["reference"].astype("str")


def reject_unknown_skus(parsed: ib.ParsedFile, known: Iterable[str] | pd.Series) -> ib.ParsedFile:
    """Move every order having a line whose SKU is not in ``known`` to the rejects.

    ``known`` holds the back office's article and variant references. Returns a new
    :class:`~passerelle.core.inbound.ParsedFile`; the given one is not changed.
    """
    known = pd.Index(
        pd.Series(list(known) if not isinstance(known, pd.Series) else known, dtype="str").str.strip().unique()
    )
    lines = parsed.lines
    unknown = ~lines["sku"].isin(known)
    if not unknown.any():
        return parsed
    bad = lines.loc[unknown, ["line", "shop_order_id", "sku"]]
    return ib.reject_orders(
        parsed,
        pd.DataFrame(
            {
                "line": bad["line"].to_numpy(),
                "shop_order_id": bad["shop_order_id"].to_numpy(),
                "field": ib.sku_field(parsed.kind),
                "value": bad["sku"].to_numpy(),
                "reason": "unknown SKU: no article or variant with this reference in the back office",
            }
        ),
    )


def order_numbers(shop_order_ids: pd.Series) -> pd.Series:
    """The back-office order number of each shop order id: ``WEB-<id>`` without the ``#`` of
    Shopify's order names (``#1012`` -> ``WEB-1012``), or the id itself when it already starts
    with ``WEB-``."""
    ids = shop_order_ids.astype("str").str.lstrip("#")  # Shopify's names: "#1012" -> WEB-1012
    return ids.where(ids.str.startswith(ib.NUMBER_PREFIX), ib.NUMBER_PREFIX + ids)


def taken_numbers(conn: psycopg.Connection, shop_order_ids: Iterable[str]) -> pd.DataFrame:
    """The back office's orders holding the numbers of ``shop_order_ids``: columns number and
    shop_order_id (the shop id that holds it; empty for an order made in the back office)."""
    numbers = json_texts(order_numbers(pd.Series(list(shop_order_ids), dtype="str")).to_numpy(dtype=object))
    rows = conn.execute(
        "SELECT number, shop_order_id FROM erp.sales_order WHERE number IN (SELECT json_array_elements_text(%s::json))",
        (numbers,),
    ).fetchall()
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
            bad.append(
                (
                    line,
                    sid,
                    f"order number {number} is already {held}'s: rename the order in the shop "
                    "or its number in the back office",
                )
            )
        elif number in first and first[number][0] != sid:
            bad.append(
                (
                    line,
                    sid,
                    f"order number {number} is also that of order {first[number][0]} "
                    f"(line {first[number][1]}): one shop order per back-office number",
                )
            )
        else:
            first.setdefault(number, (sid, line))
    if not bad:
        return parsed
    own = pd.DataFrame(bad, columns=["line", "shop_order_id", "reason"])
    own["field"] = ib.order_id_field(parsed.kind)
    own["value"] = own["shop_order_id"]
    return ib.reject_orders(parsed, own)


def orders_held(conn: psycopg.Connection, shop_order_ids: Iterable[str]) -> set[str]:
    """Which of ``shop_order_ids`` the back office holds (one probe of its unique index each)."""
    ids = list(dict.fromkeys(shop_order_ids))
    if not ids:
        return set()
    rows = conn.execute(
        "SELECT shop_order_id FROM erp.sales_order WHERE shop_order_id IN (SELECT json_array_elements_text(%s::json))",
        (json_texts(ids),),
    ).fetchall()
    return {r[0] for r in rows}


def reject_new_orders(parsed: ib.ParsedFile, held: set[str], creating: Iterable[str]) -> ib.ParsedFile:
    """Move to the rejects the orders of ``parsed.if_new`` that the back office does not hold
    (``held``, from :func:`orders_held`) and that would be created (their status is one of
    ``creating``: integrated, quotes, awaiting payment): the file cannot give them as they were
    sold. Those it holds go on (their refund becomes a credit note request), and so do those it
    would not create anyway (cancelled, refunded, in no group)."""
    own = parsed.if_new
    wanted = parsed.orders.loc[parsed.orders["status"].isin(list(creating)), "shop_order_id"]
    own = own[own["shop_order_id"].isin(wanted) & ~own["shop_order_id"].isin(held)]
    return ib.reject_orders(parsed, own) if len(own) else parsed


def reject_held_aliases(parsed: ib.ParsedFile, held: set[str]) -> ib.ParsedFile:
    """Move to the rejects every order the back office holds under its other key and not under
    its own (``held``: those of ``parsed.aliases``' keys and aliases found by
    :func:`orders_held`), with the parser's reason: a PrestaShop package keyed by the reference
    alone by one query and with its id_order by the other would otherwise be integrated under
    both. A package keyed ``<reference>-<id_order>`` (the query with ``orders_in_cart``) and held
    under that key is news of that package (its cancellation, a refund), even when a sibling
    package was created under the bare reference by the older query; a row of the older query
    keyed by the bare reference cannot tell which package it is, and stays refused."""
    own = parsed.aliases
    package_key = np.array(
        [str(k).startswith(f"{a}-") for k, a in zip(own["shop_order_id"], own["alias"], strict=True)], dtype=bool
    )
    own = own[
        own["alias"].isin(held)
        & ~(own["shop_order_id"].isin(held).to_numpy() & package_key)
        & own["shop_order_id"].isin(parsed.orders["shop_order_id"])
    ]
    if not len(own):
        return parsed
    own = own[["line", "shop_order_id", "reason"]].assign(field=ib.order_id_field(parsed.kind))
    return ib.reject_orders(parsed, own.assign(value=own["shop_order_id"]))


def filter_orders(
    parsed: ib.ParsedFile,
    integrate: Iterable[str] = ("paid", "validated"),
    quotes: Iterable[str] = ("quote",),
    cancels: Iterable[str] = ("cancelled",),
    awaiting_payment: Iterable[str] = (),
) -> OrderSelection:
    """Split the file's orders by status: created in the back office, created awaiting their
    payment, turned into quotes, cancelling an order already integrated, or ignored (counted, not
    rejected)."""
    sets = {
        "integrate": set(integrate),
        "quotes": set(quotes),
        "cancels": set(cancels),
        "awaiting_payment": set(awaiting_payment),
    }
    for label, values in sets.items():
        unknown = values - set(ib.STATUSES)
        if unknown:
            raise ValueError(
                f"filter_orders: {label} has unknown statuses {sorted(unknown)}; expected some of {list(ib.STATUSES)}"
            )
    groups = list(sets.values())
    clash = {s for i, a in enumerate(groups) for b in groups[i + 1 :] for s in a & b}
    if clash:
        raise ValueError(f"filter_orders: statuses {sorted(clash)} are in more than one group")
    status = parsed.orders["status"]
    m_create = status.isin(sets["integrate"])
    m_quote = status.isin(sets["quotes"])
    m_cancel = status.isin(sets["cancels"])
    m_await = status.isin(sets["awaiting_payment"])
    orders = parsed.orders
    return OrderSelection(
        create=orders[m_create].reset_index(drop=True),
        quotes=orders[m_quote].reset_index(drop=True),
        cancels=orders[m_cancel].reset_index(drop=True),
        ignored=orders[~(m_create | m_quote | m_cancel | m_await)].reset_index(drop=True),
        awaiting=orders[m_await].reset_index(drop=True),
    )


# --------------------------------------------------------------------------------------------
# Lines without a SKU, orders without a customer, VAT as the shop states it
# --------------------------------------------------------------------------------------------

#: The keys of the ``rules`` mapping beyond the status groups (``inbound`` section; all optional).
OPTION_KEYS = ("walk_in_customer", "gift_card_article", "unmatched_line_article")
#: Words of a gift card line's label (Shopify names the product "Gift Card", "Carte-cadeau"...).
_GIFT_CARD = re.compile(
    r"gift[ -]?card|carte[ -]?cadeau|ch[eè]que[ -]?cadeau|bon d'achat|gutschein|geschenkkarte", re.IGNORECASE
)
#: How a line's article was found (``matched_by``): its SKU, the staff's mapping, the configured
#: gift-card or custom-item article, the shop's title against what Passerelle published.
MATCHED_BY = ("sku", "mapping", "gift_card", "title", "unmatched")


def status_rules(rules: Mapping[str, Any]) -> dict[str, list[str]]:
    """The status groups of ``rules`` (integrate, quotes, cancels, awaiting_payment), without the
    other options; a group ``rules`` does not name keeps :data:`DEFAULT_RULES`' (as
    :func:`filter_orders`' defaults), so that every rule reading the groups sees the same ones."""
    return {**DEFAULT_RULES, **{k: list(v) for k, v in rules.items() if k not in OPTION_KEYS}}


def label_key(label: Any) -> str:
    """A line label as the mapping and the title match compare it: lower case, spaces collapsed."""
    return " ".join(str(label or "").split()).lower()


def is_gift_card(label: str) -> bool:
    return _GIFT_CARD.search(label or "") is not None


def published_titles(conn: psycopg.Connection, labels: Iterable[str]) -> dict[str, list[tuple[str, float]]]:
    """For each label (:func:`label_key`) among ``labels``, the references Passerelle published
    under that title, with their price incl. VAT: an article without variants by its name, a
    variant as Shopify names its line item, ``<name> - <size> / <colour>``. Only what the shop
    received (the snapshot) counts."""
    wanted = sorted({label_key(v) for v in labels if label_key(v)})
    if not wanted:
        return {}
    rows = conn.execute(
        """
        WITH cand AS (
            SELECT a.reference, a.name AS title, a.price_excl_vat * (1 + a.vat_rate / 100) AS price
              FROM erp.article a
              JOIN passerelle.snapshot s ON s.entity = 'article' AND s.key = a.reference
             WHERE NOT EXISTS (SELECT 1 FROM erp.variant v WHERE v.article_id = a.id AND v.active)
            UNION ALL
            SELECT v.reference, a.name || ' - ' || concat_ws(' / ', nullif(v.size, ''), nullif(v.colour, '')),
                   (a.price_excl_vat + v.price_impact) * (1 + a.vat_rate / 100)
              FROM erp.variant v JOIN erp.article a ON a.id = v.article_id
              JOIN passerelle.snapshot s ON s.entity = 'variant' AND s.key = v.reference
        )
        SELECT lower(regexp_replace(trim(title), '\\s+', ' ', 'g')), reference, round(price, 2)
          FROM cand WHERE lower(regexp_replace(trim(title), '\\s+', ' ', 'g')) = ANY(%s) ORDER BY 1, 2""",
        (wanted,),
    ).fetchall()
    out: dict[str, list[tuple[str, float]]] = {}
    for label, reference, price in rows:
        out.setdefault(label, []).append((reference, float(price)))
    return out


def line_mappings(conn: psycopg.Connection, labels: Iterable[str]) -> dict[str, str]:
    """The staff's mappings (``passerelle.line_mapping``) of the given labels: key -> reference."""
    wanted = sorted({label_key(v) for v in labels if label_key(v)})
    if not wanted:
        return {}
    rows = conn.execute(
        "SELECT shop_label, reference FROM passerelle.line_mapping WHERE shop_label = ANY(%s)", (wanted,)
    ).fetchall()
    return dict(rows)


def resolve_lines(
    parsed: ib.ParsedFile,
    *,
    mappings: Mapping[str, str],
    titles: Mapping[str, list[tuple[str, float]]],
    gift_card_article: str | None = None,
    unmatched_line_article: str | None = None,
) -> ib.ParsedFile:
    """Give every line without a SKU its back-office reference, or quarantine its order.

    In this order: the staff's mapping of the line's label (``passerelle.line_mapping``); a gift
    card (its label says so) -> ``gift_card_article``; the shop's title and variant matching
    exactly one reference Passerelle published (:func:`published_titles`; homonyms are told
    apart by their price incl. VAT, the line's unit price); any other line ->
    ``unmatched_line_article``. What is left quarantines its order with a reason saying what to
    do. Adds the column ``matched_by`` (:data:`MATCHED_BY`) to the lines.
    """
    lines = parsed.lines.copy()
    sku = lines["sku"].astype("str").fillna("").to_numpy(dtype=object)
    matched = np.where(sku != "", "sku", "").astype(object)
    bad = []
    labels = lines["label"].astype("object").where(lines["label"].notna(), "").to_numpy(dtype=object)
    prices = lines["unit_price_incl_vat"].astype("float64").to_numpy()
    for i in np.flatnonzero(sku == ""):
        label, key = labels[i], label_key(labels[i])
        found = titles.get(key, [])
        if len(found) > 1:  # homonyms: the one at the line's price, if only one is
            at_price = [c for c in found if abs(c[1] - prices[i]) < 0.005]
            found = at_price if len(at_price) == 1 else found
        refs = [ref for ref, _ in found]
        if key in mappings:
            sku[i], matched[i] = mappings[key], "mapping"
        elif gift_card_article and is_gift_card(label):
            sku[i], matched[i] = gift_card_article, "gift_card"
        elif len(refs) == 1:
            sku[i], matched[i] = refs[0], "title"
        elif unmatched_line_article and not refs:
            sku[i], matched[i] = unmatched_line_article, "unmatched"
        else:
            row = lines.iloc[i]
            quoted = key.replace("'", "''")
            todo = (
                f"INSERT INTO passerelle.line_mapping (shop_label, reference) VALUES ('{quoted}', '<reference>') "
                "then replay the quarantine"
            )
            if refs:
                why = (
                    f"line without SKU {label!r} matches several published references ({', '.join(refs[:5])}): "
                    f"say which: {todo}"
                )
            elif is_gift_card(label):
                why = (
                    f"gift card line {label!r} has no SKU: set inbound.gift_card_article to the back-office "
                    f"article of gift cards, or {todo}"
                )
            else:
                why = (
                    f"line without SKU {label!r} matches no article Passerelle published: {todo} "
                    "(or set inbound.unmatched_line_article for custom items)"
                )
            bad.append((int(row["line"]), row["shop_order_id"], label, why))
    lines["sku"] = pd.array(sku, dtype="str")
    lines["matched_by"] = pd.array(matched, dtype="str")
    parsed = replace(parsed, lines=lines)
    if not bad:
        return parsed
    own = pd.DataFrame(bad, columns=["line", "shop_order_id", "value", "reason"])
    own["field"] = ib.sku_field(parsed.kind)
    out = ib.reject_orders(parsed, own)
    return out


def attach_walk_in(parsed: ib.ParsedFile, walk_in_customer: str | None, walk_in_id: int | None) -> ib.ParsedFile:
    """Orders with neither e-mail nor shop customer id (draft and point-of-sale orders): marked
    ``walk_in`` to be integrated under the configured walk-in customer (``walk_in_id``, the
    back-office customer whose code is ``walk_in_customer``); quarantined when none is set or
    the code is unknown, with a reason naming the file's own columns."""
    orders = parsed.orders.copy()
    nobody = (orders["email"].isna() | (orders["email"] == "")) & (
        orders["shop_customer_id"].isna() | (orders["shop_customer_id"] == "")
    )
    orders["walk_in"] = nobody.to_numpy(dtype=bool)
    parsed = replace(parsed, orders=orders)
    if not nobody.any() or walk_in_id is not None:
        return parsed
    columns = ib.OWN_COLUMNS.get(parsed.kind, ib.OWN_COLUMNS[ib.ORDERS])[2]
    several = " and " in columns
    if walk_in_customer:
        why = (
            f"no customer ({columns} empty) and the walk-in customer {walk_in_customer!r} "
            "(inbound.walk_in_customer) is no customer code of the back office: create it or fix the setting"
        )
    else:
        why = (
            f"no customer: {columns} {'are' if several else 'is'} empty (a draft or "
            "point-of-sale order?); set inbound.walk_in_customer to the back-office code of a walk-in customer "
            "to integrate such orders, then replay the quarantine"
        )
    bad = orders[nobody]
    return ib.reject_orders(
        parsed,
        pd.DataFrame(
            {
                "line": bad["line"].to_numpy(),
                "shop_order_id": bad["shop_order_id"].to_numpy(),
                "field": columns.split(" and ")[0],
                "value": "",
                "reason": why,
            }
        ),
    )


def article_vat_rates(conn: psycopg.Connection, references: Iterable[str]) -> dict[str, float]:
    """The back office's VAT rate of each article or variant reference among ``references``."""
    return vat_rates(sku_references(conn, [r for r in references if r is not None and str(r) != ""]))


def vat_rates(references: pd.DataFrame) -> dict[str, float]:
    """Reference -> VAT rate, from :func:`sku_references`."""
    return references.set_index("reference")["vat_rate"].astype("float64").to_dict()


def _rates(text: Any) -> list[float]:
    if not isinstance(text, str) or not text:
        return []
    return [float(t) for t in text.split(";") if t]


def resolve_vat(parsed: ib.ParsedFile, rates: Mapping[str, float]) -> ib.ParsedFile:
    """Each line's VAT rate as the shop states it, checked against the back office's.

    A line whose rate the file states (a one-rate Shopify order, a tax-free line, a generic file)
    keeps it; a line of an order with several stated rates takes its article's rate when that is
    one of them. Where the shop's rate and the article's differ (or the article's is none of the
    order's rates), the order gets a ``vat_disagreement`` saying which lines: flagged, not
    silently kept. Amounts excl. VAT missing (prices incl. VAT, several rates) are worked out
    from the incl. VAT ones with the line's rate; shipping takes the order's highest line rate.
    Lines matched to the configured gift-card or custom-item articles are not compared.
    """
    lines, orders = parsed.lines.copy(), parsed.orders.copy()
    if not len(lines):
        return replace(parsed, orders=orders.assign(vat_disagreement=pd.Series(dtype="str")))
    bo = lines["sku"].map(rates).astype("float64")
    stated = lines["vat_rate"].astype("float64")
    line_ids = lines["shop_order_id"].to_numpy(dtype=object)
    # Whether the article's rate is among its order's stated rates: only read where the line
    # states none (most files state every line's rate: nothing to look at).
    in_order = np.ones(len(lines), dtype=bool)
    unstated = np.flatnonzero(stated.isna().to_numpy())
    bo_values = bo.to_numpy()
    stated_by_order: dict[Any, list[float]] = {}
    if len(unstated):
        with_rates = orders[orders["vat_rates"].notna() & (orders["vat_rates"] != "")]
        stated_by_order = dict(
            zip(with_rates["shop_order_id"].to_numpy(dtype=object), with_rates["vat_rates"].map(_rates), strict=True)
        )
    in_order[unstated] = [bo_values[i] in stated_by_order.get(line_ids[i], []) for i in unstated]
    rate = stated.where(stated.notna(), bo)
    compared = ~lines.get("matched_by", pd.Series("sku", index=lines.index)).isin(["gift_card", "unmatched"])
    differs = compared & bo.notna() & ((stated.notna() & ((stated - bo).abs() > 0.001)) | (stated.isna() & ~in_order))
    notes: dict[str, list[str]] = {}
    at = np.flatnonzero(differs.to_numpy())
    ids, line_no, skus = (lines[c].to_numpy(dtype=object)[at] for c in ("shop_order_id", "line", "sku"))
    said, bos = stated.to_numpy()[at], bo_values[at]
    listed_at = [stated_by_order.get(sid, []) for sid in ids]
    for sid, ln, ref, s_, b, rs in zip(ids, line_no, skus, said, bos, listed_at, strict=True):
        shop = f"{s_:g}%" if not np.isnan(s_) else "/".join(f"{r:g}%" for r in rs) or "no rate"
        notes.setdefault(sid, []).append(f"line {int(ln)} {ref}: shop {shop}, back office {b:g}%")
    lines["vat_rate"] = rate
    factor = 1 + rate / 100
    lines["unit_price_excl_vat"] = (
        lines["unit_price_excl_vat"]
        .astype("float64")
        .where(lines["unit_price_excl_vat"].notna(), (lines["unit_price_incl_vat"].astype("float64") / factor).round(4))
    )
    lines["discount_excl_vat"] = (
        lines["discount_excl_vat"]
        .astype("float64")
        .where(lines["discount_excl_vat"].notna(), (lines["discount_incl_vat"].astype("float64") / factor).round(2))
    )
    top = rate.groupby(lines["shop_order_id"]).max()
    ship_rate = orders["shipping_vat_rate"].astype("float64")
    ship_rate = ship_rate.where(ship_rate.notna(), orders["shop_order_id"].map(top))
    orders["shipping_vat_rate"] = ship_rate
    orders["shipping_excl_vat"] = (
        orders["shipping_excl_vat"]
        .astype("float64")
        .where(
            orders["shipping_excl_vat"].notna(),
            (orders["shipping_incl_vat"].astype("float64") / (1 + ship_rate / 100)).round(2),
        )
    )
    orders["vat_disagreement"] = pd.array(
        [
            ("VAT differs: " + "; ".join(notes[k])) if k in notes else None
            for k in orders["shop_order_id"].to_numpy(dtype=object)
        ],
        dtype="str",
    )
    return replace(parsed, lines=lines, orders=orders)
