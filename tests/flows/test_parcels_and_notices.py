"""Orders shipped in parcels and the customer notices, for real: the demo's parcels seeded in a
PostgreSQL back office, the order_status DAG run with dag.test() against an FTP server on
loopback, each shop's parcel file written from the real views, and Passerelle's own notices
received by a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import json
import socket
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pandas as pd
import pendulum
import pytest
import yaml

from passerelle import INCLUDE
from passerelle_demo.seed import seed_parcels

DAY = pendulum.datetime(2026, 11, 20, 10, 30, tz="Europe/Paris")


def _config(tmp_path, monkeypatch, **sections) -> Path:
    cfg = yaml.safe_load((INCLUDE / "config" / "passerelle.yaml").read_text(encoding="utf-8"))
    for section, values in sections.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    cfg["timeouts"] = {"retry_delay_seconds": 0, "task_minutes": 5, "run_minutes": 30}
    path = tmp_path / "passerelle.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("PASSERELLE_CONFIG", str(path))
    return path


def _run(dag, when, conf=None):
    dr = dag.test(logical_date=when, run_conf=conf or {})
    assert dr.state == "success", f"run ended {dr.state}"
    return dr


def _folders(ftp_server):
    return sorted(p.parent for p in ftp_server.path("/outbound/order_status").glob("*/manifest.json"))


def _csv(path: Path, sep: str = ",") -> pd.DataFrame:
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)


# -- parcels in the status feed (PrestaShop, the project's dialect) --------------------------------
def test_two_parcels_then_a_corrected_tracking_number(airflow_db, connections, erp, ftp_server, tmp_path, monkeypatch):
    _config(tmp_path, monkeypatch)
    seed_parcels(erp, when=datetime(2026, 11, 20, 8, 0, tzinfo=UTC))
    from passerelle.flows.exchange import order_status_dag

    dag = order_status_dag()
    _run(dag, DAY)
    (folder,) = _folders(ftp_server)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["counts"]["delivery"]["created"] == 3

    states = _csv(folder / "order_states_0001.csv", ";")
    one = states[states["reference"] == "WEB-PARCELS-1"]
    # Partly shipped with the first parcel's tracking number, then shipped with the second's.
    assert one[["status", "tracking_number", "carrier"]].values.tolist() == [
        ["confirmed", "", ""],
        ["prepared", "", ""],
        ["partly_shipped", "6A12345678901", "Colissimo"],
        ["shipped", "XY123456789FR", "Chronopost"],
    ]
    assert one.set_index("status")["id_order_state"].to_dict() == {
        "confirmed": "2",
        "prepared": "3",
        "partly_shipped": "",  # PrestaShop has no such state unless the shop made one
        "shipped": "4",
    }
    two = states[states["reference"] == "WEB-PARCELS-2"]
    assert two["status"].tolist() == ["confirmed", "prepared", "partly_shipped", "remainder_cancelled"]
    # The shop mails the customer (the state's e-mail) only for the notified statuses.
    assert dict(zip(states["status"], states["send_email"], strict=True)) == {
        "confirmed": "0",
        "prepared": "0",
        "partly_shipped": "1",
        "shipped": "1",
        "remainder_cancelled": "1",
    }

    carriers = _csv(folder / "order_carriers_0001.csv", ";")
    assert carriers[["delivery_number", "product_reference", "product_quantity", "product_quantity_ordered"]].apply(
        tuple, axis=1
    ).tolist() == [
        ("BL-PARCELS-1A", carriers.loc[0, "product_reference"], "1", "2"),
        ("BL-PARCELS-1A", carriers.loc[1, "product_reference"], "1", "1"),
        ("BL-PARCELS-2A", carriers.loc[0, "product_reference"], "1", "1"),
        ("BL-PARCELS-1B", carriers.loc[0, "product_reference"], "1", "2"),
    ]
    assert carriers.groupby("delivery_number")["status"].first().to_dict() == {
        "BL-PARCELS-1A": "partly_shipped",
        "BL-PARCELS-1B": "shipped",
        "BL-PARCELS-2A": "partly_shipped",
    }
    assert set(carriers["id_order"]) == {"DEMO-9001", "DEMO-9002"}

    # A corrected tracking number sends that parcel again, and its status row; nothing else.
    erp.execute("UPDATE erp.delivery_note SET tracking_number = '6A00000000017' WHERE number = 'BL-PARCELS-1A'")
    erp.commit()
    _run(dag, DAY.add(hours=1), {"mode": "delta"})
    second = _folders(ftp_server)[1]
    assert _csv(second / "order_carriers_0001.csv", ";")["delivery_number"].unique().tolist() == ["BL-PARCELS-1A"]
    again = _csv(second / "order_states_0001.csv", ";")
    assert again[["status", "tracking_number"]].values.tolist() == [["partly_shipped", "6A00000000017"]]


# -- each shop's parcel file ------------------------------------------------------------------------
def _build(erp, dialect_name: str, run_key: str = "first", **notices):
    from passerelle.config import load_settings
    from passerelle.core.dialects import exchange_dialect
    from passerelle.core.exchange import build_exchange, exchange_settings, order_status_entities
    from passerelle.core.export import iter_outbox

    settings = load_settings()
    settings = settings.model_copy(
        update={
            "shop": settings.shop.model_copy(update={"dialect": dialect_name}),
            "notices": settings.notices.model_copy(update=notices),
        }
    )
    day = date(2026, 11, 20)
    batch, _files = build_exchange(
        erp,
        flow="order_status",
        run_key=f"test-{dialect_name}-{run_key}",
        entities=order_status_entities(["tracking"]),
        dialect=exchange_dialect(dialect_name, settings, as_of=day),
        settings=exchange_settings(settings, day),
    )
    erp.commit()
    return {name: content for name, content, _ in iter_outbox(erp, batch.id)}


def _frame(content: bytes, sep: str = ",") -> pd.DataFrame:
    import io

    return pd.read_csv(io.BytesIO(content), sep=sep, dtype=str, keep_default_na=False)


def test_woocommerce_shipment_tracking_per_item(erp):
    seed_parcels(erp, when=datetime(2026, 11, 20, 8, 0, tzinfo=UTC))
    files = _build(erp, "woocommerce", notify={**_notify(), "partly_shipped": False})
    tracking = _frame(files["shipment_tracking_0001.csv"])
    # Advanced Shipment Tracking's CSV import, tracking per item (docs/formats/woocommerce.md).
    assert list(tracking.columns) == [
        "order_id",
        "tracking_provider",
        "tracking_number",
        "date_shipped",
        "status_shipped",
        "sku",
        "qty",
        "shipping_note",
    ]
    by_note = (
        tracking.groupby("shipping_note").agg({"status_shipped": "first", "date_shipped": "first"}).to_dict("index")
    )
    # 2 = partially shipped, 1 = shipped; 0 leaves the order as it is and sends no e-mail (partly_shipped not notified).
    assert by_note["BL-PARCELS-1B"] == {"status_shipped": "1", "date_shipped": "20-11-2026"}
    assert by_note["BL-PARCELS-1A"]["status_shipped"] == "0"
    assert tracking[tracking["shipping_note"] == "BL-PARCELS-1A"]["qty"].tolist() == ["1", "1"]
    # The statuses still go as the generic exchange file.
    assert "order_statuses_0001.csv" in files


def test_shopify_fulfillments_with_notify_customer(erp):
    seed_parcels(erp, when=datetime(2026, 11, 20, 8, 0, tzinfo=UTC))
    files = _build(erp, "shopify")
    fulfillments = _frame(files["fulfillments_0001.csv"])
    first = fulfillments[fulfillments["delivery_number"] == "BL-PARCELS-1A"]
    assert first[
        ["order_id", "tracking_company", "tracking_number", "notify_customer", "quantity"]
    ].values.tolist() == [
        ["DEMO-9001", "Colissimo", "6A12345678901", "true", "1"],
        ["DEMO-9001", "Colissimo", "6A12345678901", "true", "1"],
    ]
    # Passerelle mailing itself: the shop is told not to (one sender per notice). The first batch was
    # never confirmed, so this one holds the same parcels.
    files = _build(erp, "shopify", "second", mail=_mail(enabled=True))
    assert set(_frame(files["fulfillments_0001.csv"])["notify_customer"]) == {"false"}


def test_generic_deliveries_file(erp):
    seed_parcels(erp, when=datetime(2026, 11, 20, 8, 0, tzinfo=UTC))
    files = _build(erp, "generic", mail=_mail(enabled=True))
    deliveries = _frame(files["deliveries_0001.csv"])
    assert deliveries["delivery_number"].tolist() == [
        "BL-PARCELS-1A",
        "BL-PARCELS-1A",
        "BL-PARCELS-2A",
        "BL-PARCELS-1B",
    ]
    assert set(deliveries["notify"]) == {"0"}  # Passerelle mails the notices itself
    statuses = _frame(files["order_statuses_0001.csv"])
    assert set(statuses["notify"]) == {"0"}


def _notify():
    from passerelle.config.sections import DEFAULT_NOTIFY

    return dict(DEFAULT_NOTIFY)


def _mail(**values):
    from passerelle.config.sections import NoticeMailSection

    return NoticeMailSection.model_validate(values)


# -- Passerelle's own notices, through a real SMTP server -------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self) -> None:
        self.mails: list = []

    async def handle_DATA(self, server, session, envelope):  # the name aiosmtpd calls
        self.mails.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch):
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_PASSERELLE_SMTP",
        f"smtp://127.0.0.1:{port}/?disable_ssl=true&disable_tls=true&timeout=10&retry_limit=0",
    )
    yield inbox
    controller.stop()


def test_passerelle_mails_each_notice_once_in_the_customers_language(
    airflow_db, connections, erp, ftp_server, smtp, tmp_path, monkeypatch
):
    _config(
        tmp_path,
        monkeypatch,
        notices={
            "notify": {"partly_shipped": True, "shipped": True, "remainder_cancelled": False},
            "invoice_available": True,
            "mail": {"enabled": True, "smtp_conn_id": "passerelle_smtp", "from_email": "boutique@example.com"},
        },
    )
    now = datetime.now(UTC)
    seed_parcels(erp, when=now - timedelta(hours=1))
    # WEB-PARCELS-1's customer reads English; WEB-PARCELS-2 goes to another customer, no language set.
    english = erp.execute(
        "UPDATE erp.customer SET language = 'en' FROM erp.sales_order o "
        "WHERE o.number = 'WEB-PARCELS-1' AND erp.customer.id = o.customer_id RETURNING erp.customer.email"
    ).fetchone()[0]
    french = erp.execute(
        "UPDATE erp.sales_order SET customer_id = (SELECT id FROM erp.customer WHERE web AND email IS NOT NULL "
        "AND language IS NULL ORDER BY id LIMIT 1) WHERE number = 'WEB-PARCELS-2' "
        "RETURNING (SELECT email FROM erp.customer c WHERE c.id = customer_id)"
    ).fetchone()[0]
    erp.execute(
        "INSERT INTO erp.invoice (number, order_id, invoice_date, total_excl_vat, total_vat, total_incl_vat) "
        "SELECT 'FA-PARCELS-1', id, current_date, 10, 2, 12 FROM erp.sales_order WHERE number = 'WEB-PARCELS-1'"
    )
    erp.commit()
    from passerelle.flows.exchange import order_status_dag

    dag = order_status_dag()
    assert "notify_customers" in dag.task_ids
    _run(dag, pendulum.instance(now))

    received = [
        (rcpt, str(m["Subject"]), str(m["Content-Language"]), m.get_body(("html",)).get_content())
        for rcpt, m in smtp.mails
    ]
    assert sorted((r[0][0], r[1], r[2]) for r in received) == sorted(
        [
            (english, "A parcel of your order DEMO-9001 is on its way", "en"),
            (english, "Your order DEMO-9001 has shipped", "en"),
            (english, "Your invoice FA-PARCELS-1 is available", "en"),
            (french, "Un colis de votre commande DEMO-9002 est parti", "fr"),
        ]
    )
    shipped = next(body for rcpt, subject, _, body in received if subject.endswith("has shipped"))
    assert "XY123456789FR" in shipped and "Chronopost" in shipped
    assert all(m["From"] == "boutique@example.com" for _, m in smtp.mails)
    ledger = erp.execute("SELECT key, language FROM passerelle.customer_notice ORDER BY key").fetchall()
    assert ("invoice:FA-PARCELS-1", "en") in ledger and len(ledger) == 4

    # Once only: the next run, and a rerun of the same hour, mail nobody again.
    _run(dag, pendulum.instance(now).add(hours=1))
    _run(dag, pendulum.instance(now))
    assert len(smtp.mails) == 4


def test_a_notified_status_without_template_is_named(tmp_path):
    from passerelle.config import load_settings
    from passerelle.core.notices import NoticeError, check_templates

    folder = tmp_path / "notices"
    folder.mkdir()
    (folder / "shipped.fr.html").write_text("Subject: Expédiée\n<p>ok</p>\n", encoding="utf-8")
    path = tmp_path / "passerelle.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "notices": {
                    "notify": {"partly_shipped": False, "remainder_cancelled": False, "cancelled": False},
                    "invoice_available": True,
                    "mail": {"enabled": True, "templates_dir": str(folder)},
                }
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(NoticeError, match=r"invoice_available\.fr\.html"):
        check_templates(load_settings(str(path)))


def test_notices_of_a_run_that_failed_after_publishing_are_mailed_by_the_next(
    airflow_db, connections, erp, ftp_server, smtp, tmp_path, monkeypatch
):
    """The first run publishes the parcels' statuses, then its confirm fails (the database gone at
    that moment), so its notices are never mailed. The next run's build confirms that batch instead of
    sending its statuses again: its notify task mails them, once."""
    import psycopg

    import passerelle.core.differ as differ

    _config(
        tmp_path,
        monkeypatch,
        notices={
            "notify": {"partly_shipped": True, "shipped": True, "remainder_cancelled": False},
            "mail": {"enabled": True, "smtp_conn_id": "passerelle_smtp", "from_email": "boutique@example.com"},
        },
    )
    now = datetime.now(UTC)
    seed_parcels(erp, when=now - timedelta(hours=1))
    erp.commit()
    from passerelle.flows.exchange import order_status_dag

    dag = order_status_dag()
    real = differ.confirm_batch

    def database_gone(*args, **kwargs):
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(differ, "confirm_batch", database_gone)
    first = dag.test(logical_date=pendulum.instance(now))
    assert first.get_task_instance("publish").state == "success"
    assert first.get_task_instance("notify_customers").state != "success" and smtp.mails == []
    monkeypatch.setattr(differ, "confirm_batch", real)

    _run(dag, pendulum.instance(now).add(hours=1))
    subjects = sorted(str(m["Subject"]) for _, m in smtp.mails)
    assert subjects == [
        "Un colis de votre commande DEMO-9001 est parti",
        "Un colis de votre commande DEMO-9002 est parti",
        "Votre commande DEMO-9001 est expédiée",
    ], subjects
    statuses = erp.execute("SELECT status FROM passerelle.batch WHERE flow = 'order_status' ORDER BY id").fetchall()
    erp.commit()
    assert statuses == [("confirmed",), ("confirmed",)]
    _run(dag, pendulum.instance(now).add(hours=2))
    assert len(smtp.mails) == 3  # once only
