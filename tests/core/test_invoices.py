"""Invoice PDFs: rendered with reportlab, read back with pypdf; the back office's own PDF as is."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal as D

import pandas as pd
import pytest
from pypdf import PdfReader

from passerelle.core.dialects.base import pdf_names
from passerelle.core.invoices import (
    Address,
    Invoice,
    InvoiceError,
    InvoiceLine,
    Seller,
    invoice_pdf,
    load_invoices,
    load_seller,
    pdf_name,
    render_invoice,
    vat_breakdown,
)

SELLER = Seller(
    name="Maison Passerelle SAS",
    line1="12 rue des Tanneurs",
    postcode="69002",
    city="Lyon",
    country="FR",
    siret="123 456 789 00012",
    vat_number="FR32123456789",
    legal_mentions="SAS au capital de 50 000 EUR - RCS Lyon 123 456 789.",
)


def _invoice(n_lines: int = 3, **over) -> Invoice:
    lines = tuple(
        InvoiceLine(
            i,
            f"ART-{i:06d}",
            f"Casserole inox {i}",
            D("2"),
            D("19.90"),
            D("0"),
            D("5.50") if i % 3 == 0 else D("20.00"),
        )
        for i in range(1, n_lines + 1)
    )
    base = {
        "number": "FA-2026-00042",
        "invoice_date": date(2026, 11, 20),
        "order_number": "WEB-1001",
        "billing": Address("Léa Martin", "8 rue des Lilas", None, "75011", "Paris", "FR"),
        "delivery": Address("Léa Martin", "Relais Pickup 12", None, "69003", "Lyon", "FR"),
        "lines": lines,
        "shipping_excl_vat": D("4.90"),
        "shipping_vat_rate": D("20"),
        "total_excl_vat": D("124.30"),
        "total_vat": D("23.87"),
        "total_incl_vat": D("148.17"),
        "shop_order_id": "PS-1001",
        "order_date": date(2026, 11, 19),
        "customer_code": "CLI-000001",
    }
    base.update(over)
    return Invoice(**base)


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_vat_breakdown_per_rate_with_shipping():
    rows = vat_breakdown(_invoice())  # lines 1, 2 at 20 %, line 3 at 5.5 %, shipping 4.90 at 20 %
    assert [(r.rate, r.base, r.vat) for r in rows] == [
        (D("5.50"), D("39.80"), D("2.19")),
        (D("20.00"), D("84.50"), D("16.90")),
    ]


def test_rendering_is_deterministic_and_shows_the_invoice():
    invoice = _invoice()
    first, second = render_invoice(invoice, SELLER), render_invoice(invoice, SELLER)
    assert first == second  # reportlab invariant mode
    assert first.startswith(b"%PDF-")
    text = _text(first)
    for expected in (
        "FACTURE",
        "FA-2026-00042",
        "WEB-1001",
        "PS-1001",
        "20/11/2026",
        "Maison Passerelle SAS",
        "SIRET 123 456 789 00012",
        "Léa Martin",
        "8 rue des Lilas",
        "Relais Pickup 12",
        "Casserole inox 3",
        "Frais de port",
        "Total TTC",
        "RCS Lyon",
    ):
        assert expected in text, expected
    flat = text.replace("\u00a0", " ")
    for amount in ("148,17 €", "23,87 €", "124,30 €", "84,50 €", "16,90 €", "2,19 €"):
        assert amount in flat, amount
    other = render_invoice(_invoice(number="FA-2026-00043"), SELLER)
    assert other != first and "FA-2026-00043" in _text(other)


def test_long_invoice_runs_over_pages_and_markup_in_data_is_text():
    invoice = _invoice(90, billing=Address("Dupont & Fils <SARL>", "3 rue <b>Pasteur</b>", None, "69002", "Lyon", "FR"))
    pdf = render_invoice(invoice, SELLER)
    pages = PdfReader(io.BytesIO(pdf)).pages
    assert len(pages) >= 2
    last = pages[-1].extract_text()
    assert "Désignation" in last and f"Page {len(pages)}" in last  # header row repeated, pages numbered
    assert "Dupont & Fils <SARL>" in _text(pdf) and "3 rue <b>Pasteur</b>" in _text(pdf)


def test_back_office_pdf_is_sent_as_it_is_and_a_bad_one_is_refused():
    stored = b"%PDF-1.7\n% from the back office\n%%EOF\n"
    assert invoice_pdf(_invoice(pdf=stored), SELLER) == (stored, "back_office")
    content, source = invoice_pdf(_invoice(), SELLER)
    assert source == "rendered" and content.startswith(b"%PDF-")
    with pytest.raises(
        InvoiceError,
        match=r"invoice FA-2026-00042: erp\.invoice\.pdf holds 9 bytes that are not a PDF "
        r"\(they start with b'<html/>\\r'",
    ):
        invoice_pdf(_invoice(pdf=b"<html/>\r\n"), SELLER)
    with pytest.raises(InvoiceError, match=r"invoice FA-2026-00042: order WEB-1001 has no lines"):
        render_invoice(_invoice(0), SELLER)


def test_pdf_names_are_plain_file_names():
    assert pdf_name("FA-2026-00042") == "invoice_FA-2026-00042.pdf"
    assert pdf_name("FA/2026 n°7") == "invoice_FA-2026-n-7.pdf"
    assert pdf_name("../../etc") == "invoice_..-..-etc.pdf"
    numbers = pd.Series(["FA-2026-00042", "FA/2026 n°7", "../../etc"])
    assert list(pdf_names(numbers)) == [pdf_name(n) for n in numbers]


def test_invoices_are_read_through_the_views(erp):
    """Addresses fall back to the customer's billing address; lines come with their references."""
    customer_id, code, address_name = erp.execute(
        "SELECT c.id, c.code, a.name FROM erp.customer c JOIN erp.address a ON a.customer_id = c.id "
        "AND a.kind = 'billing' WHERE c.web ORDER BY c.id LIMIT 1"
    ).fetchone()
    article_id, reference = erp.execute("SELECT id, reference FROM erp.article ORDER BY id LIMIT 1").fetchone()
    order_id = erp.execute(
        "INSERT INTO erp.sales_order (number, origin, shop_order_id, customer_id, order_date, status) "
        "VALUES ('WEB-7', 'web', 'PS-7', %s, '2026-11-19 23:30+00', 'invoiced') RETURNING id",
        (customer_id,),
    ).fetchone()[0]
    erp.execute(
        "INSERT INTO erp.sales_order_line (order_id, line_number, article_id, label, quantity, "
        "unit_price_excl_vat, discount_excl_vat, vat_rate) VALUES (%s, 1, %s, 'Poêle', 3, 10, 1.5, 20)",
        (order_id, article_id),
    )
    erp.execute(
        "INSERT INTO erp.invoice (number, order_id, invoice_date, total_excl_vat, total_vat, total_incl_vat) "
        "VALUES ('FA-7', %s, '2026-11-20', 28.5, 5.7, 34.2)",
        (order_id,),
    )
    erp.execute("SELECT set_config('passerelle.timezone', 'Europe/Paris', false)")
    (invoice,) = load_invoices(erp, ["FA-7", "FA-unknown"])
    assert invoice.billing.name == address_name and invoice.billing.city
    assert invoice.delivery is None and invoice.customer_code == code
    assert invoice.order_date == date(2026, 11, 20)  # 23:30 UTC is the next day in Paris
    assert [(x.reference, x.total_excl_vat) for x in invoice.lines] == [(reference, D("28.50"))]
    assert load_seller(erp).name
    text = _text(invoice_pdf(invoice, load_seller(erp))[0])
    assert "FA-7" in text and address_name in text
