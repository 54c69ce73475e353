"""Reading an inbound file: the optional ``#passerelle`` line, the declared options, decoding
(UTF-8 or cp1252, declared or detected), the delimiter, splitting into rows with their physical
lines and raw text, the kind from the header and the decimal mark from the amounts.

Undecodable bytes are kept as lone surrogates (``surrogateescape``) so that the rows holding
them can be rejected alone later (:func:`passerelle.core.inbound.problems.check_shape`).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from passerelle.core.inbound.model import (
    _STR,
    CUSTOMERS,
    ORDERS,
    PRESTASHOP_ORDERS,
    SHOPIFY_ORDERS,
    WOOCOMMERCE_ORDERS,
    InboundError,
)
from passerelle.core.values import parse_bool

_SURROGATE = re.compile("[\udc80-\udcff]")
_VALID_NON_ASCII = re.compile("[\u0080-\ud7ff\ue000-\U0010ffff]")
_DELIMITERS = {",": ",", ";": ";", "tab": "\t", "\\t": "\t", "\t": "\t", "|": "|"}
_DECLARABLE = ("encoding", "delimiter", "decimal", "kind", "timezone", "currency", "taxes_included")


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
    has_nul: bool  # some row holds a NUL character
    broken: np.ndarray  # rows that cannot be split into cells (a quote that never closes)
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
            # fromiter over map: the same loop with no Python frame per cell (a quarter faster)
            self._stripped[pos] = np.fromiter(map(str.strip, cells), dtype=object, count=len(cells))
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
            raise InboundError(
                f"{name}: {origin} encoding {opts['encoding']!r} is unknown; expected e.g. utf-8 or cp1252"
            ) from None
    if "delimiter" in opts:
        d = _DELIMITERS.get(str(opts["delimiter"]).lower())
        if d is None:
            raise InboundError(f"{name}: {origin} delimiter {opts['delimiter']!r}; expected one of , ; tab |")
        opts["delimiter"] = d
    if "decimal" in opts and opts["decimal"] not in (".", ","):
        raise InboundError(f"{name}: {origin} decimal {opts['decimal']!r}; expected '.' or ','")
    if "taxes_included" in opts:
        try:
            opts["taxes_included"] = parse_bool(opts["taxes_included"], "taxes_included")
        except ValueError:
            raise InboundError(
                f"{name}: {origin} taxes_included {opts['taxes_included']!r}; expected true or false"
            ) from None
    if "timezone" in opts:
        try:
            pd.Timestamp("2026-01-01").tz_localize(str(opts["timezone"]))
        except Exception:
            raise InboundError(
                f"{name}: {origin} timezone {opts['timezone']!r} is unknown; expected e.g. Europe/Paris"
            ) from None
    return opts


def _split_dialect_line(data: bytes) -> tuple[bytes, str | None, int]:
    """Cut an optional ``#passerelle ...`` first line; return (rest, that line, header line no)."""
    start = 0
    for bom in (codecs.BOM_UTF8,):
        if data.startswith(bom):
            start = len(bom)
    head = data[start : start + 11]
    if head.lower() != b"#passerelle":
        return data, None, 1
    end = data.find(b"\n", start)
    end = len(data) if end < 0 else end
    line = data[start:end].decode("ascii", "replace").strip()
    return data[:start] + data[end + 1 :], line, 2


def _parse_dialect_line(name: str, line: str) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for token in line.split()[1:]:
        key, sep, value = token.partition("=")
        if not sep or key not in _DECLARABLE:
            raise InboundError(
                f"{name}: line 1: cannot read {token!r} in the #passerelle line; expected "
                f"key=value with key among {list(_DECLARABLE)}"
            )
        opts[key] = value
    return _check_options(name, opts, "line 1")


def _decode(name: str, data: bytes, declared: str | None) -> tuple[str, str]:
    """Decode the file as a whole. Undecodable bytes become lone surrogates (surrogateescape) so
    the rows holding them can be rejected alone later.

    Without a declaration: a BOM says UTF-8 (or UTF-16); else UTF-8 if the file decodes, or if
    it has valid non-ASCII UTF-8 text besides a few bad bytes; else cp1252.
    """
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8", "surrogateescape"), "utf-8"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise InboundError(f"{name}: starts with a UTF-16 mark but is not UTF-16: {exc}") from None
    if declared:
        try:
            return data.decode(declared, "surrogateescape"), declared
        except UnicodeError as exc:  # UTF-16 and the like know no surrogateescape
            raise InboundError(f"{name}: not valid {declared} (declared): {exc}") from None
    utf16 = _utf16_without_bom(data)
    if utf16:
        try:
            return data.decode(utf16), utf16
        except UnicodeDecodeError as exc:
            raise InboundError(
                f"{name}: looks like {utf16.upper()} without a byte order mark (every other "
                f"byte is 0) but does not decode: {exc}; save it as UTF-8"
            ) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", "surrogateescape")
    if _VALID_NON_ASCII.search(text):
        return text, "utf-8"
    return data.decode("cp1252", "surrogateescape"), "cp1252"


def _utf16_without_bom(data: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' when the file looks like UTF-16 text without its byte order
    mark (Windows tools write it so): in the first KB, nearly every odd (LE) or even (BE) byte
    is 0 and nearly none of the others. Else None."""
    head = data[:1024]
    if len(head) < 4 or b"\x00" not in head:
        return None
    half = len(head) // 2
    even, odd = head[0 : 2 * half : 2].count(0), head[1 : 2 * half : 2].count(0)
    if odd >= 0.9 * half and even <= 0.1 * half:
        return "utf-16-le"
    if even >= 0.9 * half and odd <= 0.1 * half:
        return "utf-16-be"
    return None


def _sniff_delimiter(header: str) -> str:
    """The candidate (, ; tab |) found most often in the header outside quotes; ties: , ; tab |."""
    bare = re.sub(r'"[^"]*"', "", header)
    counts = {d: bare.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _read_table(name: str, text: str, first_line: int, delimiter: str | None) -> _Table:
    """Split ``text`` (header first) into rows with pandas' C parser, keeping for each row the
    physical line where it starts, its raw text and its number of fields."""
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        # A CR alone ends a line, as for pandas and Python's text files: Excel's "CSV
        # (Macintosh)" ends rows so (LF only inside cells); elsewhere a stray CR splits its row,
        # which the field count then rejects.
        text = _LONE_CR.sub("\n", text)
    nl = text.find("\n")
    header_text = (text if nl < 0 else text[:nl]).rstrip("\r")
    if not header_text.strip():
        raise InboundError(f"{name}: line {first_line}: no header; the first line must name the columns")
    if "\x00" in header_text or _has_surrogates(header_text):
        cells = _shown(header_text).split(delimiter or _sniff_delimiter(_shown(header_text)))
        bad = [f"column {i} '{c.strip()}'" for i, c in enumerate(cells, 1) if "\\x" in c][:5]
        raise InboundError(
            f"{name}: line {first_line}: the header holds undecodable bytes or NUL characters "
            f"({', '.join(bad) or _shown(header_text)[:200]}); save the file as UTF-8 or declare its "
            "encoding (#passerelle encoding=...)"
        )
    delim = delimiter or _sniff_delimiter(header_text)
    header = [h.strip() for h in next(csv.reader([header_text], delimiter=delim))]
    if len(header) > MAX_COLUMNS:
        raise InboundError(
            f"{name}: line {first_line}: the header has {len(header)} columns; a shop's export has at most "
            f"{MAX_COLUMNS} (is the delimiter {delim!r} right, or is this another kind of file?)"
        )
    body = "" if nl < 0 else text[nl + 1 :]
    lines = body.split("\n")
    if lines[-1] == "":
        lines.pop()
    if "\r" in body:
        lines = [line.removesuffix("\r") for line in lines]
    line_no = np.arange(len(lines)) + first_line + 1

    # A row starts on a line where the quotes seen so far are balanced; a row spanning several
    # lines (quoted line breaks) keeps them in its raw text.
    starts = np.ones(len(lines), dtype=bool)
    raw = lines
    if not starts.all():
        first = np.flatnonzero(starts).tolist()
        raw = [lines[a] if b == a + 1 else "\n".join(lines[a:b]) for a, b in zip(first, first[1:] + [len(lines)])]
    start_line = line_no[starts]
    longest = max(raw, key=len, default="")
    if len(longest) > MAX_ROW_CHARS:
        at = int(start_line[raw.index(longest)])
        raise InboundError(
            f"{name}: line {at}: a row of {len(longest):,} characters; a shop's row holds at most "
            f"{MAX_ROW_CHARS:,} (a cell pasted from elsewhere, or a quote never closed?)"
        )
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
    cells = None
    if len(raw):
        # pandas reads bytes faster than text, and cannot take lone surrogates as str: it gets
        # the bytes and the same error handler, so undecodable bytes come back as the same
        # surrogates.
        try:
            with warnings.catch_warnings():  # "loss of data": pandas sees other rows than ours
                warnings.simplefilter("error", pd.errors.ParserWarning)
                cells = pd.read_csv(
                    io.BytesIO(source),
                    encoding="utf-8",
                    encoding_errors="surrogateescape",
                    sep=delim,
                    header=None,
                    names=list(range(width)),
                    dtype=_STR,
                    na_filter=False,
                    skip_blank_lines=True,
                    engine="c",
                    index_col=False,
                    quotechar='"',
                    doublequote=True,
                    low_memory=False,
                )
        except (pd.errors.ParserError, pd.errors.ParserWarning, csv.Error, ValueError):  # the csv module decides
            cells = None
    else:
        cells = pd.DataFrame({i: pd.Series(dtype="str") for i in range(width)})
    if cells is None or len(cells) != len(raw):
        raw, start_line, fields, rows = _records_with_csv(body, delim, first_line)
        if cells is None or len(cells) != len(raw):
            width = max(width, int(fields.max()) if len(fields) else 0)
            cells = _frame_of(rows, width)
    broken = np.zeros(len(raw), dtype=bool)
    if len(raw) and '"' in raw[-1] and _ends_inside_quotes(raw[-1], delim):
        broken[-1] = True  # the csv module ran its open quote to the end of the file
        fields = np.asarray(fields).copy()
        fields[-1] = len(header)  # its field count means nothing: the quote is the problem
    lookup: dict[str, int] = {}
    for i, h in enumerate(header):
        lookup.setdefault(h.lower(), i)
    return _Table(
        delimiter=delim,
        header=header,
        header_text=header_text,
        cells=cells,
        line=np.asarray(start_line, dtype=np.int64),
        raw=np.array(raw, dtype=object),
        fields=np.asarray(fields),
        lookup=lookup,
        undecodable=undecodable,
        has_nul="\x00" in body,
        broken=broken,
    )


#: Limits past which a file is refused whole, with the line and what was found: no shop's export
#: comes near them, and a file past them (a 10 MB cell, 100,000 columns) would cost the parser
#: and the back office far more than it could hold.
MAX_COLUMNS = 500
MAX_ROW_CHARS = 100_000

_QUOTED = re.compile(r'"(?:[^"]|"")*"')
_LONE_CR = re.compile("\r(?!\n)")


def _field_counts(raw: list[str], delim: str) -> np.ndarray:
    """Number of fields of each row: its delimiters outside quoted text, plus one."""
    return np.fromiter(
        (r.count(delim) + 1 if '"' not in r else _QUOTED.sub("", r).count(delim) + 1 for r in raw),
        dtype=np.int64,
        count=len(raw),
    )


def _has_surrogates(text: str) -> bool:
    """Whether ``text`` holds undecodable bytes (lone surrogates, from surrogateescape). A text
    that encodes to UTF-8 has none: that test is much cheaper than the regex search."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.search(text) is not None
    return False


def _shown(text: str) -> str:
    """``text`` with its undecodable bytes (lone surrogates) shown as \\xNN and NUL as \\x00,
    so that it can be written anywhere (a log, a CSV, a PostgreSQL text column)."""
    if _has_surrogates(text):
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text.replace("\x00", "\\x00")


def _records_with_csv(
    body: str, delim: str, first_line: int
) -> tuple[list[str], np.ndarray, np.ndarray, list[list[str]]]:
    """Slow path for files with unbalanced quotes, or that pandas cannot split: rows, start
    lines, field counts and cells from the csv module, which tokenises like pandas' C parser."""
    physical = body.split("\n")
    raws, starts, counts, rows = [], [], [], []
    reader = csv.reader(io.StringIO(body), delimiter=delim)
    prev = 0
    for row in reader:
        start, prev = prev + 1, reader.line_num
        if not row or (len(row) == 1 and not row[0].strip(" ")):  # blank line: pandas skips it too
            continue
        raws.append("\n".join(p.removesuffix("\r") for p in physical[start - 1 : prev]))
        starts.append(start + first_line)
        counts.append(len(row))
        rows.append(row)
    return raws, np.asarray(starts, dtype=np.int64), np.asarray(counts, dtype=np.int64), rows


def _frame_of(rows: list[list[str]], width: int) -> pd.DataFrame:
    """Cells as pandas would give them: columns 0..width-1 of str, missing cells empty."""
    padded = [row + [""] * (width - len(row)) if len(row) < width else row[:width] for row in rows]
    return pd.DataFrame({i: pd.Series([r[i] for r in padded], dtype=_STR) for i in range(width)})


def _ends_inside_quotes(text: str, delim: str) -> bool:
    """Whether a quoted cell of ``text`` (a row) is still open at its end, as the csv module
    reads quotes: a quote opens a cell only at the cell's start ('5" screen' is text), ``""``
    inside a quoted cell is a quote."""
    in_quotes, at_start, i = False, True, 0
    while i < len(text):
        c = text[i]
        if in_quotes:
            if c == '"':
                if text[i + 1 : i + 2] == '"':
                    i += 1
                else:
                    in_quotes = False
        elif c == '"' and at_start:
            in_quotes = True
            at_start = False
        else:
            at_start = c in (delim, "\n")
        i += 1
    return in_quotes


def _detect_kind(name: str, header: list[str]) -> str:
    low = {h.lower() for h in header}
    if {"name", "financial status", "lineitem sku", "lineitem quantity"} <= low:
        return SHOPIFY_ORDERS
    if {"order number", "order status", "item cost", "sku"} <= low:
        return WOOCOMMERCE_ORDERS
    if {"reference", "current_state", "product_reference", "product_quantity"} <= low:
        return PRESTASHOP_ORDERS
    if {"shop_order_id", "sku"} <= low:
        return ORDERS
    if "shop_customer_id" in low or ("email" in low and "sku" not in low and "shop_order_id" not in low):
        return CUSTOMERS
    raise InboundError(
        f"{name}: header not recognised ({', '.join(header[:8])}{', ...' if len(header) > 8 else ''}); expected "
        "generic orders (shop_order_id, order_date, status, sku, quantity, ...), generic customers "
        "(shop_customer_id, email, ...), Shopify's orders export (Name, Email, Financial Status, "
        "Lineitem sku, ...), WooCommerce's through Advanced Order Export (Order Number, Order Status, SKU, "
        "Item Cost, ...) or PrestaShop's through its SQL Manager (reference, current_state, product_reference, "
        "product_quantity, ...); see docs/formats/inbound.md"
    )


def _amount_sources(kind: str) -> list[str]:
    if kind == SHOPIFY_ORDERS:
        return ["lineitem price", "subtotal", "total", "shipping"]
    if kind == WOOCOMMERCE_ORDERS:
        return ["item cost", "order total amount", "order shipping amount", "order total tax amount"]
    if kind == PRESTASHOP_ORDERS:
        return ["unit_price_tax_excl", "unit_price_tax_incl", "total_paid_tax_incl", "total_shipping_tax_excl"]
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
        raise InboundError(
            f"{ctx.name}: {kind_label} file lacks the columns {missing}; its header is "
            f"{ctx.table.header}; see docs/formats/inbound.md"
        )
