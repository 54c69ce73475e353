"""Issue #14, item 4: payments seen after the order, and refunds, against a real PostgreSQL (a seeded
back office per test). An order integrated before its payment (bank transfer, cheque) waits in
``awaiting_payment``; the later file saying it is paid completes its payment and confirms it, once;
a refund in the shop becomes a credit note request, never a change of the order. Generic and
Shopify formats (the two inbound order formats: PrestaShop and WooCommerce exports go through the
generic one)."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from decimal import Decimal

import pytest

from passerelle import INCLUDE
from passerelle.core.integrate import DEFAULT_RULES, integrate_file, replay_quarantine

RULES = {**DEFAULT_RULES, "awaiting_payment": ["pending"]}

HEADER = (
    "shop_order_id,order_date,status,shop_customer_id,email,currency,line_number,sku,label,quantity,"
    "unit_price_excl_vat,vat_rate,line_discount_excl_vat,payment_method,payment_amount,"
    "payment_transaction_id,payment_paid,paid_at,refunded_amount,"
    "billing_first_name,billing_last_name,billing_address1,billing_postcode,billing_city,billing_country"
)


def generic(order: str, status: str, *, paid: str = "", paid_at: str = "", refunded: str = "", tx: str = "") -> bytes:
    """One generic order of 2 x ART-000001 at 10.00 excl. VAT, 20 %: 24.00 incl. VAT, by bank transfer."""
    row = (
        f"{order},2026-11-20T08:00:00+01:00,{status},9300,lea@exemple.fr,EUR,1,ART-000001,Article,2,10.00,20,0,"
        f"transfer,24.00,{tx},{paid},{paid_at},{refunded},Léa,Martin,3 rue Basse,69001,Lyon,FR"
    )
    return f"{HEADER}\n{row}\n".encode()


SHOPIFY_HEADER = (
    (INCLUDE / "sample" / "inbound" / "shopify_orders_export.csv").read_text(encoding="utf-8").splitlines()[0]
)


def shopify(name: str, financial: str, *, paid_at: str = "", refunded: str = "0.00", cancelled: str = "") -> bytes:
    """One Shopify order (the export's own columns): 2 x ART-000001 at 12.00 incl. VAT (20 %), no
    shipping, paid by bank deposit."""
    columns = next(csv.reader([SHOPIFY_HEADER]))
    row = dict.fromkeys(columns, "")
    row.update(
        {
            "Name": name,
            "Email": "lea@exemple.fr",
            "Financial Status": financial,
            "Paid at": paid_at,
            "Fulfillment Status": "unfulfilled",
            "Currency": "EUR",
            "Subtotal": "24.00",
            "Shipping": "0.00",
            "Taxes": "4.00",
            "Total": "24.00",
            "Created at": "2026-11-20 10:15:00 +0100",
            "Lineitem quantity": "2",
            "Lineitem name": "Casserole",
            "Lineitem price": "12.00",
            "Lineitem sku": "ART-000001",
            "Lineitem requires shipping": "true",
            "Lineitem taxable": "true",
            "Billing Name": "Léa Martin",
            "Billing Address1": "3 rue Basse",
            "Billing City": "Lyon",
            "Billing Zip": "'69001",
            "Billing Country": "FR",
            "Cancelled at": cancelled,
            "Payment Method": "Bank Deposit",
            "Payment Reference": f"ref-{name.strip('#')}",
            "Refunded Amount": refunded,
            "Id": "6108399990001",
            "Tax 1 Name": "FR TVA 20%",
            "Tax 1 Value": "4.00",
            "Source": "web",
        }
    )
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerow(row)
    return out.getvalue().encode()


def _order(erp, shop_order_id: str) -> tuple[int, str]:
    row = erp.execute("SELECT id, status FROM erp.sales_order WHERE shop_order_id = %s", (shop_order_id,)).fetchone()
    erp.commit()
    return row


def _payments(erp, order_id: int) -> list[tuple]:
    rows = erp.execute(
        "SELECT method, amount, paid, paid_at IS NOT NULL FROM erp.payment WHERE order_id = %s ORDER BY id",
        (order_id,),
    ).fetchall()
    erp.commit()
    return [(m, float(a), p, at) for m, a, p, at in rows]


def _history(erp, order_id: int) -> list[str]:
    rows = erp.execute(
        "SELECT status FROM erp.order_status_history WHERE order_id = %s ORDER BY changed_at, id", (order_id,)
    ).fetchall()
    erp.commit()
    return [r[0] for r in rows]


def _credit_notes(erp, order_id: int) -> list[tuple]:
    rows = erp.execute(
        "SELECT amount, refunded_total, reason, shop_status, source_file, status FROM erp.credit_note_request "
        "WHERE order_id = %s ORDER BY id",
        (order_id,),
    ).fetchall()
    erp.commit()
    return [(float(a), float(t), r, s, f, st) for a, t, r, s, f, st in rows]


# -- generic format -----------------------------------------------------------------------------------
def test_a_pending_order_waits_then_its_late_payment_confirms_it_exactly_once(erp):
    first = integrate_file(erp, "o1.csv", generic("WEB-P1", "pending", paid="0", tx="VIR-1"), rules=RULES)
    assert first.counts["orders_awaiting_payment"] == 1 and first.counts["orders_created"] == 1
    order_id, status = _order(erp, "WEB-P1")
    assert status == "awaiting_payment"
    assert _payments(erp, order_id) == [("transfer", 24.0, False, False)]

    paid = generic("WEB-P1", "paid", paid="1", paid_at="2026-11-23T10:00:00+01:00", tx="VIR-1")
    later = integrate_file(erp, "o2.csv", paid, rules=RULES)
    assert later.counts["payments_seen_later"] == 1 and later.counts["orders_confirmed_by_payment"] == 1
    assert later.counts["orders_created"] == 0 and later.counts["payments_created"] == 0
    assert _order(erp, "WEB-P1")[1] == "confirmed"
    assert _payments(erp, order_id) == [("transfer", 24.0, True, True)]  # the same row, completed
    assert _history(erp, order_id) == ["awaiting_payment", "confirmed"]

    # The same file again (a rerun), and the same news in another file: nothing doubled, nothing changed.
    again = integrate_file(erp, "o2.csv", paid, rules=RULES)
    assert again.status == "duplicate"
    other = integrate_file(erp, "o3.csv", paid + b"\n", rules=RULES)
    assert other.status == "integrated"
    assert other.counts["payments_seen_later"] == 0 and other.counts["orders_confirmed_by_payment"] == 0
    assert _payments(erp, order_id) == [("transfer", 24.0, True, True)]
    assert _history(erp, order_id) == ["awaiting_payment", "confirmed"]


def test_a_pending_order_seen_pending_again_stays_as_it_is(erp):
    integrate_file(erp, "o1.csv", generic("WEB-P2", "pending", paid="0"), rules=RULES)
    again = integrate_file(erp, "o2.csv", generic("WEB-P2", "pending", paid="0") + b"\n", rules=RULES)
    assert again.counts["orders_awaiting_payment"] == 0 and again.counts["payments_seen_later"] == 0
    order_id, status = _order(erp, "WEB-P2")
    assert status == "awaiting_payment" and _payments(erp, order_id) == [("transfer", 24.0, False, False)]


def test_an_order_awaiting_payment_the_shop_cancels_is_cancelled(erp):
    integrate_file(erp, "o1.csv", generic("WEB-P3", "pending", paid="0"), rules=RULES)
    gone = integrate_file(erp, "o2.csv", generic("WEB-P3", "cancelled", paid="0"), rules=RULES)
    assert gone.counts["orders_cancelled"] == 1
    assert _order(erp, "WEB-P3")[1] == "cancelled"


def test_a_confirmed_order_whose_authorised_payment_is_captured_later_is_paid_once(erp):
    """An order integrated on an authorised payment (``validated``, not paid) keeps its status; the
    capture completes its payment."""
    integrate_file(erp, "o1.csv", generic("WEB-P4", "validated", paid="0"), rules=RULES)
    order_id, status = _order(erp, "WEB-P4")
    assert status == "confirmed" and _payments(erp, order_id) == [("transfer", 24.0, False, False)]
    later = integrate_file(erp, "o2.csv", generic("WEB-P4", "paid", paid="1"), rules=RULES)
    assert later.counts["payments_seen_later"] == 1 and later.counts["orders_confirmed_by_payment"] == 0
    assert _payments(erp, order_id) == [("transfer", 24.0, True, False)]
    assert _history(erp, order_id) == ["confirmed"]


def test_without_the_awaiting_group_a_pending_order_is_ignored_then_created_paid(erp):
    """The default rules: pending orders wait in the shop; the paid file creates the order, paid."""
    rules = {k: v for k, v in RULES.items() if k != "awaiting_payment"}
    first = integrate_file(erp, "o1.csv", generic("WEB-P5", "pending", paid="0"), rules=rules)
    assert first.counts["orders_ignored"] == 1 and _order(erp, "WEB-P5") is None
    integrate_file(erp, "o2.csv", generic("WEB-P5", "paid", paid="1"), rules=rules)
    order_id, status = _order(erp, "WEB-P5")
    assert status == "confirmed" and _payments(erp, order_id) == [("transfer", 24.0, True, False)]


def test_a_refund_becomes_one_credit_note_request_and_the_order_is_not_changed(erp):
    integrate_file(erp, "o1.csv", generic("WEB-R1", "paid", paid="1"), rules=RULES)
    order_id, _ = _order(erp, "WEB-R1")
    before = erp.execute("SELECT status, total_incl_vat, updated_at FROM erp.sales_order WHERE id = %s", (order_id,))
    before = before.fetchone()
    erp.commit()

    part = generic("WEB-R1", "paid", paid="1", refunded="10.00")
    first = integrate_file(erp, "r1.csv", part, rules=RULES)
    assert first.counts["credit_notes_requested"] == 1
    assert _credit_notes(erp, order_id) == [
        (10.0, 10.0, "partly refunded in the shop: 10.00 EUR refunded in all", "paid", "r1.csv", "requested")
    ]
    assert integrate_file(erp, "r1.csv", part, rules=RULES).status == "duplicate"
    same = integrate_file(erp, "r1-copy.csv", part + b"\n", rules=RULES)
    assert same.counts["credit_notes_requested"] == 0

    # Then the whole order is refunded (status refunded, no amount: the order's total).
    full = integrate_file(erp, "r2.csv", generic("WEB-R1", "refunded", paid="1"), rules=RULES)
    assert full.counts["credit_notes_requested"] == 1
    assert (full.counts["rows_integrated"], full.counts["rows_ignored"]) == (1, 0)  # handed over as a refund
    assert _credit_notes(erp, order_id)[1] == (
        14.0,
        24.0,
        "refunded in the shop: 24.00 EUR refunded in all, 10.00 already requested",
        "refunded",
        "r2.csv",
        "requested",
    )
    after = erp.execute("SELECT status, total_incl_vat, updated_at FROM erp.sales_order WHERE id = %s", (order_id,))
    assert after.fetchone() == before  # never a silent change of the order
    erp.commit()
    assert _payments(erp, order_id) == [("transfer", 24.0, True, False)]


def test_a_refund_of_an_order_never_integrated_asks_for_nothing(erp):
    r = integrate_file(erp, "r.csv", generic("WEB-R2", "refunded", paid="1", refunded="24.00"), rules=RULES)
    assert r.counts["credit_notes_requested"] == 0 and r.counts["orders_ignored"] == 1
    assert (r.counts["rows_integrated"], r.counts["rows_ignored"]) == (0, 1)
    assert erp.execute("SELECT count(*) FROM erp.credit_note_request").fetchone()[0] == 0


# -- Shopify export -----------------------------------------------------------------------------------
def test_shopify_pending_bank_deposit_then_paid_then_refunded(erp):
    first = integrate_file(erp, "s1.csv", shopify("#2001", "pending"), rules=RULES)
    assert first.counts["orders_awaiting_payment"] == 1, first.counts
    order_id, status = _order(erp, "#2001")
    assert status == "awaiting_payment"
    assert _payments(erp, order_id) == [("Bank Deposit", 24.0, False, False)]

    paid = shopify("#2001", "paid", paid_at="2026-11-24 09:30:00 +0100")
    later = integrate_file(erp, "s2.csv", paid, rules=RULES)
    assert later.counts["payments_seen_later"] == 1 and later.counts["orders_confirmed_by_payment"] == 1
    assert _order(erp, "#2001")[1] == "confirmed"
    assert _payments(erp, order_id) == [("Bank Deposit", 24.0, True, True)]
    assert integrate_file(erp, "s2.csv", paid, rules=RULES).status == "duplicate"
    assert integrate_file(erp, "s2b.csv", paid + b"\n", rules=RULES).counts["payments_seen_later"] == 0

    part = integrate_file(erp, "s3.csv", shopify("#2001", "partially_refunded", refunded="6.00"), rules=RULES)
    assert part.counts["credit_notes_requested"] == 1
    full = integrate_file(erp, "s4.csv", shopify("#2001", "refunded", refunded="24.00"), rules=RULES)
    assert full.counts["credit_notes_requested"] == 1 and full.counts["orders_cancelled"] == 0
    notes = _credit_notes(erp, order_id)
    assert [(a, t, s, f) for a, t, _, s, f, _ in notes] == [
        (6.0, 6.0, "partially_refunded", "s3.csv"),
        (18.0, 24.0, "refunded", "s4.csv"),
    ]
    again = integrate_file(erp, "s4b.csv", shopify("#2001", "refunded", refunded="24.00") + b"\n", rules=RULES)
    assert again.counts["credit_notes_requested"] == 0
    assert _order(erp, "#2001")[1] == "confirmed"  # the refund did not cancel the order
    assert _payments(erp, order_id) == [("Bank Deposit", 24.0, True, True)]
    assert _history(erp, order_id) == ["awaiting_payment", "confirmed"]


@pytest.mark.parametrize("financial", ["refunded", "partially_refunded"])
def test_shopify_refund_is_read_as_a_refund_not_a_cancellation(financial):
    from passerelle.core.inbound import read_inbound

    parsed = read_inbound("s.csv", shopify("#2002", financial, refunded="24.00" if financial == "refunded" else "5.00"))
    order = parsed.orders.iloc[0]
    assert order["status"] == ("refunded" if financial == "refunded" else "paid")
    assert order["shop_status"] == financial and float(order["refunded_amount"]) > 0


def test_shopify_cancelled_and_refunded_cancels_and_asks_for_the_credit_note(erp):
    integrate_file(erp, "s1.csv", shopify("#2003", "paid", paid_at="2026-11-20 10:16:00 +0100"), rules=RULES)
    order_id, _ = _order(erp, "#2003")
    gone = shopify("#2003", "refunded", refunded="24.00", cancelled="2026-11-21 08:00:00 +0100")
    r = integrate_file(erp, "s2.csv", gone, rules=RULES)
    assert r.counts["orders_cancelled"] == 1 and r.counts["credit_notes_requested"] == 1
    assert _order(erp, "#2003")[1] == "cancelled"
    assert [n[0] for n in _credit_notes(erp, order_id)] == [24.0]


def test_the_inbound_section_carries_the_awaiting_payment_group():
    from passerelle.config.sections import InboundSection

    section = InboundSection.model_validate({"awaiting_payment": ["pending"]})
    assert section.rules["awaiting_payment"] == ["pending"]
    assert "awaiting_payment" not in InboundSection.model_validate({}).rules
    with pytest.raises(Exception, match="pending"):
        InboundSection.model_validate({"integrate": ["paid", "pending"], "awaiting_payment": ["pending"]})


# -- the demo's samples -------------------------------------------------------------------------------
def test_the_samples_show_a_late_payment_and_a_refund(erp):
    """``orders_20261121_0900.csv`` (the demo drops it after the 20th's files): WEB-100234, pending on
    the 20th, is paid by PayPal; WEB-100231 is partly refunded (20.00)."""
    samples = INCLUDE / "sample" / "inbound"
    for name in ("orders_20261120_0900.csv", "orders_20261120_1000.csv"):
        integrate_file(erp, name, (samples / name).read_bytes(), rules=RULES)
    waiting, status = _order(erp, "WEB-100234")
    assert status == "awaiting_payment" and _payments(erp, waiting) == [("PayPal", 54.28, False, False)]
    later = (samples / "orders_20261121_0900.csv").read_bytes()
    r = integrate_file(erp, "orders_20261121_0900.csv", later, rules=RULES)
    assert (r.counts["payments_seen_later"], r.counts["orders_confirmed_by_payment"]) == (1, 1)
    assert r.counts["credit_notes_requested"] == 1 and r.counts["orders_created"] == 0
    assert _order(erp, "WEB-100234")[1] == "confirmed"
    assert _payments(erp, waiting) == [("PayPal", 54.28, True, True)]
    refunded, _ = _order(erp, "WEB-100231")
    assert [(a, f) for a, _, _, _, f, _ in _credit_notes(erp, refunded)] == [(20.0, "orders_20261121_0900.csv")]


def test_the_shopify_samples_show_a_bank_transfer_paid_two_days_later(erp):
    """``shopify_orders_export_20261122.csv``: ``#1002``, pending bank transfer on the 20th, paid."""
    samples = INCLUDE / "sample" / "inbound"
    integrate_file(erp, "s.csv", (samples / "shopify_orders_export.csv").read_bytes(), rules=RULES)
    order_id, status = _order(erp, "#1002")
    assert status == "awaiting_payment"
    later = integrate_file(erp, "s2.csv", (samples / "shopify_orders_export_20261122.csv").read_bytes(), rules=RULES)
    assert (later.counts["payments_seen_later"], later.counts["orders_confirmed_by_payment"]) == (1, 1)
    assert _order(erp, "#1002")[1] == "confirmed"
    assert _payments(erp, order_id) == [("Virement bancaire", 84.56, True, True)]


def test_a_woocommerce_order_refunded_in_full_becomes_its_credit_note_request(erp):
    """Advanced Order Export's default quantity, ``Quantity (- Refund)``, is less the refunds: every
    line of an order refunded in full reads 0. The order is not refused for it (it was, whole, and
    its refund never reached the back office): its Order Refund Amount becomes the credit note
    request, the order as it is. A 0 on an order that is not refunded is still refused."""
    from shop_exports import Line, Order, woocommerce_export

    order = Order("5303", [Line("ART-000001", "Article", 2, Decimal("10.00"), Decimal("20"))])
    assert integrate_file(erp, "woo1.csv", woocommerce_export([order]), rules=RULES).counts["orders_created"] == 1
    order_id, _ = _order(erp, "5303")
    refunded = {"Order Status": "Refunded", "Quantity (- Refund)": "0", "Order Refund Amount": "28.92"}
    result = integrate_file(erp, "woo2.csv", woocommerce_export([replace(order, extra=refunded)]), rules=RULES)
    assert result.status == "integrated", result
    assert (result.counts["rows_quarantined"], result.counts["credit_notes_requested"]) == (0, 1)
    assert _credit_notes(erp, order_id) == [
        (28.92, 28.92, "refunded in the shop: 28.92 EUR refunded in all", "Refunded", "woo2.csv", "requested")
    ]
    zero = integrate_file(
        erp,
        "woo3.csv",
        woocommerce_export([replace(order, number="5304", extra={"Quantity (- Refund)": "0"})]),
        rules=RULES,
    )
    assert zero.counts["rows_quarantined"] == 1 and _order(erp, "5304") is None


def _refunded_before_export(order, quantities: dict[str, str], refund: str, *, before=(), **more: str) -> bytes:
    """``order`` as Advanced Order Export writes it after a partial refund: its default ``Quantity
    (- Refund)`` less the refunded items (``quantities``: SKU -> quantity left), its totals the
    order as sold (``get_total()``), ``Order Refund Amount`` what was refunded; ``more``: other
    cells, on every row (a column the default fields lack is added); ``before``: orders written
    first, as they are."""
    from shop_exports import woocommerce_export

    rows = list(csv.DictReader(io.StringIO(woocommerce_export([*before, order]).decode())))
    for r in rows:
        if r["Order Number"] != order.number:
            continue
        r["Quantity (- Refund)"] = quantities.get(r["SKU"], r["Quantity (- Refund)"])
        r["Order Refund Amount"] = refund
        r["Order Status"] = "Completed"
        r.update(more)
    buf = io.StringIO()
    w = csv.DictWriter(buf, list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def test_a_woocommerce_order_partly_refunded_before_its_first_export_is_not_created_short(erp):
    """An order partly refunded before Passerelle first reads it: Quantity (- Refund) gives its lines
    less the refunded items (one line refunded whole reads 0) while its totals are the order as sold.
    Created from them, it would lack those items and its refund would be asked again as a credit
    note: it is refused, saying what to do. The same export of an order the back office already
    holds goes on to its credit note request, as before."""
    from shop_exports import Line, Order, woocommerce_export

    lines = [
        Line("ART-000001", "Article", 2, Decimal("10.00"), Decimal("20")),
        Line("ART-000002", "Autre article", 1, Decimal("5.00"), Decimal("20")),
    ]
    held = Order("5502", lines)
    assert integrate_file(erp, "woo1.csv", woocommerce_export([held]), rules=RULES).counts["orders_created"] == 1
    left = {"ART-000001": "1", "ART-000002": "0"}  # one of two A refunded, B refunded whole: 12 + 6 incl. VAT
    short = _refunded_before_export(replace(held, number="5501"), left, "18.00")
    new = integrate_file(erp, "woo2.csv", short, rules=RULES)
    assert new.status == "integrated", new
    assert (new.counts["orders_created"], new.counts["rows_quarantined"]) == (0, 2)
    assert _order(erp, "5501") is None
    reasons = [
        r[0]
        for r in erp.execute(
            "SELECT reason FROM passerelle.quarantine WHERE shop_order_id = '5501' AND field = 'Quantity (- Refund)'"
        )
    ]
    assert len(reasons) == 1 and reasons[0].startswith(
        "Order Refund Amount 18.00: the order was partly refunded before this export, whose Quantity (- Refund) "
        "gives its lines less the refunded items"
    )
    assert "add the field Quantity to the export profile" in reasons[0]
    erp.commit()
    again = integrate_file(erp, "woo3.csv", _refunded_before_export(held, left, "18.00"), rules=RULES)
    assert (again.counts["rows_quarantined"], again.counts["credit_notes_requested"]) == (0, 1)
    order_id, _ = _order(erp, "5502")
    assert [(amount, file) for amount, _, _, _, file, _ in _credit_notes(erp, order_id)] == [(18.0, "woo3.csv")]
    assert erp.execute("SELECT count(*) FROM erp.sales_order_line WHERE order_id = %s", (order_id,)).fetchone() == (2,)


def test_partial_status_rules_refuse_a_short_order_the_default_groups_would_create(erp):
    """Rules naming only some groups (here awaiting_payment): the others keep their defaults, for
    the selection and for the refusal alike. A completed order partly refunded before its first
    export would be created by the default integrate group: it is refused, not created short."""
    from shop_exports import Order

    short = _refunded_before_export(Order("5551", _woo_lines()), {"ART-000001": "1", "ART-000002": "0"}, "18.00")
    result = integrate_file(erp, "woo1.csv", short, rules={"awaiting_payment": ["pending"]})
    assert result.status == "integrated", result
    assert (result.counts["orders_created"], result.counts["rows_quarantined"]) == (0, 2)
    assert _order(erp, "5551") is None


def test_an_unreadable_refund_amount_is_the_one_reason_its_order_is_refused(erp):
    """Order Refund Amount written with a decimal comma in a file of decimal points, on an order
    whose Quantity (- Refund) reads 0 on a line refunded whole: refused on the amount, not also on
    the quantity (which the refund explains)."""
    from shop_exports import Order

    data = _refunded_before_export(Order("5561", _woo_lines()), {"ART-000002": "0"}, "6,00")
    result = integrate_file(erp, "woo1.csv", data, rules=RULES)
    assert result.counts["orders_created"] == 0
    fields = {r[0] for r in erp.execute("SELECT field FROM passerelle.quarantine WHERE shop_order_id = '5561'")}
    erp.commit()
    assert "Order Refund Amount" in fields and "Quantity (- Refund)" not in fields, fields


def _woo_lines():
    from shop_exports import Line

    return [
        Line("ART-000001", "Article", 2, Decimal("10.00"), Decimal("20")),
        Line("ART-000002", "Autre article", 1, Decimal("5.00"), Decimal("20")),
    ]


def test_a_new_woocommerce_order_refunded_by_an_amount_alone_is_created_with_its_credit_note_request(erp):
    """A refund of an amount, no item (a goodwill gesture): Quantity (- Refund) is the quantity sold,
    the order adds up; a new one is created as sold and its refund becomes its credit note request."""
    from shop_exports import Order

    data = _refunded_before_export(Order("5601", _woo_lines()), {}, "5.00")
    result = integrate_file(erp, "woo1.csv", data, rules=RULES)
    assert (result.counts["orders_created"], result.counts["rows_quarantined"]) == (1, 0)
    order_id, _ = _order(erp, "5601")
    assert [amount for amount, *_ in _credit_notes(erp, order_id)] == [5.0]
    assert erp.execute("SELECT count(*) FROM erp.sales_order_line WHERE order_id = %s", (order_id,)).fetchone() == (2,)


def test_a_woocommerce_order_with_fees_is_refused_for_them_even_when_partly_refunded(erp):
    """A fee and a refund of its shipping, no item refunded: refused on Order Total Fee (not taken as
    an order that adds up, not told to add the field Quantity); a negative fee (a discount made a
    fee) likewise, not as a negative amount."""
    from shop_exports import Order

    for number, fee, refund in (("5701", "2.50", "4.90"), ("5702", "-2.50", "0.00")):
        order = Order(number, _woo_lines())
        plain = list(csv.DictReader(io.StringIO(_refunded_before_export(order, {}, refund).decode())))[0]
        total = Decimal(plain["Order Total Amount"]) + Decimal(fee) * Decimal("1.2")
        taxes = Decimal(plain["Order Total Tax Amount"]) + Decimal(fee) * Decimal("0.2")
        data = _refunded_before_export(
            order,
            {},
            refund,
            **{"Order Total Amount": f"{total:.2f}", "Order Total Tax Amount": f"{taxes:.2f}", "Order Total Fee": fee},
        )
        result = integrate_file(erp, f"woo{number}.csv", data, rules=RULES)
        assert (result.counts["orders_created"], result.counts["rows_quarantined"]) == (0, 2), number
        reasons = {
            r[0]: r[1]
            for r in erp.execute(
                "SELECT field, reason FROM passerelle.quarantine WHERE shop_order_id = %s AND line = 2", (number,)
            )
        }
        erp.commit()
        assert list(reasons) == ["Order Total Fee"], reasons
        assert reasons["Order Total Fee"].startswith(f"Order Total Fee {Decimal(fee):.2f}: the order's Order Total")


def test_a_replayed_partly_refunded_woocommerce_order_keeps_its_reason_and_its_lines(erp):
    """The quarantine's replay reads the rows again under their own line numbers: a partly refunded
    order still not in the back office stays open with its own reason, on its own lines."""
    from shop_exports import Order

    left = {"ART-000001": "1", "ART-000002": "0"}
    data = _refunded_before_export(Order("5801", _woo_lines()), left, "18.00", before=[Order("5800", _woo_lines())])
    first = integrate_file(erp, "woo1.csv", data, rules=RULES)
    assert (first.counts["orders_created"], first.counts["rows_quarantined"]) == (1, 2)
    before = erp.execute(
        "SELECT line, field, reason FROM passerelle.quarantine WHERE status = 'open' ORDER BY line, field"
    ).fetchall()
    erp.commit()
    out = replay_quarantine(erp, rules=RULES)
    assert out[0]["orders_created"] == 0
    after = erp.execute(
        "SELECT line, field, reason FROM passerelle.quarantine WHERE status = 'open' ORDER BY line, field"
    ).fetchall()
    erp.commit()
    assert [r[0] for r in after] == [r[0] for r in before] == [4, 5]
    assert after[0][2] == before[0][2] and after[0][2].startswith("Order Refund Amount 18.00: the order was partly")


def test_a_partly_refunded_woocommerce_order_that_would_not_be_created_is_left_as_before(erp):
    """An order the integration would not create anyway (status Refunded: in no group) is not
    quarantined for its quantities less the refund: its rows are ignored, as before."""
    from shop_exports import Order

    left = {"ART-000001": "1", "ART-000002": "0"}
    data = _refunded_before_export(Order("5901", _woo_lines()), left, "18.00", **{"Order Status": "Refunded"})
    result = integrate_file(erp, "woo1.csv", data, rules=RULES)
    assert (result.counts["rows_quarantined"], result.counts["rows_ignored"]) == (0, 2)
    assert _order(erp, "5901") is None
