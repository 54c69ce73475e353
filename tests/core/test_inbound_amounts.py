"""Every amount checked (pure, no database): non-ASCII digits refused, a discount larger than its
line refused, Shopify orders that do not add up to the shop's own Subtotal, Total and Taxes
refused with both figures (a file cut at a row boundary among them), and what the real Shopify
export sample reads as."""

from __future__ import annotations

import csv
import io

import pandas as pd

from passerelle import INCLUDE
from passerelle.core.inbound import read_inbound
from passerelle.core.integrate.rules import order_numbers, resolve_lines, resolve_vat

SAMPLES = INCLUDE / "sample" / "inbound"
REAL = (SAMPLES / "shopify_orders_export_real.csv").read_bytes()
GENERIC = (
    "shop_order_id,order_date,status,email,sku,quantity,unit_price_excl_vat,vat_rate,line_discount_excl_vat\n"
    "W1,2026-11-20,paid,a@b.fr,ART-000001,2,{price},20,{discount}\n"
)


def shopify_file(rows: list[dict]) -> bytes:
    header = (SAMPLES / "shopify_orders_export.csv").read_text(encoding="utf-8").split("\n", 1)[0].split(",")
    buf = io.StringIO()
    w = csv.DictWriter(buf, header, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


ORDER = {
    "Name": "#7001",
    "Email": "a@b.fr",
    "Financial Status": "paid",
    "Currency": "EUR",
    "Subtotal": "30.00",
    "Shipping": "5.00",
    "Taxes": "5.83",
    "Total": "35.00",
    "Created at": "2026-11-20 10:15:00 +0100",
    "Tax 1 Name": "FR TVA 20%",
    "Tax 1 Value": "5.83",
}
LINE_A = {
    "Name": "#7001",
    "Lineitem quantity": "2",
    "Lineitem price": "10.00",
    "Lineitem sku": "ART-000001",
    "Lineitem taxable": "true",
}
LINE_B = {
    "Name": "#7001",
    "Lineitem quantity": "1",
    "Lineitem price": "10.00",
    "Lineitem sku": "ART-000010",
    "Lineitem taxable": "true",
}


def test_non_ascii_digits_are_refused_not_zeroed():
    p = read_inbound("o.csv", GENERIC.format(price="４.08", discount="0").encode())
    assert p.orders.empty
    assert p.rejects[["field", "value"]].values.tolist()[0] == ["unit_price_excl_vat", "４.08"]
    assert p.rejects.reason.iloc[0] == "not a number: expected a number such as 12.50"
    s = read_inbound("s.csv", shopify_file([{**ORDER, **LINE_A, "Lineitem price": "１0.00"}, LINE_B]))
    assert s.orders.empty and "Lineitem price" in set(s.rejects.field)


def test_a_discount_larger_than_its_line_is_refused():
    p = read_inbound("o.csv", GENERIC.format(price="10.00", discount="25.00").encode())
    assert p.orders.empty
    assert p.rejects[["field", "value", "reason"]].values.tolist() == [
        [
            "line_discount_excl_vat",
            "25.00",
            "discount larger than its line (20.00 = quantity x price): refused, not clipped",
        ]
    ]
    assert read_inbound("o.csv", GENERIC.format(price="10.00", discount="20.00").encode()).rejects.empty


def test_shopify_orders_must_add_up_to_the_shops_own_totals():
    good = read_inbound("s.csv", shopify_file([{**ORDER, **LINE_A}, LINE_B]))
    assert good.rejects.empty and good.orders.total_incl_vat.tolist() == [35.0]
    # Cut at a row boundary: the order's second line is missing, its Subtotal is not.
    cut = read_inbound("s.csv", shopify_file([{**ORDER, **LINE_A}]))
    assert cut.orders.empty
    assert cut.rejects[["line", "field", "value"]].values.tolist() == [[2, "Subtotal", "30.00"]]
    assert cut.rejects.reason.iloc[0].startswith("Subtotal 30.00 but the order's lines in this file add up to 20.00")
    # Total not Subtotal + Shipping (+ Taxes), and tax lines not adding up to Taxes.
    bad = read_inbound("s.csv", shopify_file([{**ORDER, "Total": "40.00", "Tax 1 Value": "4.00", **LINE_A}, LINE_B]))
    reasons = dict(zip(bad.rejects.field, bad.rejects.reason, strict=True))
    assert reasons["Total"].startswith(
        "Total 40.00 but Subtotal + Shipping = 35.00 (prices including taxes), + Taxes = 40.83 (excluding them)"
    )
    assert reasons["Taxes"].startswith("Taxes 5.83 but the tax lines (Tax 1 Value ...) add up to 4.00")
    assert reasons["Name"] == "order #7001 has a rejected line 2"
    # No Subtotal (its column lost): whether prices include taxes cannot be told; refused, not guessed.
    alone = read_inbound("s.csv", shopify_file([{**ORDER, "Subtotal": "", **LINE_A}, LINE_B]))
    assert alone.orders.empty
    assert alone.rejects[["line", "field", "value"]].values.tolist()[0] == [2, "Total", "35.00"]
    assert alone.rejects.reason.iloc[0].startswith(
        "Total 35.00 but no Subtotal (Shopify writes it on the order's "
        "first row; the order's lines in this file + Shipping = 35.00)"
    )


def test_shopify_orders_with_import_duties_are_refused_for_them():
    """Shopify Markets' duties paid at checkout are in the Total (the real export's ``Duties``
    column): the back office's order has no place for them, so the order is refused saying so,
    on Duties, not with 'export the order again'. Duties that do not explain the Total change
    nothing: the Total is refused as before."""
    dutiable = {**ORDER, "Total": "43.40", "Duties": "8.40"}  # Subtotal 30 + Shipping 5 + Duties
    p = read_inbound("s.csv", shopify_file([{**dutiable, **LINE_A}, LINE_B]))
    assert p.orders.empty
    reasons = dict(zip(p.rejects.field, p.rejects.reason, strict=True))
    assert reasons["Duties"] == (
        "Duties 8.40: the order's Total 43.40 includes import duties paid at checkout, which the back "
        "office's order has no place for; integrate this order by hand"
    )
    assert "Total" not in reasons
    # Taxes excluded from the prices: Subtotal + Shipping + Taxes + Duties.
    excluded = read_inbound("s.csv", shopify_file([{**dutiable, "Total": "49.23", **LINE_A}, LINE_B]))
    assert set(excluded.rejects.field) == {"Duties", "Name"}
    # Duties that do not make up the difference: the Total's own reason.
    other = read_inbound("s.csv", shopify_file([{**dutiable, "Total": "50.00", **LINE_A}, LINE_B]))
    assert dict(zip(other.rejects.field, other.rejects.reason, strict=True))["Total"].startswith("Total 50.00 but")
    # Duties of 0 (the column as most orders have it) change nothing.
    assert read_inbound("s.csv", shopify_file([{**ORDER, "Duties": "0.00", **LINE_A}, LINE_B])).rejects.empty


def test_the_real_export_as_read():
    p = read_inbound("orders_export_1.csv", REAL)
    assert p.rows_read == 28 and p.counts["orders"] == 18
    # Only the order cut at the end of the file is refused by the parser; lines without SKU and
    # orders without e-mail are the integration's to match.
    assert set(p.rejects.shop_order_id) == {"#1028"}
    assert sorted(p.lines.loc[p.lines.sku == "", "label"]) == [
        "Bougie artisanale vanille",
        "Carte-cadeau - 50 €",
        "Chemisier en coton bio - L / ROUGE",
        "Gift Card - €25",
        "Retouche ourlet",
    ]
    o = p.orders.set_index("shop_order_id")
    assert o.email.isna().sum() == 2 and {"#1013", "#1014"} == set(o.index[o.email.isna()])
    assert o.loc["#1012", "vat_rates"] == "5.5;20" and o.loc["#1015", "vat_rates"] == "20"
    a = p.addresses.set_index(["shop_order_id", "kind"])
    assert a.loc[("#1022", "billing"), ["region", "country", "postcode"]].tolist() == ["MI", "IT", "20123"]
    assert a.loc[("#1010", "billing"), ["first_name", "last_name", "company"]].tolist() == [
        "Camille",
        "Leroy",
        "Atelier Leroy SARL",
    ]
    assert order_numbers(pd.Series(["#1012", "WEB-7", "100231"])).tolist() == ["WEB-1012", "WEB-7", "WEB-100231"]


def test_lines_without_sku_and_vat_resolved_without_a_database():
    p = read_inbound("orders_export_1.csv", REAL)
    titles = {"chemisier en coton bio - l / rouge": [("ART-000002-L-ROUGE", 38.63), ("ART-000051-L-ROUGE", 17.10)]}
    r = resolve_lines(
        p, mappings={"retouche ourlet": "SERVICE-RETOUCHE"}, titles=titles, gift_card_article="CARTE-CADEAU"
    )
    got = r.lines.set_index("label")[["sku", "matched_by"]]
    assert got.loc["Chemisier en coton bio - L / ROUGE"].tolist() == ["ART-000002-L-ROUGE", "title"]
    assert got.loc["Carte-cadeau - 50 €"].tolist() == ["CARTE-CADEAU", "gift_card"]
    assert got.loc["Gift Card - €25"].tolist() == ["CARTE-CADEAU", "gift_card"]
    assert got.loc["Retouche ourlet"].tolist() == ["SERVICE-RETOUCHE", "mapping"]
    assert "Bougie artisanale vanille" not in got.index  # #1019 quarantined whole
    assert set(r.rejects.shop_order_id) == {"#1019", "#1028"}
    rates = {"ART-000006": 5.5, "ART-000009": 20.0, "ART-000007": 20.0, "ART-000010": 20.0, "CARTE-CADEAU": 0.0}
    v = resolve_vat(r, rates)
    twelve = v.lines[v.lines.shop_order_id == "#1012"]
    assert twelve.vat_rate.tolist() == [5.5, 20.0] and twelve.discount_excl_vat.tolist() == [0.0, 4.54]
    o = v.orders.set_index("shop_order_id")
    assert o.loc["#1012", "shipping_excl_vat"] == 5.75
    assert o.loc["#1015", "vat_disagreement"] == "VAT differs: line 10 ART-000007: shop 0%, back office 20%"
    # A back-office rate that is none of the order's rates is a disagreement too.
    w = resolve_vat(r, {**rates, "ART-000006": 10.0})
    assert w.orders.set_index("shop_order_id").loc["#1012", "vat_disagreement"] == (
        "VAT differs: line 5 ART-000006: shop 5.5%/20%, back office 10%"
    )


def test_generic_orders_must_add_up_to_their_stated_payment():
    """The generic file's only stated total is payment_amount: an order whose lines, shipping and
    discount do not make it (a shipping column lost, a line cut) is refused with both figures; one
    that does is taken, and so is one with no amount stated (it defaults to the computed total)."""
    header = (
        "shop_order_id,order_date,status,email,sku,quantity,unit_price_excl_vat,vat_rate,shipping_excl_vat,"
        "payment_amount\n"
    )
    good = header + "W1,2026-11-20,paid,a@b.fr,ART-000001,2,10.00,20,5.00,30.00\n"
    p = read_inbound("o.csv", good.encode())
    assert p.rejects.empty and p.orders.total_incl_vat.tolist() == [30.0]
    lost = header.replace("shipping_excl_vat", "shipping_lost") + good.split("\n")[1] + "\n"
    p = read_inbound("o.csv", lost.encode())
    assert p.orders.empty
    assert p.rejects[["line", "field", "value", "reason"]].values.tolist() == [
        [
            2,
            "payment_amount",
            "30.00",
            "payment_amount 30.00 but the order works out at 24.00 (lines, shipping and "
            "discount, incl. VAT): a line or a column is missing or altered; export the "
            "order again",
        ]
    ]
    cut = header + "W1,2026-11-20,paid,a@b.fr,ART-000001,2,10.00,20,0,36.00\n"  # its second line lost
    assert read_inbound("o.csv", cut.encode()).rejects.field.tolist() == ["payment_amount"]
    unstated = header + "W1,2026-11-20,paid,a@b.fr,ART-000001,2,10.00,20,5.00,\n"
    assert read_inbound("o.csv", unstated.encode()).rejects.empty
    rounded = header + "W1,2026-11-20,paid,a@b.fr,ART-000001,3,3.33,5.5,0,10.54\n"  # 10.539 rounded by the shop
    assert read_inbound("o.csv", rounded.encode()).rejects.empty


def prestashop_rows() -> tuple[list[str], list[dict[str, str]]]:
    """The PrestaShop sample export (SQL Manager, the documented query): header and rows."""
    text = (SAMPLES / "prestashop" / "request_sql_1.csv").read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text), delimiter=";")
    return list(reader.fieldnames or []), list(reader)


def prestashop_file(header: list[str], rows: list[dict[str, str]]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, header, delimiter=";", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def test_prestashop_orders_split_from_one_cart_are_refused_saying_so():
    """PrestaShop makes one order per package of a cart (PaymentModule::validateOrder), all under
    the cart's reference, the key Passerelle reads: their rows are refused with that reason (not
    only 'export the order again', which never helps); the file's other orders are kept."""
    header, rows = prestashop_rows()
    first = [r for r in rows if r["id_order"] == "1"]
    # The second package: its own carrier, one line, its own totals (43.13 with its shipping).
    package = [
        {
            **first[0],
            "id_order": "11",
            "id_order_detail": "91",
            "carrier": "DPD",
            "product_quantity": "4",
            "total_products": "31.840000",
            "total_products_wt": "38.208000",
            "total_price_tax_excl": "31.840000",
            "total_price_tax_incl": "38.208000",
            "total_paid_tax_excl": "35.940000",
            "total_paid_tax_incl": "43.130000",
        }
    ]
    p = read_inbound("request_sql_1.csv", prestashop_file(header, rows + package))
    assert "QWXKBNAHT" not in set(p.orders.shop_order_id)
    mine = p.rejects[p.rejects.shop_order_id == "QWXKBNAHT"]
    # Not also "export the order again": the totals of two orders taken as one are not checked.
    assert not mine.reason.str.contains("export the order again").any()
    split = p.rejects[p.rejects.field == "id_order"]
    assert set(split.shop_order_id) == {"QWXKBNAHT"} and len(split) == len(first) + 1
    assert set(split.reason) == {
        "PrestaShop split one cart into 2 orders (id_order 1, 11) under the same reference: add orders_in_cart to "
        "the SQL Manager query (docs/formats/prestashop.md) and export these orders again, to integrate each as its "
        "own order"
    }
    alone = read_inbound("request_sql_1.csv", prestashop_file(header, rows))
    assert set(p.orders.shop_order_id) == set(alone.orders.shop_order_id) - {"QWXKBNAHT"}
    assert "id_order" not in set(alone.rejects.field)


def split_cart() -> tuple[list[str], list[dict[str, str]], list[dict[str, str]]]:
    """The sample's header and rows, the first order QWXKBNAHT as the first package of a cart split
    in two, and its second package (its own carrier, one line, its own totals: 43.13 with its
    shipping), each row with the query's orders_in_cart."""
    header, rows = prestashop_rows()
    header = [*header, "orders_in_cart"]
    rows = [{**r, "orders_in_cart": "2" if r["reference"] == "QWXKBNAHT" else "1"} for r in rows]
    first = [r for r in rows if r["id_order"] == "1"]
    package = [
        {
            **first[0],
            "id_order": "11",
            "id_order_detail": "91",
            "carrier": "DPD",
            "product_quantity": "4",
            "total_products": "31.840000",
            "total_products_wt": "38.208000",
            "total_price_tax_excl": "31.840000",
            "total_price_tax_incl": "38.208000",
            "total_paid_tax_excl": "35.940000",
            "total_paid_tax_incl": "43.130000",
        }
    ]
    return header, rows, package


def test_prestashop_packages_of_a_split_cart_are_each_their_own_order():
    """With the query's orders_in_cart, each order PrestaShop made of one cart is keyed
    <reference>-<id_order>, in a file with its sibling or alone: each adds up as its own order."""
    header, rows, package = split_cart()
    both = read_inbound("request_sql_1.csv", prestashop_file(header, rows + package))
    assert both.rejects.empty
    totals = dict(zip(both.orders.shop_order_id, both.orders.total_incl_vat, strict=True))
    assert totals["QWXKBNAHT-11"] == 43.13 and "QWXKBNAHT-1" in totals and "QWXKBNAHT" not in totals
    assert both.lines.loc[both.lines.shop_order_id == "QWXKBNAHT-11", "quantity"].tolist() == [4]
    alone = read_inbound("request_sql_1.csv", prestashop_file(header, package))
    assert alone.rejects.empty and alone.orders.shop_order_id.tolist() == ["QWXKBNAHT-11"]
    # An order alone in its cart keeps its reference as its key.
    assert {"PLMZRTYUA", "GHTYRBVCX"} <= set(both.orders.shop_order_id)


def test_prestashop_orders_with_gift_wrapping_are_refused_saying_so():
    """Gift wrapping is in total_paid_tax_incl and in no line (Cart::ONLY_WRAPPING): with the
    query's total_wrapping_tax_incl, such an order is refused on it, with that reason; without the
    column, the total's own reason, as before."""
    header, rows = prestashop_rows()
    wrapped = [{**r, "total_paid_tax_incl": "74.600000"} if r["id_order"] == "1" else r for r in rows]
    with_column = [{**r, "total_wrapping_tax_incl": "2.40" if r["id_order"] == "1" else "0.00"} for r in wrapped]
    p = read_inbound("request_sql_1.csv", prestashop_file([*header, "total_wrapping_tax_incl"], with_column))
    mine = p.rejects[p.rejects.shop_order_id == "QWXKBNAHT"]
    reasons = dict(zip(mine.field, mine.reason, strict=True))
    assert reasons["total_wrapping_tax_incl"] == (
        "total_wrapping_tax_incl 2.40: the order's total_paid_tax_incl 74.60 includes gift wrapping, which the "
        "back office's order has no place for; integrate this order by hand"
    )
    assert "total_paid_tax_incl" not in reasons
    before = read_inbound("request_sql_1.csv", prestashop_file(header, wrapped))
    mine = before.rejects[before.rejects.shop_order_id == "QWXKBNAHT"]
    reasons = dict(zip(mine.field, mine.reason, strict=True))
    assert reasons["total_paid_tax_incl"].startswith("total_paid_tax_incl 74.60 but the order's lines")


def test_woocommerce_orders_with_fees_are_refused_saying_so():
    """A WooCommerce fee (a payment surcharge) is in Order Total Amount, its tax in Order Total Tax
    Amount, and in no row: with the plugin's optional Order Total Fee, such an order is refused on
    that column with that reason; without it, the total's own reason, as before."""
    from decimal import Decimal

    from shop_exports import Line, Order, woocommerce_export

    order = Order("5401", [Line("ART-000001", "Article", 2, Decimal("10.00"), Decimal("20"))])
    rows = list(csv.DictReader(io.StringIO(woocommerce_export([order]).decode())))
    header = [*rows[0].keys(), "Order Total Fee"]
    fee, fee_tax = Decimal("2.50"), Decimal("0.50")
    for r in rows:
        r["Order Total Amount"] = f"{Decimal(r['Order Total Amount']) + fee + fee_tax:.2f}"
        r["Order Total Tax Amount"] = f"{Decimal(r['Order Total Tax Amount']) + fee_tax:.2f}"
        r["Order Total Fee"] = f"{fee:.2f}"

    def woo(columns: list[str]) -> bytes:
        buf = io.StringIO()
        w = csv.DictWriter(buf, columns, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue().encode()

    p = read_inbound("woocommerce_orders.csv", woo(header))
    assert p.orders.empty
    total = rows[0]["Order Total Amount"]
    assert dict(zip(p.rejects.field, p.rejects.reason, strict=True)) == {
        "Order Total Fee": f"Order Total Fee 2.50: the order's Order Total Amount {total} includes fees, which are in "
        "no line of the export and the back office's order has no place for; integrate this order by hand"
    }
    before = read_inbound("woocommerce_orders.csv", woo(header[:-1]))
    assert before.orders.empty and set(before.rejects.field) == {"Order Total Amount"}
    assert before.rejects.reason.iloc[0].endswith("a line is missing (file cut?) or altered; export the order again")
    plain = read_inbound("woocommerce_orders.csv", woocommerce_export([order]))
    assert plain.rejects.empty and plain.orders.shop_order_id.tolist() == ["5401"]


def test_a_shopify_free_shipping_code_is_not_taken_off_twice():
    """A free-shipping code: Shipping is already 0, and Discount Amount may hold the shipping it
    took off. The order discount is what the products lost (their prices against Subtotal), not
    Discount Amount again: the back office's order adds up to the shop's Total."""
    free = {**ORDER, "Shipping": "0.00", "Total": "30.00", "Taxes": "5.00", "Tax 1 Value": "5.00"}
    free |= {"Discount Code": "LIVRAISON", "Discount Amount": "5.00"}
    p = read_inbound("s.csv", shopify_file([{**free, **LINE_A}, LINE_B]))
    assert p.rejects.empty
    o = p.orders.iloc[0]
    assert (o.order_discount_incl_vat, o.shipping_incl_vat, o.total_incl_vat) == (0.0, 0.0, 30.0)
    # A products code alone, as before: Discount Amount is the order's discount.
    code = {**ORDER, "Subtotal": "27.00", "Total": "32.00", "Discount Code": "BIENVENUE", "Discount Amount": "3.00"}
    p = read_inbound("s.csv", shopify_file([{**code, **LINE_A}, LINE_B]))
    assert p.orders.order_discount_incl_vat.tolist() == [3.0]
