"""The integration's write path against a real back office: the file's SKUs looked up once
(variant first, then article), the lines staged with their ids and numbers, the staging tables
kept for the session and emptied by each commit, the key lists sent as one JSON parameter."""

from __future__ import annotations

import json

import pandas as pd
import psycopg
import pytest

from passerelle.core.integrate import integrate_file
from passerelle.core.integrate.rules import sku_references
from passerelle.core.integrate.writes import staged_lines
from passerelle.db import json_texts

HEADER = (
    "shop_order_id,order_date,status,shop_customer_id,email,currency,line_number,sku,label,quantity,"
    "unit_price_excl_vat,vat_rate,line_discount_excl_vat,payment_method,payment_amount,payment_paid,"
    "billing_first_name,billing_last_name,billing_address1,billing_postcode,billing_city,billing_country"
)


def _row(order: str, line_number: int, sku: str, label: str, qty: int = 1, price: str = "10.00") -> str:
    return (
        f"{order},2026-11-20T08:00:00+01:00,paid,77,w@exemple.fr,EUR,{line_number},{sku},{label},{qty},{price},20,0,"
        "card,{paid},1,Ana,Test,1 rue Haute,75001,Paris,FR"
    )


def _file(rows: list[str], paid: float) -> bytes:
    return ("\n".join([HEADER, *(r.replace("{paid}", f"{paid:.2f}") for r in rows)]) + "\n").encode()


def _article_without_variants(conn: psycopg.Connection) -> tuple[str, int, str, float]:
    ref, art, name, vat = conn.execute(
        "SELECT a.reference, a.id, a.name, a.vat_rate FROM erp.article a WHERE NOT EXISTS "
        "(SELECT 1 FROM erp.variant v WHERE v.article_id = a.id) AND a.vat_rate = 20 ORDER BY a.id LIMIT 1"
    ).fetchone()
    conn.commit()
    return ref, art, name, float(vat)


def _variant(conn: psycopg.Connection) -> tuple[str, int, int]:
    row = conn.execute(
        "SELECT v.reference, v.article_id, v.id FROM erp.variant v JOIN erp.article a ON a.id = v.article_id "
        "WHERE a.vat_rate = 20 ORDER BY v.id LIMIT 1"
    ).fetchone()
    conn.commit()
    return row


def test_sku_references_give_the_variant_first_then_the_article_and_leave_unknown_skus_out(erp):
    art_ref, art_id, art_name, vat = _article_without_variants(erp)
    var_ref, var_article, var_id = _variant(erp)
    # An article whose reference is also a variant's: the variant is what the line means.
    clash = erp.execute(
        "INSERT INTO erp.article (reference, name, vat_rate, price_excl_vat) VALUES (%s, 'Homonyme', 5.5, 1) "
        "RETURNING id",
        (var_ref,),
    ).fetchone()[0]
    refs = sku_references(erp, pd.array([art_ref, var_ref, "NO-SUCH-SKU", None, f" {art_ref} "], dtype="str"))
    erp.rollback()
    got = refs.set_index("reference")
    assert sorted(got.index) == sorted([art_ref, var_ref])
    assert (got.loc[art_ref, "article_id"], pd.isna(got.loc[art_ref, "variant_id"])) == (art_id, True)
    assert (got.loc[art_ref, "name"], got.loc[art_ref, "vat_rate"]) == (art_name, vat)
    assert (got.loc[var_ref, "article_id"], got.loc[var_ref, "variant_id"]) == (var_article, var_id)
    assert got.loc[var_ref, "article_id"] != clash
    assert sku_references(erp, []).empty


def test_staged_lines_are_numbered_per_order_in_file_order_with_the_articles_label_when_empty():
    lines = pd.DataFrame(
        {
            "line": [2, 3, 4, 5, 6],
            "shop_order_id": pd.array(["B", "A", "A", "A", "B"], dtype="str"),
            "line_number": [1, 7, 3, 3, 2],
            "sku": pd.array(["X", "X", "Y", "GONE", "Y"], dtype="str"),
            "label": pd.array([None, "mine", None, "lost", "kept"], dtype="str"),
            "vat_rate": [float("nan"), 20.0, 5.5, 20.0, 20.0],
        }
    )
    refs = pd.DataFrame(
        {
            "reference": ["X", "Y"],
            "article_id": [10, 11],
            "variant_id": pd.array([pd.NA, 7], dtype="Int64"),
            "vat_rate": [20.0, 10.0],
            "name": ["Article X", "Article Y"],
        }
    )
    out = staged_lines(lines, refs).set_index("line")
    assert 5 not in out.index  # a SKU the back office does not know is not written
    assert out["line_number"].to_dict() == {4: 1, 3: 2, 2: 1, 6: 2}
    assert out["label"].to_dict() == {4: "Article Y", 3: "mine", 2: "Article X", 6: "kept"}
    assert out["vat_rate"].to_dict() == {4: 5.5, 3: 20.0, 2: 20.0, 6: 20.0}
    assert out["article_id"].to_dict() == {4: 11, 3: 10, 2: 10, 6: 11}
    assert [None if pd.isna(v) else int(v) for v in out.loc[[2, 4], "variant_id"]] == [None, 7]


def test_lines_are_written_with_their_variant_or_article_and_numbered_in_the_files_order(erp):
    art_ref, art_id, art_name, _ = _article_without_variants(erp)
    var_ref, var_article, var_id = _variant(erp)
    # Lines given out of order, one without a label: numbered 1..n by line_number, labelled.
    data = _file(
        [_row("WR-1", 5, var_ref, "Variante", 2), _row("WR-1", 2, art_ref, "", 1)],
        paid=(2 * 10 + 10) * 1.2,
    )
    result = integrate_file(erp, "orders_writes.csv", data)
    assert result.status == "integrated" and result.counts["lines_created"] == 2, result.counts
    rows = erp.execute(
        "SELECT l.line_number, l.article_id, l.variant_id, l.label, l.quantity, l.vat_rate "
        "FROM erp.sales_order_line l JOIN erp.sales_order o ON o.id = l.order_id "
        "WHERE o.shop_order_id = 'WR-1' ORDER BY l.line_number"
    ).fetchall()
    erp.commit()
    assert [(r[0], r[1], r[2], r[3], float(r[4]), float(r[5])) for r in rows] == [
        (1, art_id, None, art_name, 1.0, 20.0),
        (2, var_article, var_id, "Variante", 2.0, 20.0),
    ]


def test_staging_tables_outlive_a_refused_file_are_empty_after_commit_and_serve_the_next_file(erp, monkeypatch):
    import passerelle.core.integrate as integrate
    from passerelle.core.inbound import InboundError

    art_ref, *_ = _article_without_variants(erp)
    real_stage = integrate.stage

    def failing_stage(conn, *args):  # the session's first file: refused once staged (a value out of range)
        real_stage(conn, *args)
        conn.execute("INSERT INTO s_line (line, quantity) VALUES (1, 1e20::numeric(12,3))")

    monkeypatch.setattr(integrate, "stage", failing_stage)
    with pytest.raises(InboundError, match="orders_refused.csv"):
        integrate_file(erp, "orders_refused.csv", _file([_row("WR-9", 1, art_ref, "Non")], paid=12))
    monkeypatch.setattr(integrate, "stage", real_stage)
    # Its transaction, staging tables included, was rolled back: the next files make them again.
    first = integrate_file(erp, "orders_a.csv", _file([_row("WR-2", 1, art_ref, "Un")], paid=12))
    second = integrate_file(erp, "orders_b.csv", _file([_row("WR-3", 1, art_ref, "Deux", 3)], paid=36))
    assert (first.counts["orders_created"], second.counts["orders_created"]) == (1, 1)
    assert (first.counts["lines_created"], second.counts["lines_created"]) == (1, 1)
    # Made once for the session, and emptied by each commit: nothing of a file is left for the next.
    staged = erp.execute(
        "SELECT (SELECT count(*) FROM s_order) + (SELECT count(*) FROM s_line) + (SELECT count(*) FROM s_new) "
        "+ (SELECT count(*) FROM s_payment) + (SELECT count(*) FROM s_customer) + (SELECT count(*) FROM s_address)"
    ).fetchone()[0]
    erp.commit()
    assert staged == 0
    assert erp.execute("SELECT count(*) FROM erp.sales_order WHERE shop_order_id LIKE 'WR-%'").fetchone()[0] == 2
    ledger = erp.execute(
        "SELECT count(*) FROM passerelle.order_ledger WHERE shop_order_id IN ('WR-2', 'WR-3')"
    ).fetchone()[0]
    erp.commit()
    assert ledger == 2


def test_json_texts_gives_each_key_once_without_missing_values():
    keys = json.loads(json_texts(pd.array(["b", " a", None, "b", "é"], dtype="str"), strip=True))
    assert sorted(keys) == ["a", "b", "é"]
    assert json.loads(json_texts([1, float("nan"), None, "1"])) == ["1"]
    assert json_texts(iter([])) == "[]"
