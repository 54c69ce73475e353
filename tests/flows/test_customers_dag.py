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
from passerelle.core.outcome import sent_rows
from passerelle.core.summary import LATE_CONFIRM

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


def _without_retries(monkeypatch, tmp_path):
    """The customers DAG, its tasks configured with no retry: a failure fails the run at once."""
    import yaml

    from passerelle import INCLUDE

    cfg = yaml.safe_load((INCLUDE / "config" / "passerelle.yaml").read_text(encoding="utf-8"))
    cfg["flows"]["customers"] = {**cfg["flows"]["customers"], "retries": 0}
    (tmp_path / "passerelle.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("PASSERELLE_CONFIG", str(tmp_path / "passerelle.yaml"))
    from passerelle.flows.customers import customers_dag

    return customers_dag()


def _database_gone(*args, **kwargs):
    import psycopg

    raise psycopg.OperationalError("server closed the connection unexpectedly")


def _the_phone_change_alone(manifest):
    """The batch of ``manifest`` is a delta sending CLI-000010's new phone number and nothing else:
    no customer or address created again."""
    m = json.loads(manifest.read_text())
    assert m["mode"] == "delta"
    assert (m["counts"]["customer"]["created"], m["counts"]["customer"]["changed"]) == (0, 1)
    assert m["counts"]["customer_address"]["created"] == 0
    assert sorted(f["name"] for f in m["files"]) == ["customers_updates_0001.csv"]
    header, *rows = _rows(manifest.parent / "customers_updates_0001.csv")
    assert [r[header.index("passerelle_key")] for r in rows] == ["CLI-000010"]


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
    import passerelle.core.differ as differ

    customers = _without_retries(monkeypatch, tmp_path)
    real = differ.confirm_batch

    monkeypatch.setattr(differ, "confirm_batch", _database_gone)
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
    _the_phone_change_alone(second)

    # The failed run's summary, which its confirm could not write, was written by the build that
    # confirmed its batch: the runs page and the daily report count the customers it sent.
    def summaries():
        rows = erp.execute(
            "SELECT dag_run_id, counts, bytes_sent, note FROM passerelle.run_summary WHERE flow = 'customers' "
            "ORDER BY id"
        ).fetchall()
        erp.commit()
        return rows

    m1 = json.loads(first.read_text())
    late, latest = summaries()
    assert late[0] == dr.run_id and latest[0] != dr.run_id
    assert late[1] == m1["counts"]
    assert late[2] == sum(f["bytes"] for f in m1["files"]) > 0
    assert late[3].startswith(f"sent {sent_rows(m1['counts'])} rows in 2 files; ")
    assert LATE_CONFIRM in late[3]

    # The engineer clears the failed first run; meanwhile the shop imported its folder and removed it.
    for path in first.parent.iterdir():
        path.unlink()
    rerun = customers.test(logical_date=DAY1)
    assert rerun.state == "success"
    assert rerun.get_task_instance("publish").state == "skipped"  # its customers are not created again
    assert list(first.parent.iterdir()) == []
    assert _manifests(ftp_server) == [second]
    # That run's summary still says what it sent; the rerun's says it sent nothing (dag.test makes
    # it a run of its own: a run cleared in the UI keeps its id, and then its summary, as
    # tests/core/test_summary.py shows).
    *kept, again = summaries()
    assert kept == [late, latest]
    assert again == (
        rerun.run_id,
        {},
        0,
        "sent 0 rows in 0 files; nothing uploaded: batch 1 is overtaken by batch 2; nothing quarantined",
    )


@pytest.mark.parametrize("cut", ["record", "record, then the shop took the folder", "manifest upload"])
def test_a_publication_cut_before_it_was_recorded_creates_no_customer_twice(
    airflow_db, connections, erp, ftp_server, monkeypatch, tmp_path, cut
):
    """The first run's publish uploads the Customers and Addresses imports, then either its
    manifest goes up and the database is lost before the publication is recorded ("record"; the
    shop may then import the folder and remove it), or the manifest's upload itself fails
    ("manifest upload"); the task fails, its retries used up. The next run takes that batch up:
    its publish records it without putting anything again where the shop has it (manifest there,
    or folder gone), and puts the manifest where it never arrived; its own change goes with the
    run after, alone. No customer is created twice, and clearing the first run later sends nothing
    of it again. Before, the batch was superseded and the next one sent every customer again as a
    creation, in a new folder."""
    import passerelle.core.batches as batches
    from passerelle.hooks.shop import ShopFilesHook, TransferError

    customers = _without_retries(monkeypatch, tmp_path)
    mark, put = batches.mark_published, ShopFilesHook.put_atomic
    if cut == "manifest upload":

        def no_manifest(self, path, *args, **kwargs):
            if path.endswith("/manifest.json"):
                raise TransferError(f"upload {path}: the server replied '452 Insufficient storage space'")
            return put(self, path, *args, **kwargs)

        monkeypatch.setattr(ShopFilesHook, "put_atomic", no_manifest)
    else:
        monkeypatch.setattr(batches, "mark_published", _database_gone)
    dr = customers.test(logical_date=DAY1)
    assert dr.get_task_instance("publish").state == "failed"
    folder = next(ftp_server.path("/outbound/customers").iterdir())
    sent = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
    assert ("manifest.json" in sent) is (cut != "manifest upload")
    header, *created = _rows(folder / "customers_0001.csv")
    assert len(created) > 5
    assert erp.execute("SELECT status FROM passerelle.batch WHERE flow = 'customers'").fetchall() == [("built",)]
    erp.execute("UPDATE erp.customer SET phone = '0700000000' WHERE code = 'CLI-000010'")
    erp.commit()
    if cut == "record, then the shop took the folder":
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()

    monkeypatch.setattr(batches, "mark_published", mark)
    monkeypatch.setattr(ShopFilesHook, "put_atomic", put)
    second = _run(customers, DAY1.add(days=1))
    assert second.get_task_instance("build").xcom_pull(task_ids="build")["batch_id"] == 1
    rows = erp.execute("SELECT status, manifest FROM passerelle.batch WHERE flow = 'customers' ORDER BY id").fetchall()
    note = erp.execute("SELECT note FROM passerelle.run_summary WHERE dag_run_id = %s", (second.run_id,)).fetchone()[0]
    erp.commit()
    assert [r[0] for r in rows] == ["confirmed"]
    assert sorted(f["name"] for f in rows[0][1]["files"]) == ["addresses_0001.csv", "customers_0001.csv"]
    assert f"batch 1 of {DAY1.in_tz('UTC').isoformat()} finished" in note
    if cut == "record, then the shop took the folder":
        assert not folder.exists()  # not put again for the shop to import twice
    else:
        again = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
        if cut == "record":
            assert again == sent  # the shop has it: nothing put again
        else:  # the same files (put again: the shop ignores a folder without manifest), and the manifest
            assert {k: v[0] for k, v in again.items() if k != "manifest.json"} == {k: v[0] for k, v in sent.items()}
            assert json.loads(again["manifest.json"][0])["files"] == rows[0][1]["files"]

    # The run after sends the one change, no creation.
    _run(customers, DAY1.add(days=2))
    _the_phone_change_alone(_manifests(ftp_server)[-1])

    # The engineer clears the failed first run: the batch it built is the next run's now; it builds
    # anew, has nothing to send, and the first batch's folder is not put again.
    def csv_files():
        return {p: p.stat().st_mtime_ns for p in ftp_server.path("/outbound").rglob("*.csv")}

    before = csv_files()
    _run(customers, DAY1)
    assert csv_files() == before


def test_a_full_send_asked_of_a_run_that_takes_up_a_cut_batch_is_said_not_built(
    airflow_db, connections, erp, ftp_server, monkeypatch, tmp_path
):
    """A run taking up a batch whose publication was cut sends that batch, not what it was asked
    for: a delta's changes go with the next run, but a full send asked by hand would be lost
    without a word. Its summary says it was not built and to trigger it again; triggered again,
    it is built."""
    import passerelle.core.batches as batches

    customers = _without_retries(monkeypatch, tmp_path)
    _run(customers, DAY1)  # the first send, full
    erp.execute("UPDATE erp.customer SET phone = '0700000000' WHERE code = 'CLI-000010'")
    erp.commit()
    mark = batches.mark_published
    monkeypatch.setattr(batches, "mark_published", _database_gone)
    cut = customers.test(logical_date=DAY1.add(days=1))
    assert cut.get_task_instance("publish").state == "failed"
    monkeypatch.setattr(batches, "mark_published", mark)

    asked = _run(customers, DAY1.add(days=2), {"mode": "full"})
    build = asked.get_task_instance("build").xcom_pull(task_ids="build")
    note = erp.execute("SELECT note FROM passerelle.run_summary WHERE dag_run_id = %s", (asked.run_id,)).fetchone()[0]
    erp.commit()
    assert (build["batch_id"], build["mode"]) == (2, "delta")  # the cut delta, taken up
    assert "a full send of customer, customer_address was asked of this run and not built: trigger it again" in note

    again = _run(customers, DAY1.add(days=3), {"mode": "full"})
    rebuilt = again.get_task_instance("build").xcom_pull(task_ids="build")
    assert rebuilt["mode"] == "full" and "not_built" not in rebuilt


@pytest.mark.parametrize("failed", ["confirm", "publication record"])
def test_a_dry_run_after_a_failed_run_shows_what_the_next_run_sends(
    airflow_db, connections, erp, ftp_server, monkeypatch, tmp_path, failed
):
    """The first run's files reach the shop, then its confirm fails (its batch stays ``published``)
    or its publication is never recorded (``built``, manifest up: the next run takes it up). The
    engineer asks a dry run what the next run will send. The next run counts that batch as on the
    shop, so the dry run must too: it shows the one changed phone number, not every customer created
    again, and says why. It changes nothing: the snapshot stays empty, the batch as it was, and the
    next run goes on as it would have."""
    import passerelle.core.batches as batches
    import passerelle.core.differ as differ

    customers = _without_retries(monkeypatch, tmp_path)
    target, name = (differ, "confirm_batch") if failed == "confirm" else (batches, "mark_published")
    real = getattr(target, name)
    monkeypatch.setattr(target, name, _database_gone)
    dr = customers.test(logical_date=DAY1)
    assert dr.state == "failed"
    status = "published" if failed == "confirm" else "built"
    erp.execute("UPDATE erp.customer SET phone = '0700000000' WHERE code = 'CLI-000010'")
    erp.commit()
    monkeypatch.setattr(target, name, real)

    def state():
        rows = (
            erp.execute("SELECT entity, key, hash FROM passerelle.snapshot ORDER BY 1, 2").fetchall(),
            erp.execute("SELECT id, status FROM passerelle.batch WHERE status <> 'dry_run' ORDER BY id").fetchall(),
        )
        erp.commit()
        return rows

    before = state()
    assert before == ([], [(1, status)])
    dry = _run(customers, DAY1.add(hours=12), {"dry_run": True})
    build = dry.get_task_instance("build").xcom_pull(task_ids="build")
    assert build["status"] == "dry_run" and build["mode"] == "delta"
    assert (build["counts"]["customer"]["created"], build["counts"]["customer"]["changed"]) == (0, 1)
    assert build["counts"]["customer_address"]["created"] == 0
    assert [f["name"] for f in build["files"]] == ["customers_updates_0001.csv"]
    note = erp.execute("SELECT note FROM passerelle.run_summary WHERE dag_run_id = %s", (dry.run_id,)).fetchone()[0]
    erp.commit()
    said = (
        "batch 1 was published and its confirm never ran"
        if failed == "confirm"
        else "batch 1's publication was cut before it was recorded"
    )
    assert note.startswith("dry run: would have sent 1 row in 1 file; ") and said in note
    assert state() == before  # nothing changed: the snapshot is put back, batch 1 as it was

    nxt = _run(customers, DAY1.add(days=1), {"dry_run": False})  # (dag.test keeps the last run's params)
    if failed == "confirm":  # batch 1 confirmed by this build, which sends the change alone
        _the_phone_change_alone(_manifests(ftp_server)[-1])
    else:  # batch 1 taken up; the change goes with the run after
        assert nxt.get_task_instance("build").xcom_pull(task_ids="build")["batch_id"] == 1
        _run(customers, DAY1.add(days=2))
        _the_phone_change_alone(_manifests(ftp_server)[-1])
