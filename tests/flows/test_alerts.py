"""Alerts for real: a run against a stopped FTP server (connection refused) fails, and a real SMTP
server on loopback (aiosmtpd) receives exactly one mail per failed run, naming the DAG, the run,
the task and the error; a mail per retry only when ``alerts.on_retry`` asks for it."""

from __future__ import annotations

import socket
from email import message_from_bytes, policy

import pendulum
import pytest
import yaml

from passerelle import INCLUDE

DAY = pendulum.datetime(2026, 11, 20, 10, 0, tz="Europe/Paris")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """aiosmtpd handler keeping every mail received."""

    def __init__(self) -> None:
        self.mails: list = []

    async def handle_DATA(self, server, session, envelope):  # the name aiosmtpd calls
        self.mails.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"

    def texts(self) -> list[tuple[list[str], str, str]]:
        out = []
        for rcpt, mail in self.mails:
            body = mail.get_body(("html", "plain"))
            out.append((rcpt, str(mail["Subject"]), body.get_content() if body is not None else ""))
        return out


@pytest.fixture
def smtp(monkeypatch):
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_PASSERELLE_SMTP",
        f"smtp://127.0.0.1:{port}/?disable_ssl=true&disable_tls=true&timeout=10&retry_limit=1",
    )
    yield inbox
    controller.stop()


@pytest.fixture
def stopped_shop(tmp_path, monkeypatch, erp_dsn):
    """The back office, and a shop whose FTP server has stopped: its port refuses connections."""
    from passerelle_demo.localenv import start_ftp

    server, stop = start_ftp(tmp_path / "ftp-root")
    stop()
    with socket.socket() as s:  # the port is closed: connection refused
        assert s.connect_ex(("127.0.0.1", server.port)) != 0
    monkeypatch.setenv("AIRFLOW_CONN_PASSERELLE_ERP", erp_dsn.replace("postgresql://", "postgres://", 1))
    monkeypatch.setenv("AIRFLOW_CONN_PASSERELLE_SHOP", server.uri())
    return server


def _config(tmp_path, monkeypatch, **alerts) -> None:
    cfg = yaml.safe_load((INCLUDE / "config" / "passerelle.yaml").read_text(encoding="utf-8"))
    cfg["alerts"] = {
        "smtp_conn_id": "passerelle_smtp",
        "to": ["ops@example.com"],
        "from_email": "passerelle@example.com",
        "owner": "Data team",
        "contact": "data@example.com",
        **alerts,
    }
    cfg["timeouts"] = {"retry_delay_seconds": 0, "task_minutes": 5, "run_minutes": 30}
    cfg.setdefault("flows", {}).setdefault("prices_stock", {})["retries"] = 1
    path = tmp_path / "passerelle.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("PASSERELLE_CONFIG", str(path))


def _failed_run(dag):
    dr = dag.test(logical_date=DAY)
    assert dr.state == "failed"
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    assert tis["publish"].state == "failed" and tis["publish"].try_number == 2  # retried once, then failed
    return dr


def test_a_failed_run_sends_one_mail_not_one_per_retry(airflow_db, stopped_shop, smtp, tmp_path, monkeypatch):
    _config(tmp_path, monkeypatch)
    from passerelle.flows.exchange import prices_stock_dag

    dag = prices_stock_dag()
    assert dag.owner == "Data team"
    dr = _failed_run(dag)

    mails = smtp.texts()
    assert len(mails) == 1, [subject for _, subject, _ in mails]
    rcpt, subject, body = mails[0]
    assert rcpt == ["ops@example.com"]
    assert subject == f"[Passerelle] prices_stock run failed: {dr.run_id}"
    assert "prices_stock" in body and dr.run_id in body
    assert "<td>publish</td>" in body
    assert "TransferError" in body and "refused" in body.lower()
    assert "data@example.com" in body


def test_retry_notices_only_when_asked_and_still_one_failure_mail(
    airflow_db, stopped_shop, smtp, tmp_path, monkeypatch
):
    _config(tmp_path, monkeypatch, on_retry=True)
    from passerelle.flows.exchange import prices_stock_dag

    dr = _failed_run(prices_stock_dag())
    subjects = [subject for _, subject, _ in smtp.texts()]
    assert subjects.count(f"[Passerelle] prices_stock run failed: {dr.run_id}") == 1
    assert subjects.count("[Passerelle] prices_stock: task publish failed, retrying") == 1
    assert len(subjects) == 2
    retry_body = next(body for _, subject, body in smtp.texts() if "retrying" in subject)
    assert "TransferError" in retry_body and dr.run_id in retry_body


def test_no_mail_when_alerts_have_nowhere_to_go(airflow_db, stopped_shop, smtp, tmp_path, monkeypatch):
    _config(tmp_path, monkeypatch, to=[], on_retry=True)
    from passerelle.flows.exchange import prices_stock_dag

    dag = prices_stock_dag()
    assert not dag.on_failure_callback
    _failed_run(dag)
    assert smtp.mails == []
