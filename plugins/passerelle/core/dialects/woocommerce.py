"""WooCommerce: the product CSV of WooCommerce's built-in product importer (WooCommerce > Products > Import).

One file format for everything: products, variations, prices and stock are all rows of the same
product CSV, matched by SKU (tick "Update existing products" on the import screen, else every
existing SKU is skipped). WooCommerce maps columns by header, not by position, so each file
carries only the columns it sets: a column left out leaves the product's value as it is.

Every rule below comes from WooCommerce's own source (woocommerce/woocommerce, paths and commits
in include/reference/woocommerce_product_csv.json) and is documented in docs/formats/woocommerce.md:

- headers: ``WC_Product_CSV_Exporter::get_default_column_names`` (what the exporter writes) and
  ``WC_Product_CSV_Importer_Controller::auto_map_columns`` (what the import screen maps by itself);
- values: ``WC_Product_CSV_Importer::get_formatting_callback`` and the ``parse_*_field`` methods
  (``1``/``0`` booleans, ``Published`` 1/0/-1, dates ``YYYY-MM-DD``, multi-value cells split on
  ``,`` with ``\\,`` for a literal comma, category paths ``Parent > Child``);
- variations: ``WC_Product_Importer::set_variation_data`` refuses a variation whose parent does
  not exist yet or does not declare the variation's attribute, so the parent (``variable``) row
  lists every value of each attribute and is imported before its variations.

Input: rows of the views in include/sql/views (text, as COPY gives them), with the article view's
``variants`` column: the article's active variants as a JSON array (json_agg, in position order),
so that a product and its variations are written together, parent first, and sent again whole
when any of them changes. The view builds it only under the dialect's ``view_options``
(``passerelle.article_variants: on``, see passerelle_src.shop_stock_article and
docs/formats/woocommerce.md, "Input columns"). The same column serves the Shopify dialect.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from typing import Any

import pandas as pd

from passerelle import INCLUDE
from passerelle.config.sections import DEFAULT_TAX_CLASSES  # noqa: F401 (the default of woocommerce.tax_classes)
from passerelle.core.dialects import register
from passerelle.core.dialects.base import (
    Dialect,
    Rejects,
    _num,
    delivery_lines,
    local_time,
    notify_flags,
    plain_number,
    sanitise_html,
    with_shop_order,
)

#: WooCommerce's product CSV columns, extracted from its exporter (see the file's "sources").
REFERENCE_FILE = INCLUDE / "reference" / "woocommerce_product_csv.json"

#: Entities whose rows WooCommerce's product importer has no place for (written to no file).
UNSUPPORTED: frozenset[str] = frozenset({"family", "brand", "supplier", "specific_price"})

#: kg -> the shop's weight unit (woocommerce_weight_unit), as WooCommerce names it in the header
#: (the units ``woocommerce.weight_unit`` accepts, ``WOOCOMMERCE_WEIGHT_UNITS``: kept equal by a test).
WEIGHT_FACTORS: dict[str, float] = {"kg": 1.0, "g": 1000.0, "lbs": 2.20462262185, "oz": 35.2739619496}


@cache
def woocommerce_columns() -> dict[str, str]:
    """key -> header label of WooCommerce's product CSV, in the exporter's order."""
    data = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))
    return {c["key"]: c["label"] for c in data["columns"]}


def escape_values(s: pd.Series) -> pd.Series:
    """A value inside a multi-value cell: WooCommerce splits on "," and reads "\\," as a comma
    (``explode_values``); surrounding spaces are trimmed by the importer anyway."""
    return s.fillna("").astype(str).str.replace(",", "\\,", regex=False)


def versioned_image_urls(df: pd.DataFrame) -> pd.Series:
    """Per article, its image URLs (``image_urls``, cover first) each with ``?v=<version>`` from the
    view's ``images`` ("position:version,...", same order): a render keeps its URL when its photo
    changes, and WooCommerce reuses an attachment whose source URL it has already imported
    (``get_attachment_id_from_url``), so without the version a changed photo would never reach
    the shop. A static file server ignores the query string."""

    def one(urls: Any, images: Any) -> str:
        urls = [u for u in (urls.split(",") if isinstance(urls, str) else []) if u]
        versions = [
            p.split(":", 1)[1] if ":" in p else "" for p in (images.split(",") if isinstance(images, str) else []) if p
        ]
        if len(versions) != len(urls):
            versions = [""] * len(urls)
        return ",".join(f"{u}{'&' if '?' in u else '?'}v={v}" if v else u for u, v in zip(urls, versions))

    images = df["images"] if "images" in df else pd.Series("", index=df.index)
    return pd.Series([one(u, i) for u, i in zip(df["image_urls"], images)], index=df.index, dtype=object)


def category_paths(paths: pd.Series) -> pd.Series:
    """ "Maison > Cuisine" as WooCommerce reads it: ">" between levels (each level trimmed), "," between
    categories, so a "," or ">" inside a family name would cut it: they are escaped or replaced."""

    def one(v: Any) -> str:
        if not isinstance(v, str) or not v:
            return ""
        return " > ".join(p.strip().replace(">", "-").replace(",", "\\,") for p in v.split(" > ") if p.strip())

    return paths.map(one)


def explode_variants(df: pd.DataFrame) -> pd.DataFrame:
    """The article rows' ``variants`` (a JSON array per article, as the view's json_agg gives it)
    as one row per variant: ``_row`` (the article row's index), ``_order`` (position in the
    article), reference, ean, size, colour, price_impact, weight_impact, position, quantity."""
    fields = ["reference", "ean", "size", "colour", "price_impact", "weight_impact", "position", "quantity"]
    records = []
    for row, cell in df["variants"].items():
        if isinstance(cell, str) and cell.strip():
            try:
                items = json.loads(cell)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"passerelle_src.article {df.at[row, 'key']!r}: variants is not JSON ({exc})"
                ) from None
        elif isinstance(cell, list):
            items = cell
        else:
            items = []
        for order, item in enumerate(items or []):
            records.append({"_row": row, "_order": order, **{f: item.get(f) for f in fields}})
    out = pd.DataFrame.from_records(records, columns=["_row", "_order", *fields])
    for col in ("reference", "ean", "size", "colour"):
        out[col] = (
            out[col].map(lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)).astype(object)
        )
    return out


def value_lists(variants: pd.DataFrame, column: str, index: pd.Index) -> pd.Series:
    """Per article, the distinct values of *column* over its variants in their order, joined as
    WooCommerce lists them ("S, M, L"), each value escaped; empty where there are none."""
    values = variants[["_row", column]]
    values = values[values[column] != ""]
    if column == "colour":
        values = values.assign(colour=values["colour"].str.capitalize())
    values = values.drop_duplicates()
    joined = values.groupby("_row", sort=False)[column].agg(lambda vs: ", ".join(v.replace(",", "\\,") for v in vs))
    return joined.reindex(index).fillna("")


def decimals(s: pd.Series | float) -> pd.Series | Decimal:
    """Exact decimals from view text or JSON numbers (None where empty): prices are computed as
    PostgreSQL computes price_incl_vat (numeric, half away from zero), never in binary floats
    (3.00 at 5.5 % is 3.165: 3.17 in the back office, 3.16 in floats)."""

    def one(v: Any) -> Decimal | None:
        if isinstance(v, Decimal):
            return v
        if v is None or (isinstance(v, float) and pd.isna(v)) or (isinstance(v, str) and not v.strip()):
            return None
        try:
            return Decimal(str(v).strip())
        except InvalidOperation:
            return None

    if not isinstance(s, pd.Series):
        return one(s)
    return s.map(one).astype(object)


def add_decimals(a: pd.Series, b: pd.Series | Decimal) -> pd.Series:
    """a + b, an empty b counting as 0; an empty a stays empty."""
    bs = b if isinstance(b, pd.Series) else [b] * len(a)
    return pd.Series(
        [
            x + y if isinstance(x, Decimal) and isinstance(y, Decimal) else (x if isinstance(x, Decimal) else None)
            for x, y in zip(a, bs)
        ],
        index=a.index,
        dtype=object,
    )


def shop_price(excl: pd.Series, vat: pd.Series, *, include_tax: bool, places: int = 2) -> pd.Series:
    """The price a shop is given, as Decimals: incl. VAT rounded to cents (half up, as the back office
    rounds price_incl_vat) or excl. VAT to *places*; None where missing."""
    quantum = Decimal(1).scaleb(-places)
    out = []
    for x, rate in zip(decimals(excl), decimals(vat)):
        x = x if isinstance(x, Decimal) else None
        rate = rate if isinstance(rate, Decimal) else None
        if x is None or (include_tax and rate is None):
            out.append(None)
        elif include_tax:
            out.append((x * (1 + rate / 100)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
        else:
            out.append(x.quantize(quantum, rounding=ROUND_HALF_UP))
    return pd.Series(out, index=excl.index, dtype=object)


def money_text(d: pd.Series) -> pd.Series:
    """Decimals as text with "." (empty where missing)."""
    return d.map(lambda x: format(x, "f") if isinstance(x, Decimal) else "").astype(object)


def _numeric(s: pd.Series) -> pd.Series:
    """Numbers from view text (empty is missing); numbers stay numbers."""
    return s.astype(float) if pd.api.types.is_numeric_dtype(s) else _num(s)


def _flag(mask: pd.Series) -> pd.Series:
    return mask.map({True: "1", False: "0"})


def _true(s: pd.Series) -> pd.Series:
    """PostgreSQL booleans as COPY writes them ("t"/"f"), or "true"/"false"."""
    return s.fillna("f").astype(str).str.lower().isin(["t", "true", "1"])


def require(entity: str, df: pd.DataFrame, columns: tuple[str, ...], shop: str) -> None:
    """Refuse, with the view's name, rows missing a column this shop's format cannot do without."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"passerelle_src.{entity} has no column {missing}: the {shop} dialect needs them "
            f"(see docs/formats/{shop.lower()}.md, 'Input columns')"
        )


class WooCommerceDialect(Dialect):
    """WooCommerce's product CSV: UTF-8, comma, dot decimals, 1/0 booleans, headers by name.

    Configuration (``settings.woocommerce``, :class:`passerelle.config.WoocommerceSection`):

    - ``tax_classes``: VAT rate -> tax class slug (default :data:`DEFAULT_TAX_CLASSES`);
    - ``prices_include_tax``: the shop's "Prices entered with tax" setting (default true): which of
      the back office's prices goes into ``Regular price``;
    - ``weight_unit``: the shop's weight unit (default ``kg``; the header says it);
    - ``attribute_names``: names of the size and colour attributes (default Taille, Couleur);
    - ``global_attributes``: create them as global attributes, usable in layered navigation (default true);
    - ``send_gtin``: add the EAN as ``GTIN, UPC, EAN, or ISBN`` (default false: the import screen does
      not map that header by itself, pick the field once and WooCommerce remembers it).
    """

    name = "woocommerce"
    separator = ","
    stems = {
        "family": "categories",
        "brand": "brands",
        "supplier": "suppliers",
        "article": "products",
        "variant": "variations",
        "price": "products_prices",
        "specific_price": "specific_prices",
        "stock": "products_stock",
        "variant_stock": "variations_stock",
        "customer": "customers",
        "customer_address": "customer_addresses",
        "delivery": "shipment_tracking",
    }
    #: WooCommerce has no built-in customer CSV import: customers go as the generic files.
    customers_note = (
        "WooCommerce has no built-in customer CSV import (its CSV importer/exporter takes products "
        "only): the customers and addresses are written as the generic files (docs/formats/generic.md)"
    )
    #: Removed rows of these entities are forgotten without a file (see passerelle.core.exchange).
    silent_removals: frozenset[str] = frozenset(
        {"price", "stock", "variant_stock", "specific_price", "order_status", "delivery", "invoice"}
    )
    #: Out-of-stock variations are sent with 0 (WooCommerce hides them itself when told to).
    filters_variant_display = False
    #: The article view builds its ``variants`` column for this shop (passerelle.core.export.view_options).
    view_options: dict[str, str] = {"passerelle.article_variants": "on"}
    #: The articles' rows come with ``previous_label``, the label the shop last confirmed (see live_files).
    with_previous: frozenset[str] = frozenset({"article"})

    def live_files(self, entity: str, df: pd.DataFrame, rejects: Rejects) -> dict[str, pd.DataFrame]:
        """File stem -> rows. Products: WooCommerce's importer either creates or updates, never both
        (``WC_Product_CSV_Importer::import``: without "Update existing products" a row whose SKU
        exists is skipped, "A product with this SKU already exists."; with it, a row whose SKU does
        not exist is skipped, "No matching product exists to update."). ``products`` holds every
        product and variation, for the import with the box ticked; ``products_new`` the products
        the shop never confirmed (a full send's: all) with their variations, and every other
        variation (a size added to a product the shop has), for the import without it, where the
        rows the shop already has are skipped. The other entities: one file."""
        rows = self.live(entity, df, rejects)
        if entity != "article":
            return {self.stems[entity]: rows}
        # No previous label: a row the shop never confirmed, and every row of a full send (which
        # sends everything as if the shop had nothing: a product it lacks is created again).
        unconfirmed = set(df.loc[df["previous_label"].fillna("") == "", "reference"])
        new = rows["SKU"].isin(unconfirmed) | rows["Parent"].isin(unconfirmed) | (rows["Type"] == "variation")
        return {f"{self.stems[entity]}_new": rows[new], self.stems[entity]: rows}

    # ------------------------------------------------------------------ frames
    def frame(
        self, values: dict[str, Any], index: pd.Index, attributes: list[dict[str, Any]] | None = None
    ) -> pd.DataFrame:
        """A product CSV: the given WooCommerce fields in the exporter's order (labels as headers),
        then the numbered attribute columns; scalars are repeated on every row."""
        labels = woocommerce_columns()
        unknown = sorted(set(values) - set(labels))
        if unknown:
            raise ValueError(f"WooCommerce's product CSV has no field {unknown}; expected some of {list(labels)}")
        columns: dict[str, Any] = {}
        for key, label in labels.items():
            if key in values:
                label = label.replace("%s", self.settings.woocommerce.weight_unit) if key == "weight" else label
                columns[label] = values[key]
        for n, attribute in enumerate(attributes or [], start=1):
            for suffix in ("name", "value(s)", "visible", "global"):
                if suffix in attribute:
                    columns[f"Attribute {n} {suffix}"] = attribute[suffix]
        return pd.DataFrame(
            {k: v if isinstance(v, pd.Series) else pd.Series(v, index=index, dtype=object) for k, v in columns.items()},
            index=index,
        )

    def _tax_class(self, df: pd.DataFrame, rejects: Rejects) -> tuple[pd.Series, pd.Series]:
        classes = self.settings.woocommerce.tax_classes
        tax_class = _num(df["vat_rate"]).round(2).map(classes)
        bad = rejects.add(
            df,
            tax_class.isna(),
            "vat_rate",
            f"no WooCommerce tax class for this VAT rate (woocommerce.tax_classes has {sorted(classes)})",
        )
        return tax_class.fillna(""), bad

    def _price(self, excl: pd.Series, vat: pd.Series) -> pd.Series:
        """The price the shop is told: incl. VAT (2 decimals) or excl. VAT (4), per its tax setting."""
        return money_text(shop_price(excl, vat, include_tax=self.settings.woocommerce.prices_include_tax, places=4))

    def _stock(self, qty: pd.Series) -> tuple[pd.Series, pd.Series]:
        """``In stock?`` and ``Stock`` (whole units: a ``Stock`` value turns stock management on)."""
        whole = _num(qty).fillna(0).clip(lower=0).floordiv(1).astype(int)
        return _flag(whole > 0), whole.astype(str)

    def _attributes(self, sizes: pd.Series, colours: pd.Series, *, variation: bool) -> list[dict[str, Any]]:
        """Attribute 1 = size, Attribute 2 = colour (empty name where the row has none of it).

        A variable product declares every value ("S, M, L"), visible on the product page; a
        variation names one value per attribute and leaves ``visible`` empty (as in WooCommerce's
        sample_products.csv). ``global`` must agree between the two, since it decides the key the
        variation's attribute is looked up by (``get_variation_attribute_key``)."""
        names = self.settings.woocommerce.attribute_names
        size_name, colour_name = names.size, names.colour
        glob = "1" if self.settings.woocommerce.global_attributes else "0"
        out = []
        for name, values in ((size_name, sizes), (colour_name, colours)):
            has = values.fillna("") != ""
            out.append(
                {
                    "name": pd.Series(name, index=values.index).where(has, ""),
                    "value(s)": values.fillna(""),
                    "visible": pd.Series("" if variation else "1", index=values.index).where(has, ""),
                    "global": pd.Series(glob, index=values.index).where(has, ""),
                }
            )
        return out

    # ------------------------------------------------------------------ entities
    def live(self, entity: str, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        if entity in ("customer", "customer_address"):
            from passerelle.core.dialects.generic import generic_customers

            return generic_customers(entity, df, rejects)
        if entity in UNSUPPORTED or entity == "variant":
            # Categories are created from the products' paths; brands, suppliers and customer or
            # quantity prices have no column in WooCommerce's product CSV; variations are written
            # right after their product in the products file (their parent must exist first).
            return pd.DataFrame(index=df.index[:0])
        method = getattr(self, f"_live_{entity}", None)
        if method is None:
            raise ValueError(
                f"the WooCommerce dialect writes no {entity!r} file; it writes {sorted(set(self.stems) - UNSUPPORTED)}"
            )
        return method(df, rejects)

    def _live_delivery(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """Parcels as the Advanced Shipment Tracking plugin's CSV import takes them (tracking per
        item, docs/formats/woocommerce.md "Parcels"): one row per line of each parcel, ``order_id``
        the WooCommerce order, ``date_shipped`` DD-MM-YYYY in the shop's timezone (choose that
        format on the import screen), ``status_shipped`` 2 (partially shipped) or 1 (shipped), which
        also sends the plugin's shipping e-mail; 0 (order status left as it is, no e-mail) where
        ``notices.notify`` says not to tell the customer."""
        df = with_shop_order(df, "WooCommerce").sort_values(["shipped_at", "key"], kind="stable")
        lines = delivery_lines(df)
        notify = notify_flags(self.settings, lines["order_status"])
        status = lines["order_status"].map({"shipped": "1", "partly_shipped": "2"}).fillna("1")
        return pd.DataFrame(
            {
                "order_id": lines["shop_order_id"].astype(str),
                "tracking_provider": lines["carrier"].fillna(""),
                "tracking_number": lines["tracking_number"].fillna(""),
                "date_shipped": local_time(lines["shipped_at"], self.settings.shop.timezone, "%d-%m-%Y"),
                "status_shipped": status.where(notify, "0"),
                "sku": lines["reference"],
                "qty": lines["quantity"],
                "shipping_note": lines["delivery_number"],
            }
        )

    def _live_article(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """Products, each followed by its variations: a ``simple`` product, or a ``variable`` one
        declaring every size and colour of its variations, then one ``variation`` row per variant
        (``Parent`` = the product's SKU). The article's row changes whenever one of its variants
        does (the view's ``variants`` column), so the product is always sent whole, parent first."""
        require("article", df, ("variants",), "WooCommerce")
        tax_class, bad = self._tax_class(df, rejects)
        df = df[~bad]
        variants = explode_variants(df)
        variable = pd.Series(df.index.isin(variants["_row"]), index=df.index)
        in_stock, stock = self._stock(df["quantity"])
        sizes = value_lists(variants, "size", df.index)
        colours = value_lists(variants, "colour", df.index)
        weight_kg = _num(df["weight_kg"])
        values: dict[str, Any] = {
            "type": variable.map({True: "variable", False: "simple"}),
            "sku": df["reference"],
            "name": df["name"],
            "published": "1",
            "catalog_visibility": "visible",
            "short_description": sanitise_html(df["short_description"].fillna("")),
            "description": sanitise_html(df["long_description"].fillna("")),
            "tax_status": "taxable",
            "tax_class": tax_class[df.index],
            # A variable product's stock is its variations': no Stock (no stock management on the
            # parent), "In stock?" 1 (WooCommerce syncs the parent's status from its variations).
            "stock_status": in_stock.where(~variable, "1"),
            "stock": stock.where(~variable, ""),
            "backorders": "0",
            "weight": self._weight(weight_kg),
            "regular_price": self._price(df["price_excl_vat"], df["vat_rate"]).where(~variable, ""),
            "category_ids": category_paths(df["family_path"]),
            "parent_id": "",
        }
        if self.settings.woocommerce.send_gtin:
            values["global_unique_id"] = df["ean"].fillna("")
        if "image_urls" in df:
            # Same URL, same attachment: WooCommerce looks an external URL up by its source
            # (_wc_attachment_source) before downloading it; the version makes a changed photo new.
            values["images"] = (
                versioned_image_urls(df)
                .str.split(",")
                .map(lambda urls: ", ".join(u.replace(",", "%2C") for u in urls if u) if isinstance(urls, list) else "")
            )
        products = self.frame(values, df.index, self._attributes(sizes, colours, variation=False))
        if not len(variants):
            return products
        return self._interleave(products, self._variations(df, variants))

    def _interleave(self, products: pd.DataFrame, variations: pd.DataFrame) -> pd.DataFrame:
        """Each product's row, then its variations' rows (WooCommerce imports rows in file order)."""
        rows = products.assign(_row=products.index, _order=-1)
        out = pd.concat([rows, variations], ignore_index=True).fillna("")
        out = out.sort_values(["_row", "_order"], kind="stable").drop(columns=["_row", "_order"])
        return out.reset_index(drop=True)

    def _variations(self, df: pd.DataFrame, variants: pd.DataFrame) -> pd.DataFrame:
        """One ``variation`` row per variant: absolute price (article price + impact), its stock,
        its attribute values (one per attribute, among the parent's), ``Parent`` = product SKU."""
        article = df.loc[variants["_row"]].set_index(variants.index)
        in_stock, stock = self._stock(variants["quantity"])
        excl = add_decimals(decimals(article["price_excl_vat"]), decimals(variants["price_impact"]))
        weight = _num(article["weight_kg"]) + _numeric(variants["weight_impact"]).fillna(0)
        size = variants["size"].fillna("")
        colour = variants["colour"].fillna("").str.capitalize()
        label = (size + ", " + colour).str.strip(", ")
        values: dict[str, Any] = {
            "type": "variation",
            "sku": variants["reference"],
            "name": article["name"] + (" - " + label).where(label != "", ""),
            "published": "1",
            # Never empty: set_catalog_visibility() throws on a value it does not know, failing the row.
            "catalog_visibility": "visible",
            "tax_status": "taxable",
            "tax_class": "parent",
            "stock_status": in_stock,
            "stock": stock,
            "backorders": "0",
            "weight": self._weight(weight),
            "regular_price": self._price(excl, article["vat_rate"]),
            "parent_id": article["reference"],
        }
        if self.settings.woocommerce.send_gtin:
            values["global_unique_id"] = variants["ean"].fillna("")
        attributes = self._attributes(escape_values(size), escape_values(colour), variation=True)
        out = self.frame(values, variants.index, attributes)
        return out.assign(_row=variants["_row"].to_numpy(), _order=variants["_order"].to_numpy())

    def _weight(self, kg: pd.Series) -> pd.Series:
        weight = (kg * WEIGHT_FACTORS[self.settings.woocommerce.weight_unit]).round(3)
        return plain_number(weight, 3)

    def _live_price(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """Regular price, sale price and its dates, tax class, by SKU. WooCommerce runs the sale
        itself between the two dates; its importer keeps the date only and ends the sale at the
        start of the day it is given (woocommerce/woocommerce#35321, where its product page ends it
        at 23:59:59), so the end written is the day after the last day of the promotion
        (``woocommerce.sale_end_day_after``, default true)."""
        tax_class, bad = self._tax_class(df, rejects)
        has_promo = df["promo_starts_on"].fillna("") != ""
        sale = self._price(df["promo_price_excl_vat"], df["vat_rate"]).where(has_promo, "")
        regular = self._price(df["price_excl_vat"], df["vat_rate"])
        bad |= rejects.add(
            df,
            has_promo & ~(_num(sale) < _num(regular)),
            "promo_price_excl_vat",
            "the promotional price is not below the regular price",
        )
        values = {
            "sku": df["reference"],
            "date_on_sale_from": df["promo_starts_on"].fillna("").where(has_promo, ""),
            "date_on_sale_to": self._sale_end(df["promo_ends_on"]).where(has_promo, ""),
            "tax_class": tax_class,
            "sale_price": sale,
            "regular_price": regular,
        }
        return self.frame(values, df.index)[~bad]

    def _sale_end(self, last_day: pd.Series) -> pd.Series:
        """The ``Date sale price ends`` of a promotion's last day (``YYYY-MM-DD``): the day after it,
        unless ``woocommerce.sale_end_day_after`` is false (see _live_price)."""
        days = pd.to_datetime(last_day.fillna(""), format="%Y-%m-%d", errors="coerce")
        if self.settings.woocommerce.sale_end_day_after:
            days = days + pd.Timedelta(days=1)
        return days.dt.strftime("%Y-%m-%d").fillna("")

    def _stock_rows(self, df: pd.DataFrame, sku: pd.Series, parent: pd.Series) -> pd.DataFrame:
        in_stock, stock = self._stock(df["available_qty"])
        return self.frame({"sku": sku, "stock_status": in_stock, "stock": stock, "parent_id": parent}, df.index)

    def _live_stock(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """Articles without variants; a variable product's stock is its variations' (variant_stock)."""
        plain = df[~_true(df["has_variants"])]
        return self._stock_rows(plain, plain["article_reference"], pd.Series("", index=plain.index))

    def _live_variant_stock(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        return self._stock_rows(df, df["variant_reference"], df["article_reference"])

    def removed(self, entity: str, df: pd.DataFrame) -> tuple[str, pd.DataFrame]:
        """Deactivations by SKU: a product becomes a draft (``Published`` -1: off the shop, kept with
        its history); a variation becomes private (``Published`` 0: WooCommerce's "Enabled" box
        unticked; -1 on a variation row is read as published by ``expand_data``)."""
        stem = f"{self.stems[entity]}_off"
        if entity in ("customer", "customer_address"):
            from passerelle.core.dialects.generic import generic_customers_removed

            return stem, generic_customers_removed(entity, df)
        if entity == "article":
            return stem, self.frame({"sku": df["key"], "published": "-1"}, df.index)
        if entity == "variant":
            parent = df["label"].fillna("").str.split("\t").str[0]
            return stem, self.frame({"sku": df["key"], "published": "0", "parent_id": parent}, df.index)
        return stem, pd.DataFrame(index=df.index[:0])


# One class serves the catalog and the exchanges: every file is WooCommerce's product CSV.
register("woocommerce", catalog=WooCommerceDialect, exchange=WooCommerceDialect, orders="woocommerce_orders")
