"""A real Shopify "Export orders" file into a real back office: lines without SKU (gift cards,
custom items, products made in the shop), draft and point-of-sale orders without e-mail, tax-free
lines, several VAT rates, companies and provinces, partial fulfilment, and an order cut at a row
boundary. Every paid order whose lines can be matched is integrated; the others are quarantined
per order with a reason that says what to do; rows read = integrated + quarantined + ignored."""

from __future__ import annotations

import psycopg
import pytest

from passerelle import INCLUDE
from passerelle.core.integrate import integrate_file, replay_quarantine

REAL = (INCLUDE / "sample" / "inbound" / "shopify_orders_export_real.csv").read_bytes()
RULES = {
    "integrate": ["paid", "validated"],
    "quotes": ["quote"],
    "cancels": ["cancelled"],
    "walk_in_customer": "COMPTOIR",
    "gift_card_article": "CARTE-CADEAU",
}


def _back_office(conn: psycopg.Connection, *, walk_in: bool = True) -> None:
    """The gift-card article, a service article and the walk-in customer the retailer set up, and
    the catalog as Passerelle published it (the snapshot the title match reads)."""
    conn.execute(
        "INSERT INTO erp.article (reference, name, vat_rate, price_excl_vat) VALUES "
        "('CARTE-CADEAU', 'Carte cadeau', 0, 0), ('SERVICE-RETOUCHE', 'Retouche', 20, 10)"
    )
    if walk_in:
        conn.execute("INSERT INTO erp.customer (code, last_name, web) VALUES ('COMPTOIR', 'Client comptoir', false)")
    conn.execute(
        "INSERT INTO passerelle.snapshot (entity, key, hash, batch_id) "
        "SELECT 'article', reference, 'h', 0 FROM erp.article WHERE web UNION ALL "
        "SELECT 'variant', v.reference, 'h', 0 FROM erp.variant v JOIN erp.article a ON a.id = v.article_id "
        "WHERE a.web"
    )
    conn.commit()


def _orders(conn: psycopg.Connection) -> dict[str, dict]:
    cur = conn.execute(
        "SELECT o.shop_order_id, o.number, o.status, o.total_incl_vat, o.total_vat, "
        "o.shipping_excl_vat, o.shipping_vat_rate, o.billing_name, o.billing_company, o.billing_region, "
        "o.billing_phone, o.vat_disagreement, c.code FROM erp.sales_order o "
        "JOIN erp.customer c ON c.id = o.customer_id WHERE o.origin = 'web'"
    )
    names = [d.name for d in cur.description]
    out = {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
    conn.commit()
    return out


def _lines(conn: psycopg.Connection, shop_order_id: str) -> list[tuple]:
    rows = conn.execute(
        "SELECT a.reference, v.reference, l.label, l.quantity, round(l.unit_price_excl_vat, 4), "
        "round(l.discount_excl_vat, 2), l.vat_rate FROM erp.sales_order_line l "
        "JOIN erp.sales_order o ON o.id = l.order_id JOIN erp.article a ON a.id = l.article_id "
        "LEFT JOIN erp.variant v ON v.id = l.variant_id WHERE o.shop_order_id = %s "
        "ORDER BY l.line_number",
        (shop_order_id,),
    ).fetchall()
    conn.commit()
    return [tuple(float(x) if hasattr(x, "as_tuple") else x for x in r) for r in rows]


def _quarantine(conn: psycopg.Connection) -> dict[str, set[str]]:
    rows = conn.execute("SELECT shop_order_id, reason FROM passerelle.quarantine WHERE status = 'open'").fetchall()
    conn.commit()
    out: dict[str, set[str]] = {}
    for sid, reason in rows:
        out.setdefault(sid, set()).add(reason)
    return out


def test_the_real_export_integrates_every_matched_paid_order_and_quarantines_the_rest(erp):
    _back_office(erp)
    result = integrate_file(erp, "orders_export_1.csv", REAL, rules=RULES)
    assert result.status == "integrated"
    c = result.counts
    # Per file, always: every row read is integrated, quarantined or ignored.
    assert c["rows_read"] == 28
    assert (c["rows_integrated"], c["rows_quarantined"], c["rows_ignored"]) == (22, 5, 1)
    assert c["rows_integrated"] + c["rows_quarantined"] + c["rows_ignored"] == c["rows_read"]

    orders = _orders(erp)
    assert sorted(orders) == [
        "#1010",
        "#1011",
        "#1012",
        "#1014",
        "#1015",
        "#1016",
        "#1017",
        "#1021",
        "#1022",
        "#1023",
        "#1024",
        "#1025",
        "#1026",
    ]
    assert (c["orders_create"], c["orders_cancels"], c["orders_ignored"]) == (13, 2, 1)  # #1020/#1027; #1018 pending
    assert c["cancels_not_integrated"] == 2
    # The back office's totals are the shop's.
    totals = {"#1010": 59.02, "#1011": 50.00, "#1012": 140.51, "#1014": 136.30, "#1017": 155.16, "#1022": 36.71}
    assert {k: float(orders[k]["total_incl_vat"]) for k in totals} == totals

    quarantined = _quarantine(erp)
    assert sorted(quarantined) == ["#1013", "#1019", "#1028"]
    # The custom item of the draft order: what to do, said in the reason.
    assert any(
        "'Retouche ourlet' matches no article Passerelle published" in r and "INSERT INTO passerelle.line_mapping" in r
        for r in quarantined["#1013"]
    )
    assert any("'Bougie artisanale vanille'" in r for r in quarantined["#1019"])
    # The order cut at a row boundary: both figures.
    assert any("Subtotal 44.18 but the order's lines in this file add up to 33.43" in r for r in quarantined["#1028"])

    # Clean numbers; names, companies, provinces and phones in their own fields.
    assert orders["#1010"]["number"] == "WEB-1010"
    assert (orders["#1010"]["billing_name"], orders["#1010"]["billing_company"]) == (
        "Camille Leroy",
        "Atelier Leroy SARL",
    )
    assert orders["#1021"]["billing_name"] == "Madeleine"  # a name of one word is still a name
    assert (orders["#1022"]["billing_region"], orders["#1022"]["billing_phone"]) == ("MI", "+390212345678")
    addr = erp.execute(
        "SELECT a.name FROM erp.address a JOIN erp.customer c ON c.id = a.customer_id "
        "WHERE lower(c.email) = 'camille.leroy.6@exemple.fr' AND a.kind = 'billing'"
    ).fetchone()
    company = erp.execute(
        "SELECT company FROM erp.customer WHERE lower(email) = 'camille.leroy.6@exemple.fr'"
    ).fetchone()
    erp.commit()
    assert (addr[0], company[0]) == ("Camille Leroy", "Atelier Leroy SARL")

    # The point-of-sale order without e-mail goes to the walk-in customer.
    assert orders["#1014"]["code"] == "COMPTOIR"
    # Gift cards map to the configured article, the shop's title to the published variant.
    assert _lines(erp, "#1011") == [("CARTE-CADEAU", None, "Carte-cadeau - 50 €", 1.0, 50.0, 0.0, 0.0)]
    assert [r[:2] for r in _lines(erp, "#1024")] == [("CARTE-CADEAU", None), ("ART-000001", None)]
    assert _lines(erp, "#1016")[0][:2] == ("ART-000002", "ART-000002-L-ROUGE")


def test_vat_comes_from_the_shop_and_a_disagreement_is_flagged(erp):
    _back_office(erp)
    integrate_file(erp, "orders_export_1.csv", REAL, rules=RULES)
    orders = _orders(erp)
    # A line Shopify charged no tax on keeps 0 %, and the order says the article is at 20 %.
    assert [r[-1] for r in _lines(erp, "#1015")] == [0.0, 20.0]
    assert orders["#1015"]["vat_disagreement"] == "VAT differs: line 10 ART-000007: shop 0%, back office 20%"
    # Gift cards (0 %, not taxable) are not a disagreement; agreeing orders have none.
    assert orders["#1024"]["vat_disagreement"] is None and orders["#1010"]["vat_disagreement"] is None
    # Several rates, prices including tax: each line its rate, shipping and the line discount kept.
    assert _lines(erp, "#1012") == [
        ("ART-000006", None, "Pâte à tartiner de lavande 250 g", 1.0, 80.1517, 0.0, 5.5),
        ("ART-000009", None, "Vase verre soufflé 28 cm", 1.0, 45.4167, 4.54, 20.0),
    ]
    assert (float(orders["#1012"]["shipping_excl_vat"]), float(orders["#1012"]["shipping_vat_rate"])) == (5.75, 20.0)
    assert float(orders["#1012"]["total_vat"]) == 13.74  # the shop's Taxes: 4.41 at 5.5 % + 9.33 at 20 %


def test_a_mapping_then_the_replay_integrates_the_custom_item(erp):
    _back_office(erp)
    integrate_file(erp, "orders_export_1.csv", REAL, rules=RULES)
    erp.execute(
        "INSERT INTO passerelle.line_mapping (shop_label, reference) VALUES ('retouche ourlet', 'SERVICE-RETOUCHE')"
    )
    erp.commit()
    replayed = replay_quarantine(erp, rules=RULES)
    assert [(r["rows_replayed"], r["rows_still_open"]) for r in replayed] == [(2, 3)]
    orders = _orders(erp)
    assert orders["#1013"]["code"] == "COMPTOIR"  # a draft order without e-mail: the walk-in customer
    assert [r[:3] for r in _lines(erp, "#1013")] == [
        ("SERVICE-RETOUCHE", None, "Retouche ourlet"),
        ("ART-000003", "ART-000003-M-GRIS", "Robe en coton bio - M / GRIS"),
    ]
    assert sorted(_quarantine(erp)) == ["#1019", "#1028"]


@pytest.mark.parametrize("walk_in", [None, "INCONNU"])
def test_orders_without_customer_take_the_walk_in_customer_or_wait(erp, walk_in):
    _back_office(erp, walk_in=False)
    rules = (
        {**RULES, "walk_in_customer": walk_in}
        if walk_in
        else {k: v for k, v in RULES.items() if k != "walk_in_customer"}
    )
    integrate_file(erp, "orders_export_1.csv", REAL, rules=rules)
    q = _quarantine(erp)
    assert "#1014" in q and "#1014" not in _orders(erp)
    reason = next(iter(q["#1014"]))
    assert "shop_customer_id" not in reason  # the export has no such column
    if walk_in:
        assert "'INCONNU' (inbound.walk_in_customer) is no customer code of the back office" in reason
    else:
        assert reason.startswith("no customer: Email is empty") and "inbound.walk_in_customer" in reason


def test_the_inbound_section_sets_the_walk_in_customer_and_line_articles():
    from passerelle.config import ConfigError, InboundSection, parse_settings
    from passerelle.core.integrate import inbound_settings

    settings = parse_settings(
        {"inbound": {"walk_in_customer": "COMPTOIR", "gift_card_article": "CARTE-CADEAU"}}, "passerelle.yaml"
    )
    rules, _ = inbound_settings(settings)
    assert rules == RULES
    assert inbound_settings(InboundSection())[0] == {
        k: v for k, v in RULES.items() if k in ("integrate", "quotes", "cancels")
    }
    with pytest.raises(ConfigError) as err:
        parse_settings({"inbound": {"walk_in_customer": ["COMPTOIR"]}}, "passerelle.yaml")
    assert str(err.value).startswith("passerelle.yaml: inbound.walk_in_customer")
    assert "back-office code or reference" in str(err.value)
