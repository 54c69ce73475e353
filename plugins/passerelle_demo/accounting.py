"""The demo back office's invoicing, for the sales journal (`make demo`): the back office this
project replaces invoices its web orders; the demo does it here, as that back office would.

:func:`invoice_web_orders` invoices every web order not yet invoiced, on a given day (totals from
the lines and shipping, VAT rounded per rate, as the printed invoice shows them), marks its
payments received that day, and credits one order whole (a credit note with negative totals and
its refund), so that the day's FEC shows a sale, a payment, a credit note and a refund.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg

from passerelle.core.accounting import InvoiceLine, JournalInvoice, vat_breakdown

ORDERS_SQL = """
SELECT o.id, o.number, o.currency, o.shipping_excl_vat, o.shipping_vat_rate
FROM erp.sales_order o
WHERE o.origin = 'web' AND o.kind = 'order' AND o.status <> 'cancelled'
  AND NOT EXISTS (SELECT 1 FROM erp.invoice i WHERE i.order_id = o.id)
ORDER BY o.id
"""
LINES_SQL = """
SELECT quantity, unit_price_excl_vat, discount_excl_vat, vat_rate
FROM erp.sales_order_line WHERE order_id = %s ORDER BY line_number
"""


def invoice_web_orders(
    conn: psycopg.Connection, day: date, timezone: str = "Europe/Paris", *, credit_one: bool = True
) -> dict[str, list[str]]:
    """Invoice the web orders not yet invoiced on *day*; their payments are received at noon that
    day (the demo's orders come with the sample files' dates); with *credit_one*, the last one is
    credited whole and refunded. Returns the numbers of the invoices and credit notes made."""
    noon = datetime.combine(day, time(12), tzinfo=ZoneInfo(timezone))
    made: dict[str, list[str]] = {"invoices": [], "credit_notes": []}
    stamp = day.strftime("%Y%m%d")
    with conn.transaction():
        orders = conn.execute(ORDERS_SQL).fetchall()
        for n, (order_id, number, currency, ship, ship_rate) in enumerate(orders, start=1):
            lines = tuple(InvoiceLine(*row) for row in conn.execute(LINES_SQL, (order_id,)).fetchall())
            draft = JournalInvoice("", day, number, "", "", currency, Decimal(0), Decimal(0), Decimal(0), ship,
                                   ship_rate, lines)  # fmt: skip
            parts = vat_breakdown(draft).values()
            excl = sum((g + s for g, s, _ in parts), Decimal(0))
            vat = sum((v for _, _, v in parts), Decimal(0))
            invoice = f"FA-{stamp}-{n:03d}"
            conn.execute(
                "INSERT INTO erp.invoice (number, order_id, invoice_date, total_excl_vat, total_vat, total_incl_vat) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (invoice, order_id, day, excl, vat, excl + vat),
            )
            conn.execute("UPDATE erp.sales_order SET status = 'invoiced' WHERE id = %s", (order_id,))
            conn.execute(
                "UPDATE erp.payment SET paid = true, paid_at = %s WHERE order_id = %s AND amount <> 0",
                (noon, order_id),
            )
            made["invoices"].append(invoice)
            if credit_one and n == len(orders):
                credit = f"AV-{stamp}-001"
                conn.execute(
                    "INSERT INTO erp.invoice (number, order_id, invoice_date, total_excl_vat, total_vat, "
                    "total_incl_vat) VALUES (%s, %s, %s, %s, %s, %s)",
                    (credit, order_id, day, -excl, -vat, -(excl + vat)),
                )
                method = conn.execute(
                    "SELECT coalesce(max(method), 'Carte bancaire') FROM erp.payment WHERE order_id = %s", (order_id,)
                ).fetchone()[0]
                conn.execute(
                    "INSERT INTO erp.payment (order_id, method, amount, transaction_id, paid, paid_at) "
                    "VALUES (%s, %s, %s, %s, true, %s)",
                    (order_id, method, -(excl + vat), f"refund-{credit}", noon.replace(hour=16)),
                )
                made["credit_notes"].append(credit)
    return made


__all__ = ["invoice_web_orders"]
