"""What a run says (note, reject reasons, extra links, asset event extras, true counts), each
DAG's form and its time, checked on the DAG files and on real runs (dag.test() against
PostgreSQL and an FTP server on loopback)."""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta

import pendulum
import pytest
import yaml

from dag_runs import xcom
from passerelle import INCLUDE, PROJECT_ROOT
from passerelle.core.outcome import count_reasons, inbound_totals, note_text, public_url, reason_kind, sent_rows
from passerelle.dag_settings import cron_words

PARIS = "Europe/Paris"
BASE = "https://shop.example.com/files"
SAMPLES = INCLUDE / "sample" / "inbound"
DROPPED = ("orders_20261120_0900.csv", "orders_20261120_1000.csv", "customers_20261120.csv")


# --------------------------------------------------------------------------- pure pieces


def test_note_says_what_was_sent_and_why_rows_were_quarantined():
    reasons = count_reasons(
        [
            ("sku", "unknown SKU 'ART-009999'", 3),
            ("sku", "unknown SKU 'ART-000123'", 1),
            ("ean", "not a valid EAN-13 (13 digits, check digit)", 2),
            ("name", "name is empty", 1),
            (None, "order WEB-100237 has a rejected line", 1),
        ]
    )
    ean = "ean: not a valid EAN-13 (13 digits, check digit)"
    assert list(reasons.items())[:2] == [("sku: unknown SKU …", 4), (ean, 2)]
    note = note_text(verb="sent", rows=1234, files=3, quarantined=8, reasons=reasons)
    assert note == (
        "sent 1\u202f234 rows in 3 files; 8 rows quarantined, top reasons: sku: unknown SKU … (4), "
        "ean: not a valid EAN-13 (13 digits, check digit) (2), name: name is empty (1), …"
    )
    assert note_text(verb="sent", rows=1, files=1) == "sent 1 row in 1 file; nothing quarantined"
    assert note_text(verb="sent", rows=5, files=2, dry_run=True).startswith("dry run: would have sent 5 rows")
    assert reason_kind("order WEB-100237 has a rejected line 7") == "order … has a rejected line …"


def test_counts_true_for_full_runs_and_replays():
    assert (
        sent_rows(
            {
                "article": {"created": 2, "changed": 3, "removed": 1, "unchanged": 900, "rejected": 4},
                "brand": {"created": 1},
            }
        )
        == 7 - 4
    )
    files = [{"counts": {"rows_read": 10, "rejected_rows": 2, "orders_created": 3}}]
    # The replay in the same run reads again the 2 new and 4 older open rows, leaves 5 open.
    replayed = [
        {
            "file": "a.csv",
            "file_id": 7,
            "rows_replayed": 1,
            "rows_still_open": 5,
            "rows_read": 6,
            "rejected_rows": 5,
            "rejected_orders": 2,
            "orders_created": 1,
        }
    ]
    totals = inbound_totals(files, replayed)
    assert totals == {
        "rows_read": 10,
        "rejected_rows": 2,
        "orders_created": 4,
        "rows_replayed": 1,
        "rows_still_open": 5,
    }


def test_public_url():
    assert public_url(BASE + "/", "/outbound/catalog/x/") == BASE + "/outbound/catalog/x"
    assert public_url("", "/outbound") == "" and public_url(BASE, "") == ""


def test_cron_in_words():
    assert cron_words("0 2 * * *", PARIS) == "every day at 02:00 (Europe/Paris)"
    assert cron_words("15 * * * *", PARIS) == "every hour at :15"
    assert cron_words("30 6 * * 1", PARIS) == "every Monday at 06:30 (Europe/Paris)"
    assert cron_words("0 8,13 * * *", PARIS) == "every day at 08:00, 13:00 (Europe/Paris)"
    assert cron_words("*/5 1-3 * * *", PARIS) == "cron */5 1-3 * * * (Europe/Paris)"


def test_one_warning_per_reject_reason(caplog):
    """One WARNING record per reason, with its count and the file (whatever handler Airflow's
    logging set up before this test, the records reach caplog)."""
    from passerelle.operators.outcome import OutcomeMixin

    class Task(OutcomeMixin):
        log = logging.getLogger("passerelle.test_runs")

    # caplog's handler on the logger itself: Airflow's logging set-up (structlog) may keep the
    # records from reaching the root logger, where caplog listens by default.
    logger = Task.log
    logger.addHandler(caplog.handler)
    propagate, logger.propagate = logger.propagate, False  # each record reaches the handler once
    try:
        with caplog.at_level(logging.WARNING, logger="passerelle.test_runs"):
            Task().warn({"sku: unknown SKU …": 4, "name: name is empty": 1}, where="orders_1000.csv")
    finally:
        logger.removeHandler(caplog.handler)
        logger.propagate = propagate
    records = [r for r in caplog.records if r.name == "passerelle.test_runs"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]
    assert records[0].getMessage() == "4 rows rejected in orders_1000.csv: sku: unknown SKU …"
    assert records[1].getMessage() == "1 row rejected in orders_1000.csv: name: name is empty"


# --------------------------------------------------------------------------- forms and time


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert not bag.import_errors
    return bag.dags


def test_each_form_holds_only_what_its_dag_uses(airflow_db, dags):
    assert list(dags["catalog"].params) == ["mode", "entities", "dry_run"]
    assert list(dags["prices_stock"].params) == ["mode", "entities", "dry_run"]
    assert list(dags["orders_in"].params) == ["dry_run", "replay_quarantine"]
    assert list(dags["report"].params) == ["dry_run"]
    orders_dry = dags["orders_in"].params.get_param("dry_run").description
    assert "snapshot" not in orders_dry and "integrate nothing" in orders_dry
    assert "snapshot" not in dags["report"].params.get_param("dry_run").description
    assert "snapshot" in dags["catalog"].params.get_param("dry_run").description


def test_dags_carry_the_shop_timezone_a_schedule_in_words_and_timeouts(airflow_db, dags):
    for dag_id, words in [
        ("catalog", "every day at 02:00 (Europe/Paris)"),
        ("orders_in", "every hour at :15"),
        ("report", "every day at 06:00 (Europe/Paris)"),
    ]:
        dag = dags[dag_id]
        assert dag.timezone.name == PARIS, dag_id
        assert dag.start_date == pendulum.datetime(2026, 1, 1, tz=PARIS), dag_id
        assert dag.description == f"Passerelle {dag_id}: {words}"
    for dag in dags.values():
        assert dag.dagrun_timeout is not None and dag.dagrun_timeout >= timedelta(minutes=30), dag.dag_id
        for task in dag.tasks:
            assert task.execution_timeout is not None, (dag.dag_id, task.task_id)
    assert dags["catalog"].task_dict["publish"].execution_timeout == timedelta(minutes=120)
    assert dags["orders_in"].task_dict["import_files"].execution_timeout == timedelta(minutes=30)


# --------------------------------------------------------------------------- real runs


def _config(tmp_path, monkeypatch) -> None:
    cfg = yaml.safe_load((INCLUDE / "config" / "passerelle.yaml").read_text(encoding="utf-8"))
    cfg.setdefault("shop", {})["public_base_url"] = BASE
    path = tmp_path / "passerelle.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("PASSERELLE_CONFIG", str(path))


def _run(dag, when, conf=None):
    dr = dag.test(logical_date=when, run_conf=conf or {})
    assert dr.state == "success", f"run ended {dr.state}"
    return dr


def test_catalog_run_says_what_it_sent_links_its_batch_and_announces_it(
    airflow_db, connections, erp, ftp_server, tmp_path, monkeypatch
):
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    _config(tmp_path, monkeypatch)
    # Three web articles the shop would refuse: their EANs are not EAN-13.
    refs = [
        r[0]
        for r in erp.execute(
            "SELECT reference FROM erp.article WHERE web AND price_excl_vat > 0 ORDER BY id LIMIT 3"
        ).fetchall()
    ]
    erp.execute("UPDATE erp.article SET ean = '12345' WHERE reference = ANY(%s)", (refs,))
    erp.commit()
    from passerelle.flows.catalog import catalog_dag

    dag = catalog_dag()
    day = pendulum.datetime(2026, 11, 20, 2, tz=PARIS)
    dr = _run(dag, day)

    built = xcom(dr, "build")
    sent = sent_rows(built["counts"])
    files = len(built["files"])
    note = xcom(dr, "confirm", "run_note")
    rows = f"{sent:,}".replace(",", "\u202f")
    assert note.startswith(f"sent {rows} rows in {files} files; 3 rows quarantined, top reasons: ")
    assert note.endswith("top reasons: ean: not a valid EAN-13 (13 digits, check digit) (3)")
    # Kept with the run's summary too: the Passerelle view's runs page shows it, API or not.
    kept = erp.execute("SELECT note FROM passerelle.run_summary WHERE dag_run_id = %s", (dr.run_id,)).fetchone()[0]
    erp.commit()
    assert kept == note

    published = xcom(dr, "publish")
    assert xcom(dr, "publish", "_link_BatchFolderLink") == f"{BASE}{published['folder']}"
    assert xcom(dr, "publish", "_link_ManifestLink") == f"{BASE}{published['folder']}/manifest.json"
    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_run_id == dr.run_id)).all()
        extras = [e.extra for e in events]
    assert len(extras) == 1
    assert extras[0]["batch_id"] == built["batch_id"] and extras[0]["files"] == published["published"]
    assert extras[0]["counts"]["article"]["rejected"] == 3

    # A full run the next day sends every row again: counted as changed, none "unchanged".
    dr2 = _run(dag, day.add(days=1), {"mode": "full"})
    counts = xcom(dr2, "build")["counts"]
    # (the 3 refused articles never reached the shop: new again, and refused again)
    assert counts["article"]["unchanged"] == 0 and counts["article"]["created"] == 3
    assert counts["article"]["changed"] == built["counts"]["article"]["created"] - 3
    assert counts["brand"]["changed"] == built["counts"]["brand"]["created"] and counts["brand"]["unchanged"] == 0
    confirm = xcom(dr2, "confirm")
    assert confirm["unchanged"] == 0 and confirm["changed"] == sum(c["changed"] for c in counts.values())
    assert confirm["created"] + confirm["changed"] + confirm["removed"] - confirm["rejected"] == sent_rows(counts)


def test_orders_run_with_replay_counts_rejects_once_and_links_the_rejects(
    airflow_db, connections, erp, ftp_server, tmp_path, monkeypatch
):
    _config(tmp_path, monkeypatch)
    from passerelle.flows.orders import orders_in_dag

    inbound = ftp_server.path("/inbound")
    inbound.mkdir(parents=True, exist_ok=True)
    for name in DROPPED:
        shutil.copy(SAMPLES / name, inbound / name)
    dag = orders_in_dag()
    # The replay runs in the same run as the files that put the rows in quarantine.
    dr = _run(dag, pendulum.datetime(2026, 11, 20, 10, 15, tz=PARIS), {"replay_quarantine": True})

    open_rows = erp.execute(
        "SELECT count(DISTINCT (file_id, line)) FROM passerelle.quarantine WHERE status = 'open'"
    ).fetchone()[0]
    assert open_rows > 0
    rejects = erp.execute("SELECT rejects FROM passerelle.run_summary WHERE flow = 'orders_in'").fetchone()[0]
    erp.commit()
    assert rejects == open_rows  # not twice: the replay left them open, it did not reject them again

    imported = xcom(dr, "import_files")
    assert imported["counts"]["rejected_rows"] == open_rows and imported["counts"]["rows_still_open"] == open_rows
    assert sum(imported["reasons"].values()) == open_rows
    [rejects_file] = [f["rejects_file"] for f in imported["files"] if f.get("rejects_file")]
    assert xcom(dr, "import_files", "_link_RejectsLink") == f"{BASE}/errors/{rejects_file}"
    note = xcom(dr, "propose_reorders", "run_note")
    assert note.startswith("integrated ") and " in 3 files; " in note
    assert f"; {open_rows} row{'s' if open_rows > 1 else ''} quarantined, top reasons: " in note
    assert "sku: unknown SKU: no article or variant with this reference in the back office (1)" in note
    assert "order … has a rejected line … (1)" in note
    kept = erp.execute("SELECT note FROM passerelle.run_summary WHERE dag_run_id = %s", (dr.run_id,)).fetchone()[0]
    erp.commit()
    assert kept == note


@pytest.fixture
def api_server(airflow_db, tmp_path, monkeypatch):
    """Airflow's own API server on loopback, on the tests' metadata database, with one user."""
    import json
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"ops": "s3cret-note"}), encoding="utf-8")
    env = {
        **os.environ,
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "ops:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": "passerelle-test-secret",
    }
    log = open(tmp_path / "api-server.log", "wb")  # closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "api-server.log").read_text(
                errors="replace"
            )[-3000:]
            time.sleep(1)
        monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", f"http://ops:s3cret-note@127.0.0.1:{port}")
        yield port
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_the_run_note_is_written_on_the_run_through_the_api(api_server, connections, erp, tmp_path, monkeypatch):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    cfg = yaml.safe_load((INCLUDE / "config" / "passerelle.yaml").read_text(encoding="utf-8"))
    cfg["alerts"] = {"api_conn_id": "airflow_api"}
    path = tmp_path / "passerelle.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("PASSERELLE_CONFIG", str(path))
    from passerelle.flows.report import report_dag

    dr = _run(report_dag(), pendulum.datetime(2026, 11, 21, 6, tz=PARIS), {"dry_run": True})
    kept = xcom(dr, "publish_report", "run_note")
    assert kept.startswith("report report-2026-11-21.html: ") and kept.endswith("(dry run, nothing written)")
    with create_session() as session:
        assert session.get(DagRun, dr.id).note == kept
