"""The report flow's ``export_journal`` task, run for real with dag.test() on the seeded back office:
the day's FEC and CSV journal in the accounting folder, balanced, rewritten the same on a rerun,
and nothing written when an invoice does not add up."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pendulum
import pytest
import yaml

from passerelle.core.accounting import FEC_COLUMNS, check_file, read_csv, read_fec

PARIS = "Europe/Paris"
RUN = pendulum.datetime(2026, 12, 1, 6, tz=PARIS)  # the 06:00 run of Dec 1 writes the journal of Nov 30
DAY = date(2026, 11, 30)
FEC = "123456782FEC20261130.txt"
CSV = "journal-2026-11-30.csv"


@pytest.fixture
def accounting_config(tmp_path, monkeypatch) -> Path:
    """The shipped configuration, its report page and accounting files in the test's folder."""
    from passerelle.config import DEFAULT_PATH

    raw = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    raw["flows"]["report"] = {"cron": "0 6 * * *", "local_dir": str(tmp_path / "kept"), "remote_dir": "/reports"}
    raw["accounting"]["folder"] = str(tmp_path / "accounting")
    path = tmp_path / "passerelle.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("PASSERELLE_CONFIG", str(path))
    return path


@pytest.fixture
def report(airflow_db, connections, accounting_config):
    from passerelle.flows.report import report_dag

    return report_dag()


def _sales(erp, *, bad: bool = False) -> None:
    """Two web orders invoiced on DAY by the demo back office's invoicing (one credited and refunded);
    with *bad*, a third invoice whose total incl. VAT is off by a cent."""
    from passerelle_demo.accounting import invoice_web_orders

    customer = erp.execute("SELECT id FROM erp.customer ORDER BY id LIMIT 1").fetchone()[0]
    articles = [r[0] for r in erp.execute("SELECT id FROM erp.article ORDER BY id LIMIT 2")]
    for n, (rate, method) in enumerate((("20", "Carte bancaire"), ("5.5", "PayPal")), start=1):
        order = erp.execute(
            "INSERT INTO erp.sales_order (number, origin, shop_order_id, customer_id, order_date, shipping_excl_vat) "
            "VALUES (%s, 'web', %s, %s, %s, 4.08) RETURNING id",
            (f"W-{n}", f"SHOP-{n}", customer, pendulum.datetime(2026, 11, 29, 9, tz=PARIS)),
        ).fetchone()[0]
        erp.execute(
            "INSERT INTO erp.sales_order_line (order_id, line_number, article_id, label, quantity, "
            "unit_price_excl_vat, discount_excl_vat, vat_rate) VALUES (%s, 1, %s, 'x', 3, 7.27, 0.5, %s)",
            (order, articles[n - 1], rate),
        )
        erp.execute(
            "INSERT INTO erp.payment (order_id, method, amount, transaction_id) VALUES (%s, %s, 30, %s)",
            (order, method, f"t{n}"),
        )
    erp.commit()
    invoice_web_orders(erp, DAY, PARIS)
    if bad:
        order = erp.execute("SELECT id FROM erp.sales_order WHERE number = 'W-1'").fetchone()[0]
        erp.execute(
            "INSERT INTO erp.invoice (number, order_id, invoice_date, total_excl_vat, total_vat, total_incl_vat) "
            "SELECT 'FA-OFF', order_id, invoice_date, total_excl_vat, total_vat, total_incl_vat + 0.01 "
            "FROM erp.invoice WHERE number LIKE 'FA-%%' AND order_id = %s",
            (order,),
        )
    erp.commit()


def test_the_report_flow_writes_the_days_fec_and_csv_journal_balanced(report, erp, tmp_path):
    _sales(erp)
    dr = report.test(logical_date=RUN)
    assert dr.state == "success"
    folder = tmp_path / "accounting"
    assert sorted(p.name for p in folder.iterdir()) == [FEC, CSV]  # no temporary file left

    fec = (folder / FEC).read_bytes()
    assert fec.split(b"\r\n")[0] == "\t".join(FEC_COLUMNS).encode()
    records = read_fec(fec)
    totals = check_file(records, FEC)
    assert totals and all(d == c for d, c in totals.values())
    # 2 invoices, 1 credit note, 2 payments and 1 refund, each its own entry.
    assert len(totals) == 6
    assert {r["JournalCode"] for r in records} == {"VE", "BQ"}
    # VAT per rate on its own account: 20 % (goods and shipping) and 5.5 %.
    vat_accounts = {r["CompteNum"] for r in records if r["CompteNum"].startswith("4457")}
    assert vat_accounts == {"445720", "445755"}
    # Order W-1: 3 x 7.27 - 0.50 = 21.31 at 20 %, shipping 4.08 on the shipping account, VAT 5.08.
    fa = [r for r in records if r["PieceRef"] == "FA-20261130-001"]
    assert {r["CompteNum"]: r["Credit"] for r in fa if r["Credit"] != "0,00"} == {
        "707020": "21,31",
        "708500": "4,08",
        "445720": "5,08",
    }
    assert [r["Debit"] for r in fa if r["CompteNum"] == "411000"] == ["30,47"]
    csv_rows = read_csv((folder / CSV).read_bytes())
    assert check_file(csv_rows, CSV) == {k: (Decimal(d), Decimal(c)) for k, (d, c) in totals.items()}

    # Run again for the same day: the same files, byte for byte, replaced whole.
    before = {p.name: p.stat().st_ino for p in folder.iterdir()}
    assert report.test(logical_date=RUN).state == "success"
    assert (folder / FEC).read_bytes() == fec
    assert sorted(p.name for p in folder.iterdir()) == [FEC, CSV]
    assert {p.name: p.stat().st_ino for p in folder.iterdir()} != before  # a new file renamed over the old


def test_an_invoice_that_does_not_add_up_fails_the_task_and_writes_nothing(report, erp, tmp_path, caplog, capsys):
    _sales(erp, bad=True)
    dr = report.test(logical_date=RUN)
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert states["export_journal"] == "failed"
    assert states["publish_report"] == "success"  # the report does not wait on the accountant's file
    assert not (tmp_path / "accounting").exists()
    logged = caplog.text + capsys.readouterr().out  # the task's log, wherever Airflow's logging sends it
    assert (
        "invoice FA-OFF (order W-1): total_excl_vat 25.39 + total_vat 5.08 = 30.47, but total_incl_vat is 30.48"
        in logged
    )
    assert "AirflowFailException" in logged  # failed without retries: the same data would fail again


def test_dry_run_builds_and_writes_nothing(report, erp, tmp_path):
    _sales(erp)
    dr = report.test(logical_date=RUN, run_conf={"dry_run": True})
    assert dr.state == "success"
    assert not (tmp_path / "accounting").exists()


def test_the_task_is_there_only_when_accounting_is_enabled(airflow_db, accounting_config):
    from passerelle.flows.report import report_dag

    assert {t.task_id for t in report_dag().tasks} == {"publish_report", "export_journal"}
    raw = yaml.safe_load(accounting_config.read_text(encoding="utf-8"))
    raw["accounting"]["enabled"] = False
    accounting_config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    assert {t.task_id for t in report_dag().tasks} == {"publish_report"}
