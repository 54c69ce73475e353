"""Passerelle's own documented format (docs/formats/generic.md, docs/formats/exchange.md).

UTF-8, comma, dot decimals, one file per entity: the views' columns plus ``active``;
deactivations go to ``*_off`` files (key, active=0). Customers and their addresses (the customers
flow) are documented in docs/formats/generic.md, "Customers".
"""

from __future__ import annotations

import pandas as pd

from passerelle.core.dialects import register
from passerelle.core.dialects.base import (
    RICH_TEXT,
    Dialect,
    Rejects,
    _num,
    delivery_lines,
    in_time_order,
    notify_flags,
    pdf_names,
    sanitise_html,
)

#: View columns the generic files leave out: internal to Passerelle (selection flag, the
#: snapshot's labels, the family ids other dialects use as shop ids).
INTERNAL_COLUMNS = ("web", "removal_label", "family_id", "parent_family_id", "family_ids")
#: View columns other shops' files need, left out of the generic files (their format stays as
#: documented): the article's variants as JSON and its running promotion (WooCommerce, Shopify),
#: the price row's has_variants and promo_active (Shopify's price file).
SHOP_ONLY_COLUMNS: dict[str, tuple[str, ...]] = {
    "article": ("variants", "promo_price_excl_vat", "promo_starts_on", "promo_ends_on", "promo_active"),
    "price": ("promo_active", "has_variants"),
}


#: The generic customers files' columns (docs/formats/generic.md, "Customers"), in order.
GENERIC_CUSTOMER_COLUMNS = (
    "key",
    "active",
    "email",
    "first_name",
    "last_name",
    "company",
    "phone",
    "customer_family",
    "customer_family_name",
    "price_list",
    "vat_territory",
    "vat_number",
)
GENERIC_ADDRESS_COLUMNS = (
    "key",
    "active",
    "customer",
    "customer_email",
    "kind",
    "recipient",
    "first_name",
    "last_name",
    "company",
    "address1",
    "address2",
    "postcode",
    "city",
    "country",
    "phone",
)


def generic_customers(entity: str, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
    """The generic customers (or addresses) file of a chunk: e-mails normalised, rows whose
    e-mail is not one refused. Also the files of shops without a customer import (WooCommerce)."""
    from passerelle.core.customers import check_customers

    df, bad = check_customers(entity, df, rejects)
    columns = GENERIC_CUSTOMER_COLUMNS if entity == "customer" else GENERIC_ADDRESS_COLUMNS
    return df[~bad].assign(active="1").reindex(columns=list(columns)).fillna("")


def generic_customers_removed(entity: str, df: pd.DataFrame) -> pd.DataFrame:
    """Deactivation rows of customers (key, active=0, the e-mail last sent) or addresses (key,
    active=0, the customer's e-mail and the address kind last sent)."""
    parts = df["label"].fillna("").str.split("\t", n=1, expand=True).reindex(columns=range(2)).fillna("")
    if entity == "customer":
        return pd.DataFrame({"key": df["key"], "active": "0", "email": parts[0]})
    return pd.DataFrame({"key": df["key"], "active": "0", "customer_email": parts[0], "kind": parts[1]})


class GenericDialect(Dialect):
    """The catalog: family, brand, supplier, article, variant."""

    name = "generic"
    stems = {
        "family": "categories",
        "brand": "brands",
        "supplier": "suppliers",
        "article": "products",
        "variant": "variants",
        "customer": "customers",
        "customer_address": "customer_addresses",
    }

    def live(self, entity: str, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        if entity in ("customer", "customer_address"):
            return generic_customers(entity, df, rejects)
        out = df.drop(columns=[c for c in (*INTERNAL_COLUMNS, *SHOP_ONLY_COLUMNS.get(entity, ())) if c in df])
        if entity == "family" and "depth" in out:
            # Parents before children (the file's documented order): a shop creating categories
            # row by row finds each parent already there. Same depth: the view's order (by key).
            out = out.iloc[_num(out["depth"]).to_numpy().argsort(kind="stable")]
        for col in RICH_TEXT.get(entity, ()):
            if col in out:
                out[col] = sanitise_html(out[col])
        if entity == "article":
            if not self.settings.catalog.send_purchase_price:
                out = out.drop(columns=["purchase_price"])
        out.insert(1, "active", "1")
        return out

    def removed(self, entity: str, df: pd.DataFrame) -> tuple[str, pd.DataFrame]:
        if entity in ("customer", "customer_address"):
            return f"{self.stems[entity]}_off", generic_customers_removed(entity, df)
        return f"{self.stems[entity]}_off", pd.DataFrame({"key": df["key"], "active": "0"})


def generic_deliveries(settings, df: pd.DataFrame) -> pd.DataFrame:
    """The ``deliveries`` file: one row per line of each parcel (docs/formats/exchange.md,
    "Deliveries"), in the order the parcels left; ``notify`` from the parcel's order status."""
    df = df.sort_values(["shipped_at", "key"], kind="stable")
    out = delivery_lines(df)
    columns = [
        "delivery_number",
        "order_number",
        "shop_order_id",
        "customer_email",
        "shipped_at",
        "carrier",
        "tracking_number",
        "order_status",
        "line_number",
        "reference",
        "label",
        "quantity",
        "ordered",
    ]
    out = out[columns].fillna("")
    return out.assign(notify=notify_flags(settings, out["order_status"]).map({True: "1", False: "0"}))


class GenericExchangeDialect(GenericDialect):
    """The exchanges: the views' columns, UTF-8, comma, dot decimals.

    ``silent_removals``: entities whose removed rows are forgotten by the snapshot but written
    to no file; ``filters_variant_display``: ``stock.variant_display: in_stock`` is applied by
    leaving out-of-stock variants out of the files (see passerelle.core.exchange).
    """

    stems = {
        **GenericDialect.stems,
        "price": "prices",
        "specific_price": "specific_prices",
        "stock": "stock",
        "variant_stock": "variant_stock",
        "order_status": "order_statuses",
        "delivery": "deliveries",
        "invoice": "invoices",
    }
    silent_removals: frozenset[str] = frozenset({"order_status", "delivery", "invoice"})
    filters_variant_display = True

    def live(self, entity: str, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        if entity in ("stock", "variant_stock"):
            out = df[["key", "article_reference", "variant_reference", "real_qty", "available_qty"]].copy()
            out.insert(1, "active", "1")
            return out
        if entity == "order_status":
            out = in_time_order(df)
            return out.assign(notify=notify_flags(self.settings, out["status"]).map({True: "1", False: "0"}))
        if entity == "delivery":
            return generic_deliveries(self.settings, df)
        if entity == "invoice":
            notify = "1" if notify_flags(self.settings, pd.Series(["invoice_available"])).iloc[0] else "0"
            return df.drop(columns=["content_hash"]).assign(file=pdf_names(df["invoice_number"]), notify=notify)
        return super().live(entity, df, rejects)


register("generic", catalog=GenericDialect, exchange=GenericExchangeDialect)
