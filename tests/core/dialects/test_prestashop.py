"""The PrestaShop dialect on small frames, checked against PrestaShop 8.1's own importer.

The rules asserted here come from ``controllers/admin/AdminImportController.php`` (see
docs/formats/prestashop.md, "What Passerelle writes and why") and from its field lists, copied
in ``include/reference/prestashop8_import_fields.json``.
"""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from passerelle.core.dialects import dialect, exchange_dialect
from passerelle.core.dialects.base import Rejects
from passerelle.core.dialects.prestashop import (
    PrestaShopDialect,
    PrestaShopExchangeDialect,
    prestashop_fields,
    prestashop_required,
)
from passerelle.core.dialects.woocommerce import WooCommerceDialect

from . import settings

DIGEST_A = "a" * 32
DIGEST_B = "b" * 32

ARTICLE = pd.DataFrame(
    {
        "key": ["ART-1", "ART-2", "ART-3"],
        "reference": ["ART-1", "ART-2", "ART-3"],
        "name": ['=HYPERLINK("x")', "Bol en grès", "-20% Lot de 2 torchons"],
        "short_description": ["<p>ok</p>", "", ""],
        "long_description": ['<p onclick="x()">a<script>bad()</script></p>', "", ""],
        "family_code": ["A", "A", "B"],
        "family_path": ["Maison > Cuisine", "Maison", "Maison > Linge"],
        "brand": ["B", "B", "B"],
        "supplier": ["S", "S", "S"],
        "supplier_reference": ["SR", "SR", "SR"],
        "sales_unit": ["U", "U", "U"],
        "weight_kg": ["1.5", "", ""],
        "vat_rate": ["20.00", "7.00", "20.00"],
        "price_excl_vat": ["10.0000", "5", "3.3333"],
        "price_incl_vat": ["12.00", "5.35", "4.00"],
        "purchase_price": ["4", "2", "1"],
        "ean": ["3760000000017", "", ""],
        "quantity": ["3.000", "0", "5"],
        "images": ["1:5", "", "1:9,2:9"],
        "image_urls": [
            "https://s/images/ART-1_1_large.jpg",
            "",
            "https://s/images/ART-3_1_large.jpg,https://s/images/ART-3_2_large.jpg",
        ],
        "web": ["t", "t", "t"],
        "family_ids": ["1,7", "1", "1,8"],
    }
)

FAMILY = pd.DataFrame(
    {
        # Two families named "Accessoires" in different branches, the child listed before its parent.
        "key": ["ACC-CUI", "ACC-SDB", "CUI", "SDB"],
        "code": ["ACC-CUI", "ACC-SDB", "CUI", "SDB"],
        "name": ["Accessoires", "Accessoires", "Cuisine", "Salle de bain"],
        "parent_code": ["CUI", "SDB", "", ""],
        "parent_name": ["Cuisine", "Salle de bain", "", ""],
        "path": ["Cuisine > Accessoires", "Salle de bain > Accessoires", "Cuisine", "Salle de bain"],
        "depth": ["2", "2", "1", "1"],
        "position": ["0", "0", "0", "1"],
        "family_id": ["11", "12", "3", "4"],
        "parent_family_id": ["3", "4", "", ""],
        "family_ids": ["3,11", "4,12", "3", "4"],
    }
)


def _live(d, entity, df):
    rejects = Rejects()
    out = d.live(entity, df, rejects)
    return out, rejects.frame()


def _as_imported(d, df: pd.DataFrame) -> list[list[str]]:
    """The file's rows as PrestaShop reads them: fgetcsv with the dialect's separator, header skipped."""
    text = d.to_bytes(df).decode("utf-8")
    return list(csv.reader(io.StringIO(text), delimiter=d.separator))[1:]


def accepted_by_import(entity: str, out: pd.DataFrame) -> pd.Series:
    """True for the rows PrestaShop's import would not refuse for a missing value.

    The controller refuses a row whose required field (``$required_fields``, or a multilingual
    field the object requires, such as a name: ``fillInfo`` sets it from the cell, empty
    included, then ``validateFieldsLang`` fails) is empty; the reference file marks them.
    """
    ok = pd.Series(True, index=out.index)
    for label in prestashop_required(entity):
        assert label in out.columns, f"{entity}: required column {label!r} missing from {list(out.columns)}"
        ok &= out[label].fillna("").str.strip() != ""
    return ok


@pytest.mark.parametrize(
    "entity,ps_entity,frame",
    [
        ("article", "products", ARTICLE),
        ("family", "categories", FAMILY),
        ("brand", "manufacturers", pd.DataFrame({"key": ["B"], "name": ["B"], "description": [""]})),
        ("supplier", "suppliers", pd.DataFrame({"key": ["S"], "name": ["S"]})),
        (
            "variant",
            "combinations",
            pd.DataFrame(
                {
                    "key": ["ART-1-M-BLEU"],
                    "article_reference": ["ART-1"],
                    "reference": ["ART-1-M-BLEU"],
                    "ean": [""],
                    "size": ["M"],
                    "colour": ["BLEU"],
                    "price_impact": ["0"],
                    "weight_impact": ["0"],
                    "quantity": ["2"],
                }
            ),
        ),
    ],
)
def test_headers_are_a_prefix_of_prestashops_field_list(entity, ps_entity, frame):
    out, _ = _live(PrestaShopDialect(), entity, frame)
    documented = [label for _, label in prestashop_fields(ps_entity)]
    # PrestaShop matches columns by position: our header must be the documented list's start.
    assert list(out.columns) == documented[: len(out.columns)]
    assert accepted_by_import(ps_entity, out).all()


def test_article_values_and_rejects():
    out, rejects = _live(PrestaShopDialect(), "article", ARTICLE)
    assert list(out["Reference #"]) == ["ART-1", "ART-3"]  # ART-2: no tax rule for 7 %
    assert rejects.loc[0, "key"] == "ART-2" and rejects.loc[0, "field"] == "vat_rate"
    row = out.iloc[0]
    assert row["Tax rule ID"] == "1" and row["Price tax excluded"] == "10.000000"
    # By category ID (family id + offset), leaf first: the leaf is the default category.
    assert row["Categories (x,y,z...)"] == "10007,10001"
    assert "script" not in row["Description"] and "onclick" not in row["Description"]
    # No previous label (a new row, or a full send): the photos go, replacing the shop's.
    assert row["Image URLs (x,y,z...)"].endswith("ART-1_1_large.jpg")
    assert row["Delete existing images (0 = No, 1 = Yes)"] == "1"


def test_names_reach_the_file_unaltered():
    out, _ = _live(PrestaShopDialect(), "article", ARTICLE)
    rows = _as_imported(PrestaShopDialect(), out)
    name = [label for _, label in prestashop_fields("products")].index("Name")
    assert [r[name] for r in rows] == ['=HYPERLINK("x")', "-20% Lot de 2 torchons"]
    assert "'-20%" not in PrestaShopDialect().to_bytes(out).decode()


def test_price_only_change_carries_no_photo_columns():
    """Photos digest unchanged since the last confirmed send: both photo cells empty, so the
    import neither deletes nor downloads a photo (fillInfo skips an empty cell)."""
    df = ARTICLE.assign(
        batch_label=[f"{DIGEST_A}\tx", f"{DIGEST_A}\tx", f"{DIGEST_B}\tx"],
        previous_label=[f"{DIGEST_A}\tx", "", f"{DIGEST_A}\tx"],
    )
    out, _ = _live(PrestaShopDialect(), "article", df)
    by_ref = out.set_index("Reference #")
    assert by_ref.loc["ART-1", "Image URLs (x,y,z...)"] == ""
    assert by_ref.loc["ART-1", "Delete existing images (0 = No, 1 = Yes)"] == ""
    assert by_ref.loc["ART-1", "Price tax excluded"] == "10.000000"
    # ART-3's photos changed: listed again, the old ones deleted first.
    assert by_ref.loc["ART-3", "Image URLs (x,y,z...)"].count("https://") == 2
    assert by_ref.loc["ART-3", "Delete existing images (0 = No, 1 = Yes)"] == "1"


def test_photos_removed_in_the_back_office_are_deleted_in_the_shop():
    df = ARTICLE.iloc[[0]].assign(image_urls=[""], batch_label=[f"{DIGEST_B}\tx"], previous_label=[f"{DIGEST_A}\tx"])
    out, _ = _live(PrestaShopDialect(), "article", df)
    assert out.iloc[0]["Image URLs (x,y,z...)"] == ""
    assert out.iloc[0]["Delete existing images (0 = No, 1 = Yes)"] == "1"


def test_removed_article_is_deactivated_by_reference_with_its_last_name():
    stem, out = PrestaShopDialect().removed(
        "article", pd.DataFrame({"key": ["ART-1", "ART-9"], "label": [f"{DIGEST_A}\t-20% Lot de 2 torchons", "ART-9"]})
    )
    assert stem == "products_off"
    assert list(out["Active (0/1)"]) == ["0", "0"]
    assert list(out["Reference #"]) == ["ART-1", "ART-9"]
    # The import requires the name (it sets it from the cell, empty included): the last name
    # sent; a label from before the digest existed is the bare reference.
    assert list(out["Name"]) == ["-20% Lot de 2 torchons", "ART-9"]
    assert accepted_by_import("products", out).all()
    # Nothing else is given: the other cells are empty, which leaves the product's values alone.
    given = {"Active (0/1)", "Name", "Reference #"}
    assert (out.drop(columns=list(given)) == "").all().all()
    documented = [label for _, label in prestashop_fields("products")]
    assert list(out.columns) == documented[: len(out.columns)]


def test_homonym_families_stay_apart_parents_first():
    out, _ = _live(PrestaShopDialect(settings(prestashop={"language": "fr"})), "family", FAMILY)
    assert list(out["Name"]) == ["Cuisine", "Salle de bain", "Accessoires", "Accessoires"]
    assert list(out["ID"]) == ["10003", "10004", "10011", "10012"]
    # Parents by ID (numeric: the import takes it as an id, never searches a name); the
    # top-level families under the shop's root category, by its name.
    assert list(out["Parent category"]) == ["Accueil", "Accueil", "10003", "10004"]
    assert out["ID"].is_unique


@pytest.mark.parametrize(
    "cfg,root",
    [
        ({}, "Accueil"),
        ({"language": "en"}, "Home"),
        ({"language": "es"}, "Inicio"),
        ({"language": "de"}, "Startseite"),
        ({"language": "it"}, "Home"),
        ({"language": "en", "root_category": "Catalogue"}, "Catalogue"),
        ({"home_category": "Racine"}, "Racine"),
    ],
)
def test_root_category_by_language_or_configured(cfg, root):
    out, _ = _live(PrestaShopDialect(settings(prestashop=cfg)), "family", FAMILY)
    assert set(out.loc[out["Name"] != "Accessoires", "Parent category"]) == {root}


def test_unknown_language_without_root_category_names_the_keys():
    with pytest.raises(ValueError, match=r"prestashop.language is 'pt'.*prestashop.root_category"):
        _live(PrestaShopDialect(settings(prestashop={"language": "pt"})), "family", FAMILY)


def test_category_id_offset_is_configurable_and_checked():
    out, _ = _live(PrestaShopDialect(settings(prestashop={"category_id_offset": 500})), "article", ARTICLE)
    assert out.iloc[0]["Categories (x,y,z...)"] == "507,501"
    with pytest.raises(ValueError, match="category_id_offset must be a whole number of at least 2, got 'x'"):
        _live(PrestaShopDialect(settings(prestashop={"category_id_offset": "x"})), "family", FAMILY)


def test_removed_family_keeps_its_id_parent_and_name():
    stem, out = PrestaShopDialect().removed(
        "family", pd.DataFrame({"key": ["ACC-SDB", "SDB"], "label": ["12\t4\tAccessoires", "4\t\tSalle de bain"]})
    )
    assert stem == "categories_off"
    assert list(out["ID"]) == ["10012", "10004"]
    assert list(out["Active (0/1)"]) == ["0", "0"]
    assert list(out["Name"]) == ["Accessoires", "Salle de bain"]
    # Left empty, the import's default parent (Home) would move the category: given again.
    assert list(out["Parent category"]) == ["10004", "Accueil"]
    assert accepted_by_import("categories", out).all()


def test_removed_combination_keeps_its_attributes():
    stem, out = PrestaShopDialect().removed(
        "variant", pd.DataFrame({"key": ["ART-1-M-BLEU"], "label": ["ART-1\tM\tBLEU"]})
    )
    assert stem == "combinations_off"
    row = out.iloc[0]
    assert (
        row["Product Reference"],
        row["Attribute (Name:Type:Position)*"],
        row["Value (Value:Position)*"],
        row["Reference"],
        row["Quantity"],
    ) == ("ART-1", "Taille:select:0,Couleur:color:1", "M:0,Bleu:1", "ART-1-M-BLEU", "0")
    assert accepted_by_import("combinations", out).all()


def test_registry_gives_the_prestashop_modules_classes():
    assert type(dialect("prestashop", settings(prestashop={"language": "en"}))) is PrestaShopDialect
    assert type(exchange_dialect("prestashop")) is PrestaShopExchangeDialect
    assert dialect("prestashop", settings(prestashop={"language": "en"})).root_category == "Home"


def test_names_and_attributes_the_import_would_refuse_or_split_are_refused_here():
    """PrestaShop reports these in its own import log only: a catalog name with one of
    < > ; = # { } (Validate::isCatalogName: the product 'cannot be saved', every hour again for its
    price and stock rows, which repeat the name), a size or colour with ',' or ':' (the import
    splits a combination's attributes and positions on them: '38,5' becomes two attributes)."""
    d = PrestaShopDialect()
    named = ARTICLE.assign(name=["Clé plate n°12 #12", "Bol en grès", "Vis ; écrous {lot}"])
    rejects = Rejects()
    bad = d.common_checks("article", named, rejects)
    assert bad.tolist() == [True, False, True]
    frame = rejects.frame()
    assert frame[["key", "field"]].values.tolist() == [["ART-1", "name"], ["ART-3", "name"]]
    assert frame.reason.iloc[0].startswith("PrestaShop refuses a name holding any of < > ; = # { }")
    stock = pd.DataFrame(
        {"key": ["ART-1", "ART-2"], "name": ["Outils #pro", "Outils pro"], "available_qty": ["1", "2"]}
    )
    assert d.common_checks("stock", stock, Rejects()).tolist() == [True, False]
    family = FAMILY.assign(name=["Accessoires", "Accessoires", "Cuisine <pro>", "Salle de bain"])
    assert d.common_checks("family", family, Rejects()).tolist() == [False, False, True, False]
    variants = pd.DataFrame(
        {
            "key": ["CH-385", "CH-39", "CH-40"],
            "reference": ["CH-385", "CH-39", "CH-40"],
            "size": ["38,5", "39", "40"],
            "colour": ["noir", "noir", "bleu:marine"],
        }
    )
    rejects = Rejects()
    assert d.common_checks("variant", variants, rejects).tolist() == [True, False, True]
    assert rejects.frame()[["key", "field"]].values.tolist() == [["CH-385", "size"], ["CH-40", "colour"]]
    # Other shops take these names and values as they are.
    assert not WooCommerceDialect().common_checks("article", named, Rejects()).any()
