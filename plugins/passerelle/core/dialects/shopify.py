"""Shopify: the product CSV of Shopify's product import and the inventory CSV.

Products (Products > Import, tick "Overwrite products with matching handles"): one group of rows
per product, all with the same ``URL handle``; the first row carries the product's fields and its
first variant, each following row one more variant, and images go one per row (``Product image
URL`` + ``Image position``). Columns a file leaves out keep their value in the shop, so each file
carries only the columns it sets; an update needs ``URL handle`` and ``Title``, and a variant's
columns need its ``Option1 name``/``Option1 value`` (Shopify Help, "Using CSV files to import and
export products"). Stock goes through the inventory CSV (Products > Inventory > Import), one row
per variant and location, ``On hand (new)`` being the quantity set.

Columns and values: include/reference/shopify_product_csv.json (with its sources) and
docs/formats/shopify.md. Booleans are ``TRUE``/``FALSE``, decimals use ``.``, ``Tags`` is a
comma separated list, ``Status`` is ``active``, ``draft`` or ``archived``.

Input: rows of the views in include/sql/views (text, as COPY gives them), plus the article
view's ``variants`` column (JSON array of its active variants, see
:func:`passerelle.core.dialects.woocommerce.explode_variants`): a product and its variants are
one group of rows, written together from the article's row and sent again whole when any of
them changes. The price file needs ``has_variants`` on ``passerelle_src.price``.
"""

from __future__ import annotations

import json
from datetime import date
from functools import cache

import pandas as pd

from passerelle import INCLUDE
from passerelle.config.sections import SHOPIFY_OFF_STATUSES
from passerelle.core.dialects import register
from passerelle.core.dialects.base import (
    Dialect,
    Rejects,
    _num,
    delivery_lines,
    notify_flags,
    plain_number,
    sanitise_html,
    slug,
    with_shop_order,
)
from passerelle.core.dialects.prestashop import article_label_name
from passerelle.core.dialects.woocommerce import (
    _numeric,
    _true,
    add_decimals,
    decimals,
    explode_variants,
    money_text,
    require,
    shop_price,
    versioned_image_urls,
)

#: Shopify's product and inventory CSV columns, with where they were read (see the file's "sources").
REFERENCE_FILE = INCLUDE / "reference" / "shopify_product_csv.json"
#: Shopify's customer CSV columns, with where they were read.
CUSTOMER_REFERENCE_FILE = INCLUDE / "reference" / "shopify_customer_csv.json"

#: Entities Shopify's product CSV has no place for (written to no file): Shopify has no category
#: tree (collections are built from Type and Tags), no brand or supplier list (the brand is the
#: product's Vendor), and no customer-group or quantity prices in its product CSV.
UNSUPPORTED: frozenset[str] = frozenset({"family", "brand", "supplier", "specific_price"})

#: What a product taken off the web becomes: ``archived`` (Shopify: products no longer sold; off
#: every sales channel, out of the default product list, orders kept) rather than ``draft`` (a
#: product being prepared). Both come back with ``active`` when the article returns. Checked with
#: the configuration (``shopify.off_status``).
OFF_STATUSES = SHOPIFY_OFF_STATUSES


@cache
def shopify_columns(kind: str = "product_columns") -> tuple[str, ...]:
    """Shopify's CSV header, in its template's order: ``product_columns`` or ``inventory_columns``."""
    return tuple(json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))[kind])


@cache
def shopify_customer_columns() -> tuple[str, ...]:
    """Shopify's customer CSV header, in its template's (and export's) order."""
    return tuple(json.loads(CUSTOMER_REFERENCE_FILE.read_text(encoding="utf-8"))["customer_columns"])


def international_phones(phones: pd.Series, countries: pd.Series) -> pd.Series:
    """French national numbers (``06 12 34 56 78``) in the international form Shopify checks
    (``+33612345678``); other numbers as they are (Shopify refuses a phone it cannot read)."""
    digits = phones.fillna("").astype(str).str.replace(r"[\s.\-]", "", regex=True)
    french = countries.fillna("FR").str.upper().isin(["FR", ""]) & digits.str.fullmatch(r"0[1-9]\d{8}")
    return ("+33" + digits.str[1:]).where(french, phones.fillna("").astype(str).str.strip())


def _bool(mask: pd.Series) -> pd.Series:
    return mask.map({True: "TRUE", False: "FALSE"})


def handle(reference: pd.Series) -> pd.Series:
    """A product's URL handle from its article reference: stable (a name changes, a reference
    does not, and a new handle would be a new product), lower case, letters, digits and dashes."""
    return slug(reference)


def csv_frame(rows: pd.DataFrame, kind: str = "product_columns") -> pd.DataFrame:
    """The columns of *rows* that Shopify knows, in the template's order; unknown ones refused."""
    columns = shopify_columns(kind)
    unknown = [c for c in rows.columns if c not in columns]
    if unknown:
        raise ValueError(
            f"Shopify's {kind.split('_')[0]} CSV has no column {unknown}; expected some of {list(columns)}"
        )
    return rows[[c for c in columns if c in rows.columns]].fillna("")


#: Current product CSV header -> the name Shopify's previous template gave the same column
#: (include/reference/shopify_product_csv.json, ``legacy_product_columns``), for the columns written here.
LEGACY_NAMES: dict[str, str] = {
    "Title": "Title",
    "URL handle": "Handle",
    "Description": "Body (HTML)",
    "Vendor": "Vendor",
    "Type": "Type",
    "Tags": "Tags",
    "Published on online store": "Published",
    "Status": "Status",
    "SKU": "Variant SKU",
    "Barcode": "Variant Barcode",
    "Option1 name": "Option1 Name",
    "Option1 value": "Option1 Value",
    "Option2 name": "Option2 Name",
    "Option2 value": "Option2 Value",
    "Price": "Variant Price",
    "Compare-at price": "Variant Compare At Price",
    "Charge tax": "Variant Taxable",
    "Inventory tracker": "Variant Inventory Tracker",
    "Inventory quantity": "Variant Inventory Qty",
    "Continue selling when out of stock": "Variant Inventory Policy",
    "Weight value (grams)": "Variant Grams",
    "Weight unit for display": "Variant Weight Unit",
    "Requires shipping": "Variant Requires Shipping",
    "Fulfillment service": "Variant Fulfillment Service",
    "Product image URL": "Image Src",
    "Image position": "Image Position",
    "Image alt text": "Image Alt Text",
    "Gift card": "Gift Card",
    "SEO title": "SEO Title",
}


class ShopifyDialect(Dialect):
    """Shopify's product and inventory CSV files: UTF-8, comma, dot decimals, TRUE/FALSE.

    Configuration (``settings.shopify``, :class:`passerelle.config.ShopifySection`):

    - ``location``: name of the Shopify location the inventory file sets (required for stock);
    - ``prices_include_tax``: the shop's "Include tax in prices" setting (default true);
    - ``option_names``: names of the size and colour options (default Taille, Couleur);
    - ``off_status``: ``archived`` (default) or ``draft`` for a product taken off the web;
    - ``single_location``: also write ``Inventory quantity`` in product files (default false: that
      column is for single-location shops only; stock then comes with the next inventory file);
    - ``csv_headers``: ``current`` (default: the template of Shopify Help today) or ``legacy`` (the
      previous template's names and order, ``Handle``, ``Body (HTML)``, ``Variant SKU``...).

    And the constructor's ``as_of``: the day that decides whether a promotion runs (default
    today), when the rows have no ``promo_active`` column.
    """

    name = "shopify"
    separator = ","
    stems = {
        "family": "collections",
        "brand": "vendors",
        "supplier": "suppliers",
        "article": "products",
        "variant": "variants",
        "price": "products_prices",
        "specific_price": "specific_prices",
        "stock": "inventory",
        "variant_stock": "inventory_variants",
        "customer": "customers",
        "customer_address": "customer_addresses",
        "delivery": "fulfillments",
    }
    silent_removals: frozenset[str] = frozenset(
        {"price", "stock", "variant_stock", "specific_price", "order_status", "delivery", "invoice"}
    )
    #: Out-of-stock variants are sent with 0 ("Continue selling when out of stock" is DENY).
    filters_variant_display = False
    #: The article view builds its ``variants`` column for this shop (passerelle.core.export.view_options).
    view_options: dict[str, str] = {"passerelle.article_variants": "on"}

    # ------------------------------------------------------------------ configuration
    @property
    def option_names(self) -> tuple[str, str]:
        """The names of the size and colour options (``shopify.option_names``)."""
        names = self.settings.shopify.option_names
        return names.size, names.colour

    def _product_csv(self, rows: pd.DataFrame) -> pd.DataFrame:
        """A product CSV in the configured header dialect (``csv_headers``)."""
        out = csv_frame(rows)
        if self.settings.shopify.csv_headers == "current":
            return out
        legacy = shopify_columns("legacy_product_columns")
        out = out.rename(columns=LEGACY_NAMES)
        if "Variant Inventory Policy" in out:
            out["Variant Inventory Policy"] = out["Variant Inventory Policy"].str.lower()  # deny, as that sample
        return out[[c for c in legacy if c in out.columns]]

    @property
    def location(self) -> str:
        location = self.settings.shopify.location
        if not location:
            raise ValueError(
                "shopify.location is not set: the inventory CSV names the Shopify location whose "
                "stock it sets (Settings > Locations), e.g. location: Entrepôt Lyon"
            )
        return str(location)

    def _price(self, excl: pd.Series, vat: pd.Series) -> pd.Series:
        return shop_price(excl, vat, include_tax=self.settings.shopify.prices_include_tax)

    def _promo_active(self, df: pd.DataFrame) -> pd.Series:
        """Whether the row's promotion runs: the view's ``promo_active`` when it has one (then the
        row changes, and is sent again, the day the promotion starts), else by the as-of day."""
        if "promo_starts_on" not in df:
            return pd.Series(False, index=df.index)
        if "promo_active" in df:
            return _true(df["promo_active"])
        today = (self.as_of or date.today()).isoformat()
        starts, ends = df["promo_starts_on"].fillna(""), df["promo_ends_on"].fillna("")
        return (starts != "") & (starts <= today) & ((ends == "") | (ends >= today))

    def _prices(self, df: pd.DataFrame, impact: pd.Series | None = None) -> tuple[pd.Series, pd.Series]:
        """(Price, Compare-at price): the promotional price with the regular one struck through
        while a promotion runs (Shopify has no scheduled sale), else the regular price and an
        empty compare-at price (which ends a previous sale)."""
        impact = pd.Series(None, index=df.index, dtype=object) if impact is None else impact
        regular = self._price(add_decimals(decimals(df["price_excl_vat"]), impact), df["vat_rate"])
        active = self._promo_active(df)
        if "promo_price_excl_vat" in df:
            promo = self._price(add_decimals(decimals(df["promo_price_excl_vat"]), impact), df["vat_rate"])
            below = pd.Series(
                [p is not None and r is not None and p < r for p, r in zip(promo, regular)], index=df.index
            )
            active &= below
            return money_text(promo.where(active, regular)), money_text(regular).where(active, "")
        return money_text(regular), pd.Series("", index=df.index)

    # ------------------------------------------------------------------ entities
    def live(self, entity: str, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        if entity in UNSUPPORTED or entity == "variant":
            # Variants are rows of their product's group, written from the article's row.
            return pd.DataFrame(index=df.index[:0])
        if entity == "customer_address":
            # Shopify's customer CSV holds one address per customer (its default address), written
            # from the customer's row (the customer view carries it, so an address change resends
            # the customer); the addresses themselves are still checked, for the same rejects.
            from passerelle.core.customers import check_customers

            check_customers(entity, df, rejects)
            return pd.DataFrame(index=df.index[:0])
        method = getattr(self, f"_live_{entity}", None)
        if method is None:
            raise ValueError(
                f"the Shopify dialect writes no {entity!r} file; it writes "
                f"{sorted(set(self.stems) - UNSUPPORTED - {'variant'})}"
            )
        return method(df, rejects)

    def _live_delivery(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """fulfillments file, for an app calling the Admin API's ``fulfillmentCreate`` (Shopify's
        admin has no fulfillment CSV import; docs/formats/shopify.md "Parcels"): one row per line of
        each parcel, the fields of ``FulfillmentInput``: ``trackingInfo`` (company, number),
        ``notifyCustomer`` (Shopify's own shipping e-mail) and the line items (by SKU, quantity).
        Shopify marks the order partially fulfilled until every line is fulfilled."""
        df = with_shop_order(df, "Shopify").sort_values(["shipped_at", "key"], kind="stable")
        lines = delivery_lines(df)
        return pd.DataFrame(
            {
                "order_id": lines["shop_order_id"].astype(str),
                "delivery_number": lines["delivery_number"],
                "shipped_at": lines["shipped_at"],
                "tracking_company": lines["carrier"].fillna(""),
                "tracking_number": lines["tracking_number"].fillna(""),
                "notify_customer": notify_flags(self.settings, lines["order_status"]).map(
                    {True: "true", False: "false"}
                ),
                "order_status": lines["order_status"],
                "sku": lines["reference"],
                "quantity": lines["quantity"],
            }
        )

    def _live_customer(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """Customer CSV rows, found by e-mail on import (tick "Overwrite existing customers that have
        the same email or phone"): names, company, default address (delivery, else billing), phone,
        Tax Exempt from the VAT territory, the customer family (and price list) as tags. Marketing
        consent is left empty: the back office holds none, and the shop is where it is given."""
        from passerelle.core.customers import check_customers, names, tax_exempt

        df, bad = check_customers("customer", df, rejects)
        df = df[~bad]
        first, last = names(df)
        tags = df["customer_family"].fillna("")
        price_list = df["price_list"].fillna("")
        tags = (tags + (", " + "price-list-" + price_list.str.lower()).where(price_list != "", "")).str.strip(", ")
        country = df["country"].fillna("").str.strip().str.upper()
        out = pd.DataFrame(
            {
                "Customer ID": "",
                "First Name": first,
                "Last Name": last,
                "Email": df["email"],
                "Accepts Email Marketing": "",
                "Default Address Company": df["company"].fillna(""),
                "Default Address Address1": df["address1"].fillna(""),
                "Default Address Address2": df["address2"].fillna(""),
                "Default Address City": df["city"].fillna(""),
                "Default Address Province Code": "",
                "Default Address Country Code": country,
                "Default Address Zip": df["postcode"].fillna(""),
                "Default Address Phone": international_phones(df["address_phone"], country),
                "Phone": international_phones(df["phone"], country),
                "Accepts SMS Marketing": "",
                "Total Spent": "",
                "Total Orders": "",
                "Note": "",
                "Tax Exempt": tax_exempt(df["vat_territory"]).map({True: "yes", False: "no"}),
                "Tags": tags,
            },
            index=df.index,
        )
        return out[list(shopify_customer_columns())]

    def _live_article(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """One group of rows per product: product fields and first variant, other variants, images."""
        require("article", df, ("variants",), "Shopify")
        variants = explode_variants(df)
        size_name, colour_name = self.option_names
        # Articles without variants get Shopify's single "Default Title" variant.
        plain = df.index[~df.index.isin(variants["_row"])]
        default = pd.DataFrame(
            {
                "_row": plain,
                "_order": 0,
                "reference": df.loc[plain, "reference"].to_numpy(),
                "ean": df.loc[plain, "ean"].fillna("").to_numpy(),
                "size": "",
                "colour": "",
                "price_impact": 0.0,
                "weight_impact": 0.0,
                "quantity": df.loc[plain, "quantity"].to_numpy(),
            }
        )
        rows = pd.concat([default, variants], ignore_index=True)
        has_size = rows["size"] != ""
        has_colour = rows["colour"] != ""
        uses_size = has_size.groupby(rows["_row"]).transform("any")
        uses_colour = has_colour.groupby(rows["_row"]).transform("any")
        # Shopify wants a value for every option of the product on every variant.
        incomplete = ((uses_size & ~has_size) | (uses_colour & ~has_colour)).groupby(rows["_row"]).any()
        bad = rejects.add(
            df,
            pd.Series(df.index.isin(incomplete[incomplete].index), index=df.index),
            "variants",
            "a variant has no size or colour while others of the article have one: Shopify needs a "
            "value for every option of the product",
        )
        # Two variants with the same options are one variant to Shopify.
        # (as written: colours capitalised; compared without case, as a shopper would read them)
        options = rows.assign(size=rows["size"].str.casefold(), colour=rows["colour"].str.casefold())
        twins = options.duplicated(["_row", "size", "colour"], keep=False).groupby(rows["_row"]).any()
        bad |= rejects.add(
            df,
            pd.Series(df.index.isin(twins[twins].index), index=df.index),
            "variants",
            "two variants have the same size and colour: Shopify tells variants apart by their options",
        )
        # Two references with the same handle would be merged into one product.
        handles = handle(df["reference"])
        bad |= rejects.add(
            df.assign(handle=handles),
            handles.duplicated(keep="first") & (handles != ""),
            "handle",
            "another article of this file has the same Shopify URL handle (references differing only "
            "by case or punctuation): rename one reference",
        )
        rows = rows[~rows["_row"].isin(df.index[bad])]
        if not len(rows):
            return pd.DataFrame(index=df.index[:0])
        uses_size, uses_colour = uses_size[rows.index], uses_colour[rows.index]
        has_size, has_colour = has_size[rows.index], has_colour[rows.index]
        article = df.loc[rows["_row"]].set_index(rows.index)
        first = rows["_order"] == rows.groupby("_row")["_order"].transform("min")
        colour = rows["colour"].str.capitalize()

        # Option1 = size (or colour when the product has no sizes), Option2 = colour.
        opt1_name = (
            pd.Series("Title", index=rows.index).mask(uses_size, size_name).mask(~uses_size & uses_colour, colour_name)
        )
        opt1_value = (
            pd.Series("Default Title", index=rows.index)
            .mask(uses_size, rows["size"])
            .mask(~uses_size & uses_colour, colour)
        )
        opt2_name = pd.Series(colour_name, index=rows.index).where(uses_size & uses_colour, "")
        opt2_value = colour.where(uses_size & uses_colour, "")
        price, compare_at = self._prices(article, decimals(rows["price_impact"]))
        grams = ((_num(article["weight_kg"]) + _numeric(rows["weight_impact"]).fillna(0)) * 1000).round(1)
        tags = (
            article["family_path"]
            .fillna("")
            .map(lambda p: ", ".join(" ".join(t.replace(",", " ").split()) for t in p.split(" > ") if t.strip()))
        )

        def product(values: pd.Series) -> pd.Series:
            """A product-level cell: on the group's first row only, as Shopify's export writes it."""
            return values.where(first, "")

        out = pd.DataFrame(
            {
                "Title": product(article["name"]),
                "URL handle": handle(article["reference"]),
                "Description": product(
                    sanitise_html(
                        article["long_description"]
                        .fillna("")
                        .mask(article["long_description"].fillna("") == "", article["short_description"].fillna(""))
                    )
                ),
                "Vendor": product(article["brand"].fillna("")),
                "Type": product(article["family_path"].fillna("").str.split(" > ").str[-1].fillna("")),
                "Tags": product(tags),
                "Published on online store": product(pd.Series("TRUE", index=rows.index)),
                "Status": product(pd.Series("active", index=rows.index)),
                "SKU": rows["reference"],
                "Barcode": rows["ean"].fillna(""),
                "Option1 name": opt1_name.where(first, ""),
                "Option1 value": opt1_value,
                "Option2 name": opt2_name.where(first, ""),
                "Option2 value": opt2_value,
                "Price": price,
                "Compare-at price": compare_at,
                "Charge tax": _bool(_num(article["vat_rate"]).fillna(0) > 0),
                "Inventory tracker": "shopify",
                "Continue selling when out of stock": "DENY",
                "Weight value (grams)": plain_number(grams, 1),
                "Weight unit for display": "kg",
                "Requires shipping": "TRUE",
                "Fulfillment service": "manual",
                "Gift card": product(pd.Series("FALSE", index=rows.index)),
                "SEO title": product(article["name"]),
            },
            index=rows.index,
        )
        if self.settings.shopify.single_location:
            out["Inventory quantity"] = (
                _num(rows["quantity"]).fillna(0).clip(lower=0).floordiv(1).astype(int).astype(str)
            )
        out = self._with_images(out, rows, article)
        return self._product_csv(out)

    def _with_images(self, out: pd.DataFrame, rows: pd.DataFrame, article: pd.DataFrame) -> pd.DataFrame:
        """Image n of a product on the group's n-th row; images beyond its variants get rows of their
        own (URL handle and image columns only), as in Shopify's sample file."""
        out = out.assign(_row=rows["_row"].to_numpy(), _n=rows.groupby("_row").cumcount().to_numpy())
        out["Product image URL"] = ""
        out["Image position"] = ""
        out["Image alt text"] = ""
        if "image_urls" not in article:
            return out.sort_values(["_row", "_n"], kind="stable").drop(columns=["_row", "_n"])
        urls = versioned_image_urls(article).where(out["_n"] == 0).dropna().str.split(",").explode()
        urls = urls[urls.fillna("") != ""]
        images = pd.DataFrame(
            {
                "_row": out.loc[urls.index, "_row"].to_numpy(),
                "url": urls.to_numpy(),
                "alt": out.loc[urls.index, "SEO title"].to_numpy(),
                "handle": out.loc[urls.index, "URL handle"].to_numpy(),
            }
        )
        images["_n"] = images.groupby("_row").cumcount()
        merged = out.merge(images, on=["_row", "_n"], how="outer", suffixes=("", "_img"), sort=False)
        extra = merged["URL handle"].isna()
        merged.loc[extra, "URL handle"] = merged.loc[extra, "handle"]
        merged["Product image URL"] = merged["url"].fillna("")
        merged["Image position"] = (merged["_n"] + 1).astype(int).astype(str).where(merged["url"].notna(), "")
        merged["Image alt text"] = merged["alt"].fillna("")
        merged = merged.sort_values(["_row", "_n"], kind="stable")
        return merged.drop(columns=["_row", "_n", "url", "alt", "handle"]).fillna("").reset_index(drop=True)

    def _live_price(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """A product CSV update of the single variant of articles without variants (handle, title,
        option, price, compare-at price). An article with variants gets its prices with its product
        group in the catalog's products file (its row there changes with its price)."""
        require("price", df, ("has_variants",), "Shopify")
        plain = df[~_true(df["has_variants"])]
        price, compare_at = self._prices(plain)
        return self._product_csv(
            pd.DataFrame(
                {
                    "Title": plain["name"],
                    "URL handle": handle(plain["reference"]),
                    "SKU": plain["reference"],
                    "Option1 name": "Title",
                    "Option1 value": "Default Title",
                    "Price": price,
                    "Compare-at price": compare_at,
                },
                index=plain.index,
            )
        )

    def _inventory(self, df: pd.DataFrame, qty: pd.Series) -> pd.DataFrame:
        """Shopify's inventory CSV: every column of its template (the not-editable ones empty), the
        variant found by handle and options, ``On hand (new)`` the quantity to set."""
        size_name, colour_name = self.option_names
        size, colour = df["size"].fillna(""), df["colour"].fillna("").str.capitalize()
        is_variant = df["variant_reference"].fillna("") != ""
        has_size, has_colour = size != "", colour != ""
        opt1_name = (
            pd.Series("Title", index=df.index)
            .mask(is_variant & has_size, size_name)
            .mask(is_variant & ~has_size & has_colour, colour_name)
        )
        opt1_value = (
            pd.Series("Default Title", index=df.index)
            .mask(is_variant & has_size, size)
            .mask(is_variant & ~has_size & has_colour, colour)
        )
        both = is_variant & has_size & has_colour
        columns = shopify_columns("inventory_columns")
        out = pd.DataFrame(dict.fromkeys(columns, ""), index=df.index)
        out["Handle"] = handle(df["article_reference"])
        out["Title"] = df["name"].fillna("")
        out["Option1 Name"], out["Option1 Value"] = opt1_name, opt1_value
        out["Option2 Name"] = pd.Series(colour_name, index=df.index).where(both, "")
        out["Option2 Value"] = colour.where(both, "")
        out["SKU"] = df["variant_reference"].fillna("").mask(~is_variant, df["article_reference"])
        out["Location"] = self.location
        out["On hand (new)"] = qty
        return out

    def _live_stock(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """Articles without variants (Shopify keeps stock per variant: an article with variants is
        counted through its variants' rows)."""
        plain = df[~_true(df["has_variants"])]
        return self._inventory(plain, _whole(plain["available_qty"]))

    def _live_variant_stock(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        return self._inventory(df, _whole(df["available_qty"]))

    def removed(self, entity: str, df: pd.DataFrame) -> tuple[str, pd.DataFrame]:
        """A product taken off the web: its ``Status`` (``archived`` by default, see OFF_STATUSES),
        found by handle; ``Title`` is required by Shopify's update and comes from the snapshot's
        label (the article's name after the photos digest, :func:`article_label_name`). A removed
        variant: its stock set to 0 in the inventory file, so that nobody can order it whether or
        not Shopify drops it when its product is sent again."""
        stem = f"{self.stems[entity]}_off"
        if entity == "article":
            # The label is "<photos digest><TAB><name>" (the differ): Title is the name last sent.
            return stem, self._product_csv(
                pd.DataFrame(
                    {
                        "Title": article_label_name(df["label"]),
                        "URL handle": handle(df["key"]),
                        "Status": self.settings.shopify.off_status,
                    },
                    index=df.index,
                )
            )
        if entity == "variant":
            parts = df["label"].fillna("").str.split("\t", expand=True).reindex(columns=range(3)).fillna("")
            rows = pd.DataFrame(
                {
                    "article_reference": parts[0],
                    "variant_reference": df["key"],
                    "name": "",
                    "size": parts[1],
                    "colour": parts[2],
                },
                index=df.index,
            )
            return "inventory_off", self._inventory(rows, pd.Series("0", index=df.index))
        if entity == "customer":
            # Shopify's customer import can neither disable nor delete a customer: a documented
            # file (the e-mail last sent) for a person or an app to disable the account.
            return stem, pd.DataFrame({"key": df["key"], "active": "0", "email": df["label"].fillna("")})
        return stem, pd.DataFrame(index=df.index[:0])


def _whole(s: pd.Series) -> pd.Series:
    """Quantities as whole units (rounded down), never below 0; missing is 0."""
    return _num(s).fillna(0).clip(lower=0).floordiv(1).astype(int).astype(str)


# One class serves the catalog and the exchanges: products, prices and inventory files.
register("shopify", catalog=ShopifyDialect, exchange=ShopifyDialect, orders="shopify_orders")
