"""Inbound integration against a real PostgreSQL (a seeded back office per test): exactly once,
nothing lost, quarantine and replay, reorder proposals, and a process killed in mid-file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from passerelle import INCLUDE
from passerelle.core.inbound import read_inbound
from passerelle.core.integrate import (
    archive_name,
    finish_file,
    integrate_file,
    known_skus,
    propose_reorders,
    reject_unknown_skus,
    replay_quarantine,
    sha256,
)

SAMPLES = INCLUDE / "sample" / "inbound"
ORDERS_0900 = (SAMPLES / "orders_20261120_0900.csv").read_bytes()
ORDERS_1000 = (SAMPLES / "orders_20261120_1000.csv").read_bytes()
CUSTOMERS = (SAMPLES / "customers_20261120.csv").read_bytes()

HEADER = (
    "shop_order_id,order_date,status,shop_customer_id,email,currency,line_number,sku,label,quantity,"
    "unit_price_excl_vat,vat_rate,line_discount_excl_vat,payment_method,payment_amount,payment_paid,"
    "billing_first_name,billing_last_name,billing_address1,billing_postcode,billing_city,billing_country"
)


def _orders_file(n: int, *, bad: dict[int, str] | None = None, prefix: str = "T") -> bytes:
    """n one-line paid orders; ``bad`` replaces the row of some orders (index -> row text)."""
    rows = [HEADER]
    for i in range(n):
        sku = f"ART-{(i % 50) + 1:06d}"
        rows.append(
            f"{prefix}{i:05d},2026-11-20T08:00:00+01:00,paid,{9000 + i % 7},c{i % 7}@exemple.fr,EUR,1,"
            f"{sku},Article {i},2,10.00,20,0,card,24.00,1,Ana,Test,1 rue Haute,75001,Paris,FR"
        )
    for i, text in (bad or {}).items():
        rows[i + 1] = text
    return ("\n".join(rows) + "\n").encode()


def _counts(conn: psycopg.Connection) -> dict[str, int]:
    q = {
        "orders": "SELECT count(*) FROM erp.sales_order WHERE origin = 'web'",
        "lines": "SELECT count(*) FROM erp.sales_order_line l JOIN erp.sales_order o ON o.id = l.order_id "
        "WHERE o.origin = 'web'",
        "payments": "SELECT count(*) FROM erp.payment",
        "customers": "SELECT count(*) FROM erp.customer",
        "addresses": "SELECT count(*) FROM erp.address",
        "ledger": "SELECT count(*) FROM passerelle.order_ledger",
        "files": "SELECT count(*) FROM passerelle.inbound_file",
        "quarantine": "SELECT count(*) FROM passerelle.quarantine",
    }
    out = {k: conn.execute(v).fetchone()[0] for k, v in q.items()}
    conn.commit()
    return out


def test_sample_files_give_exactly_the_expected_orders_lines_payments_and_customers(erp):
    before = _counts(erp)
    r1 = integrate_file(erp, "orders_20261120_0900.csv", ORDERS_0900)
    r2 = integrate_file(erp, "orders_20261120_1000.csv", ORDERS_1000)
    r3 = integrate_file(erp, "customers_20261120.csv", CUSTOMERS)
    assert (r1.status, r2.status, r3.status) == ("integrated",) * 3
    after = _counts(erp)

    known = known_skus(erp)
    p1 = reject_unknown_skus(read_inbound("a", ORDERS_0900), known)
    p2 = reject_unknown_skus(read_inbound("b", ORDERS_1000), known)
    # The 10:00 file holds an order with a SKU the back office does not know: quarantined whole.
    quarantined = {r[0] for r in erp.execute("SELECT DISTINCT shop_order_id FROM passerelle.quarantine")}
    assert quarantined == set(p2.rejects["shop_order_id"]) == {"WEB-100237"}
    statuses = dict(zip(p1.orders["shop_order_id"], p1.orders["status"]))
    kept1 = [k for k, s in statuses.items() if s in ("paid", "validated", "quote")]
    orders = erp.execute(
        "SELECT shop_order_id, kind, status FROM erp.sales_order WHERE origin = 'web' ORDER BY shop_order_id"
    ).fetchall()
    expected = sorted([*kept1, *p2.orders["shop_order_id"]])
    assert [o[0] for o in orders] == expected
    kinds = {o[0]: o[1] for o in orders}
    assert {k for k, v in kinds.items() if v == "quote"} == {k for k, s in statuses.items() if s == "quote"}
    n_lines = int(p1.lines["shop_order_id"].isin(kept1).sum()) + len(p2.lines)
    assert after["lines"] - before["lines"] == n_lines
    assert after["ledger"] == len(expected)
    # Line discounts, prices and taxes as in the file (WEB-100231 line 2: 32.19 less 3.22).
    line = erp.execute(
        "SELECT l.unit_price_excl_vat, l.discount_excl_vat, l.vat_rate, l.variant_id IS NOT NULL "
        "FROM erp.sales_order_line l JOIN erp.sales_order o ON o.id = l.order_id "
        "WHERE o.shop_order_id = 'WEB-100231' AND l.line_number = 2"
    ).fetchone()
    assert [float(line[0]), float(line[1]), float(line[2]), line[3]] == [32.19, 3.22, 20.0, True]
    total = erp.execute(
        "SELECT total_incl_vat, shipping_excl_vat, total_vat FROM erp.sales_order WHERE shop_order_id = 'WEB-100231'"
    ).fetchone()
    o = p1.orders.set_index("shop_order_id").loc["WEB-100231"]
    assert [float(x) for x in total] == pytest.approx([o.total_incl_vat, o.shipping_excl_vat, o.taxes_total])
    pay = erp.execute(
        "SELECT p.method, p.amount, p.paid FROM erp.payment p JOIN erp.sales_order o "
        "ON o.id = p.order_id WHERE o.shop_order_id = 'WEB-100231'"
    ).fetchall()
    assert [(m, float(a), paid) for m, a, paid in pay] == [("Carte bancaire", 58.76, True)]
    # Customers: found by shop id (link), the customers file updated them and added addresses.
    cust = erp.execute(
        "SELECT c.email, c.first_name, c.customer_family FROM passerelle.customer_link l "
        "JOIN erp.customer c ON c.id = l.customer_id WHERE l.shop_customer_id = '5013'"
    ).fetchone()
    assert cust == ("ines.garcia@exemple.org", "Inès", "PART")
    addr = erp.execute(
        "SELECT a.kind, a.city FROM erp.address a JOIN passerelle.customer_link l "
        "ON l.customer_id = a.customer_id WHERE l.shop_customer_id = '5013' ORDER BY kind"
    ).fetchall()
    assert addr == [("billing", "Bordeaux"), ("delivery", "Bordeaux")]
    # Every order has a customer with the file's e-mail.
    wrong = erp.execute(
        "SELECT count(*) FROM erp.sales_order o JOIN erp.customer c ON c.id = o.customer_id "
        "WHERE o.origin = 'web' AND c.email IS NULL"
    ).fetchone()[0]
    assert wrong == 0


def test_rerun_and_same_file_under_another_name_integrate_nothing_twice(erp):
    integrate_file(erp, "orders_20261120_0900.csv", ORDERS_0900)
    integrate_file(erp, "customers_20261120.csv", CUSTOMERS)
    first = _counts(erp)
    again = integrate_file(erp, "orders_20261120_0900.csv", ORDERS_0900)
    renamed = integrate_file(erp, "orders_copy.csv", ORDERS_0900)
    assert again.status == renamed.status == "duplicate"
    assert renamed.duplicate_of == "orders_20261120_0900.csv"
    # Same orders in a different file (other bytes): the order ledger stops them.
    other = ORDERS_0900.replace(b"\n", b"\r\n")
    r = integrate_file(erp, "orders_crlf.csv", other)
    assert r.status == "integrated" and r.counts["orders_created"] == 0
    assert r.counts["orders_already_integrated"] > 0
    assert {k: v for k, v in _counts(erp).items() if k != "files"} == {k: v for k, v in first.items() if k != "files"}


def test_cancellation_cancels_an_integrated_order(erp):
    integrate_file(erp, "day1.csv", _orders_file(3))
    cancel = (
        _orders_file(3)
        .decode()
        .replace("T00001,2026-11-20T08:00:00+01:00,paid", "T00001,2026-11-20T08:00:00+01:00,cancelled")
    )
    r = integrate_file(erp, "day2.csv", cancel.encode())
    assert r.counts["orders_cancelled"] == 1
    status = dict(erp.execute("SELECT shop_order_id, status FROM erp.sales_order WHERE shop_order_id LIKE 'T%'"))
    assert status == {"T00000": "confirmed", "T00001": "cancelled", "T00002": "confirmed"}

    # Already shipped: left alone, the cancellation is quarantined for the staff, never replayed.
    erp.execute("UPDATE erp.sales_order SET status = 'shipped' WHERE shop_order_id = 'T00002'")
    erp.commit()
    late = cancel.replace("T00002,2026-11-20T08:00:00+01:00,paid", "T00002,2026-11-20T08:00:00+01:00,cancelled")
    r = integrate_file(erp, "day3.csv", late.encode())
    assert r.counts["cancels_too_late"] == 1 and r.counts["orders_cancelled"] == 0
    row = erp.execute("SELECT line, shop_order_id, reason, status FROM passerelle.quarantine").fetchone()
    assert row == (4, "T00002", "order T00002 is already shipped: cancel it by hand", "open")
    erp.commit()
    assert replay_quarantine(erp) == []
    assert erp.execute("SELECT status FROM erp.sales_order WHERE shop_order_id = 'T00002'").fetchone() == ("shipped",)


def test_three_bad_rows_among_100_are_quarantined_and_the_rest_integrated(erp):
    good = _orders_file(100).decode().splitlines()
    bad = {
        10: good[11].replace(",2,10.00,", ",deux,10.00,"),  # quantity not a number
        40: good[41].replace("2026-11-20T08:00:00+01:00", "hier"),  # bad date
        70: good[71].replace("ART-000021", "NO-SUCH-SKU"),  # unknown SKU
    }
    r = integrate_file(erp, "orders_bad.csv", _orders_file(100, bad=bad))
    assert r.counts["orders_created"] == 97
    rows = erp.execute("SELECT line, field, reason, status, raw FROM passerelle.quarantine ORDER BY line").fetchall()
    assert [(x[0], x[1]) for x in rows] == [(12, "quantity"), (42, "order_date"), (72, "sku")]
    assert all(x[3] == "open" and x[2] for x in rows)
    assert "NO-SUCH-SKU" in rows[2][4]
    assert "unknown SKU" in rows[2][2]

    # Fix: the article now exists; replay integrates that order and only that one.
    erp.execute(
        "INSERT INTO erp.article (reference, name, vat_rate, price_excl_vat) "
        "VALUES ('NO-SUCH-SKU', 'Nouvel article', 20, 10)"
    )
    erp.commit()
    out = replay_quarantine(erp)
    assert out[0]["rows_replayed"] == 1 and out[0]["rows_still_open"] == 2
    assert out[0]["orders_created"] == 1
    left = erp.execute("SELECT line, status FROM passerelle.quarantine ORDER BY line").fetchall()
    assert left == [(12, "open"), (42, "open"), (72, "replayed")]
    assert erp.execute("SELECT count(*) FROM erp.sales_order WHERE shop_order_id LIKE 'T%'").fetchone()[0] == 98
    assert replay_quarantine(erp)[0]["orders_created"] == 0  # again: nothing twice


def test_finish_file_uploads_rejects_and_archives_and_is_safe_to_repeat(erp):
    bad = _orders_file(5).decode().replace("ART-000003", "NOPE").encode()
    r = integrate_file(erp, "o.csv", bad)
    put, moved = {}, []
    out = finish_file(erp, r, put=lambda n, b: put.__setitem__(n, b), move=lambda n: moved.append(n) or f"/a/{n}")
    assert list(put) == [out["rejects_file"]] and b"unknown SKU" in put[out["rejects_file"]]
    assert moved == [archive_name("o.csv", r.sha256)]
    assert erp.execute("SELECT status, archived_as FROM passerelle.inbound_file").fetchone() == (
        "archived",
        f"/a/{moved[0]}",
    )


def test_crash_after_commit_before_archive_is_finished_by_the_next_run(erp):
    bad = _orders_file(4).decode().replace("ART-000002", "NOPE").encode()
    integrate_file(erp, "o.csv", bad)  # committed; the process dies before the archive
    before = _counts(erp)
    again = integrate_file(erp, "o.csv", bad)
    assert again.status == "duplicate"
    put, moved = {}, []
    out = finish_file(erp, again, put=lambda n, b: put.__setitem__(n, b), move=lambda n: moved.append(n) or n)
    assert b"unknown SKU" in put[out["rejects_file"]] and moved == [archive_name("o.csv", again.sha256)]
    assert erp.execute("SELECT status FROM passerelle.inbound_file").fetchone() == ("archived",)
    erp.commit()
    assert _counts(erp) == before
    # Once archived, a duplicate is only moved away: no second rejects file.
    put.clear()
    finish_file(erp, integrate_file(erp, "o2.csv", bad), put=lambda n, b: put.__setitem__(n, b), move=lambda n: n)
    assert put == {}


def _art_below_minimum(erp, reference: str = "ART-000001") -> int:
    """The id of *reference*, given a minimum (1000) far above its web stock."""
    art = erp.execute(
        "SELECT a.id FROM erp.article a JOIN passerelle_src.stock_level s ON s.article_id = a.id "
        "AND s.variant_id IS NULL WHERE a.reference = %s",
        (reference,),
    ).fetchone()
    assert art, f"seed has stock for {reference}"
    erp.execute("UPDATE erp.article SET min_stock = 1000, reorder_qty = 5 WHERE id = %s", (art[0],))
    erp.commit()
    return art[0]


def _proposals(erp) -> list[tuple]:
    rows = erp.execute(
        "SELECT article_id, variant_id, status, projected_qty, proposed_qty FROM erp.reorder_proposal "
        "ORDER BY article_id, variant_id NULLS FIRST, id"
    ).fetchall()
    erp.commit()
    return rows


def test_reorder_proposals_for_articles_below_minimum(erp):
    art = _art_below_minimum(erp)
    integrate_file(erp, "o.csv", _orders_file(1))
    first = propose_reorders(erp)
    row = erp.execute(
        "SELECT projected_qty, min_stock, proposed_qty, supplier_id IS NOT NULL FROM "
        "erp.reorder_proposal WHERE article_id = %s",
        (art,),
    ).fetchone()
    avail = erp.execute(
        "SELECT available_qty FROM passerelle_src.stock_level WHERE article_id = %s AND variant_id IS NULL", (art,)
    ).fetchone()[0]
    assert first.added >= 1 and first.skipped is None
    assert float(row[0]) == float(avail) - 2 and float(row[1]) == 1000
    assert float(row[2]) == 1000 - float(row[0])
    erp.commit()
    again = propose_reorders(erp)  # nothing changed: not recomputed
    assert (again.added, again.updated) == (0, 0) and "neither the stock nor the open web orders" in again.skipped
    forced = propose_reorders(erp, force=True)  # recomputed: the same proposals, none repeated
    assert (forced.added, forced.updated, forced.skipped) == (0, 0, None)


def test_reorder_proposals_skip_twice_unchanged_then_follow_a_new_order_without_doubling(erp):
    art = _art_below_minimum(erp)
    first = propose_reorders(erp)
    assert first.added >= 1 and first.skipped is None
    before = _proposals(erp)
    assert len({(a, v) for a, v, status, *_ in before if status == "proposed"}) == len(before)

    for _ in range(2):  # two runs with nothing new: nothing written
        nothing = propose_reorders(erp)
        assert nothing.skipped and (nothing.added, nothing.updated) == (0, 0)
        assert _proposals(erp) == before

    # A new web order for the article (2 units): its open proposal follows, no second one.
    integrate_file(erp, "o.csv", _orders_file(1))
    after_order = propose_reorders(erp)
    assert after_order.skipped is None and (after_order.added, after_order.updated) == (0, 1)
    after = _proposals(erp)
    assert len(after) == len(before)
    [(_, _, _, projected_before, proposed_before)] = [r[:5] for r in before if r[0] == art and r[1] is None]
    [(_, _, status, projected, proposed)] = [r[:5] for r in after if r[0] == art and r[1] is None]
    assert status == "proposed" and projected == projected_before - 2 and proposed == proposed_before + 2

    # A stock change alone recomputes too; a proposal the buyer ordered is kept, a new one opened.
    erp.execute("UPDATE erp.reorder_proposal SET status = 'ordered' WHERE article_id = %s", (art,))
    erp.execute("UPDATE erp.stock SET quantity = quantity + 1 WHERE article_id = %s AND variant_id IS NULL", (art,))
    erp.commit()
    stocked = propose_reorders(erp)
    assert stocked.skipped is None and stocked.added == 1
    rows = [r for r in _proposals(erp) if r[0] == art and r[1] is None]
    assert [r[2] for r in rows] == ["ordered", "proposed"] and rows[1][3] == projected + 1


def test_an_open_proposal_is_withdrawn_once_the_stock_is_back_and_an_ordered_one_is_kept(erp):
    # Two articles with their own stock row and no variant (one proposal each).
    first, second = (
        r[0]
        for r in erp.execute(
            "SELECT a.reference FROM erp.article a JOIN passerelle_src.stock_level s ON s.article_id = a.id "
            "AND s.variant_id IS NULL WHERE NOT EXISTS (SELECT 1 FROM erp.variant v WHERE v.article_id = a.id) "
            "ORDER BY a.id LIMIT 2"
        )
    )
    art, other = _art_below_minimum(erp, first), _art_below_minimum(erp, second)
    assert propose_reorders(erp).added >= 2
    erp.execute("UPDATE erp.reorder_proposal SET status = 'ordered' WHERE article_id = %s", (other,))
    others_before = [r for r in _proposals(erp) if r[0] not in (art, other)]

    # Delivered: both articles back above their minimum.
    erp.execute(
        "UPDATE erp.stock SET quantity = quantity + 2000 WHERE article_id = ANY(%s) AND variant_id IS NULL",
        ([art, other],),
    )
    erp.commit()
    back = propose_reorders(erp)
    assert back.skipped is None and (back.added, back.updated, back.withdrawn) == (0, 0, 1)
    assert [r[:3] for r in _proposals(erp) if r[0] in (art, other)] == [(other, None, "ordered")]
    assert [r for r in _proposals(erp) if r[0] not in (art, other)] == others_before  # the rest untouched

    # Sold out again: a new open proposal, the buyer's ordered one still there.
    erp.execute("UPDATE erp.stock SET quantity = quantity - 2000 WHERE article_id = %s AND variant_id IS NULL", (art,))
    erp.commit()
    again = propose_reorders(erp)
    assert (again.added, again.withdrawn) == (1, 0)
    assert [r[2] for r in _proposals(erp) if r[0] == art] == ["proposed"]


def test_reorder_proposals_never_doubled_without_the_unique_index(erp):
    """A back office without the partial unique index reorder_open: still one open proposal each."""
    erp.execute("DROP INDEX erp.reorder_open")
    erp.commit()
    _art_below_minimum(erp)
    first = propose_reorders(erp)
    assert first.added >= 1
    assert propose_reorders(erp, force=True).added == 0
    open_keys = [(a, v) for a, v, status, *_ in _proposals(erp) if status == "proposed"]
    assert len(open_keys) == len(set(open_keys)) == first.added


# The child integrates with a connection that stops, once every row of the file is written
# (the ledger row's counts, the last statement before commit), to write a marker and wait to be
# killed: the same point as a crash inside the transaction. The hook lives here, in the test;
# production code has none.
_CHILD = """
import sys, time, psycopg
from passerelle.core.integrate import integrate_file

class Pausing(psycopg.Connection):
    def execute(self, query, params=None, **kwargs):
        cur = super().execute(query, params, **kwargs)
        if str(query).startswith("UPDATE passerelle.inbound_file SET counts"):
            with open(sys.argv[3], "w") as fh:
                fh.write("inside")
            time.sleep(600)
        return cur

with Pausing.connect(sys.argv[1]) as conn:
    integrate_file(conn, 'big.csv', open(sys.argv[2], 'rb').read())
"""


def test_killed_in_mid_file_then_rerun_integrates_everything_once(erp, erp_dsn, tmp_path):
    data = _orders_file(200)
    path = tmp_path / "big.csv"
    path.write_bytes(data)
    marker = tmp_path / "inside"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "plugins")}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, erp_dsn, str(path), str(marker)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, "integration ended before the pause"
            assert time.monotonic() < deadline, "integration never reached the pause"
            time.sleep(0.05)
        # Inside the transaction: its rows are written but not visible.
        with psycopg.connect(erp_dsn) as other:
            busy = other.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'idle in transaction'"
            ).fetchone()[0]
            assert busy == 1
            assert other.execute("SELECT count(*) FROM passerelle.order_ledger").fetchone()[0] == 0
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    r = integrate_file(erp, "big.csv", data)  # waits for the dead session's lock, if still held
    assert r.status == "integrated" and r.counts["orders_created"] == 200
    c = _counts(erp)
    assert (c["ledger"], c["files"], c["payments"]) == (200, 1, 200)
    dup = erp.execute(
        "SELECT count(*) FROM (SELECT shop_order_id FROM erp.sales_order GROUP BY 1 HAVING count(*) > 1) d"
    ).fetchone()[0]
    assert dup == 0
    erp.commit()
    assert integrate_file(erp, "big.csv", data).status == "duplicate"


# ------------------------------------------------------------------------------------------
# Each file its own unit of failure (issue #12 item 1)
# ------------------------------------------------------------------------------------------

_ROW = (
    "{id},2026-11-20T08:00:00+01:00,paid,9001,c1@exemple.fr,EUR,{ln},ART-000001,Article,{qty},{price},20,0,"
    "card,,1,Ana,Test,1 rue Haute,75001,Paris,FR"
)


def _file(*rows: str, end: str = "\n") -> bytes:
    return end.join([HEADER, *rows, ""]).encode("utf-8")


def _row(oid: str, *, ln: str = "1", qty: str = "1", price: str = "10.00") -> str:
    return _ROW.format(id=oid, ln=ln, qty=qty, price=price)


def _import(conn: psycopg.Connection, name: str, data: bytes) -> str:
    """What the import does with one file: integrate it, or refuse it (quarantine row) and go on."""
    from passerelle.core.inbound import InboundError
    from passerelle.core.integrate import refuse_file

    try:
        return integrate_file(conn, name, data).status
    except InboundError as exc:
        refuse_file(conn, name, exc)
        return "refused"


def test_each_trigger_is_integrated_or_refused_and_the_next_file_goes_through(erp):
    orders = ORDERS_0900.decode("utf-8")
    triggers = {
        "mac.csv": _file(_row("M1"), _row("M2").replace("Article", '"Article\nsur deux lignes"'), end="\r"),
        "nul.csv": _file(_row("N1"), _row("N2").replace("Article", "Art\x00icle")),
        "header.csv": ORDERS_0900.replace(b"sku", b"sk\xff", 1),
        "quote.csv": _file(_row("Q1"), _row("Q2") + ',"never closed'),
        "utf16.csv": orders.replace("WEB-1002", "U-1002").encode("utf-16-le"),
        "big.csv": _file(_row("B1", price="123456789.00"), _row("B2", qty="20000", price="9999.99"), _row("B3")),
        "line.csv": _file(_row("L1", ln="2147483648"), _row("L2")),
        "ids.csv": _file(_row("100231"), _row("WEB-100231"), _row("WEB-100299")),
        "ids_later.csv": _file(_row("WEB-100231", ln="1", qty="3")),
    }
    status = {name: _import(erp, name, data) for name, data in triggers.items()}
    for (counts,) in erp.execute("SELECT counts FROM passerelle.inbound_file").fetchall():
        assert counts["rows_integrated"] + counts["rows_quarantined"] + counts["rows_ignored"] == counts["rows_read"]
    erp.commit()
    assert status == {
        "mac.csv": "integrated",
        "nul.csv": "integrated",
        "header.csv": "refused",
        "quote.csv": "integrated",
        "utf16.csv": "integrated",
        "big.csv": "integrated",
        "line.csv": "integrated",
        "ids.csv": "integrated",
        "ids_later.csv": "integrated",
    }
    assert erp.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    q: dict[tuple[str, int], set] = {}
    for f, line, field, reason in erp.execute("SELECT file, line, field, reason FROM passerelle.quarantine"):
        q.setdefault((f, line), set()).add((field, reason))
    erp.commit()
    assert {f for f, _ in q} == {
        "header.csv",
        "nul.csv",
        "quote.csv",
        "big.csv",
        "line.csv",
        "ids.csv",
        "ids_later.csv",
    }
    [(_, refused)] = q[("header.csv", 0)]
    assert refused.startswith("header.csv: line 1: the header holds undecodable bytes")
    assert q[("nul.csv", 3)] == {("label", "NUL character: not text (a binary or UTF-16 file?)")}
    assert [r for _, r in q[("quote.csv", 3)]][0].startswith("unbalanced quote")
    assert ("unit_price_excl_vat", "too large: the back office takes numbers below 100,000,000") in q[("big.csv", 2)]
    assert {f for f, _ in q[("big.csv", 3)]} == {"total_excl_vat", "total_incl_vat", "payment_amount"}
    assert q[("line.csv", 2)] == {("line_number", "line_number must be at most 2147483647")}
    assert q[("ids.csv", 3)] == {
        (
            "shop_order_id",
            "order number WEB-100231 is also that of order 100231 (line 2): one shop order per back-office number",
        )
    }
    assert q[("ids_later.csv", 2)] == {
        (
            "shop_order_id",
            "order number WEB-100231 is already order 100231 of the "
            "shop's: rename the order in the shop or its number in the "
            "back office",
        )
    }
    created = {r[0] for r in erp.execute("SELECT shop_order_id FROM erp.sales_order WHERE origin = 'web'")}
    assert {"M1", "M2", "N1", "Q1", "B3", "L2", "100231", "WEB-100299", "U-100231"} <= created
    assert not {"N2", "Q2", "B1", "B2", "L1", "WEB-100231"} & created
    label = erp.execute(
        "SELECT l.label FROM erp.sales_order_line l JOIN erp.sales_order o ON o.id = l.order_id "
        "WHERE o.shop_order_id = 'M2'"
    ).fetchone()
    assert label == ("Article\nsur deux lignes",)
    erp.commit()
    # The next file goes through as if nothing had happened.
    assert _import(erp, "next.csv", _orders_file(3)) == "integrated"


@pytest.mark.parametrize(
    ("field", "long_row"),
    [
        ("shop_order_id", lambda long: _row(long)),
        ("shop_customer_id", lambda long: _row("LONG-1").replace(",9001,", f",{long},")),
        ("email", lambda long: _row("LONG-1").replace(",c1@exemple.fr,", f",{long[:2989]}@exemple.fr,")),
        ("payment_method", lambda long: _row("LONG-1").replace(",card,", f",{long},")),
    ],
)
def test_an_identifier_too_long_to_index_is_its_rows_error_not_the_files(erp, field, long_row):
    """An identifier of 3,000 random characters passes the reader (rows up to 100,000 characters)
    but no btree index takes it (an entry is at most about 2,700 bytes): written, PostgreSQL would
    refuse the whole file (ProgramLimitExceeded). It is its row's error instead, naming the row and
    the field; the file's other orders are integrated."""
    import random
    import string

    rng = random.Random(15)
    long = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(3000))
    before = _counts(erp)
    assert _import(erp, "long.csv", _file(long_row(long), _row("LONG-2"))) == "integrated"
    rows = erp.execute(
        "SELECT line, field, value, reason FROM passerelle.quarantine WHERE file = 'long.csv'"
    ).fetchall()
    created = {r[0] for r in erp.execute("SELECT shop_order_id FROM erp.sales_order WHERE origin = 'web'")}
    erp.commit()
    [(line, got_field, value, reason)] = rows
    assert (line, got_field) == (2, field)
    assert value.startswith(long[:2989])
    assert reason == f"too long: {len(value):,} characters, an identifier has at most 255 (the back office indexes it)"
    after = _counts(erp)
    assert after["orders"] == before["orders"] + 1 and "LONG-2" in created
    assert not any(len(k) > 255 for k in created)


def test_a_value_beyond_the_servers_limits_is_the_files_fault_not_an_outage(erp):
    """Should a value beyond PostgreSQL's limits still reach it (ProgramLimitExceeded, an
    OperationalError like a lost connection), it counts as the file's content: the file is refused
    and the run goes on, rather than stopping on it, and on it again at every later run."""
    import random
    import string

    from passerelle.core.integrate import _content_error

    rng = random.Random(15)
    long = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(3000))
    erp.execute("CREATE TEMP TABLE too_long (k text UNIQUE)")
    with pytest.raises(psycopg.errors.ProgramLimitExceeded) as caught:
        erp.execute("INSERT INTO too_long VALUES (%s)", (long,))
    erp.rollback()
    assert _content_error(erp, caught.value)
    assert not _content_error(erp, psycopg.errors.AdminShutdown("terminating connection"))


def test_an_error_of_the_files_content_refuses_it_whole_and_a_database_failure_still_raises(erp, monkeypatch):
    """The core guarantee: whatever fails on a file's content rolls its transaction back and
    becomes an InboundError naming the file; the server's own failures are not the file's."""
    import passerelle.core.integrate as integrate
    from passerelle.core.inbound import InboundError

    real_stage = integrate.stage
    failure: list = []

    def stage(conn, *args):
        real_stage(conn, *args)
        failure[0](conn)

    monkeypatch.setattr(integrate, "stage", stage)
    before = _counts(erp)
    failure[:] = [lambda conn: conn.execute("INSERT INTO s_line (line, quantity) VALUES (1, 1e20::numeric(12,3))")]
    with pytest.raises(InboundError, match=r"^o\.csv: cannot be integrated: NumericValueOutOfRange: .*nothing of it"):
        integrate_file(erp, "o.csv", _orders_file(3))
    assert erp.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert _counts(erp) == before  # rolled back: not even the file's ledger row

    failure[:] = [lambda conn: (_ for _ in ()).throw(UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates"))]
    with pytest.raises(InboundError, match=r"^o\.csv: cannot be integrated: UnicodeEncodeError"):
        integrate_file(erp, "o.csv", _orders_file(3))
    assert _counts(erp) == before

    failure[:] = [lambda conn: (_ for _ in ()).throw(psycopg.OperationalError("server closed the connection"))]
    with pytest.raises(psycopg.OperationalError):
        integrate_file(erp, "o.csv", _orders_file(3))
    failure[:] = [lambda conn: conn.execute("SELECT * FROM erp.no_such_table")]
    with pytest.raises(psycopg.errors.UndefinedTable):  # a broken installation stops the run
        integrate_file(erp, "o.csv", _orders_file(3))
    assert _counts(erp) == before

    monkeypatch.setattr(integrate, "stage", real_stage)
    assert integrate_file(erp, "o.csv", _orders_file(3)).status == "integrated"


def test_fuzzed_files_are_integrated_or_refused_never_crash_the_import(erp):
    """Mutated samples through the whole integration (a few: the parser's own fuzz runs many):
    only InboundError escapes; an integrated file's rejects are all in the quarantine, each
    with a reason; the connection stays usable for the next file."""
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings
    from tests.core.test_inbound_faults import mutated

    seen: list[str] = []

    @settings(
        max_examples=20,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(mutated())
    def run(case):
        name, data = case
        status = _import(erp, name, data)
        seen.append(status)
        assert erp.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        if status == "integrated":
            file_id, rejected, reasonless = erp.execute(
                "SELECT f.id, (f.counts->>'rejected_rows')::int, (SELECT count(*) FROM passerelle.quarantine q "
                "WHERE q.file_id = f.id AND coalesce(q.reason, '') = '') FROM passerelle.inbound_file f "
                "WHERE f.sha256 = %s",
                (sha256(data),),
            ).fetchone()
            lines = erp.execute(
                "SELECT count(DISTINCT line) FROM passerelle.quarantine WHERE file_id = %s "
                "AND reason NOT LIKE '%%: cancel it by hand'",
                (file_id,),
            ).fetchone()[0]
            counts = erp.execute("SELECT counts FROM passerelle.inbound_file WHERE id = %s", (file_id,)).fetchone()[0]
            erp.commit()
            assert (lines, reasonless) == (rejected, 0)
            # Per file, always: rows read = integrated + quarantined + ignored.
            assert (
                counts["rows_integrated"] + counts["rows_quarantined"] + counts["rows_ignored"] == counts["rows_read"]
            )

    run()
    assert hypothesis and "integrated" in seen
    assert _import(erp, "after.csv", _orders_file(2)) == "integrated"


def test_a_replay_failing_on_one_files_rows_goes_on_with_the_next_file(erp, monkeypatch):
    import passerelle.core.integrate as integrate

    for name in ("a.csv", "b.csv"):
        bad = _orders_file(2, prefix=name[0].upper()).decode().replace("ART-000002", "NEW-SKU").encode()
        integrate_file(erp, name, bad)
    erp.execute("INSERT INTO erp.article (reference, name, vat_rate, price_excl_vat) VALUES ('NEW-SKU', 'N', 20, 1)")
    erp.commit()
    real_stage = integrate.stage

    def stage(conn, parsed, *args):
        if parsed.name == "a.csv":
            conn.execute("SELECT 1/0")  # DivisionByZero: a DataError, as a value of the file would cause
        real_stage(conn, parsed, *args)

    monkeypatch.setattr(integrate, "stage", stage)
    out = replay_quarantine(erp)
    assert [(r["file"], r["rows_replayed"], r["rows_still_open"]) for r in out] == [("a.csv", 0, 1), ("b.csv", 1, 0)]
    assert out[0]["error"].startswith("DivisionByZero: division by zero")
    assert {
        r[0] for r in erp.execute("SELECT shop_order_id FROM erp.sales_order WHERE shop_order_id LIKE '_0000_'")
    } == {"A00000", "B00000", "B00001"}
