"""Benchmark of the inbound orders integration against the back office's own inserts (its floor)
and a one-order-per-transaction connector (issues 3 and 15).

    .venv/bin/python bench/orders.py                      # 10,000 orders, 50,000 lines (default)
    .venv/bin/python bench/orders.py --orders 1000        # a quick one

What it does, in its own database on the local PostgreSQL (``passerelle_bench_orders``, replaced
if present, dropped at the end unless ``--keep``):

1. seeds the demo back office (1,000 articles, photos off) and writes ``--files`` generic order
   files holding ``--orders`` paid orders of ``--lines-per-order`` lines each (SKUs of the
   back office, one customer per 3 orders, billing address, card payment, the payment amount
   the order adds up to);
   With ``--history N``, the back office first receives N older web orders (their customers,
   links and addresses), integrated the same way, then ``VACUUM ANALYZE``: a back office with a
   past, where a statement that reads a whole table shows (the floor copies only the timed orders);
2. *integration* (``seconds``): :func:`passerelle.core.integrate.integrate_file` on each file's
   bytes: parse, check, customers and addresses upserted, orders, lines, payments, ledgers, one
   transaction per file;
3. *rerun* (``rerun_seconds``): the same files again; the ledger finds every one, nothing is
   integrated;
4. *parse* (``parse_seconds``): :func:`read_inbound` alone over the files (part of ``seconds``);
   *COPY only* (``copy_seconds``): the parsed rows COPYed into TEMP tables of text columns, no
   constraint, rolled back;
   *server parse* (``raw_copy_seconds``, ``typing_seconds``): the files' bytes as they are
   COPYed into a TEMP table of text columns (the server parses the CSV), then one pass of casts
   typing every value the back office keeps typed, nothing written, rolled back: what a design
   that parses the files on the server, not in Python, pays before it checks anything;
5. *to_sql* (``baseline_seconds``, the reference line of issue 3): ``pd.read_csv`` of each file,
   then ``DataFrame.to_sql(..., if_exists="append", index=False)`` into one plain table; no
   checks, no matching, no ledger, nothing split into orders and lines;
6. *floor* (``floor_seconds``): what the back office itself costs, whoever writes into it: the
   same orders, lines and payments, ids already known, inserted again with one
   ``INSERT ... SELECT`` per table (its foreign keys, unique indexes and status trigger at work),
   then rolled back;
7. *connector* (``connector_seconds``): what a user would otherwise run, a shop connector as
   Odoo's and ERPNext's work minus their ORM (:func:`connector`): one transaction per order,
   lookups and row inserts through the same constraints, on the same orders under other ids.
   It runs ``--connector-orders`` orders (whole files; default 1,000) and its time per order,
   flat, is scaled to the integration's orders (``connector_measured_seconds`` is what ran).

The last line of output is one JSON object: ``orders``, ``history_orders``, ``lines``, ``files``, ``seconds``,
``floor_seconds``, ``floor_orders`` (the orders it wrote), ``floor_ratio`` (seconds / floor_seconds),
``connector_seconds``,
``connector_speedup`` (connector_seconds / seconds), ``rerun_seconds``, ``rerun_ratio``
(rerun_seconds / seconds), ``parse_seconds``, ``database_seconds`` (``seconds`` less the
parse), ``copy_seconds``, ``limit_seconds`` (floor + parse + COPY only: what any integration that
reads the files in Python, then COPYs their rows and inserts them set-wise, pays before it checks,
matches or records anything), ``limit_ratio`` (limit_seconds / floor_seconds: the least
``floor_ratio`` such a design can reach here), ``raw_copy_seconds``, ``typing_seconds``,
``server_limit_seconds`` (floor + raw COPY + typing: the same for a design parsing the files on
the server) and ``server_limit_ratio`` (server_limit_seconds / floor_seconds), ``baseline_seconds``, ``speedup``
(baseline_seconds / seconds), ``speedup_ceiling`` (baseline_seconds / floor_seconds),
``inserts_seconds`` (the time spent in :func:`passerelle.core.integrate.writes.insert_orders`
during ``seconds``: each file's orders, lines and payments, the rows the floor writes, file by
file, with the orders' ledger rows, which the floor does not write) and ``inserts_ratio``
(inserts_seconds / floor_seconds), ``cores`` and ``cpu_per_core_ratio`` (the integration's CPU,
Python and server, over the cores, against the floor: the least ``floor_ratio`` any overlap of
the same work reaches, pipelined files or more processes; None without the server's CPU).
Targets (issue 15): floor_ratio <= 1.5, connector_speedup >= 10, rerun_ratio <= 0.05.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import io
import itertools
import json
import os
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

import psycopg

from passerelle_demo.localenv import LOCAL_DSN, create_database, drop_database, local_postgres

DATABASE = "passerelle_bench_orders"
HEADER = (
    "shop_order_id,order_date,status,shop_customer_id,email,currency,line_number,sku,label,quantity,"
    "unit_price_excl_vat,vat_rate,line_discount_excl_vat,shipping_method,shipping_excl_vat,shipping_vat_rate,"
    "payment_method,payment_amount,payment_transaction_id,payment_paid,paid_at,"
    "billing_first_name,billing_last_name,billing_address1,billing_postcode,billing_city,billing_country"
)


def order_files(
    skus: list[str], orders: int, lines_per_order: int, files: int, tag: str = ""
) -> list[tuple[str, bytes]]:
    """``files`` generic order files, ``orders`` in all, deterministic. ``tag`` goes into the
    order ids, customer ids and e-mails: the connector's files are the same orders under other
    ids, so that it creates its own orders and customers."""
    out = []
    per_file = -(-orders // files)
    for f in range(files):
        rows = [HEADER]
        for o in range(f * per_file, min(orders, (f + 1) * per_file)):
            cust = f"{tag}{o // 3}"
            # What the order adds up to incl. VAT (lines less their discount, shipping), as the
            # file must state it: the parser refuses an order whose payment_amount differs.
            paid = round((sum((1 + n % 3) * (10.5 + n) - n % 2 for n in range(1, lines_per_order + 1)) + 4.90) * 1.2, 2)
            for n in range(1, lines_per_order + 1):
                sku = skus[(o * 7 + n * 13) % len(skus)]
                rows.append(
                    f"B{tag}{o:07d},2026-11-20T08:{o % 60:02d}:00+01:00,paid,{cust},client{cust}@exemple.fr,EUR,{n},"
                    f"{sku},Article {sku},{1 + n % 3},{10 + n}.50,20,{n % 2},Colissimo,4.90,20,card,{paid:.2f},"
                    f"pi_{o},1,2026-11-20T08:{o % 60:02d}:30+01:00,Prénom{cust},Nom{cust},{cust} rue Haute,"
                    f"75001,Paris,FR"
                )
        out.append((f"orders_bench{tag}_{f:03d}.csv", ("\n".join(rows) + "\n").encode("utf-8")))
    return out


def copy_only(conn: psycopg.Connection, parsed: list) -> tuple[float, float | None]:
    """Seconds to COPY the files' parsed rows (customers, addresses, orders, lines, payments, as
    :func:`read_inbound` gives them) into TEMP tables of text columns, without any constraint or
    index, one COPY per frame
    and file as the integration stages them, then rolled back: what getting the rows into the
    database costs before any of them is checked, matched or written where it belongs. Returns
    the seconds and the CPU seconds (Python and server; None without the server's)."""
    from passerelle.core import inbound as ib
    from passerelle.db import copy_in

    frames = {
        "c_customer": ("customers", ib.CUSTOMER_COLUMNS),
        "c_address": ("addresses", ib.ADDRESS_COLUMNS),
        "c_order": ("orders", ib.ORDER_COLUMNS),
        "c_line": ("lines", ib.LINE_COLUMNS),
        "c_payment": ("payments", ib.PAYMENT_COLUMNS),
    }
    with conn.transaction(force_rollback=True):
        for table, (_attr, columns) in frames.items():
            ddl = ", ".join(f'"{c}" text' for c in columns)  # text: the least work for the server
            conn.execute(f"CREATE TEMP TABLE {table} ({ddl}) ON COMMIT DROP")
        cpu0, py0, t0 = backend_cpu(conn), time.process_time(), time.perf_counter()
        for p in parsed:
            for table, (attr, columns) in frames.items():
                copy_in(conn, table, getattr(p, attr), columns)
        seconds, cpu1 = time.perf_counter() - t0, backend_cpu(conn)
        return seconds, (time.process_time() - py0 + cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None)


#: The type the back office keeps each column of the bench's files in (the others are text).
_TYPED = {
    "order_date": "timestamptz",
    "line_number": "integer",
    "quantity": "integer",
    "unit_price_excl_vat": "numeric",
    "vat_rate": "numeric",
    "line_discount_excl_vat": "numeric",
    "shipping_excl_vat": "numeric",
    "shipping_vat_rate": "numeric",
    "payment_amount": "numeric",
    "payment_paid": "boolean",
    "paid_at": "timestamptz",
}


def server_parse_only(conn: psycopg.Connection, files: list[tuple[str, bytes]], rows: int) -> tuple[float, float]:
    """Seconds to hand the files' bytes as they are to the server (``COPY ... (FORMAT csv)``, one
    per file, into a TEMP table of text columns) and seconds to type every value the back office
    keeps typed (dates, numbers, flags: one pass of casts over the rows, nothing written), then
    rolled back: what a design that parses the files on the server pays before it checks, matches,
    splits or records anything (its bound is the floor + these). The pass must see every row
    with every value (the bench's files fill every column): ``rows`` says how many."""
    columns = HEADER.split(",")
    with conn.transaction(force_rollback=True):
        ddl = ", ".join(f'"{c}" text' for c in columns)
        conn.execute(f"CREATE TEMP TABLE r_file ({ddl}) ON COMMIT DROP")
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            for _name, data in files:
                with cur.copy("COPY r_file FROM STDIN (FORMAT csv, HEADER true)") as copy:
                    copy.write(data)
        copy_seconds, t0 = time.perf_counter() - t0, time.perf_counter()
        typed = ", ".join(f'"{c}"::{_TYPED[c]}' if c in _TYPED else f'"{c}"' for c in columns)
        seen = conn.execute(f"SELECT count(*) FROM r_file WHERE ({typed}) IS NOT NULL").fetchone()[0]
        typing_seconds = time.perf_counter() - t0
    assert seen == rows, f"the typing pass saw {seen} complete rows of {rows}"
    return copy_seconds, typing_seconds


def connector(conn: psycopg.Connection, files: list[tuple[str, bytes]]) -> int:
    """What a user would otherwise run: a shop connector as Odoo's and ERPNext's work, minus their
    ORM. Each file read with the ``csv`` module, then one transaction per order: is the order
    there already (by shop id), the customer looked up by e-mail or created, its billing address
    upserted, each line's SKU looked up (variant, else article), the order, its lines one by one and
    its payment inserted, commit. Same tables, same constraints and trigger as the integration.
    Returns the orders it created."""
    created = 0
    for _name, data in files:
        rows = csv.DictReader(io.StringIO(data.decode("utf-8")))
        for shop_id, group in itertools.groupby(rows, key=lambda r: r["shop_order_id"]):
            lines = list(group)
            head = lines[0]
            with conn.transaction():
                if conn.execute("SELECT id FROM erp.sales_order WHERE shop_order_id = %s", (shop_id,)).fetchone():
                    continue
                row = conn.execute(
                    "SELECT id FROM erp.customer WHERE lower(email) = lower(%s)", (head["email"],)
                ).fetchone()
                customer_id = (
                    row[0]
                    if row
                    else conn.execute(
                        "INSERT INTO erp.customer (code, email, first_name, last_name, web) "
                        "VALUES (%s, %s, %s, %s, true) RETURNING id",
                        (
                            f"CON-{head['shop_customer_id']}",
                            head["email"],
                            head["billing_first_name"],
                            head["billing_last_name"],
                        ),
                    ).fetchone()[0]
                )
                name = f"{head['billing_first_name']} {head['billing_last_name']}"
                conn.execute(
                    "INSERT INTO erp.address (customer_id, kind, name, line1, postcode, city, country) "
                    "VALUES (%s, 'billing', %s, %s, %s, %s, %s) ON CONFLICT (customer_id, kind) DO UPDATE "
                    "SET name = EXCLUDED.name, line1 = EXCLUDED.line1, postcode = EXCLUDED.postcode, "
                    "city = EXCLUDED.city, country = EXCLUDED.country",
                    (
                        customer_id,
                        name,
                        head["billing_address1"],
                        head["billing_postcode"],
                        head["billing_city"],
                        head["billing_country"],
                    ),
                )
                items = []
                for r in lines:
                    found = (
                        conn.execute(
                            "SELECT v.article_id, v.id FROM erp.variant v WHERE v.reference = %s", (r["sku"],)
                        ).fetchone()
                        or conn.execute(
                            "SELECT a.id, NULL FROM erp.article a WHERE a.reference = %s", (r["sku"],)
                        ).fetchone()
                    )
                    if found is None:
                        raise ValueError(f"unknown SKU {r['sku']!r}")
                    qty, price, disc = (
                        Decimal(r["quantity"]),
                        Decimal(r["unit_price_excl_vat"]),
                        Decimal(r["line_discount_excl_vat"] or 0),
                    )
                    items.append((r, found, qty, price, disc, Decimal(r["vat_rate"])))
                ship = Decimal(head["shipping_excl_vat"])
                excl = sum(q * p - d for _, _, q, p, d, _ in items) + ship
                incl = sum((q * p - d) * (1 + v / 100) for _, _, q, p, d, v in items) + ship * (
                    1 + Decimal(head["shipping_vat_rate"]) / 100
                )
                order_id = conn.execute(
                    "INSERT INTO erp.sales_order (number, kind, origin, shop_order_id, customer_id, order_date, "
                    "status, currency, shipping_excl_vat, shipping_vat_rate, total_excl_vat, total_vat, "
                    "total_incl_vat, billing_name, billing_line1, billing_postcode, billing_city, billing_country, "
                    "carrier) VALUES (%s, 'order', 'web', %s, %s, %s, 'confirmed', %s, %s, %s, %s, %s, %s, %s, %s, "
                    "%s, %s, %s, %s) RETURNING id",
                    (
                        f"CON-{shop_id}",
                        shop_id,
                        customer_id,
                        head["order_date"],
                        head["currency"],
                        ship,
                        Decimal(head["shipping_vat_rate"]),
                        excl,
                        incl - excl,
                        incl,
                        name,
                        head["billing_address1"],
                        head["billing_postcode"],
                        head["billing_city"],
                        head["billing_country"],
                        head["shipping_method"],
                    ),
                ).fetchone()[0]
                for r, (article_id, variant_id), qty, price, disc, vat in items:
                    conn.execute(
                        "INSERT INTO erp.sales_order_line (order_id, line_number, article_id, variant_id, label, "
                        "quantity, unit_price_excl_vat, discount_excl_vat, vat_rate) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (order_id, int(r["line_number"]), article_id, variant_id, r["label"], qty, price, disc, vat),
                    )
                conn.execute(
                    "INSERT INTO erp.payment (order_id, method, amount, transaction_id, paid, paid_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    (
                        order_id,
                        head["payment_method"],
                        Decimal(head["payment_amount"]),
                        head["payment_transaction_id"],
                        head["payment_paid"] == "1",
                        head["paid_at"] or None,
                    ),
                )
                created += 1
    return created


@contextlib.contextmanager
def timed(module: Any, name: str) -> Iterator[list[float]]:
    """``module.name`` (a function) timed while the block runs: yields a one-item list that holds
    the seconds spent in its calls when the block ends; the function is restored then. Its calls
    (one per file) cost nothing measurable next to what they time."""
    spent = [0.0]
    original = getattr(module, name)

    @functools.wraps(original)
    def clocked(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    setattr(module, name, clocked)
    try:
        yield spent
    finally:
        setattr(module, name, original)


def backend_cpu(conn: psycopg.Connection) -> float | None:
    """CPU seconds (user + system) the connection's server process has used so far, read from
    ``/proc`` (the server runs on this machine); None when it cannot be read (a remote ``--dsn``).
    With the Python process's own CPU time, it measures the work done whatever else the shared
    machine runs, which wall-clock times do not."""
    try:
        fields = Path(f"/proc/{conn.info.backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def back_office_floor(conn: psycopg.Connection, after_id: int = 0) -> tuple[float, float | None, int]:
    """Seconds (and the server's CPU seconds) the back office takes to store the integrated web
    orders (those whose id is above ``after_id``: not the ``--history``), lines and payments
    again, everything known beforehand: one ``INSERT ... SELECT`` per table from copies made
    outside the timing, then rolled back. What is timed is the tables' own work (foreign keys,
    unique indexes, the status trigger), which any integration into this back office pays. Also
    returns the orders it wrote."""
    with conn.transaction(force_rollback=True):
        conn.execute(
            "CREATE TEMP TABLE f_order ON COMMIT DROP AS SELECT o.*, "
            "nextval(pg_get_serial_sequence('erp.sales_order', 'id')) AS new_id "
            "FROM erp.sales_order o WHERE o.origin = 'web' AND o.id > %s",
            (after_id,),
        )
        conn.execute(
            "CREATE TEMP TABLE f_line ON COMMIT DROP AS SELECT l.* FROM erp.sales_order_line l "
            "JOIN f_order o ON o.id = l.order_id"
        )
        conn.execute(
            "CREATE TEMP TABLE f_payment ON COMMIT DROP AS SELECT p.* FROM erp.payment p "
            "JOIN f_order o ON o.id = p.order_id"
        )
        conn.execute("ANALYZE f_order; ANALYZE f_line; ANALYZE f_payment")
        cpu0 = backend_cpu(conn)
        t0 = time.perf_counter()
        orders = conn.execute(
            "INSERT INTO erp.sales_order (id, number, kind, origin, shop_order_id, customer_id, order_date, status, "
            "currency, shipping_excl_vat, shipping_vat_rate, total_excl_vat, total_vat, total_incl_vat, billing_name, "
            "billing_line1, billing_line2, billing_postcode, billing_city, billing_country, delivery_name, "
            "delivery_line1, delivery_line2, delivery_postcode, delivery_city, delivery_country, carrier, note) "
            "SELECT new_id, number || '-F', kind, origin, shop_order_id || '-F', customer_id, order_date, status, "
            "currency, shipping_excl_vat, shipping_vat_rate, total_excl_vat, total_vat, total_incl_vat, billing_name, "
            "billing_line1, billing_line2, billing_postcode, billing_city, billing_country, delivery_name, "
            "delivery_line1, delivery_line2, delivery_postcode, delivery_city, delivery_country, carrier, note "
            "FROM f_order"
        ).rowcount
        conn.execute(
            "INSERT INTO erp.sales_order_line (order_id, line_number, article_id, variant_id, label, quantity, "
            "unit_price_excl_vat, discount_excl_vat, vat_rate) SELECT o.new_id, l.line_number, l.article_id, "
            "l.variant_id, l.label, l.quantity, l.unit_price_excl_vat, l.discount_excl_vat, l.vat_rate "
            "FROM f_line l JOIN f_order o ON o.id = l.order_id"
        )
        conn.execute(
            "INSERT INTO erp.payment (order_id, method, amount, transaction_id, paid, paid_at) "
            "SELECT o.new_id, p.method, p.amount, p.transaction_id, p.paid, p.paid_at "
            "FROM f_payment p JOIN f_order o ON o.id = p.order_id"
        )
        seconds, cpu1 = time.perf_counter() - t0, backend_cpu(conn)
        return seconds, (cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None), orders


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=10_000)
    ap.add_argument("--lines-per-order", type=int, default=5)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument(
        "--connector-orders",
        type=int,
        default=1000,
        help="orders the connector integrates (whole files; its per-order time is scaled to --orders)",
    )
    ap.add_argument(
        "--history",
        type=int,
        default=0,
        help="web orders (and their customers) the back office holds before the run, integrated beforehand",
    )
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--dsn", default=None, help="server to create the database on (default 127.0.0.1:5432)")
    ap.add_argument("--database", default=DATABASE, help=f"the database's name (default {DATABASE})")
    args = ap.parse_args()

    import pandas as pd
    import sqlalchemy

    import passerelle.core.integrate as integrate_module
    from passerelle.core.inbound import read_inbound
    from passerelle.core.integrate import integrate_file
    from passerelle_demo.seed import seed_database

    server, stop = (args.dsn, lambda: None) if args.dsn else local_postgres()
    server = server or LOCAL_DSN
    dsn = create_database(server, args.database, replace=True)
    try:
        with psycopg.connect(dsn) as conn:
            print("seeding 1,000 articles...", file=sys.stderr)
            seed_database(conn, articles=1000, seed=42, photos=False)
            skus = [
                r[0]
                for r in conn.execute(
                    "SELECT reference FROM erp.variant UNION ALL SELECT reference "
                    "FROM erp.article a WHERE NOT EXISTS (SELECT 1 FROM erp.variant v "
                    "WHERE v.article_id = a.id) ORDER BY 1"
                )
            ]
            conn.commit()
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE")
            conn.autocommit = False
        after_id = 0
        if args.history:
            print(f"a past of {args.history:,} orders...", file=sys.stderr)
            per_file = -(-args.orders // args.files)
            past = order_files(skus, args.history, args.lines_per_order, -(-args.history // per_file), tag="H")
            with psycopg.connect(dsn) as conn:
                done = [integrate_file(conn, name, data).counts.get("orders_created", 0) for name, data in past]
                assert sum(done) == args.history, f"the past: {sum(done)} orders integrated of {args.history}"
                after_id = conn.execute("SELECT max(id) FROM erp.sales_order").fetchone()[0]
                conn.commit()
                conn.autocommit = True
                conn.execute("VACUUM ANALYZE")
        files = order_files(skus, args.orders, args.lines_per_order, args.files)
        connector_files = order_files(skus, args.orders, args.lines_per_order, args.files, tag="C")
        per_file = -(-args.orders // args.files)
        connector_files = connector_files[: max(1, -(-min(args.connector_orders, args.orders) // per_file))]

        with psycopg.connect(dsn) as conn:
            print("integrating...", file=sys.stderr)
            cpu0, py0 = backend_cpu(conn), time.process_time()
            t0 = time.perf_counter()
            with timed(integrate_module, "insert_orders") as inserts_seconds:
                results = [integrate_file(conn, name, data) for name, data in files]
            seconds = time.perf_counter() - t0
            python_cpu, cpu1 = time.process_time() - py0, backend_cpu(conn)
            server_cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
            created = sum(r.counts.get("orders_created", 0) for r in results)
            lines = sum(r.counts.get("lines_created", 0) for r in results)
            t0 = time.perf_counter()
            again = [integrate_file(conn, name, data) for name, data in files]
            rerun_seconds = time.perf_counter() - t0
            assert all(r.status == "duplicate" for r in again), "rerun integrated something"
            rejected = sum(r.counts.get("rejected_rows", 0) for r in results)

        py0, t0 = time.process_time(), time.perf_counter()
        parsed = [read_inbound(name, data) for name, data in files]
        parse_seconds, parse_cpu = time.perf_counter() - t0, time.process_time() - py0
        print("COPY of the parsed rows alone...", file=sys.stderr)
        with psycopg.connect(dsn) as conn:
            copy_seconds, copy_cpu = copy_only(conn, parsed)
        print("the files COPYed raw and typed on the server...", file=sys.stderr)
        with psycopg.connect(dsn) as conn:
            file_rows = sum(data.count(b"\n") - 1 for _name, data in files)  # the header's not a row
            raw_copy_seconds, typing_seconds = server_parse_only(conn, files, file_rows)

        print("baseline (read_csv + to_sql)...", file=sys.stderr)
        engine = sqlalchemy.create_engine(dsn)
        with engine.begin() as c:
            c.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS bench_baseline")
        t0 = time.perf_counter()
        for _name, data in files:
            pd.read_csv(io.BytesIO(data)).to_sql(
                "order_rows", engine, schema="bench_baseline", if_exists="append", index=False
            )
        baseline_seconds = time.perf_counter() - t0
        with engine.connect() as c:
            base_lines = c.exec_driver_sql("SELECT count(*) FROM bench_baseline.order_rows").scalar()
        engine.dispose()

        print("floor (the back office's own inserts)...", file=sys.stderr)
        with psycopg.connect(dsn) as conn:
            floor_seconds, floor_cpu, floor_orders = back_office_floor(conn, after_id)

        # After the floor, which copies every web order: the connector's would count in it.
        print("connector (one order per transaction)...", file=sys.stderr)
        with psycopg.connect(dsn) as conn:
            t0 = time.perf_counter()
            connector_orders = connector(conn, connector_files)
            connector_measured = time.perf_counter() - t0
            # Its time per order is flat (a transaction and the same statements per order): scaled
            # to the integration's orders rather than spending minutes measuring all of them.
            connector_seconds = connector_measured * created / max(connector_orders, 1)
            connector_lines = conn.execute(
                "SELECT count(*) FROM erp.sales_order_line l JOIN erp.sales_order o ON o.id = l.order_id "
                "WHERE o.number LIKE 'CON-%'"
            ).fetchone()[0]
    finally:
        if not args.keep:
            drop_database(server, args.database)
        stop()

    cores = len(os.sched_getaffinity(0))
    cpu_per_core = None if server_cpu is None else (python_cpu + server_cpu) / cores
    result = {
        "orders": created,
        "history_orders": args.history,
        "lines": lines,
        "files": len(files),
        "rejected_rows": rejected,
        "baseline_lines": int(base_lines),
        "seconds": round(seconds, 3),
        "baseline_seconds": round(baseline_seconds, 3),
        "speedup": round(baseline_seconds / seconds, 2),
        "rerun_seconds": round(rerun_seconds, 3),
        "rerun_ratio": round(rerun_seconds / seconds, 4),
        "parse_seconds": round(parse_seconds, 3),
        "database_seconds": round(seconds - parse_seconds, 3),
        "floor_seconds": round(floor_seconds, 3),
        "floor_orders": floor_orders,
        "floor_ratio": round(seconds / floor_seconds, 2),
        "python_cpu_seconds": round(python_cpu, 3),
        "server_cpu_seconds": None if server_cpu is None else round(server_cpu, 3),
        "floor_cpu_seconds": None if floor_cpu is None else round(floor_cpu, 3),
        "floor_cpu_ratio": None
        if server_cpu is None or not floor_cpu
        else round((python_cpu + server_cpu) / floor_cpu, 2),
        "parse_cpu_seconds": round(parse_cpu, 3),
        "copy_cpu_seconds": None if copy_cpu is None else round(copy_cpu, 3),
        "limit_cpu_ratio": None
        if copy_cpu is None or not floor_cpu
        else round((floor_cpu + parse_cpu + copy_cpu) / floor_cpu, 2),
        "copy_seconds": round(copy_seconds, 3),
        "limit_seconds": round(floor_seconds + parse_seconds + copy_seconds, 3),
        "limit_ratio": round((floor_seconds + parse_seconds + copy_seconds) / floor_seconds, 2),
        "raw_copy_seconds": round(raw_copy_seconds, 3),
        "typing_seconds": round(typing_seconds, 3),
        "server_limit_seconds": round(floor_seconds + raw_copy_seconds + typing_seconds, 3),
        "server_limit_ratio": round((floor_seconds + raw_copy_seconds + typing_seconds) / floor_seconds, 2),
        "speedup_ceiling": round(baseline_seconds / floor_seconds, 2),
        "inserts_seconds": round(inserts_seconds[0], 3),
        "inserts_ratio": round(inserts_seconds[0] / floor_seconds, 2),
        "cores": cores,
        "cpu_per_core_ratio": None if cpu_per_core is None else round(cpu_per_core / floor_seconds, 2),
        "connector_orders": connector_orders,
        "connector_lines": int(connector_lines),
        "connector_measured_seconds": round(connector_measured, 3),
        "connector_seconds": round(connector_seconds, 3),
        "connector_ms_per_order": round(1000 * connector_measured / max(connector_orders, 1), 3),
        "connector_speedup": round(connector_seconds / seconds, 2),
    }
    past = f"; the back office held {args.history:,} orders before" if args.history else ""
    print(f"{'integration':<12} {seconds:8.2f} s  ({created} orders, {lines} lines, {len(files)} files{past})")
    print(f"{'to_sql':<12} {baseline_seconds:8.2f} s  (read_csv + to_sql; speedup {result['speedup']})")
    if server_cpu is not None and floor_cpu:
        print(
            f"{'CPU':<12} {python_cpu + server_cpu:8.2f} s  (Python {python_cpu:.2f} s + server {server_cpu:.2f} s; "
            f"the floor's {floor_cpu:.2f} s: {result['floor_cpu_ratio']}x)"
        )
    if result["limit_cpu_ratio"] is not None:
        print(
            f"{'CPU limit':<12} {floor_cpu + parse_cpu + copy_cpu:8.2f} s  (the floor's + parse + COPY only: "
            f"{result['limit_cpu_ratio']}x the floor's)"
        )
    print(f"{'parse only':<12} {parse_seconds:8.2f} s  (read_inbound, part of the integration)")
    print(f"{'COPY only':<12} {copy_seconds:8.2f} s  (the parsed rows into unconstrained TEMP tables)")
    print(
        f"{'limit':<12} {result['limit_seconds']:8.2f} s  (floor + parse + COPY only: "
        f"{result['limit_ratio']}x the floor)"
    )
    print(
        f"{'server limit':<12} {result['server_limit_seconds']:8.2f} s  (floor + the files COPYed raw "
        f"({raw_copy_seconds:.2f} s) and typed ({typing_seconds:.2f} s) on the server: "
        f"{result['server_limit_ratio']}x the floor)"
    )
    print(f"{'floor':<12} {floor_seconds:8.2f} s  (the back office's own inserts; ours {result['floor_ratio']}x it)")
    print(
        f"{'inserts':<12} {inserts_seconds[0]:8.2f} s  (the integration's own orders, ledger, lines and payments "
        f"inserts, file by file: {result['inserts_ratio']}x the floor)"
    )
    if cpu_per_core is not None:
        print(
            f"{'CPU / cores':<12} {cpu_per_core:8.2f} s  (the integration's CPU spread over "
            f"{cores} cores: {result['cpu_per_core_ratio']}x the floor, the least any overlap of it reaches)"
        )
    print(
        f"{'connector':<12} {connector_seconds:8.2f} s  "
        f"(one order a transaction; ours {result['connector_speedup']}x faster)"
    )
    print(f"{'rerun':<12} {rerun_seconds:8.2f} s  ({result['rerun_ratio']:.1%} of the first run)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
