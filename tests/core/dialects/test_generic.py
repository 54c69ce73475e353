"""The generic dialect: the views' columns, less Passerelle's internal ones."""

from __future__ import annotations

import pandas as pd

from passerelle.core.dialects import dialect
from passerelle.core.dialects.base import Rejects
from passerelle.core.dialects.generic import GenericDialect

from . import settings
from .test_prestashop import ARTICLE, FAMILY


def test_generic_drops_internal_columns_and_purchase_price():
    out = GenericDialect().live("article", ARTICLE, Rejects())
    assert "web" not in out and "purchase_price" not in out and "family_ids" not in out
    assert out["active"].eq("1").all()
    out = GenericDialect(settings(catalog={"send_purchase_price": True})).live("article", ARTICLE, Rejects())
    assert "purchase_price" in out


def test_generic_categories_keep_their_documented_columns():
    out = dialect("generic").live("family", FAMILY, Rejects())
    assert list(out.columns) == [
        "key",
        "active",
        "code",
        "name",
        "parent_code",
        "parent_name",
        "path",
        "depth",
        "position",
    ]


def test_generic_categories_come_parents_first():
    """The fixture lists each child before its parent: the file puts every parent first, and
    keeps the view's order among families of the same depth."""
    out = dialect("generic").live("family", FAMILY, Rejects())
    assert out["code"].tolist() == ["CUI", "SDB", "ACC-CUI", "ACC-SDB"]
    seen = set()
    for code, parent in zip(out["code"], out["parent_code"], strict=True):
        assert parent == "" or parent in seen, f"{code} before its parent {parent}"
        seen.add(code)


def test_generic_removal_is_key_and_active_zero():
    stem, out = GenericDialect().removed("article", pd.DataFrame({"key": ["ART-1"], "label": ["x"]}))
    assert stem == "products_off" and out.to_dict("records") == [{"key": "ART-1", "active": "0"}]
