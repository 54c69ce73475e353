"""Issue #14, item 6: the staff's list of web orders (filters, one order's whole story) and the daily
file of web orders, against a real PostgreSQL: orders integrated through the real integration (a late
payment, a refund, a quarantined order), a delivery note, and the CSV read back as a spreadsheet would."""

from __future__ import annotations

import codecs
import csv
import io
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from passerelle.core.integrate import DEFAULT_RULES, integrate_file
from passerelle.core.order_list import (
    DAILY_COLUMNS,
    OrderFilter,
    daily_rows,
    file_window,
    list_orders,
    order_detail,
    orders_csv,
    quarantined_orders,
)

PARIS = "Europe/Paris"
RULES = {**DEFAULT_RULES, "awaiting_payment": ["pending"]}
HEADER = (
    "shop_order_id,order_date,status,shop_customer_id,email,currency,line_number,sku,label,quantity,"
    "unit_price_excl_vat,vat_rate,line_discount_excl_vat,payment_method,payment_amount,payment_paid,paid_at,"
    "refunded_amount,billing_first_name,billing_last_name,billing_address1,billing_postcode,billing_city,"
    "billing_country"
)


def _row(order: str, status: str, *, when: str = "2026-11-20T08:00:00+01:00", sku: str = "ART-000001", **kw) -> str:
    label = kw.get("label", "Article")
    return (
        f"{order},{when},{status},93{order[-2:]},{order.lower()}@exemple.fr,EUR,1,{sku},{label},2,10.00,20,0,"
        f"transfer,24.00,{kw.get('paid', '')},{kw.get('paid_at', '')},{kw.get('refunded', '')},"
        "Léa,Martin,3 rue Basse,69001,Lyon,FR"
    )


def _file(*rows: str) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


@pytest.fixture
def shop_day(erp):
    """The shop's 20 November: WEB-D01 pending then paid, WEB-D02 paid, shipped and partly refunded
    (its label looks like a formula), WEB-D03 with an unknown SKU (quarantined), and WEB-D04
    ordered in October (outside the file's window)."""
    integrate_file(
        erp,
        "o1.csv",
        _file(
            _row("WEB-D01", "pending", paid="0"),
            _row("WEB-D02", "paid", when="2026-11-20T09:30:00+01:00", label="=SUM(A1)"),
            _row("WEB-D03", "paid", sku="NO-SUCH-REF"),
            _row("WEB-D04", "paid", when="2026-10-01T09:00:00+02:00"),
        ),
        rules=RULES,
    )
    integrate_file(
        erp,
        "o2.csv",
        _file(
            _row("WEB-D01", "paid", paid="1", paid_at="2026-11-20T17:00:00+01:00"),
            _row("WEB-D02", "paid", when="2026-11-20T09:30:00+01:00", label="=SUM(A1)", refunded="10.00"),
        ),
        rules=RULES,
    )
    d02 = erp.execute("SELECT id FROM erp.sales_order WHERE shop_order_id = 'WEB-D02'").fetchone()[0]
    erp.execute(
        "INSERT INTO erp.delivery_note (number, order_id, shipped_at, carrier, tracking_number) "
        "VALUES ('BL-0001', %s, '2026-11-20 15:00+01', 'Colissimo', '6A12345678901')",
        (d02,),
    )
    # Status history as it was on the day (the trigger stamps now()).
    erp.execute(
        "UPDATE erp.order_status_history h SET changed_at = o.order_date + interval '1 minute' * mod(h.id, 60) "
        "FROM erp.sales_order o WHERE o.id = h.order_id AND o.origin = 'web'"
    )
    erp.execute("UPDATE passerelle.quarantine SET created_at = '2026-11-20 08:05+01'")
    erp.execute("UPDATE erp.credit_note_request SET requested_at = '2026-11-20 18:00+01'")
    erp.commit()
    return {r[0]: r[1] for r in erp.execute("SELECT shop_order_id, id FROM erp.sales_order WHERE origin = 'web'")}


def _ids(rows) -> list[str]:
    return sorted(r["shop_order_id"] for r in rows)


def test_the_list_filters_by_status_payment_state_dates_and_text(erp, shop_day):
    everything = list_orders(erp, timezone=PARIS)
    assert _ids(everything) == ["WEB-D01", "WEB-D02", "WEB-D04"]
    state = {r["shop_order_id"]: (r["status"], r["payment_state"], r["deliveries"]) for r in everything}
    assert state["WEB-D01"] == ("confirmed", "paid", 0)
    assert state["WEB-D02"] == ("confirmed", "partly refunded", 1)
    assert _ids(list_orders(erp, OrderFilter(payment="partly refunded"), timezone=PARIS)) == ["WEB-D02"]
    assert _ids(list_orders(erp, OrderFilter(date_from=date(2026, 11, 20)), timezone=PARIS)) == ["WEB-D01", "WEB-D02"]
    assert _ids(list_orders(erp, OrderFilter(date_to=date(2026, 10, 31)), timezone=PARIS)) == ["WEB-D04"]
    assert _ids(list_orders(erp, OrderFilter(search="web-d01@"), timezone=PARIS)) == ["WEB-D01"]
    erp.execute("UPDATE erp.sales_order SET status = 'shipped' WHERE shop_order_id = 'WEB-D02'")
    assert _ids(list_orders(erp, OrderFilter(status="shipped"), timezone=PARIS)) == ["WEB-D02"]
    waiting = quarantined_orders(erp)
    assert [(w["shop_order_id"], w["file"]) for w in waiting] == [("WEB-D03", "o1.csv")]
    assert "unknown SKU" in waiting[0]["reasons"]


def test_a_form_filter_with_a_bad_date_or_payment_state_says_which():
    with pytest.raises(ValueError, match="from: '20/11/2026' is not a date; expected YYYY-MM-DD"):
        OrderFilter.parse(date_from="20/11/2026")
    with pytest.raises(ValueError, match="payment: 'paye' is not a payment state"):
        OrderFilter.parse(payment="paye")
    assert OrderFilter.parse(date_to="2026-11-20", status=" shipped ") == OrderFilter(
        status="shipped", date_to=date(2026, 11, 20)
    )


def test_one_order_tells_its_whole_story(erp, shop_day):
    d01 = order_detail(erp, shop_day["WEB-D01"], timezone=PARIS)
    assert [h["status"] for h in d01["history"]] == ["awaiting_payment", "confirmed"]
    assert [(p["method"], p["paid"]) for p in d01["payments"]] == [("transfer", True)]
    assert d01["file"] == "o1.csv" and d01["credit_notes"] == [] and d01["deliveries"] == []

    d02 = order_detail(erp, shop_day["WEB-D02"], timezone=PARIS)
    assert [(float(c["amount"]), c["source_file"], c["status"]) for c in d02["credit_notes"]] == [
        (10.0, "o2.csv", "requested")
    ]
    assert [(d["number"], d["lines"]) for d in d02["deliveries"]] == [("BL-0001", [])]
    assert order_detail(erp, 999_999_999) is None


def test_a_parcel_shows_the_order_lines_it_ships(erp, shop_day):
    erp.execute(
        "INSERT INTO erp.delivery_note_line (delivery_note_id, order_id, line_number, quantity) "
        "SELECT id, order_id, 1, 1 FROM erp.delivery_note WHERE number = 'BL-0001'"
    )
    d02 = order_detail(erp, shop_day["WEB-D02"], timezone=PARIS)
    label = erp.execute(
        "SELECT label FROM erp.sales_order_line WHERE order_id = %s AND line_number = 1", (shop_day["WEB-D02"],)
    ).fetchone()[0]
    assert d02["delivery_columns"] == ["line_number", "label", "quantity"]
    assert [(ln["line_number"], ln["label"], float(ln["quantity"])) for ln in d02["deliveries"][0]["lines"]] == [
        (1, label, 1.0)
    ]


def test_an_order_shows_its_quarantined_rows(erp, shop_day):
    erp.execute(
        "INSERT INTO passerelle.quarantine (file, line, field, value, reason, shop_order_id, status) "
        "VALUES ('o9.csv', 2, 'status', 'cancelled', 'order WEB-D02 is already shipped: cancel it by hand', "
        "'WEB-D02', 'open')"
    )
    rows = order_detail(erp, shop_day["WEB-D02"], timezone=PARIS)["quarantine"]
    assert [(q["file"], q["field"], q["status"]) for q in rows] == [("o9.csv", "status", "open")]
    assert {r["shop_order_id"]: r["quarantined"] for r in list_orders(erp, timezone=PARIS)}["WEB-D02"] == 1


def _read(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(codecs.BOM_UTF8)
    text = data[len(codecs.BOM_UTF8) :].decode("utf-8")
    assert "\r\n" in text
    return list(csv.DictReader(io.StringIO(text), delimiter=";"))


def test_the_daily_file_lists_the_days_orders_with_payment_history_deliveries_refunds_and_quarantine(erp, shop_day):
    start, end = file_window(date(2026, 11, 21), PARIS, until=datetime(2026, 11, 21, 6, tzinfo=ZoneInfo(PARIS)))
    assert (start, end) == (
        datetime(2026, 11, 20, tzinfo=ZoneInfo(PARIS)),
        datetime(2026, 11, 21, 6, tzinfo=ZoneInfo(PARIS)),
    )
    rows = _read(orders_csv(daily_rows(erp, start, end, timezone=PARIS), timezone=PARIS))
    assert list(rows[0]) == DAILY_COLUMNS
    by_order = {r["shop_order_id"]: r for r in rows}
    assert sorted(by_order) == ["WEB-D01", "WEB-D02", "WEB-D03"]  # WEB-D04: October, untouched since

    d01 = by_order["WEB-D01"]
    assert (d01["order_number"], d01["status"], d01["payment_state"], d01["paid_at"]) == (
        "WEB-D01",
        "confirmed",
        "paid",
        "2026-11-20 17:00",
    )
    assert [h.split(" ")[0] for h in d01["status_history"].split("; ")] == ["awaiting_payment", "confirmed"]
    assert (d01["reference"], d01["quantity"], d01["unit_price_excl_vat"], d01["vat_rate"]) == (
        "ART-000001",
        "2",
        "10.00",
        "20",
    )
    assert (d01["total_incl_vat"], d01["paid_amount"], d01["source_file"]) == ("24.00", "24.00", "o1.csv")

    d02 = by_order["WEB-D02"]
    assert (d02["payment_state"], d02["refund_requested"]) == ("partly refunded", "10.00")
    assert d02["deliveries"] == "BL-0001 Colissimo 6A12345678901"
    assert d02["label"] == "'=SUM(A1)"  # a spreadsheet shows it, never runs it
    assert d02["order_date"] == "2026-11-20 09:30"

    d03 = by_order["WEB-D03"]
    assert (d03["status"], d03["source_file"], d03["order_number"]) == ("quarantined", "o1.csv", "")
    assert "unknown SKU" in d03["quarantine"]

    # The day before holds none of them (the window is the day before and the day so far).
    empty = _read(orders_csv(daily_rows(erp, *file_window(date(2026, 11, 19), PARIS), timezone=PARIS)))
    assert empty == []
