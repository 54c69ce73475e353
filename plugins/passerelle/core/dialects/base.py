"""What every shop dialect shares: the base class, rejects, value formatting, HTML sanitising.

A dialect turns chunks of rows of an entity's view (all values as text, as COPY gives them)
into the columns, values and bytes the shop's importer expects, and refuses (with a reason)
the rows the shop could not take. Each shop's dialects (catalog and exchanges) live in one
module of this package and register themselves (:func:`passerelle.core.dialects.register`).

Files written for an importer are written as they are: no value is changed to protect a
spreadsheet (``-20% Lot de 2 torchons`` stays as it is). :func:`neutralise_formulas` is for
files a person opens (rejects, reports); the rule is in docs/formats/generic.md.

Markup is the one exception: rich-text columns (:data:`RICH_TEXT`) are sanitised, and a row with
markup in a plain-text cell is refused for the shop (:func:`markup_in`, applied by
:meth:`Dialect.common_checks`, which every row of every dialect passes).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import nh3
import numpy as np
import pandas as pd

from passerelle.config import Settings, default_settings
from passerelle.core.invoices import PDF_NAME_DROP, PDF_NAME_PREFIX, PDF_NAME_SUFFIX

#: Characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
log = logging.getLogger(__name__)

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?\d+([.,]\d+)?$")
_SLUG_DROP = re.compile(r"[^a-z0-9]+")

#: Tags a rich-text description may keep (nh3 also strips script/style and every on* handler).
ALLOWED_TAGS = {
    "p",
    "br",
    "strong",
    "b",
    "em",
    "i",
    "u",
    "ul",
    "ol",
    "li",
    "h2",
    "h3",
    "h4",
    "a",
    "span",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "blockquote",
}

#: Rich-text columns of the views, per entity: HTML a shop may render, so never sent with a script,
#: an event handler or a ``javascript:`` URL (:func:`sanitise_html`). Every other text cell is plain text.
RICH_TEXT: dict[str, tuple[str, ...]] = {
    "article": ("short_description", "long_description"),
    "brand": ("description",),
}
#: Markup in a plain-text cell (case-insensitive): an HTML tag or comment (``<`` then a tag name,
#: ``</``, ``<!``), an ``on...=`` event handler after a quote (an attribute broken out of), a
#: ``javascript:``/``vbscript:`` URL. ``5 < 6``, ``-20% Lot`` and ``Müller & Fils`` are not markup.
MARKUP = re.compile(
    r"<\s*/?[a-z][a-z0-9-]*(?=[\s/>]|$)|</|<!|[\"'`]\s*on[a-z]+\s*=|(?:java|vb)script\s*:", re.IGNORECASE
)
MARKUP_REASON = (
    "markup in a plain-text field ({field}): the shop would show it or refuse the row; fix it in the back office"
)
#: View columns the shop never receives as they are: the snapshot's labels and operation.
_NOT_SENT = frozenset({"batch_label", "previous_label", "batch_op", "removal_label"})

#: The order of statuses changed in the same second (one back-office transaction, say).
STATUS_RANK: dict[str, int] = {
    "confirmed": 1,
    "prepared": 2,
    "partly_shipped": 3,
    "shipped": 4,
    "remainder_cancelled": 5,
    "invoiced": 6,
    "cancelled": 7,
}


def _per_value(values: pd.Series, func, missing) -> np.ndarray:
    """``func`` (an array of distinct values -> an array of results) applied to each distinct
    non-missing value of *values* once, spread back over the rows; a missing value gives
    *missing*. Catalog columns repeat a lot (families, brands, units, templated descriptions):
    the work per cell is then paid once per value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    results = np.asarray(func(np.asarray(uniques, dtype=object)))
    out = np.empty(len(values), dtype=results.dtype)
    present = codes >= 0
    out[present] = results[codes[present]]
    out[~present] = missing
    return out


def _clean_html(v: str) -> str:
    return (
        nh3.clean(v, tags=ALLOWED_TAGS, attributes={"a": {"href", "title"}}, url_schemes={"http", "https", "mailto"})
        if v
        else v
    )


def sanitise_html(values: pd.Series) -> pd.Series:
    """Rich text with no script, no event handler, no javascript: URL (nh3, Rust's ammonia),
    each distinct text cleaned once (a missing value stays missing)."""
    cleaned = _per_value(values, lambda uniques: np.array([_clean_html(v) for v in uniques], dtype=object), None)
    return pd.Series(cleaned, index=values.index, name=values.name)


def _markup_distinct(uniques: np.ndarray) -> np.ndarray:
    s = pd.Series(uniques, dtype="string")
    maybe = (
        (s.str.contains("<", regex=False) | s.str.contains("=", regex=False) | s.str.contains(":", regex=False))
        .fillna(False)
        .astype(bool)
    )
    found = np.zeros(len(s), dtype=bool)
    at = maybe.to_numpy()
    if at.any():
        found[at] = s[at].str.contains(MARKUP).fillna(False).to_numpy(dtype=bool)
    return found


def markup_in(values: pd.Series) -> pd.Series:
    """True where a plain-text value holds markup (:data:`MARKUP`), vectorised: markup needs a
    ``<``, ``=`` or ``:``, so literal searches (fast) pick the few candidates, and the regex (ten
    times slower per cell) runs on those only, once per distinct value; a column of names of a
    million rows takes well under a second."""
    if not len(values) or not _may_hold_markup(values):
        return pd.Series(np.zeros(len(values), dtype=bool), index=values.index)
    return pd.Series(_per_value(values.astype("string"), _markup_distinct, False), index=values.index)


def _may_hold_markup(values: pd.Series) -> bool:
    """False when no cell of the column has a ``<``, ``=`` or ``:`` (most columns: numbers,
    codes, names): one search over the column's text joined, at C speed."""
    cells = values.to_numpy(dtype=object)
    try:
        text = "\n".join(cells)
    except TypeError:  # missing values (None, NaN, NA) among the text
        text = "\n".join(v for v in cells if isinstance(v, str))
    return "<" in text or "=" in text or ":" in text


def plain_text_columns(entity: str, df: pd.DataFrame) -> list[str]:
    """The chunk's text columns that are plain text: all but the entity's rich text and the
    snapshot's own columns (numbers and dates are text too, and never hold markup)."""
    rich = set(RICH_TEXT.get(entity, ())) | _NOT_SENT
    return [
        c
        for c in df.columns
        if c not in rich and (pd.api.types.is_object_dtype(df[c]) or pd.api.types.is_string_dtype(df[c]))
    ]


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Prefix with ' every text cell a spreadsheet would evaluate; numbers are left alone.

    For files a person opens in a spreadsheet only: it changes the data (``-20% ...`` becomes
    ``'-20% ...``), so no file read by an importer goes through it.
    """
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
            self.rows.append(
                pd.DataFrame(
                    {
                        "key": df.loc[mask, "key"],
                        "field": field_,
                        "value": df.loc[mask, field_] if field_ in df else "",
                        "reason": reason,
                    }
                )
            )
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


def plain_number(values: pd.Series, places: int) -> pd.Series:
    """Numbers as plain decimal text, at most ``places`` decimals, no trailing zeros, never an
    exponent (``f"{x:g}"`` wrote 1234500 g as ``1.2345e+06``); missing stays empty."""
    return values.map(lambda x: "" if pd.isna(x) else f"{x:.{places}f}".rstrip("0").rstrip("."))


def _whole(s: pd.Series) -> pd.Series:
    """Quantities as whole units (rounded down), as shops count stock; missing is 0."""
    return _num(s).fillna(0).clip(lower=0).floordiv(1).astype(int).astype(str)


def _blank(s: pd.Series) -> pd.Series:
    return s.fillna("").astype(str)


def notify_flags(settings: Settings, statuses: pd.Series) -> pd.Series:
    """Whether the shop tells the customer of each row's status (``notices.notify``;
    ``invoice_available`` for a new invoice), as booleans. Always false when Passerelle mails the
    notices itself (``notices.mail.enabled``): the customer is told once, by one sender."""
    notices = settings.notices
    if notices.mail.enabled:
        return pd.Series(False, index=statuses.index)
    return statuses.map(lambda status: notices.notifies(str(status))).astype(bool)


def local_time(utc_iso: pd.Series, timezone: str, fmt: str = "%Y-%m-%d %H:%M:%S") -> pd.Series:
    """UTC times of the views (``2026-11-20T09:00:00Z``) in the shop's timezone, as *fmt*."""
    when = pd.to_datetime(utc_iso.fillna("").replace("", None), utc=True, format="%Y-%m-%dT%H:%M:%SZ")
    return when.dt.tz_convert(timezone).dt.strftime(fmt).fillna("")


def with_shop_order(df: pd.DataFrame, shop: str) -> pd.DataFrame:
    """The rows of orders the shop knows (a shop order id): a shop's own import finds the order
    by its id, and an order entered in the back office has none there. The others are logged
    (they still travel in the generic ``order_statuses`` file)."""
    known = df["shop_order_id"].fillna("").astype(str).str.strip() != ""
    if not known.all():
        log.info(
            "%d parcels of orders %s have no %s order id (entered in the back office): not in %s's file",
            int((~known).sum()),
            sorted(df.loc[~known, "order_number"].unique())[:5],
            shop,
            shop,
        )
    return df[known]


def quantity_text(value: Decimal | float | int | str | None) -> str:
    """A quantity as the shops read it: ``2`` for a whole number, ``1.5`` otherwise, empty if missing."""
    if value is None or value == "":
        return ""
    number = Decimal(str(value))
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


#: Columns of :func:`delivery_lines` taken from each line of a parcel (the view's ``lines`` JSON).
DELIVERY_LINE_COLUMNS = ("line_number", "reference", "label", "quantity", "ordered")


def delivery_lines(df: pd.DataFrame) -> pd.DataFrame:
    """One row per line of each parcel (``passerelle_src.delivery``, its ``lines`` JSON), the parcel's
    columns repeated, in parcel then line order; quantities as :func:`quantity_text`."""
    rows: list[dict] = []
    for position, text in enumerate(df["lines"].fillna("[]")):
        for line in json.loads(text, parse_float=Decimal):
            rows.append({"_row": position, **{k: line.get(k) for k in DELIVERY_LINE_COLUMNS}})
    lines = pd.DataFrame(rows, columns=["_row", *DELIVERY_LINE_COLUMNS])
    out = df.drop(columns=["lines"]).iloc[lines["_row"].to_numpy()].reset_index(drop=True)
    for column in DELIVERY_LINE_COLUMNS:
        values = lines[column].map(quantity_text) if column in ("quantity", "ordered") else lines[column]
        out[column] = values.fillna("").astype(str).to_numpy()
    return out


def _csv_field(value: str, sep: str) -> str:
    """A CSV field as Python's csv module writes it with QUOTE_MINIMAL and a CRLF line end: in
    quotes (a quote doubled) when it holds the separator, a quote, a CR or an LF."""
    if sep in value or '"' in value or "\r" in value or "\n" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def _csv_column(values: pd.Series, sep: str) -> np.ndarray | None:
    """A column's fields (:func:`_csv_field`, a missing value empty), or None if it holds anything
    but text and missing values (numbers, dates...: pandas formats those)."""
    cells = values.to_numpy(dtype=object)
    try:
        text = "\0".join(cells)
    except TypeError:
        missing = pd.isna(cells)
        if not missing.any():
            return None
        cells = cells.copy()
        cells[missing] = ""
        try:
            text = "\0".join(cells)
        except TypeError:
            return None
    # Most columns (codes, numbers as text, names) hold no character to quote: one search over
    # the column's text, at C speed, and the cells are written as they are.
    if sep in text or '"' in text or "\r" in text or "\n" in text:
        return np.array([_csv_field(v, sep) for v in cells], dtype=object)
    return cells


def csv_bytes(df: pd.DataFrame, *, sep: str = ",", encoding: str = "utf-8") -> bytes:
    """The rows as a CSV file, byte for byte what ``df.to_csv(index=False, sep=sep,
    quoting=csv.QUOTE_MINIMAL, lineterminator="\\r\\n")`` writes, header first.

    The shops' files are text (the views' values as COPY gives them, and what the dialects make
    of them): their columns are joined here, about three times faster than pandas, whose writer
    goes through the csv module cell by cell (at 1,000,000 articles, most of a full send's Python
    time, bench/README.md). A frame with anything else (a number, a date), or with fewer than two
    columns (a one-field row has its own rule), is written by pandas. Text the encoding cannot
    hold is an error (``errors="strict"``), never a replaced character.
    """
    columns = [_csv_column(df[name], sep) for name in df.columns] if df.columns.is_unique else [None]
    if len(df.columns) < 2 or any(c is None for c in columns) or not all(isinstance(n, str) for n in df.columns):
        buf = io.StringIO()
        df.to_csv(buf, index=False, sep=sep, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        return buf.getvalue().encode(encoding, errors="strict")
    lines = [sep.join(_csv_field(name, sep) for name in df.columns)]
    lines += map(sep.join, zip(*columns))
    lines.append("")
    return "\r\n".join(lines).encode(encoding, errors="strict")


_EAN_WEIGHTS = np.array([1, 3] * 6, dtype=np.int64)


def valid_ean13(s: pd.Series) -> pd.Series:
    """True where the value is empty or a 13-digit EAN with a right check digit (vectorised)."""
    s = s.fillna("")
    shaped = s.str.fullmatch(r"\d{13}").fillna(False).to_numpy(dtype=bool)
    ok = np.zeros(len(s), dtype=bool)
    at = np.flatnonzero(shaped)
    if len(at):
        values = s.to_numpy(dtype=object)[at]
        ascii_ = np.fromiter((v.isascii() for v in values), dtype=bool, count=len(values))
        if ascii_.any():
            # The digits as one array of bytes, 13 a row: no per-character Python work.
            raw = "".join(values[ascii_]).encode("ascii")
            digits = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 13).astype(np.int64) - 48
            check = (10 - (digits[:, :12] @ _EAN_WEIGHTS) % 10) % 10
            ok[at[ascii_]] = check == digits[:, 12]
        for i in at[~ascii_]:  # other Unicode digits (\d matches them), read by int()
            d = [int(c) for c in s.iat[i]]
            ok[i] = (10 - sum(x * (3 if k % 2 else 1) for k, x in enumerate(d[:12])) % 10) % 10 == d[12]
    return pd.Series((s == "").to_numpy(dtype=bool) | ok, index=s.index)


def pdf_names(numbers: pd.Series) -> pd.Series:
    """The invoice PDFs' file names (vectorised twin of :func:`passerelle.core.invoices.pdf_name`)."""
    return PDF_NAME_PREFIX + numbers.str.replace(PDF_NAME_DROP, "-", regex=True) + PDF_NAME_SUFFIX


def in_time_order(df: pd.DataFrame) -> pd.DataFrame:
    """Status rows in the order they happened: time, then the statuses' natural order."""
    rank = df["status"].map(STATUS_RANK).fillna(len(STATUS_RANK) + 1)
    return df.assign(_rank=rank).sort_values(["changed_at", "_rank", "key"], kind="stable").drop(columns="_rank")


class Dialect:
    """Base: file stems, the transform of live rows and of removed rows, the bytes.

    ``with_previous``: entities whose live rows the file writer gives two more columns,
    ``batch_label`` (the label the snapshot will record for the row) and ``previous_label``
    (the one it holds now, from the last confirmed send; empty for a new row and in a full
    send), so that a dialect can tell which part of a changed row changed (PrestaShop: the
    photos) without a second hash in the snapshot.

    :param settings: the whole typed configuration (default: every section's defaults); each
        dialect reads its own section and the shared keys it needs.
    :param as_of: the run's day, for what depends on the date (default: today).
    """

    name = "base"
    separator = ","
    decimal = "."
    encoding = "utf-8"
    #: Entity -> file stem, in the order the shop must import.
    stems: dict[str, str] = {}
    with_previous: frozenset[str] = frozenset()

    def __init__(self, settings: Settings | None = None, *, as_of: date | None = None):
        self.settings = settings if settings is not None else default_settings()
        self.as_of = as_of

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
            bad |= rejects.add(
                df, price.isna() | (price < 0), "price_excl_vat", "price excl. VAT is missing or negative"
            )
        if "ean" in df:
            bad |= rejects.add(df, ~valid_ean13(df["ean"]), "ean", "not a valid EAN-13 (13 digits, check digit)")
        # Plain text never carries markup to a shop (a shop shows it as it is, or runs it): the row
        # is refused, naming the field, rather than sent with its value changed.
        for col in plain_text_columns(entity, df):
            bad |= rejects.add(df, markup_in(df[col]), col, MARKUP_REASON.format(field=col))
        return bad

    def to_bytes(self, df: pd.DataFrame) -> bytes:
        """The file as the importer reads it (:func:`csv_bytes`): values written as they are, never
        neutralised (WooCommerce and Shopify store a leading ``'`` as typed, in titles, SKUs...)."""
        return csv_bytes(df, sep=self.separator, encoding=self.encoding)
