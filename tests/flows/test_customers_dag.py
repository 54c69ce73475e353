"""End to end: the customers DAG run for real with dag.test() against PostgreSQL and FTP.

The shop is PrestaShop (include/config/passerelle.yaml): customers and addresses the shop does not
have go through its own Customers and Addresses imports, the changes to those it has through the
documented ``*_updates`` files (docs/formats/prestashop.md, "Customers").
"""

from __future__ import annotations

import csv
import hashlib
import json

import pendulum
import pytest

from passerelle.core.dialects.prestashop import prestashop_fields, prestashop_required

DAY1 = pendulum.datetime(2026, 11, 20, 2, 30, tz="Europe/Paris")
BAD_EMAIL = "jean.dupont@exemple"  # no dot in the domain: not an e-mail for the shop


def _run(dag, when, conf=None):
    dr = dag.test(logical_date=when, run_conf=conf or {})
    assert dr.state == "success", f"run ended {dr.state}"
    return dr


def _rows(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh, delimiter=";"))


def _manifests(ftp_server):
    return sorted(ftp_server.path("/outbound/customers").glob("*/manifest.json"))


@pytest.fixture
def customers(airflow_db, connections):
    from passerelle.flows.customers import customers_dag

    return customers_dag()


def test_full_then_only_the_changed_customer(customers, connections, erp, ftp_server):
    # One customer with an e-mail the shop would refuse; one the shop created itself (known by
    # its shop id from orders_in): neither goes through the import.
    erp.execute("UPDATE erp.customer SET email = %s WHERE code = 'CLI-000003'", (BAD_EMAIL,))
    erp.execute(
        "INSERT INTO passerelle.customer_link (shop_customer_id, customer_id) "
        "SELECT '5012', id FROM erp.customer WHERE code = 'CLI-000004'"
    )
    erp.commit()
    selected = erp.execute("SELECT count(*) FROM erp.customer WHERE web AND email IS NOT NULL").fetchone()[0] - 1

    _run(customers, DAY1)
    (first,) = _manifests(ftp_server)
    m1 = json.loads(first.read_text())
    assert m1["mode"] == "full"
    assert m1["counts"]["customer"]["created"] == selected
    assert m1["counts"]["customer"]["rejected"] == 1
    assert m1["counts"]["customer_address"]["rejected"] == 2  # its billing and delivery addresses
    folder = first.parent
    for f in m1["files"]:
        assert hashlib.sha256((folder / f["name"]).read_bytes()).hexdigest() == f["sha256"]
    assert sorted(f["name"] for f in m1["files"]) == ["addresses_0001.csv", "customers_0001.csv"]

    # The files' headers are the importer's own field lists (a prefix: PrestaShop matches by position).
    for stem, entity in (("customers", "customers"), ("addresses", "addresses")):
        header, *rows = _rows(folder / f"{stem}_0001.csv")
        labels = [label for _, label in prestashop_fields(entity)]
        assert header == labels[: len(header)], stem
        required = [header.index(label) for label in prestashop_required(entity)]
        assert all(row[i] for row in rows for i in required), stem
    header, *rows = _rows(folder / "customers_0001.csv")
    emails = {r[header.index("Email*")] for r in rows}
    assert len(rows) == selected - 1  # less the refused one
    assert BAD_EMAIL not in emails
    assert erp.execute("SELECT lower(email) FROM erp.customer WHERE code = 'CLI-000004'").fetchone()[0] not in emails
    family = {r[header.index("Groups (x,y,z...)")] for r in rows}
    assert family == {"Particuliers", "Professionnels"}

    # The bad e-mail is refused with its reason, and so are its addresses (found by e-mail).
    refused = erp.execute(
        "SELECT entity, key, field, value, reason FROM passerelle.outbound_reject ORDER BY entity, key"
    ).fetchall()
    assert [r[:4] for r in refused] == [
        ("customer", "CLI-000003", "email", BAD_EMAIL),
        ("customer_address", "CLI-000003:billing", "customer_email", BAD_EMAIL),
        ("customer_address", "CLI-000003:delivery", "customer_email", BAD_EMAIL),
    ]
    assert all("not an e-mail address" in r[4] for r in refused)

    # One customer moves: the next run sends that customer only.
    erp.execute(
        "UPDATE erp.address SET line1 = '12 rue Neuve', postcode = '69002', city = 'Lyon' "
        "WHERE kind = 'delivery' AND customer_id = (SELECT id FROM erp.customer WHERE code = 'CLI-000010')"
    )
    erp.commit()
    _run(customers, DAY1.add(days=1))
    manifests = _manifests(ftp_server)
    assert len(manifests) == 2
    m2 = json.loads(manifests[1].read_text())
    assert m2["mode"] == "delta"
    c, a = m2["counts"]["customer"], m2["counts"]["customer_address"]
    # The refused customer and its addresses are tried again (the snapshot did not advance for
    # them), refused again; nothing else is new.
    assert (c["created"], c["rejected"], a["created"], a["rejected"]) == (1, 1, 2, 2)
    assert (c["changed"], c["removed"], a["changed"], a["removed"]) == (1, 0, 1, 0)
    folder = manifests[1].parent
    assert sorted(f["name"] for f in m2["files"]) == ["addresses_updates_0001.csv", "customers_updates_0001.csv"]
    header, *rows = _rows(folder / "customers_updates_0001.csv")
    assert [r[header.index("passerelle_key")] for r in rows] == ["CLI-000010"]
    header, *rows = _rows(folder / "addresses_updates_0001.csv")
    assert [
        (r[header.index("passerelle_key")], r[header.index("address1")], r[header.index("city")]) for r in rows
    ] == [("CLI-000010:delivery", "12 rue Neuve", "Lyon")]


def test_a_customer_taken_off_the_web_is_deactivated_by_its_email(customers, connections, erp, ftp_server):
    _run(customers, DAY1)
    email = erp.execute(
        "UPDATE erp.customer SET web = false WHERE code = 'CLI-000007' RETURNING lower(email)"
    ).fetchone()[0]
    erp.commit()
    _run(customers, DAY1.add(days=1))
    m2 = json.loads(_manifests(ftp_server)[1].read_text())
    assert m2["counts"]["customer"]["removed"] == 1
    assert m2["counts"]["customer_address"]["removed"] == 2
    folder = _manifests(ftp_server)[1].parent
    header, *rows = _rows(folder / "customers_off_0001.csv")
    assert rows == [["CLI-000007", email, "0"]] and header == ["passerelle_key", "email", "active"]


def test_a_run_that_failed_after_publishing_creates_no_customer_twice(
    airflow_db, connections, erp, ftp_server, monkeypatch, tmp_path
):
    """The first run publishes its Customers and Addresses imports, then its confirm fails (the
    database gone at that moment: it raises like one). The shop has the files and imports them.
    The next run must not send those customers again as creations: PrestaShop matches customers and
    addresses by ID only, so each would be created a second time. Its build confirms the published
    batch first, and sends what changed since: here one customer's new phone number. Then the failed
    run is cleared: its batch is not published again after the newer one."""
    import psycopg
    import yaml

    import passerelle.core.differ as differ
    from passerelle import INCLUDE

    cfg = yaml.safe_load((INCLUDE / "config" / "passerelle.yaml").read_text(encoding="utf-8"))
    cfg["flows"]["customers"] = {**cfg["flows"]["customers"], "retries": 0}
    (tmp_path / "passerelle.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("PASSERELLE_CONFIG", str(tmp_path / "passerelle.yaml"))
    from passerelle.flows.customers import customers_dag

    customers = customers_dag()
    real = differ.confirm_batch

    def database_gone(*args, **kwargs):
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(differ, "confirm_batch", database_gone)
    dr = customers.test(logical_date=DAY1)
    assert dr.get_task_instance("publish").state == "success"
    assert dr.get_task_instance("confirm").state != "success"
    (first,) = _manifests(ftp_server)
    header, *created = _rows(first.parent / "customers_0001.csv")
    assert len(created) > 5
    assert erp.execute("SELECT status FROM passerelle.batch WHERE flow = 'customers'").fetchall() == [("published",)]
    erp.execute("UPDATE erp.customer SET phone = '0700000000' WHERE code = 'CLI-000010'")
    erp.commit()

    monkeypatch.setattr(differ, "confirm_batch", real)
    _run(customers, DAY1.add(days=1))
    statuses = erp.execute("SELECT status FROM passerelle.batch WHERE flow = 'customers' ORDER BY id").fetchall()
    erp.commit()
    assert statuses == [("confirmed",), ("confirmed",)]
    second = _manifests(ftp_server)[1]
    m2 = json.loads(second.read_text())
    assert m2["mode"] == "delta"
    assert (m2["counts"]["customer"]["created"], m2["counts"]["customer"]["changed"]) == (0, 1)
    assert m2["counts"]["customer_address"]["created"] == 0
    assert sorted(f["name"] for f in m2["files"]) == ["customers_updates_0001.csv"]
    header, *rows = _rows(second.parent / "customers_updates_0001.csv")
    assert [r[header.index("passerelle_key")] for r in rows] == ["CLI-000010"]

    # The engineer clears the failed first run; meanwhile the shop imported its folder and removed it.
    for path in first.parent.iterdir():
        path.unlink()
    rerun = customers.test(logical_date=DAY1)
    assert rerun.state == "success"
    assert rerun.get_task_instance("publish").state == "skipped"  # its customers are not created again
    assert list(first.parent.iterdir()) == []
    assert _manifests(ftp_server) == [second]
