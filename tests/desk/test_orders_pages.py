"""The staff's list of web orders in the Passerelle view, under a real ``airflow api-server`` reading a
real back office: filters by status, payment state and dates, one order's payments, history,
refunds and quarantined rows, and the daily file of web orders served from the report folder."""

from __future__ import annotations

import uuid
import zlib
from urllib.parse import unquote

import psycopg
import pytest

from passerelle.core.integrate import DEFAULT_RULES

RULES = {**DEFAULT_RULES, "awaiting_payment": ["pending"]}
HEADER = (
    "shop_order_id,order_date,status,shop_customer_id,email,currency,line_number,sku,label,quantity,"
    "unit_price_excl_vat,vat_rate,line_discount_excl_vat,payment_method,payment_amount,payment_paid,"
    "refunded_amount,billing_first_name,billing_last_name,billing_address1,billing_postcode,billing_city,"
    "billing_country"
)


def _file(*rows: tuple[str, str, str, str, str]) -> bytes:
    """Rows of (order, date, status, paid, refunded): 2 x ART-000001 at 10.00 excl. VAT by transfer."""
    lines = [
        f"{o},{d},{s},9{zlib.crc32(o.encode()) % 10**6},{o.lower()}@exemple.fr,EUR,1,ART-000001,Article,2,10.00,20,0,"
        f"transfer,24.00,{p},{r},Léa,Martin,3 rue Basse,69001,Lyon,FR"
        for o, d, s, p, r in rows
    ]
    return ("\n".join([HEADER, *lines]) + "\n").encode()


@pytest.fixture
def orders(desk_server):
    """Through the real integration into the server's back office: ``<p>W`` pending (waiting for its
    transfer), ``<p>P`` pending then paid, ``<p>R`` paid then partly refunded; ids by suffix."""
    from passerelle.core.integrate import integrate_file

    p = f"D{uuid.uuid4().hex[:6].upper()}-"
    first = _file(
        (f"{p}W", "2026-11-18T10:00:00+01:00", "pending", "0", ""),
        (f"{p}P", "2026-11-19T10:00:00+01:00", "pending", "0", ""),
        (f"{p}R", "2026-11-20T10:00:00+01:00", "paid", "1", ""),
    )
    later = _file(
        (f"{p}P", "2026-11-19T10:00:00+01:00", "paid", "1", ""),
        (f"{p}R", "2026-11-20T10:00:00+01:00", "paid", "1", "7.50"),
    )
    with psycopg.connect(desk_server.erp_dsn) as conn:
        assert integrate_file(conn, f"{p}1.csv", first, rules=RULES).status == "integrated"
        assert integrate_file(conn, f"{p}2.csv", later, rules=RULES).status == "integrated"
        ids = dict(
            conn.execute(
                "SELECT right(shop_order_id, 1), id FROM erp.sales_order WHERE shop_order_id LIKE %s", (f"{p}%",)
            ).fetchall()
        )
    return p, ids


def test_the_list_filters_by_payment_state_status_and_dates(desk_server, orders):
    p, ids = orders
    with desk_server.client("viewer") as staff:  # reading needs no more than Airflow's viewer role
        every = staff.get("/passerelle/orders", params={"q": p})
        refunded = staff.get("/passerelle/orders", params={"q": p, "payment": "partly refunded"})
        waiting = staff.get("/passerelle/orders", params={"q": p, "status": "awaiting_payment"})
        dated = staff.get("/passerelle/orders", params={"q": p, "from": "2026-11-19", "to": "2026-11-19"})
        bad = staff.get("/passerelle/orders", params={"q": p, "from": "19/11/2026"})

    def shown(page) -> set[str]:
        assert page.status_code == 200, page.text
        return {k for k, i in ids.items() if f'href="/passerelle/orders/{i}"' in page.text}

    assert shown(every) == {"W", "P", "R"}
    assert shown(refunded) == {"R"} and "credit note to issue" in refunded.text
    assert shown(waiting) == {"W"} and "awaiting payment" in waiting.text
    assert shown(dated) == {"P"}
    assert "from: &#39;19/11/2026&#39; is not a date; expected YYYY-MM-DD" in bad.text and shown(bad) == {"W", "P", "R"}


def test_an_order_page_tells_the_payment_seen_later_and_the_refund(desk_server, orders):
    p, ids = orders
    with desk_server.client() as admin:
        paid_later = admin.get(f"/passerelle/orders/{ids['P']}")
        refunded = admin.get(f"/passerelle/orders/{ids['R']}")
    assert paid_later.status_code == 200 and refunded.status_code == 200
    history = paid_later.text.split("<h2>Status history</h2>")[1].split("</table>")[0]
    assert history.index("awaiting_payment") < history.index("confirmed")
    assert "payment: <strong>paid</strong>" in paid_later.text and "No refund from the shop." in paid_later.text
    assert "payment: <strong>partly refunded</strong>" in refunded.text
    notes = refunded.text.split("credit note requests</h2>")[1].split("</table>")[0]
    assert "7.50" in notes and "partly refunded in the shop" in notes and f"{p}2.csv" in notes
    assert "requested" in notes
    assert "Nothing of this order was quarantined." in refunded.text


def _credit_request(dsn: str, order_id: int) -> tuple:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT id, status, note, handled_by, handled_at IS NOT NULL FROM erp.credit_note_request "
            "WHERE order_id = %s",
            (order_id,),
        ).fetchone()


def test_the_accountant_marks_a_credit_note_request_issued_once(desk_server, orders):
    p, ids = orders
    order = ids["R"]
    request_id, status, *_ = _credit_request(desk_server.erp_dsn, order)
    assert status == "requested"
    url = f"/passerelle/orders/{order}/credit-notes/{request_id}"
    with desk_server.client("viewer") as viewer:
        page = viewer.get(f"/passerelle/orders/{order}")
        looked = viewer.post(url, data={"outcome": "issued", "note": "AV-1"})
    assert f'action="{url}"' in page.text  # the form is on the order's page
    assert looked.status_code == 403 and _credit_request(desk_server.erp_dsn, order)[1] == "requested"

    with desk_server.client() as admin:
        unsaid = admin.post(url, data={"outcome": "refused", "note": " "})
        assert unsaid.status_code == 303 and "a refusal needs a note" in unquote(unsaid.headers["location"])
        other = admin.post(f"/passerelle/orders/{ids['P']}/credit-notes/{request_id}", data={"outcome": "issued"})
        assert "not a request of order" in unquote(other.headers["location"])
        assert _credit_request(desk_server.erp_dsn, order)[1] == "requested"  # neither changed it

        issued = admin.post(url, data={"outcome": "issued", "note": "credit note AV-2026-0042"})
        assert issued.status_code == 303 and "marked issued" in unquote(issued.headers["location"])
        again = admin.post(url, data={"outcome": "refused", "note": "changed my mind"})
        assert "already issued; nothing changed" in unquote(again.headers["location"])
        shown = admin.get(f"/passerelle/orders/{order}").text
        listed = admin.get("/passerelle/orders", params={"q": p, "payment": "partly refunded"}).text

    answered = _credit_request(desk_server.erp_dsn, order)
    assert answered == (request_id, "issued", "credit note AV-2026-0042", "admin", True)
    notes = shown.split("credit note requests</h2>")[1].split("</table>")[0]
    assert "by admin: credit note AV-2026-0042" in notes and f'action="{url}"' not in notes
    assert "credit note to issue" not in listed  # no longer waiting for the accountant


def test_quarantined_orders_are_listed_beside_the_integrated_ones(desk_server, quarantined):
    with desk_server.client() as admin:
        page = admin.get("/passerelle/orders")
    waiting = page.text.split("Quarantined, not integrated")[1]
    assert f"{quarantined}2" in waiting and f"{quarantined}3" in waiting
    assert f"orders_{quarantined}.csv" in waiting


def test_the_daily_orders_file_is_linked_and_served(desk_server):
    body = "\ufefforder_number;shop_order_id\r\nWEB-1;#1\r\n".encode()
    (desk_server.reports / "orders-2026-11-29.csv").write_bytes(body)
    with desk_server.client("viewer") as staff:
        listing = staff.get("/passerelle/orders")
        reports = staff.get("/passerelle/reports")
        served = staff.get("/passerelle/orders/daily/2026-11-29")
        missing = staff.get("/passerelle/orders/daily/2026-11-28")
        outside = staff.get("/passerelle/orders/daily/..%2F..%2Fpasswords.json")
    assert 'href="/passerelle/orders/daily/2026-11-29"' in listing.text
    assert 'href="/passerelle/orders/daily/2026-11-29"' in reports.text
    assert served.status_code == 200 and served.content == body
    assert served.headers["content-type"].startswith("text/csv")
    assert "orders-2026-11-29.csv" in served.headers["content-disposition"]
    assert (missing.status_code, outside.status_code) == (404, 404)
