"""Invoice PDFs for the shop's customer area.

An invoice is sent as the back office's own PDF when it keeps one (``erp.invoice.pdf``), else
rendered here from its data with reportlab: seller, customer, billing and delivery addresses,
lines, shipping, VAT breakdown per rate and totals. Rendering is deterministic (reportlab's
``invariant`` mode: fixed creation date and document id), so the same invoice always gives the
same bytes, and a rerun republishes exactly what was sent.

The data comes from the views ``passerelle_src.invoice_document``, ``invoice_line`` and
``seller`` (include/sql/views/20_exchange.sql); :func:`render_invoice` itself is pure.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from xml.sax.saxutils import escape

import psycopg
from psycopg.rows import dict_row

log = logging.getLogger(__name__)

#: Invoice PDF file names: ``invoice_<number>.pdf``, characters other than these replaced by "-".
PDF_NAME_PREFIX = "invoice_"
PDF_NAME_SUFFIX = ".pdf"
PDF_NAME_DROP = r"[^A-Za-z0-9._-]+"
_DROP = re.compile(PDF_NAME_DROP)

CENT = Decimal("0.01")
ZERO = Decimal("0")

#: Printed labels (the shop's customers are French).
LABELS = {
    "title": "FACTURE",
    "number": "N°",
    "date": "Date",
    "order": "Commande",
    "shop_order": "Commande web",
    "customer": "Client",
    "vat_number": "N° TVA",
    "billing": "Adresse de facturation",
    "delivery": "Adresse de livraison",
    "reference": "Réf.",
    "label": "Désignation",
    "quantity": "Qté",
    "unit_price": "PU HT",
    "discount": "Remise HT",
    "vat_rate": "TVA",
    "total": "Total HT",
    "shipping": "Frais de port",
    "rate": "Taux de TVA",
    "base": "Base HT",
    "vat": "Montant TVA",
    "total_excl_vat": "Total HT",
    "total_vat": "Total TVA",
    "total_incl_vat": "Total TTC",
    "page": "Page",
    "siret": "SIRET",
}


class InvoiceError(ValueError):
    """An invoice cannot be sent as it is; the message names the invoice and what to fix."""


@dataclass(frozen=True)
class Address:
    name: str | None
    line1: str | None
    line2: str | None = None
    postcode: str | None = None
    city: str | None = None
    country: str | None = None

    def lines(self) -> list[str]:
        town = " ".join(p for p in (self.postcode, self.city) if p)
        parts = [self.name, self.line1, self.line2, town, self.country if self.country not in (None, "FR") else None]
        return [p for p in parts if p]


@dataclass(frozen=True)
class Seller:
    name: str
    line1: str | None = None
    line2: str | None = None
    postcode: str | None = None
    city: str | None = None
    country: str | None = None
    siret: str | None = None
    vat_number: str | None = None
    email: str | None = None
    phone: str | None = None
    legal_mentions: str | None = None


@dataclass(frozen=True)
class InvoiceLine:
    line_number: int
    reference: str
    label: str
    quantity: Decimal
    unit_price_excl_vat: Decimal
    discount_excl_vat: Decimal
    vat_rate: Decimal

    @property
    def total_excl_vat(self) -> Decimal:
        return money(self.quantity * self.unit_price_excl_vat - self.discount_excl_vat)


@dataclass(frozen=True)
class VatRow:
    rate: Decimal
    base: Decimal
    vat: Decimal


@dataclass(frozen=True)
class Invoice:
    number: str
    invoice_date: date
    order_number: str
    billing: Address
    lines: tuple[InvoiceLine, ...]
    total_excl_vat: Decimal
    total_vat: Decimal
    total_incl_vat: Decimal
    shipping_excl_vat: Decimal = ZERO
    shipping_vat_rate: Decimal = Decimal("20")
    delivery: Address | None = None
    shop_order_id: str | None = None
    order_date: date | None = None
    currency: str = "EUR"
    customer_code: str | None = None
    customer_email: str | None = None
    customer_vat_number: str | None = None
    pdf: bytes | None = field(default=None, repr=False)


def money(value: Decimal) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def pdf_name(number: str) -> str:
    """The file name of an invoice's PDF on the shop's server: ``invoice_<number>.pdf``."""
    return PDF_NAME_PREFIX + _DROP.sub("-", number) + PDF_NAME_SUFFIX


def is_pdf(data: bytes | None) -> bool:
    return bool(data) and data.lstrip()[:5] == b"%PDF-"


def vat_breakdown(invoice: Invoice) -> list[VatRow]:
    """Base and VAT per rate (lines and shipping), VAT rounded per rate, rates ascending."""
    bases: dict[Decimal, Decimal] = {}
    for line in invoice.lines:
        rate = Decimal(line.vat_rate)
        bases[rate] = bases.get(rate, ZERO) + line.total_excl_vat
    if invoice.shipping_excl_vat:
        rate = Decimal(invoice.shipping_vat_rate)
        bases[rate] = bases.get(rate, ZERO) + money(invoice.shipping_excl_vat)
    return [VatRow(rate, money(base), money(base * rate / 100)) for rate, base in sorted(bases.items())]


def invoice_pdf(invoice: Invoice, seller: Seller) -> tuple[bytes, str]:
    """(PDF bytes, source): the back office's own PDF when it keeps one, else a rendered one."""
    if invoice.pdf is not None:
        if not is_pdf(invoice.pdf):
            raise InvoiceError(
                f"invoice {invoice.number}: erp.invoice.pdf holds {len(invoice.pdf)} bytes that are not a PDF "
                f"(they start with {invoice.pdf[:8]!r}, expected %PDF-); store the real PDF, or clear the "
                f"column so that Passerelle renders one"
            )
        return invoice.pdf, "back_office"
    return render_invoice(invoice, seller), "rendered"


# -------------------------------------------------------------------------------- rendering


def _amount(value: Decimal, currency: str = "EUR") -> str:
    """French style: 1 234,56 € (non-breaking spaces)."""
    text = f"{money(value):,.2f}".replace(",", "\u00a0").replace(".", ",")
    return f"{text}\u00a0{'€' if currency == 'EUR' else currency}"


def _number(value: Decimal) -> str:
    text = format(Decimal(value).normalize(), "f")
    return text.replace(".", ",")


def _rate(value: Decimal) -> str:
    return f"{Decimal(value):.2f}".replace(".", ",") + "\u00a0%"


def _day(value: date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else ""


def render_invoice(invoice: Invoice, seller: Seller) -> bytes:
    """The invoice as an A4 PDF (reportlab), the same bytes for the same invoice."""
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_RIGHT
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    if not invoice.lines:
        raise InvoiceError(f"invoice {invoice.number}: order {invoice.order_number} has no lines to bill")
    cur = invoice.currency
    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["Normal"], fontName="Helvetica", fontSize=9, leading=11)
    small = ParagraphStyle("small", parent=body, fontSize=7, leading=9)
    bold = ParagraphStyle("bold", parent=body, fontName="Helvetica-Bold")
    title = ParagraphStyle("title", parent=body, fontName="Helvetica-Bold", fontSize=18, leading=22, alignment=TA_RIGHT)
    right = ParagraphStyle("right", parent=body, alignment=TA_RIGHT)
    bold_right = ParagraphStyle("bold_right", parent=bold, alignment=TA_RIGHT)

    def para(text: str | None, style=body) -> Paragraph:
        return Paragraph(escape(text or ""), style)

    def block(lines: list[str], style=body) -> Paragraph:
        return Paragraph("<br/>".join(escape(x) for x in lines), style)

    seller_lines = [
        seller.line1,
        seller.line2,
        " ".join(p for p in (seller.postcode, seller.city) if p),
        seller.phone,
        seller.email,
        f"{LABELS['siret']} {seller.siret}" if seller.siret else None,
        f"{LABELS['vat_number']} {seller.vat_number}" if seller.vat_number else None,
    ]
    head_right = [
        f"{LABELS['number']} {invoice.number}",
        f"{LABELS['date']} : {_day(invoice.invoice_date)}",
        f"{LABELS['order']} : {invoice.order_number}"
        + (f" du {_day(invoice.order_date)}" if invoice.order_date else ""),
    ]
    if invoice.shop_order_id:
        head_right.append(f"{LABELS['shop_order']} : {invoice.shop_order_id}")
    if invoice.customer_code:
        head_right.append(f"{LABELS['customer']} : {invoice.customer_code}")
    if invoice.customer_vat_number:
        head_right.append(f"{LABELS['vat_number']} : {invoice.customer_vat_number}")

    width = A4[0] - 36 * mm
    story: list = []
    header = Table(
        [
            [
                [
                    Paragraph(escape(seller.name), ParagraphStyle("seller", parent=bold, fontSize=12, leading=15)),
                    block([x for x in seller_lines if x]),
                ],
                [Paragraph(LABELS["title"], title), block(head_right, right)],
            ]
        ],
        colWidths=[width * 0.55, width * 0.45],
    )
    header.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("RIGHTPADDING", (0, 0), (-1, -1), 0),
            ]
        )
    )
    story += [header, Spacer(1, 8 * mm)]

    billing = [para(LABELS["billing"], bold), block(invoice.billing.lines())]
    delivery = [para(LABELS["delivery"], bold), block(invoice.delivery.lines())] if invoice.delivery else ""
    addresses = Table([[billing, delivery]], colWidths=[width / 2, width / 2])
    addresses.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    story += [addresses, Spacer(1, 8 * mm)]

    rows = [
        [para(LABELS[k], bold) for k in ("reference", "label")]
        + [para(LABELS[k], bold_right) for k in ("quantity", "unit_price", "discount", "vat_rate", "total")]
    ]
    for line in invoice.lines:
        rows.append(
            [
                para(line.reference, small),
                para(line.label),
                para(_number(line.quantity), right),
                para(_amount(line.unit_price_excl_vat, cur), right),
                para(_amount(line.discount_excl_vat, cur) if line.discount_excl_vat else "", right),
                para(_rate(line.vat_rate), right),
                para(_amount(line.total_excl_vat, cur), right),
            ]
        )
    if invoice.shipping_excl_vat:
        shipping = _amount(invoice.shipping_excl_vat, cur)
        rows.append(
            [
                para(""),
                para(LABELS["shipping"]),
                para("1", right),
                para(shipping, right),
                para(""),
                para(_rate(invoice.shipping_vat_rate), right),
                para(shipping, right),
            ]
        )
    table = Table(rows, colWidths=[w * width for w in (0.15, 0.32, 0.07, 0.12, 0.11, 0.11, 0.12)], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
                ("LINEBELOW", (0, 1), (-1, -1), 0.25, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story += [table, Spacer(1, 6 * mm)]

    breakdown = vat_breakdown(invoice)
    vat_rows = [[para(LABELS["rate"], bold), para(LABELS["base"], bold_right), para(LABELS["vat"], bold_right)]]
    vat_rows += [
        [para(_rate(r.rate)), para(_amount(r.base, cur), right), para(_amount(r.vat, cur), right)] for r in breakdown
    ]
    vat_table = Table(vat_rows, colWidths=[width * 0.15, width * 0.15, width * 0.15])
    vat_table.setStyle(TableStyle([("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black)]))
    totals = Table(
        [
            [para(LABELS["total_excl_vat"]), para(_amount(invoice.total_excl_vat, cur), right)],
            [para(LABELS["total_vat"]), para(_amount(invoice.total_vat, cur), right)],
            [para(LABELS["total_incl_vat"], bold), para(_amount(invoice.total_incl_vat, cur), bold_right)],
        ],
        colWidths=[width * 0.2, width * 0.2],
    )
    totals.setStyle(TableStyle([("LINEABOVE", (0, 2), (-1, 2), 0.8, colors.black)]))
    bottom = Table([[vat_table, totals]], colWidths=[width * 0.55, width * 0.45])
    bottom.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("ALIGN", (1, 0), (1, 0), "RIGHT"),
            ]
        )
    )
    story.append(bottom)

    computed = sum((r.vat for r in breakdown), ZERO)
    if abs(computed - money(invoice.total_vat)) > CENT:
        log.warning(
            "invoice %s: VAT of its lines is %s, the invoice says %s (printed as the invoice says)",
            invoice.number,
            computed,
            invoice.total_vat,
        )

    def footer(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        y = 12 * mm
        if seller.legal_mentions:
            text = Paragraph(escape(seller.legal_mentions), small)
            text.wrap(width, 14 * mm)
            text.drawOn(canvas, 18 * mm, y)
        canvas.drawRightString(A4[0] - 18 * mm, 7 * mm, f"{invoice.number} - {LABELS['page']} {doc.page}")
        canvas.restoreState()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=28 * mm,
        invariant=1,
        title=f"{LABELS['title'].capitalize()} {invoice.number}",
        author=seller.name,
        subject=f"{LABELS['order']} {invoice.order_number}",
        creator="Passerelle",
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()


# ------------------------------------------------------------------------------ reading


def load_seller(conn: psycopg.Connection) -> Seller:
    """The seller printed on rendered invoices (view ``passerelle_src.seller``, one row)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM passerelle_src.seller").fetchall()
    if len(rows) != 1 or not rows[0].get("name"):
        raise InvoiceError(
            f"view passerelle_src.seller must hold exactly one row with a name, it holds {len(rows)} "
            f"(include/sql/views/20_exchange.sql)"
        )
    return Seller(**{k: rows[0].get(k) for k in Seller.__dataclass_fields__})


def load_invoices(conn: psycopg.Connection, keys: Sequence[str]) -> list[Invoice]:
    """The invoices of these keys with their lines, in key order: two set-wise queries."""
    keys = list(keys)
    with conn.cursor(row_factory=dict_row) as cur:
        docs = cur.execute(
            "SELECT * FROM passerelle_src.invoice_document WHERE key = ANY(%s) ORDER BY key", (keys,)
        ).fetchall()
        line_rows = cur.execute(
            "SELECT * FROM passerelle_src.invoice_line WHERE invoice_key = ANY(%s) ORDER BY invoice_key, line_number",
            (keys,),
        ).fetchall()
    lines: dict[str, list[InvoiceLine]] = {}
    for r in line_rows:
        lines.setdefault(r["invoice_key"], []).append(
            InvoiceLine(
                r["line_number"],
                r["reference"],
                r["label"],
                r["quantity"],
                r["unit_price_excl_vat"],
                r["discount_excl_vat"],
                r["vat_rate"],
            )
        )
    out = []
    for d in docs:
        delivery = None
        if d["delivery_line1"]:
            delivery = Address(
                d["delivery_name"],
                d["delivery_line1"],
                d["delivery_line2"],
                d["delivery_postcode"],
                d["delivery_city"],
                d["delivery_country"],
            )
        out.append(
            Invoice(
                number=d["invoice_number"],
                invoice_date=d["invoice_date"],
                order_number=d["order_number"],
                billing=Address(
                    d["billing_name"],
                    d["billing_line1"],
                    d["billing_line2"],
                    d["billing_postcode"],
                    d["billing_city"],
                    d["billing_country"],
                ),
                lines=tuple(lines.get(d["key"], ())),
                total_excl_vat=d["total_excl_vat"],
                total_vat=d["total_vat"],
                total_incl_vat=d["total_incl_vat"],
                shipping_excl_vat=d["shipping_excl_vat"],
                shipping_vat_rate=d["shipping_vat_rate"],
                delivery=delivery,
                shop_order_id=d["shop_order_id"],
                order_date=d["order_date"],
                currency=d["currency"],
                customer_code=d["customer_code"],
                customer_email=d["customer_email"],
                customer_vat_number=d["customer_vat_number"],
                pdf=bytes(d["pdf"]) if d["pdf"] is not None else None,
            )
        )
    return out
