"""The desk's actions in core (passerelle.core.quarantine) on a real back office, after the real
integration of a bad file: grouping and words, dismiss with a note, map a shop label, replay."""

from __future__ import annotations

import psycopg
import pytest

from desk.conftest import bad_orders_file, shop_label
from passerelle.config import load_settings
from passerelle.core import quarantine as q
from passerelle.core.integrate import integrate_file


def _status(conn: psycopg.Connection, order: str) -> list[tuple]:
    rows = conn.execute(
        "SELECT status, note, resolved_by FROM passerelle.quarantine WHERE shop_order_id = %s ORDER BY id", (order,)
    ).fetchall()
    conn.commit()
    return rows


def _web_order(conn: psycopg.Connection, order: str) -> list[tuple]:
    rows = conn.execute(
        "SELECT coalesce(v.reference, a.reference), l.quantity FROM erp.sales_order o "
        "JOIN erp.sales_order_line l ON l.order_id = o.id JOIN erp.article a ON a.id = l.article_id "
        "LEFT JOIN erp.variant v ON v.id = l.variant_id WHERE o.shop_order_id = %s",
        (order,),
    ).fetchall()
    conn.commit()
    return rows


#: The unknown shop label of the file of orders D-1..D-3.
SHOP_LABEL = shop_label("D-")


@pytest.fixture
def bad_file(erp):
    name, data = bad_orders_file("D-")
    result = integrate_file(erp, name, data)
    assert result.status == "integrated"
    return name


def test_open_rows_are_grouped_by_file_and_order_with_words_to_act_on(erp, bad_file):
    groups = q.open_groups(erp)
    assert [(g.file, g.shop_order_id) for g in groups] == [(bad_file, "D-2"), (bad_file, "D-3")]
    unknown, nobody = groups
    assert unknown.unknown_labels == [SHOP_LABEL]
    assert [r.line for r in unknown.rows] == [3]
    assert f"The shop sold “{SHOP_LABEL}”" in unknown.rows[0].explanation
    assert "map the shop label" in unknown.rows[0].explanation
    assert nobody.unknown_labels == []
    assert nobody.rows[0].explanation.startswith("Nobody to bill")
    assert q.count_open(erp) == 2


def test_a_reason_nobody_foresaw_keeps_the_parsers_words_and_says_where():
    assert (
        q.explain("payment_amount", "12,x", "something new", 7)
        == "On line 7, column “payment_amount” (value “12,x”): something new."
    )


def test_dismiss_needs_a_note_and_says_who(erp, bad_file):
    ids = q.open_groups(erp)[1].ids
    with pytest.raises(q.DeskError, match="note: a dismissal needs a note"):
        q.dismiss(erp, ids, "  ", by="admin")
    assert _status(erp, "D-3") == [("open", None, None)]

    assert q.dismiss(erp, ids, "customer called, order re-entered by hand", by="admin") == 1
    assert _status(erp, "D-3") == [("resolved", "customer called, order re-entered by hand", "admin")]
    assert q.dismiss(erp, ids, "again", by="admin") == 0  # closed rows stay as they were
    # A dismissed row is never replayed.
    q.replay(erp, load_settings())
    assert _status(erp, "D-3")[0][0] == "resolved"
    assert _web_order(erp, "D-3") == []


def test_mapping_a_shop_label_lets_the_replay_and_later_files_through(erp, bad_file):
    with pytest.raises(q.DeskError, match=rf"reference 'ART-999999' \(for shop label '{SHOP_LABEL}'\): no article"):
        q.map_label(erp, SHOP_LABEL, "ART-999999", by="admin")
    assert q.sku_aliases(erp) == {}

    # Before the mapping, a replay leaves the row open with its reason.
    q.replay(erp, load_settings())
    assert _status(erp, "D-2") == [("open", None, None)]

    q.map_label(erp, SHOP_LABEL, "ART-000001", by="admin", note="the shop's own label")
    assert q.sku_aliases(erp) == {SHOP_LABEL: "ART-000001"}
    results = q.replay(erp, load_settings())
    # D-2 goes through; D-3 (no customer) is still refused.
    assert [(r["file"], r["rows_replayed"], r["rows_still_open"]) for r in results] == [(bad_file, 1, 1)]
    assert q.summarise_replay(results) == "Replayed 1 row(s) from 1 file(s); 1 still open."
    assert (_status(erp, "D-2")[0][0], _status(erp, "D-3")[0][0]) == ("replayed", "open")
    assert [(ref, float(qty)) for ref, qty in _web_order(erp, "D-2")] == [("ART-000001", 2.0)]

    # A later file with the same label is integrated straight away.
    name, data = bad_orders_file("E-", label=SHOP_LABEL)
    later = integrate_file(erp, name, data)
    assert later.counts["rejected_orders"] == 1  # only E-3, the order without a customer
    assert [ref for ref, _ in _web_order(erp, "E-2")] == ["ART-000001"]


def test_map_label_refuses_empty_or_identical_values(erp):
    with pytest.raises(q.DeskError, match="shop label: empty"):
        q.map_label(erp, " ", "ART-000001", by="admin")
    with pytest.raises(q.DeskError, match="reference for shop label 'X': empty"):
        q.map_label(erp, "X", "", by="admin")
    with pytest.raises(q.DeskError, match="the same as the shop label"):
        q.map_label(erp, "ART-000001", "ART-000001", by="admin")
