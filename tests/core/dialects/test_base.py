"""What every dialect shares: the registry, sanitising, neutralising (human-facing files only)."""

from __future__ import annotations

import csv
import io
import random

import pandas as pd
import pytest

from passerelle.core.dialects import dialect, exchange_dialect, names, register
from passerelle.core.dialects.base import (
    Dialect,
    _csv_column,
    csv_bytes,
    markup_in,
    neutralise_formulas,
    plain_number,
    sanitise_html,
    valid_ean13,
)


def test_weights_are_written_as_plain_decimals():
    """A tonne and more in grams (Shopify) was written 1.2345e+06, and six significant digits at
    most (f"{x:g}"): plain decimals, no trailing zeros, whatever the size."""
    grams = pd.Series([1234500.0, 1234567.8, 200.0, 0.0, float("nan"), 12.25])
    assert plain_number(grams, 1).tolist() == ["1234500", "1234567.8", "200", "0", "", "12.2"]
    assert plain_number(pd.Series([0.2, 0.25, 1234.5, 1e-4]), 3).tolist() == ["0.2", "0.25", "1234.5", "0"]


def test_formulas_are_neutralised_numbers_are_not():
    df = neutralise_formulas(pd.DataFrame({"a": ["=1+2", "@SUM(A1)", "-3.5", "+33 1 23", "plain"]}))
    assert list(df["a"]) == ["'=1+2", "'@SUM(A1)", "-3.5", "'+33 1 23", "plain"]


@pytest.mark.parametrize("name", ["generic", "prestashop"])
def test_files_for_an_importer_are_not_neutralised(name):
    """The shop's importer reads the values as written: a leading - or = is data, not a formula."""
    csv = dialect(name).to_bytes(pd.DataFrame({"name": ["-20% Lot de 2 torchons", "=cmd|' /C calc'!A0"]})).decode()
    assert csv.splitlines()[1:] == ["-20% Lot de 2 torchons", "=cmd|' /C calc'!A0"]


def test_sanitise_html_strips_scripts_and_handlers():
    out = sanitise_html(pd.Series(['<p>ok <a href="javascript:alert(1)">x</a><img src=x onerror=alert(1)></p>']))
    assert "javascript" not in out[0] and "onerror" not in out[0] and "<p>ok" in out[0]


def test_ean13_check_digit():
    assert list(valid_ean13(pd.Series(["3760000000017", "3760000000018", "", "12"]))) == [True, False, True, False]


def test_checks_work_per_distinct_value_and_keep_each_row_in_place():
    """Sanitising, the markup check and the EAN check run once per distinct value (catalog
    columns repeat): each row still gets its own value's result, at its own index label, repeated
    and missing values included; an EAN in other Unicode digits is checked as before."""
    bad = '<p onclick="x()">a</p>'
    rich = pd.Series([bad, "<p>b</p>", bad, None, ""], index=[10, 3, 7, 1, 4])
    out = sanitise_html(rich)
    assert list(out.index) == [10, 3, 7, 1, 4]
    assert out[10] == out[7] == "<p>a</p>" and out[3] == "<p>b</p>" and pd.isna(out[1]) and out[4] == ""
    plain = pd.Series(["Nom", "<b>x</b>", "Nom", None, "<b>x</b>"], index=[5, 2, 9, 0, 1])
    assert markup_in(plain).to_dict() == {5: False, 2: True, 9: False, 0: False, 1: True}
    assert markup_in(pd.Series(["1.5", "2", None])).tolist() == [False, False, False]
    eans = pd.Series(["3760000000017", "\u0663\u0667\u0666" + "\u0660" * 8 + "\u0661\u0667", "3760000000017", "x" * 13])
    assert valid_ean13(eans).tolist() == [True, True, True, False]


def test_registry_lists_the_shop_modules_and_names_the_unknown():
    assert {"generic", "prestashop"} <= set(names())
    with pytest.raises(ValueError, match=r"unknown shop dialect 'nope'; expected one of \[.*'generic'.*\]"):
        dialect("nope")
    with pytest.raises(ValueError, match="unknown shop dialect 'nope'"):
        exchange_dialect("nope")


def test_a_shop_without_exchange_files_says_so(monkeypatch):
    from passerelle.core import dialects

    names()  # the shop modules registered first, then the test's shop forgotten afterwards
    monkeypatch.setattr(dialects, "_REGISTRY", dict(dialects._REGISTRY))

    class Only(Dialect):
        name = "only_catalog_test"

    register("only_catalog_test", catalog=Only)
    assert isinstance(dialect("only_catalog_test"), Only)
    with pytest.raises(ValueError, match="'only_catalog_test' writes no exchange files"):
        exchange_dialect("only_catalog_test")
    with pytest.raises(ValueError, match="registered twice"):
        register("only_catalog_test", catalog=Dialect)


def test_a_shop_module_imported_again_under_another_name_keeps_the_first_registration():
    """Airflow's plugin loader imports every .py under plugins/ as a top-level module."""
    import importlib.util

    import passerelle.core.dialects.generic as generic

    before = type(dialect("generic"))
    spec = importlib.util.spec_from_file_location("generic", generic.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.GenericDialect is not generic.GenericDialect
    assert type(dialect("generic")) is before is generic.GenericDialect


def _pandas_csv(df: pd.DataFrame, sep: str) -> bytes:
    buf = io.StringIO()
    df.to_csv(buf, index=False, sep=sep, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    return buf.getvalue().encode("utf-8")


@pytest.mark.parametrize("sep", [",", ";"])
def test_csv_bytes_are_pandas_bytes(sep):
    """The shops' files are joined by csv_bytes, not pandas: the same bytes as pandas' to_csv for
    every kind of text (separators, quotes, CR, LF, CRLF, tabs, NUL, accents, empty and missing
    cells, quoted headers), a frame without rows, and the frames it leaves to pandas."""
    rng = random.Random(15)
    alphabet = ["a", "Z", "é", "€", " ", ",", ";", '"', "'", "\r", "\n", "\r\n", "\t", "\0", "<p>", "=", "-", "1"]

    def cell():
        roll = rng.random()
        if roll < 0.05:
            return rng.choice([None, float("nan"), pd.NA])
        if roll < 0.1:
            return ""
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))

    header = ["key", "name, full", 'say "hi"', "line\nbreak", "plain"]
    df = pd.DataFrame({h: [cell() for _ in range(400)] for h in header})
    plain = pd.DataFrame({"key": ["A1", "A2"], "price": ["1.50", "2"], "ean": ["", "3760000000017"]})
    assert all(_csv_column(df[h], sep) is not None for h in header)  # joined here, not by pandas
    assert csv_bytes(df, sep=sep) == _pandas_csv(df, sep)
    assert csv_bytes(plain, sep=sep) == _pandas_csv(plain, sep)
    assert csv_bytes(df.iloc[:0], sep=sep) == _pandas_csv(df.iloc[:0], sep) == _pandas_csv(df.iloc[:0], sep)
    # Left to pandas: numbers and dates, one column (an empty one-field row is written ""), a
    # repeated header.
    typed = plain.assign(stock=[3, 4], price=[1.5, 2.0], when=pd.to_datetime(["2026-12-01", None]))
    single = pd.DataFrame({"name": ["", "x"]})
    repeated = pd.DataFrame([["a", "b"]], columns=["k", "k"])
    for frame in (typed, single, repeated):
        assert csv_bytes(frame, sep=sep) == _pandas_csv(frame, sep)
    assert csv_bytes(single, sep=sep) == b'name\r\n""\r\nx\r\n'


def test_csv_bytes_refuse_text_the_encoding_cannot_hold():
    with pytest.raises(UnicodeEncodeError):
        csv_bytes(pd.DataFrame({"key": ["A1"], "name": ["Noël €"]}), encoding="latin-1")
