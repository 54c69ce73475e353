"""The daily report: pure pieces, then the DAG run for real with dag.test() against PostgreSQL and FTP."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pendulum
import pytest
import yaml

from passerelle.core.report import (
    RunRow,
    fmt_bytes,
    fmt_money,
    nice_max,
    rows_moved,
    sales_by_day,
    summarise_runs,
    window,
)

PARIS = "Europe/Paris"
NBSP = "\u00a0"
UTC = UTC


# --------------------------------------------------------------------------- pure pieces


def test_window_is_the_report_day_and_whole_local_days_before_it_across_dst():
    days, start, end = window(date(2026, 10, 27), 3, PARIS)
    assert days == [date(2026, 10, 24), date(2026, 10, 25), date(2026, 10, 26), date(2026, 10, 27)]
    assert start.astimezone(UTC) == datetime(2026, 10, 23, 22, tzinfo=UTC)  # midnight CEST
    assert end.astimezone(UTC) == datetime(2026, 10, 27, 23, tzinfo=UTC)  # midnight CET after the day
    # Until the run's moment: the day just ended whole, the report's day until then.
    _, _, until = window(date(2026, 10, 27), 3, PARIS, until=datetime(2026, 10, 27, 5, tzinfo=UTC))
    assert until == datetime(2026, 10, 27, 6, tzinfo=ZoneInfo(PARIS))
    # A moment after the day (a rerun of a past date) ends at midnight; one before it, at its start.
    assert window(date(2026, 10, 27), 3, PARIS, until=datetime(2026, 11, 2, tzinfo=UTC))[2] == end
    assert window(date(2026, 10, 27), 3, PARIS, until=datetime(2026, 10, 20, tzinfo=UTC))[2] == datetime(
        2026, 10, 27, tzinfo=ZoneInfo(PARIS)
    )
    with pytest.raises(ValueError, match="days must be at least 1"):
        window(date(2026, 10, 27), 0, PARIS)


def test_rows_moved_counts_created_changed_removed_and_bare_numbers():
    counts = {
        "article": {"created": 2, "changed": 3, "removed": 1, "unchanged": 900, "rejected": 4},
        "variant": {"created": 0, "changed": 5, "removed": 0, "unchanged": 10},
        "order": 7,
    }
    assert rows_moved(counts) == 2 + 3 + 1 + 5 + 7
    assert rows_moved({}) == rows_moved(None) == 0


def test_runs_are_summed_per_flow_and_local_day():
    days = [date(2026, 11, 19), date(2026, 11, 20)]
    t = datetime(2026, 11, 19, 23, 30, tzinfo=UTC)  # 00:30 on the 20th in Paris
    runs = [
        RunRow("catalog", False, {"article": {"created": 10}}, 1, 1000, 0, t - timedelta(seconds=30), t),
        RunRow("catalog", True, {"article": {"created": 4}}, 0, 0, 0, None, t - timedelta(hours=2)),
        RunRow("orders_in", False, {"order": {"integrated": 3}}, 0, 0, 500, t, t + timedelta(seconds=5)),
    ]
    flows, per_day, rows = summarise_runs(runs, days, PARIS)
    assert [f.flow for f in flows] == ["catalog", "orders_in"]
    catalog = flows[0]
    assert (catalog.runs, catalog.dry_runs, catalog.rows, catalog.rejects, catalog.bytes_sent) == (2, 1, 14, 1, 1000)
    assert catalog.avg_seconds == 30 and catalog.last_run == t
    assert per_day["catalog"] == [1, 1] and rows["catalog"] == [4, 10]
    assert flows[1].bytes_received == 500 and rows["orders_in"] == [0, 3]


def test_sales_by_day_splits_web_and_store():
    days = [date(2026, 11, 19), date(2026, 11, 20)]
    rows = [
        (date(2026, 11, 20), True, 2, Decimal("249.90")),
        (date(2026, 11, 20), False, 1, Decimal("12.00")),
        (date(2026, 11, 30), True, 9, Decimal("999")),
    ]  # outside: ignored
    first, second = sales_by_day(rows, days)
    assert (first.web_orders, first.store_orders) == (0, 0)
    assert (second.web_orders, second.web_total, second.store_orders, second.store_total) == (
        2,
        Decimal("249.90"),
        1,
        Decimal("12.00"),
    )


def test_french_formats_and_axis_tops():
    assert fmt_money(Decimal("1234.5")) == f"1{NBSP}234,50{NBSP}€"
    assert fmt_bytes(1536) == f"1,5{NBSP}kB" and fmt_bytes(999) == f"999{NBSP}B"
    assert [nice_max(v) for v in (0, 0.7, 3, 7, 11, 240, 1234)] == [1, 1, 5, 10, 20, 250, 2000]


# --------------------------------------------------------------------------- the DAG, for real

REPORT_DAY = pendulum.datetime(2026, 11, 21, 6, tz=PARIS)


@pytest.fixture
def report_config(tmp_path, monkeypatch) -> Path:
    """The shipped configuration with the report's local folder in the test's temporary folder."""
    from passerelle.config import DEFAULT_PATH

    raw = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    raw["flows"]["report"] = {"cron": "0 6 * * *", "local_dir": str(tmp_path / "kept"), "remote_dir": "/reports"}
    raw["accounting"]["folder"] = str(
        tmp_path / "accounting"
    )  # export_journal's files (tests/flows/test_accounting_flow.py)
    path = tmp_path / "passerelle.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("PASSERELLE_CONFIG", str(path))
    return path


def _paris(*args: int) -> datetime:
    return pendulum.datetime(*args, tz=PARIS)


def _seed(erp) -> None:
    """Run summaries and orders inside the 30-day window, and some just outside it."""
    runs = [
        # flow, run id, counts, rejects, sent, received, finished, seconds
        (
            "catalog",
            "r1",
            {"article": {"created": 120, "changed": 0, "removed": 0}},
            0,
            50_000,
            0,
            _paris(2026, 11, 19, 2, 3),
            180,
        ),
        (
            "catalog",
            "r2",
            {"article": {"created": 1, "changed": 3, "removed": 1}},
            2,
            2_000,
            0,
            _paris(2026, 11, 20, 2, 1),
            60,
        ),
        (
            "prices_stock",
            "p1",
            {"price": {"changed": 40}, "stock": {"changed": 25}},
            0,
            8_000,
            0,
            _paris(2026, 11, 20, 10, 0),
            20,
        ),
        ("orders_in", "o1", {"order": {"integrated": 6}}, 1, 0, 12_345, _paris(2026, 11, 20, 10, 15), 15),
        ("catalog", "old", {"article": {"created": 99}}, 0, 1, 0, _paris(2026, 10, 21, 23, 59), 1),  # before
        ("catalog", "late", {"article": {"created": 77}}, 0, 1, 0, _paris(2026, 11, 21, 0, 0), 1),  # the day itself
        ("catalog", "after", {"article": {"created": 55}}, 0, 1, 0, _paris(2026, 11, 21, 7, 0), 1),  # after the run
    ]
    for flow, run_id, counts, rejects, sent, received, finished, seconds in runs:
        erp.execute(
            "INSERT INTO passerelle.run_summary (flow, dag_run_id, run_key, counts, rejects, bytes_sent, "
            "bytes_received, started_at, finished_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                flow,
                run_id,
                finished.isoformat(),
                json.dumps(counts),
                rejects,
                sent,
                received,
                finished - timedelta(seconds=seconds),
                finished,
            ),
        )
    customer = erp.execute("SELECT id FROM erp.customer ORDER BY id LIMIT 1").fetchone()[0]
    orders = [
        ("W1", "web", "order", "confirmed", _paris(2026, 11, 20, 9, 30), "150.00"),
        ("W2", "web", "order", "shipped", _paris(2026, 11, 20, 23, 45), "99.90"),  # still the 20th in Paris
        ("S1", "store", "order", "invoiced", _paris(2026, 11, 20, 16, 0), "1234.50"),
        ("P1", "phone", "order", "confirmed", _paris(2026, 11, 19, 11, 0), "40.00"),
        ("W3", "web", "order", "cancelled", _paris(2026, 11, 20, 12, 0), "777.00"),  # cancelled: not a sale
        ("Q1", "store", "quote", "quote", _paris(2026, 11, 20, 12, 0), "888.00"),  # a quote: not a sale
        ("W4", "web", "order", "confirmed", _paris(2026, 11, 21, 0, 30), "666.00"),  # the report's day, before 06:00
        ("W5", "web", "order", "confirmed", _paris(2026, 11, 21, 6, 30), "555.00"),  # after the run's moment
    ]
    for number, origin, kind, status, when, total in orders:
        erp.execute(
            "INSERT INTO erp.sales_order (number, kind, origin, customer_id, order_date, status, total_incl_vat) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (f"CMD-{number}", kind, origin, customer, when, status, total),
        )
    # One article well below its minimum stock.
    erp.execute("UPDATE erp.article SET min_stock = 1000 WHERE reference = 'ART-000001'")
    erp.commit()


@pytest.fixture
def report(airflow_db, connections, report_config):
    from passerelle.flows.report import report_dag

    return report_dag()


def test_daily_report_puts_the_page_on_the_server_and_keeps_it_locally(
    report, report_config, erp, ftp_server, tmp_path
):
    _seed(erp)
    expected_alerts = erp.execute(
        "SELECT count(*) FROM (SELECT a.id FROM erp.article a LEFT JOIN passerelle_src.stock_level sl "
        "ON sl.article_id = a.id WHERE a.min_stock > 0 GROUP BY a.id "
        "HAVING coalesce(sum(sl.available_qty), 0) < a.min_stock) x"
    ).fetchone()[0]

    dr = report.test(logical_date=REPORT_DAY)
    assert dr.state == "success"

    remote = ftp_server.path("/reports/report-2026-11-21.html")
    local = tmp_path / "kept" / "report-2026-11-21.html"
    assert remote.is_file() and local.is_file()
    assert remote.read_bytes() == local.read_bytes()
    assert not list(ftp_server.path("/reports").glob("*.part"))
    page = local.read_text(encoding="utf-8")

    # Self-contained: charts inline, nothing fetched.
    assert page.count("<svg") == 4
    assert "<script" not in page and not re.search(r'(src|href)="https?:', page)
    # Flows with their runs in the window: the day just ended, the 30 before and the report's day until 06:00
    # (the run before the window and the one after the run's moment are not counted).
    assert re.search(r"<td>catalog</td><td class=\"n\">3</td>", page)
    assert re.search(r"<td>prices_stock</td><td class=\"n\">1</td>", page)
    assert "<td>orders_in</td>" in page and f"12,3{NBSP}kB" in page  # bytes received
    # Sales: web 150.00 + 99.90 on the 20th, 666.00 on the 21st before 06:00; store 1234.50 + phone 40.00;
    # cancelled, quotes, the order after the run's moment left out.
    assert f"915,90{NBSP}€" in page
    assert f"1{NBSP}274,50{NBSP}€" in page  # store total (store + phone)
    assert f"1{NBSP}234,50{NBSP}€" in page  # the 20th, store
    for left_out in ("777,00", "888,00", "555,00"):
        assert left_out not in page
    # Stock alerts.
    assert "ART-000001" in page
    assert re.search(rf"<b>{expected_alerts}</b>stock alerts", page.replace(NBSP, ""))

    summary = erp.execute(
        "SELECT run_key, bytes_sent, counts FROM passerelle.run_summary WHERE flow = 'report'"
    ).fetchone()
    assert summary[0] == "2026-11-21" and summary[1] == len(page.encode("utf-8"))
    assert summary[2]["report"]["orders"] == 5 and summary[2]["report"]["runs"] == 5
    assert local.stat().st_mode & 0o777 == 0o644  # readable by a web server serving the folder

    # Made again for the same day: the same page, byte for byte.
    remote.unlink()
    assert report.test(logical_date=REPORT_DAY).state == "success"
    assert remote.read_bytes() == local.read_bytes()
    assert local.read_text(encoding="utf-8") == page


def test_dry_run_report_writes_and_uploads_nothing(report, erp, ftp_server, tmp_path):
    _seed(erp)
    dr = report.test(logical_date=REPORT_DAY, run_conf={"dry_run": True})
    assert dr.state == "success"
    assert not ftp_server.path("/reports").exists()
    assert not (tmp_path / "kept").exists()
    row = erp.execute("SELECT dry_run, bytes_sent FROM passerelle.run_summary WHERE flow = 'report'").fetchone()
    assert row == (True, 0)


def test_report_dag_form_and_schedule(report):
    assert report.dag_id == "report"
    assert list(report.params) == ["dry_run"]
    from passerelle.timetables import next_runs

    assert next_runs(report.timetable, datetime(2026, 11, 21, tzinfo=UTC), 2) == [
        datetime(2026, 11, 21, 5, tzinfo=UTC),
        datetime(2026, 11, 22, 5, tzinfo=UTC),
    ]  # 06:00 in Paris
    assert set(report.tags) >= {"passerelle", "report"}


def test_dag_file_imports_cleanly(airflow_db, report_config):
    from airflow.dag_processing.dagbag import DagBag

    from passerelle import PROJECT_ROOT

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "report.py"))
    assert bag.import_errors == {}
    assert list(bag.dags) == ["report"]


def test_the_daily_web_orders_file_is_written_beside_the_report(report, erp, ftp_server, tmp_path):
    """``orders-<day>.csv``: the web orders of the day before and of the report's day until the run's
    moment, on the shop's server and in the local folder (readable by a web server), the same bytes."""
    import codecs
    import csv
    import io

    _seed(erp)
    assert report.test(logical_date=REPORT_DAY).state == "success"
    remote = ftp_server.path("/reports/orders-2026-11-21.csv")
    local = tmp_path / "kept" / "orders-2026-11-21.csv"
    assert remote.is_file() and local.is_file() and remote.read_bytes() == local.read_bytes()
    assert local.stat().st_mode & 0o777 == 0o644
    data = local.read_bytes()
    assert data.startswith(codecs.BOM_UTF8)
    rows = list(csv.DictReader(io.StringIO(data[3:].decode("utf-8")), delimiter=";"))
    # Web orders only; W5 came after the run's moment; the store and phone orders are not the shop's.
    assert [(r["order_number"], r["status"]) for r in rows] == [
        ("CMD-W1", "confirmed"),
        ("CMD-W3", "cancelled"),
        ("CMD-W2", "shipped"),
        ("CMD-W4", "confirmed"),
    ]
    assert rows[0]["total_incl_vat"] == "150.00" and rows[0]["payment_state"] == "no payment"
