"""End to end: the prices/stock and order-status DAGs run for real with dag.test() against
PostgreSQL (a seeded back office per test) and an FTP server on loopback.

Shop orders are inserted with SQL, as the inbound flow would have integrated them."""

from __future__ import annotations

import hashlib
import io
import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pendulum
import pytest
import yaml

from passerelle import INCLUDE
from passerelle.core.dialects.prestashop import prestashop_fields

DAY1 = pendulum.datetime(2026, 11, 20, 10, 0, tz="Europe/Paris")


# -- helpers ------------------------------------------------------------------------------------
def _run(dag, when, conf=None):
    dr = dag.test(logical_date=when, run_conf=conf or {})
    assert dr.state == "success", f"run ended {dr.state}"
    return dr


def _folders(ftp_server, flow):
    root = ftp_server.path(f"/outbound/{flow}")
    return sorted(p.parent for p in root.glob("*/manifest.json"))


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _csv(path: Path, sep: str) -> pd.DataFrame:
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)


def _config(tmp_path, monkeypatch, **sections) -> Path:
    """The project's configuration with some sections overridden, as PASSERELLE_CONFIG."""
    cfg = yaml.safe_load((INCLUDE / "config" / "passerelle.yaml").read_text(encoding="utf-8"))
    for section, values in sections.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    path = tmp_path / "passerelle.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("PASSERELLE_CONFIG", str(path))
    return path


def _order(
    erp, number, *, customer_id, lines, origin="web", shop_order_id=None, status="confirmed", billing=True
) -> int:
    """An order with its lines, totals consistent with them; lines: (article_id, variant_id,
    quantity, shipped_qty, unit price excl. VAT, VAT rate)."""
    order_id = erp.execute(
        "INSERT INTO erp.sales_order (number, origin, shop_order_id, customer_id, order_date, status, "
        "shipping_excl_vat, billing_name, billing_line1, billing_postcode, billing_city, billing_country, "
        "delivery_name, delivery_line1, delivery_postcode, delivery_city, delivery_country) "
        "VALUES (%s, %s, %s, %s, '2026-11-19 15:00+01', %s, 4.90, %s, %s, %s, %s, 'FR', "
        "'Léa Martin', '8 rue des Lilas', '75011', 'Paris', 'FR') RETURNING id",
        (
            number,
            origin,
            shop_order_id,
            customer_id,
            status,
            "Léa Martin" if billing else None,
            "8 rue des Lilas" if billing else None,
            "75011" if billing else None,
            "Paris" if billing else None,
        ),
    ).fetchone()[0]
    for i, (article_id, variant_id, qty, shipped, price, vat) in enumerate(lines, 1):
        erp.execute(
            "INSERT INTO erp.sales_order_line (order_id, line_number, article_id, variant_id, label, quantity, "
            "shipped_qty, unit_price_excl_vat, vat_rate) "
            "SELECT %s, %s, a.id, %s, a.name, %s, %s, %s, %s FROM erp.article a WHERE a.id = %s",
            (order_id, i, variant_id, qty, shipped, price, vat, article_id),
        )
    erp.execute(
        "UPDATE erp.sales_order o SET total_excl_vat = t.ht + o.shipping_excl_vat, "
        "total_vat = t.tva + round(o.shipping_excl_vat * o.shipping_vat_rate / 100, 2), "
        "total_incl_vat = t.ht + t.tva + o.shipping_excl_vat "
        "                 + round(o.shipping_excl_vat * o.shipping_vat_rate / 100, 2) "
        "FROM (SELECT sum(round(quantity * unit_price_excl_vat, 2)) AS ht, "
        "             sum(round(quantity * unit_price_excl_vat * vat_rate / 100, 2)) AS tva "
        "      FROM erp.sales_order_line WHERE order_id = %s) t WHERE o.id = %s",
        (order_id, order_id),
    )
    erp.commit()
    return order_id


def _invoice(erp, order_id, number, pdf=None) -> None:
    erp.execute(
        "INSERT INTO erp.invoice (number, order_id, invoice_date, total_excl_vat, total_vat, total_incl_vat, pdf) "
        "SELECT %s, id, '2026-11-20', total_excl_vat, total_vat, total_incl_vat, %s FROM erp.sales_order WHERE id = %s",
        (number, pdf, order_id),
    )
    erp.commit()


def _web_plain_articles(erp, n):
    """Articles the shop sells, without variants, with stock in the web warehouse."""
    return erp.execute(
        "SELECT a.id, a.reference FROM erp.article a WHERE a.web AND a.price_excl_vat > 0 AND a.name <> '' "
        "AND NOT EXISTS (SELECT 1 FROM erp.variant v WHERE v.article_id = a.id) "
        "AND EXISTS (SELECT 1 FROM erp.stock s WHERE s.article_id = a.id AND s.location_code = 'ENT') "
        "ORDER BY a.id LIMIT %s",
        (n,),
    ).fetchall()


# -- prices ---------------------------------------------------------------------------------------
@pytest.fixture
def prices_stock(airflow_db, connections):
    from passerelle.flows.exchange import prices_stock_dag

    return prices_stock_dag()


def _families_sent(erp, but: tuple[str, ...] = ()) -> None:
    """The web families as the catalog flow would have sent them (its snapshot), but ``but``."""
    erp.execute(
        "INSERT INTO passerelle.snapshot (entity, key, hash, batch_id) SELECT 'family', code, 'h', 0 "
        "FROM erp.family WHERE web AND code <> ALL (%s)",
        (list(but),),
    )
    erp.commit()


def _categories(family_ids: str, sent: set[str] | None = None) -> str:
    """The Categories cell of family ids "1,3,7" (root first): category ids (+10,000), leaf first."""
    return ",".join(str(10_000 + int(i)) for i in reversed(family_ids.split(",")) if sent is None or i in sent)


def test_prices_delta_after_a_price_change_and_a_new_promotion(prices_stock, erp, ftp_server):
    _families_sent(erp)
    _run(prices_stock, DAY1)
    (first,) = _folders(ftp_server, "prices_stock")
    m1 = _manifest(first)
    assert m1["mode"] == "full" and m1["dialect"] == "prestashop"
    selected = erp.execute(
        "SELECT count(*) FROM passerelle_src.article a WHERE a.web AND a.price_excl_vat > 0 AND a.name <> ''"
    ).fetchone()[0]
    assert m1["counts"]["price"]["created"] == selected
    products = _csv(first / "products_prices_0001.csv", ";")
    assert len(products) == selected

    # PrestaShop matches columns by position: the header is a prefix of its field list.
    labels = [label for _, label in prestashop_fields("products")]
    assert list(products.columns) == labels[: len(products.columns)]
    assert list(products.columns)[-1] == "Reference #" and "Price tax included" not in products.columns

    (changed_id, changed_ref), (promo_id, promo_ref) = erp.execute(
        "SELECT a.id, a.reference FROM erp.article a JOIN passerelle_src.price p ON p.key = a.reference "
        "WHERE a.web AND a.price_excl_vat > 0 AND p.promo_starts_on IS NULL ORDER BY a.id LIMIT 2"
    ).fetchall()
    erp.execute("UPDATE erp.article SET price_excl_vat = 41.5 WHERE id = %s", (changed_id,))
    erp.execute(
        "INSERT INTO erp.promotion (article_id, discount_pct, starts_on, ends_on) "
        "VALUES (%s, 25, '2026-11-25', '2026-11-30')",
        (promo_id,),
    )
    erp.execute(
        "INSERT INTO erp.price_list_item (price_list, article_id, min_qty, price_excl_vat) "
        "VALUES ('REV', %s, 10, 30.00) ON CONFLICT DO NOTHING",
        (changed_id,),
    )
    erp.commit()

    _run(prices_stock, DAY1.add(hours=1))
    second = _folders(ftp_server, "prices_stock")[1]
    m2 = _manifest(second)
    assert m2["mode"] == "delta"
    assert (m2["counts"]["price"]["created"], m2["counts"]["price"]["changed"], m2["counts"]["price"]["removed"]) == (
        0,
        2,
        0,
    )
    assert m2["counts"]["specific_price"]["created"] == 1
    for entity in ("stock", "variant_stock"):
        assert m2["counts"][entity]["created"] == m2["counts"][entity]["changed"] == 0, entity

    sent = _csv(second / "products_prices_0001.csv", ";").set_index("Reference #")
    assert sorted(sent.index) == sorted([changed_ref, promo_ref])
    name = erp.execute("SELECT name FROM erp.article WHERE id = %s", (changed_id,)).fetchone()[0]
    assert sent.loc[changed_ref, "Price tax excluded"] == "41.500000"
    assert sent.loc[changed_ref, "Name"] == name  # never blanked: PrestaShop writes empty names
    # Nor the categories: a product row with an empty Categories cell keeps one of them. Restated as
    # the catalog sends them, by category ID (family id + 10,000), leaf first.
    ids = erp.execute("SELECT family_ids FROM passerelle_src.article WHERE key = %s", (changed_ref,)).fetchone()[0]
    erp.commit()
    assert ids and sent.loc[changed_ref, "Categories (x,y,z...)"] == _categories(ids)
    assert sent.loc[changed_ref, "Discount percent"] == ""
    assert sent.loc[promo_ref, "Discount percent"] == "25.00"
    assert sent.loc[promo_ref, "Discount from (yyyy-mm-dd)"] == "2026-11-25"
    assert sent.loc[promo_ref, "Discount to (yyyy-mm-dd)"] == "2026-11-30 23:59:59"

    specific = _csv(second / "specific_prices_0001.csv", ";")
    assert specific.to_dict("records") == [
        {
            "passerelle_key": f"list:REV:{changed_ref}:10",
            "reference": changed_ref,
            "combination_reference": "",
            "id_group": "REV",
            "from_quantity": "10",
            "price": "30.000000",
            "reduction": "0",
            "reduction_tax": "0",
            "reduction_type": "amount",
            "from": "0000-00-00 00:00:00",
            "to": "0000-00-00 00:00:00",
        }
    ]
    on_server = sorted(p.name for p in second.iterdir() if p.name != "manifest.json")
    assert on_server == sorted(f["name"] for f in m2["files"])
    for f in m2["files"]:
        assert hashlib.sha256((second / f["name"]).read_bytes()).hexdigest() == f["sha256"]


# -- stock ----------------------------------------------------------------------------------------
def test_stock_is_net_of_downloaded_orders_and_safety_stock_and_hides_variants_out_of_stock(
    airflow_db, connections, erp, ftp_server, tmp_path, monkeypatch
):
    _config(
        tmp_path, monkeypatch, shop={"dialect": "generic"}, stock={"safety_stock": 2, "variant_display": "in_stock"}
    )
    from passerelle.flows.exchange import prices_stock_dag

    dag = prices_stock_dag()
    (a_id, a_ref), (b_id, b_ref) = _web_plain_articles(erp, 2)
    # Article A: plenty of stock. Article B: 1 available, then a downloaded order of 1.
    erp.execute(
        "UPDATE erp.stock SET quantity = 20, reserved = 3 WHERE article_id = %s AND location_code = 'ENT'", (a_id,)
    )
    erp.execute(
        "UPDATE erp.stock SET quantity = 2, reserved = 1 WHERE article_id = %s AND location_code = 'ENT'", (b_id,)
    )
    customer = erp.execute("SELECT min(id) FROM erp.customer").fetchone()[0]
    # Downloaded and not shipped: counted (3 - 1 shipped = 2 for A, 1 for B)...
    _order(
        erp,
        "W-1",
        customer_id=customer,
        origin="web",
        shop_order_id="PS-1",
        status="confirmed",
        lines=[(a_id, None, 3, 1, 10, 20), (b_id, None, 1, 0, 10, 20)],
    )
    # ... but not a shipped web order, nor an order entered in the store.
    _order(
        erp,
        "W-2",
        customer_id=customer,
        origin="web",
        shop_order_id="PS-2",
        status="shipped",
        lines=[(a_id, None, 4, 4, 10, 20)],
    )
    _order(erp, "S-1", customer_id=customer, origin="store", status="confirmed", lines=[(a_id, None, 5, 0, 10, 20)])

    # A fashion article: one variant out of stock, one in stock.
    art_v, v_out, v_in = erp.execute(
        "SELECT a.id, min(v.reference), max(v.reference) FROM erp.article a JOIN erp.variant v ON v.article_id = a.id "
        "WHERE a.web AND a.price_excl_vat > 0 GROUP BY a.id HAVING count(*) >= 2 ORDER BY a.id LIMIT 1"
    ).fetchone()
    erp.execute(
        "UPDATE erp.stock s SET quantity = 1, reserved = 0 FROM erp.variant v "
        "WHERE v.id = s.variant_id AND v.reference = %s",
        (v_out,),
    )  # 1 - safety 2 -> 0
    erp.execute(
        "UPDATE erp.stock s SET quantity = 9, reserved = 0 FROM erp.variant v "
        "WHERE v.id = s.variant_id AND v.reference = %s",
        (v_in,),
    )
    erp.commit()
    web_available = dict(
        erp.execute(
            "SELECT a.reference, sum(s.quantity - s.reserved) FROM erp.stock s JOIN erp.location l "
            "ON l.code = s.location_code AND l.web JOIN erp.article a ON a.id = s.article_id "
            "WHERE a.id = ANY(%s) AND s.variant_id IS NULL GROUP BY a.reference",
            ([a_id, b_id],),
        ).fetchall()
    )
    assert (web_available[a_ref], web_available[b_ref]) == (17, 1)

    _run(dag, DAY1)
    (first,) = _folders(ftp_server, "prices_stock")
    assert _manifest(first)["dialect"] == "generic"
    stock = _csv(first / "stock_0001.csv", ",").set_index("key")
    assert stock.loc[a_ref, "available_qty"] == str(17 - 2 - 2)  # stock - downloaded - safety
    assert stock.loc[b_ref, "available_qty"] == "0"  # 1 - 1 - 2, never below zero
    assert stock.loc[a_ref, "real_qty"] == "20"
    variants = _csv(first / "variant_stock_0001.csv", ",").set_index("key")
    assert v_out not in variants.index  # in_stock: hidden
    assert variants.loc[v_in, "available_qty"] == str(9 - 2)
    assert (variants["available_qty"].astype(float) > 0).all()

    # The order ships: A's stock is no longer held back; the in-stock variant runs out.
    erp.execute("UPDATE erp.sales_order SET status = 'shipped' WHERE number = 'W-1'")
    erp.execute(
        "UPDATE erp.stock s SET quantity = 0 FROM erp.variant v WHERE v.id = s.variant_id AND v.reference = %s", (v_in,)
    )
    erp.commit()
    _run(dag, DAY1.add(hours=1))
    second = _folders(ftp_server, "prices_stock")[1]
    m2 = _manifest(second)
    stock2 = _csv(second / "stock_0001.csv", ",").set_index("key")
    assert stock2.loc[a_ref, "available_qty"] == str(17 - 2)
    assert b_ref not in stock2.index  # still 0 (1 - 2): unchanged, not resent
    off = _csv(second / "variant_stock_off_0001.csv", ",")
    assert off.to_dict("records") == [{"key": v_in, "active": "0"}]
    assert m2["counts"]["variant_stock"]["removed"] == 1


def test_prestashop_sends_out_of_stock_combinations_with_zero_quantity(erp):
    """With PrestaShop, in_stock cannot be done by leaving combinations out (they would stay
    orderable at their old quantity): they get 0 and the shop's display setting hides them."""
    from passerelle.core.dialects import exchange_dialect
    from passerelle.core.exchange import build_exchange, exchange_settings, prices_stock_entities
    from passerelle.core.export import iter_outbox

    v_out = erp.execute(
        "SELECT v.reference FROM erp.variant v JOIN erp.article a ON a.id = v.article_id "
        "WHERE a.web AND a.price_excl_vat > 0 ORDER BY v.id LIMIT 1"
    ).fetchone()[0]
    erp.execute(
        "UPDATE erp.stock s SET quantity = 0 FROM erp.variant v WHERE v.id = s.variant_id AND v.reference = %s",
        (v_out,),
    )
    erp.commit()
    from passerelle.config import parse_settings

    _families_sent(erp)
    settings = parse_settings({"shop": {"timezone": "Europe/Paris"}, "stock": {"safety_stock": 0}})
    dialect = exchange_dialect("prestashop", settings)
    entities = prices_stock_entities(
        "TRUE", variant_display="in_stock", filter_variants=dialect.filters_variant_display, names=["stock"]
    )
    batch, files = build_exchange(
        erp,
        flow="prices_stock",
        run_key="t",
        entities=entities,
        dialect=dialect,
        settings=exchange_settings(settings, DAY1.date()),
    )
    content = {name: data for name, data, _ in iter_outbox(erp, batch.id)}
    combinations = pd.read_csv(
        io.BytesIO(content["combinations_stock_0001.csv"]), sep=";", dtype=str, keep_default_na=False
    ).set_index("Reference")
    assert combinations.loc[v_out, "Quantity"] == "0"
    products = pd.read_csv(io.BytesIO(content["products_stock_0001.csv"]), sep=";", dtype=str, keep_default_na=False)
    labels = [label for _, label in prestashop_fields("products")]
    assert list(products.columns) == labels[: labels.index("Quantity") + 1]
    plain = erp.execute(
        "SELECT count(*) FROM passerelle_src.stock s JOIN passerelle_src.article a ON a.key = s.key "
        "WHERE s.level = 'article' AND a.web AND NOT s.has_variants"
    ).fetchone()[0]
    assert 0 < len(products) == plain < batch.counts["stock"]["created"]  # combinations' products: PrestaShop sums
    # The categories restated, as the catalog's product rows give them (an empty cell keeps one),
    # but those the catalog has not sent yet (the import would create them, named by their number):
    # here a leaf family left out of the catalog's snapshot.
    catalog = dict(erp.execute("SELECT key, family_ids FROM passerelle_src.article WHERE family_ids IS NOT NULL"))
    stated = products.set_index("Reference #")["Categories (x,y,z...)"]
    assert (stated != "").all()
    assert all(cell == _categories(catalog[ref]) for ref, cell in stated.items())
    ref = stated.index[0]
    leaf_id = catalog[ref].split(",")[-1]
    leaf, depth = erp.execute(
        "SELECT code, depth FROM passerelle_src.family WHERE family_id = %s", (int(leaf_id),)
    ).fetchone()
    erp.execute("DELETE FROM passerelle.snapshot WHERE entity = 'family' AND key = %s", (leaf,))
    erp.commit()
    assert depth > 1  # a leaf under a parent: the parent stays
    rows = erp.execute("SELECT s.key, s.family_ids FROM passerelle_src.stock s WHERE s.key = %s", (ref,)).fetchall()
    erp.commit()
    sent_ids = set(catalog[ref].split(",")) - {leaf_id}
    assert rows == [(ref, ",".join(i for i in catalog[ref].split(",") if i in sent_ids))]


# -- one stock for the catalog and the stock file ------------------------------------------------
def _quantities(folder: Path, stem: str, column: str) -> dict[str, Decimal]:
    """{key: quantity} over the parts of a generic file (``<stem>_0001.csv``...) of a batch folder."""
    sent: dict[str, Decimal] = {}
    for part in sorted(folder.glob(f"{stem}_[0-9]*.csv")):
        df = _csv(part, ",")
        sent.update(zip(df["key"], df[column].map(Decimal)))
    return sent


def test_catalog_and_hourly_stock_file_send_the_same_stock(
    airflow_db, connections, erp, ftp_server, tmp_path, monkeypatch
):
    """One definition of the stock the shop sees. Back-office stock 10, a downloaded web order of 3
    not shipped yet, safety stock 2: the nightly catalog's products and variants and the hourly
    stock file all say 5. Once the order has shipped, all say 8."""
    _config(tmp_path, monkeypatch, shop={"dialect": "generic"}, stock={"safety_stock": 2})
    from passerelle.flows.catalog import catalog_dag
    from passerelle.flows.exchange import prices_stock_dag

    catalog, prices_stock = catalog_dag(), prices_stock_dag()
    ((plain_id, plain_ref),) = _web_plain_articles(erp, 1)
    # An article with variants: one variant holds the stock, the others none, so that the
    # article's quantity (the sum of its variants') is that variant's.
    art_id, art_ref, var_id, var_ref = erp.execute(
        "SELECT a.id, a.reference, v.id, v.reference FROM erp.article a JOIN erp.variant v ON v.article_id = a.id "
        "WHERE a.web AND a.price_excl_vat > 0 AND a.name <> '' AND v.active "
        "AND EXISTS (SELECT 1 FROM erp.stock s WHERE s.variant_id = v.id AND s.location_code = 'ENT') "
        "ORDER BY a.id, v.id LIMIT 1"
    ).fetchone()
    erp.execute(
        "UPDATE erp.stock SET quantity = 10, reserved = 0 WHERE location_code = 'ENT' AND article_id = %s", (plain_id,)
    )
    erp.execute(
        "UPDATE erp.stock SET quantity = CASE WHEN variant_id = %s THEN 10 ELSE 0 END, reserved = 0 "
        "WHERE location_code = 'ENT' AND article_id = %s",
        (var_id, art_id),
    )
    customer = erp.execute("SELECT min(id) FROM erp.customer").fetchone()[0]
    _order(
        erp,
        "W-77",
        customer_id=customer,
        shop_order_id="PS-77",
        status="confirmed",
        lines=[(plain_id, None, 3, 0, 10, 20), (art_id, var_id, 3, 0, 10, 20)],
    )

    def back_office_available() -> list:
        """The raw web-available stock (what the reorder proposals read): orders not deducted."""
        return erp.execute(
            "SELECT available_qty FROM passerelle_src.stock_level WHERE (article_id = %s AND variant_id IS NULL) "
            "OR variant_id = %s ORDER BY variant_id NULLS FIRST",
            (plain_id, var_id),
        ).fetchall()

    def sent(catalog_folder: Path, stock_folder: Path) -> tuple[dict, dict]:
        products = _quantities(catalog_folder, "products", "quantity")
        variants = _quantities(catalog_folder, "variants", "quantity")
        stock = _quantities(stock_folder, "stock", "available_qty")
        variant_stock = _quantities(stock_folder, "variant_stock", "available_qty")
        return (
            {plain_ref: products.get(plain_ref), art_ref: products.get(art_ref), var_ref: variants.get(var_ref)},
            {plain_ref: stock.get(plain_ref), art_ref: stock.get(art_ref), var_ref: variant_stock.get(var_ref)},
        )

    assert back_office_available() == [(10,), (10,)]
    _run(catalog, DAY1.subtract(hours=8))  # nightly, 02:00
    _run(prices_stock, DAY1)  # hourly, 10:00
    (catalog_1,), (stock_1,) = _folders(ftp_server, "catalog"), _folders(ftp_server, "prices_stock")
    in_catalog, in_stock_file = sent(catalog_1, stock_1)
    assert in_catalog == in_stock_file == {plain_ref: 5, art_ref: 5, var_ref: 5}  # 10 - 3 - 2

    # The order ships: nothing is held back for it any more, in either flow.
    erp.execute("UPDATE erp.sales_order SET status = 'shipped' WHERE number = 'W-77'")
    erp.commit()
    _run(catalog, DAY1.add(days=1).subtract(hours=8))
    _run(prices_stock, DAY1.add(hours=1))
    catalog_2, stock_2 = _folders(ftp_server, "catalog")[1], _folders(ftp_server, "prices_stock")[1]
    in_catalog, in_stock_file = sent(catalog_2, stock_2)
    assert in_catalog == in_stock_file == {plain_ref: 8, art_ref: 8, var_ref: 8}  # 10 - 2
    assert back_office_available() == [(10,), (10,)]


# -- order statuses and invoices ------------------------------------------------------------------
@pytest.fixture
def order_status(airflow_db, connections):
    from passerelle.flows.exchange import order_status_dag

    return order_status_dag()


def test_shipped_and_invoiced_order_puts_status_tracking_and_invoice_pdf_once(order_status, erp, ftp_server):
    from pypdf import PdfReader

    (a_id, _), (b_id, _) = _web_plain_articles(erp, 2)
    web_customer, other_customer = erp.execute("SELECT min(id), max(id) FROM erp.customer").fetchone()
    erp.execute("UPDATE erp.customer SET web = false WHERE id = %s", (other_customer,))
    erp.commit()
    web = _order(
        erp,
        "WEB-1001",
        customer_id=web_customer,
        shop_order_id="PS-1001",
        lines=[(a_id, None, 2, 0, 19.90, 20), (b_id, None, 1, 0, 7.50, 5.5)],
    )
    counter = _order(
        erp, "MAG-2001", customer_id=web_customer, origin="store", lines=[(a_id, None, 1, 0, 19.90, 20)], billing=False
    )
    _order(erp, "MAG-2002", customer_id=other_customer, origin="store", lines=[(a_id, None, 1, 0, 19.90, 20)])

    _run(order_status, DAY1)
    (first,) = _folders(ftp_server, "order_status")
    states = _csv(first / "order_states_0001.csv", ";")
    assert sorted(states["reference"]) == ["MAG-2001", "WEB-1001"]  # not the non-web customer's order
    assert set(states["status"]) == {"confirmed"}
    assert states.set_index("reference").loc["MAG-2001", "id_order"] == ""

    # The back office prepares, ships (carrier, tracking number) and invoices the web order; the
    # counter order is invoiced with the back office's own PDF.
    erp.execute("UPDATE erp.sales_order SET status = 'prepared' WHERE id = %s", (web,))
    erp.execute(
        "UPDATE erp.sales_order SET status = 'shipped', carrier = 'Colissimo', "
        "tracking_number = '6A12345678901' WHERE id = %s",
        (web,),
    )
    erp.execute("UPDATE erp.sales_order_line SET shipped_qty = quantity WHERE order_id = %s", (web,))
    _invoice(erp, web, "FA-2026-00042")
    erp.execute("UPDATE erp.sales_order SET status = 'invoiced' WHERE id = %s", (web,))
    stored_pdf = b"%PDF-1.4\n% made by the back office\n%%EOF\n"
    _invoice(erp, counter, "FA-2026-00043", pdf=stored_pdf)
    erp.commit()

    day2 = DAY1.add(hours=1)
    _run(order_status, day2)
    second = _folders(ftp_server, "order_status")[1]
    m2 = _manifest(second)
    assert m2["counts"]["order_status"]["created"] == 3 and m2["counts"]["order_status"]["changed"] == 0
    states = _csv(second / "order_states_0001.csv", ";")
    assert list(states["status"]) == ["prepared", "shipped", "invoiced"]  # in the order they happened
    assert set(states["reference"]) == {"WEB-1001"} and set(states["id_order"]) == {"PS-1001"}
    shipped = states.set_index("status").loc["shipped"]
    assert (shipped["carrier"], shipped["tracking_number"], shipped["id_order_state"]) == (
        "Colissimo",
        "6A12345678901",
        "4",
    )
    assert states.set_index("status").loc["invoiced", "invoice_number"] == "FA-2026-00042"

    index = _csv(second / "invoices_0001.csv", ";").set_index("invoice_number")
    assert sorted(index.index) == ["FA-2026-00042", "FA-2026-00043"]
    pdf = (second / index.loc["FA-2026-00042", "file"]).read_bytes()
    assert pdf.startswith(b"%PDF")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    for expected in ("FA-2026-00042", "WEB-1001", "PS-1001", "Léa Martin", "Total TTC"):
        assert expected in text, expected
    assert (second / index.loc["FA-2026-00043", "file"]).read_bytes() == stored_pdf
    assert m2["counts"]["invoice"]["pdf_rendered"] == 1 and m2["counts"]["invoice"]["pdf_back_office"] == 1
    names = [f["name"] for f in m2["files"]]
    assert names.index("invoices_0001.csv") > names.index(index.loc["FA-2026-00042", "file"])  # PDFs first
    for f in m2["files"]:
        assert hashlib.sha256((second / f["name"]).read_bytes()).hexdigest() == f["sha256"]

    # Rerun of the same logical date: the same files, nothing new in the state.
    before = {p.name: p.read_bytes() for p in second.iterdir() if p.name != "manifest.json"}
    state_before = erp.execute(
        "SELECT (SELECT count(*) FROM passerelle.batch), "
        "(SELECT md5(string_agg(entity || key || hash, ',' ORDER BY entity, key)) "
        " FROM passerelle.snapshot)"
    ).fetchone()
    for p in second.iterdir():
        p.unlink()
    _run(order_status, day2)
    assert {p.name: p.read_bytes() for p in second.iterdir() if p.name != "manifest.json"} == before
    assert len(_folders(ftp_server, "order_status")) == 2
    assert (
        erp.execute(
            "SELECT (SELECT count(*) FROM passerelle.batch), "
            "(SELECT md5(string_agg(entity || key || hash, ',' ORDER BY entity, key)) "
            " FROM passerelle.snapshot)"
        ).fetchone()
        == state_before
    )

    # Next hour: nothing changed, nothing is sent again.
    _run(order_status, day2.add(hours=1))
    third = _folders(ftp_server, "order_status")[2]
    m3 = _manifest(third)
    assert m3["files"] == []
    for entity in ("order_status", "invoice"):
        assert m3["counts"][entity]["created"] == m3["counts"][entity]["changed"] == 0, entity
