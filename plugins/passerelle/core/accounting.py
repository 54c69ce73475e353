"""The sales journal for the accountant: one day's web invoices and payments as balanced entries,
written as France's *fichier des écritures comptables* (FEC) and as a plain CSV journal.

- an invoice is one entry in the sales journal: the customer's account (411, its auxiliary
  account per customer or the collective one) debited with the total incl. VAT; per VAT rate the
  rate's sales account credited with the base excl. VAT (shipping on its own account when
  ``accounting.shipping`` is set) and the rate's VAT-collected account with the VAT. A credit
  note (an invoice whose totals are negative) is the same entry with debits and credits swapped;
- a payment received is one entry in the payments journal: the method's account (bank, PayPal,
  card clearing) debited, the customer's account credited (a refund: swapped).

The amounts per rate come from the invoice's lines (its order's lines and shipping, VAT rounded
per rate as on the printed invoice: :func:`passerelle.core.invoices.vat_breakdown`); they must
give the invoice's own totals to the cent, and excl. VAT + VAT must be incl. VAT, or the day is
refused with an error naming each invoice that does not add up (:class:`JournalError`); nothing
is written then. Every file is read back after rendering and refused unless each entry balances
(:func:`check_file`).

The FEC follows article A47 A-1 of the Livre des procédures fiscales and BOI-CF-IOR-60-40-20
(docs/formats/accounting.md): the 18 fields in their order, their names on the first line, one
separator (tab or ``|``), dates ``YYYYMMDD``, amounts with a decimal comma and no thousands
separator, ISO-8859-15 text, records ended by CR LF; named ``<SIREN>FEC<YYYYMMDD>.txt``.

:func:`collect_journal` reads the back office (views ``passerelle_src.journal_*``,
include/sql/views/80_accounting.sql); everything else is pure.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

#: The FEC's 18 fields, in the order article A47 A-1 (VII, 1°) lists them.
FEC_COLUMNS: tuple[str, ...] = (
    "JournalCode",
    "JournalLib",
    "EcritureNum",
    "EcritureDate",
    "CompteNum",
    "CompteLib",
    "CompAuxNum",
    "CompAuxLib",
    "PieceRef",
    "PieceDate",
    "EcritureLib",
    "Debit",
    "Credit",
    "EcritureLet",
    "DateLet",
    "ValidDate",
    "Montantdevise",
    "Idevise",
)
#: The plain CSV journal's columns (comma-separated, UTF-8, ISO dates, decimal point).
CSV_COLUMNS: tuple[str, ...] = (
    "journal",
    "entry",
    "date",
    "account",
    "account_label",
    "auxiliary_account",
    "auxiliary_label",
    "piece",
    "piece_date",
    "label",
    "debit",
    "credit",
    "currency",
)
#: The FEC's character set (article A47 A-1: ASCII, ISO 8859-15 or EBCDIC).
FEC_ENCODING = "iso-8859-15"
FEC_LINE_END = "\r\n"

CENT = Decimal("0.01")
ZERO = Decimal(0)
#: Cells a spreadsheet would evaluate: prefixed with ' in the CSV journal (a person opens it).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class JournalError(ValueError):
    """The day's journal cannot be written: each problem names the invoice or payment, what it
    holds and what was expected (one per line)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class InvoiceLine:
    """One line an invoice bills (``passerelle_src.journal_invoice_line``)."""

    quantity: Decimal
    unit_price_excl_vat: Decimal
    discount_excl_vat: Decimal
    vat_rate: Decimal

    @property
    def total_excl_vat(self) -> Decimal:
        return money(Decimal(self.quantity) * Decimal(self.unit_price_excl_vat) - Decimal(self.discount_excl_vat))


@dataclass(frozen=True)
class JournalInvoice:
    """An invoice or credit note of a web order (``passerelle_src.journal_invoice``)."""

    invoice_number: str
    invoice_date: date
    order_number: str
    customer_code: str
    customer_name: str
    currency: str
    total_excl_vat: Decimal
    total_vat: Decimal
    total_incl_vat: Decimal
    shipping_excl_vat: Decimal = ZERO
    shipping_vat_rate: Decimal = Decimal(20)
    lines: tuple[InvoiceLine, ...] = ()

    @property
    def is_credit_note(self) -> bool:
        return Decimal(self.total_incl_vat) < 0 or (
            Decimal(self.total_incl_vat) == 0 and Decimal(self.total_excl_vat) < 0
        )


@dataclass(frozen=True)
class JournalPayment:
    """A payment received on a web order (``passerelle_src.journal_payment``); a refund is negative."""

    payment_id: int
    order_number: str
    customer_code: str
    customer_name: str
    currency: str
    method: str | None
    amount: Decimal
    transaction_id: str | None
    paid_on: date


@dataclass(frozen=True)
class EntryLine:
    """One line of an entry: an account debited or credited (one of the two is zero)."""

    account: str
    account_label: str
    debit: Decimal = ZERO
    credit: Decimal = ZERO
    auxiliary: str = ""
    auxiliary_label: str = ""


@dataclass(frozen=True)
class Entry:
    """One accounting entry (*écriture*): a journal, a date, a piece, lines that balance."""

    journal_code: str
    journal_label: str
    date: date
    piece_ref: str
    piece_date: date
    label: str
    lines: tuple[EntryLine, ...]
    number: str = ""

    @property
    def debit(self) -> Decimal:
        return sum((line.debit for line in self.lines), ZERO)

    @property
    def credit(self) -> Decimal:
        return sum((line.credit for line in self.lines), ZERO)

    @property
    def balanced(self) -> bool:
        return self.debit == self.credit


@dataclass
class Journal:
    """One day's entries, numbered, sales first then payments; what was left out and why."""

    day: date
    entries: list[Entry] = field(default_factory=list)
    invoices: int = 0
    credit_notes: int = 0
    payments: int = 0

    @property
    def debit(self) -> Decimal:
        return sum((e.debit for e in self.entries), ZERO)

    @property
    def credit(self) -> Decimal:
        return sum((e.credit for e in self.entries), ZERO)


def money(value: Any) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def _rate_text(rate: Decimal) -> str:
    text = format(Decimal(rate).normalize(), "f")
    return text.replace(".", ",")


# --------------------------------------------------------------------------- entries


def vat_breakdown(invoice: JournalInvoice) -> dict[Decimal, tuple[Decimal, Decimal, Decimal]]:
    """Per VAT rate (ascending): (goods base, shipping base, VAT), as the order's lines give them
    (positive, whatever the invoice's sign): the printed invoice's breakdown
    (:func:`passerelle.core.invoices.vat_breakdown`: lines rounded each, VAT rounded per rate)."""
    goods: dict[Decimal, Decimal] = {}
    shipping: dict[Decimal, Decimal] = {}
    for line in invoice.lines:
        rate = Decimal(line.vat_rate).normalize()
        goods[rate] = goods.get(rate, ZERO) + line.total_excl_vat
    if invoice.shipping_excl_vat:
        rate = Decimal(invoice.shipping_vat_rate).normalize()
        shipping[rate] = shipping.get(rate, ZERO) + money(invoice.shipping_excl_vat)
    out = {}
    for rate in sorted(set(goods) | set(shipping)):
        g, s = money(goods.get(rate, ZERO)), money(shipping.get(rate, ZERO))
        out[rate] = (g, s, money((g + s) * rate / 100))
    return out


def _side(amount: Decimal, *, debit: bool) -> dict[str, Decimal]:
    """``debit=`` or ``credit=`` for a positive amount on its natural side (swapped when negative)."""
    if amount < 0:
        amount, debit = -amount, not debit
    return {"debit": amount, "credit": ZERO} if debit else {"debit": ZERO, "credit": amount}


def _customer(settings: Any, code: str, name: str) -> dict[str, str]:
    customers = settings.customers
    if customers.auxiliary == "per_customer":
        return {"auxiliary": f"{customers.auxiliary_prefix}{code}", "auxiliary_label": name}
    return {}


def invoice_entry(invoice: JournalInvoice, settings: Any) -> Entry:
    """The sales-journal entry of *invoice* (*settings*: the ``accounting`` section).

    :raises JournalError: the invoice's amounts do not add up (its totals, or its lines against
        its totals), it has no line, it is in another currency, or a rate has no accounts.
    """
    name = f"invoice {invoice.invoice_number} (order {invoice.order_number})"
    problems: list[str] = []
    excl, vat, incl = money(invoice.total_excl_vat), money(invoice.total_vat), money(invoice.total_incl_vat)
    if invoice.currency != settings.currency:
        problems.append(
            f"{name}: in {invoice.currency}, the accounts are kept in {settings.currency} (accounting.currency); "
            f"enter it in the accounts by hand with its exchange rate"
        )
    if excl + vat != incl:
        problems.append(
            f"{name}: total_excl_vat {excl} + total_vat {vat} = {excl + vat}, but total_incl_vat is {incl}; "
            f"its amounts do not add up"
        )
    breakdown = vat_breakdown(invoice)
    if not breakdown:
        problems.append(f"{name}: no line and no shipping; nothing says which VAT rate it is at")
    sign = -1 if invoice.is_credit_note else 1
    base = sign * sum((g + s for g, s, _ in breakdown.values()), ZERO)
    tax = sign * sum((v for _, _, v in breakdown.values()), ZERO)
    if breakdown and (base != excl or tax != vat):
        detail = ", ".join(
            f"{_rate_text(r)} %: {sign * (g + s)} + VAT {sign * v}" for r, (g, s, v) in breakdown.items()
        )
        problems.append(
            f"{name}: its lines give {base} excl. VAT and {tax} VAT ({detail}), but the invoice says "
            f"{excl} excl. VAT and {vat} VAT; its amounts do not add up"
        )
    for rate in breakdown:
        if settings.rate_accounts(rate) is None:
            problems.append(
                f"{name}: VAT rate {_rate_text(rate)} % has no accounts; add it under accounting.vat_rates "
                f"(rates configured: {', '.join(settings.vat_rates) or 'none'})"
            )
    if problems:
        raise JournalError(problems)
    credit_note = invoice.is_credit_note
    customer = settings.customers
    lines = [
        EntryLine(
            customer.account,
            customer.label,
            **_side(incl, debit=True),
            **_customer(settings, invoice.customer_code, invoice.customer_name),
        )
    ]
    for rate, (goods, shipping, tax) in breakdown.items():
        accounts = settings.rate_accounts(rate)
        if settings.shipping is None:
            goods, shipping = goods + shipping, ZERO
        if goods:
            lines.append(EntryLine(accounts.sales_account, accounts.sales_label, **_side(sign * goods, debit=False)))
        if shipping:
            lines.append(
                EntryLine(settings.shipping.account, settings.shipping.label, **_side(sign * shipping, debit=False))
            )
        if tax:
            lines.append(EntryLine(accounts.vat_account, accounts.vat_label, **_side(sign * tax, debit=False)))
    kind = "Avoir" if credit_note else "Facture"
    return Entry(
        journal_code=settings.sales_journal.code,
        journal_label=settings.sales_journal.label,
        date=invoice.invoice_date,
        piece_ref=invoice.invoice_number,
        piece_date=invoice.invoice_date,
        label=f"{kind} {invoice.invoice_number} {invoice.customer_name}",
        lines=tuple(lines),
    )


def payment_entry(payment: JournalPayment, settings: Any) -> Entry:
    """The payments-journal entry of *payment* (*settings*: the ``accounting`` section).

    :raises JournalError: its method has no account, or it is in another currency.
    """
    name = f"payment {payment.payment_id} of order {payment.order_number}"
    problems = []
    method = settings.method_account(payment.method)
    if method is None:
        known = ", ".join(repr(k) for k in settings.payment_methods) or "none"
        problems.append(
            f"{name}: method {payment.method!r} has no account; add it under accounting.payment_methods "
            f"(methods configured: {known})"
        )
    if payment.currency != settings.currency:
        problems.append(
            f"{name}: in {payment.currency}, the accounts are kept in {settings.currency} (accounting.currency)"
        )
    if problems:
        raise JournalError(problems)
    amount = money(payment.amount)
    refund = amount < 0
    piece = payment.transaction_id or f"{payment.order_number}-P{payment.payment_id}"
    lines = (
        EntryLine(method.account, method.label, **_side(amount, debit=True)),
        EntryLine(
            settings.customers.account,
            settings.customers.label,
            **_side(amount, debit=False),
            **_customer(settings, payment.customer_code, payment.customer_name),
        ),
    )
    what = "Remboursement" if refund else "Règlement"
    return Entry(
        journal_code=settings.payments_journal.code,
        journal_label=settings.payments_journal.label,
        date=payment.paid_on,
        piece_ref=piece,
        piece_date=payment.paid_on,
        label=f"{what} {payment.method} commande {payment.order_number} {payment.customer_name}",
        lines=lines,
    )


def build_journal(
    day: date, invoices: Iterable[JournalInvoice], payments: Iterable[JournalPayment], settings: Any
) -> Journal:
    """The day's entries: the invoices (by number) then the payments (by id), numbered
    ``<YYYYMMDD>-<n>`` in that order; a payment of zero is left out.

    :raises JournalError: every invoice or payment that cannot be entered, each named.
    """
    journal = Journal(day)
    problems: list[str] = []
    entries: list[Entry] = []
    for invoice in sorted(invoices, key=lambda i: i.invoice_number):
        try:
            entries.append(invoice_entry(invoice, settings))
        except JournalError as exc:
            problems.extend(exc.problems)
            continue
        if invoice.is_credit_note:
            journal.credit_notes += 1
        else:
            journal.invoices += 1
    for payment in sorted(payments, key=lambda p: p.payment_id):
        if money(payment.amount) == 0:
            continue
        try:
            entries.append(payment_entry(payment, settings))
        except JournalError as exc:
            problems.extend(exc.problems)
            continue
        journal.payments += 1
    if problems:
        raise JournalError([f"the journal of {day.isoformat()} is not written:", *problems])
    stamp = day.strftime("%Y%m%d")
    journal.entries = [Entry(**{**e.__dict__, "number": f"{stamp}-{n:04d}"}) for n, e in enumerate(entries, start=1)]
    check_entries(journal.entries)
    return journal


def check_entries(entries: Iterable[Entry]) -> None:
    """Each entry balances (debits = credits), has two lines or more and no negative amount.

    :raises JournalError: naming each entry that does not, with its piece and its two totals.
    """
    problems = []
    for e in entries:
        if not e.balanced:
            problems.append(f"entry {e.number} ({e.piece_ref}): debits {e.debit} but credits {e.credit}; not balanced")
        if len(e.lines) < 2:
            problems.append(f"entry {e.number} ({e.piece_ref}): {len(e.lines)} line; an entry has two or more")
        if any(line.debit < 0 or line.credit < 0 for line in e.lines):
            problems.append(f"entry {e.number} ({e.piece_ref}): a negative amount")
    if problems:
        raise JournalError(problems)


# --------------------------------------------------------------------------- files


def fec_name(siren: str, day: date) -> str:
    """``<SIREN>FEC<YYYYMMDD>.txt`` (article A47 A-1's naming; here the date is the journal's day)."""
    return f"{siren}FEC{day.strftime('%Y%m%d')}.txt"


def csv_name(day: date) -> str:
    return f"journal-{day.isoformat()}.csv"


def fec_amount(value: Decimal) -> str:
    """``1234,50``: decimal comma, two decimals, no thousands separator."""
    return format(money(value), "f").replace(".", ",")


def fec_text(value: Any, separator: str) -> str:
    """A text field as the FEC can hold it: one line, no separator character, ISO-8859-15 (a
    character outside it is written without its accent, else as ``?``)."""
    text = " ".join(str(value or "").replace(separator, " ").split())
    out = []
    for ch in text:
        try:
            ch.encode(FEC_ENCODING)
            out.append(ch)
        except UnicodeEncodeError:
            plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode("ascii")
            out.append(plain or "?")
    return "".join(out)


def fec_rows(journal: Journal, separator: str) -> list[list[str]]:
    """The FEC's records (without the header), in the order of the entries."""
    rows = []
    t = lambda v: fec_text(v, separator)
    for e in journal.entries:
        for line in e.lines:
            rows.append(
                [
                    t(e.journal_code),
                    t(e.journal_label),
                    t(e.number),
                    e.date.strftime("%Y%m%d"),
                    t(line.account),
                    t(line.account_label),
                    t(line.auxiliary),
                    t(line.auxiliary_label),
                    t(e.piece_ref),
                    e.piece_date.strftime("%Y%m%d"),
                    t(e.label),
                    fec_amount(line.debit),
                    fec_amount(line.credit),
                    "",  # EcritureLet: lettering is the accountant's (docs/formats/accounting.md)
                    "",  # DateLet
                    journal.day.strftime("%Y%m%d"),  # ValidDate: the day the export fixes the entries
                    "",  # Montantdevise: the accounts' own currency only
                    "",  # Idevise
                ]
            )
    return rows


def render_fec(journal: Journal, separator: str = "\t") -> bytes:
    """The day's FEC, checked after rendering (:func:`check_file`)."""
    if separator not in ("\t", "|"):
        raise ValueError(f"the FEC's separator is a tab or '|', got {separator!r}")
    lines = [separator.join(FEC_COLUMNS)] + [separator.join(r) for r in fec_rows(journal, separator)]
    data = (FEC_LINE_END.join(lines) + FEC_LINE_END).encode(FEC_ENCODING)
    check_file(read_fec(data, separator), f"the FEC of {journal.day.isoformat()}")
    return data


def render_csv(journal: Journal, currency: str = "EUR") -> bytes:
    """The day's plain CSV journal (UTF-8, comma, ISO dates, decimal point), checked after rendering."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for e in journal.entries:
        for line in e.lines:
            w.writerow(
                [
                    e.journal_code,
                    e.number,
                    e.date.isoformat(),
                    line.account,
                    _cell(line.account_label),
                    _cell(line.auxiliary),
                    _cell(line.auxiliary_label),
                    _cell(e.piece_ref),
                    e.piece_date.isoformat(),
                    _cell(e.label),
                    format(money(line.debit), "f"),
                    format(money(line.credit), "f"),
                    currency,
                ]
            )
    data = buf.getvalue().encode("utf-8")
    check_file(read_csv(data), f"the CSV journal of {journal.day.isoformat()}")
    return data


def _cell(value: Any) -> str:
    text = " ".join(str(value or "").split())
    return "'" + text if text.startswith(FORMULA_START) else text


def read_fec(data: bytes, separator: str | None = None) -> list[dict[str, Any]]:
    """A FEC's records as ``{"entry", "debit", "credit", ...field: value}`` (the separator guessed
    from the header when not given); the header must be the 18 fields in their order.

    :raises JournalError: a header, a record's field count, a date or an amount out of format.
    """
    text = data.decode(FEC_ENCODING)
    lines = text.split(FEC_LINE_END) if FEC_LINE_END in text else text.splitlines()
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise JournalError(["the file is empty; its first line must name the 18 fields"])
    separator = separator or ("\t" if "\t" in lines[0] else "|")
    header = tuple(lines[0].split(separator))
    if header != FEC_COLUMNS:
        raise JournalError([f"line 1: the fields are {list(header)}, expected {list(FEC_COLUMNS)} in this order"])
    records = []
    for n, line in enumerate(lines[1:], start=2):
        values = line.split(separator)
        if len(values) != len(FEC_COLUMNS):
            raise JournalError([f"line {n}: {len(values)} fields, expected {len(FEC_COLUMNS)}"])
        row: dict[str, Any] = dict(zip(FEC_COLUMNS, values, strict=True))
        for key in ("EcritureDate", "PieceDate", "ValidDate"):
            try:
                datetime.strptime(row[key], "%Y%m%d")
            except ValueError:
                raise JournalError([f"line {n}: {key} {row[key]!r} is not a date YYYYMMDD"]) from None
        row["entry"] = row["EcritureNum"]
        row["debit"] = _fec_number(row["Debit"], n, "Debit")
        row["credit"] = _fec_number(row["Credit"], n, "Credit")
        row["line"] = n
        records.append(row)
    return records


def _fec_number(text: str, line: int, key: str) -> Decimal:
    import re

    if not re.fullmatch(r"-?[0-9]+(,[0-9]{1,2})?", text):
        raise JournalError([f"line {line}: {key} {text!r} is not an amount such as 1234,50 (decimal comma)"])
    return Decimal(text.replace(",", "."))


def read_csv(data: bytes) -> list[dict[str, Any]]:
    """The CSV journal's rows as ``{"entry", "debit", "credit", ...column: value}``."""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
    if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
        raise JournalError([f"line 1: the columns are {reader.fieldnames}, expected {list(CSV_COLUMNS)}"])
    rows = []
    for n, row in enumerate(reader, start=2):
        rows.append(
            {**row, "entry": row["entry"], "debit": Decimal(row["debit"]), "credit": Decimal(row["credit"]), "line": n}
        )
    return rows


def check_file(records: Sequence[Mapping[str, Any]], what: str) -> dict[str, tuple[Decimal, Decimal]]:
    """Debits and credits per entry of a written file; every entry must balance.

    :returns: entry number -> (debits, credits).
    :raises JournalError: naming *what* and each entry whose debits and credits differ.
    """
    totals: dict[str, tuple[Decimal, Decimal]] = {}
    for r in records:
        d, c = totals.get(r["entry"], (ZERO, ZERO))
        totals[r["entry"]] = (d + r["debit"], c + r["credit"])
    wrong = [f"entry {k}: debits {d} but credits {c}" for k, (d, c) in totals.items() if d != c]
    if wrong:
        raise JournalError([f"{what} is not written: it does not balance", *wrong])
    return totals


# --------------------------------------------------------------------------- reading


INVOICES_SQL = """
SELECT invoice_number, invoice_date, order_number, customer_code, customer_name, currency,
       total_excl_vat, total_vat, total_incl_vat, shipping_excl_vat, shipping_vat_rate
FROM passerelle_src.journal_invoice
WHERE invoice_date = %(day)s
ORDER BY invoice_number
"""
LINES_SQL = """
SELECT l.invoice_number, l.quantity, l.unit_price_excl_vat, l.discount_excl_vat, l.vat_rate
FROM passerelle_src.journal_invoice_line l
JOIN passerelle_src.journal_invoice i ON i.invoice_number = l.invoice_number
WHERE i.invoice_date = %(day)s
ORDER BY l.invoice_number, l.line_number
"""
PAYMENTS_SQL = """
SELECT payment_id, order_number, customer_code, customer_name, currency, method, amount, transaction_id, paid_at
FROM passerelle_src.journal_payment
WHERE paid_at >= %(start)s AND paid_at < %(end)s
ORDER BY payment_id
"""


def day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    """Midnight to midnight of *day* in *timezone* (23 or 25 hours on the clock changes)."""
    tz = ZoneInfo(timezone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    after = day + timedelta(days=1)
    return start, datetime(after.year, after.month, after.day, tzinfo=tz)


def collect_journal(conn: Any, day: date, timezone: str) -> tuple[list[JournalInvoice], list[JournalPayment]]:
    """The invoices dated *day* and the payments received on *day* (in the shop's *timezone*) of
    web orders, read in one REPEATABLE READ snapshot when the connection is outside a transaction."""
    start, end = day_bounds(day, timezone)
    lines: dict[str, list[InvoiceLine]] = {}
    with conn.cursor() as cur:
        cur.execute(LINES_SQL, {"day": day})
        for number, qty, price, discount, rate in cur.fetchall():
            lines.setdefault(number, []).append(InvoiceLine(qty, price, discount, rate))
        cur.execute(INVOICES_SQL, {"day": day})
        invoices = [
            JournalInvoice(
                invoice_number=r[0],
                invoice_date=r[1],
                order_number=r[2],
                customer_code=r[3],
                customer_name=r[4],
                currency=r[5],
                total_excl_vat=r[6],
                total_vat=r[7],
                total_incl_vat=r[8],
                shipping_excl_vat=r[9],
                shipping_vat_rate=r[10],
                lines=tuple(lines.get(r[0], ())),
            )
            for r in cur.fetchall()
        ]
        cur.execute(PAYMENTS_SQL, {"start": start, "end": end})
        tz = ZoneInfo(timezone)
        payments = [
            JournalPayment(
                payment_id=r[0],
                order_number=r[1],
                customer_code=r[2],
                customer_name=r[3],
                currency=r[4],
                method=r[5],
                amount=r[6],
                transaction_id=r[7],
                paid_on=r[8].astimezone(tz).date(),
            )
            for r in cur.fetchall()
        ]
    return invoices, payments


__all__ = [
    "CSV_COLUMNS",
    "FEC_COLUMNS",
    "Entry",
    "EntryLine",
    "InvoiceLine",
    "Journal",
    "JournalError",
    "JournalInvoice",
    "JournalPayment",
    "build_journal",
    "check_entries",
    "check_file",
    "collect_journal",
    "csv_name",
    "day_bounds",
    "fec_name",
    "invoice_entry",
    "payment_entry",
    "read_csv",
    "read_fec",
    "render_csv",
    "render_fec",
    "vat_breakdown",
]
