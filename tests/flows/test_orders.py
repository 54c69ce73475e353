"""End to end: the orders_in DAG runs for real with dag.test() against PostgreSQL (a seeded
back office per test) and an FTP server on loopback where the shop drops its files."""

from __future__ import annotations

import shutil

import pendulum
import pytest

from passerelle import INCLUDE

SAMPLES = INCLUDE / "sample" / "inbound"
DROPPED = ("orders_20261120_0900.csv", "orders_20261120_1000.csv", "customers_20261120.csv")
DAY1 = pendulum.datetime(2026, 11, 20, 10, 15, tz="Europe/Paris")


def _run(dag, when, conf=None):
    dr = dag.test(logical_date=when, run_conf=conf or {})
    assert dr.state == "success", f"run ended {dr.state}"
    return dr


def _state(erp) -> dict:
    q = {
        "orders": "SELECT string_agg(shop_order_id || ':' || kind || ':' || status, ',' ORDER BY shop_order_id) "
        "FROM erp.sales_order WHERE origin = 'web'",
        "lines": "SELECT count(*) FROM erp.sales_order_line l JOIN erp.sales_order o ON o.id = l.order_id "
        "WHERE o.origin = 'web'",
        "payments": "SELECT count(*) FROM erp.payment",
        "customers": "SELECT count(*) FROM erp.customer",
        "links": "SELECT count(*) FROM passerelle.customer_link",
        "addresses": "SELECT count(*) FROM erp.address",
        "quarantine": "SELECT count(*) FROM passerelle.quarantine",
    }
    out = {k: erp.execute(v).fetchone()[0] for k, v in q.items()}
    erp.commit()
    return out


@pytest.fixture
def orders_in(airflow_db, connections):
    from passerelle.flows.orders import orders_in_dag

    return orders_in_dag()


def _drop(ftp_server, names=DROPPED, as_names=None):
    inbound = ftp_server.path("/inbound")
    inbound.mkdir(parents=True, exist_ok=True)
    for name, target in zip(names, as_names or names):
        shutil.copy(SAMPLES / name, inbound / target)


def test_dropped_files_are_integrated_once_archived_and_rejects_uploaded(orders_in, erp, ftp_server):
    from passerelle.core.inbound import read_inbound

    customers_before = _state(erp)["customers"]
    parsed = {n: read_inbound(n, (SAMPLES / n).read_bytes()) for n in DROPPED}
    integrated = {"WEB-100231", "WEB-100232", "WEB-100233", "WEB-100235", "WEB-100236"}
    emails = sorted(
        {
            *parsed["customers_20261120.csv"].customers["email"],
            *(
                e
                for n in DROPPED[:2]
                for e in parsed[n].orders.loc[parsed[n].orders["shop_order_id"].isin(integrated), "email"]
            ),
        }
    )
    known = erp.execute("SELECT count(*) FROM erp.customer WHERE lower(email) = ANY(%s)", (emails,)).fetchone()[0]
    assert 0 < known < len(emails)  # some are already customers of the store: matched by e-mail
    _drop(ftp_server)
    inbound = ftp_server.path("/inbound")
    (inbound / "orders_20261120_1100.csv.part").write_bytes(b"half an upload")  # still uploading: left alone
    _run(orders_in, DAY1)

    s1 = _state(erp)
    # 0900: paid and validated orders, one quote; pending and cancelled (never integrated) are not.
    # 1000: three paid orders, WEB-100237 has an unknown SKU and is quarantined whole.
    assert s1["orders"] == (
        "WEB-100231:order:confirmed,WEB-100232:order:confirmed,WEB-100233:quote:quote,"
        "WEB-100235:order:confirmed,WEB-100236:order:confirmed"
    )
    assert s1["lines"] == 9 and s1["payments"] == 4
    assert s1["links"] == len(emails)  # every shop customer id linked to a back-office customer
    assert s1["customers"] == customers_before + len(emails) - known
    assert erp.execute("SELECT DISTINCT shop_order_id FROM passerelle.quarantine").fetchall() == [("WEB-100237",)]
    erp.commit()

    assert sorted(p.name for p in inbound.iterdir() if p.is_file()) == ["orders_20261120_1100.csv.part"]
    archived = sorted(p.name.split("_", 1)[1] for p in ftp_server.path("/inbound/archive").iterdir())
    assert archived == sorted(DROPPED)
    errors = list(ftp_server.path("/errors").iterdir())
    assert len(errors) == 1 and errors[0].name.startswith("orders_20261120_1000.")
    assert "unknown SKU" in errors[0].read_text(encoding="utf-8-sig")
    summary = erp.execute("SELECT counts FROM passerelle.run_summary WHERE flow = 'orders_in'").fetchone()[0]
    assert summary["orders_created"] == 4 and summary["files"] == 3
    erp.commit()

    # The same logical date again, with the files dropped once more (and one under another name).
    _drop(ftp_server)
    _drop(ftp_server, names=["orders_20261120_0900.csv"], as_names=["orders_copie.csv"])
    _run(orders_in, DAY1)
    assert _state(erp) == s1
    assert sorted(p.name for p in inbound.iterdir() if p.is_file()) == ["orders_20261120_1100.csv.part"]
    assert len(list(ftp_server.path("/inbound/archive").iterdir())) == 4  # the copy archived too

    # Fix the cause (the article exists now) and replay the quarantine: the order comes in, once.
    sku = erp.execute("SELECT value FROM passerelle.quarantine WHERE field = 'sku'").fetchone()[0]
    erp.execute(
        "INSERT INTO erp.article (reference, name, vat_rate, price_excl_vat, min_stock) "
        "VALUES (%s, 'Article créé après coup', 20, 10, 0)",
        (sku,),
    )
    erp.commit()
    _run(orders_in, DAY1.add(hours=1), {"replay_quarantine": True})
    s3 = _state(erp)
    lines_237 = int((parsed[DROPPED[1]].lines["shop_order_id"] == "WEB-100237").sum())
    assert "WEB-100237:order:confirmed" in s3["orders"] and s3["lines"] == s1["lines"] + lines_237
    assert s3["payments"] == s1["payments"] + 1
    assert erp.execute("SELECT DISTINCT status FROM passerelle.quarantine").fetchall() == [("replayed",)]


def test_dry_run_moves_nothing_and_writes_nothing(orders_in, erp, ftp_server):
    before = _state(erp)
    _drop(ftp_server)
    _run(orders_in, DAY1, {"dry_run": True})
    assert _state(erp) == before
    assert sorted(p.name for p in ftp_server.path("/inbound").iterdir()) == sorted(DROPPED)


def test_dag_imports_with_tags_owner_and_params():
    from airflow.dag_processing.dagbag import DagBag

    from passerelle import PROJECT_ROOT

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "orders_in.py"))
    assert not bag.import_errors
    dag = bag.dags["orders_in"]
    assert {"passerelle", "orders_in", "shop-to-erp"} <= set(dag.tags)
    assert "replay_quarantine" in dag.params
    assert [t.task_id for t in dag.tasks] == ["import_files", "propose_reorders"]
    assert {t.owner for t in dag.tasks} == {"passerelle"} and {t.retries for t in dag.tasks} == {2}
    assert dag.max_active_runs == 1


def test_unreadable_file_goes_to_the_error_folder_and_the_quarantine(orders_in, erp, ftp_server):
    inbound = ftp_server.path("/inbound")
    inbound.mkdir(parents=True)
    (inbound / "notes.csv").write_bytes(b"hello;world\n1;2\n")
    _run(orders_in, DAY1)
    assert [p.name for p in inbound.iterdir() if p.is_file()] == []
    moved = [p.name for p in ftp_server.path("/errors").iterdir()]
    assert len(moved) == 1 and moved[0].endswith("_notes.csv")
    row = erp.execute("SELECT file, line, field, reason FROM passerelle.quarantine").fetchone()
    assert row[:3] == ("notes.csv", 0, "file") and "notes.csv" in row[3]


def test_reorder_proposals_skipped_when_nothing_changed_updated_not_doubled_after_an_order(orders_in, erp, ftp_server):
    """Issue #11 item 5: a run with nothing new writes no proposal (the task is skipped, saying
    why); an integrated order updates the open proposals of its articles, never doubles them."""
    ftp_server.path("/inbound").mkdir(parents=True)
    erp.execute("UPDATE erp.article SET min_stock = 100000, reorder_qty = 10")  # every stock row below minimum
    erp.commit()

    def proposals() -> list[tuple]:
        rows = erp.execute(
            "SELECT article_id, variant_id, status, projected_qty FROM erp.reorder_proposal ORDER BY 1, 2, id"
        ).fetchall()
        erp.commit()
        return rows

    def reorder_state(dr) -> str:
        return dr.get_task_instance("propose_reorders").state

    first = _run(orders_in, DAY1)
    assert reorder_state(first) == "success"
    computed = proposals()
    assert computed and len({(a, v) for a, v, *_ in computed}) == len(computed)

    for hours in (1, 2):  # two runs with nothing new: skipped, nothing written
        dr = _run(orders_in, DAY1.add(hours=hours))
        assert reorder_state(dr) == "skipped"
        assert proposals() == computed
    counts, note = erp.execute(
        "SELECT counts, note FROM passerelle.run_summary WHERE dag_run_id = %s", (dr.run_id,)
    ).fetchone()
    erp.commit()
    assert (counts["reorder_proposals"], counts["reorder_proposals_updated"]) == (0, 0)
    assert note.startswith("integrated 0 rows in 0 files")  # the summary and note are still written

    _drop(ftp_server, names=["orders_20261120_0900.csv"])
    dr = _run(orders_in, DAY1.add(hours=3))
    assert reorder_state(dr) == "success"
    after = proposals()
    assert [(a, v, s) for a, v, s, _ in after] == [(a, v, s) for a, v, s, _ in computed]  # none added
    ordered = erp.execute(
        "SELECT l.article_id, l.variant_id, sum(l.quantity) FROM erp.sales_order_line l "
        "JOIN erp.sales_order o ON o.id = l.order_id WHERE o.origin = 'web' AND o.status = 'confirmed' "
        "GROUP BY 1, 2"
    ).fetchall()
    erp.commit()
    assert ordered
    projected_before = {(a, v): q for a, v, _, q in computed}
    projected_after = {(a, v): q for a, v, _, q in after}
    for article, variant, qty in ordered:  # each ordered article's open proposal follows the order
        assert projected_after[(article, variant)] == projected_before[(article, variant)] - qty
    counts = erp.execute("SELECT counts FROM passerelle.run_summary WHERE dag_run_id = %s", (dr.run_id,)).fetchone()[0]
    erp.commit()
    assert counts["reorder_proposals"] == 0 and counts["reorder_proposals_updated"] == len(ordered)
