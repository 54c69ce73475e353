"""Issue #14, item 4 end to end: the orders_in DAG run for real (dag.test()) against PostgreSQL and an
FTP server on loopback, with ``inbound.awaiting_payment: [pending]``. The shop drops the 20th's file
(a pending order), then the next morning's (that order paid, another partly refunded): one payment
completed, one status change, one credit note request, and the run's note says so; the next
morning's file dropped again under another name changes nothing."""

from __future__ import annotations

import shutil

import pendulum
import yaml

from dag_runs import xcom
from passerelle import INCLUDE

SAMPLES = INCLUDE / "sample" / "inbound"
PARIS = "Europe/Paris"


def _state(erp) -> dict:
    out = {
        "orders": dict(
            erp.execute(
                "SELECT shop_order_id, status FROM erp.sales_order WHERE shop_order_id IN ('WEB-100231', 'WEB-100234')"
            ).fetchall()
        ),
        "paid": erp.execute(
            "SELECT p.paid, p.transaction_id FROM erp.payment p JOIN erp.sales_order o ON o.id = p.order_id "
            "WHERE o.shop_order_id = 'WEB-100234'"
        ).fetchall(),
        "credit_notes": erp.execute(
            "SELECT o.shop_order_id, r.amount, r.source_file FROM erp.credit_note_request r "
            "JOIN erp.sales_order o ON o.id = r.order_id"
        ).fetchall(),
        "history": erp.execute(
            "SELECT h.status FROM erp.order_status_history h JOIN erp.sales_order o ON o.id = h.order_id "
            "WHERE o.shop_order_id = 'WEB-100234' ORDER BY h.id"
        ).fetchall(),
    }
    erp.commit()
    return out


def test_a_late_payment_and_a_refund_through_the_dag(airflow_db, connections, erp, ftp_server, tmp_path, monkeypatch):
    from passerelle.config import DEFAULT_PATH

    cfg = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    cfg["inbound"]["awaiting_payment"] = ["pending"]
    path = tmp_path / "passerelle.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("PASSERELLE_CONFIG", str(path))
    from passerelle.flows.orders import orders_in_dag

    dag = orders_in_dag()
    inbound = ftp_server.path("/inbound")
    inbound.mkdir(parents=True, exist_ok=True)

    shutil.copy(SAMPLES / "orders_20261120_0900.csv", inbound / "orders_20261120_0900.csv")
    first = dag.test(logical_date=pendulum.datetime(2026, 11, 20, 10, 15, tz=PARIS))
    assert first.state == "success"
    before = _state(erp)
    assert before["orders"] == {"WEB-100231": "confirmed", "WEB-100234": "awaiting_payment"}
    assert before["paid"] == [(False, None)] and before["credit_notes"] == []

    shutil.copy(SAMPLES / "orders_20261121_0900.csv", inbound / "orders_20261121_0900.csv")
    second = dag.test(logical_date=pendulum.datetime(2026, 11, 21, 10, 15, tz=PARIS))
    assert second.state == "success"
    after = _state(erp)
    assert after["orders"] == {"WEB-100231": "confirmed", "WEB-100234": "confirmed"}
    assert after["paid"] == [(True, "PAYID-M5QK2VA8XK")]
    assert [(o, float(a), f) for o, a, f in after["credit_notes"]] == [("WEB-100231", 20.0, "orders_20261121_0900.csv")]
    assert after["history"] == [("awaiting_payment",), ("confirmed",)]
    note = xcom(second, "propose_reorders", "run_note")
    assert "1 payments seen later" in note and "1 orders confirmed by their payment" in note
    assert "1 credit notes requested" in note

    # The same news again, under another name (a re-export): nothing doubled.
    data = (SAMPLES / "orders_20261121_0900.csv").read_bytes()
    (inbound / "orders_20261121_0901.csv").write_bytes(data.replace(b"\n", b"\r\n"))
    third = dag.test(logical_date=pendulum.datetime(2026, 11, 21, 11, 15, tz=PARIS))
    assert third.state == "success"
    assert _state(erp) == after
    counts = xcom(third, "import_files")["counts"]
    assert (counts["payments_seen_later"], counts["credit_notes_requested"], counts["orders_created"]) == (0, 0, 0)
