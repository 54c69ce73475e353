"""Inbound files from the shop: generic orders and customers CSV, and Shopify's orders export.

Pure and vectorised: bytes in, DataFrames out, no database and no Airflow. The format is
described in docs/formats/inbound.md. In short:

* :func:`read_inbound` decodes a file (UTF-8 or cp1252, declared or detected; a row holding
  undecodable bytes is rejected alone), finds its delimiter and decimal mark, recognises its kind
  from the header, checks every field with whole-column operations and returns a
  :class:`ParsedFile`: one frame per target table (orders, lines, payments, customers,
  addresses), shaped for COPY into staging tables, plus the rejects.
* A rejected row takes its whole order with it ("order has a rejected line N"): an order is
  never integrated half. Rejects carry file, physical line (header is line 1), field, value,
  reason and the raw text of the row, for the quarantine and the shop's error folder.
* :func:`reject_unknown_skus` moves orders whose SKU the back office does not know to the
  rejects; :func:`filter_orders` splits orders into created, quotes, cancellations and ignored
  by shop status; :func:`rejects_csv` writes the rejects for a spreadsheet (formulas
  neutralised).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

# --------------------------------------------------------------------------------------------
# Kinds, statuses, columns
# --------------------------------------------------------------------------------------------

ORDERS = "orders"
CUSTOMERS = "customers"
SHOPIFY_ORDERS = "shopify_orders"
KINDS = (ORDERS, CUSTOMERS, SHOPIFY_ORDERS)

#: Our order statuses (the generic format's ``status`` values, lower case).
STATUSES = ("pending", "authorized", "paid", "validated", "quote", "cancelled", "refunded")
_STATUS_ALIASES = {"canceled": "cancelled"}

#: Shopify's Financial Status to ours. A non-empty ``Cancelled at`` makes an order cancelled.
SHOPIFY_STATUSES = {
    "pending": "pending",
    "partially_paid": "pending",
    "authorized": "validated",
    "paid": "paid",
    "partially_refunded": "paid",
    "refunded": "cancelled",
    "voided": "cancelled",
    "expired": "cancelled",
}

ADDRESS_FIELDS = ("first_name", "last_name", "company", "address1", "address2", "postcode", "city",
                  "region", "country", "phone")
ADDRESS_KINDS = ("billing", "delivery")

# Output frames: column order is the staging tables' (COPY needs it fixed).
ORDER_COLUMNS = [
    "line", "shop_order_id", "order_date", "status", "shop_status", "shop_customer_id", "email",
    "phone", "currency", "shipping_method", "shipping_excl_vat", "shipping_incl_vat", "shipping_vat_rate",
    "order_discount_excl_vat", "order_discount_incl_vat", "discount_code", "total_excl_vat",
    "total_incl_vat", "taxes_total", "refunded_amount", "note",
]
LINE_COLUMNS = [
    "line", "shop_order_id", "line_number", "sku", "label", "quantity", "unit_price_excl_vat",
    "unit_price_incl_vat", "vat_rate", "discount_excl_vat", "discount_incl_vat",
]
PAYMENT_COLUMNS = ["line", "shop_order_id", "method", "amount", "transaction_id", "paid", "paid_at"]
CUSTOMER_COLUMNS = [
    "line", "shop_customer_id", "email", "first_name", "last_name", "company", "phone",
    "customer_family", "updated_at", "source",
]
ADDRESS_COLUMNS = ["line", "shop_order_id", "shop_customer_id", "email", "kind", *ADDRESS_FIELDS]
REJECT_COLUMNS = ["file", "line", "field", "value", "reason", "raw", "shop_order_id"]
#: Columns of the rejects CSV for the shop's error folder.
REJECT_CSV_COLUMNS = ["file", "line", "field", "value", "reason", "raw"]

_ADDR_CANON = [f"{k}_{f}" for k in ADDRESS_KINDS for f in ADDRESS_FIELDS]

# Generic orders: canonical name -> column of the file (same names). Order-level first.
_GENERIC_ORDER_LEVEL = [
    "shop_order_id", "order_date", "status", "shop_customer_id", "email", "phone", "currency",
    "shipping_method", "shipping_amount", "shipping_vat_rate", "order_discount", "discount_code",
    "payment_method", "payment_amount", "payment_transaction_id", "payment_paid", "paid_at", "note",
    *_ADDR_CANON,
]
_GENERIC_LINE_LEVEL = ["line_number", "sku", "label", "quantity", "unit_price", "vat_rate", "line_discount"]
_GENERIC_RENAMES = {
    "shipping_amount": "shipping_excl_vat", "order_discount": "order_discount_excl_vat",
    "unit_price": "unit_price_excl_vat", "line_discount": "line_discount_excl_vat",
}
GENERIC_ORDER_COLUMNS = [_GENERIC_RENAMES.get(c, c) for c in _GENERIC_ORDER_LEVEL + _GENERIC_LINE_LEVEL]
GENERIC_ORDER_REQUIRED = ["shop_order_id", "order_date", "status", "sku", "quantity", "unit_price_excl_vat",
                          "vat_rate"]
GENERIC_CUSTOMER_COLUMNS = ["shop_customer_id", "email", "first_name", "last_name", "company", "phone",
                            "customer_family", "updated_at", *_ADDR_CANON]

# Shopify orders export: canonical name -> header (alternatives: first present wins).
_SHOPIFY_ORDER_LEVEL: dict[str, tuple[str, ...]] = {
    "shop_order_id": ("Name",), "order_date": ("Created at",), "status": ("Financial Status",),
    "email": ("Email",), "phone": ("Phone",), "currency": ("Currency",),
    "shipping_method": ("Shipping Method",), "shipping_amount": ("Shipping",),
    "order_discount": ("Discount Amount",), "discount_code": ("Discount Code",),
    "payment_method": ("Payment Method",),
    "payment_transaction_id": ("Payment Reference", "Payment References", "Payment ID"),
    "paid_at": ("Paid at",), "cancelled_at": ("Cancelled at",), "note": ("Notes",),
    "subtotal": ("Subtotal",), "taxes": ("Taxes",), "total": ("Total",),
    "refunded_amount": ("Refunded Amount",),
    **{f"tax_{i}_name": (f"Tax {i} Name",) for i in range(1, 6)},
    **{f"tax_{i}_value": (f"Tax {i} Value",) for i in range(1, 6)},
    **{f"{kind}_{f}": (f"{prefix} {col}",)
       for kind, prefix in (("billing", "Billing"), ("delivery", "Shipping"))
       for f, col in (("name", "Name"), ("company", "Company"), ("address1", "Address1"),
                      ("address2", "Address2"), ("postcode", "Zip"), ("city", "City"),
                      ("region", "Province"), ("country", "Country"), ("phone", "Phone"))},
}
_SHOPIFY_LINE_LEVEL: dict[str, tuple[str, ...]] = {
    "sku": ("Lineitem sku",), "label": ("Lineitem name",), "quantity": ("Lineitem quantity",),
    "unit_price": ("Lineitem price",), "line_discount": ("Lineitem discount",),
    "taxable": ("Lineitem taxable",),
}
SHOPIFY_REQUIRED = ["Name", "Created at", "Financial Status", "Lineitem quantity", "Lineitem price",
                    "Lineitem sku"]

#: The "str" dtype of text columns (python or pyarrow storage, as pandas chooses).
_STR = pd.api.types.pandas_dtype("str")
#: Dates and times: in UTC, to the microsecond. (Dtypes named once: parsing their names costs.)
_UTC = pd.api.types.pandas_dtype("datetime64[us, UTC]")
_SURROGATE = re.compile("[\udc80-\udcff]")
_VALID_NON_ASCII = re.compile("[\u0080-\ud7ff\ue000-\U0010ffff]")
_EMAIL = r"^[^@\s;,]+@[^@\s;,]+\.[^@\s;,]+$"
_DELIMITERS = {",": ",", ";": ";", "tab": "\t", "\\t": "\t", "\t": "\t", "|": "|"}
_DECLARABLE = ("encoding", "delimiter", "decimal", "kind", "timezone", "currency", "taxes_included")
_DATE_HELP = ("expected a date such as 2026-11-20T09:15:00+01:00, 2026-11-20 10:15:00 +0100, "
              "2026-11-20 or 20/11/2026 09:15")


class InboundError(ValueError):
    """The whole file cannot be read (no header, unknown kind, missing columns, bad declaration).

    The message names the file and says what was expected. Row-level problems never raise:
    they become rejects.
    """


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------


@dataclass
class ParsedFile:
    """One inbound file, parsed and checked. Frames are empty (with their columns) when the kind
    has none (a customers file has no orders)."""

    name: str
    kind: str
    encoding: str
    delimiter: str
    decimal: str
    header: str
    rows_read: int
    orders: pd.DataFrame
    lines: pd.DataFrame
    payments: pd.DataFrame
    customers: pd.DataFrame
    addresses: pd.DataFrame
    rejects: pd.DataFrame
    #: Raw text of every data row of the file, indexed by its physical line (for quarantine).
    raw: pd.Series = field(repr=False)

    @property
    def counts(self) -> dict[str, int]:
        """Small numbers for the inbound ledger and XCom."""
        return {
            "rows_read": int(self.rows_read),
            "orders": len(self.orders),
            "lines": len(self.lines),
            "payments": len(self.payments),
            "customers": len(self.customers),
            "addresses": len(self.addresses),
            "rejected_rows": int(self.rejects["line"].nunique()),
            "rejected_orders": int(self.rejects["shop_order_id"].dropna().nunique()),
        }


@dataclass
class OrderSelection:
    """Orders split by what the back office does with them (see :func:`filter_orders`)."""

    create: pd.DataFrame
    quotes: pd.DataFrame
    cancels: pd.DataFrame
    ignored: pd.DataFrame

    @property
    def counts(self) -> dict[str, int]:
        return {"create": len(self.create), "quotes": len(self.quotes), "cancels": len(self.cancels),
                "ignored": len(self.ignored)}


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def read_inbound(name: str, data: bytes, *, declared: Mapping[str, Any] | None = None) -> ParsedFile:
    """Parse one file dropped by the shop.

    :param name: the file's name (only used in messages and rejects, never as a path).
    :param data: the file's bytes.
    :param declared: dialect and context set by configuration, all optional: ``encoding``
        (``utf-8``, ``cp1252``...), ``delimiter`` (``,`` ``;`` ``tab`` ``|``), ``decimal``
        (``.`` or ``,``), ``kind`` (``orders``, ``customers``, ``shopify_orders``), ``timezone``
        of dates written without offset (default ``Europe/Paris``), ``currency`` when the file
        has none (default ``EUR``), ``taxes_included`` for Shopify prices (default: detected per
        order). A ``#passerelle key=value ...`` first line in the file overrides these.
    :raises InboundError: when the file as a whole cannot be read; row problems become rejects.
    """
    opts = _declared_options(name, declared)
    body, comment, first_line = _split_dialect_line(data)
    if comment:
        opts.update(_parse_dialect_line(name, comment))
    text, encoding = _decode(name, body, opts.get("encoding"))
    table = _read_table(name, text, first_line, opts.get("delimiter"))
    kind = opts.get("kind") or _detect_kind(name, table.header)
    if kind not in KINDS:
        raise InboundError(f"{name}: unknown kind {kind!r}; expected one of {list(KINDS)}")
    decimal = opts.get("decimal") or _detect_decimal(table, kind)
    ctx = _Context(name=name, table=table, decimal=decimal, timezone=opts.get("timezone", "Europe/Paris"),
                   currency=opts.get("currency", "EUR"), taxes_included=opts.get("taxes_included"))
    if kind == CUSTOMERS:
        frames = _parse_customers(ctx)
    else:
        frames = _parse_orders(ctx, kind)
    return ParsedFile(
        name=name, kind=kind, encoding=encoding, delimiter=table.delimiter, decimal=decimal,
        header=table.header_text, rows_read=len(table.cells), raw=table.raw_by_line, **frames,
    )


def reject_unknown_skus(parsed: ParsedFile, known_skus: Iterable[str] | pd.Series) -> ParsedFile:
    """Move every order having a line whose SKU is not in ``known_skus`` to the rejects.

    ``known_skus`` holds the back office's article and variant references. Returns a new
    :class:`ParsedFile`; the given one is not changed.
    """
    known = pd.Index(pd.Series(list(known_skus) if not isinstance(known_skus, pd.Series) else known_skus,
                               dtype="str").str.strip().unique())
    lines = parsed.lines
    unknown = ~lines["sku"].isin(known)
    if not unknown.any():
        return parsed
    bad = lines.loc[unknown, ["line", "shop_order_id", "sku"]]
    own = pd.DataFrame({
        "line": bad["line"].to_numpy(), "shop_order_id": bad["shop_order_id"].to_numpy(),
        "field": _sku_field(parsed.kind), "value": bad["sku"].to_numpy(),
        "reason": "unknown SKU: no article or variant with this reference in the back office",
    })
    orders_bad = set(bad["shop_order_id"])
    first_bad = bad.groupby("shop_order_id")["line"].min()
    # Every other row of those orders (lines, and for payments/orders their own lines).
    rows = pd.concat([lines[["line", "shop_order_id"]], parsed.orders[["line", "shop_order_id"]],
                      parsed.payments[["line", "shop_order_id"]]]).drop_duplicates("line")
    others = rows[rows["shop_order_id"].isin(orders_bad) & ~rows["line"].isin(bad["line"])]
    collateral = pd.DataFrame({
        "line": others["line"].to_numpy(), "shop_order_id": others["shop_order_id"].to_numpy(),
        "field": _order_id_field(parsed.kind), "value": others["shop_order_id"].to_numpy(),
        "reason": ("order " + others["shop_order_id"].astype(str) + " has a rejected line "
                   + others["shop_order_id"].map(first_bad).astype("int64").astype(str)).to_numpy(),
    })
    new = pd.concat([own, collateral], ignore_index=True)
    new["file"] = parsed.name
    new["raw"] = _printable(new["line"].map(parsed.raw))
    rejects = _sort_rejects(pd.concat([parsed.rejects, new[REJECT_COLUMNS]], ignore_index=True))

    def keep(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[~frame["shop_order_id"].isin(orders_bad)].reset_index(drop=True)

    orders = keep(parsed.orders)
    addresses = parsed.addresses[~parsed.addresses["shop_order_id"].isin(orders_bad)].reset_index(drop=True)
    customers = parsed.customers
    if parsed.kind != CUSTOMERS:  # customers of an order file come from its integrated orders only
        customers = _customers_from_orders_frame(orders, addresses)
    return replace(parsed, orders=orders, lines=keep(parsed.lines), payments=keep(parsed.payments),
                   addresses=addresses, customers=customers, rejects=rejects)


def filter_orders(
    parsed: ParsedFile,
    integrate: Iterable[str] = ("paid", "validated"),
    quotes: Iterable[str] = ("quote",),
    cancels: Iterable[str] = ("cancelled",),
) -> OrderSelection:
    """Split the file's orders by status: created in the back office, turned into quotes,
    cancelling an order already integrated, or ignored (counted, not rejected)."""
    sets = {"integrate": set(integrate), "quotes": set(quotes), "cancels": set(cancels)}
    for label, values in sets.items():
        unknown = values - set(STATUSES)
        if unknown:
            raise ValueError(f"filter_orders: {label} has unknown statuses {sorted(unknown)}; "
                             f"expected some of {list(STATUSES)}")
    clash = (sets["integrate"] & sets["quotes"]) | (sets["integrate"] & sets["cancels"]) \
        | (sets["quotes"] & sets["cancels"])
    if clash:
        raise ValueError(f"filter_orders: statuses {sorted(clash)} are in more than one group")
    status = parsed.orders["status"]
    m_create = status.isin(sets["integrate"])
    m_quote = status.isin(sets["quotes"])
    m_cancel = status.isin(sets["cancels"])
    orders = parsed.orders
    return OrderSelection(
        create=orders[m_create].reset_index(drop=True),
        quotes=orders[m_quote].reset_index(drop=True),
        cancels=orders[m_cancel].reset_index(drop=True),
        ignored=orders[~(m_create | m_quote | m_cancel)].reset_index(drop=True),
    )


def rejects_csv(rejects: pd.DataFrame) -> bytes:
    """The rejects as a CSV for the shop's error folder: UTF-8 with BOM, ``;``, CRLF, columns
    file;line;field;value;reason;raw. Text a spreadsheet would take for a formula (starting with
    = + - @ tab or CR) is prefixed with ``'``."""
    out = rejects.reindex(columns=REJECT_CSV_COLUMNS).copy()
    out["line"] = out["line"].astype("Int64")
    for col in ("file", "field", "value", "reason", "raw"):
        s = _printable(out[col].astype("str"))
        s = s.where(out[col].notna(), "")
        out[col] = s.where(~s.str.match(r"[=+\-@\t\r]"), "'" + s)
    buf = io.StringIO()
    out.to_csv(buf, sep=";", index=False, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    return codecs.BOM_UTF8 + buf.getvalue().encode("utf-8")


# --------------------------------------------------------------------------------------------
# Reading: dialect, decoding, records
# --------------------------------------------------------------------------------------------


@dataclass
class _Table:
    """The file's data rows as text, one column per header position, with their lines."""

    delimiter: str
    header: list[str]
    header_text: str
    cells: pd.DataFrame  # columns 0..n-1 (str, as read: see text()), RangeIndex
    line: np.ndarray  # physical line where each row starts (increasing)
    raw: np.ndarray  # raw text of each row (object array of str)
    fields: np.ndarray  # number of fields found in each row
    lookup: dict[str, int]  # lower-cased header name -> position (first occurrence)
    undecodable: bool  # some row holds undecodable bytes (lone surrogates)
    _stripped: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def raw_by_line(self) -> pd.Series:
        return pd.Series(self.raw, index=self.line, dtype=_STR)

    def text(self, pos: int) -> np.ndarray:
        """The stripped cells of column ``pos``, as an object array of str.

        Computed once per column (the decimal mark detection and the parsers both read it) and
        shared: callers must not modify it in place. Plain object arrays rather than Series of
        the "str" dtype: comparing or indexing them is several times cheaper."""
        if pos not in self._stripped:
            cells = self.cells[pos].to_numpy(dtype=object)
            self._stripped[pos] = np.array([c.strip() for c in cells], dtype=object)
        return self._stripped[pos]


@dataclass
class _Context:
    name: str
    table: _Table
    decimal: str
    timezone: str
    currency: str
    taxes_included: bool | None


def _declared_options(name: str, declared: Mapping[str, Any] | None) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for key, value in (declared or {}).items():
        if value is None or value == "":
            continue
        if key not in _DECLARABLE:
            raise InboundError(f"{name}: unknown declared option {key!r}; expected some of {list(_DECLARABLE)}")
        opts[key] = value
    return _check_options(name, opts, "declared")


def _check_options(name: str, opts: dict[str, Any], origin: str) -> dict[str, Any]:
    if "encoding" in opts:
        try:
            opts["encoding"] = codecs.lookup(str(opts["encoding"])).name
        except LookupError:
            raise InboundError(f"{name}: {origin} encoding {opts['encoding']!r} is unknown; "
                               "expected e.g. utf-8 or cp1252") from None
    if "delimiter" in opts:
        d = _DELIMITERS.get(str(opts["delimiter"]).lower())
        if d is None:
            raise InboundError(f"{name}: {origin} delimiter {opts['delimiter']!r}; expected one of , ; tab |")
        opts["delimiter"] = d
    if "decimal" in opts and opts["decimal"] not in (".", ","):
        raise InboundError(f"{name}: {origin} decimal {opts['decimal']!r}; expected '.' or ','")
    if "taxes_included" in opts and not isinstance(opts["taxes_included"], bool):
        value = str(opts["taxes_included"]).lower()
        if value not in ("true", "false", "1", "0", "yes", "no"):
            raise InboundError(f"{name}: {origin} taxes_included {opts['taxes_included']!r}; expected true or false")
        opts["taxes_included"] = value in ("true", "1", "yes")
    if "timezone" in opts:
        try:
            pd.Timestamp("2026-01-01").tz_localize(str(opts["timezone"]))
        except Exception:
            raise InboundError(f"{name}: {origin} timezone {opts['timezone']!r} is unknown; "
                               "expected e.g. Europe/Paris") from None
    return opts


def _split_dialect_line(data: bytes) -> tuple[bytes, str | None, int]:
    """Cut an optional ``#passerelle ...`` first line; return (rest, that line, header line no)."""
    start = 0
    for bom in (codecs.BOM_UTF8,):
        if data.startswith(bom):
            start = len(bom)
    head = data[start:start + 11]
    if head.lower() != b"#passerelle":
        return data, None, 1
    end = data.find(b"\n", start)
    end = len(data) if end < 0 else end
    line = data[start:end].decode("ascii", "replace").strip()
    return data[:start] + data[end + 1:], line, 2


def _parse_dialect_line(name: str, line: str) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for token in line.split()[1:]:
        key, sep, value = token.partition("=")
        if not sep or key not in _DECLARABLE:
            raise InboundError(f"{name}: line 1: cannot read {token!r} in the #passerelle line; expected "
                               f"key=value with key among {list(_DECLARABLE)}")
        opts[key] = value
    return _check_options(name, opts, "line 1")


def _decode(name: str, data: bytes, declared: str | None) -> tuple[str, str]:
    """Decode the file as a whole. Undecodable bytes become lone surrogates (surrogateescape) so
    the rows holding them can be rejected alone later.

    Without a declaration: a BOM says UTF-8 (or UTF-16); else UTF-8 if the file decodes, or if
    it has valid non-ASCII UTF-8 text besides a few bad bytes; else cp1252.
    """
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8", "surrogateescape"), "utf-8"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise InboundError(f"{name}: starts with a UTF-16 mark but is not UTF-16: {exc}") from None
    if declared:
        return data.decode(declared, "surrogateescape"), declared
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", "surrogateescape")
    if _VALID_NON_ASCII.search(text):
        return text, "utf-8"
    return data.decode("cp1252", "surrogateescape"), "cp1252"


def _sniff_delimiter(header: str) -> str:
    """The candidate (, ; tab |) found most often in the header outside quotes; ties: , ; tab |."""
    bare = re.sub(r'"[^"]*"', "", header)
    counts = {d: bare.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _read_table(name: str, text: str, first_line: int, delimiter: str | None) -> _Table:
    """Split ``text`` (header first) into rows with pandas' C parser, keeping for each row the
    physical line where it starts, its raw text and its number of fields."""
    if "\n" not in text and "\r" in text:
        text = text.replace("\r", "\n")
    nl = text.find("\n")
    header_text = (text if nl < 0 else text[:nl]).rstrip("\r")
    if not header_text.strip():
        raise InboundError(f"{name}: line {first_line}: no header; the first line must name the columns")
    delim = delimiter or _sniff_delimiter(header_text)
    header = [h.strip() for h in next(csv.reader([header_text], delimiter=delim))]
    body = "" if nl < 0 else text[nl + 1:]
    lines = body.split("\n")
    if lines[-1] == "":
        lines.pop()
    if "\r" in body:
        lines = [line.removesuffix("\r") for line in lines]
    line_no = np.arange(len(lines)) + first_line + 1

    # A row starts on a line where the quotes seen so far are balanced; a row spanning several
    # lines (quoted line breaks) keeps them in its raw text.
    starts = np.ones(len(lines), dtype=bool)
    if '"' in body:
        quotes = np.fromiter((line.count('"') for line in lines), dtype=np.int64, count=len(lines))
        starts = ((np.cumsum(quotes) - quotes) % 2) == 0
    raw = lines
    if not starts.all():
        first = np.flatnonzero(starts).tolist()
        raw = [lines[a] if b == a + 1 else "\n".join(lines[a:b]) for a, b in zip(first, first[1:] + [len(lines)])]
    start_line = line_no[starts]
    blank = np.array([r.strip(" ") == "" for r in raw], dtype=bool)
    if blank.any():
        raw = [r for r, b in zip(raw, blank) if not b]
        start_line = start_line[~blank]
    fields = _field_counts(raw, delim)

    width = max(len(header), int(fields.max()) if len(fields) else 0)
    try:
        source, undecodable = body.encode("utf-8"), False
    except UnicodeEncodeError:  # lone surrogates: undecodable bytes, kept by _decode
        source, undecodable = body.encode("utf-8", "surrogateescape"), _has_surrogates(body)
    if len(raw):
        # pandas reads bytes faster than text, and cannot take lone surrogates as str: it gets
        # the bytes and the same error handler, so undecodable bytes come back as the same
        # surrogates.
        cells = pd.read_csv(io.BytesIO(source), encoding="utf-8", encoding_errors="surrogateescape", sep=delim,
                            header=None, names=list(range(width)), dtype=_STR, na_filter=False,
                            skip_blank_lines=True, engine="c", index_col=False, quotechar='"',
                            doublequote=True, low_memory=False)
    else:
        cells = pd.DataFrame({i: pd.Series(dtype="str") for i in range(width)})
    if len(cells) != len(raw):
        raw, start_line, fields = _records_with_csv(body, delim, first_line)
        if len(cells) != len(raw):
            raise InboundError(f"{name}: cannot split the file into rows (quotes do not balance?); "
                               f"found {len(cells)} rows with pandas and {len(raw)} with the csv module")
    lookup: dict[str, int] = {}
    for i, h in enumerate(header):
        lookup.setdefault(h.lower(), i)
    return _Table(delimiter=delim, header=header, header_text=header_text, cells=cells,
                  line=np.asarray(start_line, dtype=np.int64), raw=np.array(raw, dtype=object),
                  fields=np.asarray(fields), lookup=lookup, undecodable=undecodable)


_QUOTED = re.compile(r'"(?:[^"]|"")*"')


def _field_counts(raw: list[str], delim: str) -> np.ndarray:
    """Number of fields of each row: its delimiters outside quoted text, plus one."""
    return np.fromiter((r.count(delim) + 1 if '"' not in r else _QUOTED.sub("", r).count(delim) + 1 for r in raw),
                       dtype=np.int64, count=len(raw))


def _has_surrogates(text: str) -> bool:
    """Whether ``text`` holds undecodable bytes (lone surrogates, from surrogateescape). A text
    that encodes to UTF-8 has none: that test is much cheaper than the regex search."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.search(text) is not None
    return False


def _records_with_csv(body: str, delim: str, first_line: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Slow path for files with unbalanced quotes: rows, start lines and field counts from the
    csv module, which tokenises like pandas' C parser."""
    physical = body.split("\n")
    raws, starts, counts = [], [], []
    reader = csv.reader(io.StringIO(body), delimiter=delim)
    prev = 0
    for row in reader:
        start, prev = prev + 1, reader.line_num
        if not row or (len(row) == 1 and not row[0].strip(" ")):  # blank line: pandas skips it too
            continue
        raws.append("\n".join(p.removesuffix("\r") for p in physical[start - 1:prev]))
        starts.append(start + first_line)
        counts.append(len(row))
    return raws, np.asarray(starts, dtype=np.int64), np.asarray(counts)


def _detect_kind(name: str, header: list[str]) -> str:
    low = {h.lower() for h in header}
    if {"name", "financial status", "lineitem sku", "lineitem quantity"} <= low:
        return SHOPIFY_ORDERS
    if {"shop_order_id", "sku"} <= low:
        return ORDERS
    if "shop_customer_id" in low or ("email" in low and "sku" not in low and "shop_order_id" not in low):
        return CUSTOMERS
    raise InboundError(
        f"{name}: header not recognised ({', '.join(header[:8])}{', ...' if len(header) > 8 else ''}); expected "
        "generic orders (shop_order_id, order_date, status, sku, quantity, ...), generic customers "
        "(shop_customer_id, email, ...) or Shopify's orders export (Name, Email, Financial Status, "
        "Lineitem sku, ...); see docs/formats/inbound.md")


def _amount_sources(kind: str) -> list[str]:
    if kind == SHOPIFY_ORDERS:
        return ["lineitem price", "subtotal", "total", "shipping"]
    if kind == ORDERS:
        return ["unit_price_excl_vat", "shipping_excl_vat", "payment_amount", "line_discount_excl_vat", "vat_rate"]
    return []


_COMMA_DECIMAL = re.compile(r"[+-]?\d+,\d+")
_DOT_DECIMAL = re.compile(r"[+-]?\d+\.\d+")


def _detect_decimal(table: _Table, kind: str) -> str:
    """',' when amounts look like 12,50 and none like 12.50; else '.'."""
    comma = dot = False
    for col in _amount_sources(kind):
        pos = table.lookup.get(col)
        if pos is None:
            continue
        distinct = set(table.text(pos).tolist())  # amounts repeat a lot: test each value once
        comma = comma or any(_COMMA_DECIMAL.fullmatch(v) for v in distinct)
        dot = dot or any(_DOT_DECIMAL.fullmatch(v) for v in distinct)
    return "," if comma and not dot else "."


# --------------------------------------------------------------------------------------------
# Field parsers: whole columns at once, returning (values, bad mask)
# --------------------------------------------------------------------------------------------


def _on_unique(parse):
    """Run a column parser on the column's distinct values only, then spread the results back.

    Order-level columns repeat on every line of an order (dates, statuses, amounts...): parsing
    each distinct value once is several times faster and gives the same result. The column may
    be a Series of str or an object array of str (then the results have a RangeIndex).
    """

    def wrapper(s: pd.Series | np.ndarray, *args):
        index = s.index if isinstance(s, pd.Series) else pd.RangeIndex(len(s))
        codes, uniques = pd.factorize(np.asarray(s, dtype=object))
        results = parse(pd.Series(uniques, dtype=_STR), *args)
        out = []
        for r in results:
            if isinstance(r, pd.Series):
                out.append(pd.Series(r.array.take(codes), index=index, dtype=r.dtype))
            else:
                out.append(np.asarray(r)[codes])
        return tuple(out)

    wrapper.__doc__ = parse.__doc__
    wrapper.__name__ = parse.__name__
    return wrapper


def _each_distinct(values: np.ndarray, func, dtype: Any = object) -> np.ndarray:
    """``func`` of each value of the object array ``values``, called once per distinct value."""
    codes, uniques = pd.factorize(values)
    return np.array([func(v) for v in uniques], dtype=dtype)[codes]


_NUMBER_SPACES = re.compile(r"[ \u00a0\u202f]")
_DECIMAL_COMMA_NUMBER = re.compile(r"[+-]?(\d+|\d{1,3}(\.\d{3})+)(,\d+)?")
_DECIMAL_DOT_NUMBER = re.compile(r"[+-]?(\d+|\d{1,3}(,\d{3})+)(\.\d+)?")


@_on_unique
def _parse_number(s: pd.Series, decimal: str) -> tuple[pd.Series, np.ndarray]:
    """Numbers written with the file's decimal mark (thousands groups allowed). Empty -> NaN, not bad."""
    # Plain Python on the few distinct values: much cheaper than a dozen .str calls.
    shape = _DECIMAL_COMMA_NUMBER if decimal == "," else _DECIMAL_DOT_NUMBER
    texts = s.tolist()
    ok, plain = [], []  # plain: the number as pandas reads it ('.' decimal mark, no groups)
    for v in texts:
        t = _NUMBER_SPACES.sub("", v)
        ok.append(shape.fullmatch(t) is not None)
        t = t.replace(".", "").replace(",", ".") if decimal == "," else t.replace(",", "")
        plain.append(t if ok[-1] else None)
    ok = np.array(ok, dtype=bool)
    empty = np.array([v == "" for v in texts], dtype=bool)
    values = pd.to_numeric(pd.Series(plain, dtype=_STR), errors="coerce").astype("float64")
    return values, ~ok & ~empty


def _number_help(decimal: str) -> str:
    return "expected a number such as " + ("12,50" if decimal == "," else "12.50")


@_on_unique
def _parse_rate(s: pd.Series, decimal: str) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """VAT rates in percent (20, 5.5, 20%). Returns values, unparsable mask, out-of-range mask."""
    numbers = [v.removesuffix("%").strip() for v in s.tolist()]
    values, bad = _parse_number(np.array(numbers, dtype=object), decimal)
    v = values.to_numpy()
    out = (v < 0) | (v >= 100) | ((v > 0) & (v < 1))
    return values, bad, out


_FRENCH_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{1,2})[:h](\d{2})(?::(\d{2}))?)?$")
_DATE_OFFSET = re.compile(r"\s*([+-]\d{2}):?(\d{2})$")
_DATE_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}(?:$|[ T]\d{2}:\d{2})")
_DATE_WITH_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:\d{2})$")


def _iso_date_text(text: str) -> str:
    """A French date (20/11/2026 09:15) in ISO order, and an offset (+0100, ' +01:00') as +01:00."""
    fr = _FRENCH_DATE.search(text)
    if fr:
        day, month, year, hour, minute, second = fr.groups()
        text = (f"{year}-{month.zfill(2)}-{day.zfill(2)} "
                f"{(hour or '0').zfill(2)}:{minute or '00'}:{second or '00'}")
    return _DATE_OFFSET.sub(lambda m: f"{m[1]}:{m[2]}", text)


@_on_unique
def _parse_datetime(s: pd.Series, tz: str) -> tuple[pd.Series, np.ndarray]:
    """ISO 8601, Shopify's ``2026-11-20 10:15:00 +0100`` and French ``20/11/2026 10:15``.
    Times without offset are in ``tz``. Result in UTC. Empty -> NaT, not bad."""
    texts = s.tolist()
    empty = np.array([v == "" for v in texts], dtype=bool)
    iso_texts = [_iso_date_text(v) for v in texts]
    shaped = np.array([_DATE_SHAPE.match(v) is not None for v in iso_texts], dtype=bool)
    has_tz = np.array([_DATE_WITH_OFFSET.search(v) is not None for v in iso_texts], dtype=bool)
    iso = pd.Series(iso_texts, index=s.index, dtype=_STR)
    # UTC times without their zone while assembling (numpy arrays are cheap to fill); NaT: none.
    utc = np.full(len(texts), np.datetime64("NaT"), dtype="datetime64[us]")
    aware = shaped & has_tz
    if aware.any():
        parsed = pd.to_datetime(iso[aware], format="ISO8601", utc=True, errors="coerce").astype(_UTC)
        utc[aware] = parsed.dt.tz_localize(None).to_numpy()
    naive = shaped & ~has_tz
    if naive.any():
        local = pd.to_datetime(iso[naive], format="ISO8601", errors="coerce")
        local = local.dt.tz_localize(tz, ambiguous=np.ones(int(naive.sum()), dtype=bool),
                                     nonexistent="shift_forward")
        utc[naive] = local.dt.tz_convert("UTC").astype(_UTC).dt.tz_localize(None).to_numpy()
    bad = ~empty & np.isnat(utc)
    return pd.Series(utc, index=s.index).dt.tz_localize("UTC"), bad


_TRUE = ("1", "true", "yes", "y", "oui", "o", "vrai")
_FALSE = ("0", "false", "no", "n", "non", "faux")


@_on_unique
def _parse_bool(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    low = [v.lower() for v in s.tolist()]
    true = np.array([v in _TRUE for v in low], dtype=bool)
    false = np.array([v in _FALSE for v in low], dtype=bool)
    empty = np.array([v == "" for v in low], dtype=bool)
    return pd.Series(true, index=s.index), ~(true | false | empty)


# --------------------------------------------------------------------------------------------
# Problems found on rows
# --------------------------------------------------------------------------------------------


class _Problems:
    """Row problems as they are found: (row position, field, value, reason)."""

    def __init__(self) -> None:
        self._rows: list[np.ndarray] = []
        self._fields: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        self._reasons: list[np.ndarray] = []

    def add(self, mask: np.ndarray | pd.Series, field_: str, values: np.ndarray | pd.Series | str,
            reason: np.ndarray | pd.Series | str) -> None:
        """A problem on each row where ``mask`` holds; ``values`` and ``reason`` are one per row
        of the file, or one for all."""
        idx = np.flatnonzero(np.asarray(mask, dtype=bool))
        if not len(idx):
            return
        vals = np.asarray(values, dtype=object)[idx] if not isinstance(values, str) else values
        why = np.asarray(reason, dtype=object)[idx] if not isinstance(reason, str) else reason
        self.add_rows(idx, field_, vals, why)

    def add_rows(self, idx: np.ndarray, field_: str, values: Any, reasons: Any) -> None:
        """A problem on each row of ``idx``; ``values`` and ``reasons`` are one per row of
        ``idx`` (the reasons need not be worked out for the rows without a problem), or one for
        all."""
        n = len(idx)
        if not n:
            return

        def column(v: Any) -> np.ndarray:
            if isinstance(v, str):
                return np.full(n, v, dtype=object)
            return np.asarray(v, dtype=object)

        self._rows.append(np.asarray(idx, dtype=np.int64))
        self._fields.append(np.full(n, field_, dtype=object))
        self._values.append(column(values))
        self._reasons.append(column(reasons))

    def rows(self) -> np.ndarray:
        """Position of the row of each problem (a row may have several)."""
        return np.concatenate(self._rows) if self._rows else np.zeros(0, dtype=np.int64)

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Row, field, value and reason of each problem, in the order found."""
        if not self._rows:
            return self.rows(), *(np.zeros(0, dtype=object) for _ in range(3))
        return (self.rows(), np.concatenate(self._fields), np.concatenate(self._values),
                np.concatenate(self._reasons))


def _check_shape(ctx: _Context, problems: _Problems) -> None:
    """Rows with too few or too many fields, and rows holding undecodable bytes."""
    t = ctx.table
    n = len(t.header)

    def wrong_count(mask: np.ndarray) -> None:
        idx = np.flatnonzero(mask)
        problems.add_rows(idx, "", "", [f"expected {n} fields as in the header, found {f}" for f in t.fields[idx]])

    wrong_count(t.fields < n)
    if t.cells.shape[1] > n:
        extra = np.zeros(len(t.fields), dtype=bool)
        for pos in range(n, t.cells.shape[1]):
            extra |= t.text(pos) != ""
        wrong_count((t.fields > n) & extra)
    if t.undecodable:
        for pos in range(min(n, t.cells.shape[1])):
            col = t.cells[pos]
            bad = col.str.contains(_SURROGATE.pattern, regex=True).to_numpy(dtype=bool)
            problems.add(bad, t.header[pos], col, "undecodable bytes: not valid text in the file's encoding")


def _text(ctx: _Context, *names: str) -> np.ndarray:
    """The stripped text of the first present column among ``names`` (case-insensitive), or ''
    (an object array of str, shared with the table: not to be modified in place)."""
    for nm in names:
        pos = ctx.table.lookup.get(nm.lower())
        if pos is not None:
            return ctx.table.text(pos)
    return np.full(len(ctx.table.cells), "", dtype=object)


def _source(ctx: _Context, *names: str) -> str:
    for nm in names:
        pos = ctx.table.lookup.get(nm.lower())
        if pos is not None:
            return ctx.table.header[pos]
    return names[0]


def _require_columns(ctx: _Context, required: list[str], kind_label: str) -> None:
    missing = [c for c in required if c.lower() not in ctx.table.lookup]
    if missing:
        raise InboundError(f"{ctx.name}: {kind_label} file lacks the columns {missing}; its header is "
                           f"{ctx.table.header}; see docs/formats/inbound.md")


# --------------------------------------------------------------------------------------------
# Orders (generic and Shopify)
# --------------------------------------------------------------------------------------------


@dataclass
class _Orders:
    """The rows of an orders file grouped by order id, worked out once for all the order-level
    work (numpy indexing is much cheaper than a groupby per column).

    ``codes[i]`` numbers the order of row ``i``: 0, 1, ... in order of first appearance; an
    empty id is a group like any other, as in a groupby. ``first_rows[c]`` is the row where
    order ``c`` first appears.
    """

    codes: np.ndarray
    first_rows: np.ndarray

    @classmethod
    def of(cls, key: np.ndarray) -> _Orders:
        codes, _ = pd.factorize(key)
        _, first_rows = np.unique(codes, return_index=True)
        return cls(codes=codes, first_rows=first_rows)

    def first_of_order(self) -> np.ndarray:
        """True on the first row of each order."""
        out = np.zeros(len(self.codes), dtype=bool)
        out[self.first_rows] = True
        return out

    def first_where(self, mask: np.ndarray) -> np.ndarray:
        """For each order, the first of its rows where ``mask`` holds, or -1 if none does."""
        if mask.all():
            return self.first_rows
        rows = np.flatnonzero(mask)
        found, pos = np.unique(self.codes[rows], return_index=True)
        out = np.full(len(self.first_rows), -1, dtype=np.intp)
        out[found] = rows[pos]
        return out

    def position(self) -> np.ndarray:
        """1, 2, ... for the rows of each order, in file order."""
        by_order = np.argsort(self.codes, kind="stable")  # rows grouped by order, in file order
        grouped = self.codes[by_order]
        out = np.empty(len(self.codes), dtype=np.int64)
        out[by_order] = np.arange(len(grouped)) - np.searchsorted(grouped, grouped) + 1
        return out


def _order_rows(ctx: _Context, kind: str) -> tuple[dict[str, np.ndarray], dict[str, str], list[str], set[str]]:
    """Canonical text columns for an orders file (object arrays of str), the file's own name of
    each, which are order-level, and which the file lacks (all empty)."""
    if kind == ORDERS:
        _require_columns(ctx, GENERIC_ORDER_REQUIRED, "generic orders")
        if "email" not in ctx.table.lookup and "shop_customer_id" not in ctx.table.lookup:
            raise InboundError(f"{ctx.name}: generic orders file needs an email or a shop_customer_id column")
        src = {c: _GENERIC_RENAMES.get(c, c) for c in _GENERIC_ORDER_LEVEL + _GENERIC_LINE_LEVEL}
        order_level = list(_GENERIC_ORDER_LEVEL)
        rows = {c: _text(ctx, s) for c, s in src.items()}
        absent = {c for c, s in src.items() if s.lower() not in ctx.table.lookup}
    else:
        _require_columns(ctx, SHOPIFY_REQUIRED, "Shopify orders export")
        spec = {**_SHOPIFY_ORDER_LEVEL, **_SHOPIFY_LINE_LEVEL}
        src = {c: _source(ctx, *alts) for c, alts in spec.items()}
        order_level = list(_SHOPIFY_ORDER_LEVEL)
        rows = {c: _text(ctx, *alts) for c, alts in spec.items()}
        absent = {c for c, alts in spec.items() if not any(a.lower() in ctx.table.lookup for a in alts)}
        for col in ("shop_customer_id", "line_number", "payment_amount", "payment_paid"):  # not in the export
            rows[col] = np.full(len(ctx.table.cells), "", dtype=object)
            src[col] = col
            absent.add(col)
        for col in ("billing_postcode", "delivery_postcode", "billing_phone", "delivery_phone", "phone"):
            # Shopify keeps leading zeros for Excel this way.
            rows[col] = _each_distinct(rows[col], lambda v: v.removeprefix("'"))
    return rows, src, order_level, absent


def _not_whole_positive(numbers: pd.Series) -> np.ndarray:
    """True where a number is given but is not a whole number greater than 0."""
    v = numbers.to_numpy()
    return ~np.isnan(v) & ((v <= 0) | (v != np.round(v)))


_EMAIL_RE = re.compile(_EMAIL)
_CURRENCY_RE = re.compile(r"[A-Z]{3}")


def _emails(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Emails in lower case, and which look like one (each distinct value worked out once)."""
    codes, distinct = pd.factorize(values)
    lower = np.array([v.lower() for v in distinct], dtype=object)[codes]
    valid = np.array([_EMAIL_RE.match(v) is not None for v in distinct], dtype=bool)[codes]
    return lower, valid


def _parse_orders(ctx: _Context, kind: str) -> dict[str, pd.DataFrame]:
    rows, src, order_level, absent = _order_rows(ctx, kind)
    problems = _Problems()
    _check_shape(ctx, problems)
    key = rows["shop_order_id"]
    n = len(key)
    has_key = key != ""
    orders = _Orders.of(key)
    first_of_order = orders.first_of_order()
    line_of = ctx.table.line

    # Order-level values: the first non-empty value of each order stands for the order; a
    # different non-empty value on another line of the same order is an error.
    written = {col: np.zeros(n, dtype=bool) if col in absent else rows[col] != "" for col in order_level}

    def add(mask, col: str, reason) -> None:
        """A problem with column ``col``; for an order-level column, only on the lines where the
        value is written (Shopify writes them on the order's first line only)."""
        mask = np.asarray(mask, dtype=bool)
        problems.add(mask & written[col] if col in written else mask, src[col], rows[col], reason)

    for col in order_level:
        values, present = rows[col], written[col]
        if not present.any():
            continue
        ref_row = orders.first_where(present)[orders.codes]  # row holding the order's value; -1: none
        ref = values[ref_row]  # the order's value (meaningless where ref_row is -1, never used there)
        differs = np.flatnonzero(present & has_key & (values != ref))
        problems.add_rows(differs, src[col], values[differs],
                          [f"differs from line {line_of[r]} of the same order ({v})"
                           for r, v in zip(ref_row[differs], ref[differs])])
        if not present.all():  # lines without the value take the order's
            rows[col] = np.where(present | (ref_row < 0), values, ref)

    # Required values.
    required = ["shop_order_id", "order_date", "status", "sku", "quantity", "unit_price"]
    if kind == ORDERS:
        required.append("vat_rate")
    for col in required:
        missing = rows[col] == ""
        # An order-level value missing from the whole order is said once, on its first line;
        # but rows without an order id belong to no order: each one is rejected.
        if col in written and col != "shop_order_id":
            missing = missing & first_of_order
        problems.add(missing, src[col], "", "required value is empty")
    no_customer = (rows["email"] == "") & (rows["shop_customer_id"] == "") & first_of_order
    problems.add(no_customer, src["email"], "", "no customer: email and shop_customer_id are both empty")

    # Types.
    email, valid = _emails(rows["email"])
    add((rows["email"] != "") & ~valid, "email", "not an email address")
    order_date, bad = _parse_datetime(rows["order_date"], ctx.timezone)
    add(bad, "order_date", "not a date: " + _DATE_HELP)
    paid_at, bad = _parse_datetime(rows["paid_at"], ctx.timezone)
    add(bad, "paid_at", "not a date: " + _DATE_HELP)
    qty, bad = _parse_number(rows["quantity"], ctx.decimal)
    add(bad | _not_whole_positive(qty), "quantity", "quantity must be a whole number greater than 0")
    # Currency and status codes: worked out once per distinct value, then spread to the rows.
    which, distinct = pd.factorize(rows["currency"])
    distinct = [v.upper() if v != "" else ctx.currency for v in distinct]
    currency = np.array(distinct, dtype=object)[which]
    add(~np.array([_CURRENCY_RE.fullmatch(v) is not None for v in distinct], dtype=bool)[which], "currency",
        "not a currency code: expected 3 letters such as EUR")

    money_cols = ["unit_price", "line_discount", "shipping_amount", "order_discount", "payment_amount"]
    if kind == SHOPIFY_ORDERS:
        money_cols += ["subtotal", "taxes", "total", "refunded_amount"] + [f"tax_{i}_value" for i in range(1, 6)]
    money: dict[str, pd.Series] = {}
    for col in money_cols:
        values, bad = _parse_number(rows[col], ctx.decimal)
        add(bad, col, "not a number: " + _number_help(ctx.decimal))
        add((values.to_numpy() < 0) & ~bad, col, "must not be negative")
        money[col] = values

    line_number, bad = _parse_number(rows["line_number"], ".")
    add(bad | _not_whole_positive(line_number), "line_number", "line_number must be a whole number greater than 0")
    line_number = _filled(line_number.to_numpy(), orders.position().astype("float64"))
    dup = pd.DataFrame({"k": orders.codes, "n": line_number}).duplicated(keep="first").to_numpy() & has_key
    add(dup, "line_number", "line number appears twice in the same order")

    if kind == ORDERS:
        which, distinct = pd.factorize(rows["status"])
        distinct = [_STATUS_ALIASES.get(v.lower(), v.lower()) for v in distinct]
        status = np.array(distinct, dtype=object)[which]
        unknown = (rows["status"] != "") & ~np.array([v in STATUSES for v in distinct], dtype=bool)[which]
        add(unknown, "status", f"unknown status: expected one of {', '.join(STATUSES)}")
        paid, bad = _parse_bool(rows["payment_paid"])
        add(bad, "payment_paid", "expected 1 or 0 (paid or not)")
        paid = paid.to_numpy() | ((rows["payment_paid"] == "") & (status == "paid"))
        vat, bad, out = _parse_rate(rows["vat_rate"], ctx.decimal)
        svat, sbad, sout = _parse_rate(rows["shipping_vat_rate"], ctx.decimal)
        for col, b, o in (("vat_rate", bad, out), ("shipping_vat_rate", sbad, sout)):
            add(b, col, "not a VAT rate: expected a percentage such as 20 or 5"
                         + (",5" if ctx.decimal == "," else ".5"))
            add(o & ~b, col, "VAT rate out of range: write a percentage (20, not 0.2)")
        typed = _generic_amounts(orders.codes, qty, money, vat, svat)
    else:
        which, distinct = pd.factorize(rows["status"])
        low = [v.lower() for v in distinct]
        mapped = np.array([SHOPIFY_STATUSES.get(v, "") for v in low], dtype=object)[which]
        add(np.array([v != "" and v not in SHOPIFY_STATUSES for v in low], dtype=bool)[which], "status",
            f"unknown Financial Status: expected one of {', '.join(SHOPIFY_STATUSES)}")
        cancelled_at, bad = _parse_datetime(rows["cancelled_at"], ctx.timezone)
        add(bad, "cancelled_at", "not a date: " + _DATE_HELP)
        status = np.where(rows["cancelled_at"] == "", mapped, "cancelled")
        paid = (np.array([v in ("paid", "partially_refunded", "refunded") for v in low], dtype=bool)[which]
                | (rows["paid_at"] != ""))
        typed = _shopify_amounts(ctx, rows, money, orders.codes)

    # Reject: the bad rows and every other row of their orders.
    bad_rows = np.zeros(n, dtype=bool)
    bad_rows[problems.rows()] = True
    first_bad = orders.first_where(bad_rows & has_key)[orders.codes]  # the order's first bad row; -1: none
    in_bad_order = (first_bad >= 0) & has_key
    collateral = np.flatnonzero(in_bad_order & ~bad_rows)
    problems.add_rows(collateral, src["shop_order_id"], key[collateral],
                      [f"order {k} has a rejected line {line_of[r]}"
                       for k, r in zip(key[collateral], first_bad[collateral])])
    keep = ~(bad_rows | in_bad_order)
    has_payment = ((rows["payment_method"] != "") | (rows["payment_transaction_id"] != "")
                   | (rows["payment_amount"] != "") | paid)
    rejects = _rejects_frame(ctx, problems, key)

    # Build the frames from the rows kept.
    per_row = {
        "line": line_of, "shop_order_id": key, "order_date": order_date, "status": status,
        "shop_status": rows["status"], "shop_customer_id": rows["shop_customer_id"],
        "email": email, "currency": currency,
        "shipping_method": rows["shipping_method"], "discount_code": rows["discount_code"], "note": rows["note"],
        "refunded_amount": money.get("refunded_amount", np.zeros(n)),
        "line_number": line_number, "sku": rows["sku"], "label": rows["label"], "quantity": qty,
        "payment_method": rows["payment_method"], "payment_transaction_id": rows["payment_transaction_id"],
        "paid": paid, "paid_at": paid_at, "phone": rows["phone"], "has_payment": has_payment,
        **typed,
        **{c: rows[c] for c in rows if c.startswith(("billing_", "delivery_"))},
    }
    return {**_order_frames(per_row, orders, keep), "rejects": rejects}


def _per_order(values: np.ndarray, key: np.ndarray, how: str) -> np.ndarray:
    """For each row, the "sum" or "max" of ``values`` over the rows of its order (``key``): a
    groupby, for its NaN handling and its compensated sums."""
    return pd.Series(values).groupby(key).transform(how).to_numpy()


def _filled(values: np.ndarray, other: Any) -> np.ndarray:
    """``values`` with NaN replaced by ``other`` (a number, or one per row)."""
    return np.where(np.isnan(values), other, values)


@np.errstate(all="ignore")  # as with Series: NaN and inf are results, not warnings
def _generic_amounts(key: np.ndarray, qty: pd.Series, money: dict[str, pd.Series], vat: pd.Series,
                     svat: pd.Series) -> dict[str, np.ndarray]:
    """Excl. VAT amounts as given; incl. VAT computed; totals per order (an order-level discount
    is spread over VAT rates like the lines). ``key`` numbers the order of each row.

    The same arithmetic as on Series, on their numpy arrays (much less overhead)."""
    qty, vat, svat = qty.to_numpy(), vat.to_numpy(), svat.to_numpy()
    price = money["unit_price"].to_numpy()
    disc = _filled(money["line_discount"].to_numpy(), 0.0)
    net = qty * price - disc
    net_incl = net * (1 + vat / 100)
    lines_excl = _per_order(net, key, "sum")
    lines_incl = _per_order(net_incl, key, "sum")
    ship = _filled(money["shipping_amount"].to_numpy(), 0.0)
    ship_incl = ship * (1 + _filled(svat, _per_order(vat, key, "max")) / 100)
    odisc = _filled(money["order_discount"].to_numpy(), 0.0)
    odisc_incl = odisc * _filled(lines_incl / np.where(lines_excl != 0, lines_excl, np.nan), 1.0)
    total_excl = lines_excl + ship - odisc
    total_incl = lines_incl + ship_incl - odisc_incl
    return {
        "unit_price_excl_vat": price.round(4), "unit_price_incl_vat": (price * (1 + vat / 100)).round(4),
        "vat_rate": vat, "discount_excl_vat": disc.round(2), "discount_incl_vat": (disc * (1 + vat / 100)).round(2),
        "shipping_excl_vat": ship.round(2), "shipping_incl_vat": ship_incl.round(2), "shipping_vat_rate": svat,
        "order_discount_excl_vat": odisc.round(2), "order_discount_incl_vat": odisc_incl.round(2),
        "total_excl_vat": total_excl.round(2), "total_incl_vat": total_incl.round(2),
        "taxes_total": (total_incl - total_excl).round(2),
        "payment_amount": _filled(money["payment_amount"].to_numpy(), total_incl).round(2),
    }


_RATE_IN_NAME = r"(\d+(?:[.,]\d+)?)\s*%"


@_on_unique
def _tax_rate(names: pd.Series) -> tuple[pd.Series]:
    """The rate written in the names of Shopify's tax lines ("FR TVA 20%" -> 20); NaN if none."""
    return (pd.to_numeric(names.str.extract(_RATE_IN_NAME)[0].str.replace(",", "."), errors="coerce"),)


def _split_name(name: str) -> tuple[str, str]:
    """Shopify's "Billing Name" as first name and the rest."""
    first, _, rest = name.partition(" ")
    return first, rest


def _distinct_per_row(frame: pd.DataFrame) -> pd.Series:
    """``frame.nunique(axis=1)`` for numbers (distinct values of each row, NaN not counted),
    without its row-by-row loop: sort each row, count the values unlike the one before."""
    v = np.sort(frame.to_numpy(dtype="float64"), axis=1)  # NaN last
    new = ~np.isnan(v)
    new[:, 1:] &= v[:, 1:] != v[:, :-1]
    return pd.Series(new.sum(axis=1), index=frame.index)


def _shopify_amounts(ctx: _Context, rows: dict[str, np.ndarray], money: dict[str, pd.Series],
                     key: np.ndarray) -> dict[str, Any]:
    """Shopify amounts to ours: VAT rate from the order's tax lines (``Tax 1 Name`` "TVA 20%"),
    prices excl. VAT from prices incl. VAT when the shop's prices include taxes.

    One rate in the order: taxable lines and shipping get it. Several rates: the rate of each
    line is unknown here (NaN, the back office's article rate applies) and excl. VAT amounts are
    left empty when prices include taxes. Taxes included: declared, else detected per order
    (Total = Subtotal + Shipping, rather than + Taxes).
    """
    rates = []
    for i in range(1, 6):
        (r,) = _tax_rate(rows[f"tax_{i}_name"])
        rates.append(r.where(money[f"tax_{i}_value"].fillna(0) > 0))
    R = pd.concat(rates, axis=1)
    distinct = _distinct_per_row(R)
    taxes = money["taxes"].fillna(0.0)
    single = R.max(axis=1).where(distinct == 1)
    order_rate = single.where(distinct > 0, np.where(taxes == 0, 0.0, np.nan))
    taxable = _each_distinct(rows["taxable"], lambda v: v.lower() not in ("false", "no", "0"), bool)
    vat = order_rate.where(taxable, 0.0)

    subtotal, ship, total = money["subtotal"].fillna(0.0), money["shipping_amount"].fillna(0.0), money["total"]
    if ctx.taxes_included is None:
        included = (total - (subtotal + ship)).abs() <= (total - (subtotal + ship + taxes)).abs()
        included = included & (taxes > 0)
    else:
        included = pd.Series(bool(ctx.taxes_included), index=taxes.index)

    def split(amount: pd.Series, rate: pd.Series) -> tuple[pd.Series, pd.Series]:
        excl = amount.where(~included, amount / (1 + rate / 100))
        incl = amount.where(included, amount * (1 + rate / 100))
        return excl, incl

    price = money["unit_price"]
    disc = money["line_discount"].fillna(0.0)
    p_excl, p_incl = split(price, vat)
    d_excl, d_incl = split(disc, vat)
    s_excl, s_incl = split(ship, order_rate)
    line_disc_sum = disc.groupby(key).transform("sum")
    odisc = (money["order_discount"].fillna(0.0) - line_disc_sum).clip(lower=0)
    o_excl, o_incl = split(odisc, order_rate)
    total_incl = total.where(total.notna(), subtotal + ship + taxes.where(~included, 0.0))
    return {
        "unit_price_excl_vat": p_excl.round(4), "unit_price_incl_vat": p_incl.round(4), "vat_rate": vat,
        "discount_excl_vat": d_excl.round(2), "discount_incl_vat": d_incl.round(2),
        "shipping_excl_vat": s_excl.round(2), "shipping_incl_vat": s_incl.round(2), "shipping_vat_rate": order_rate,
        "order_discount_excl_vat": o_excl.round(2), "order_discount_incl_vat": o_incl.round(2),
        "total_excl_vat": (total_incl - taxes).round(2), "total_incl_vat": total_incl.round(2),
        "taxes_total": taxes.round(2), "payment_amount": total_incl.round(2),
        "billing_first_name": _each_distinct(rows["billing_name"], lambda v: _split_name(v)[0]),
        "billing_last_name": _each_distinct(rows["billing_name"], lambda v: _split_name(v)[1]),
        "delivery_first_name": _each_distinct(rows["delivery_name"], lambda v: _split_name(v)[0]),
        "delivery_last_name": _each_distinct(rows["delivery_name"], lambda v: _split_name(v)[1]),
    }


def _str_array(values: Any) -> pd.api.extensions.ExtensionArray:
    """``values`` as an array of the "str" dtype, for a frame column; missing values (None, NaN,
    NaT) stay missing. The same as ``.astype("str")`` on a Series, but cheaper: building Series
    costs, frames are built from arrays here."""
    return pd.array(np.asarray(values, dtype=object), dtype=_STR)


def _nullable(values: Any) -> pd.api.extensions.ExtensionArray:
    """Text for COPY: an array of str where '' is missing (NULL), as are missing values."""
    values = np.asarray(values, dtype=object)
    blank = values == ""
    return _str_array(np.where(blank, np.nan, values) if blank.any() else values)


def _values(column: Any) -> Any:
    """The values of a column given as a Series or an array: a numpy array, or an extension
    array (datetimes with a time zone)."""
    if isinstance(column, pd.Series):
        return column.to_numpy() if isinstance(column.dtype, np.dtype) else column.array
    return column


def _order_frames(rows: Mapping[str, Any], orders: _Orders, keep: np.ndarray) -> dict[str, pd.DataFrame]:
    """Orders, lines, payments, addresses and customers from the kept rows (one per order line).

    ``rows`` holds one value per row of the file for each column: object arrays of str for the
    text (never missing: '' is a value), Series or arrays otherwise (where NaN or NaT may be).
    An order takes, for each column, the first value that is not missing among its kept rows,
    as ``groupby(...).first()`` would.
    """
    take = pd.api.extensions.take
    kept = np.flatnonzero(keep)
    order_rows = orders.first_where(keep)
    order_rows = np.sort(order_rows[order_rows >= 0])  # first kept row of each order, in file order

    def first(col: str) -> Any:
        values = _values(rows[col])
        out = take(values, order_rows)
        if values.dtype != object and pd.isna(out).any():  # missing on the order's first line: take another's
            found = orders.first_where(keep & ~pd.isna(values))[orders.codes[order_rows]]
            out = take(values, found, allow_fill=True)
        return out

    def each_line(col: str) -> Any:
        return take(_values(rows[col]), kept)

    line = rows["line"][order_rows]
    owners = {c: first(c) for c in ("shop_order_id", "shop_customer_id", "email")}
    orders_frame = pd.DataFrame({
        "line": line, "shop_order_id": _str_array(owners["shop_order_id"]), "order_date": first("order_date"),
        "status": _str_array(first("status")), "shop_status": _nullable(first("shop_status")),
        "shop_customer_id": _nullable(owners["shop_customer_id"]), "email": _nullable(owners["email"]),
        "phone": _nullable(first("phone")),
        "currency": _str_array(first("currency")), "shipping_method": _nullable(first("shipping_method")),
        **{c: first(c) for c in ("shipping_excl_vat", "shipping_incl_vat", "shipping_vat_rate",
                                 "order_discount_excl_vat", "order_discount_incl_vat")},
        "discount_code": _nullable(first("discount_code")),
        **{c: first(c) for c in ("total_excl_vat", "total_incl_vat", "taxes_total", "refunded_amount")},
        "note": _nullable(first("note")),
    })

    lines = pd.DataFrame({
        "line": rows["line"][kept], "shop_order_id": _str_array(each_line("shop_order_id")),
        "line_number": each_line("line_number").astype("int64"), "sku": _str_array(each_line("sku")),
        "label": _nullable(each_line("label")), "quantity": each_line("quantity").astype("int64"),
        **{c: each_line(c) for c in ("unit_price_excl_vat", "unit_price_incl_vat", "vat_rate",
                                     "discount_excl_vat", "discount_incl_vat")},
    })

    paying = first("has_payment").astype(bool)
    payments = pd.DataFrame({
        "line": line[paying], "shop_order_id": _str_array(owners["shop_order_id"][paying]),
        "method": _nullable(first("payment_method")[paying]), "amount": first("payment_amount")[paying],
        "transaction_id": _nullable(first("payment_transaction_id")[paying]),
        "paid": first("paid")[paying].astype(bool), "paid_at": first("paid_at")[paying],
    })

    addresses = _addresses(line, owners, {c: first(c) for c in _ADDR_CANON if c in rows})
    return {"orders": orders_frame, "lines": lines, "payments": payments, "addresses": addresses,
            "customers": _customers_from_orders_frame(orders_frame, addresses)}


def _addresses(line: np.ndarray, owners: Mapping[str, np.ndarray],
               fields: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Billing and delivery addresses of orders or customers, one per item of ``line``.

    ``fields`` holds their billing_*/delivery_* text and ``owners`` the columns naming them
    (shop_order_id, shop_customer_id, email): object arrays of str, absent ones empty. An
    address is kept when one of its fields other than country and phone is filled.
    """
    empty = np.full(len(line), "", dtype=object)
    at, is_delivery = [], []  # owner of each address, and its kind
    for kind in ADDRESS_KINDS:
        filled = np.zeros(len(line), dtype=bool)
        for f in ADDRESS_FIELDS:
            if f not in ("country", "phone"):
                filled |= fields.get(f"{kind}_{f}", empty) != ""
        at.append(np.flatnonzero(filled))
        is_delivery.append(np.full(len(at[-1]), kind == "delivery"))
    at, is_delivery = np.concatenate(at), np.concatenate(is_delivery)
    order = np.lexsort((is_delivery, line[at]))  # by line, billing first
    at, is_delivery = at[order], is_delivery[order]

    def field_(f: str) -> np.ndarray:
        """Field ``f`` of each address taken."""
        return np.where(is_delivery, fields.get(f"delivery_{f}", empty)[at], fields.get(f"billing_{f}", empty)[at])

    country = np.array([c.upper() if len(c) == 2 else c for c in field_("country")], dtype=object)
    return pd.DataFrame({
        "line": line[at].astype("int64"),
        **{c: _nullable(owners.get(c, empty)[at]) for c in ("shop_order_id", "shop_customer_id", "email")},
        "kind": _str_array(np.where(is_delivery, "delivery", "billing").astype(object)),
        **{f: _nullable(country if f == "country" else field_(f)) for f in ADDRESS_FIELDS},
    })


def _customers_from_orders_frame(orders: pd.DataFrame, addresses: pd.DataFrame) -> pd.DataFrame:
    """One customer per key (shop customer id and email) of the given orders, named after the
    billing address of its latest order."""
    take = pd.api.extensions.take
    line, date = orders["line"].to_numpy(), orders["order_date"].array
    # The latest order of each key: the last one by order date then line (orders without a
    # date last, as sort_values puts them); customers listed by line.
    by_date = np.lexsort((line, np.where(date.isna(), np.iinfo(np.int64).max, date.asi8)))
    latest = by_date[~orders[["shop_customer_id", "email"]].take(by_date).duplicated(keep="last").to_numpy()]
    latest = latest[np.argsort(line[latest], kind="stable")]
    # The first billing address of that order (-1: none).
    billing = np.flatnonzero(addresses["kind"].to_numpy(dtype=object) == "billing")
    billing_order = addresses["shop_order_id"].to_numpy(dtype=object)[billing]
    first = ~pd.Index(billing_order).duplicated()
    found = pd.Index(billing_order[first]).get_indexer(orders["shop_order_id"].to_numpy(dtype=object)[latest])
    address = take(billing[first], found, allow_fill=True, fill_value=-1)

    def billing_(f: str) -> np.ndarray:
        return take(addresses[f].to_numpy(dtype=object), address, allow_fill=True)

    phone = billing_("phone")
    phone = np.where(pd.isna(phone), orders["phone"].to_numpy(dtype=object)[latest], phone)
    return _customer_frame({
        "line": line[latest], "shop_customer_id": orders["shop_customer_id"].to_numpy(dtype=object)[latest],
        "email": orders["email"].to_numpy(dtype=object)[latest], "first_name": billing_("first_name"),
        "last_name": billing_("last_name"), "company": billing_("company"), "phone": phone,
        "updated_at": date.take(latest), "source": np.full(len(latest), "order", dtype=object),
    })


def _customer_frame(columns: Mapping[str, Any]) -> pd.DataFrame:
    """The customers frame from its columns (arrays, one per customer; absent ones missing):
    text with '' as missing, dates in UTC."""
    n = len(columns["line"])
    out = {}
    for col in CUSTOMER_COLUMNS:
        values = columns.get(col, np.full(n, None, dtype=object))
        if col == "line":
            out[col] = np.asarray(values).astype("int64")
        elif col == "updated_at":
            out[col] = pd.to_datetime(values, utc=True).astype(_UTC)
        else:
            out[col] = _nullable(values)
    return pd.DataFrame(out)


# --------------------------------------------------------------------------------------------
# Customers file
# --------------------------------------------------------------------------------------------


def _parse_customers(ctx: _Context) -> dict[str, pd.DataFrame]:
    if "email" not in ctx.table.lookup and "shop_customer_id" not in ctx.table.lookup:
        raise InboundError(f"{ctx.name}: customers file needs a shop_customer_id or an email column; "
                           f"its header is {ctx.table.header}")
    rows = {c: _text(ctx, c) for c in GENERIC_CUSTOMER_COLUMNS}
    email, customer_id = rows["email"], rows["shop_customer_id"]
    problems = _Problems()
    _check_shape(ctx, problems)
    problems.add((email == "") & (customer_id == ""), "email", "",
                 "no customer key: email and shop_customer_id are both empty")
    lower, valid = _emails(email)
    problems.add((email != "") & ~valid, "email", email, "not an email address")
    updated, bad = _parse_datetime(rows["updated_at"], ctx.timezone)
    problems.add(bad, "updated_at", rows["updated_at"], "not a date: " + _DATE_HELP)
    keep = np.ones(len(email), dtype=bool)
    keep[problems.rows()] = False
    rejects = _rejects_frame(ctx, problems, None)

    # One customer per key (shop customer id, else email): the latest updated, then the last in
    # the file; kept in file order.
    rows["email"] = lower
    key = np.where(customer_id != "", "id:" + customer_id, "email:" + rows["email"])
    latest = pd.DataFrame({"updated_at": updated, "line": ctx.table.line, "key": key})[keep]
    latest = latest.sort_values(["updated_at", "line"], kind="stable", na_position="first")
    chosen = np.sort(latest.drop_duplicates("key", keep="last").index.to_numpy())
    line = ctx.table.line[chosen]
    customers = _customer_frame({
        "line": line, **{c: rows[c][chosen] for c in CUSTOMER_COLUMNS if c in rows and c != "updated_at"},
        "updated_at": updated.array[chosen], "source": np.full(len(chosen), "customers", dtype=object),
    })
    addresses = _addresses(line, {c: rows[c][chosen] for c in ("shop_customer_id", "email")},
                           {c: rows[c][chosen] for c in _ADDR_CANON})
    empty = _empty_order_frames()
    return {**empty, "customers": customers, "addresses": addresses, "rejects": rejects}


def _empty_order_frames() -> dict[str, pd.DataFrame]:
    return {
        "orders": pd.DataFrame(columns=ORDER_COLUMNS),
        "lines": pd.DataFrame(columns=LINE_COLUMNS),
        "payments": pd.DataFrame(columns=PAYMENT_COLUMNS),
    }


# --------------------------------------------------------------------------------------------
# Rejects
# --------------------------------------------------------------------------------------------


def _printable(s: pd.Series) -> pd.Series:
    """Undecodable bytes (kept as lone surrogates) shown as \\xNN so the text can be written."""
    s = s.astype("str")
    bad = s.str.contains(_SURROGATE.pattern, regex=True, na=False)
    if bad.any():
        s = s.copy()
        s[bad] = s[bad].map(_shown)
    return s


def _shown(text: str) -> str:
    """``text`` with its undecodable bytes (lone surrogates) shown as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _rejects_frame(ctx: _Context, problems: _Problems, key: np.ndarray | None) -> pd.DataFrame:
    """The rejects of the file's problems, sorted by line then field (as :func:`_sort_rejects`)."""
    rows, fields, values, reasons = problems.columns()
    line = ctx.table.line[rows]
    _, field_rank = np.unique(fields, return_inverse=True)
    order = np.lexsort((field_rank.reshape(-1), line))  # stable: problems of a line and field stay in order
    rows, fields, values, reasons, line = rows[order], fields[order], values[order], reasons[order], line[order]

    def printable(texts: np.ndarray) -> np.ndarray:
        return np.array([_shown(t) if _has_surrogates(t) else t for t in texts], dtype=object)

    return pd.DataFrame({
        "file": _str_array(np.full(len(rows), ctx.name, dtype=object)),
        "line": line,
        "field": _str_array(fields),
        "value": _str_array(printable(np.where(pd.isna(values), "", values))),
        "reason": _str_array(reasons),
        "raw": _str_array(printable(ctx.table.raw[rows])),
        "shop_order_id": _nullable(key[rows]) if key is not None else _str_array(np.full(len(rows), None)),
    })


def _sort_rejects(out: pd.DataFrame) -> pd.DataFrame:
    out = out.reindex(columns=REJECT_COLUMNS)
    columns = {c: out[c].astype("int64").to_numpy() if c == "line" else _str_array(out[c]) for c in REJECT_COLUMNS}
    return pd.DataFrame(columns).sort_values(["line", "field"], kind="stable").reset_index(drop=True)


def _sku_field(kind: str) -> str:
    return "Lineitem sku" if kind == SHOPIFY_ORDERS else "sku"


def _order_id_field(kind: str) -> str:
    return "Name" if kind == SHOPIFY_ORDERS else "shop_order_id"
