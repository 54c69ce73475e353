"""Shopify's product and inventory CSV files, read back with csv as a spreadsheet or Shopify would.

Column lists: include/reference/shopify_product_csv.json (Shopify Help's template header and
the inventory export header, with their sources).
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date

import pandas as pd
import pytest

from passerelle.core.dialects.base import Rejects
from passerelle.core.dialects.shopify import REFERENCE_FILE, ShopifyDialect

from . import settings

REFERENCE = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))

ARTICLES = pd.DataFrame(
    {
        "key": ["ART-1", "TEE", "ODD"],
        "reference": ["ART-1", "TEE", "ODD"],
        "name": ["-20% Lot de 2 torchons", "Tee-shirt, coton", "Bol"],
        "short_description": ["<p>court</p>", "", ""],
        "long_description": ['<p onclick="x()">a<script>bad()</script></p>', "", ""],
        "family_code": ["CUI", "TSH", "CUI"],
        "family_path": ["Maison > Cuisine", "Mode > Hauts, chemises", "Maison"],
        "brand": ["Marque", "Marque", ""],
        "supplier": ["S", "S", "S"],
        "supplier_reference": ["SR", "SR", "SR"],
        "sales_unit": ["U", "U", "U"],
        "weight_kg": ["1.500", "0.200", "0.3"],
        "vat_rate": ["20.00", "5.50", "20.00"],
        "price_excl_vat": ["10.0000", "12.5000", "3"],
        "price_incl_vat": ["12.00", "13.19", "3.60"],
        "purchase_price": ["4", "6", "1"],
        "ean": ["3760000000017", "", ""],
        "quantity": ["3.000", "2", "1"],
        "images": ["1:5,2:7", "", ""],
        "image_urls": ["https://s/images/ART-1_1_large.jpg,https://s/images/ART-1_2_large.jpg", "", ""],
        "web": ["t", "t", "t"],
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
            json.dumps(
                [  # one variant with a colour, one without: Shopify cannot take it
                    {
                        "reference": "ODD-1",
                        "size": "S",
                        "colour": "ROUGE",
                        "price_impact": 0,
                        "weight_impact": 0,
                        "position": 1,
                    },
                    {
                        "reference": "ODD-2",
                        "size": "M",
                        "colour": None,
                        "price_impact": 0,
                        "weight_impact": 0,
                        "position": 2,
                    },
                ]
            ),
        ],
    }
)


def parse(data: bytes) -> tuple[list[str], list[dict]]:
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    header = next(reader)
    return header, [dict(zip(header, row)) for row in reader]


def written(dialect: ShopifyDialect, entity: str, df: pd.DataFrame) -> tuple[list[str], list[dict], pd.DataFrame]:
    rejects = Rejects()
    header, rows = parse(dialect.to_bytes(dialect.live(entity, df, rejects)))
    return header, rows, rejects.frame()


def assert_in_template_order(header: list[str], kind: str = "product_columns") -> None:
    template = REFERENCE[kind]
    assert all(h in template for h in header), set(header) - set(template)
    assert [template.index(h) for h in header] == sorted(template.index(h) for h in header)


def test_reference_lists_cite_their_sources():
    assert REFERENCE["product_columns"][:2] == ["Title", "URL handle"]
    assert REFERENCE["sources"]["product_help"]["url"].startswith("https://help.shopify.com/")
    assert len(REFERENCE["sources"]["product_columns"]["commit"]) == 40
    assert REFERENCE["inventory_columns"][-1] == "On hand (new)"


def test_products_grouped_by_handle():
    header, rows, rejects = written(ShopifyDialect(), "article", ARTICLES)
    assert_in_template_order(header)
    assert {"Title", "URL handle"} <= set(header)  # what an update needs
    assert list(rejects["key"]) == ["ODD"] and rejects.loc[0, "field"] == "variants"
    assert [r["URL handle"] for r in rows] == ["art-1", "art-1", "tee", "tee"]

    simple, image2, tee_s, tee_m = rows
    assert simple["Title"] == "-20% Lot de 2 torchons"  # not neutralised: Shopify keeps cells as written
    assert (simple["Option1 name"], simple["Option1 value"]) == ("Title", "Default Title")
    assert simple["SKU"] == "ART-1" and simple["Barcode"] == "3760000000017"
    assert simple["Price"] == "12.00" and simple["Compare-at price"] == ""
    assert simple["Status"] == "active" and simple["Published on online store"] == "TRUE"
    assert simple["Charge tax"] == "TRUE" and simple["Requires shipping"] == "TRUE" and simple["Gift card"] == "FALSE"
    assert simple["Inventory tracker"] == "shopify" and simple["Continue selling when out of stock"] == "DENY"
    assert simple["Weight value (grams)"] == "1500" and simple["Weight unit for display"] == "kg"
    assert simple["Vendor"] == "Marque" and simple["Type"] == "Cuisine" and simple["Tags"] == "Maison, Cuisine"
    assert "script" not in simple["Description"] and "onclick" not in simple["Description"]
    assert (simple["Product image URL"], simple["Image position"]) == ("https://s/images/ART-1_1_large.jpg?v=5", "1")
    # The second image: a row of its own with the handle and image columns only.
    assert (image2["Product image URL"], image2["Image position"]) == ("https://s/images/ART-1_2_large.jpg?v=7", "2")
    assert all(
        image2[c] == ""
        for c in header
        if c not in ("URL handle", "Product image URL", "Image position", "Image alt text")
    )
    assert "Inventory quantity" not in header  # single-location column, off by default

    # Product fields on the group's first row only; option names there too; values on every row.
    assert tee_s["Title"] == "Tee-shirt, coton" and tee_m["Title"] == ""
    assert (tee_s["Option1 name"], tee_s["Option2 name"], tee_m["Option1 name"]) == ("Taille", "Couleur", "")
    assert [(r["Option1 value"], r["Option2 value"]) for r in (tee_s, tee_m)] == [("S", "Bleu"), ("M", "Bleu")]
    assert [r["SKU"] for r in (tee_s, tee_m)] == ["TEE-S", "TEE-M"]
    assert [r["Barcode"] for r in (tee_s, tee_m)] == ["", "3760000000024"]
    assert [r["Price"] for r in (tee_s, tee_m)] == ["13.19", "14.24"]  # (12.50 + impact) * 1.055
    assert [r["Weight value (grams)"] for r in (tee_s, tee_m)] == ["200", "250"]
    assert tee_s["Tags"] == "Mode, Hauts chemises"  # "," would cut the tag in two
    assert tee_s["Status"] == "active" and tee_m["Status"] == ""
    # The variant entity writes no file: its rows are in their product's group.
    assert len(ShopifyDialect().live("variant", pd.DataFrame({"key": ["TEE-S"]}), Rejects())) == 0


def test_articles_shopify_could_not_tell_apart_are_rejected():
    twins = ARTICLES.iloc[[0, 1]].copy()
    twins.loc[0, "variants"] = json.dumps(
        [{"reference": "A-1", "size": "S", "colour": "ROUGE"}, {"reference": "A-2", "size": "S", "colour": "rouge"}]
    )
    same_handle = ARTICLES.iloc[[0]].assign(key="art_1", reference="art_1")
    _, rows, rejects = written(ShopifyDialect(), "article", pd.concat([twins, same_handle], ignore_index=True))
    assert [r["SKU"] for r in rows] == ["TEE-S", "TEE-M"]
    assert rejects.set_index("key")["field"].to_dict() == {"ART-1": "variants", "art_1": "handle"}
    assert rejects.set_index("key").loc["art_1", "value"] == "art-1"


def test_legacy_headers():
    """The previous template's names and order, for a shop whose importer wants them."""
    legacy = ShopifyDialect(settings(shopify={"csv_headers": "legacy"}))
    header, rows, _ = written(legacy, "article", ARTICLES.iloc[[0]])
    assert_in_template_order(header, "legacy_product_columns")
    assert header[:3] == ["Handle", "Title", "Body (HTML)"]
    assert (rows[0]["Variant SKU"], rows[0]["Variant Price"], rows[0]["Image Src"]) == (
        "ART-1",
        "12.00",
        "https://s/images/ART-1_1_large.jpg?v=5",
    )
    assert rows[0]["Variant Inventory Policy"] == "deny" and rows[0]["Status"] == "active"
    with pytest.raises(ValueError, match="shopify.csv_headers"):
        ShopifyDialect(settings(shopify={"csv_headers": "v2"})).live("article", ARTICLES.iloc[[0]], Rejects())


def test_a_running_promotion_is_the_price_with_compare_at():
    promo = ARTICLES.iloc[[0]].assign(
        promo_price_excl_vat="8.0000", promo_starts_on="2026-11-20", promo_ends_on="2026-12-24"
    )
    _, rows, _ = written(ShopifyDialect(as_of=date(2026, 12, 1)), "article", promo)
    assert (rows[0]["Price"], rows[0]["Compare-at price"]) == ("9.60", "12.00")
    _, rows, _ = written(ShopifyDialect(as_of=date(2026, 11, 1)), "article", promo)
    assert (rows[0]["Price"], rows[0]["Compare-at price"]) == ("12.00", "")
    # The view's own flag wins over the day (its row changes when the promotion starts).
    _, rows, _ = written(ShopifyDialect(as_of=date(2026, 11, 1)), "article", promo.assign(promo_active="t"))
    assert rows[0]["Price"] == "9.60"


PRICES = pd.DataFrame(
    {
        "key": ["ART-1", "TEE"],
        "reference": ["ART-1", "TEE"],
        "name": ["Lot", "Tee"],
        "has_variants": ["f", "t"],
        "vat_rate": ["20.00", "5.50"],
        "price_excl_vat": ["10.0000", "12.5000"],
        "price_incl_vat": ["12.00", "13.19"],
        "promo_discount_pct": ["20", ""],
        "promo_price_excl_vat": ["8.0000", ""],
        "promo_price_incl_vat": ["9.60", ""],
        "promo_starts_on": ["2026-11-20", ""],
        "promo_ends_on": ["2026-12-24", ""],
    }
)


def test_price_update_as_a_product_csv():
    header, rows, _ = written(ShopifyDialect(as_of=date(2026, 12, 1)), "price", PRICES)
    assert_in_template_order(header)
    assert header == ["Title", "URL handle", "SKU", "Option1 name", "Option1 value", "Price", "Compare-at price"]
    assert rows == [
        {
            "Title": "Lot",
            "URL handle": "art-1",
            "SKU": "ART-1",
            "Option1 name": "Title",
            "Option1 value": "Default Title",
            "Price": "9.60",
            "Compare-at price": "12.00",
        }
    ]
    with pytest.raises(ValueError, match=r"passerelle_src.price has no column \['has_variants'\]"):
        ShopifyDialect().live("price", PRICES.drop(columns=["has_variants"]), Rejects())


STOCK = pd.DataFrame(
    {
        "key": ["ART-1", "TEE", "TEE-S", "TEE-M"],
        "level": ["article", "article", "variant", "variant"],
        "article_reference": ["ART-1", "TEE", "TEE", "TEE"],
        "variant_reference": [None, None, "TEE-S", "TEE-M"],
        "name": ["Lot", "Tee", "Tee", "Tee"],
        "has_variants": ["f", "t", "f", "f"],
        "size": [None, None, "S", "M"],
        "colour": [None, None, "BLEU", None],
        "real_qty": ["5", "9", "4", "5"],
        "available_qty": ["3.5", "7", "0", "5"],
    }
)


def test_inventory_files():
    dialect = ShopifyDialect(settings(shopify={"location": "Entrepôt Lyon"}))
    header, rows, _ = written(dialect, "stock", STOCK[STOCK["level"] == "article"])
    assert header == REFERENCE["inventory_columns"]
    assert len(rows) == 1  # TEE: counted through its variants
    row = rows[0]
    assert (row["Handle"], row["Title"], row["SKU"], row["Location"]) == ("art-1", "Lot", "ART-1", "Entrepôt Lyon")
    assert (row["Option1 Name"], row["Option1 Value"], row["On hand (new)"]) == ("Title", "Default Title", "3")
    assert row["Available (not editable)"] == "" and row["On hand (current)"] == ""

    _, rows, _ = written(dialect, "variant_stock", STOCK[STOCK["level"] == "variant"])
    assert [
        (r["SKU"], r["Option1 Name"], r["Option1 Value"], r["Option2 Name"], r["Option2 Value"], r["On hand (new)"])
        for r in rows
    ] == [("TEE-S", "Taille", "S", "Couleur", "Bleu", "0"), ("TEE-M", "Taille", "M", "", "", "5")]
    with pytest.raises(ValueError, match="shopify.location is not set"):
        ShopifyDialect().live("stock", STOCK, Rejects())


def test_deactivations():
    dialect = ShopifyDialect(settings(shopify={"location": "Entrepôt Lyon"}))
    stem, out = dialect.removed("article", pd.DataFrame({"key": ["ART-1"], "label": ["Lot de 2 torchons"]}))
    header, rows = parse(dialect.to_bytes(out))
    assert stem == "products_off" and header == ["Title", "URL handle", "Status"]
    assert rows == [{"Title": "Lot de 2 torchons", "URL handle": "art-1", "Status": "archived"}]
    removed = pd.DataFrame({"key": ["A"], "label": ["A"]})
    _, out = ShopifyDialect(settings(shopify={"off_status": "draft"})).removed("article", removed)
    assert out["Status"].tolist() == ["draft"]
    with pytest.raises(ValueError, match="shopify.off_status"):
        ShopifyDialect(settings(shopify={"off_status": "deleted"})).removed("article", removed)

    stem, out = dialect.removed("variant", pd.DataFrame({"key": ["TEE-M"], "label": ["TEE\tM\tBLEU"]}))
    header, rows = parse(dialect.to_bytes(out))
    assert stem == "inventory_off" and header == REFERENCE["inventory_columns"]
    assert (
        rows[0]["Handle"],
        rows[0]["SKU"],
        rows[0]["Option1 Value"],
        rows[0]["Option2 Value"],
        rows[0]["On hand (new)"],
    ) == ("tee", "TEE-M", "M", "Bleu", "0")


def test_unsupported_entities_write_nothing():
    for entity in ("family", "brand", "supplier", "specific_price"):
        assert len(ShopifyDialect().live(entity, pd.DataFrame({"key": ["X"]}), Rejects())) == 0
    with pytest.raises(ValueError, match="no 'invoice' file"):
        ShopifyDialect().live("invoice", pd.DataFrame({"key": ["X"]}), Rejects())


def test_view_rows_of_the_demo_back_office(erp):
    from core.dialects.test_woocommerce import view_articles

    articles = view_articles(erp)
    header, rows, rejects = written(ShopifyDialect(), "article", articles)
    assert_in_template_order(header)
    assert len(rejects) == 0
    # One contiguous group per article, its product fields on the first row.
    handles = [r["URL handle"] for r in rows]
    groups = list(dict.fromkeys(handles))
    assert len(groups) == len(articles) == articles["reference"].str.lower().nunique()
    assert all(handles[i] == handles[i - 1] or handles[i] not in handles[:i] for i in range(1, len(handles)))
    by_handle: dict[str, list[dict]] = {}
    for row in rows:
        by_handle.setdefault(row["URL handle"], []).append(row)
    for group in by_handle.values():
        first, *others = group
        assert first["Title"] and first["Status"] == "active" and first["Option1 name"]
        assert all(r["Title"] == "" and r["Option1 name"] == "" for r in others)
        variant_rows = [r for r in group if r["SKU"]]
        # Shopify refuses two variants with the same options.
        options = [(r["Option1 value"], r["Option2 value"]) for r in variant_rows]
        assert len(set(options)) == len(options)
        assert all(re.fullmatch(r"\d+\.\d{2}", r["Price"]) for r in variant_rows)
    assert sum(1 for r in rows if r["SKU"]) == len(articles) + sum(
        len(json.loads(v)) - 1 for v in articles["variants"] if v
    )


def test_single_location_shops_get_the_quantity_in_the_product_file():
    single = ShopifyDialect(settings(shopify={"single_location": True}))
    _, rows, _ = written(single, "article", ARTICLES.iloc[[0, 1]])
    assert [(r["SKU"], r["Inventory quantity"]) for r in rows if r["SKU"]] == [
        ("ART-1", "3"),
        ("TEE-S", "2"),
        ("TEE-M", "0"),
    ]
