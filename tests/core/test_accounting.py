"""The sales journal (passerelle.core.accounting): web invoices, credit notes, payments and refunds
of a seeded back office read through the views, as the FEC and the CSV journal; every file is
checked to balance, entry by entry, by reading the bytes written."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import yaml

from passerelle.config import DEFAULT_PATH, ConfigError, parse_settings
from passerelle.core.accounting import (
    CSV_COLUMNS,
    FEC_COLUMNS,
    Entry,
    EntryLine,
    Journal,
    JournalError,
    build_journal,
    check_file,
    collect_journal,
    fec_name,
    read_csv,
    read_fec,
    render_csv,
    render_fec,
)

PARIS = "Europe/Paris"
DAY = date(2026, 11, 30)


def _settings(**changes):
    """The shipped configuration's ``accounting`` section, with *changes*."""
    raw = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    raw["accounting"].update(changes)
    return parse_settings(raw).accounting


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(PARIS))


def _customer(erp, code: str, first: str, last: str) -> int:
    return erp.execute(
        "INSERT INTO erp.customer (code, email, first_name, last_name) VALUES (%s, %s, %s, %s) RETURNING id",
        (code, f"{code.lower()}@exemple.fr", first, last),
    ).fetchone()[0]


def _order(erp, number: str, customer: int, lines, *, shipping=("0", "20"), origin: str = "web") -> int:
    """An order with *lines* (quantity, unit price excl. VAT, line discount, VAT rate)."""
    order_id = erp.execute(
        "INSERT INTO erp.sales_order (number, origin, shop_order_id, customer_id, order_date, shipping_excl_vat, "
        "shipping_vat_rate) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (number, origin, f"SHOP-{number}" if origin == "web" else None, customer, _at(DAY, 9), *shipping),
    ).fetchone()[0]
    articles = [r[0] for r in erp.execute("SELECT id FROM erp.article ORDER BY id LIMIT %s", (len(lines),))]
    for n, ((qty, price, discount, rate), article) in enumerate(zip(lines, articles, strict=True), start=1):
        erp.execute(
            "INSERT INTO erp.sales_order_line (order_id, line_number, article_id, label, quantity, "
            "unit_price_excl_vat, discount_excl_vat, vat_rate) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (order_id, n, article, f"line {n}", qty, price, discount, rate),
        )
    return order_id


def _invoice(erp, number: str, order_id: int, excl: str, vat: str, incl: str, day: date = DAY) -> None:
    erp.execute(
        "INSERT INTO erp.invoice (number, order_id, invoice_date, total_excl_vat, total_vat, total_incl_vat) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (number, order_id, day, excl, vat, incl),
    )


def _payment(erp, order_id: int, method: str, amount: str, when: datetime, transaction: str, paid=True) -> None:
    erp.execute(
        "INSERT INTO erp.payment (order_id, method, amount, transaction_id, paid, paid_at) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (order_id, method, amount, transaction, paid, when),
    )


@pytest.fixture
def day_of_sales(erp):
    """On DAY: a web invoice at 20 % and 5.5 % with shipping, paid by card; a second web invoice
    paid by PayPal, credited whole (credit note) and refunded; a store invoice and web invoices of
    other days, and an unpaid transfer, which the journal leaves out."""
    helene = _customer(erp, "CLI-T1", "Hélène", "Ćwik")  # Ć is not ISO-8859-15: written C
    marc = _customer(erp, "CLI-T2", "Marc", "Dupont")
    # 2 x 10.00 (20 %) + 3 x 4.00 - 1.00 (5.5 %) + shipping 5.00 (20 %):
    # 20 %: base 25.00, VAT 5.00; 5.5 %: base 11.00, VAT 0.61 (0.605 rounded half up).
    o1 = _order(erp, "W-1", helene, [("2", "10", "0", "20"), ("3", "4", "1", "5.5")], shipping=("5", "20"))
    _invoice(erp, "FA-1", o1, "36.00", "5.61", "41.61")
    _payment(erp, o1, "Carte bancaire", "41.61", _at(DAY, 10), "pi_1")
    o2 = _order(erp, "W-2", marc, [("1", "50", "0", "20")])
    _invoice(erp, "FA-2", o2, "50.00", "10.00", "60.00")
    _invoice(erp, "AV-1", o2, "-50.00", "-10.00", "-60.00")
    _payment(erp, o2, "PayPal", "60.00", _at(DAY, 0, 5), "pp_1")  # just after midnight, Paris
    _payment(erp, o2, "PayPal", "-60.00", _at(DAY, 23, 50), "pp_1_refund")
    _payment(erp, o2, "Virement bancaire", "12.00", _at(DAY, 11), "vir_unpaid", paid=False)
    # Left out: a store sale, a web invoice and a payment of the days around.
    s1 = _order(erp, "S-1", marc, [("1", "100", "0", "20")], origin="store")
    _invoice(erp, "FA-S1", s1, "100.00", "20.00", "120.00")
    _payment(erp, s1, "Carte bancaire", "120.00", _at(DAY, 15), "store_1")
    o3 = _order(erp, "W-3", marc, [("1", "10", "0", "20")])
    _invoice(erp, "FA-3", o3, "10.00", "2.00", "12.00", day=date(2026, 12, 1))
    _payment(erp, o3, "Carte bancaire", "12.00", _at(date(2026, 12, 1), 0, 0), "pi_3")  # midnight: the next day
    _payment(erp, o3, "Carte bancaire", "1.00", _at(date(2026, 11, 29), 23, 59), "pi_3_before")
    erp.commit()
    return {"helene": helene, "marc": marc}


def _journal(erp, settings=None) -> Journal:
    settings = settings or _settings()
    invoices, payments = collect_journal(erp, DAY, PARIS)
    erp.rollback()
    return build_journal(DAY, invoices, payments, settings)


def _by_entry(records):
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(r["EcritureNum"], []).append(r)
    return out


def _balanced(records) -> None:
    """The test's own check, apart from the module's: each entry's debits equal its credits."""
    for number, lines in _by_entry(records).items():
        debit = sum(Decimal(r["Debit"].replace(",", ".")) for r in lines)
        credit = sum(Decimal(r["Credit"].replace(",", ".")) for r in lines)
        assert debit == credit, f"entry {number}: {debit} != {credit}"
        assert len(lines) >= 2


def test_fec_of_a_day_of_web_sales_has_the_18_fields_and_balances(erp, day_of_sales):
    journal = _journal(erp)
    data = render_fec(journal, "\t")

    lines = data.split(b"\r\n")
    assert lines[0] == "\t".join(FEC_COLUMNS).encode("ascii")  # the field names, in the article's order
    assert len(FEC_COLUMNS) == 18 and lines[-1] == b""  # every record ends with CR LF
    text = data.decode("iso-8859-15")
    assert "Hélène Cwik" in text  # ISO-8859-15 text; a character outside it loses its accent
    records = read_fec(data)
    assert all(len(r) >= 18 for r in records)
    _balanced(records)
    entries = _by_entry(records)
    # FA-1, FA-2, AV-1 in the sales journal; card, PayPal, PayPal refund in the payments journal.
    assert [(v[0]["JournalCode"], v[0]["PieceRef"]) for v in entries.values()] == [
        ("VE", "AV-1"),
        ("VE", "FA-1"),
        ("VE", "FA-2"),
        ("BQ", "pi_1"),
        ("BQ", "pp_1"),
        ("BQ", "pp_1_refund"),
    ]
    assert list(entries) == [f"20261130-{n:04d}" for n in range(1, 7)]
    assert {r["EcritureDate"] for r in records} == {r["PieceDate"] for r in records} == {"20261130"}
    assert {r["ValidDate"] for r in records} == {"20261130"}
    assert journal.invoices == 2 and journal.credit_notes == 1 and journal.payments == 3

    fa1 = {
        r["CompteNum"]: (r["Debit"], r["Credit"], r["CompAuxNum"], r["CompAuxLib"]) for r in entries["20261130-0002"]
    }
    assert fa1 == {
        "411000": ("41,61", "0,00", "CCLI-T1", "Hélène Cwik"),  # the customer's auxiliary account
        "707020": ("0,00", "20,00", "", ""),  # 20 %: goods
        "708500": ("0,00", "5,00", "", ""),  # 20 %: shipping, on its own account
        "445720": ("0,00", "5,00", "", ""),  # 20 %: VAT on 25.00
        "707055": ("0,00", "11,00", "", ""),  # 5.5 %
        "445755": ("0,00", "0,61", "", ""),
    }
    # The credit note: the same accounts, debits and credits swapped.
    av1 = {r["CompteNum"]: (r["Debit"], r["Credit"]) for r in entries["20261130-0001"]}
    assert av1 == {"411000": ("0,00", "60,00"), "707020": ("50,00", "0,00"), "445720": ("10,00", "0,00")}
    assert entries["20261130-0001"][0]["EcritureLib"].startswith("Avoir AV-1")
    # Payments: the method's account debited, the customer credited; a refund swapped.
    card = {r["CompteNum"]: (r["Debit"], r["Credit"], r["CompAuxNum"]) for r in entries["20261130-0004"]}
    assert card == {"511200": ("41,61", "0,00", ""), "411000": ("0,00", "41,61", "CCLI-T1")}
    refund = {r["CompteNum"]: (r["Debit"], r["Credit"]) for r in entries["20261130-0006"]}
    assert refund == {"512300": ("0,00", "60,00"), "411000": ("60,00", "0,00")}
    # Nothing of the store, of other days, or unpaid.
    for left_out in ("FA-S1", "store_1", "FA-3", "pi_3", "vir_unpaid"):
        assert left_out not in text


def test_pipe_separator_and_one_collective_customer_account(erp, day_of_sales):
    settings = _settings(separator="pipe", customers={"account": "411000", "auxiliary": "collective"}, shipping=None)
    data = render_fec(_journal(erp, settings), settings.separator_char)
    assert data.split(b"\r\n")[0] == "|".join(FEC_COLUMNS).encode()
    records = read_fec(data, "|")
    _balanced(records)
    assert {r["CompAuxNum"] for r in records} == {""}
    fa1 = {r["CompteNum"]: r["Credit"] for r in _by_entry(records)["20261130-0002"]}
    assert fa1["707020"] == "25,00" and "708500" not in fa1  # shipping on the rate's sales account


def test_csv_journal_holds_the_same_entries_and_balances(erp, day_of_sales):
    journal = _journal(erp)
    data = render_csv(journal)
    assert data.split(b"\r\n")[0].decode() == ",".join(CSV_COLUMNS)
    rows = read_csv(data)
    fec = read_fec(render_fec(journal))
    assert len(rows) == len(fec)
    totals = check_file(rows, "csv")
    assert totals == check_file(fec, "fec")
    assert all(d == c for d, c in totals.values())
    assert {r["date"] for r in rows} == {"2026-11-30"} and {r["currency"] for r in rows} == {"EUR"}
    # The credit note first: customer credited 60.00, goods debited 50.00 (decimal point, ISO dates).
    assert [(r["piece"], r["account"], r["debit"], r["credit"]) for r in rows[:2]] == [
        ("AV-1", "411000", Decimal("0.00"), Decimal("60.00")),
        ("AV-1", "707020", Decimal("50.00"), Decimal("0.00")),
    ]
    assert rows[0]["auxiliary_account"] == "CCLI-T2" and rows[0]["auxiliary_label"] == "Marc Dupont"


def test_an_invoice_whose_amounts_do_not_add_up_is_refused_naming_it(erp, day_of_sales):
    customer = day_of_sales["marc"]
    o = _order(erp, "W-9", customer, [("1", "10", "0", "20")])
    _invoice(erp, "FA-BAD-LINES", o, "11.00", "2.20", "13.20")  # the lines give 10.00 + 2.00
    o = _order(erp, "W-10", customer, [("1", "10", "0", "20")])
    _invoice(erp, "FA-BAD-TOTAL", o, "10.00", "2.00", "12.50")  # 10.00 + 2.00 is not 12.50
    erp.commit()
    with pytest.raises(JournalError) as caught:
        _journal(erp)
    message = str(caught.value)
    assert "the journal of 2026-11-30 is not written" in message
    assert "invoice FA-BAD-LINES (order W-9): its lines give 10.00 excl. VAT and 2.00 VAT" in message
    assert "the invoice says 11.00 excl. VAT and 2.20 VAT" in message
    assert "invoice FA-BAD-TOTAL (order W-10): total_excl_vat 10.00 + total_vat 2.00 = 12.00" in message
    assert "FA-1" not in message  # the good ones are not named


def test_a_rate_or_a_method_without_accounts_is_refused_naming_the_key(erp, day_of_sales):
    o = _order(erp, "W-11", day_of_sales["marc"], [("1", "10", "0", "8.5")])
    _invoice(erp, "FA-DOM", o, "10.00", "0.85", "10.85")
    _payment(erp, o, "Bitcoin", "10.85", _at(DAY, 14), "btc_1")
    erp.commit()
    with pytest.raises(JournalError) as caught:
        _journal(erp)
    message = str(caught.value)
    assert "invoice FA-DOM (order W-11): VAT rate 8,5 % has no accounts; add it under accounting.vat_rates" in message
    assert "of order W-11: method 'Bitcoin' has no account; add it under accounting.payment_methods" in message


def test_an_unbalanced_entry_or_file_is_never_written():
    line = EntryLine("411000", "Clients", debit=Decimal("10.00"))
    entry = Entry(
        "VE",
        "Ventes",
        DAY,
        "FA-X",
        DAY,
        "Facture FA-X",
        (line, EntryLine("707020", "Ventes", credit=Decimal("9.99"))),
        "20261130-0001",
    )
    journal = Journal(DAY, [entry])
    with pytest.raises(JournalError, match=r"does not balance\nentry 20261130-0001: debits 10.00 but credits 9.99"):
        render_fec(journal)
    with pytest.raises(JournalError, match="does not balance"):
        render_csv(journal)
    # A file changed after writing is caught when read back.
    ok = Journal(
        DAY, [Entry(**{**entry.__dict__, "lines": (line, EntryLine("707020", "Ventes", credit=Decimal("10.00")))})]
    )
    data = render_fec(ok).replace(b"10,00\t0,00", b"10,01\t0,00")
    with pytest.raises(JournalError, match="debits 10.01 but credits 10.00"):
        check_file(read_fec(data), "the file")


def test_an_empty_day_is_a_file_with_its_header_only(erp):
    data = render_fec(_journal(erp))
    assert data == ("\t".join(FEC_COLUMNS) + "\r\n").encode()


def test_fec_file_name_is_siren_fec_date():
    assert fec_name("123456782", DAY) == "123456782FEC20261130.txt"


def test_accounting_settings_are_checked_with_the_key_and_a_hint():
    raw = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    cases = {
        "siren": ("123456789", "accounting.siren: '123456789' is not a valid SIREN"),
        "separator": (";", "accounting.separator: ';' is not allowed; expected one of tab, pipe"),
        "custommers": ({}, "accounting.custommers: unknown key; expected one of"),
        "vat_rates": (
            {20: {"sales_account": "607000", "vat_account": "445720"}},
            "accounting.vat_rates.20.sales_account",
        ),
        "payment_methods": ({"PayPal": {"account": "512300"}, "paypal": {"account": "512300"}}, "the same method"),
    }
    for key, (value, expected) in cases.items():
        bad = {**raw, "accounting": {**raw["accounting"], key: value}}
        with pytest.raises(ConfigError) as caught:
            parse_settings(bad)
        assert expected in str(caught.value), str(caught.value)
    assert "did you mean 'customers'" in _error({**raw["accounting"], "custommers": {}})
    assert "enabled without a siren" in _error({"enabled": True})


def _error(section) -> str:
    try:
        parse_settings({"accounting": section})
    except ConfigError as exc:
        return str(exc)
    raise AssertionError("no error")
