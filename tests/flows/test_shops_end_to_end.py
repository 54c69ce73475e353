"""End to end for WooCommerce and Shopify: the catalog and prices/stock DAGs run for real with
dag.test() against the seeded back office and an FTP server, under ``shop.dialect: woocommerce``
or ``shopify``; the files on the server parse back with ``csv`` and follow each shop's reference
column list (include/reference/*.json). Then the round trip of issue #11, for every shop: the
catalog sent, read back as the shop exports its orders (Shopify's "Export orders", WooCommerce's
Advanced Order Export, PrestaShop's SQL Manager, the generic CSV; written by tests/shop_exports.py
in the shop's published columns and value formats), integrates with every line matched, and
every row read is integrated, quarantined or ignored.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pendulum
import pytest
import yaml

from passerelle import INCLUDE
from passerelle_demo.seed import apply_demo_changes

DAY1 = pendulum.datetime(2026, 11, 20, 2, tz="Europe/Paris")
DAY2 = DAY1.add(days=1)
RULE = "a.web AND a.price_excl_vat > 0 AND a.name <> ''"  # the project configuration's selection
LOCATION = "Entrepôt Lyon"
SHOP_SECTIONS = {"woocommerce": {}, "shopify": {"location": LOCATION}, "prestashop": {}, "generic": {}}

WOO = json.loads((INCLUDE / "reference" / "woocommerce_product_csv.json").read_text(encoding="utf-8"))
WOO_LABELS = [c["label"].replace("%s", "kg") for c in WOO["columns"]]
WOO_ATTRIBUTE = re.compile(r"^Attribute (\d+) (name|value\(s\)|visible|global)$")
SHOPIFY = json.loads((INCLUDE / "reference" / "shopify_product_csv.json").read_text(encoding="utf-8"))
SHOPIFY_ORDERS_SAMPLE = INCLUDE / "sample" / "inbound" / "shopify_orders_export.csv"


# -- helpers ------------------------------------------------------------------------------------
def _run(dag, when, conf=None):
    dr = dag.test(logical_date=when, run_conf=conf or {})
    assert dr.state == "success", f"run ended {dr.state}"
    return dr


def _configure(tmp_path, monkeypatch, shop: str) -> None:
    """The project's configuration with ``shop.dialect: <shop>`` and that shop's section."""
    cfg = yaml.safe_load((INCLUDE / "config" / "passerelle.yaml").read_text(encoding="utf-8"))
    cfg["shop"]["dialect"] = shop
    if SHOP_SECTIONS[shop]:
        cfg[shop] = SHOP_SECTIONS[shop]
    path = tmp_path / "passerelle.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("PASSERELLE_CONFIG", str(path))


def _folders(ftp_server, flow: str) -> list[Path]:
    return sorted(p.parent for p in ftp_server.path(f"/outbound/{flow}").glob("*/manifest.json"))


def _files(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.iterdir() if p.name != "manifest.json"}


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A file as the shop's importer reads it (csv, comma, UTF-8): every row as long as the header."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert all(len(r) == len(header) for r in body), f"{path.name}: a row is not as long as the header"
    return header, [dict(zip(header, r, strict=True)) for r in body]


def assert_woocommerce_header(header: list[str]) -> None:
    """WooCommerce's exporter's columns, in its order, then numbered attribute columns."""
    plain = [h for h in header if not WOO_ATTRIBUTE.match(h)]
    assert set(plain) <= set(WOO_LABELS), set(plain) - set(WOO_LABELS)
    assert [WOO_LABELS.index(h) for h in plain] == sorted(WOO_LABELS.index(h) for h in plain)
    assert header[len(plain) :] == [h for h in header if WOO_ATTRIBUTE.match(h)]


def assert_shopify_header(header: list[str], kind: str = "product_columns") -> None:
    """Shopify's template columns in its order (the inventory file: all of them)."""
    template = SHOPIFY[kind]
    if kind == "inventory_columns":
        assert header == template
        return
    assert set(header) <= set(template), set(header) - set(template)
    assert [template.index(h) for h in header] == sorted(template.index(h) for h in header)


def _selected(erp) -> set[str]:
    return {r[0] for r in erp.execute(f"SELECT a.reference FROM erp.article a WHERE {RULE}")}


def _selected_variants(erp) -> set[str]:
    return {
        r[0]
        for r in erp.execute(
            f"SELECT v.reference FROM erp.variant v JOIN erp.article a ON a.id = v.article_id WHERE v.active AND {RULE}"
        )
    }


def _prices(erp, as_of: str) -> dict[str, tuple]:
    """reference -> (price incl. VAT, promotional price incl. VAT, promo start, end), from the price view."""
    erp.commit()  # the option is set for the transaction below only
    with erp.transaction():
        erp.execute("SELECT set_config('passerelle.as_of', %s, true)", (as_of,))
        rows = erp.execute(
            "SELECT key, price_incl_vat, promo_price_incl_vat, promo_starts_on, promo_ends_on FROM passerelle_src.price"
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def _money(value) -> str:
    return "" if value is None else format(Decimal(value).quantize(Decimal("0.01")), "f")


def _plain_article_without_promotion(erp) -> str:
    return erp.execute(
        f"SELECT a.reference FROM erp.article a WHERE {RULE} AND a.vat_rate = 20 "
        "AND NOT EXISTS (SELECT 1 FROM erp.variant v WHERE v.article_id = a.id) "
        "AND NOT EXISTS (SELECT 1 FROM erp.promotion p WHERE p.article_id = a.id) ORDER BY a.id LIMIT 1"
    ).fetchone()[0]


@pytest.fixture(params=["woocommerce", "shopify"])
def shop(request, tmp_path, monkeypatch):
    _configure(tmp_path, monkeypatch, request.param)
    return request.param


@pytest.fixture
def catalog(shop, airflow_db, connections):
    from passerelle.flows.catalog import catalog_dag

    return catalog_dag()


@pytest.fixture
def prices_stock(shop, airflow_db, connections):
    from passerelle.flows.exchange import prices_stock_dag

    return prices_stock_dag()


# -- catalog ------------------------------------------------------------------------------------
def test_catalog_full_then_delta(shop, catalog, erp, ftp_server):
    # A brand no article uses, sent on day 1 and gone on day 2: neither shop takes a brand file,
    # so its removal is forgotten without writing an empty one.
    erp.execute("INSERT INTO erp.brand (code, name) VALUES ('EPHEMERE', 'Marque éphémère')")
    erp.commit()
    _run(catalog, DAY1)
    (first,) = _folders(ftp_server, "catalog")
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["mode"] == "full" and manifest["dialect"] == shop
    files = _files(first)
    # One products file: families, brands and suppliers have no file of their own in these shops,
    # and variants are rows of their product's group. WooCommerce's importer creates or updates,
    # never both: a second file, of the rows to create, for the import without "Update existing
    # products"; in a first send, every row.
    products_new = ["products_new_0001.csv"] if shop == "woocommerce" else []
    assert sorted(files) == ["products_0001.csv", *products_new]
    header, rows = _read(files["products_0001.csv"])
    if products_new:
        assert _read(files["products_new_0001.csv"]) == (header, rows)
    selected, variants = _selected(erp), _selected_variants(erp)
    prices = _prices(erp, DAY1.date().isoformat())
    if shop == "woocommerce":
        assert_woocommerce_header(header)
        assert {r["SKU"] for r in rows if r["Type"] in ("simple", "variable")} == selected
        assert {r["SKU"] for r in rows if r["Type"] == "variation"} == variants
        assert all(r["Parent"] in selected for r in rows if r["Type"] == "variation")
        simple = [r for r in rows if r["Type"] == "simple"]
        assert simple and all(r["Regular price"] == _money(prices[r["SKU"]][0]) for r in simple)
    else:
        assert_shopify_header(header)
        with_variants = {
            r[0]
            for r in erp.execute(
                "SELECT a.reference FROM erp.article a WHERE EXISTS "
                "(SELECT 1 FROM erp.variant v WHERE v.article_id = a.id AND v.active)"
            )
        }
        assert {r["SKU"] for r in rows if r["SKU"]} == (selected - with_variants) | variants
        # A product during its promotion carries the sale (Price) and the regular price struck
        # through (Compare-at price): the article view's promotion is the price view's.
        single = {r["SKU"]: r for r in rows if r["Option1 value"] == "Default Title"}
        on_sale = [ref for ref in single if prices[ref][1] is not None and prices[ref][2] <= DAY1.date()]
        assert on_sale, "the seeded back office has promotions running on day 1"
        for ref in on_sale:
            assert (single[ref]["Price"], single[ref]["Compare-at price"]) == (
                _money(prices[ref][1]),
                _money(prices[ref][0]),
            ), ref
        plain = next(ref for ref in single if prices[ref][1] is None)
        assert (single[plain]["Price"], single[plain]["Compare-at price"]) == (_money(prices[plain][0]), "")

    changes = apply_demo_changes(erp)
    erp.execute("DELETE FROM erp.brand WHERE code = 'EPHEMERE'")
    erp.commit()
    _run(catalog, DAY2)
    second = _folders(ftp_server, "catalog")[1]
    manifest = json.loads((second / "manifest.json").read_text())
    assert manifest["mode"] == "delta"
    assert manifest["counts"]["brand"]["removed"] == 1
    art = manifest["counts"]["article"]
    assert (art["created"], art["changed"], art["removed"]) == (1, 3, 1)
    files = _files(second)
    # No empty brands_off file.
    assert sorted(files) == ["products_0001.csv", *products_new, "products_off_0001.csv"]
    assert sorted(f["name"] for f in manifest["files"]) == sorted(files)
    header, rows = _read(files["products_0001.csv"])
    sent = {r["SKU"] for r in rows if r["SKU"]}
    assert sent == set(changes["changed"]) | set(changes["created"])
    if products_new:
        # To create: the new product with its variations, and the variations of the changed ones
        # (a size the shop does not have yet); the changed products themselves only to update.
        _, new_rows = _read(files["products_new_0001.csv"])
        (created,) = changes["created"]
        assert {r["SKU"] for r in new_rows if r["Type"] != "variation"} == {created}
        assert [r for r in rows if r["Type"] == "variation" or r["SKU"] == created] == new_rows
    off_header, off = _read(files["products_off_0001.csv"])
    (removed,) = changes["removed"]
    name = erp.execute("SELECT name FROM erp.article WHERE reference = %s", (removed,)).fetchone()[0]
    if shop == "woocommerce":
        assert_woocommerce_header(off_header)
        assert [(r["SKU"], r["Published"]) for r in off] == [(removed, "-1")]  # a draft
        # A full send again, the shop holding the products: every row to create too, so that a
        # product the shop lacks (its creation skipped) is created this time.
        _run(catalog, DAY2.add(days=1), {"mode": "full"})
        third = _files(_folders(ftp_server, "catalog")[2])
        assert _read(third["products_new_0001.csv"]) == _read(third["products_0001.csv"])
    else:
        assert_shopify_header(off_header)
        # Shopify's update needs the Title: the name last sent, from the snapshot's label
        # ("<photos digest><TAB><name>"), not the digest.
        assert [(r["URL handle"], r["Title"], r["Status"]) for r in off] == [(removed.lower(), name, "archived")]


# -- prices and stock ---------------------------------------------------------------------------
def test_prices_and_stock(shop, prices_stock, erp, ftp_server):
    # A promotion starting on day 2: on day 1 WooCommerce schedules it, Shopify (no scheduled
    # sale) still sells at the regular price; on day 2 the row is sent again and Shopify starts it.
    ref = _plain_article_without_promotion(erp)
    erp.execute(
        "INSERT INTO erp.promotion (article_id, discount_pct, starts_on, ends_on) "
        "SELECT id, 25, '2026-11-21', '2026-11-30' FROM erp.article WHERE reference = %s",
        (ref,),
    )
    erp.commit()
    _run(prices_stock, DAY1.add(hours=8))
    (first,) = _folders(ftp_server, "prices_stock")
    assert json.loads((first / "manifest.json").read_text())["dialect"] == shop
    files = _files(first)
    selected, variants = _selected(erp), _selected_variants(erp)
    with_variants = {
        r[0]
        for r in erp.execute(
            "SELECT a.reference FROM erp.article a WHERE EXISTS (SELECT 1 FROM erp.variant v WHERE v.article_id = a.id "
            "AND v.active)"
        )
    }
    prices = _prices(erp, "2026-11-21")
    regular, promo = _money(prices[ref][0]), _money(prices[ref][1])
    assert Decimal(promo) < Decimal(regular)
    if shop == "woocommerce":
        assert sorted(files) == ["products_prices_0001.csv", "products_stock_0001.csv", "variations_stock_0001.csv"]
        for name in files:
            assert_woocommerce_header(_read(files[name])[0])
        _, price_rows = _read(files["products_prices_0001.csv"])
        assert {r["SKU"] for r in price_rows} == selected
        row = next(r for r in price_rows if r["SKU"] == ref)
        assert (
            row["Regular price"],
            row["Sale price"],
            row["Date sale price starts"],
            row["Date sale price ends"],
        ) == (regular, promo, "2026-11-21", "2026-12-01")  # the end: the day after the last (woocommerce#35321)
        _, stock = _read(files["products_stock_0001.csv"])
        assert {r["SKU"] for r in stock} == selected - with_variants
        _, variation_stock = _read(files["variations_stock_0001.csv"])
        assert {r["SKU"] for r in variation_stock} == variants
        assert all(
            re.fullmatch(r"\d+", r["Stock"]) and r["In stock?"] == ("1" if int(r["Stock"]) else "0")
            for r in stock + variation_stock
        )
    else:
        assert sorted(files) == ["inventory_0001.csv", "inventory_variants_0001.csv", "products_prices_0001.csv"]
        header, price_rows = _read(files["products_prices_0001.csv"])
        assert_shopify_header(header)
        # Products with variants get their prices with their product group, in the catalog.
        assert {r["SKU"] for r in price_rows} == selected - with_variants
        row = next(r for r in price_rows if r["SKU"] == ref)
        assert (row["Price"], row["Compare-at price"]) == (regular, "")
        for name, expected in (
            ("inventory_0001.csv", selected - with_variants),
            ("inventory_variants_0001.csv", variants),
        ):
            header, stock = _read(files[name])
            assert_shopify_header(header, "inventory_columns")
            assert {r["SKU"] for r in stock} == expected
            assert {r["Location"] for r in stock} == {LOCATION}
            assert all(re.fullmatch(r"\d+", r["On hand (new)"]) for r in stock)

    _run(prices_stock, DAY2.add(hours=8))
    second = _folders(ftp_server, "prices_stock")[1]
    files = _files(second)
    assert sorted(files) == ["products_prices_0001.csv"]  # the promotion started: that row only
    _, price_rows = _read(files["products_prices_0001.csv"])
    assert [r["SKU"] for r in price_rows] == [ref]
    if shop == "shopify":
        assert (price_rows[0]["Price"], price_rows[0]["Compare-at price"]) == (promo, regular)
    else:
        assert (price_rows[0]["Regular price"], price_rows[0]["Sale price"]) == (regular, promo)


# -- the round trip -----------------------------------------------------------------------------
def _shopify_orders_export(products: list[dict[str, str]], orders: list[tuple[str, list[tuple[str, int]]]]) -> bytes:
    """Shopify's "Export orders" file (the real column layout of the project's sample) for
    *orders*: (order name, [(SKU, quantity)...]), each line named and priced as the shop shows the
    product Passerelle published: ``Title`` for a product's only variant, ``Title - M / Bleu``
    for a variant; prices include the 20 % VAT, as a French Shopify store's do."""
    with open(SHOPIFY_ORDERS_SAMPLE, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames)
        sample = list(reader)
    first_line, other_line = sample[0], sample[1]  # an order's first row, and a further line's
    assert first_line["Name"] == other_line["Name"] and other_line["Financial Status"] == ""
    titles: dict[str, str] = {}
    for row in products:
        if row["Title"]:
            titles[row["URL handle"]] = row["Title"]
    by_sku = {row["SKU"]: row for row in products if row["SKU"]}
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for n, (name, lines) in enumerate(orders):
        gross = sum(Decimal(by_sku[sku]["Price"]) * qty for sku, qty in lines)
        shipping = Decimal("4.90")
        taxes = ((gross + shipping) * 20 / 120).quantize(Decimal("0.01"), ROUND_HALF_UP)
        for i, (sku, qty) in enumerate(lines):
            product = by_sku[sku]
            options = [product[c] for c in ("Option1 value", "Option2 value") if product[c]]
            label = titles[product["URL handle"]]
            if options != ["Default Title"]:
                label += " - " + " / ".join(options)
            row = dict(first_line if i == 0 else other_line)
            row.update(
                {
                    "Name": name,
                    "Email": f"client.{n}@exemple.fr",
                    "Id": f"77000{n}",
                    "Lineitem quantity": str(qty),
                    "Lineitem name": label,
                    "Lineitem price": product["Price"],
                    "Lineitem compare at price": product["Compare-at price"],
                    "Lineitem sku": sku,
                    "Lineitem discount": "0.00",
                    "Lineitem taxable": "true",
                    "Vendor": "",
                }
            )
            if i == 0:
                row.update(
                    {
                        "Subtotal": f"{gross:.2f}",
                        "Shipping": f"{shipping:.2f}",
                        "Taxes": f"{taxes:.2f}",
                        "Total": f"{gross + shipping:.2f}",
                        "Discount Code": "",
                        "Discount Amount": "0.00",
                        "Tax 1 Name": "FR TVA 20%",
                        "Tax 1 Value": f"{taxes:.2f}",
                        "Created at": "2026-11-20 14:00:00 +0100",
                        "Paid at": "2026-11-20 14:00:04 +0100",
                    }
                )
            writer.writerow(row)
    return out.getvalue().encode("utf-8")


@pytest.mark.parametrize("shop", ["shopify"], indirect=True)
def test_shopify_round_trip(shop, catalog, erp, ftp_server):
    """The catalog Passerelle sent to Shopify, read back as Shopify exports its orders,
    integrates with every line matched to the back office's article or variant."""
    from passerelle.core.integrate import integrate_file

    _run(catalog, DAY1)
    (folder,) = _folders(ftp_server, "catalog")
    _, products = _read(folder / "products_0001.csv")
    at_20 = {
        r[0]
        for r in erp.execute(
            "SELECT coalesce(v.reference, a.reference) "
            "FROM erp.article a LEFT JOIN erp.variant v ON v.article_id = a.id "
            "AND v.active WHERE a.vat_rate = 20"
        )
    }
    plain = [r["SKU"] for r in products if r["Option1 value"] == "Default Title" and r["SKU"] in at_20]
    variants = [r["SKU"] for r in products if r["SKU"] and r["Option1 value"] != "Default Title" and r["SKU"] in at_20]
    assert len(plain) >= 3 and len(variants) >= 3
    orders = [
        ("#3001", [(plain[0], 1), (variants[0], 2)]),
        ("#3002", [(variants[1], 1), (variants[2], 1), (plain[1], 3)]),
        ("#3003", [(plain[2], 1)]),
    ]
    data = _shopify_orders_export(products, orders)

    erp.commit()  # the integration runs its own transaction
    result = integrate_file(erp, "shopify_orders_export_roundtrip.csv", data)
    assert result.status == "integrated", result
    counts = result.counts
    assert counts["rows_read"] == sum(len(lines) for _, lines in orders) == counts["rows_integrated"]
    assert counts["rows_read"] == counts["rows_integrated"] + counts["rows_quarantined"] + counts["rows_ignored"]
    assert erp.execute("SELECT count(*) FROM passerelle.quarantine").fetchone()[0] == 0
    stored = erp.execute(
        "SELECT o.shop_order_id, coalesce(v.reference, a.reference), ol.quantity FROM erp.sales_order o "
        "JOIN erp.sales_order_line ol ON ol.order_id = o.id JOIN erp.article a ON a.id = ol.article_id "
        "LEFT JOIN erp.variant v ON v.id = ol.variant_id WHERE o.origin = 'web' AND o.shop_order_id LIKE '%%300_' "
        "ORDER BY 1, 2"
    ).fetchall()
    expected = sorted((name, sku, qty) for name, lines in orders for sku, qty in lines)
    assert [(re.sub(r"\D", "", o), sku, int(q)) for o, sku, q in stored] == [
        (re.sub(r"\D", "", name), sku, qty) for name, sku, qty in expected
    ]

    # What the back office then tells the shop about these orders: neither WooCommerce's nor
    # Shopify's importer takes order statuses, so they go in the generic exchange file (for an
    # app or a script on the shop's side) instead of failing the order_status flow.
    from passerelle.config import load_settings
    from passerelle.core.dialects import exchange_dialect
    from passerelle.core.exchange import build_exchange, order_status_entities
    from passerelle.core.export import iter_outbox

    batch, files = build_exchange(
        erp,
        flow="order_status",
        run_key="round-trip",
        entities=order_status_entities(),
        dialect=exchange_dialect("shopify", load_settings()),  # the shop's configuration (typed)
        settings={},
    )
    assert [f["name"] for f in files] == ["order_statuses_0001.csv"]
    ((_, content, _),) = list(iter_outbox(erp, batch.id))
    statuses = list(csv.DictReader(io.StringIO(content.decode("utf-8"))))
    assert {re.sub(r"\D", "", r["shop_order_id"]) for r in statuses} >= {"3001", "3002", "3003"}


def test_demo_configuration_per_shop(tmp_path):
    """``make demo SHOP=<shop>``: the project's configuration with that dialect, valid as the DAGs read it."""
    from passerelle.config import load_settings
    from passerelle.core.dialects import names
    from passerelle_demo.run import demo_config, demo_samples
    from passerelle_demo.seed import DEMO_INBOUND

    assert {"generic", "prestashop", "woocommerce", "shopify"} <= set(names())
    for shop in names():
        settings = load_settings(demo_config(shop, tmp_path / shop, inbound=DEMO_INBOUND))
        assert settings.shop.dialect == shop
        # The seeded back office's gift-card article and walk-in customer (seed_inbound_setup).
        assert (settings.inbound.gift_card_article, settings.inbound.walk_in_customer) == ("CARTE-CADEAU", "COMPTOIR")
    # The shop drops the common samples and its own orders export, which its header makes its kind.
    from passerelle.core.dialects import orders_kind
    from passerelle.core.inbound import read_inbound

    for shop in ("woocommerce", "prestashop"):
        own = [p for p in demo_samples(shop) if p.parent.name == shop]
        assert own and all(read_inbound(p.name, p.read_bytes()).kind == orders_kind(shop) for p in own)
        assert not [p for p in demo_samples("generic") if p.parent.name == shop]
    shopify = yaml.safe_load((tmp_path / "shopify" / "passerelle.yaml").read_text(encoding="utf-8"))
    assert shopify["shopify"]["location"] == LOCATION  # the inventory file names a location


# -- the round trip for PrestaShop, WooCommerce and generic --------------------------------------
_SKU_COLUMNS = ("SKU", "Reference #", "Reference", "reference")
_DATE = {
    "woocommerce": re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}"),
    "prestashop": re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"),
}


def _published_skus(folder: Path) -> set[str]:
    """The SKUs the shop holds after the catalog: every reference of the files sent (deactivations
    aside), read as the shop's importer reads them (its delimiter)."""
    skus: set[str] = set()
    for path in folder.glob("*.csv"):
        if "_off" in path.name:
            continue
        text = path.read_text(encoding="utf-8")
        header = text.split("\n", 1)[0]
        rows = list(csv.DictReader(io.StringIO(text), delimiter=";" if header.count(";") > header.count(",") else ","))
        for row in rows:
            skus |= {row[c] for c in _SKU_COLUMNS if row.get(c)}
    return skus


def _round_trip_orders(erp, published: set[str], shop: str):
    """Orders of what the shop received: plain articles and variants at 20 %, an article at 5.5 %;
    one variant line without its SKU (a shop that lost it: matched by its title), but in the
    generic file, whose lines always name their article."""
    from shop_exports import Line, Order

    rows = erp.execute(
        "SELECT coalesce(v.reference, a.reference), a.name, a.vat_rate, "
        "a.price_excl_vat + coalesce(v.price_impact, 0), v.size, v.colour "
        "FROM erp.article a LEFT JOIN erp.variant v ON v.article_id = a.id AND v.active "
        f"WHERE {RULE} ORDER BY a.id, v.id"
    ).fetchall()
    lines = {
        ref: Line(ref, name, 1, Decimal(price), Decimal(vat), tuple(o for o in (size, colour) if o))
        for ref, name, vat, price, size, colour in rows
        if ref in published
    }
    plain = [line for line in lines.values() if not line.options and line.vat == 20]
    variants = [line for line in lines.values() if line.options and line.vat == 20]
    reduced = [line for line in lines.values() if not line.options and line.vat == Decimal("5.5")]
    assert len(plain) >= 3 and len(variants) >= 3 and reduced

    def one(line, qty, written=True):
        return replace(line, quantity=qty, sku_written=written)

    return [
        Order("4101", [one(plain[0], 1), one(variants[0], 2)], email="client.1@exemple.fr"),
        Order(
            "4102",
            [one(variants[1], 1), one(variants[2], 1, shop == "generic"), one(plain[1], 3)],
            email="client.2@exemple.fr",
            company="Atelier Leroy SARL",
            region="Loire-Atlantique",
        ),
        Order("4103", [one(plain[2], 1)], email="client.3@exemple.fr", status="validated"),
        Order("4104", [one(reduced[0], 2)], email="client.4@exemple.fr"),
    ]


def _check_against_published_columns(shop: str, data: bytes) -> None:
    """The file as the shop writes it: its published column list, in its order, and its value formats."""
    from shop_exports import PRESTASHOP, WOOCOMMERCE

    if shop == "generic":
        from passerelle.core.inbound import GENERIC_ORDER_COLUMNS

        assert data.decode("utf-8").split("\n", 1)[0].split(",") == GENERIC_ORDER_COLUMNS
        return
    reference = WOOCOMMERCE if shop == "woocommerce" else PRESTASHOP
    rows = list(csv.reader(io.StringIO(data.decode("utf-8")), delimiter=reference["separator"]))
    assert rows[0] == reference["columns"]
    body = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    date = "Order Date" if shop == "woocommerce" else "date_add"
    assert all(_DATE[shop].fullmatch(r[date]) for r in body)
    amounts = (
        WOOCOMMERCE["money_columns"]
        if shop == "woocommerce"
        else [c for c in PRESTASHOP["columns"] if c.startswith(("total_", "unit_price"))]
    )
    shape = re.compile(r"\d+\.\d{2}" if shop == "woocommerce" else r"\d+\.\d{6}")
    assert all(shape.fullmatch(r[c]) for r in body for c in amounts if r[c]), "decimals with '.', no thousands"


@pytest.mark.parametrize("shop", ["prestashop", "woocommerce", "generic"], indirect=True)
def test_round_trip(shop, catalog, erp, ftp_server):
    """The catalog Passerelle sent to the shop, read back as the shop exports its orders,
    integrates with every line matched to the back office's article or variant."""
    from passerelle.core.dialects import orders_kind
    from passerelle.core.inbound import read_inbound
    from passerelle.core.integrate import integrate_file
    from shop_exports import EXPORTS

    _run(catalog, DAY1)
    (folder,) = _folders(ftp_server, "catalog")
    orders = _round_trip_orders(erp, _published_skus(folder), shop)
    data = EXPORTS[shop](orders)
    _check_against_published_columns(shop, data)
    assert read_inbound("export.csv", data).kind == orders_kind(shop)  # the shop's own export, by its header

    erp.commit()  # the integration runs its own transaction
    result = integrate_file(erp, f"{shop}_orders_roundtrip.csv", data)
    assert result.status == "integrated", result
    counts = result.counts
    rows = sum(len(o.lines) for o in orders)
    assert counts["rows_read"] == rows == counts["rows_integrated"]
    assert counts["rows_read"] == counts["rows_integrated"] + counts["rows_quarantined"] + counts["rows_ignored"]
    assert erp.execute("SELECT count(*) FROM passerelle.quarantine").fetchone()[0] == 0
    stored = erp.execute(
        "SELECT o.shop_order_id, coalesce(v.reference, a.reference), ol.quantity, ol.vat_rate, o.vat_disagreement "
        "FROM erp.sales_order o JOIN erp.sales_order_line ol ON ol.order_id = o.id "
        "JOIN erp.article a ON a.id = ol.article_id LEFT JOIN erp.variant v ON v.id = ol.variant_id "
        "WHERE o.origin = 'web' AND o.shop_order_id LIKE '410_' ORDER BY 1, 2"
    ).fetchall()
    expected = sorted((o.number, line.sku, line.quantity, line.vat, None) for o in orders for line in o.lines)
    assert [(o, sku, int(q), Decimal(v).normalize(), d) for o, sku, q, v, d in stored] == [
        (o, sku, q, v.normalize(), d) for o, sku, q, v, d in expected
    ]
    numbers = {r[0] for r in erp.execute("SELECT number FROM erp.sales_order WHERE shop_order_id LIKE '410_'")}
    assert numbers == {"WEB-4101", "WEB-4102", "WEB-4103", "WEB-4104"}
