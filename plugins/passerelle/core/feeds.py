"""Outbound files: the shop's dialects over DataFrames of view rows, vectorised.

A dialect turns chunks of rows of an entity's view (all values as text, as COPY gives them)
into the columns, values and bytes the shop's importer expects, and refuses (with a reason)
the rows the shop could not take. ``generic`` is documented in docs/formats/generic.md;
``prestashop`` follows PrestaShop 8's CSV import (docs/formats/prestashop.md).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import nh3
import pandas as pd

from passerelle import INCLUDE

#: PrestaShop 8's import fields per entity, from its AdminImportController (see the file's source).
REFERENCE_FILE = INCLUDE / "reference" / "prestashop8_import_fields.json"

#: Characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?\d+([.,]\d+)?$")
_SLUG_DROP = re.compile(r"[^a-z0-9]+")

#: Tags a rich-text description may keep (nh3 also strips script/style and every on* handler).
ALLOWED_TAGS = {"p", "br", "strong", "b", "em", "i", "u", "ul", "ol", "li", "h2", "h3", "h4", "a", "span",
                "table", "thead", "tbody", "tr", "th", "td", "blockquote"}


def sanitise_html(values: pd.Series) -> pd.Series:
    """Rich text with no script, no event handler, no javascript: URL (nh3, Rust's ammonia)."""
    def one(v: str) -> str:
        return nh3.clean(v, tags=ALLOWED_TAGS, attributes={"a": {"href", "title"}},
                         url_schemes={"http", "https", "mailto"}) if v else v

    return values.map(one)


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Prefix with ' every text cell a spreadsheet would evaluate; numbers are left alone."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
            continue
        s = s.astype("string")
        risky = s.str.startswith(FORMULA_START).fillna(False) & ~s.str.match(_NUMBER).fillna(False)
        if risky.any():
            out[col] = s.where(~risky, "'" + s).astype(object)
    return out


def slug(values: pd.Series) -> pd.Series:
    """URL-safe lower-case ASCII (accents dropped), as shops want their rewritten URLs."""
    ascii_ = values.fillna("").str.normalize("NFKD").str.encode("ascii", "ignore").str.decode("ascii")
    return ascii_.str.lower().str.replace(_SLUG_DROP, "-", regex=True).str.strip("-")


@dataclass
class Rejects:
    """Rows refused for the shop, one line per (key, field)."""

    rows: list[pd.DataFrame] = field(default_factory=list)

    def add(self, df: pd.DataFrame, mask: pd.Series, field_: str, reason: str) -> pd.Series:
        if mask.any():
            self.rows.append(pd.DataFrame({"key": df.loc[mask, "key"], "field": field_,
                                           "value": df.loc[mask, field_] if field_ in df else "",
                                           "reason": reason}))
        return mask

    def frame(self) -> pd.DataFrame:
        if not self.rows:
            return pd.DataFrame(columns=["key", "field", "value", "reason"])
        return pd.concat(self.rows, ignore_index=True)


def _num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.replace("", None), errors="coerce")


def _fmt(s: pd.Series, decimals: int, decimal: str = ".") -> pd.Series:
    """Numbers as text with a fixed number of decimals; missing stays empty."""
    n = _num(s)
    out = n.map(lambda x: "" if pd.isna(x) else f"{x:.{decimals}f}")
    return out.str.replace(".", decimal, regex=False) if decimal != "." else out


def valid_ean13(s: pd.Series) -> pd.Series:
    """True where the value is empty or a 13-digit EAN with a right check digit (vectorised)."""
    s = s.fillna("")
    shaped = s.str.fullmatch(r"\d{13}")
    digits = s.where(shaped, "0" * 13)
    total = sum(digits.str[i].astype(int) * (3 if i % 2 else 1) for i in range(12))
    ok = ((10 - total % 10) % 10) == digits.str[12].astype(int)
    return (s == "") | (shaped & ok)


@cache
def prestashop_fields(entity: str) -> tuple[tuple[str, str], ...]:
    """(key, label) of a PrestaShop import entity in the order its matching screen pre-selects
    them: the reference file's order, ``price_tin`` left out (never pre-selected)."""
    data = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))
    try:
        fields = data["entities"][entity]
    except KeyError:
        raise ValueError(f"{REFERENCE_FILE.name}: no PrestaShop import entity {entity!r}") from None
    return tuple((f["key"], f["label"]) for f in fields if f["key"] != "price_tin")


def prestashop_frame(entity: str, values: dict[str, Any], index: pd.Index) -> pd.DataFrame:
    """A PrestaShop import file: the shortest prefix of the entity's fields holding every key of
    *values*, in order, with the labels as header; fields not given are left empty.

    PrestaShop matches columns by position, not by header: an empty cell leaves a plain field
    unchanged (but sets a multilingual one, such as the name, to empty: give those).
    """
    fields = prestashop_fields(entity)
    keys = [k for k, _ in fields]
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise ValueError(f"PrestaShop {entity} import has no field {unknown}; expected some of {keys}")
    last = max(keys.index(k) for k in values)
    columns: dict[str, Any] = {}
    for key, label in fields[: last + 1]:
        value = values.get(key, "")
        columns[label] = value if isinstance(value, pd.Series) else pd.Series(value, index=index, dtype=object)
    return pd.DataFrame(columns, index=index)


class Dialect:
    """Base: file stems, the transform of live rows and of removed rows, the bytes."""

    name = "base"
    separator = ","
    decimal = "."
    encoding = "utf-8"
    #: Entity -> file stem, in the order the shop must import.
    stems: dict[str, str] = {}

    def __init__(self, cfg: dict | None = None):
        self.cfg = cfg or {}

    def live(self, entity: str, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        raise NotImplementedError

    def removed(self, entity: str, df: pd.DataFrame) -> tuple[str, pd.DataFrame]:
        """(file stem, rows) telling the shop to deactivate; df has columns key and label."""
        raise NotImplementedError

    def common_checks(self, entity: str, df: pd.DataFrame, rejects: Rejects) -> pd.Series:
        bad = pd.Series(False, index=df.index)
        if "name" in df:
            bad |= rejects.add(df, df["name"].fillna("").str.strip() == "", "name", "name is empty")
        if entity == "article":
            price = _num(df["price_excl_vat"])
            bad |= rejects.add(df, price.isna() | (price < 0), "price_excl_vat",
                               "price excl. VAT is missing or negative")
        if "ean" in df:
            bad |= rejects.add(df, ~valid_ean13(df["ean"]), "ean", "not a valid EAN-13 (13 digits, check digit)")
        return bad

    def to_bytes(self, df: pd.DataFrame) -> bytes:
        buf = io.StringIO()
        neutralise_formulas(df).to_csv(buf, index=False, sep=self.separator, quoting=csv.QUOTE_MINIMAL,
                                       lineterminator="\r\n")
        return buf.getvalue().encode(self.encoding, errors="strict")


class GenericDialect(Dialect):
    """Passerelle's own documented format: UTF-8, comma, dot decimals, one file per entity,
    the view's columns plus ``active``; deactivations go to ``*_off`` files (key, active=0)."""

    name = "generic"
    stems = {"family": "categories", "brand": "brands", "supplier": "suppliers", "article": "products",
             "variant": "variants"}

    def live(self, entity: str, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        out = df.drop(columns=[c for c in ("web", "removal_label") if c in df])
        if entity == "article":
            for col in ("short_description", "long_description"):
                out[col] = sanitise_html(out[col])
            if not self.cfg.get("send_purchase_price", False):
                out = out.drop(columns=["purchase_price"])
        out.insert(1, "active", "1")
        return out

    def removed(self, entity: str, df: pd.DataFrame) -> tuple[str, pd.DataFrame]:
        return f"{self.stems[entity]}_off", pd.DataFrame({"key": df["key"], "active": "0"})


class PrestaShopDialect(Dialect):
    """PrestaShop 8 CSV import: ``;`` separated, dot decimals, 0/1 booleans, UTF-8.

    Products and combinations are matched by reference (tick "Use product reference as key"
    on the import screen); categories, brands and suppliers by name. Deactivations go to
    separate ``*_off`` files holding only the key columns, so nothing else is overwritten.
    """

    name = "prestashop"
    separator = ";"
    stems = {"family": "categories", "brand": "manufacturers", "supplier": "suppliers", "article": "products",
             "variant": "combinations"}

    @property
    def tax_rules(self) -> dict[float, int]:
        rules = self.cfg.get("tax_rules_groups") or {20.0: 1, 10.0: 2, 5.5: 3, 2.1: 4}
        return {float(k): int(v) for k, v in rules.items()}

    def live(self, entity: str, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        return getattr(self, f"_{entity}")(df, rejects)

    def _family(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        home = self.cfg.get("home_category", "Home")
        return prestashop_frame("categories", {
            "active": "1",
            "name": df["name"],
            "parent": df["parent_name"].replace("", home).fillna(home),
            "is_root_category": "0",
            "meta_title": df["name"],
            "link_rewrite": slug(df["name"]),
        }, df.index)

    def _brand(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        return prestashop_frame("manufacturers", {"active": "1", "name": df["name"],
                                                  "description": sanitise_html(df["description"].fillna(""))},
                                df.index)

    def _supplier(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        return prestashop_frame("suppliers", {"active": "1", "name": df["name"]}, df.index)

    def _article(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        vat = _num(df["vat_rate"]).round(2)
        rule = vat.map(self.tax_rules)
        bad = rejects.add(df, rule.isna(), "vat_rate",
                          f"no PrestaShop tax rule for this VAT rate (prestashop.tax_rules_groups has "
                          f"{sorted(self.tax_rules)})")
        # The family path "Maison > Cuisine > Casseroles": leaf first (PrestaShop's default
        # category is the first listed), then its parents; "," separates values, so none inside.
        cats = df["family_path"].fillna("").str.split(" > ").map(
            lambda parts: ",".join(p.replace(",", " ") for p in reversed(parts) if p))
        values: dict[str, Any] = {
            "active": "1",
            "name": df["name"],
            "category": cats,
            "price_tex": _fmt(df["price_excl_vat"], 6),
            "id_tax_rules_group": rule.map(lambda x: "" if pd.isna(x) else str(int(x))),
            "reference": df["reference"],
            "supplier_reference": df["supplier_reference"],
            "supplier": df["supplier"],
            "manufacturer": df["brand"],
            "ean13": df["ean"],
            "weight": _fmt(df["weight_kg"], 3),
            "quantity": _num(df["quantity"]).fillna(0).astype(int).astype(str),
            "description_short": sanitise_html(df["short_description"].fillna("")),
            "description": sanitise_html(df["long_description"].fillna("")),
            "meta_title": df["name"],
            "link_rewrite": slug(df["name"]),
        }
        if self.cfg.get("send_purchase_price", False):
            values["wholesale_price"] = _fmt(df["purchase_price"], 6)
        if "image_urls" in df:
            urls = df["image_urls"].fillna("")
            # Every import adds the listed images again: replace them, and only when they changed
            # (the article's row changes when one of its photos does).
            values["image"] = urls
            values["delete_existing_images"] = (urls != "").map({True: "1", False: "0"})
        return prestashop_frame("products", values, df.index)[~bad]

    def _variant(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        groups, values = attribute_columns(df["size"], df["colour"])
        return prestashop_frame("combinations", {
            "product_reference": df["article_reference"],
            "group": groups,
            "attribute": values,
            "reference": df["reference"],
            "ean13": df["ean"],
            "price": _fmt(df["price_impact"], 6),
            "quantity": _num(df["quantity"]).fillna(0).astype(int).astype(str),
            "weight": _fmt(df["weight_impact"], 3),
        }, df.index)

    def removed(self, entity: str, df: pd.DataFrame) -> tuple[str, pd.DataFrame]:
        stem = f"{self.stems[entity]}_off"
        if entity == "article":
            return stem, prestashop_frame("products", {"active": "0", "reference": df["key"]}, df.index)
        if entity == "variant":
            # A combination row needs its attributes to be found; the snapshot keeps them in the
            # label ("article reference<TAB>size<TAB>colour"). Quantity 0: nobody can order it.
            parts = df["label"].fillna("").str.split("\t", expand=True).reindex(columns=range(3)).fillna("")
            groups, values = attribute_columns(parts[1], parts[2])
            return stem, prestashop_frame("combinations", {
                "product_reference": parts[0], "group": groups, "attribute": values, "reference": df["key"],
                "quantity": "0"}, df.index)
        kind = {"family": "categories", "brand": "manufacturers", "supplier": "suppliers"}[entity]
        return stem, prestashop_frame(kind, {"active": "0", "name": df["label"]}, df.index)


def attribute_columns(size: pd.Series, colour: pd.Series) -> tuple[pd.Series, pd.Series]:
    """PrestaShop's "Attribute (Name:Type:Position)" and "Value (Value:Position)" cells."""
    size, colour = size.fillna(""), colour.fillna("")
    has_size, has_colour = size != "", colour != ""
    group = (has_size.map({True: "Taille:select:0", False: ""}) + (has_size & has_colour).map({True: ",", False: ""})
             + has_colour.map({True: "Couleur:color:1", False: ""}))
    value = ((size + ":0").where(has_size, "") + (has_size & has_colour).map({True: ",", False: ""})
             + (colour.str.capitalize() + ":1").where(has_colour, ""))
    return group, value


DIALECTS: dict[str, type[Dialect]] = {"generic": GenericDialect, "prestashop": PrestaShopDialect}


def dialect(name: str, cfg: dict | None = None) -> Dialect:
    try:
        return DIALECTS[name](cfg)
    except KeyError:
        raise ValueError(f"unknown shop dialect {name!r}; expected one of {sorted(DIALECTS)}") from None
