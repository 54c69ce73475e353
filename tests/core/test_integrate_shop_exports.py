"""The demo's WooCommerce and PrestaShop orders exports (include/sample/inbound/<shop>/, as Advanced
Order Export and PrestaShop's SQL Manager write them) into a real back office set up as the demo's:
every paid or validated order integrated, the gift card to the gift-card article, a variant line
without SKU by its title, an order without customer to the walk-in customer, VAT as the shop states
it; rows read = integrated + quarantined + ignored."""

from __future__ import annotations

import psycopg
import pytest
from tests.core.test_inbound_amounts import prestashop_file, split_cart

from passerelle import INCLUDE
from passerelle.core.integrate import integrate_file
from passerelle_demo.seed import DEMO_INBOUND, seed_inbound_setup

SAMPLES = INCLUDE / "sample" / "inbound"
RULES = {"integrate": ["paid", "validated"], "quotes": ["quote"], "cancels": ["cancelled"], **DEMO_INBOUND}


def _published(conn: psycopg.Connection) -> None:
    """The catalog as Passerelle published it (the snapshot the title match reads)."""
    conn.execute(
        "INSERT INTO passerelle.snapshot (entity, key, hash, batch_id) "
        "SELECT 'article', reference, 'h', 0 FROM erp.article WHERE web UNION ALL "
        "SELECT 'variant', v.reference, 'h', 0 FROM erp.variant v JOIN erp.article a ON a.id = v.article_id "
        "WHERE a.web"
    )
    conn.commit()


def _lines(conn: psycopg.Connection) -> dict[str, list[tuple]]:
    rows = conn.execute(
        "SELECT o.shop_order_id, coalesce(v.reference, a.reference), l.quantity::int, l.vat_rate::float, "
        "o.vat_disagreement, c.code, o.billing_company, o.billing_region FROM erp.sales_order o "
        "JOIN erp.sales_order_line l ON l.order_id = o.id JOIN erp.article a ON a.id = l.article_id "
        "LEFT JOIN erp.variant v ON v.id = l.variant_id JOIN erp.customer c ON c.id = o.customer_id "
        "WHERE o.origin = 'web' ORDER BY 1, l.line_number"
    ).fetchall()
    conn.commit()
    out: dict[str, list[tuple]] = {}
    for sid, *rest in rows:
        out.setdefault(sid, []).append(tuple(rest))
    return out


@pytest.mark.parametrize(
    "path, rows, integrated, ignored",
    [("woocommerce/woocommerce_orders_20261120.csv", 10, 9, 1), ("prestashop/request_sql_1.csv", 8, 8, 0)],
)
def test_the_shops_own_export_integrates(erp, path, rows, integrated, ignored):
    seed_inbound_setup(erp)
    _published(erp)
    data = (SAMPLES / path).read_bytes()
    result = integrate_file(erp, path.rsplit("/", 1)[1], data, rules=RULES)
    assert result.status == "integrated", result
    c = result.counts
    assert (c["rows_read"], c["rows_integrated"], c["rows_quarantined"], c["rows_ignored"]) == (
        rows,
        integrated,
        0,
        ignored,
    )
    lines = _lines(erp)
    if path.startswith("woocommerce"):
        assert set(lines) == {"5201", "5202", "5203", "5204", "5205"}  # 5206 is pending payment: left
        # A variation's line without SKU, "Chemisier en coton bio - L, VERT", by its published title.
        assert [r[0] for r in lines["5202"]] == ["ART-000002-L-VERT", "ART-000009"]
        assert lines["5202"][0][5] == "Cabinet Garcia"
        assert lines["5204"] == [("CARTE-CADEAU", 1, 0.0, None, lines["5204"][0][4], None, None)]
        assert {r[4] for r in lines["5205"]} == {"COMPTOIR"}  # a point-of-sale order: no e-mail
        assert [(r[0], r[2], r[3]) for r in lines["5203"]] == [("ART-000006", 5.5, None), ("ART-000024", 5.5, None)]
    else:
        assert set(lines) == {"QWXKBNAHT", "PLMZRTYUA", "GHTYRBVCX", "WERTBNMKL"}  # ZXCVBNMAS: canceled
        assert [r[0] for r in lines["PLMZRTYUA"]] == ["ART-000002-L-VERT", "ART-000009"]
        assert lines["QWXKBNAHT"][0][5:] == ("Atelier Leroy SARL", "Loire-Atlantique")
        assert [r[0] for r in lines["WERTBNMKL"]] == ["CARTE-CADEAU"]
        assert all(r[3] is None for rs in lines.values() for r in rs)  # VAT as the shop states it: agrees
    numbers = {r[0] for r in erp.execute("SELECT number FROM erp.sales_order WHERE origin = 'web'")}
    assert all(n.startswith("WEB-") and "#" not in n for n in numbers)


def _package_files() -> tuple[bytes, bytes]:
    """The sample's orders, QWXKBNAHT the first package of a cart PrestaShop split in two, as the
    query with orders_in_cart exports them; and the cart's second package, alone in a later file."""
    header, rows, package = split_cart()
    return prestashop_file(header, rows), prestashop_file(header, package)


def test_a_split_cart_in_two_files_integrates_each_package_once(erp):
    """Each package of a split cart is its own order, keyed <reference>-<id_order>, whichever file
    brings it: the second one, in a later file, is integrated with its lines (not taken for the
    first, already there); a file holding both again creates nothing."""
    seed_inbound_setup(erp)
    _published(erp)
    first, second = _package_files()
    header, rows, package = split_cart()
    results = [
        integrate_file(erp, "request_sql_1.csv", first, rules=RULES),
        integrate_file(erp, "request_sql_2.csv", second, rules=RULES),
        integrate_file(erp, "request_sql_3.csv", prestashop_file(header, rows + package), rules=RULES),
    ]
    assert [r.status for r in results] == ["integrated"] * 3, results
    assert results[1].counts["orders_created"] == 1 and results[1].counts["rows_quarantined"] == 0
    assert results[2].counts["orders_created"] == 0 and results[2].counts["rows_quarantined"] == 0
    lines = _lines(erp)
    assert "QWXKBNAHT" not in lines
    assert [(r[0], r[1]) for r in lines["QWXKBNAHT-11"]] == [(lines["QWXKBNAHT-1"][0][0], 4)]
    number, total = erp.execute(
        "SELECT number, total_incl_vat::float FROM erp.sales_order WHERE shop_order_id = 'QWXKBNAHT-11'"
    ).fetchone()
    assert (number, total) == ("WEB-QWXKBNAHT-11", 43.13)


def test_a_package_whose_cart_was_integrated_whole_is_refused(erp):
    """A cart split in two whose first package was integrated under its reference alone (a query
    without orders_in_cart): its packages, now keyed apart, are refused with the reason, not
    integrated beside it (one of them would be doubled)."""
    seed_inbound_setup(erp)
    _published(erp)
    old = integrate_file(
        erp, "request_sql_1.csv", (SAMPLES / "prestashop" / "request_sql_1.csv").read_bytes(), rules=RULES
    )
    assert old.status == "integrated" and "QWXKBNAHT" in _lines(erp)
    _, second = _package_files()
    result = integrate_file(erp, "request_sql_2.csv", second, rules=RULES)
    assert result.counts["orders_created"] == 0 and result.counts["rejected_orders"] == 1
    reasons = {
        r[0]
        for r in erp.execute(
            "SELECT reason FROM passerelle.quarantine WHERE shop_order_id = 'QWXKBNAHT-11' AND field = 'reference'"
        )
    }
    assert reasons == {
        "PrestaShop split cart QWXKBNAHT into several orders, and the back office already holds order WEB-QWXKBNAHT, "
        "integrated from a file without orders_in_cart: it is one of these packages; compare it with QWXKBNAHT-11 "
        "and integrate the missing package by hand"
    }
    assert "QWXKBNAHT-11" not in _lines(erp)


def test_a_package_read_by_the_old_query_after_its_key_is_not_integrated_twice(erp):
    """The other way round: the packages integrated under <reference>-<id_order>, then a file of the
    query without orders_in_cart (a replay of rows quarantined before the upgrade, an export not
    updated) brings one of them keyed by the reference alone: refused, saying to add the column,
    not created a second time."""
    seed_inbound_setup(erp)
    _published(erp)
    header, rows, package = split_cart()
    assert (
        integrate_file(erp, "request_sql_1.csv", prestashop_file(header, rows + package), rules=RULES).counts[
            "orders_created"
        ]
        == 5
    )
    old_header = [c for c in header if c != "orders_in_cart"]
    old_rows = [{k: v for k, v in r.items() if k in old_header} for r in package]
    old = integrate_file(erp, "request_sql_2.csv", prestashop_file(old_header, old_rows), rules=RULES)
    assert (old.counts["orders_created"], old.counts["rejected_orders"]) == (0, 1)
    reason = erp.execute("SELECT reason FROM passerelle.quarantine WHERE shop_order_id = 'QWXKBNAHT'").fetchone()[0]
    erp.commit()
    assert reason == (
        "order QWXKBNAHT (id_order 11) is package QWXKBNAHT-11 of a cart PrestaShop split, which the back office "
        "already holds as order WEB-QWXKBNAHT-11, from a file with orders_in_cart; this file's query lacks that "
        "column: add it (docs/formats/prestashop.md)"
    )
    assert "QWXKBNAHT" not in _lines(erp)


def test_a_package_held_under_its_own_key_takes_its_news_beside_a_sibling_held_under_the_reference(erp):
    """A cart split in two: its second package integrated as <reference>-<id_order> (the query with
    orders_in_cart), then its first package, alone in a file of the query without that column,
    created under the reference (nothing held under its other key). The second package's later
    news, its cancellation, is that order's: it cancels it, not refused for the sibling held
    under the reference."""
    seed_inbound_setup(erp)
    _published(erp)
    header, rows, package = split_cart()
    assert (
        integrate_file(erp, "request_sql_1.csv", prestashop_file(header, package), rules=RULES).counts["orders_created"]
        == 1
    )
    old_header = [c for c in header if c != "orders_in_cart"]
    first = [{k: v for k, v in r.items() if k in old_header} for r in rows if r["id_order"] == "1"]
    old = integrate_file(erp, "request_sql_2.csv", prestashop_file(old_header, first), rules=RULES)
    assert (old.counts["orders_created"], old.counts["rejected_orders"]) == (1, 0)
    cancelled = [{**r, "current_state": "6", "valid": "0", "order_state": "Annulé"} for r in package]
    result = integrate_file(erp, "request_sql_3.csv", prestashop_file(header, cancelled), rules=RULES)
    assert (result.counts["orders_cancelled"], result.counts["rejected_orders"]) == (1, 0), result
    states = dict(erp.execute("SELECT shop_order_id, status FROM erp.sales_order WHERE origin = 'web'").fetchall())
    erp.commit()
    assert states["QWXKBNAHT-11"] == "cancelled" and states["QWXKBNAHT"] != "cancelled"


def test_news_of_a_package_read_by_the_old_query_never_lands_on_its_sibling(erp):
    """The same back office (package 11 held as QWXKBNAHT-11, package 1 as QWXKBNAHT); package 11's
    cancellation comes by the query without orders_in_cart (an export not updated, a replay), keyed
    by the bare reference: it cannot tell which package it is, so it is refused, and package 1,
    held under that reference, is not cancelled."""
    seed_inbound_setup(erp)
    _published(erp)
    header, rows, package = split_cart()
    integrate_file(erp, "request_sql_1.csv", prestashop_file(header, package), rules=RULES)
    old_header = [c for c in header if c != "orders_in_cart"]

    def old(rs: list[dict[str, str]]) -> list[dict[str, str]]:
        return [{k: v for k, v in r.items() if k in old_header} for r in rs]

    first = old([r for r in rows if r["id_order"] == "1"])
    assert (
        integrate_file(erp, "request_sql_2.csv", prestashop_file(old_header, first), rules=RULES).counts[
            "orders_created"
        ]
        == 1
    )
    cancelled = old([{**r, "current_state": "6", "valid": "0", "order_state": "Annulé"} for r in package])
    result = integrate_file(erp, "request_sql_3.csv", prestashop_file(old_header, cancelled), rules=RULES)
    assert (result.counts["orders_cancelled"], result.counts["rejected_orders"]) == (0, 1), result
    states = dict(erp.execute("SELECT shop_order_id, status FROM erp.sales_order WHERE origin = 'web'").fetchall())
    erp.commit()
    assert "cancelled" not in (states["QWXKBNAHT"], states["QWXKBNAHT-11"]), states
