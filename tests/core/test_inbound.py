"""Inbound files from the shop: parsing, checks, rejects (pure, no database)."""

from __future__ import annotations

import codecs
import csv
import io

import numpy as np
import pandas as pd
import pytest

from passerelle import INCLUDE
from passerelle.core.inbound import (
    CUSTOMERS,
    LINE_COLUMNS,
    ORDER_COLUMNS,
    ORDERS,
    REJECT_COLUMNS,
    SHOPIFY_ORDERS,
    InboundError,
    read_inbound,
    rejects_csv,
)
from passerelle.core.inbound.fields import _parse_datetime
from passerelle.core.integrate.rules import reject_unknown_skus

SAMPLES = INCLUDE / "sample" / "inbound"


def sample(name: str):
    return read_inbound(name, (SAMPLES / name).read_bytes())


def by_order(frame: pd.DataFrame) -> dict[str, pd.Series]:
    return {row.shop_order_id: row for row in frame.itertuples(index=False)}


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC")


HEADER = (
    "shop_order_id,order_date,status,shop_customer_id,email,line_number,sku,label,quantity,"
    "unit_price_excl_vat,vat_rate,line_discount_excl_vat,shipping_excl_vat,shipping_vat_rate,"
    "payment_method,payment_paid,billing_first_name,billing_last_name,billing_city"
)


def generic_rows(n_orders: int, per_order: int) -> pd.DataFrame:
    """A generic orders table, ``per_order`` lines per order, as text cells."""
    oid = np.repeat(np.arange(1, n_orders + 1), per_order)
    return pd.DataFrame(
        {
            "shop_order_id": [f"WEB-{i:06d}" for i in oid],
            "order_date": "2026-11-20T08:00:00+01:00",
            "status": "paid",
            "shop_customer_id": (oid % 997).astype(str),
            "email": [f"client{i % 997}@exemple.fr" for i in oid],
            "line_number": np.tile(np.arange(1, per_order + 1), n_orders).astype(str),
            "sku": [f"ART-{(i * 7) % 1000 + 1:06d}" for i in range(len(oid))],
            "label": "Article",
            "quantity": ((np.arange(len(oid)) % 4) + 1).astype(str),
            "unit_price_excl_vat": [f"{(i % 9000) / 100 + 1:.2f}" for i in range(len(oid))],
            "vat_rate": "20",
            "line_discount_excl_vat": "0",
            "shipping_excl_vat": "4.08",
            "shipping_vat_rate": "20",
            "payment_method": "Carte bancaire",
            "payment_paid": "1",
            "billing_first_name": "Jean",
            "billing_last_name": "Dupont",
            "billing_city": "Paris",
        }
    )


def to_bytes(df: pd.DataFrame, *, sep: str = ",", encoding: str = "utf-8") -> bytes:
    return df.to_csv(index=False, sep=sep, lineterminator="\n").encode(encoding)


# ------------------------------------------------------------------------------------------
# Samples
# ------------------------------------------------------------------------------------------


def test_generic_orders_sample_utf8_comma():
    p = sample("orders_20261120_0900.csv")
    assert (p.kind, p.encoding, p.delimiter, p.decimal) == (ORDERS, "utf-8", ",", ".")
    assert list(p.orders.columns) == ORDER_COLUMNS and list(p.lines.columns) == LINE_COLUMNS
    assert p.rejects.empty
    assert p.counts["orders"] == 5 and p.counts["lines"] == 7 and p.counts["rows_read"] == 7
    o = by_order(p.orders)
    first = o["WEB-100231"]
    assert first.order_date == utc("2026-11-20T08:12:31+01:00")
    assert (first.status, first.email, first.shop_customer_id) == ("paid", "jerome.lefevre.1@exemple.fr", "5012")
    assert (first.shipping_excl_vat, first.shipping_incl_vat, first.total_incl_vat) == (4.08, 4.90, 58.76)
    assert first.note == "Livrer après 18h, merci"  # a quoted comma stays in its cell
    assert o["WEB-100233"].order_discount_excl_vat == 45.42 and o["WEB-100233"].discount_code == "PRO-VOLUME"
    lines = p.lines[p.lines.shop_order_id == "WEB-100231"]
    assert lines.sku.tolist() == ["ART-000001", "ART-000002-M-BLEU"]
    assert lines.line.tolist() == [2, 3] and lines.line_number.tolist() == [1, 2]
    assert lines.quantity.tolist() == [2, 1] and lines.unit_price_excl_vat.tolist() == [7.96, 32.19]
    assert lines.discount_excl_vat.tolist() == [0.0, 3.22]
    pay = by_order(p.payments)
    assert set(pay) == {"WEB-100231", "WEB-100232", "WEB-100180", "WEB-100234"}  # the quote has none
    assert (pay["WEB-100231"].paid, pay["WEB-100231"].amount) == (True, 58.76)
    assert pay["WEB-100231"].transaction_id == "pi_3QHx7F2eZvKYlo2C1x0mTq9b"
    assert (pay["WEB-100232"].method, pay["WEB-100232"].paid) == ("Virement bancaire", False)
    delivery = p.addresses[(p.addresses.shop_order_id == "WEB-100232") & (p.addresses.kind == "delivery")]
    assert delivery[["company", "address1", "address2", "city"]].iloc[0].tolist() == [
        "Cabinet Garcia",
        "8 quai des Chartrons",
        "2e étage",
        "Bordeaux",
    ]
    cust = p.customers.set_index("email")
    assert cust.loc["ines.garcia@exemple.org", "first_name"] == "Inès"
    assert set(p.customers.source) == {"order"}


def test_generic_orders_sample_cp1252_semicolon_decimal_comma():
    p = sample("orders_20261120_1000.csv")
    assert (p.encoding, p.delimiter, p.decimal) == ("cp1252", ";", ",")
    assert p.rejects.empty and p.counts["orders"] == 3 and p.counts["lines"] == 6
    o = by_order(p.orders)
    assert o["WEB-100235"].order_date == utc("2026-11-20T09:12:00+01:00")  # 20/11/2026 09:12, Paris time
    assert o["WEB-100235"].total_incl_vat == 146.73 and o["WEB-100236"].total_incl_vat == 73.46
    lines = p.lines.set_index("sku")
    assert lines.loc["ART-000024", "unit_price_excl_vat"] == 36.22 and lines.loc["ART-000024", "vat_rate"] == 5.5
    assert lines.loc["ART-000019", "discount_excl_vat"] == 2.91
    assert lines.loc["ART-000024", "label"] == "Miel d'Éthiopie 1 kg"
    addr = p.addresses.set_index("shop_order_id")
    assert addr.loc["WEB-100235", "city"] == "Besançon" and addr.loc["WEB-100235", "first_name"] == "Hélène"
    assert addr.loc["WEB-100237", "company"] == "Pâtisserie Bernard & Fils"


def test_customers_sample():
    p = sample("customers_20261120.csv")
    assert p.kind == CUSTOMERS and p.rejects.empty
    assert p.orders.empty and p.lines.empty and p.payments.empty
    c = p.customers.set_index("shop_customer_id")
    assert c.index.tolist() == ["5012", "5013", "5014", "5040"]
    assert c.loc["5040", "email"] == "zoe.lambert@exemple.com"  # matched in lower case
    assert c.loc["5014", ["company", "customer_family"]].tolist() == ["SARL Bonnet", "PRO"]
    assert c.loc["5012", "updated_at"] == utc("2026-11-19T22:10:00+01:00")
    a = p.addresses
    assert a[a.shop_customer_id == "5040"].address2.tolist() == ["Bât. B, appt 12"]
    assert sorted(a[a.shop_customer_id == "5013"].kind) == ["billing", "delivery"]
    assert a.shop_order_id.isna().all()


def test_an_identifier_too_long_to_index_rejects_its_row_in_every_format():
    """Customer ids, e-mails and order ids end up in the back office's unique indexes: one too long
    for an index entry is its row's error (file, line, field, reason), whatever the format, and the
    other rows are kept."""
    long = "9" * 400
    text = (SAMPLES / "customers_20261120.csv").read_text(encoding="utf-8").replace("\n5013,", f"\n{long},", 1)
    p = read_inbound("customers.csv", text.encode())
    [reject] = p.rejects.itertuples(index=False)
    assert (reject.line, reject.field) == (3, "shop_customer_id")
    assert reject.reason == "too long: 400 characters, an identifier has at most 255 (the back office indexes it)"
    assert sorted(p.customers.shop_customer_id) == ["5012", "5014", "5040"]

    text = (SAMPLES / "shopify_orders_export.csv").read_text(encoding="utf-8").replace("#1002,", f"#{long},")
    p = read_inbound("shopify.csv", text.encode())
    assert set(p.rejects.field) == {"Name"} and len(p.rejects)  # the column as the shop names it
    assert p.rejects.reason.str.startswith("too long: 401 characters").all()
    assert sorted(p.orders.shop_order_id) == ["#1001", "#1003"]


def test_shopify_export_sample():
    p = sample("shopify_orders_export.csv")
    assert p.kind == SHOPIFY_ORDERS and p.rejects.empty
    o = by_order(p.orders)
    assert list(o) == ["#1001", "#1002", "#1003"]
    first = o["#1001"]
    assert first.order_date == utc("2026-11-20T10:15:00+01:00")
    assert (first.status, first.discount_code, first.email) == ("paid", "BIENVENUE10", "camille.leroy.6@exemple.fr")
    assert (first.shipping_incl_vat, first.shipping_excl_vat, first.shipping_vat_rate) == (4.90, 4.08, 20.0)
    assert (first.taxes_total, first.total_incl_vat, first.total_excl_vat) == (9.48, 56.86, 47.38)
    assert first.order_discount_incl_vat == 0.0  # the code's 5.77 is all on the lines
    assert (o["#1002"].status, o["#1002"].shipping_vat_rate) == ("pending", 5.5)
    third = o["#1003"]
    assert (third.status, third.shop_status, third.refunded_amount) == ("paid", "partially_refunded", 11.70)
    assert third.note == "Laisser le colis au gardien.\nMerci !"

    lines = p.lines
    assert lines.groupby("shop_order_id").size().to_dict() == {"#1001": 2, "#1002": 1, "#1003": 3}
    # The note of #1003 spans two physical lines: the next rows start on lines 7 and 8.
    assert lines[lines.shop_order_id == "#1003"].line.tolist() == [5, 7, 8]
    l1 = lines[lines.shop_order_id == "#1001"].set_index("sku")
    assert l1.loc["ART-000002-M-BLEU", ["unit_price_incl_vat", "discount_incl_vat", "discount_excl_vat"]].tolist() == [
        38.63,
        3.86,
        3.22,
    ]
    assert l1.loc["ART-000001", "quantity"] == 2
    assert l1.loc["ART-000001", "unit_price_excl_vat"] == pytest.approx(7.9583)
    assert lines[lines.shop_order_id == "#1002"].vat_rate.tolist() == [5.5]
    # Lines + shipping - discounts give back Shopify's Total for every order.
    net = (lines.quantity * lines.unit_price_incl_vat - lines.discount_incl_vat).groupby(lines.shop_order_id).sum()
    orders = p.orders.set_index("shop_order_id")
    rebuilt = net + orders.shipping_incl_vat - orders.order_discount_incl_vat
    assert np.allclose(rebuilt, orders.total_incl_vat, atol=0.01)

    pay = by_order(p.payments)
    assert (pay["#1001"].method, pay["#1001"].amount, pay["#1001"].transaction_id, pay["#1001"].paid) == (
        "Shopify Payments",
        56.86,
        "c29384756.1",
        True,
    )
    assert pay["#1001"].paid_at == utc("2026-11-20T10:15:04+01:00")
    assert (pay["#1002"].method, pay["#1002"].paid) == ("Virement bancaire", False)
    addr = p.addresses[p.addresses.shop_order_id == "#1003"].set_index("kind")
    assert addr.loc["delivery", ["address1", "postcode"]].tolist() == ["Relais Colis - Tabac de la Gare", "33800"]
    assert addr.loc["billing", ["first_name", "last_name", "postcode"]].tolist() == ["Louise", "Bernard", "33000"]
    assert p.customers.email.tolist() == [
        "camille.leroy.6@exemple.fr",
        "theo.dubois.12@exemple.fr",
        "louise.bernard.10@exemple.fr",
    ]


# ------------------------------------------------------------------------------------------
# Dialects and encodings
# ------------------------------------------------------------------------------------------


def test_dialect_line_declares_encoding_delimiter_and_decimal():
    body = (
        HEADER.replace(",", ";") + "\n"
        "W1;2026-11-20 10:00;paid;9;a@b.fr;1;ART-000001;Poêle;2;1 234,50;5,5;0;4,08;20;CB;1;Zoé;Hervé;Sète\n"
        "W2;2026-11-20 10:05;paid;9;a@b.fr;1;ART-000001;Poêle;2;12.50;5,5;0;0;20;CB;1;Zoé;Hervé;Sète\n"
    )
    data = b"#passerelle encoding=cp1252 delimiter=; decimal=,\n" + body.encode("cp1252")
    p = read_inbound("orders_x.csv", data)
    assert (p.encoding, p.delimiter, p.decimal) == ("cp1252", ";", ",")
    assert p.lines.unit_price_excl_vat.tolist() == [1234.5]
    assert p.orders.order_date.tolist() == [utc("2026-11-20T10:00:00+01:00")]
    assert p.addresses.city.tolist() == ["Sète"]
    # W2 wrote 12.50 in a decimal-comma file: rejected, on line 4 (the #passerelle line is line 1).
    assert p.rejects[["line", "field", "value"]].values.tolist() == [[4, "unit_price_excl_vat", "12.50"]]
    assert "12,50" in p.rejects.reason.iloc[0]


def test_declared_options_and_their_errors():
    body = (HEADER + "\nW1,20/11/2026,paid,9,a@b.fr,1,ART-000001,x,1,10,20,0,0,20,CB,1,A,B,C\n").encode()
    p = read_inbound("orders_y.csv", body, declared={"timezone": "America/New_York", "delimiter": ","})
    assert p.orders.order_date.tolist() == [utc("2026-11-20T00:00:00-05:00")]
    with pytest.raises(InboundError, match="orders_y.csv: declared encoding 'klingon'"):
        read_inbound("orders_y.csv", body, declared={"encoding": "klingon"})
    with pytest.raises(InboundError, match="line 1: cannot read 'sep=;'"):
        read_inbound("orders_y.csv", b"#passerelle sep=;\n" + body)


def test_undecodable_byte_rejects_only_that_rows_order():
    df = generic_rows(4, 2)
    df["label"] = "Poêle à crêpes"  # real UTF-8 text: the file is UTF-8 with one broken row
    data = to_bytes(df)
    lines = data.split(b"\n")
    lines[5] = lines[5].replace("Poêle".encode(), b"Po\xeale")  # row of WEB-000003 (line 6), cp1252 bytes
    p = read_inbound("orders_enc.csv", b"\n".join(lines))
    assert p.encoding == "utf-8"
    assert set(p.orders.shop_order_id) == {"WEB-000001", "WEB-000002", "WEB-000004"}
    assert len(p.lines) == 6 and (p.lines.label == "Poêle à crêpes").all()
    r = p.rejects
    assert r[["line", "field"]].values.tolist() == [[6, "label"], [7, "shop_order_id"]]
    assert r.reason.iloc[0].startswith("undecodable bytes")
    assert r.value.iloc[0] == "Po\\xeale à crêpes"  # the bad byte shown, the rest kept
    assert r.reason.iloc[1] == "order WEB-000003 has a rejected line 6"
    assert "\\xea" in r.raw.iloc[0]
    out = rejects_csv(r).decode("utf-8-sig")  # writable although the input was not
    assert "Po\\xeale" in out


def test_cp1252_detected_without_declaration():
    df = generic_rows(2, 1)
    df["billing_city"] = "Besançon"
    p = read_inbound("orders_w.csv", to_bytes(df, sep=";", encoding="cp1252"))
    assert (p.encoding, p.delimiter) == ("cp1252", ";")
    assert p.addresses.city.tolist() == ["Besançon", "Besançon"]


def test_bom_and_crlf():
    df = generic_rows(2, 2)
    data = codecs.BOM_UTF8 + df.to_csv(index=False, lineterminator="\r\n").encode()
    p = read_inbound("orders_bom.csv", data)
    assert p.rejects.empty and len(p.lines) == 4 and p.lines.line.tolist() == [2, 3, 4, 5]
    assert p.orders.shop_order_id.tolist() == ["WEB-000001", "WEB-000002"]  # no BOM in the first column


# ------------------------------------------------------------------------------------------
# Row checks and rejects
# ------------------------------------------------------------------------------------------


def test_three_bad_rows_among_100_reject_exactly_their_orders():
    df = generic_rows(25, 4)  # 100 lines; row i is on line i + 2
    df.loc[9, "unit_price_excl_vat"] = "12.5O"  # order 3, line 11
    df.loc[38, "order_date"] = "2026-13-45"  # order 10, line 40
    df.loc[65, "sku"] = ""  # order 17, line 67
    p = read_inbound("orders_bad.csv", to_bytes(df))
    assert p.counts["rows_read"] == 100
    assert set(p.rejects.shop_order_id) == {"WEB-000003", "WEB-000010", "WEB-000017"}
    assert len(p.orders) == 22 and len(p.lines) == 88 and len(p.payments) == 22
    assert not set(p.lines.shop_order_id) & {"WEB-000003", "WEB-000010", "WEB-000017"}
    own = p.rejects[~p.rejects.reason.str.contains("has a rejected line|differs from line")]
    assert own[["file", "line", "field", "value"]].values.tolist() == [
        ["orders_bad.csv", 11, "unit_price_excl_vat", "12.5O"],
        ["orders_bad.csv", 40, "order_date", "2026-13-45"],
        ["orders_bad.csv", 67, "sku", ""],
    ]
    assert own.reason.str.startswith(("not a number", "not a date", "required value is empty")).all()
    # The bad order date also differs from the other lines of its order: said too.
    differs = p.rejects[p.rejects.reason.str.contains("differs from line")]
    assert differs[["line", "reason"]].values.tolist() == [
        [40, "differs from line 38 of the same order (2026-11-20T08:00:00+01:00)"]
    ]
    others = p.rejects[p.rejects.reason.str.contains("has a rejected line")]
    assert len(others) == 9
    assert others[others.shop_order_id == "WEB-000010"].reason.unique().tolist() == [
        "order WEB-000010 has a rejected line 40"
    ]
    assert list(p.rejects.columns) == REJECT_COLUMNS
    assert p.rejects.line.iloc[0] == 10 and p.rejects.raw.iloc[0] == ",".join(df.iloc[8])  # raw text of line 10


def test_bad_values_are_named_with_what_was_expected():
    df = generic_rows(8, 1)
    df.loc[0, "quantity"] = "1.5"
    df.loc[1, "status"] = "shipped"
    df.loc[2, "vat_rate"] = "0.2"
    df.loc[3, "email"] = "not-an-email"
    df.loc[4, ["email", "shop_customer_id"]] = ""
    df.loc[5, "payment_paid"] = "maybe"
    df.loc[6, "quantity"] = "-2"
    p = read_inbound("orders_v.csv", to_bytes(df))
    got = dict(zip(p.rejects.line, zip(p.rejects.field, p.rejects.reason)))
    assert got[2] == ("quantity", "quantity must be a whole number greater than 0")
    assert got[3][0] == "status" and "expected one of pending" in got[3][1]
    assert got[4] == ("vat_rate", "VAT rate out of range: write a percentage (20, not 0.2)")
    assert got[5] == ("email", "not an email address")
    # An order without customer key is the integration's to decide (walk-in customer or quarantine):
    # tests/core/test_integrate_shopify.py::test_orders_without_customer_take_the_walk_in_customer_or_wait
    assert 6 not in got
    assert got[7] == ("payment_paid", "expected 1 or 0 (paid or not)")
    assert got[8][0] == "quantity"
    assert p.orders.shop_order_id.tolist() == ["WEB-000005", "WEB-000008"]  # 5: no customer key, see above


def test_order_level_values_must_agree_and_line_numbers_be_unique():
    df = generic_rows(3, 2)
    df.loc[1, "status"] = "cancelled"  # second line of WEB-000001 says otherwise
    df.loc[3, "line_number"] = "1"  # WEB-000002 has line 1 twice
    p = read_inbound("orders_c.csv", to_bytes(df))
    assert p.orders.shop_order_id.tolist() == ["WEB-000003"]
    r = p.rejects.set_index("line")
    assert r.loc[3, "field"] == "status" and r.loc[3, "reason"] == "differs from line 2 of the same order (paid)"
    assert r.loc[5, "field"] == "line_number" and "twice" in r.loc[5, "reason"]


def test_rows_with_wrong_field_counts():
    text = (
        HEADER + "\n"
        "W1,2026-11-20,paid,9,a@b.fr,1,ART-000001,x,1,10,20,0,0,20,CB,1,A,B,C\n"
        "W2,2026-11-20,paid,9,a@b.fr,1,ART-000001,x,1,10,20,0,0,20,CB,1,A,B,C,extra,more\n"
        "W3,2026-11-20,paid,9,a@b.fr,1,ART-000001,x,1\n"
        "\n"
        'W4,2026-11-20,paid,9,a@b.fr,1,ART-000001,"x, ""quoted""",1,10,20,0,0,20,CB,1,A,B,C,\n'
    )
    p = read_inbound("orders_f.csv", text.encode())
    assert p.orders.shop_order_id.tolist() == ["W1", "W4"]  # W4's trailing empty field is tolerated
    assert p.lines.set_index("shop_order_id").loc["W4", "label"] == 'x, "quoted"'
    r = p.rejects.drop_duplicates("line").set_index("line")
    assert r.loc[3, "reason"] == "expected 19 fields as in the header, found 21"
    assert r.loc[4, "reason"] == "expected 19 fields as in the header, found 9"
    assert p.lines.line.tolist() == [2, 6]  # the blank line 5 is skipped, not renumbered


def test_stray_quote_keeps_line_numbers():
    """A quote inside an unquoted cell (5" screen) unbalances the quote count: the csv module
    then finds where rows start, and lines still match the file."""
    text = (
        "shop_order_id,order_date,status,email,sku,label,quantity,unit_price_excl_vat,vat_rate\n"
        'W1,2026-11-20,paid,a@b.fr,ART-1,Ecran 5" large,1,10,20\n'
        'W2,2026-11-20,paid,a@b.fr,ART-2,"sur\ndeux lignes",1,10,20\n'
        "W3,2026-11-20,paid,a@b.fr,ART-3,ok,x,10,20\n"
    )
    p = read_inbound("orders_q.csv", text.encode())
    assert p.lines[["line", "label"]].values.tolist() == [[2, 'Ecran 5" large'], [3, "sur\ndeux lignes"]]
    assert p.rejects[["line", "field", "value"]].values.tolist() == [[5, "quantity", "x"]]
    assert p.rejects.raw.tolist() == ["W3,2026-11-20,paid,a@b.fr,ART-3,ok,x,10,20"]


def test_lines_of_an_order_need_not_be_next_to_each_other():
    df = generic_rows(3, 2).iloc[[0, 2, 4, 1, 3, 5]].reset_index(drop=True)  # first lines, then second lines
    df.loc[5, "shipping_excl_vat"] = "9.99"  # WEB-000003's second line (line 7) disagrees with its first (line 4)
    p = read_inbound("orders_mixed.csv", to_bytes(df))
    assert p.orders[["shop_order_id", "line"]].values.tolist() == [["WEB-000001", 2], ["WEB-000002", 3]]
    assert p.lines[["shop_order_id", "line", "line_number"]].values.tolist() == [
        ["WEB-000001", 2, 1],
        ["WEB-000002", 3, 1],
        ["WEB-000001", 5, 2],
        ["WEB-000002", 6, 2],
    ]
    assert p.rejects[["line", "field", "reason"]].values.tolist() == [
        [4, "shop_order_id", "order WEB-000003 has a rejected line 7"],
        [7, "shipping_excl_vat", "differs from line 4 of the same order (4.08)"],
    ]
    lines = p.lines[p.lines.shop_order_id == "WEB-000001"]
    expected = round((lines.quantity * lines.unit_price_excl_vat).sum() + 4.08, 2)
    assert p.orders.set_index("shop_order_id").loc["WEB-000001", "total_excl_vat"] == pytest.approx(expected)


def test_cells_are_stripped():
    df = generic_rows(2, 1)
    df.loc[0, ["shop_order_id", "quantity", "vat_rate"]] = ["  WEB-000001\t", " 3 ", "20 "]
    df.loc[1, ["email", "billing_city"]] = ["\u00a0Client2@exemple.fr ", " Paris "]
    p = read_inbound("orders_pad.csv", to_bytes(df))
    assert p.rejects.empty
    assert p.lines[["shop_order_id", "quantity", "vat_rate"]].values.tolist()[0] == ["WEB-000001", 3, 20.0]
    assert p.orders.email.tolist()[1] == "client2@exemple.fr"
    assert p.addresses.city.tolist() == ["Paris", "Paris"]


def test_whole_file_errors_name_the_file():
    with pytest.raises(InboundError, match=r"mystery.csv: header not recognised \(foo, bar\)"):
        read_inbound("mystery.csv", b"foo,bar\n1,2\n")
    with pytest.raises(InboundError, match=r"orders_m.csv: generic orders file lacks the columns \['vat_rate'\]"):
        read_inbound("orders_m.csv", b"shop_order_id,order_date,status,email,sku,quantity,unit_price_excl_vat\n")
    with pytest.raises(InboundError, match="empty.csv: line 1: no header"):
        read_inbound("empty.csv", b"")


def test_dates_accepted():
    s = pd.Series(
        [
            "2026-11-20T09:15:00+01:00",
            "2026-11-20T08:15:00Z",
            "2026-11-20 10:15:00 +0100",
            "2026-11-20 09:15",
            "20/11/2026 09:15",
            "20/11/2026",
            "2026-11-20",
            "",
            "2026-11-31",
            "11/20/2026 09:15",
            "tomorrow",
        ],
        dtype="str",
    )
    values, bad = _parse_datetime(s, "Europe/Paris")
    nine = utc("2026-11-20T09:15:00+01:00")
    assert values.iloc[:5].tolist() == [nine, nine, utc("2026-11-20T10:15:00+01:00"), nine, nine]
    assert values.iloc[5] == values.iloc[6] == utc("2026-11-20T00:00:00+01:00")
    assert bad.tolist() == [False] * 8 + [True, True, True]


def test_rejects_csv_neutralises_formulas():
    df = generic_rows(4, 1)
    df.loc[0, "sku"] = '=HYPERLINK("http://evil.example","x")'
    df.loc[1, "sku"] = "@SUM(A1:A9)"
    df.loc[2, "sku"] = "+33"
    p = reject_unknown_skus(read_inbound("orders_f.csv", to_bytes(df)), ["ART-000008"])
    data = rejects_csv(p.rejects)
    assert data.startswith(codecs.BOM_UTF8)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == ["file", "line", "field", "value", "reason", "raw"]
    values = [r[3] for r in rows[1:]]
    assert values[:3] == ['\'=HYPERLINK("http://evil.example","x")', "'@SUM(A1:A9)", "'+33"]
    assert rows[1][1] == "2" and rows[1][5].startswith("WEB-000001,")
    assert all(not r[3].startswith(("=", "+", "-", "@")) for r in rows[1:])
    assert data.count(b"\r\n") == len(rows)


# ------------------------------------------------------------------------------------------
# Shopify specifics
# ------------------------------------------------------------------------------------------


def shopify_file(rows: list[dict]) -> bytes:
    header = (SAMPLES / "shopify_orders_export.csv").read_text(encoding="utf-8").split("\n", 1)[0].split(",")
    buf = io.StringIO()
    w = csv.DictWriter(buf, header, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def test_shopify_taxes_excluded_cancelled_and_bad_rows():
    order = {
        "Email": "a@b.com",
        "Financial Status": "paid",
        "Currency": "USD",
        "Subtotal": "20.00",
        "Shipping": "5.00",
        "Taxes": "2.50",
        "Total": "27.50",
        "Created at": "2026-11-20 10:15:00 -0500",
        "Tax 1 Name": "State Tax 10%",
        "Tax 1 Value": "2.50",
        "Payment Method": "Shopify Payments",
    }
    line = {
        "Lineitem quantity": "2",
        "Lineitem price": "10.00",
        "Lineitem sku": "ART-000001",
        "Lineitem taxable": "true",
        "Lineitem discount": "0.00",
    }
    data = shopify_file(
        [
            {"Name": "#2001", **order, **line},
            {"Name": "#2002", **order, "Financial Status": "voided", **line},
            {"Name": "#2003", **order, "Cancelled at": "2026-11-21 09:00:00 -0500", **line},
            {"Name": "#2004", **order, **line, "Lineitem price": "ten"},
            {"Name": "#2005", **order, "Financial Status": "", "Subtotal": "40.00", "Total": "47.50", **line},
            {"Name": "#2005", "Email": "a@b.com", **line},
        ]
    )
    p = read_inbound("export.csv", data)
    o = by_order(p.orders)
    assert list(o) == ["#2001", "#2002", "#2003"]
    assert [o[k].status for k in o] == ["paid", "cancelled", "cancelled"]
    assert o["#2001"].order_date == utc("2026-11-20T15:15:00Z")
    # Taxes excluded (Total = Subtotal + Shipping + Taxes): prices are excl. VAT as written.
    l1 = p.lines[p.lines.shop_order_id == "#2001"].iloc[0]
    assert (l1.unit_price_excl_vat, l1.unit_price_incl_vat, l1.vat_rate) == (10.0, 11.0, 10.0)
    assert (o["#2001"].shipping_excl_vat, o["#2001"].total_excl_vat, o["#2001"].currency) == (5.0, 25.0, "USD")
    r = p.rejects
    assert r[["line", "field", "value"]].values.tolist() == [
        [5, "Lineitem price", "ten"],
        [6, "Financial Status", ""],
        [7, "Name", "#2005"],
    ]
    assert r.reason.iloc[2] == "order #2005 has a rejected line 6"


def test_shopify_several_vat_rates_leave_excl_vat_to_the_back_office():
    data = shopify_file(
        [
            {
                "Name": "#3001",
                "Email": "a@b.fr",
                "Financial Status": "paid",
                "Currency": "EUR",
                "Subtotal": "30.00",
                "Shipping": "0.00",
                "Taxes": "3.85",
                "Total": "30.00",
                "Created at": "2026-11-20 10:15:00 +0100",
                "Tax 1 Name": "TVA 20%",
                "Tax 1 Value": "3.33",
                "Tax 2 Name": "TVA 5.5%",
                "Tax 2 Value": "0.52",
                "Lineitem quantity": "1",
                "Lineitem price": "20.00",
                "Lineitem sku": "ART-000001",
                "Lineitem taxable": "true",
            },
            {
                "Name": "#3001",
                "Email": "a@b.fr",
                "Lineitem quantity": "1",
                "Lineitem price": "10.00",
                "Lineitem sku": "ART-000006",
                "Lineitem taxable": "true",
            },
        ]
    )
    p = read_inbound("export2.csv", data)
    assert p.rejects.empty
    assert p.lines.vat_rate.isna().all() and p.lines.unit_price_excl_vat.isna().all()
    assert p.lines.unit_price_incl_vat.tolist() == [20.0, 10.0]
    assert p.orders.total_incl_vat.tolist() == [30.0] and p.orders.taxes_total.tolist() == [3.85]


def test_shopify_vat_rate_is_worked_out_per_order():
    order = {
        "Email": "a@b.fr",
        "Financial Status": "paid",
        "Currency": "EUR",
        "Subtotal": "20.00",
        "Shipping": "0.00",
        "Created at": "2026-11-20 10:15:00 +0100",
    }
    line = {"Lineitem quantity": "1", "Lineitem price": "10.00", "Lineitem taxable": "true"}
    data = shopify_file(
        [
            {
                "Name": "#5001",
                **order,
                "Taxes": "3.33",
                "Total": "20.00",
                "Tax 1 Name": "TVA 20%",
                "Tax 1 Value": "3.33",
                **line,
                "Lineitem sku": "ART-000001",
            },
            {"Name": "#5001", **line, "Lineitem sku": "ART-000002"},
            {
                "Name": "#5002",
                **order,
                "Subtotal": "10.00",
                "Taxes": "2.19",
                "Total": "10.00",
                "Tax 1 Name": "TVA 20%",
                "Tax 1 Value": "1.67",
                "Tax 2 Name": "TVA 5,5 %",
                "Tax 2 Value": "0.52",
                **line,
                "Lineitem sku": "ART-000001",
            },
            {
                "Name": "#5003",
                **order,
                "Subtotal": "10.00",
                "Taxes": "0.00",
                "Total": "10.00",
                **line,
                "Lineitem sku": "ART-000003",
            },
            {
                "Name": "#5004",
                **order,
                "Subtotal": "10.00",
                "Taxes": "1.82",
                "Total": "10.00",
                "Tax 1 Name": "TVA 10%",
                "Tax 1 Value": "0.91",
                "Tax 2 Name": "TVA 10 %",
                "Tax 2 Value": "0.91",
                **line,
                "Lineitem sku": "ART-000004",
            },
        ]
    )
    p = read_inbound("export3.csv", data)
    assert p.rejects.empty
    rates = p.lines.groupby("shop_order_id", sort=False).vat_rate.first()
    assert rates.fillna(-1).to_dict() == {"#5001": 20.0, "#5002": -1, "#5003": 0.0, "#5004": 10.0}
    assert p.lines[p.lines.shop_order_id == "#5001"].vat_rate.tolist() == [20.0, 20.0]


# ------------------------------------------------------------------------------------------
# Size: 10,000 orders, 50,000 lines (timing lives in the benchmarks)
# ------------------------------------------------------------------------------------------


def test_ten_thousand_orders_fifty_thousand_lines():
    df = generic_rows(10_000, 5)
    df.loc[12_345, "quantity"] = "deux"  # order 2470
    df.loc[49_999, "unit_price_excl_vat"] = "1,2,3"  # order 10000
    p = read_inbound("orders_big.csv", to_bytes(df))
    assert p.counts["rows_read"] == 50_000
    assert len(p.orders) == 9_998 and len(p.lines) == 49_990 and len(p.payments) == 9_998
    assert set(p.rejects.shop_order_id) == {"WEB-002470", "WEB-010000"} and len(p.rejects) == 10
    kept = df[~df.shop_order_id.isin(["WEB-002470", "WEB-010000"])]
    assert p.lines.quantity.sum() == kept.quantity.astype(int).sum()
    assert p.lines.unit_price_excl_vat.sum() == pytest.approx(kept.unit_price_excl_vat.astype(float).sum())
    assert p.lines.line.tolist() == (kept.index + 2).tolist()
    assert len(p.customers) == 997
    o = p.orders.set_index("shop_order_id").loc["WEB-000001"]
    lines = kept[kept.shop_order_id == "WEB-000001"]
    expected = round((lines.quantity.astype(int) * lines.unit_price_excl_vat.astype(float)).sum() * 1.2 + 4.08 * 1.2, 2)
    assert o.total_incl_vat == pytest.approx(expected)


def test_every_row_without_an_order_id_is_rejected():
    # Two rows with an empty order id belong to no order: both are rejected on their own,
    # none becomes an order with an empty id, and the other orders are kept.
    df = generic_rows(3, 2)
    df.loc[[2, 3], "shop_order_id"] = ""
    p = read_inbound("orders_noid.csv", to_bytes(df))
    assert sorted(p.orders["shop_order_id"]) == ["WEB-000001", "WEB-000003"]
    assert "" not in set(p.lines["shop_order_id"])
    missing = p.rejects[p.rejects["reason"] == "required value is empty"]
    assert sorted(missing.loc[missing["field"] == "shop_order_id", "line"]) == [4, 5]
    assert p.counts["rejected_rows"] == 2
