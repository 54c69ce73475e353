"""Field parsers: whole columns at once, each returning (values, bad mask).

Every parser runs on the column's distinct values only (:func:`_on_unique`): order-level
columns repeat on every line of an order, so this is several times faster. Empty cells are
missing values (NaN, NaT), never bad ones: whether a value is required is said elsewhere.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from passerelle.core.emails import email_key
from passerelle.core.inbound.model import _STR, _UTC
from passerelle.core.values import parse_bool

_EMAIL = r"^[^@\s;,]+@[^@\s;,]+\.[^@\s;,]+$"
_DATE_HELP = (
    "expected a date such as 2026-11-20T09:15:00+01:00, 2026-11-20 10:15:00 +0100, 2026-11-20 or 20/11/2026 09:15"
)


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
# ASCII digits only: ``\d`` would take "４.08" (fullwidth digits) as a number that pandas then
# reads as NaN, i.e. a valid-looking amount that becomes 0.
_DECIMAL_COMMA_NUMBER = re.compile(r"[+-]?([0-9]+|[0-9]{1,3}(\.[0-9]{3})+)(,[0-9]+)?")
_DECIMAL_DOT_NUMBER = re.compile(r"[+-]?([0-9]+|[0-9]{1,3}(,[0-9]{3})+)(\.[0-9]+)?")


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
#: A date or time without offset, whole: anything else (a stray "+01") is not read as local time.
_NAIVE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?")


def _iso_date_text(text: str) -> str:
    """A French date (20/11/2026 09:15) in ISO order, and an offset (+0100, ' +01:00') as +01:00."""
    fr = _FRENCH_DATE.search(text)
    if fr:
        day, month, year, hour, minute, second = fr.groups()
        text = f"{year}-{month.zfill(2)}-{day.zfill(2)} {(hour or '0').zfill(2)}:{minute or '00'}:{second or '00'}"
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
    naive = shaped & ~has_tz & np.array([_NAIVE_DATE.fullmatch(v) is not None for v in iso_texts], dtype=bool)
    if naive.any():
        try:
            local = pd.to_datetime(iso[naive], format="ISO8601", errors="coerce")
        except (ValueError, TypeError):  # an offset our patterns did not see, mixed with times without
            local = pd.Series(pd.NaT, index=iso[naive].index, dtype="datetime64[us]")
        if local.dt.tz is not None:  # an offset our patterns did not see ("+01"): not a date we read
            local = pd.Series(pd.NaT, index=local.index, dtype="datetime64[us]")
        local = local.dt.tz_localize(tz, ambiguous=np.ones(int(naive.sum()), dtype=bool), nonexistent="shift_forward")
        utc[naive] = local.dt.tz_convert("UTC").astype(_UTC).dt.tz_localize(None).to_numpy()
    bad = ~empty & np.isnat(utc)
    return pd.Series(utc, index=s.index).dt.tz_localize("UTC"), bad


@_on_unique
def _parse_bool(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Yes/no as :func:`passerelle.core.values.parse_bool` reads it. Empty -> False, not bad."""
    values, bad = [], []
    for v in s.tolist():
        try:
            b = parse_bool(v, "payment_paid", default=False)
        except ValueError:
            b, bad_ = None, True
        else:
            bad_ = False
        values.append(bool(b))
        bad.append(bad_)
    return pd.Series(values, index=s.index, dtype=bool), np.array(bad, dtype=bool)


def _not_whole_positive(numbers: pd.Series) -> np.ndarray:
    """True where a number is given but is not a whole number greater than 0."""
    v = numbers.to_numpy()
    return ~np.isnan(v) & ((v <= 0) | (v != np.round(v)))


#: Longest identifier taken (order id, customer id, e-mail, payment method and transaction id). The
#: back office keeps them in unique indexes, whose entries hold at most about 2,700 bytes: a longer
#: value would make PostgreSQL refuse the whole file (ProgramLimitExceeded) instead of its row.
#: Real ones are far shorter (an e-mail address is at most 254 characters, RFC 5321; 255 characters
#: are at most 1,020 bytes in UTF-8).
MAX_ID_CHARS = 255
#: The columns held to :data:`MAX_ID_CHARS`.
ID_COLUMNS = ("shop_order_id", "shop_customer_id", "email", "payment_method", "payment_transaction_id")


def _too_long(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask of the values longer than :data:`MAX_ID_CHARS`, the reason on each row)."""
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    over = lengths > MAX_ID_CHARS
    reasons = np.full(len(values), "", dtype=object)
    reasons[over] = [
        f"too long: {n:,} characters, an identifier has at most {MAX_ID_CHARS} (the back office indexes it)"
        for n in lengths[over]
    ]
    return over, reasons


_EMAIL_RE = re.compile(_EMAIL)
_CURRENCY_RE = re.compile(r"[A-Z]{3}")


def _emails(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Emails in their comparable form (:func:`passerelle.core.emails.email_key`, the one normalisation,
    shared with the SQL side), and which look like one (each distinct value worked out once)."""
    codes, distinct = pd.factorize(values)
    lower = np.array([email_key(v) for v in distinct], dtype=object)[codes]
    valid = np.array([_EMAIL_RE.match(v) is not None for v in distinct], dtype=bool)[codes]
    return lower, valid


def _per_order(values: np.ndarray, key: np.ndarray, how: str) -> np.ndarray:
    """For each row, the "sum" or "max" of ``values`` over the rows of its order (``key``): a
    groupby, for its NaN handling and its compensated sums."""
    return pd.Series(values).groupby(key).transform(how).to_numpy()


def no_refunded_lines(rows: dict[str, np.ndarray], src: dict[str, str], money: dict[str, Any]) -> np.ndarray:
    """A format's ``refunded_lines`` when its quantities are the quantities sold: no row may read 0."""
    return np.zeros(len(rows["shop_order_id"]), dtype=bool)


def _first_rows(codes: np.ndarray) -> np.ndarray:
    """Each order's first row (``codes``: the order of each row, -1 for a row without one)."""
    first = np.zeros(len(codes), dtype=bool)
    keyed = np.flatnonzero(codes >= 0)
    first[keyed[np.unique(codes[keyed], return_index=True)[1]]] = True
    return first


def _filled(values: np.ndarray, other: Any) -> np.ndarray:
    """``values`` with NaN replaced by ``other`` (a number, or one per row)."""
    return np.where(np.isnan(values), other, values)
