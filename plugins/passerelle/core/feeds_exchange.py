"""Outbound files of the hourly exchanges: prices, stock, order statuses and invoices.

The two dialects of :mod:`passerelle.core.feeds` are extended here (subclasses, so the catalog's
transforms stay in one place) with the exchange entities of
``include/sql/views/20_exchange.sql``. Everything is vectorised over chunks of view rows (all
values text, as COPY gives them). Formats: docs/formats/exchange.md.

Besides the file stems, an exchange dialect says two things the exporter needs:

- ``silent_removals``: entities whose removed rows are forgotten by the snapshot but written to
  no file (an order status cannot be "unsent"; PrestaShop cannot take a stock or price removal,
  and the catalog already deactivates what left the shop);
- ``filters_variant_display``: whether ``stock.variant_display: in_stock`` is applied by leaving
  out-of-stock variants out of the files (generic) or left to the shop (PrestaShop, whose
  combinations must get their zero quantity, else they stay orderable).
"""

from __future__ import annotations

import pandas as pd

from passerelle.core.feeds import (  # noqa: F401 (prestashop_fields is re-exported)
    Dialect, GenericDialect, PrestaShopDialect, Rejects, _fmt, _num, prestashop_fields, prestashop_frame,
)
from passerelle.core.invoices import PDF_NAME_DROP, PDF_NAME_PREFIX, PDF_NAME_SUFFIX

#: Entities of the exchanges, in the order the shop must import them.
EXCHANGE_ENTITIES: tuple[str, ...] = ("price", "specific_price", "stock", "variant_stock", "order_status", "invoice")

#: PrestaShop 8's default order states (ps_order_state ids of a fresh install) per back-office
#: status; "invoiced" has no state of its own (the PDF goes to the customer area instead).
#: A shop with other ids sets ``order_states`` in the dialect's configuration.
PRESTASHOP_ORDER_STATES: dict[str, str] = {
    "confirmed": "2",   # Payment accepted
    "prepared": "3",    # Processing in progress
    "shipped": "4",     # Shipped
    "invoiced": "",
    "cancelled": "6",   # Canceled
}

#: The order of statuses changed in the same second (one back-office transaction, say).
STATUS_RANK: dict[str, int] = {"confirmed": 1, "prepared": 2, "shipped": 3, "invoiced": 4, "cancelled": 5}

#: "No limit" for a PrestaShop specific price date, as the shop stores it.
PS_NO_DATE = "0000-00-00 00:00:00"

def pdf_names(numbers: pd.Series) -> pd.Series:
    """The invoice PDFs' file names (vectorised twin of :func:`passerelle.core.invoices.pdf_name`)."""
    return PDF_NAME_PREFIX + numbers.str.replace(PDF_NAME_DROP, "-", regex=True) + PDF_NAME_SUFFIX


def in_time_order(df: pd.DataFrame) -> pd.DataFrame:
    """Status rows in the order they happened: time, then the statuses' natural order."""
    rank = df["status"].map(STATUS_RANK).fillna(len(STATUS_RANK) + 1)
    return df.assign(_rank=rank).sort_values(["changed_at", "_rank", "key"], kind="stable").drop(columns="_rank")


def _whole(s: pd.Series) -> pd.Series:
    """Quantities as whole units (rounded down), as shops count stock; missing is 0."""
    return _num(s).fillna(0).clip(lower=0).floordiv(1).astype(int).astype(str)


def _blank(s: pd.Series) -> pd.Series:
    return s.fillna("").astype(str)


class GenericExchangeDialect(GenericDialect):
    """Generic format for the exchanges: the views' columns, UTF-8, comma, dot decimals."""

    stems = {**GenericDialect.stems, "price": "prices", "specific_price": "specific_prices", "stock": "stock",
             "variant_stock": "variant_stock", "order_status": "order_statuses", "invoice": "invoices"}
    silent_removals: frozenset[str] = frozenset({"order_status", "invoice"})
    filters_variant_display = True

    def live(self, entity: str, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        if entity in ("stock", "variant_stock"):
            out = df[["key", "article_reference", "variant_reference", "real_qty", "available_qty"]].copy()
            out.insert(1, "active", "1")
            return out
        if entity == "order_status":
            return in_time_order(df)
        if entity == "invoice":
            return df.drop(columns=["content_hash"]).assign(file=pdf_names(df["invoice_number"]))
        return super().live(entity, df, rejects)


class PrestaShopExchangeDialect(PrestaShopDialect):
    """PrestaShop 8: prices and stock as product/combination imports (by reference, positional
    columns), the rest as documented files for a shop-side module or webservice script
    (PrestaShop's CSV import has no specific prices, order states or invoices)."""

    stems = {**PrestaShopDialect.stems, "price": "products_prices", "specific_price": "specific_prices",
             "stock": "products_stock", "variant_stock": "combinations_stock", "order_status": "order_states",
             "invoice": "invoices"}
    silent_removals: frozenset[str] = frozenset({"order_status", "invoice", "price", "stock", "variant_stock"})
    filters_variant_display = False

    @property
    def order_states(self) -> dict[str, str]:
        return {**PRESTASHOP_ORDER_STATES, **{k: str(v) for k, v in (self.cfg.get("order_states") or {}).items()}}

    def _local_time(self, utc_iso: pd.Series) -> pd.Series:
        tz = self.cfg.get("timezone", "Europe/Paris")
        when = pd.to_datetime(utc_iso.replace("", None), utc=True, format="%Y-%m-%dT%H:%M:%SZ")
        return when.dt.tz_convert(tz).dt.strftime("%Y-%m-%d %H:%M:%S").fillna("")

    def _price(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """Products import: name (kept), price excl. VAT, tax rule, the promotion, reference."""
        rule = _num(df["vat_rate"]).round(2).map(self.tax_rules)
        bad = rejects.add(df, rule.isna(), "vat_rate",
                          f"no PrestaShop tax rule for this VAT rate (prestashop.tax_rules_groups has "
                          f"{sorted(self.tax_rules)})")
        has_promo = df["promo_starts_on"].fillna("") != ""
        pct = _num(df["promo_discount_pct"])
        fixed = has_promo & pct.isna()
        # A fixed promotional price becomes an amount off the price incl. VAT (the import's
        # specific price has reduction_tax = 1, PrestaShop's default).
        amount = (_num(df["price_incl_vat"]) - _num(df["promo_price_incl_vat"])).round(2)
        bad |= rejects.add(df, fixed & ~(amount > 0), "promo_price_excl_vat",
                           "the promotional price is not below the base price")
        values = {
            "name": df["name"],
            "price_tex": _fmt(df["price_excl_vat"], 6),
            "id_tax_rules_group": rule.map(lambda x: "" if pd.isna(x) else str(int(x))),
            "reduction_price": amount.where(fixed).map(lambda x: "" if pd.isna(x) else f"{x:.2f}"),
            "reduction_percent": _fmt(df["promo_discount_pct"], 2).where(has_promo & ~fixed, ""),
            "reduction_from": _blank(df["promo_starts_on"]),
            "reduction_to": (_blank(df["promo_ends_on"]) + " 23:59:59").where(has_promo, ""),
            "reference": df["reference"],
        }
        return prestashop_frame("products", values, df.index)[~bad]

    def _stock(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """Products import: name (kept), reference, quantity; articles with combinations are left
        out (PrestaShop sums their combinations' stock itself)."""
        plain = df[df["has_variants"].fillna("f").isin(["f", "false"])]
        values = {"name": plain["name"], "reference": plain["article_reference"],
                  "quantity": _whole(plain["available_qty"])}
        return prestashop_frame("products", values, plain.index)

    def _variant_stock(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """Combinations import: the catalog's combination row (the import resets what a row leaves
        out) with the available quantity."""
        return self._variant(df.assign(reference=df["variant_reference"], quantity=_whole(df["available_qty"])),
                             rejects)

    def _specific_price(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """specific_prices file, mirroring the webservice resource ``specific_prices``."""
        pct = _num(df["discount_pct"])
        has_price = _num(df["price_excl_vat"]).notna()
        starts, ends = _blank(df["starts_on"]), _blank(df["ends_on"])
        return pd.DataFrame({
            "passerelle_key": df["key"],
            "reference": df["article_reference"],
            "combination_reference": _blank(df["variant_reference"]),
            "id_group": _blank(df["price_list"]),
            "from_quantity": _blank(df["from_quantity"]),
            "price": _fmt(df["price_excl_vat"], 6).where(has_price, "-1"),
            "reduction": (pct / 100).map(lambda x: "0" if pd.isna(x) else f"{x:.6f}"),
            "reduction_tax": "0",
            "reduction_type": pct.notna().map({True: "percentage", False: "amount"}),
            "from": (starts + " 00:00:00").where(starts != "", PS_NO_DATE),
            "to": (ends + " 23:59:59").where(ends != "", PS_NO_DATE),
        }, index=df.index)

    def _order_status(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """order_states file: one state change per row, in the order they happened."""
        df = in_time_order(df)
        return pd.DataFrame({
            "id_order": _blank(df["shop_order_id"]),
            "reference": df["order_number"],
            "status": df["status"],
            "id_order_state": df["status"].map(self.order_states).fillna(""),
            "carrier": _blank(df["carrier"]),
            "tracking_number": _blank(df["tracking_number"]),
            "invoice_number": _blank(df["invoice_number"]),
            "date": self._local_time(df["changed_at"]),
            "customer_email": _blank(df["customer_email"]),
        }, index=df.index)

    def _invoice(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """invoices file: the index of the PDFs published beside it."""
        return pd.DataFrame({
            "invoice_number": df["invoice_number"],
            "id_order": _blank(df["shop_order_id"]),
            "reference": df["order_number"],
            "customer_email": _blank(df["customer_email"]),
            "date": df["invoice_date"],
            "total_paid_tax_excl": _fmt(df["total_excl_vat"], 2),
            "total_paid_tax_incl": _fmt(df["total_incl_vat"], 2),
            "file": pdf_names(df["invoice_number"]),
        }, index=df.index)

    def removed(self, entity: str, df: pd.DataFrame) -> tuple[str, pd.DataFrame]:
        if entity == "specific_price":
            return f"{self.stems[entity]}_off", pd.DataFrame({"passerelle_key": df["key"], "reference": df["label"]})
        return super().removed(entity, df)


EXCHANGE_DIALECTS: dict[str, type[Dialect]] = {"generic": GenericExchangeDialect,
                                                "prestashop": PrestaShopExchangeDialect}


def exchange_dialect(name: str, cfg: dict | None = None) -> GenericExchangeDialect | PrestaShopExchangeDialect:
    """The exchange dialect of a shop profile (``shop.dialect``)."""
    try:
        return EXCHANGE_DIALECTS[name](cfg)  # type: ignore[return-value]
    except KeyError:
        raise ValueError(f"unknown shop dialect {name!r}; expected one of {sorted(EXCHANGE_DIALECTS)}") from None
