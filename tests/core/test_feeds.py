"""The dialects on small frames: PrestaShop's documented fields, sanitising, neutralising."""

from __future__ import annotations

import pandas as pd
import pytest

from passerelle.core.feeds import (GenericDialect, PrestaShopDialect, Rejects, neutralise_formulas,
                                   prestashop_fields, sanitise_html, valid_ean13)

ARTICLE = pd.DataFrame({
    "key": ["ART-1", "ART-2"], "reference": ["ART-1", "ART-2"], "name": ["=HYPERLINK(\"x\")", "Bol en grès"],
    "short_description": ["<p>ok</p>", ""], "long_description": ['<p onclick="x()">a<script>bad()</script></p>', ""],
    "family_code": ["A", "A"], "family_path": ["Maison > Cuisine", "Maison"], "brand": ["B", "B"],
    "supplier": ["S", "S"], "supplier_reference": ["SR", "SR"], "sales_unit": ["U", "U"], "weight_kg": ["1.5", ""],
    "vat_rate": ["20.00", "7.00"], "price_excl_vat": ["10.0000", "5"], "price_incl_vat": ["12.00", "5.35"],
    "purchase_price": ["4", "2"], "ean": ["3760000000017", ""], "quantity": ["3.000", "0"], "images": ["1:5", ""],
    "image_urls": ["https://s/images/ART-1_1_large.jpg", ""], "web": ["t", "t"],
})


def _header(dialect, entity, df):
    rejects = Rejects()
    out = dialect.live(entity, df, rejects)
    return list(out.columns), out, rejects.frame()


@pytest.mark.parametrize("entity,ps_entity,frame", [
    ("article", "products", ARTICLE),
    ("family", "categories", pd.DataFrame({"key": ["A"], "name": ["Maison"], "parent_name": [""]})),
    ("brand", "manufacturers", pd.DataFrame({"key": ["B"], "name": ["B"], "description": [""]})),
    ("supplier", "suppliers", pd.DataFrame({"key": ["S"], "name": ["S"]})),
    ("variant", "combinations", pd.DataFrame({
        "key": ["ART-1-M-BLEU"], "article_reference": ["ART-1"], "reference": ["ART-1-M-BLEU"], "ean": [""],
        "size": ["M"], "colour": ["BLEU"], "price_impact": ["0"], "weight_impact": ["0"], "quantity": ["2"]})),
])
def test_prestashop_headers_are_a_prefix_of_the_documented_fields(entity, ps_entity, frame):
    header, _, _ = _header(PrestaShopDialect(), entity, frame)
    documented = [label for _, label in prestashop_fields(ps_entity)]
    # PrestaShop matches columns by position: our header must be the documented list's start.
    assert header == documented[: len(header)]


def test_prestashop_article_values_and_rejects():
    _, out, rejects = _header(PrestaShopDialect(), "article", ARTICLE)
    assert list(out["Reference #"]) == ["ART-1"]  # ART-2: no tax rule for 7 %
    assert rejects.loc[0, "key"] == "ART-2" and rejects.loc[0, "field"] == "vat_rate"
    row = out.iloc[0]
    assert row["Tax rule ID"] == "1" and row["Price tax excluded"] == "10.000000"
    assert row["Categories (x,y,z...)"] == "Cuisine,Maison"
    assert "script" not in row["Description"] and "onclick" not in row["Description"]
    assert row["Image URLs (x,y,z...)"].endswith("ART-1_1_large.jpg")
    assert row["Delete existing images (0 = No, 1 = Yes)"] == "1"


def test_removed_combination_keeps_its_attributes():
    stem, out = PrestaShopDialect().removed("variant", pd.DataFrame({"key": ["ART-1-M-BLEU"],
                                                                      "label": ["ART-1\tM\tBLEU"]}))
    assert stem == "combinations_off"
    row = out.iloc[0]
    assert (row["Product Reference"], row["Attribute (Name:Type:Position)*"], row["Value (Value:Position)*"],
            row["Reference"], row["Quantity"]) == ("ART-1", "Taille:select:0,Couleur:color:1", "M:0,Bleu:1",
                                                   "ART-1-M-BLEU", "0")


def test_formulas_are_neutralised_numbers_are_not():
    df = neutralise_formulas(pd.DataFrame({"a": ["=1+2", "@SUM(A1)", "-3.5", "+33 1 23", "plain"]}))
    assert list(df["a"]) == ["'=1+2", "'@SUM(A1)", "-3.5", "'+33 1 23", "plain"]
    csv = PrestaShopDialect().to_bytes(pd.DataFrame({"Name": ["=cmd|' /C calc'!A0"]})).decode()
    assert "'=cmd" in csv


def test_sanitise_html_strips_scripts_and_handlers():
    out = sanitise_html(pd.Series(['<p>ok <a href="javascript:alert(1)">x</a><img src=x onerror=alert(1)></p>']))
    assert "javascript" not in out[0] and "onerror" not in out[0] and "<p>ok" in out[0]


def test_ean13_check_digit():
    assert list(valid_ean13(pd.Series(["3760000000017", "3760000000018", "", "12"]))) == [True, False, True, False]


def test_generic_drops_internal_columns_and_purchase_price():
    _, out, _ = _header(GenericDialect(), "article", ARTICLE)
    assert "web" not in out and "purchase_price" not in out and out["active"].eq("1").all()
    _, out, _ = _header(GenericDialect({"send_purchase_price": True}), "article", ARTICLE)
    assert "purchase_price" in out
