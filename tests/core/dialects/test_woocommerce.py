"""WooCommerce's product CSV, read back with csv as WooCommerce's importer reads it.

The column list comes from include/reference/woocommerce_product_csv.json, extracted from
WooCommerce's exporter (woocommerce/woocommerce, class-wc-product-csv-exporter.php); value rules
from its importer (class-wc-product-csv-importer.php, abstract-wc-product-importer.php).
"""

from __future__ import annotations

import csv
import io
import json
import re

import pandas as pd
import pytest

from passerelle.core.dialects.base import Rejects
from passerelle.core.dialects.woocommerce import REFERENCE_FILE, WooCommerceDialect

from . import settings

REFERENCE = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))
LABELS = [c["label"] for c in REFERENCE["columns"]]
ATTRIBUTE = re.compile(r"^Attribute (\d+) (name|value\(s\)|visible|global|default)$")

ARTICLES = pd.DataFrame(
    {
        "key": ["ART-1", "TEE"],
        "reference": ["ART-1", "TEE"],
        "name": ["-20% Lot de 2 torchons", "Tee-shirt, coton"],
        "short_description": ["<p>ok</p>", ""],
        "long_description": ['<p onclick="x()">a<script>bad()</script></p>', ""],
        "family_code": ["CUI", "TSH"],
        "family_path": ["Maison > Cuisine", "Mode > Hauts, chemises"],
        "brand": ["B", "B"],
        "supplier": ["S", "S"],
        "supplier_reference": ["SR", "SR"],
        "sales_unit": ["U", "U"],
        "weight_kg": ["1.500", "0.200"],
        "vat_rate": ["20.00", "5.50"],
        "price_excl_vat": ["10.0000", "12.5000"],
        "price_incl_vat": ["12.00", "13.19"],
        "purchase_price": ["4", "6"],
        "ean": ["3760000000017", ""],
        "quantity": ["3.000", "7"],
        "images": ["1:5,2:7", ""],
        "image_urls": ["https://s/images/ART-1_1_large.jpg,https://s/images/ART-1_2_large.jpg", ""],
        "web": ["t", "t"],
        # The article's variants as the view's json_agg writes them (numbers as JSON numbers).
        "variants": [
            None,
            json.dumps(
                [
                    {
                        "reference": "TEE-S",
                        "ean": None,
                        "size": "S",
                        "colour": "BLEU",
                        "price_impact": 0,
                        "weight_impact": 0,
                        "position": 1,
                        "quantity": 2.0,
                    },
                    {
                        "reference": "TEE-M",
                        "ean": "3760000000024",
                        "size": "M",
                        "colour": "BLEU",
                        "price_impact": 1.0,
                        "weight_impact": 0.05,
                        "position": 2,
                        "quantity": 0,
                    },
                ]
            ),
        ],
    }
)


def written(dialect: WooCommerceDialect, entity: str, df: pd.DataFrame) -> tuple[list[str], list[dict], pd.DataFrame]:
    """(header, rows as dicts, rejects) of the file bytes, parsed with csv as PHP's fgetcsv would."""
    rejects = Rejects()
    data = dialect.to_bytes(dialect.live(entity, df, rejects))
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    header = next(reader)
    return header, [dict(zip(header, row)) for row in reader], rejects.frame()


def assert_woocommerce_header(header: list[str], weight_unit: str = "kg") -> None:
    """Every column is one of WooCommerce's, in its exporter's order, attributes last."""
    plain = [h for h in header if not ATTRIBUTE.match(h)]
    labels = [label.replace("%s", weight_unit) for label in LABELS]
    assert all(h in labels for h in plain), set(plain) - set(labels)
    assert [labels.index(h) for h in plain] == sorted(labels.index(h) for h in plain)
    attrs = [h for h in header if ATTRIBUTE.match(h)]
    assert header[len(plain) :] == attrs  # the attribute columns come after the others
    for h in attrs:
        _, suffix = ATTRIBUTE.match(h).groups()
        assert f"Attribute %d {suffix}" in REFERENCE["attribute_columns"]


def test_reference_cites_woocommerce_sources():
    for source in REFERENCE["sources"].values():
        assert source["repo"] == "woocommerce/woocommerce" and re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    # The sample file's header is the exporter's list (with the sample shop's units, and the
    # columns added since: GTIN, Low stock amount), then attribute, meta and download columns.
    sample = next(csv.reader([REFERENCE["sample_header"]]))
    known = [label.replace("%s", unit) for label in LABELS for unit in ("lbs", "in")]
    assert [h for h in sample if not re.match(r"^(Attribute \d|Meta:|Download \d)", h)] == [
        h for h in dict.fromkeys(known) if h in sample
    ]


def test_simple_and_variable_products():
    header, rows, rejects = written(WooCommerceDialect(), "article", ARTICLES)
    assert_woocommerce_header(header)
    assert len(rejects) == 0
    simple, variable, *_ = rows
    assert simple["Type"] == "simple" and simple["SKU"] == "ART-1"
    assert simple["Name"] == "-20% Lot de 2 torchons"  # no formula quote: WooCommerce would keep it
    assert simple["Published"] == "1" and simple["Visibility in catalog"] == "visible"
    assert simple["Regular price"] == "12.00" and simple["Tax class"] == "" and simple["Tax status"] == "taxable"
    assert simple["In stock?"] == "1" and simple["Stock"] == "3" and simple["Backorders allowed?"] == "0"
    assert simple["Weight (kg)"] == "1.5" and simple["Parent"] == ""
    assert simple["Categories"] == "Maison > Cuisine"
    assert simple["Images"] == "https://s/images/ART-1_1_large.jpg?v=5, https://s/images/ART-1_2_large.jpg?v=7"
    assert "script" not in simple["Description"] and "onclick" not in simple["Description"]
    assert simple["Attribute 1 name"] == "" and simple["Attribute 2 name"] == ""
    assert "GTIN, UPC, EAN, or ISBN" not in header  # not mapped by the import screen by itself

    assert variable["Type"] == "variable" and variable["Regular price"] == "" and variable["Stock"] == ""
    assert variable["In stock?"] == "1"
    assert variable["Tax class"] == "reduced-rate"
    # "," inside a category name is escaped, so that it stays one category.
    assert variable["Categories"] == "Mode > Hauts\\, chemises"
    assert (variable["Attribute 1 name"], variable["Attribute 1 value(s)"]) == ("Taille", "S, M")
    assert (variable["Attribute 2 name"], variable["Attribute 2 value(s)"]) == ("Couleur", "Bleu")
    assert variable["Attribute 1 visible"] == "1" and variable["Attribute 1 global"] == "1"


def test_two_variations_follow_their_variable_product():
    _, rows, _ = written(WooCommerceDialect(), "article", ARTICLES)
    assert [(r["Type"], r["SKU"], r["Parent"]) for r in rows] == [
        ("simple", "ART-1", ""),
        ("variable", "TEE", ""),
        ("variation", "TEE-S", "TEE"),
        ("variation", "TEE-M", "TEE"),
    ]
    parent, *variations = rows[1:]
    # Absolute prices incl. VAT: (12.50 + impact) * 1.055; weight: article's + impact.
    assert [r["Regular price"] for r in variations] == ["13.19", "14.24"]
    assert [r["Weight (kg)"] for r in variations] == ["0.2", "0.25"]
    assert [r["Name"] for r in variations] == ["Tee-shirt, coton - S, Bleu", "Tee-shirt, coton - M, Bleu"]
    assert [r["Attribute 1 value(s)"] for r in variations] == ["S", "M"]
    assert [r["Attribute 2 value(s)"] for r in variations] == ["Bleu", "Bleu"]
    # Each variation's values are among the parent's, under the same attribute name and "global"
    # (WooCommerce refuses a variation whose attribute its parent does not declare).
    for row in variations:
        for n in ("1", "2"):
            assert row[f"Attribute {n} name"] == parent[f"Attribute {n} name"]
            assert row[f"Attribute {n} global"] == parent[f"Attribute {n} global"]
            assert row[f"Attribute {n} value(s)"] in parent[f"Attribute {n} value(s)"].split(", ")
            assert row[f"Attribute {n} visible"] == ""
    assert [r["In stock?"] for r in variations] == ["1", "0"] and [r["Stock"] for r in variations] == ["2", "0"]
    assert [r["Tax class"] for r in variations] == ["parent", "parent"]
    assert all(r["Categories"] == "" and r["Images"] == "" for r in variations)
    assert all(r["Visibility in catalog"] == "visible" for r in rows)  # WooCommerce throws on an empty one
    # The variant entity writes no file of its own.
    assert len(WooCommerceDialect().live("variant", pd.DataFrame({"key": ["TEE-S"]}), Rejects())) == 0


def test_products_to_create_and_to_update_go_to_their_own_imports():
    """WooCommerce's importer creates (box unticked) or updates ("Update existing products"), never
    both: ``products`` holds every row, for the update; ``products_new`` the products the shop
    never confirmed with their variations, and the variations of the others (one may be new),
    for the creation, which skips the rows the shop has."""
    dialect = WooCommerceDialect()
    changed = ARTICLES.assign(batch_op=["C", "U"], previous_label=[None, "l"])  # ART-1 new; TEE changed
    files = dialect.live_files("article", changed, Rejects())
    assert list(files) == ["products_new", "products"]
    assert [(r, s) for r, s in zip(files["products"]["Type"], files["products"]["SKU"], strict=True)] == [
        ("simple", "ART-1"),
        ("variable", "TEE"),
        ("variation", "TEE-S"),
        ("variation", "TEE-M"),
    ]
    assert files["products_new"]["SKU"].tolist() == ["ART-1", "TEE-S", "TEE-M"]
    # A full send (no previous label, whatever the row's op: U for a row the snapshot holds):
    # both imports get every row, so that a product the shop lacks is created again.
    full = dialect.live_files("article", ARTICLES.assign(batch_op=["C", "U"], previous_label=None), Rejects())
    assert (
        full["products_new"]["SKU"].tolist() == full["products"]["SKU"].tolist() == ["ART-1", "TEE", "TEE-S", "TEE-M"]
    )
    # Other entities: one file.
    assert list(dialect.live_files("variant", pd.DataFrame({"key": ["TEE-S"]}), Rejects())) == ["variations"]


def test_prices_round_as_the_back_office():
    """3.00 excl. VAT at 5.5 % is 3.165: 3.17 in PostgreSQL (half away from zero), 3.16 in floats."""
    row = ARTICLES.iloc[[0]].assign(price_excl_vat="3.0000", vat_rate="5.50")
    _, rows, _ = written(WooCommerceDialect(), "article", row)
    assert rows[0]["Regular price"] == "3.17"


def test_tax_class_map_and_rejects():
    cfg = {
        "tax_classes": {20: "", 10: "intermediate"},
        "prices_include_tax": False,
        "weight_unit": "g",
        "send_gtin": True,
    }
    header, rows, rejects = written(WooCommerceDialect(settings(woocommerce=cfg)), "article", ARTICLES)
    assert_woocommerce_header(header, weight_unit="g")
    assert [r["SKU"] for r in rows] == ["ART-1"]
    assert list(rejects["key"]) == ["TEE"] and rejects.loc[0, "field"] == "vat_rate"
    assert "woocommerce.tax_classes" in rejects.loc[0, "reason"]
    assert rows[0]["Regular price"] == "10.0000" and rows[0]["Weight (g)"] == "1500"
    assert rows[0]["GTIN, UPC, EAN, or ISBN"] == "3760000000017"


def test_deactivations_by_sku():
    dialect = WooCommerceDialect()
    stem, out = dialect.removed("article", pd.DataFrame({"key": ["ART-1"], "label": ["ART-1"]}))
    assert stem == "products_off" and list(out.columns) == ["SKU", "Published"]
    assert out.iloc[0].tolist() == ["ART-1", "-1"]  # draft
    stem, out = dialect.removed("variant", pd.DataFrame({"key": ["TEE-M"], "label": ["TEE\tM\tBLEU"]}))
    assert stem == "variations_off" and list(out.columns) == ["SKU", "Published", "Parent"]
    assert out.iloc[0].tolist() == ["TEE-M", "0", "TEE"]  # private: the variation's "Enabled" unticked
    stem, out = dialect.removed("family", pd.DataFrame({"key": ["CUI"], "label": ["Cuisine"]}))
    assert len(out) == 0


def test_families_brands_suppliers_write_nothing():
    for entity in ("family", "brand", "supplier", "specific_price"):
        assert len(WooCommerceDialect().live(entity, pd.DataFrame({"key": ["X"], "name": ["X"]}), Rejects())) == 0
    with pytest.raises(ValueError, match="no 'order_status' file"):
        WooCommerceDialect().live("order_status", pd.DataFrame({"key": ["X"]}), Rejects())


def test_missing_view_columns_are_named():
    with pytest.raises(ValueError, match=r"passerelle_src.article has no column \['variants'\]"):
        WooCommerceDialect().live("article", ARTICLES.drop(columns=["variants"]), Rejects())


PRICES = pd.DataFrame(
    {
        "key": ["ART-1", "TEE", "BAD"],
        "reference": ["ART-1", "TEE", "BAD"],
        "name": ["a", "b", "c"],
        "vat_rate": ["20.00", "5.50", "20.00"],
        "price_excl_vat": ["10.0000", "12.5000", "5"],
        "price_incl_vat": ["12.00", "13.19", "6.00"],
        "promo_discount_pct": ["", "10", ""],
        "promo_price_excl_vat": ["", "11.2500", "6"],
        "promo_price_incl_vat": ["", "11.87", "7.20"],
        "promo_starts_on": ["", "2026-12-01", "2026-12-01"],
        "promo_ends_on": ["", "2026-12-24", "2026-12-31"],
    }
)


def test_price_update_file():
    header, rows, rejects = written(WooCommerceDialect(), "price", PRICES)
    assert_woocommerce_header(header)
    assert header == [
        "SKU",
        "Date sale price starts",
        "Date sale price ends",
        "Tax class",
        "Sale price",
        "Regular price",
    ]
    plain, promo = rows
    assert (plain["Regular price"], plain["Sale price"], plain["Date sale price starts"]) == ("12.00", "", "")
    assert (promo["Regular price"], promo["Sale price"]) == ("13.19", "11.87")
    # The promotion runs until 2026-12-24 included: WooCommerce's importer ends a sale at the start
    # of the day it is given (woocommerce/woocommerce#35321), so the file says the day after.
    assert (promo["Date sale price starts"], promo["Date sale price ends"]) == ("2026-12-01", "2026-12-25")
    assert list(rejects["key"]) == ["BAD"] and rejects.loc[0, "field"] == "promo_price_excl_vat"
    # A WooCommerce that ends it at 23:59:59 of the day given (its product page's way): the last day.
    _, rows, _ = written(WooCommerceDialect(settings(woocommerce={"sale_end_day_after": False})), "price", PRICES)
    assert rows[1]["Date sale price ends"] == "2026-12-24"
    # A year's last day, and a promotion without an end.
    ends = WooCommerceDialect()._sale_end(pd.Series(["2026-12-31", None, ""]))
    assert ends.tolist() == ["2027-01-01", "", ""]


STOCK = pd.DataFrame(
    {
        "key": ["ART-1", "TEE", "TEE-S"],
        "level": ["article", "article", "variant"],
        "article_reference": ["ART-1", "TEE", "TEE"],
        "variant_reference": [None, None, "TEE-S"],
        "name": ["a", "b", "b"],
        "has_variants": ["f", "t", "f"],
        "real_qty": ["5", "9", "4"],
        "available_qty": ["3.5", "7", "0"],
    }
)


def test_stock_update_files():
    header, rows, _ = written(WooCommerceDialect(), "stock", STOCK[STOCK["level"] == "article"])
    assert header == ["SKU", "In stock?", "Stock", "Parent"]
    assert rows == [{"SKU": "ART-1", "In stock?": "1", "Stock": "3", "Parent": ""}]  # TEE: its variations'
    _, rows, _ = written(WooCommerceDialect(), "variant_stock", STOCK[STOCK["level"] == "variant"])
    assert rows == [{"SKU": "TEE-S", "In stock?": "0", "Stock": "0", "Parent": "TEE"}]


# -- on the seeded back office's own view rows ---------------------------------------------------


def view_articles(erp) -> pd.DataFrame:
    """passerelle_src.article's web rows as COPY gives them, with the ``variants`` column the
    dialect needs (built by the view under the dialect's view options, as the exporter sets them)."""
    from passerelle.core.export import apply_settings, view_options
    from passerelle.db import read_query_chunks

    with erp.transaction():
        apply_settings(erp, view_options(WooCommerceDialect()))
        query = "SELECT v.* FROM passerelle_src.article v WHERE v.web ORDER BY v.key"
        return pd.concat(list(read_query_chunks(erp, query)), ignore_index=True)


def test_view_rows_of_the_demo_back_office(erp):
    articles = view_articles(erp)
    variants = pd.DataFrame(
        erp.execute(
            "SELECT a.reference, v.reference, v.size, v.colour "
            "FROM erp.variant v JOIN erp.article a ON a.id = v.article_id "
            "WHERE v.active AND a.web ORDER BY v.position, v.reference"
        ).fetchall(),
        columns=["article", "reference", "size", "colour"],
    )
    assert len(variants), "the demo back office has variants"
    header, rows, rejects = written(WooCommerceDialect(), "article", articles)
    assert_woocommerce_header(header)
    assert len(rejects) == 0
    products = [r for r in rows if r["Type"] != "variation"]
    assert [r["SKU"] for r in products] == articles["reference"].tolist()
    # Every variation right after its parent, which declares each of its values.
    parent = None
    for row in rows:
        if row["Type"] != "variation":
            parent = row
            continue
        assert parent["Type"] == "variable" and row["Parent"] == parent["SKU"]
        for n in ("1", "2"):
            if row[f"Attribute {n} name"]:
                assert row[f"Attribute {n} value(s)"] in parent[f"Attribute {n} value(s)"].split(", ")
    assert sorted(r["SKU"] for r in rows if r["Type"] == "variation") == sorted(variants["reference"])
    # The shop's price incl. VAT is the back office's own (passerelle_src.article.price_incl_vat).
    incl = dict(zip(articles["reference"], articles["price_incl_vat"]))
    assert {r["SKU"]: r["Regular price"] for r in rows if r["Type"] == "simple"} == {
        sku: incl[sku] for sku in (r["SKU"] for r in rows if r["Type"] == "simple")
    }
    for row in rows:
        if row["Type"] != "variable":
            assert re.fullmatch(r"\d+\.\d{2}", row["Regular price"]), row
            assert re.fullmatch(r"\d+", row["Stock"]) and row["In stock?"] in ("0", "1")


def test_a_changed_photo_gets_a_new_url():
    """WooCommerce reuses the attachment of a URL it has imported: a new version must change the URL."""
    before = written(WooCommerceDialect(), "article", ARTICLES.iloc[[0]])[1][0]["Images"]
    after = written(WooCommerceDialect(), "article", ARTICLES.iloc[[0]].assign(images="1:5,2:9"))[1][0]["Images"]
    assert before.split(", ")[0] == after.split(", ")[0]
    assert after.split(", ")[1] == "https://s/images/ART-1_2_large.jpg?v=9" != before.split(", ")[1]
