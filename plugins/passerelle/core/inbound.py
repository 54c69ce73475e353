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
    cells: pd.DataFrame  # columns 0..n-1 (str, stripped later), RangeIndex
    line: np.ndarray  # physical line where each row starts
    raw: pd.Series  # raw text of each row (RangeIndex)
    fields: np.ndarray  # number of fields found in each row
    lookup: dict[str, int]  # lower-cased header name -> position (first occurrence)

    @property
    def raw_by_line(self) -> pd.Series:
        return pd.Series(self.raw.to_numpy(), index=self.line, dtype="str")


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
    lines = pd.Series(body.split("\n"), dtype="str")
    if len(lines) and lines.iloc[-1] == "":
        lines = lines.iloc[:-1]
    lines = lines.str.removesuffix("\r")
    line_no = np.arange(len(lines)) + first_line + 1

    # A row starts on a line where the quotes seen so far are balanced.
    quotes = lines.str.count('"').to_numpy()
    starts = ((np.cumsum(quotes) - quotes) % 2) == 0
    rid = np.cumsum(starts) - 1
    multi = pd.Series(rid).duplicated(keep=False).to_numpy()
    raw_all = lines.copy()
    if multi.any():
        joined = lines[multi].groupby(rid[multi]).agg("\n".join)
        raw_all = pd.Series(lines.to_numpy(), dtype="str")
        raw_all[starts & multi] = joined.to_numpy()
    raw = raw_all[starts].reset_index(drop=True)
    start_line = line_no[starts]
    blank = raw.str.strip(" ").eq("").to_numpy()
    raw = raw[~blank].reset_index(drop=True)
    start_line = start_line[~blank]
    unquoted = raw.str.replace(r'"(?:[^"]|"")*"', "", regex=True)
    fields = (unquoted.str.count(re.escape(delim)) + 1).to_numpy()

    width = max(len(header), int(fields.max()) if len(fields) else 0)
    if len(raw):
        # Undecodable bytes are lone surrogates, which pandas cannot take as str: hand it bytes
        # and the same error handler, so they come back as the same surrogates.
        source = (io.BytesIO(body.encode("utf-8", "surrogateescape")) if _SURROGATE.search(body)
                  else io.StringIO(body))
        cells = pd.read_csv(source, encoding="utf-8", encoding_errors="surrogateescape", sep=delim,
                            header=None, names=list(range(width)), dtype="str", na_filter=False,
                            skip_blank_lines=True, engine="c", index_col=False, quotechar='"',
                            doublequote=True)
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
                  line=np.asarray(start_line, dtype=np.int64), raw=raw, fields=np.asarray(fields), lookup=lookup)


def _records_with_csv(body: str, delim: str, first_line: int) -> tuple[pd.Series, np.ndarray, np.ndarray]:
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
    return pd.Series(raws, dtype="str"), np.asarray(starts, dtype=np.int64), np.asarray(counts)


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


def _detect_decimal(table: _Table, kind: str) -> str:
    """',' when amounts look like 12,50 and none like 12.50; else '.'."""
    comma = dot = False
    for col in _amount_sources(kind):
        pos = table.lookup.get(col)
        if pos is None:
            continue
        s = table.cells[pos].str.strip()
        comma = comma or bool(s.str.fullmatch(r"[+-]?\d+,\d+").any())
        dot = dot or bool(s.str.fullmatch(r"[+-]?\d+\.\d+").any())
    return "," if comma and not dot else "."


# --------------------------------------------------------------------------------------------
# Field parsers: whole columns at once, returning (values, bad mask)
# --------------------------------------------------------------------------------------------


def _on_unique(parse):
    """Run a column parser on the column's distinct values only, then spread the results back.

    Order-level columns repeat on every line of an order (dates, statuses, amounts...): parsing
    each distinct value once is several times faster and gives the same result.
    """

    def wrapper(s: pd.Series, *args):
        codes, uniques = pd.factorize(s)
        if len(uniques) == len(s):
            return parse(s, *args)
        results = parse(pd.Series(uniques, dtype="str"), *args)
        out = []
        for r in results:
            if isinstance(r, pd.Series):
                out.append(pd.Series(r.to_numpy()[codes], index=s.index, dtype=r.dtype))
            else:
                out.append(np.asarray(r)[codes])
        return tuple(out)

    wrapper.__doc__ = parse.__doc__
    wrapper.__name__ = parse.__name__
    return wrapper


@_on_unique
def _parse_number(s: pd.Series, decimal: str) -> tuple[pd.Series, np.ndarray]:
    """Numbers written with the file's decimal mark (thousands groups allowed). Empty -> NaN, not bad."""
    t = s.str.replace(r"[ \u00a0\u202f]", "", regex=True)
    if decimal == ",":
        ok = t.str.fullmatch(r"[+-]?(\d+|\d{1,3}(\.\d{3})+)(,\d+)?")
        t = t.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    else:
        ok = t.str.fullmatch(r"[+-]?(\d+|\d{1,3}(,\d{3})+)(\.\d+)?")
        t = t.str.replace(",", "", regex=False)
    empty = (s == "").to_numpy()
    ok = ok.to_numpy(dtype=bool)
    values = pd.to_numeric(t.where(ok), errors="coerce").astype("float64")
    return values, ~ok & ~empty


def _number_help(decimal: str) -> str:
    return "expected a number such as " + ("12,50" if decimal == "," else "12.50")


@_on_unique
def _parse_rate(s: pd.Series, decimal: str) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """VAT rates in percent (20, 5.5, 20%). Returns values, unparsable mask, out-of-range mask."""
    values, bad = _parse_number(s.str.removesuffix("%").str.strip(), decimal)
    out = (values.lt(0) | values.ge(100) | (values.gt(0) & values.lt(1))).to_numpy()
    return values, bad, out


@_on_unique
def _parse_datetime(s: pd.Series, tz: str) -> tuple[pd.Series, np.ndarray]:
    """ISO 8601, Shopify's ``2026-11-20 10:15:00 +0100`` and French ``20/11/2026 10:15``.
    Times without offset are in ``tz``. Result in UTC. Empty -> NaT, not bad."""
    empty = (s == "").to_numpy()
    fr = s.str.extract(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{1,2})[:h](\d{2})(?::(\d{2}))?)?$")
    is_fr = fr[0].notna()
    iso = s.copy()
    if is_fr.any():
        f = fr[is_fr]
        iso[is_fr] = (f[2] + "-" + f[1].str.zfill(2) + "-" + f[0].str.zfill(2) + " "
                      + f[3].fillna("0").str.zfill(2) + ":" + f[4].fillna("00") + ":" + f[5].fillna("00"))
    iso = iso.str.replace(r"\s*([+-]\d{2}):?(\d{2})$", r"\1:\2", regex=True)
    shaped = iso.str.match(r"\d{4}-\d{2}-\d{2}(?:$|[ T]\d{2}:\d{2})").to_numpy(dtype=bool)
    has_tz = iso.str.contains(r"(?:Z|[+-]\d{2}:\d{2})$", regex=True).to_numpy(dtype=bool)
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us, UTC]")
    aware = shaped & has_tz
    if aware.any():
        out[aware] = pd.to_datetime(iso[aware], format="ISO8601", utc=True, errors="coerce").astype(out.dtype)
    naive = shaped & ~has_tz
    if naive.any():
        local = pd.to_datetime(iso[naive], format="ISO8601", errors="coerce")
        local = local.dt.tz_localize(tz, ambiguous=np.ones(int(naive.sum()), dtype=bool),
                                     nonexistent="shift_forward")
        out[naive] = local.dt.tz_convert("UTC").astype(out.dtype)
    bad = ~empty & out.isna().to_numpy()
    return out, bad


@_on_unique
def _parse_bool(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    low = s.str.lower()
    true = low.isin(["1", "true", "yes", "y", "oui", "o", "vrai"]).to_numpy()
    false = low.isin(["0", "false", "no", "n", "non", "faux"]).to_numpy()
    empty = (s == "").to_numpy()
    return pd.Series(true, index=s.index), ~(true | false | empty)


# --------------------------------------------------------------------------------------------
# Problems found on rows
# --------------------------------------------------------------------------------------------


class _Problems:
    """Row problems as they are found: (row position, field, value, reason)."""

    def __init__(self) -> None:
        self._parts: list[pd.DataFrame] = []

    def add(self, mask: np.ndarray | pd.Series, field_: str, values: pd.Series | str, reason: pd.Series | str) -> None:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        idx = np.flatnonzero(mask)
        vals = values.to_numpy()[idx] if isinstance(values, pd.Series) else values
        why = reason.to_numpy()[idx] if isinstance(reason, pd.Series) else reason
        self._parts.append(pd.DataFrame({"row": idx, "field": field_, "value": vals, "reason": why}))

    def frame(self) -> pd.DataFrame:
        if not self._parts:
            return pd.DataFrame({"row": pd.Series(dtype="int64"), "field": pd.Series(dtype="str"),
                                 "value": pd.Series(dtype="str"), "reason": pd.Series(dtype="str")})
        return pd.concat(self._parts, ignore_index=True)


def _check_shape(ctx: _Context, problems: _Problems) -> None:
    """Rows with too few or too many fields, and rows holding undecodable bytes."""
    t = ctx.table
    n = len(t.header)
    reason = f"expected {n} fields as in the header, found " + pd.Series(t.fields).astype("str")
    problems.add(t.fields < n, "", "", reason)
    if t.cells.shape[1] > n:
        extra = t.cells.iloc[:, n:].apply(lambda c: c.str.strip() != "").any(axis=1).to_numpy()
        problems.add((t.fields > n) & extra, "", "", reason)
    if t.raw.str.contains(_SURROGATE.pattern, regex=True).any():
        for pos in range(min(n, t.cells.shape[1])):
            col = t.cells[pos]
            bad = col.str.contains(_SURROGATE.pattern, regex=True).to_numpy(dtype=bool)
            problems.add(bad, t.header[pos], col, "undecodable bytes: not valid text in the file's encoding")


def _text(ctx: _Context, *names: str) -> pd.Series:
    """The stripped text of the first present column among ``names`` (case-insensitive), or ''."""
    for nm in names:
        pos = ctx.table.lookup.get(nm.lower())
        if pos is not None:
            col = ctx.table.cells[pos]
            codes, uniques = pd.factorize(col)
            return pd.Series(pd.Series(uniques, dtype="str").str.strip().to_numpy()[codes], index=col.index,
                             dtype="str")
    return pd.Series("", index=ctx.table.cells.index, dtype="str")


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


def _order_rows(ctx: _Context, kind: str) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """Canonical text columns for an orders file, the file's own name of each, and which are
    order-level."""
    if kind == ORDERS:
        _require_columns(ctx, GENERIC_ORDER_REQUIRED, "generic orders")
        if "email" not in ctx.table.lookup and "shop_customer_id" not in ctx.table.lookup:
            raise InboundError(f"{ctx.name}: generic orders file needs an email or a shop_customer_id column")
        src = {c: _GENERIC_RENAMES.get(c, c) for c in _GENERIC_ORDER_LEVEL + _GENERIC_LINE_LEVEL}
        order_level = list(_GENERIC_ORDER_LEVEL)
        rows = pd.DataFrame({c: _text(ctx, s) for c, s in src.items()})
    else:
        _require_columns(ctx, SHOPIFY_REQUIRED, "Shopify orders export")
        spec = {**_SHOPIFY_ORDER_LEVEL, **_SHOPIFY_LINE_LEVEL}
        src = {c: _source(ctx, *alts) for c, alts in spec.items()}
        order_level = list(_SHOPIFY_ORDER_LEVEL)
        rows = pd.DataFrame({c: _text(ctx, *alts) for c, alts in spec.items()})
        for col in ("shop_customer_id", "line_number", "payment_amount", "payment_paid"):  # not in the export
            rows[col] = ""
            src[col] = col
        for col in ("billing_postcode", "delivery_postcode", "billing_phone", "delivery_phone", "phone"):
            rows[col] = rows[col].str.removeprefix("'")  # Shopify keeps leading zeros for Excel this way
    return rows, src, order_level


def _parse_orders(ctx: _Context, kind: str) -> dict[str, pd.DataFrame]:
    rows, src, order_level = _order_rows(ctx, kind)
    problems = _Problems()
    _check_shape(ctx, problems)
    key = rows["shop_order_id"]
    n = len(rows)

    # Order-level values: the first non-empty value of each order stands for the order; a
    # different non-empty value on another line of the same order is an error.
    first_line = pd.Series(ctx.table.line, index=rows.index)
    written = {col: (rows[col] != "").to_numpy() for col in order_level}
    first_of_order = ~key.duplicated().to_numpy()

    def add(mask, col: str, reason) -> None:
        """A problem with column ``col``; for an order-level column, only on the lines where the
        value is written (Shopify writes them on the order's first line only)."""
        mask = np.asarray(mask, dtype=bool)
        problems.add(mask & written[col] if col in written else mask, src[col], rows[col], reason)

    for col in order_level:
        s = rows[col]
        present = s != ""
        if not present.any():
            continue
        filled = s.where(present)
        ref = filled.groupby(key, sort=False).transform("first")
        ref_line = first_line.where(present).groupby(key, sort=False).transform("first")
        differs = (present & (key != "") & (s != ref)).to_numpy(dtype=bool)
        if differs.any():
            problems.add(differs, src[col], s, "differs from line " + ref_line.fillna(0).astype("int64").astype(str)
                         + " of the same order (" + ref.fillna("").astype(str) + ")")
        rows[col] = s.where(present, ref.fillna(""))

    # Required values.
    required = ["shop_order_id", "order_date", "status", "sku", "quantity", "unit_price"]
    if kind == ORDERS:
        required.append("vat_rate")
    for col in required:
        missing = (rows[col] == "").to_numpy()
        if col in written:  # an order-level value missing from the whole order: said once
            missing = missing & first_of_order
        problems.add(missing, src[col], "", "required value is empty")
    no_customer = ((rows["email"] == "") & (rows["shop_customer_id"] == "")).to_numpy() & first_of_order
    problems.add(no_customer, src["email"], "", "no customer: email and shop_customer_id are both empty")

    # Types.
    email_bad = (rows["email"] != "") & ~rows["email"].str.match(_EMAIL)
    add(email_bad, "email", "not an email address")
    order_date, bad = _parse_datetime(rows["order_date"], ctx.timezone)
    add(bad, "order_date", "not a date: " + _DATE_HELP)
    paid_at, bad = _parse_datetime(rows["paid_at"], ctx.timezone)
    add(bad, "paid_at", "not a date: " + _DATE_HELP)
    qty, bad = _parse_number(rows["quantity"], ctx.decimal)
    bad_qty = bad | (qty.notna() & ((qty <= 0) | (qty != qty.round()))).to_numpy()
    add(bad_qty, "quantity", "quantity must be a whole number greater than 0")
    currency = rows["currency"].str.upper().where(rows["currency"] != "", ctx.currency)
    add(~currency.str.fullmatch(r"[A-Z]{3}").to_numpy(dtype=bool), "currency",
                 "not a currency code: expected 3 letters such as EUR")

    money_cols = ["unit_price", "line_discount", "shipping_amount", "order_discount", "payment_amount"]
    if kind == SHOPIFY_ORDERS:
        money_cols += ["subtotal", "taxes", "total", "refunded_amount"] + [f"tax_{i}_value" for i in range(1, 6)]
    money: dict[str, pd.Series] = {}
    for col in money_cols:
        values, bad = _parse_number(rows[col], ctx.decimal)
        add(bad, col, "not a number: " + _number_help(ctx.decimal))
        add((values < 0).to_numpy() & ~bad, col, "must not be negative")
        money[col] = values

    line_number, bad = _parse_number(rows["line_number"], ".")
    bad = bad | (line_number.notna() & ((line_number <= 0) | (line_number != line_number.round()))).to_numpy()
    add(bad, "line_number", "line_number must be a whole number greater than 0")
    position = rows.groupby(key, sort=False).cumcount() + 1
    line_number = line_number.fillna(position.astype("float64"))
    dup = pd.DataFrame({"k": key, "n": line_number}).duplicated(keep="first").to_numpy() & (key != "").to_numpy()
    add(dup, "line_number", "line number appears twice in the same order")

    if kind == ORDERS:
        status = rows["status"].str.lower().replace(_STATUS_ALIASES)
        unknown = (rows["status"] != "") & ~status.isin(STATUSES)
        add(unknown, "status", f"unknown status: expected one of {', '.join(STATUSES)}")
        paid, bad = _parse_bool(rows["payment_paid"])
        add(bad, "payment_paid", "expected 1 or 0 (paid or not)")
        paid = paid | ((rows["payment_paid"] == "") & status.eq("paid"))
        vat, bad, out = _parse_rate(rows["vat_rate"], ctx.decimal)
        svat, sbad, sout = _parse_rate(rows["shipping_vat_rate"], ctx.decimal)
        for col, b, o, v in (("vat_rate", bad, out, vat), ("shipping_vat_rate", sbad, sout, svat)):
            add(b, col, "not a VAT rate: expected a percentage such as 20 or 5"
                         + (",5" if ctx.decimal == "," else ".5"))
            add(o & ~b, col, "VAT rate out of range: write a percentage (20, not 0.2)")
        typed = _generic_amounts(key, qty, money, vat, svat)
    else:
        low = rows["status"].str.lower()
        status = low.map(SHOPIFY_STATUSES)
        unknown = (low != "") & status.isna()
        add(unknown, "status",
                     f"unknown Financial Status: expected one of {', '.join(SHOPIFY_STATUSES)}")
        cancelled_at, bad = _parse_datetime(rows["cancelled_at"], ctx.timezone)
        add(bad, "cancelled_at", "not a date: " + _DATE_HELP)
        status = status.where(rows["cancelled_at"] == "", "cancelled").fillna("")
        paid = low.isin(["paid", "partially_refunded", "refunded"]) | (rows["paid_at"] != "")
        typed = _shopify_amounts(ctx, rows, money, key)

    # Reject: the bad rows and every other row of their orders.
    prob = problems.frame()
    bad_rows = np.zeros(n, dtype=bool)
    bad_rows[prob["row"].to_numpy()] = True
    lines_no = ctx.table.line
    bad_key = key[bad_rows & (key != "").to_numpy()]
    first_bad = pd.Series(lines_no[bad_rows & (key != "").to_numpy()]).groupby(bad_key.to_numpy()).min()
    in_bad_order = key.isin(first_bad.index).to_numpy() & (key != "").to_numpy()
    collateral = in_bad_order & ~bad_rows
    problems.add(collateral, src["shop_order_id"], key,
                 "order " + key + " has a rejected line " + key.map(first_bad).fillna(0).astype("int64").astype(str))
    keep = ~(bad_rows | in_bad_order)
    has_payment = ((rows["payment_method"] != "") | (rows["payment_transaction_id"] != "")
                   | (rows["payment_amount"] != "") | paid)
    rejects = _rejects_frame(ctx, problems.frame(), key)

    # Build the frames from the rows kept.
    T = pd.DataFrame({
        "line": lines_no, "shop_order_id": key, "order_date": order_date, "status": status,
        "shop_status": rows["status"], "shop_customer_id": rows.get("shop_customer_id", ""),
        "email": rows["email"].str.lower(), "currency": currency, "shipping_method": rows["shipping_method"],
        "discount_code": rows["discount_code"], "note": rows["note"], "refunded_amount": money.get("refunded_amount"),
        "line_number": line_number, "sku": rows["sku"], "label": rows["label"], "quantity": qty,
        "payment_method": rows["payment_method"], "payment_transaction_id": rows["payment_transaction_id"],
        "paid": paid.astype(bool), "paid_at": paid_at, "phone": rows["phone"], "has_payment": has_payment,
        **typed,
        **{c: rows[c] for c in rows.columns if c.startswith(("billing_", "delivery_"))},
    })[keep].reset_index(drop=True)
    return {**_order_frames(T, kind), "rejects": rejects}


def _generic_amounts(key: pd.Series, qty: pd.Series, money: dict[str, pd.Series], vat: pd.Series,
                     svat: pd.Series) -> dict[str, pd.Series]:
    """Excl. VAT amounts as given; incl. VAT computed; totals per order (an order-level discount
    is spread over VAT rates like the lines)."""
    price = money["unit_price"]
    disc = money["line_discount"].fillna(0.0)
    net = qty * price - disc
    net_incl = net * (1 + vat / 100)
    lines_excl = net.groupby(key).transform("sum")
    lines_incl = net_incl.groupby(key).transform("sum")
    ship = money["shipping_amount"].fillna(0.0)
    ship_incl = ship * (1 + svat.fillna(vat.groupby(key).transform("max")) / 100)
    odisc = money["order_discount"].fillna(0.0)
    odisc_incl = odisc * (lines_incl / lines_excl.where(lines_excl != 0)).fillna(1.0)
    total_excl = lines_excl + ship - odisc
    total_incl = lines_incl + ship_incl - odisc_incl
    return {
        "unit_price_excl_vat": price.round(4), "unit_price_incl_vat": (price * (1 + vat / 100)).round(4),
        "vat_rate": vat, "discount_excl_vat": disc.round(2), "discount_incl_vat": (disc * (1 + vat / 100)).round(2),
        "shipping_excl_vat": ship.round(2), "shipping_incl_vat": ship_incl.round(2), "shipping_vat_rate": svat,
        "order_discount_excl_vat": odisc.round(2), "order_discount_incl_vat": odisc_incl.round(2),
        "total_excl_vat": total_excl.round(2), "total_incl_vat": total_incl.round(2),
        "taxes_total": (total_incl - total_excl).round(2),
        "payment_amount": money["payment_amount"].fillna(total_incl).round(2),
    }


_RATE_IN_NAME = r"(\d+(?:[.,]\d+)?)\s*%"


def _shopify_amounts(ctx: _Context, rows: pd.DataFrame, money: dict[str, pd.Series],
                     key: pd.Series) -> dict[str, pd.Series]:
    """Shopify amounts to ours: VAT rate from the order's tax lines (``Tax 1 Name`` "TVA 20%"),
    prices excl. VAT from prices incl. VAT when the shop's prices include taxes.

    One rate in the order: taxable lines and shipping get it. Several rates: the rate of each
    line is unknown here (NaN, the back office's article rate applies) and excl. VAT amounts are
    left empty when prices include taxes. Taxes included: declared, else detected per order
    (Total = Subtotal + Shipping, rather than + Taxes).
    """
    rates = []
    for i in range(1, 6):
        r = rows[f"tax_{i}_name"].str.extract(_RATE_IN_NAME)[0].str.replace(",", ".")
        r = pd.to_numeric(r, errors="coerce").where(money[f"tax_{i}_value"].fillna(0) > 0)
        rates.append(r)
    R = pd.concat(rates, axis=1)
    distinct = R.nunique(axis=1)
    taxes = money["taxes"].fillna(0.0)
    single = R.max(axis=1).where(distinct == 1)
    order_rate = single.where(distinct > 0, np.where(taxes == 0, 0.0, np.nan))
    taxable = ~rows["taxable"].str.lower().isin(["false", "no", "0"])
    vat = order_rate.where(taxable, 0.0)

    subtotal, ship, total = money["subtotal"].fillna(0.0), money["shipping_amount"].fillna(0.0), money["total"]
    if ctx.taxes_included is None:
        included = (total - (subtotal + ship)).abs() <= (total - (subtotal + ship + taxes)).abs()
        included = included & (taxes > 0)
    else:
        included = pd.Series(bool(ctx.taxes_included), index=rows.index)

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
        "billing_first_name": rows["billing_name"].str.split(" ", n=1).str[0].fillna(""),
        "billing_last_name": rows["billing_name"].str.split(" ", n=1).str[1].fillna(""),
        "delivery_first_name": rows["delivery_name"].str.split(" ", n=1).str[0].fillna(""),
        "delivery_last_name": rows["delivery_name"].str.split(" ", n=1).str[1].fillna(""),
    }


def _nullable(s: pd.Series) -> pd.Series:
    """'' -> missing, for COPY (NULL)."""
    return s.astype("str").where(s.astype("str") != "")


def _order_frames(T: pd.DataFrame, kind: str) -> dict[str, pd.DataFrame]:
    """Orders, lines, payments, addresses and customers from the kept rows (one per order line)."""
    g = T.groupby("shop_order_id", sort=False)
    o = g.first()
    o["line"] = g["line"].min()
    o = o.reset_index()
    orders = o.reindex(columns=ORDER_COLUMNS)
    for col in ("shop_customer_id", "email", "phone", "shipping_method", "discount_code", "note", "shop_status"):
        orders[col] = _nullable(orders[col])
    if kind == ORDERS:
        orders["refunded_amount"] = 0.0
    orders["line"] = orders["line"].astype("int64")

    lines = T.reindex(columns=LINE_COLUMNS).copy()
    lines["line_number"] = lines["line_number"].astype("int64")
    lines["quantity"] = lines["quantity"].astype("int64")
    lines["label"] = _nullable(lines["label"])

    p = o[o["has_payment"].to_numpy(dtype=bool)]
    payments = pd.DataFrame({
        "line": p["line"].astype("int64"), "shop_order_id": p["shop_order_id"],
        "method": _nullable(p["payment_method"]),
        "amount": p["payment_amount"], "transaction_id": _nullable(p["payment_transaction_id"]),
        "paid": p["paid"].astype(bool), "paid_at": p["paid_at"],
    }).reset_index(drop=True)

    addresses = _addresses(o, owner_cols=["shop_order_id", "shop_customer_id", "email"])
    return {"orders": orders, "lines": lines, "payments": payments, "addresses": addresses,
            "customers": _customers_from_orders_frame(orders, addresses)}


def _addresses(frame: pd.DataFrame, owner_cols: list[str]) -> pd.DataFrame:
    """Billing and delivery addresses found in ``frame``'s billing_*/delivery_* columns."""
    parts = []
    for kind in ADDRESS_KINDS:
        cols = {f: frame.get(f"{kind}_{f}", pd.Series("", index=frame.index)).fillna("").astype("str")
                for f in ADDRESS_FIELDS}
        a = pd.DataFrame({"line": frame["line"], **{c: frame[c] if c in frame else "" for c in owner_cols},
                          "kind": kind, **cols})
        filled = pd.concat([a[f] != "" for f in ADDRESS_FIELDS if f not in ("country", "phone")], axis=1).any(axis=1)
        parts.append(a[filled])
    out = pd.concat(parts, ignore_index=True).reindex(columns=ADDRESS_COLUMNS)
    out = out.sort_values(["line", "kind"], kind="stable").reset_index(drop=True)
    for col in ADDRESS_COLUMNS:
        if col not in ("line", "kind"):
            out[col] = _nullable(out[col].fillna("").astype("str"))
    out["country"] = out["country"].str.upper().where(out["country"].str.len() == 2, out["country"])
    out["line"] = out["line"].astype("int64")
    return out


def _customers_from_orders_frame(orders: pd.DataFrame, addresses: pd.DataFrame) -> pd.DataFrame:
    """One customer per key (shop customer id and email) of the given orders, named after the
    billing address of its latest order."""
    bill = addresses[addresses["kind"] == "billing"].drop_duplicates("shop_order_id").set_index("shop_order_id")
    o = orders.sort_values(["order_date", "line"], kind="stable")
    o = o.drop_duplicates(["shop_customer_id", "email"], keep="last")
    b = bill.reindex(o["shop_order_id"].to_numpy())
    out = pd.DataFrame({
        "line": o["line"].to_numpy(), "shop_customer_id": o["shop_customer_id"].to_numpy(),
        "email": o["email"].to_numpy(), "first_name": b["first_name"].to_numpy(),
        "last_name": b["last_name"].to_numpy(), "company": b["company"].to_numpy(),
        "phone": b["phone"].fillna(pd.Series(o["phone"].to_numpy(), index=b.index)).to_numpy(),
        "customer_family": None, "updated_at": o["order_date"].to_numpy(), "source": "order",
    })
    return _customer_dtypes(out.sort_values("line").reset_index(drop=True))


def _customer_dtypes(out: pd.DataFrame) -> pd.DataFrame:
    out = out.reindex(columns=CUSTOMER_COLUMNS)
    for col in CUSTOMER_COLUMNS:
        if col not in ("line", "updated_at"):
            out[col] = out[col].astype("str").where(out[col].notna() & (out[col].astype("str") != ""))
    out["line"] = out["line"].astype("int64")
    out["updated_at"] = pd.to_datetime(out["updated_at"], utc=True).astype("datetime64[us, UTC]")
    return out


# --------------------------------------------------------------------------------------------
# Customers file
# --------------------------------------------------------------------------------------------


def _parse_customers(ctx: _Context) -> dict[str, pd.DataFrame]:
    if "email" not in ctx.table.lookup and "shop_customer_id" not in ctx.table.lookup:
        raise InboundError(f"{ctx.name}: customers file needs a shop_customer_id or an email column; "
                           f"its header is {ctx.table.header}")
    rows = pd.DataFrame({c: _text(ctx, c) for c in GENERIC_CUSTOMER_COLUMNS})
    problems = _Problems()
    _check_shape(ctx, problems)
    problems.add((rows["email"] == "") & (rows["shop_customer_id"] == ""), "email", "",
                 "no customer key: email and shop_customer_id are both empty")
    problems.add((rows["email"] != "") & ~rows["email"].str.match(_EMAIL), "email", rows["email"],
                 "not an email address")
    updated, bad = _parse_datetime(rows["updated_at"], ctx.timezone)
    problems.add(bad, "updated_at", rows["updated_at"], "not a date: " + _DATE_HELP)
    prob = problems.frame()
    keep = np.ones(len(rows), dtype=bool)
    keep[prob["row"].to_numpy()] = False
    rejects = _rejects_frame(ctx, prob, None)

    T = rows.assign(line=ctx.table.line, updated_at=updated, email=rows["email"].str.lower())[keep]
    T["_key"] = np.where(T["shop_customer_id"] != "", "id:" + T["shop_customer_id"], "email:" + T["email"])
    T = T.sort_values(["updated_at", "line"], kind="stable", na_position="first").drop_duplicates("_key", keep="last")
    T = T.sort_values("line").reset_index(drop=True)
    customers = _customer_dtypes(T.assign(source="customers"))
    addresses = _addresses(T, owner_cols=["shop_customer_id", "email"])
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
        s[bad] = s[bad].map(lambda v: v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
    return s


def _rejects_frame(ctx: _Context, prob: pd.DataFrame, key: pd.Series | None) -> pd.DataFrame:
    rows = prob["row"].to_numpy()
    out = pd.DataFrame({
        "file": ctx.name,
        "line": ctx.table.line[rows],
        "field": prob["field"].astype("str").to_numpy(),
        "value": _printable(prob["value"].fillna("").astype("str")).to_numpy(),
        "reason": prob["reason"].astype("str").to_numpy(),
        "raw": _printable(ctx.table.raw.iloc[rows].reset_index(drop=True)).to_numpy(),
        "shop_order_id": (_nullable(key.iloc[rows].reset_index(drop=True)).to_numpy() if key is not None
                          else np.full(len(rows), None, dtype=object)),
    })
    return _sort_rejects(out)


def _sort_rejects(out: pd.DataFrame) -> pd.DataFrame:
    out = out.reindex(columns=REJECT_COLUMNS)
    out["line"] = out["line"].astype("int64")
    for col in ("file", "field", "value", "reason", "raw", "shop_order_id"):
        out[col] = out[col].astype("str").where(out[col].notna())
    return out.sort_values(["line", "field"], kind="stable").reset_index(drop=True)


def _sku_field(kind: str) -> str:
    return "Lineitem sku" if kind == SHOPIFY_ORDERS else "sku"


def _order_id_field(kind: str) -> str:
    return "Name" if kind == SHOPIFY_ORDERS else "shop_order_id"
