"""Outbound files: the shop's dialects over DataFrames of view rows, vectorised.

A dialect turns chunks of rows of an entity's view (all values as text, as COPY gives them)
into the columns, values and bytes the shop's importer expects, and refuses (with a reason)
the rows the shop could not take. ``generic`` is documented in docs/formats/generic.md;
``prestashop`` follows PrestaShop 8's CSV import (docs/formats/prestashop.md).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

import nh3
import pandas as pd

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
        out = df.drop(columns=[c for c in ("web",) if c in df])
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
        return pd.DataFrame({
            "Active (0/1)": "1",
            "Name": df["name"],
            "Parent category": df["parent_name"].replace("", home).fillna(home),
            "Root category (0/1)": "0",
            "Meta title": df["name"],
            "URL rewritten": slug(df["name"]),
        })

    def _brand(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        return pd.DataFrame({"Active (0/1)": "1", "Name": df["name"],
                             "Description": sanitise_html(df["description"].fillna(""))})

    def _supplier(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        return pd.DataFrame({"Active (0/1)": "1", "Name": df["name"]})

    def _article(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        vat = _num(df["vat_rate"]).round(2)
        rule = vat.map(self.tax_rules)
        bad = rejects.add(df, rule.isna(), "vat_rate",
                          f"no PrestaShop tax rule for this VAT rate (prestashop.tax_rules_groups has "
                          f"{sorted(self.tax_rules)})")
        # The family path "Maison > Cuisine > Casseroles": leaf first (PrestaShop's default
        # category is the first listed), then its parents.
        cats = df["family_path"].fillna("").str.split(" > ").map(
            lambda parts: ",".join(p.replace(",", " ") for p in reversed(parts) if p))
        out = pd.DataFrame({
            "Reference #": df["reference"],
            "Active (0/1)": "1",
            "Name": df["name"],
            "Categories (x,y,z...)": cats,
            "Price tax excluded": _fmt(df["price_excl_vat"], 6),
            "Tax rule ID": rule.map(lambda x: "" if pd.isna(x) else str(int(x))),
            "Supplier reference #": df["supplier_reference"],
            "Supplier": df["supplier"],
            "Brand": df["brand"],
            "EAN13": df["ean"],
            "Weight": _fmt(df["weight_kg"], 3),
            "Quantity": _num(df["quantity"]).fillna(0).astype(int).astype(str),
            "Summary": sanitise_html(df["short_description"].fillna("")),
            "Description": sanitise_html(df["long_description"].fillna("")),
            "Rewritten URL": slug(df["name"]),
            "Meta title": df["name"],
        })
        if self.cfg.get("send_purchase_price", False):
            out.insert(5, "Cost price", _fmt(df["purchase_price"], 6))
        if "image_urls" in df:
            out["Image URLs (x,y,z...)"] = df["image_urls"].fillna("")
            out["Delete existing images (0 = No, 1 = Yes)"] = (df["image_urls"].fillna("") != "").map(
                {True: "1", False: "0"})
        return out[~bad]

    def _variant(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        size, colour = df["size"].fillna(""), df["colour"].fillna("")
        groups, values = [], []
        for s, c in zip(size, colour):  # at most two attributes: cheap string assembly
            g, v = [], []
            if s:
                g.append("Taille:select:0")
                v.append(f"{s}:0")
            if c:
                g.append("Couleur:color:1")
                v.append(f"{c.capitalize()}:1")
            groups.append(",".join(g))
            values.append(",".join(v))
        return pd.DataFrame({
            "Product Reference": df["article_reference"],
            "Attribute (Name:Type:Position)*": groups,
            "Value (Value:Position)*": values,
            "Reference": df["reference"],
            "EAN13": df["ean"],
            "Impact on price": _fmt(df["price_impact"], 6),
            "Impact on weight": _fmt(df["weight_impact"], 3),
            "Quantity": _num(df["quantity"]).fillna(0).astype(int).astype(str),
        }, index=df.index)

    def removed(self, entity: str, df: pd.DataFrame) -> tuple[str, pd.DataFrame]:
        stem = f"{self.stems[entity]}_off"
        if entity == "article":
            return stem, pd.DataFrame({"Reference #": df["key"], "Active (0/1)": "0"})
        if entity == "variant":
            return stem, pd.DataFrame({"Product Reference": df["label"], "Reference": df["key"], "Quantity": "0"})
        return stem, pd.DataFrame({"Name": df["label"], "Active (0/1)": "0"})


DIALECTS: dict[str, type[Dialect]] = {"generic": GenericDialect, "prestashop": PrestaShopDialect}


def dialect(name: str, cfg: dict | None = None) -> Dialect:
    try:
        return DIALECTS[name](cfg)
    except KeyError:
        raise ValueError(f"unknown shop dialect {name!r}; expected one of {sorted(DIALECTS)}") from None
