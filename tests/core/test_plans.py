"""Statements that run on every inbound file or every stock send find what they need in the back
office through indexes, never by reading a whole table that grows with the years: customers by
shop id and by e-mail, orders by shop order id, the open web orders by their partial index; so a
file or a send costs the same in a back office of ten years of orders as in a new one. And the
customer each order and address goes to is the one the matching chose (staged once, not looked up
again)."""

from __future__ import annotations

import re

import psycopg

from passerelle.core.integrate import integrate_file

HEADER = (
    "shop_order_id,order_date,status,shop_customer_id,email,currency,line_number,sku,label,quantity,"
    "unit_price_excl_vat,vat_rate,line_discount_excl_vat,payment_method,payment_amount,payment_paid,"
    "billing_first_name,billing_last_name,billing_address1,billing_postcode,billing_city,billing_country"
)

#: Tables of the back office and of passerelle that grow with the years: never read whole per file.
GROWING = ("customer", "customer_link", "sales_order", "sales_order_line", "payment", "address", "order_ledger")


def _row(order: str, status: str, shop_customer: str, email: str, sku: str, city: str) -> str:
    return (
        f"{order},2026-11-20T08:00:00+01:00,{status},{shop_customer},{email},EUR,1,{sku},Article,1,10.00,20,0,"
        f"card,12.00,1,Ana,Test,1 rue Haute,75001,{city},FR"
    )


def _file(*rows: str) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def _plans(conn: psycopg.Connection, name: str, data: bytes) -> list[str]:
    """Integrate ``data`` with sequential scans made as dear as the planner allows, and return the
    plan of every statement it ran (auto_explain, sent to this client)."""
    conn.execute("LOAD 'auto_explain'")
    for setting in (
        "auto_explain.log_min_duration = 0",
        "auto_explain.log_analyze = on",
        "auto_explain.log_nested_statements = on",
        "client_min_messages = log",
        "enable_seqscan = off",
    ):
        conn.execute(f"SET {setting}")
    conn.commit()
    plans: list[str] = []
    conn.add_notice_handler(lambda d: plans.append(d.message_primary or ""))
    result = integrate_file(conn, name, data)
    assert result.status == "integrated", result
    return [p for p in plans if "plan:" in p]


def _rows_read(plan: str, tables: tuple[str, ...]) -> list[int]:
    """Rows each scan of ``tables`` in an analysed plan read: returned, times its loops, plus those
    its filter removed."""
    out, lines = [], plan.splitlines()
    for i, line in enumerate(lines):
        m = re.search(r"Scan(?: using \w+)? on (\w+) .*actual time=\S+ rows=(\d+) loops=(\d+)", line)
        if m and m.group(1) in tables:
            removed = re.match(r"\s*Rows Removed by Filter: (\d+)", lines[i + 2] if i + 2 < len(lines) else "")
            removed = removed or re.match(
                r"\s*Rows Removed by Filter: (\d+)", lines[i + 1] if i + 1 < len(lines) else ""
            )
            out.append(int(m.group(2)) * int(m.group(3)) + (int(removed.group(1)) if removed else 0))
    return out


def test_a_file_reads_no_growing_table_whole_and_each_order_goes_to_the_matched_customer(erp):
    sku = erp.execute("SELECT reference FROM erp.variant ORDER BY id LIMIT 1").fetchone()[0]
    # The back office already knows: a store customer (matched by e-mail, written otherwise in the
    # shop), a shop customer linked earlier, and an order to cancel.
    # ...among 2,000 other web customers, each with an order: a whole-table read shows in its row count.
    erp.execute(
        "INSERT INTO erp.customer (code, email) SELECT 'OLD-' || n, 'old' || n || '@exemple.fr' "
        "FROM generate_series(1, 2000) n"
    )
    erp.execute(
        "INSERT INTO passerelle.customer_link (shop_customer_id, customer_id) "
        "SELECT 'old-' || substr(code, 5), id FROM erp.customer WHERE code LIKE 'OLD-%'"
    )
    erp.execute(
        "INSERT INTO erp.sales_order (number, kind, origin, shop_order_id, customer_id, order_date, status) "
        "SELECT 'OLD-' || id, 'order', 'web', 'old-' || id, id, now(), "
        "(ARRAY['confirmed', 'shipped', 'invoiced', 'awaiting_payment'])[1 + id % 4] "
        "FROM erp.customer WHERE code LIKE 'OLD-%'"
    )
    erp.execute("ANALYZE")
    store = erp.execute(
        "INSERT INTO erp.customer (code, email, web) VALUES ('STORE-1', 'Marie.Dupont@Exemple.fr', false) RETURNING id"
    ).fetchone()[0]
    erp.commit()
    first = integrate_file(erp, "first.csv", _file(_row("P-1", "paid", "501", "linked@exemple.fr", sku, "Lyon")))
    assert first.status == "integrated"
    linked = erp.execute("SELECT customer_id FROM passerelle.customer_link WHERE shop_customer_id = '501'").fetchone()[
        0
    ]
    erp.commit()

    plans = _plans(
        erp,
        "second.csv",
        _file(
            _row("P-2", "paid", "501", "linked@exemple.fr", sku, "Lyon"),  # linked customer
            _row("P-3", "paid", "", "  marie.dupont@exemple.fr ", sku, "Nantes"),  # a guest, known by e-mail
            _row("P-4", "paid", "502", "new@exemple.fr", sku, "Lille"),  # a new shop customer...
            _row("P-5", "paid", "502", "new.address@exemple.fr", sku, "Lille"),  # ...given with two e-mails
            _row("P-1", "cancelled", "501", "linked@exemple.fr", sku, "Lyon"),
        ),
    )
    assert len(plans) > 10
    scans = sorted({m for p in plans for m in re.findall(r"Seq Scan on (\w+)", p) if m in GROWING})
    assert scans == [], "\n\n".join(p for p in plans if any(f"Seq Scan on {t} " in p for t in scans))
    # Nor through an index read from end to end: no node on those tables reads more rows than the file has.
    wide = [p for p in plans for rows in _rows_read(p, GROWING) if rows > 50]
    assert wide == [], "\n\n".join(wide)

    erp.execute("RESET ALL")
    owner = dict(
        erp.execute("SELECT shop_order_id, customer_id FROM erp.sales_order WHERE shop_order_id LIKE 'P-%'").fetchall()
    )
    new = erp.execute("SELECT customer_id FROM passerelle.customer_link WHERE shop_customer_id = '502'").fetchone()[0]
    assert owner == {"P-1": linked, "P-2": linked, "P-3": store, "P-4": new, "P-5": new}
    assert erp.execute("SELECT status FROM erp.sales_order WHERE shop_order_id = 'P-1'").fetchone()[0] == "cancelled"
    # Each customer got the billing address of its own orders.
    cities = dict(
        erp.execute(
            "SELECT customer_id, city FROM erp.address WHERE kind = 'billing' AND customer_id = ANY(%s)",
            ([linked, store, new],),
        ).fetchall()
    )
    assert cities == {linked: "Lyon", store: "Nantes", new: "Lille"}
    same = "SELECT count(*) FROM erp.customer WHERE lower(btrim(email)) = 'marie.dupont@exemple.fr'"
    assert erp.execute(same).fetchone()[0] == 1  # the guest was not created again


def test_a_new_shop_customer_given_with_two_known_emails_has_all_its_orders_under_its_link(erp):
    """A shop customer id the back office does not know yet, whose orders give two e-mails of two
    back-office customers: its link goes to the customer of its latest order, and so do all its
    orders (not each to the customer of its own e-mail)."""
    sku = erp.execute("SELECT reference FROM erp.variant ORDER BY id LIMIT 1").fetchone()[0]
    x, y = (
        erp.execute("INSERT INTO erp.customer (code, email) VALUES (%s, %s) RETURNING id", (code, email)).fetchone()[0]
        for code, email in (("X", "x@exemple.fr"), ("Y", "y@exemple.fr"))
    )
    erp.commit()
    older = _row("Q-1", "paid", "900", "x@exemple.fr", sku, "Lyon").replace("2026-11-20T08", "2026-11-19T08")
    result = integrate_file(erp, "two.csv", _file(older, _row("Q-2", "paid", "900", "y@exemple.fr", sku, "Lille")))
    assert result.counts["orders_created"] == 2
    link = erp.execute("SELECT customer_id FROM passerelle.customer_link WHERE shop_customer_id = '900'").fetchone()
    owners = erp.execute("SELECT DISTINCT customer_id FROM erp.sales_order WHERE shop_order_id LIKE 'Q-%'").fetchall()
    assert (link[0], owners) == (y, [(y,)]) and x != y


def test_the_stock_and_the_reorder_rule_read_the_open_web_orders_only(erp):
    """The stock the shop is told of (``passerelle_src.stock``, every stock send) and the reorder
    rule's inputs count out the web orders not shipped yet (20 here): with 3,000 shipped ones and
    their lines behind them, neither reads those (the partial index ``sales_order_open_web``)."""
    from passerelle.core.integrate import _REORDER_BASIS

    article = erp.execute("SELECT id FROM erp.article ORDER BY id LIMIT 1").fetchone()[0]
    customer = erp.execute("INSERT INTO erp.customer (code) VALUES ('PAST') RETURNING id").fetchone()[0]
    erp.execute(
        "INSERT INTO erp.sales_order (number, kind, origin, shop_order_id, customer_id, order_date, status) "
        "SELECT 'PAST-' || n, 'order', 'web', 'past-' || n, %s, now() - n * interval '1 hour', "
        "CASE WHEN n <= 20 THEN 'confirmed' WHEN n %% 2 = 0 THEN 'shipped' ELSE 'invoiced' END "
        "FROM generate_series(1, 3020) n",
        (customer,),
    )
    erp.execute(
        "INSERT INTO erp.sales_order_line (order_id, line_number, article_id, label, quantity, unit_price_excl_vat, "
        "vat_rate, shipped_qty) SELECT o.id, k, %s, 'past', 1, 10, 20, 1 FROM erp.sales_order o "
        "CROSS JOIN generate_series(1, 2) k WHERE o.number LIKE 'PAST-%%'",
        (article,),
    )
    erp.execute("ANALYZE")
    open_orders, open_lines = erp.execute(
        "SELECT count(DISTINCT o.id), count(*) FROM erp.sales_order o JOIN erp.sales_order_line l ON l.order_id = o.id "
        "WHERE o.origin = 'web' AND o.kind = 'order' AND o.status IN ('awaiting_payment', 'confirmed', 'prepared')"
    ).fetchone()
    assert 20 <= open_orders < 100 and open_lines < 200  # 20 open here, and the demo's

    # As for a file: the planner would read so few rows whole here; at ten years' size it must not.
    erp.execute("SET enable_seqscan = off")
    for query in ("SELECT * FROM passerelle_src.stock", _REORDER_BASIS):
        plan = "\n".join(r[0] for r in erp.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {query}"))
        assert "Seq Scan on sales_order " not in plan and "Seq Scan on sales_order_line " not in plan, plan
        assert max(_rows_read(plan, ("sales_order", "sales_order_line"))) <= max(open_orders, open_lines), plan
    erp.rollback()
