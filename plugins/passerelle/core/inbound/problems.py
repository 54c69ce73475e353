"""Problems found on rows, and the rejects they become.

A reject names the file, the physical line (header is line 1), the field, the value, the
reason and the raw text of the row, for the quarantine and the shop's error folder.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from passerelle.core.inbound.frames import _customers_from_orders_frame, _nullable, _str_array
from passerelle.core.inbound.model import CUSTOMERS, OWN_COLUMNS, REJECT_COLUMNS, REJECT_CSV_COLUMNS, ParsedFile
from passerelle.core.inbound.reading import _SURROGATE, _Context, _has_surrogates, _shown


class _Problems:
    """Row problems as they are found: (row position, field, value, reason)."""

    def __init__(self) -> None:
        self._rows: list[np.ndarray] = []
        self._fields: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        self._reasons: list[np.ndarray] = []

    def add(
        self,
        mask: np.ndarray | pd.Series,
        field_: str,
        values: np.ndarray | pd.Series | str,
        reason: np.ndarray | pd.Series | str,
    ) -> None:
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
        return (self.rows(), np.concatenate(self._fields), np.concatenate(self._values), np.concatenate(self._reasons))


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
    if t.broken.any():
        problems.add(
            t.broken,
            "",
            "",
            "unbalanced quote: a quoted cell opened on this line never closes "
            '(the row runs to the end of the file); close it with a " or remove the "',
        )
    if t.has_nul:
        for pos in range(min(n, t.cells.shape[1])):
            col = t.cells[pos]
            bad = col.str.contains("\x00", regex=False).to_numpy(dtype=bool)
            problems.add(bad, t.header[pos], col, "NUL character: not text (a binary or UTF-16 file?)")
    if t.undecodable:
        for pos in range(min(n, t.cells.shape[1])):
            col = t.cells[pos]
            bad = col.str.contains(_SURROGATE.pattern, regex=True).to_numpy(dtype=bool)
            problems.add(bad, t.header[pos], col, "undecodable bytes: not valid text in the file's encoding")


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


def _printable(s: pd.Series) -> pd.Series:
    """Undecodable bytes (kept as lone surrogates) shown as \\xNN and NUL as \\x00, so the
    text can be written anywhere."""
    s = s.astype("str")
    bad = s.str.contains(_SURROGATE.pattern + "|\x00", regex=True, na=False)
    if bad.any():
        s = s.copy()
        s[bad] = s[bad].map(_shown)
    return s


def _rejects_frame(ctx: _Context, problems: _Problems, key: np.ndarray | None) -> pd.DataFrame:
    """The rejects of the file's problems, sorted by line then field (as :func:`_sort_rejects`)."""
    rows, fields, values, reasons = problems.columns()
    line = ctx.table.line[rows]
    _, field_rank = np.unique(fields, return_inverse=True)
    order = np.lexsort((field_rank.reshape(-1), line))  # stable: problems of a line and field stay in order
    rows, fields, values, reasons, line = rows[order], fields[order], values[order], reasons[order], line[order]

    def printable(texts: np.ndarray) -> np.ndarray:
        return np.array([_shown(t) if "\x00" in t or _has_surrogates(t) else t for t in texts], dtype=object)

    return pd.DataFrame(
        {
            "file": _str_array(np.full(len(rows), ctx.name, dtype=object)),
            "line": line,
            "field": _str_array(fields),
            "value": _str_array(printable(np.where(pd.isna(values), "", values))),
            "reason": _str_array(printable(reasons)),
            "raw": _str_array(printable(ctx.table.raw[rows])),
            "shop_order_id": _nullable(key[rows]) if key is not None else _str_array(np.full(len(rows), None)),
        }
    )


def _sort_rejects(out: pd.DataFrame) -> pd.DataFrame:
    out = out.reindex(columns=REJECT_COLUMNS)
    columns = {c: out[c].astype("int64").to_numpy() if c == "line" else _str_array(out[c]) for c in REJECT_COLUMNS}
    return pd.DataFrame(columns).sort_values(["line", "field"], kind="stable").reset_index(drop=True)


def sku_field(kind: str) -> str:
    """The file's own name of the SKU column, for rejects."""
    return OWN_COLUMNS.get(kind, OWN_COLUMNS["orders"])[1]


def order_id_field(kind: str) -> str:
    """The file's own name of the order id column, for rejects."""
    return OWN_COLUMNS.get(kind, OWN_COLUMNS["orders"])[0]


def reject_orders(parsed: ParsedFile, own: pd.DataFrame) -> ParsedFile:
    """``parsed`` without the orders of the rows in ``own``, which become rejects.

    ``own`` holds the rows found wrong after parsing (columns line, shop_order_id, field, value,
    reason); every other row of their orders is rejected with it ("order X has a rejected line
    N"), as the parser does, so that an order is never integrated half. Returns a new
    :class:`ParsedFile`; the given one is not changed.
    """
    if not len(own):
        return parsed
    orders_bad = set(own["shop_order_id"])
    first_bad = own.groupby("shop_order_id")["line"].min()
    # Every other row of those orders (lines, and for payments/orders their own lines).
    rows = pd.concat(
        [
            parsed.lines[["line", "shop_order_id"]],
            parsed.orders[["line", "shop_order_id"]],
            parsed.payments[["line", "shop_order_id"]],
        ]
    ).drop_duplicates("line")
    others = rows[rows["shop_order_id"].isin(orders_bad) & ~rows["line"].isin(own["line"])]
    collateral = pd.DataFrame(
        {
            "line": others["line"].to_numpy(),
            "shop_order_id": others["shop_order_id"].to_numpy(),
            "field": order_id_field(parsed.kind),
            "value": others["shop_order_id"].to_numpy(),
            "reason": (
                "order "
                + others["shop_order_id"].astype(str)
                + " has a rejected line "
                + others["shop_order_id"].map(first_bad).astype("int64").astype(str)
            ).to_numpy(),
        }
    )
    new = pd.concat([own[["line", "shop_order_id", "field", "value", "reason"]], collateral], ignore_index=True)
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
    return replace(
        parsed,
        orders=orders,
        lines=keep(parsed.lines),
        payments=keep(parsed.payments),
        addresses=addresses,
        customers=customers,
        rejects=rejects,
    )
