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
   then rolled back; *customers floor* (``customers_floor_seconds``): the same for the timed
   orders' customers, their addresses and their shop ids' links, which the floor leaves out but
   any integration of these files writes;
7. *connector* (``connector_seconds``): what a user would otherwise run, a shop connector as
   Odoo's and ERPNext's work minus their ORM (:func:`connector`): one transaction per order,
   lookups and row inserts through the same constraints, on the same orders under other ids.
   It runs ``--connector-orders`` orders (whole files; default 1,000) and its time per order,
   flat, is scaled to the integration's orders (``connector_measured_seconds`` is what ran).
8. *a design parsing on the server, prototyped* (``server_design_seconds``, :func:`server_design`):
   the same orders under other ids, each file's bytes COPYed raw, typed, checked and looked up in
   SQL, the product's staging tables filled by SQL, then the product's own writes; run after the
   floors, which would otherwise copy its orders and customers too.

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
the server) and ``server_limit_ratio`` (server_limit_seconds / floor_seconds),
``customers_floor_seconds`` and ``floor_customers`` (the customers floor, step 6),
``server_bound_seconds`` (server limit + customers floor: what such a design pays at the least,
having written the customers the files carry) and ``server_bound_ratio`` (over floor_seconds),
``server_design_orders``, ``server_design_seconds``, ``server_design_ratio`` (over floor_seconds),
``server_design_cpu_seconds``, ``server_design_copy_seconds``, ``server_design_writes_seconds`` and
``server_design_writes_ratio`` (the prototype, step 8: its raw COPYs and the product's writes it
calls, over floor_seconds),
``baseline_seconds``, ``speedup``
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


def customers_floor(conn: psycopg.Connection, after_id: int = 0) -> tuple[float, int]:
    """Seconds the back office takes to store the integrated web customers (those whose id is
    above ``after_id``: not the ``--history``'s), their addresses and their shop ids' links again,
    everything known beforehand: one ``INSERT ... SELECT`` per table from copies made outside the
    timing, then rolled back. The orders' floor leaves these rows out, though any integration of
    these files writes them (an order needs its customer); with the floor and the files' bytes
    typed on the server, it bounds from below every design that does what the integration does.
    Also returns the customers it wrote."""
    with conn.transaction(force_rollback=True):
        conn.execute(
            "CREATE TEMP TABLE f_customer ON COMMIT DROP AS SELECT c.*, "
            "nextval(pg_get_serial_sequence('erp.customer', 'id')) AS new_id "
            "FROM erp.customer c WHERE c.id > %s AND c.web",
            (after_id,),
        )
        conn.execute(
            "CREATE TEMP TABLE f_address ON COMMIT DROP AS SELECT a.* FROM erp.address a "
            "JOIN f_customer c ON c.id = a.customer_id"
        )
        conn.execute(
            "CREATE TEMP TABLE f_link ON COMMIT DROP AS SELECT l.* FROM passerelle.customer_link l "
            "JOIN f_customer c ON c.id = l.customer_id"
        )
        conn.execute("ANALYZE f_customer; ANALYZE f_address; ANALYZE f_link")
        t0 = time.perf_counter()
        customers = conn.execute(
            "INSERT INTO erp.customer (id, code, email, first_name, last_name, company, phone, customer_family, "
            "price_list, vat_territory, vat_number, web) SELECT new_id, code || '-F', 'f.' || email, first_name, "
            "last_name, company, phone, customer_family, price_list, vat_territory, vat_number, web FROM f_customer"
        ).rowcount
        conn.execute(
            "INSERT INTO erp.address (customer_id, kind, name, line1, line2, postcode, city, country, phone) "
            "SELECT c.new_id, a.kind, a.name, a.line1, a.line2, a.postcode, a.city, a.country, a.phone "
            "FROM f_address a JOIN f_customer c ON c.id = a.customer_id"
        )
        conn.execute(
            "INSERT INTO passerelle.customer_link (shop_customer_id, customer_id) "
            "SELECT l.shop_customer_id || '-F', c.new_id FROM f_link l JOIN f_customer c ON c.id = l.customer_id"
        )
        return time.perf_counter() - t0, customers


#: A design parsing on the server, as a prototype over the bench's files (its 27 columns of the
#: generic format): the file's bytes COPYed raw, every value typed behind a guard (a value the
#: guard refuses marks its row, no error), the SKUs looked up, each order's values checked to
#: agree between its lines and its payment against the computed total, the orders with a bad
#: row, an unknown SKU or a disagreement set aside; then the product's own staging tables filled
#: by SQL and its own writes (:func:`~passerelle.core.integrate.writes.upsert_customers`,
#: :func:`~passerelle.core.integrate.writes.insert_orders`). One transaction per file, the file
#: ledger as the integration keeps it.
_NUM = r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)\s*$"
_INT = r"^\s*[-+]?\d{1,9}\s*$"
_TS = (
    r"^\s*\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?\s*$"
)
_BOOL = "('1','0','true','false','yes','no','t','f','y','n','on','off')"


def _guarded(column: str, kind: str) -> tuple[str, str, str]:
    """The typed value of ``column``: behind a guard (NULL when empty or refused), the check that
    flags a refused one, and the plain cast (which fails the statement on a value it refuses)."""
    raw = f"nullif(btrim(r.\"{column}\"), '')"
    if kind == "bool":
        ok = f"lower({raw}) IN {_BOOL}"
        return f"CASE WHEN {ok} THEN {raw}::boolean END", f"({raw} IS NULL OR {ok})", f"{raw}::boolean"
    pattern, cast = {"num": (_NUM, "numeric"), "int": (_INT, "integer"), "ts": (_TS, "timestamptz")}[kind]
    ok = f"{raw} ~ '{pattern}'"
    return f"CASE WHEN {ok} THEN {raw}::{cast} END", f"({raw} IS NULL OR {ok})", f"{raw}::{cast}"


#: The bench's columns and how the prototype types each (the others are text).
_KINDS = {
    "order_date": "ts",
    "line_number": "int",
    "quantity": "num",
    "unit_price_excl_vat": "num",
    "vat_rate": "num",
    "line_discount_excl_vat": "num",
    "shipping_excl_vat": "num",
    "shipping_vat_rate": "num",
    "payment_amount": "num",
    "payment_paid": "bool",
    "paid_at": "ts",
}
#: Values every row needs (generic format).
_REQUIRED = ("shop_order_id", "order_date", "status", "sku", "quantity", "unit_price_excl_vat", "vat_rate")


def _prototype_sql(*, guarded: bool = True) -> dict[str, str]:
    """The prototype's statements (see :func:`server_design`); ``guarded=False``: the values cast
    as they are (a value the cast refuses fails the statement), empty required values flagged."""
    from passerelle.core.emails import email_key_sql

    columns = HEADER.split(",")
    typed, checks = [], []
    for c in columns:
        if c in _KINDS:
            value, ok, plain = _guarded(c, _KINDS[c])
            if guarded:
                checks.append(f"CASE WHEN NOT {ok} THEN '{c}' END")
            else:
                value = plain
        else:
            value = f"nullif(btrim(r.\"{c}\"), '')"
        typed.append(f'{value} AS "{c}"')
    checks += [f"CASE WHEN nullif(btrim(r.\"{c}\"), '') IS NULL THEN '{c} (empty)' END" for c in _REQUIRED]
    ddl = ", ".join(f'"{c}" text' for c in columns)
    types = {"ts": "timestamptz", "int": "integer", "num": "numeric", "bool": "boolean"}
    t_cols = ", ".join(f'"{c}" {types.get(_KINDS.get(c, ""), "text")}' for c in columns)
    quoted = ", ".join(f'"{c}"' for c in columns)
    return {
        "setup": f"""
CREATE TEMP TABLE r_file (n bigint GENERATED ALWAYS AS IDENTITY, {ddl}) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE t_row (line int, {t_cols}, article_id int, variant_id int, article_vat numeric,
    article_name text, bad text) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE t_reject (shop_order_id text, line int, reason text) ON COMMIT DELETE ROWS;
""",
        "copy": f"COPY r_file ({quoted}) FROM STDIN (FORMAT csv, HEADER true)",
        "type": f"""
INSERT INTO t_row
SELECT r.n - (SELECT min(n) FROM r_file) + 2, {", ".join(typed)},
       coalesce(v.article_id, a.id), v.id, coalesce(va.vat_rate, a.vat_rate), coalesce(va.name, a.name),
       concat_ws(', ', {", ".join(checks)})
  FROM r_file r
  LEFT JOIN erp.variant v ON v.reference = btrim(r.sku)
  LEFT JOIN erp.article va ON va.id = v.article_id
  LEFT JOIN erp.article a ON v.id IS NULL AND a.reference = btrim(r.sku)
""",
        # Bad values, unknown SKUs, values of an order that differ between its lines, a payment other
        # than the computed total, a line number twice, a number another order holds.
        "reject": """
INSERT INTO t_reject
SELECT shop_order_id, line, 'bad or missing value: ' || bad FROM t_row WHERE bad <> ''
UNION ALL
SELECT shop_order_id, line, 'unknown SKU ' || sku FROM t_row WHERE article_id IS NULL AND bad = ''
UNION ALL
SELECT shop_order_id, min(line), 'order values differ between its lines, or its payment from its total'
  FROM t_row GROUP BY shop_order_id
HAVING min(order_date) <> max(order_date) OR min(status) <> max(status)
    OR min(shop_customer_id) <> max(shop_customer_id) OR min(email) <> max(email) OR min(currency) <> max(currency)
    OR min(shipping_excl_vat) <> max(shipping_excl_vat) OR min(payment_amount) <> max(payment_amount)
    OR abs(max(payment_amount) - round(sum((quantity * unit_price_excl_vat - coalesce(line_discount_excl_vat, 0))
           * (1 + vat_rate / 100)) + coalesce(max(shipping_excl_vat) * (1 + max(shipping_vat_rate) / 100), 0), 2))
       > 0.015
UNION ALL
SELECT shop_order_id, min(line), 'line ' || line_number || ' twice' FROM t_row
 GROUP BY shop_order_id, line_number HAVING count(*) > 1
UNION ALL
SELECT t.shop_order_id, NULL, 'its number is another order''s'
  FROM (SELECT DISTINCT shop_order_id FROM t_row) t
  JOIN erp.sales_order o ON o.number = 'WEB-' || ltrim(t.shop_order_id, '#')
 WHERE o.shop_order_id IS DISTINCT FROM t.shop_order_id
   AND o.number = ANY (ARRAY(SELECT DISTINCT 'WEB-' || ltrim(shop_order_id, '#') FROM t_row))
""",
        "drop": "DELETE FROM t_row WHERE shop_order_id IN (SELECT shop_order_id FROM t_reject) "
        "OR NOT status = ANY (%(statuses)s)",
        "stage": f"""
INSERT INTO s_customer (line, shop_customer_id, email, first_name, last_name, source)
SELECT DISTINCT ON (shop_customer_id, email) line, shop_customer_id, {email_key_sql("email")}, billing_first_name,
       billing_last_name, 'order'
  FROM t_row ORDER BY shop_customer_id, email, order_date DESC, line DESC;
INSERT INTO s_address (line, shop_order_id, shop_customer_id, email, kind, first_name, last_name, address1,
    postcode, city, country)
SELECT DISTINCT ON (shop_order_id) line, shop_order_id, shop_customer_id, {email_key_sql("email")}, 'billing',
       billing_first_name, billing_last_name, billing_address1, billing_postcode, billing_city, upper(billing_country)
  FROM t_row WHERE billing_address1 IS NOT NULL ORDER BY shop_order_id, line;
INSERT INTO s_order (line, shop_order_id, order_date, status, shop_status, shop_customer_id, email, currency,
    shipping_method, shipping_excl_vat, shipping_vat_rate, total_excl_vat, total_incl_vat, taxes_total, kind,
    number, walk_in, vat_disagreement, awaiting)
SELECT line, shop_order_id, order_date, status, status, shop_customer_id, email, currency, shipping_method,
       shipping_excl_vat, shipping_vat_rate, excl, incl, incl - excl, 'order', 'WEB-' || ltrim(shop_order_id, '#'),
       false, vat_disagreement, awaiting
  FROM (SELECT min(line) AS line, shop_order_id, min(order_date) AS order_date, min(status) AS status,
               min(shop_customer_id) AS shop_customer_id, min({email_key_sql("email")}) AS email,
               min(currency) AS currency, min(shipping_method) AS shipping_method,
               min(shipping_excl_vat) AS shipping_excl_vat, min(shipping_vat_rate) AS shipping_vat_rate,
               sum(quantity * unit_price_excl_vat - coalesce(line_discount_excl_vat, 0))
                   + coalesce(min(shipping_excl_vat), 0) AS excl,
               round(sum((quantity * unit_price_excl_vat - coalesce(line_discount_excl_vat, 0)) * (1 + vat_rate / 100))
                   + coalesce(min(shipping_excl_vat) * (1 + min(shipping_vat_rate) / 100), 0), 2) AS incl,
               CASE WHEN bool_or(vat_rate <> article_vat)
                    THEN 'the shop''s VAT rate differs from the article''s' END AS vat_disagreement,
               NOT coalesce(bool_and(payment_paid), false) AS awaiting
          FROM t_row GROUP BY shop_order_id) o;
INSERT INTO s_line (line, shop_order_id, line_number, sku, article_id, variant_id, label, quantity,
    unit_price_excl_vat, vat_rate, discount_excl_vat, matched_by)
SELECT line, shop_order_id, row_number() OVER (PARTITION BY shop_order_id ORDER BY line_number, line), sku,
       article_id, variant_id, coalesce(label, article_name), quantity, unit_price_excl_vat,
       coalesce(vat_rate, article_vat), line_discount_excl_vat, 'sku'
  FROM t_row;
INSERT INTO s_payment (line, shop_order_id, method, amount, transaction_id, paid, paid_at)
SELECT DISTINCT ON (shop_order_id) line, shop_order_id, payment_method, payment_amount, payment_transaction_id,
       payment_paid, paid_at
  FROM t_row WHERE payment_amount IS NOT NULL ORDER BY shop_order_id, line;
""",
    }


def server_design(conn: psycopg.Connection, files: list[tuple[str, bytes]]) -> dict[str, Any]:
    """Integrate ``files`` with the prototype of a design parsing them on the server (the SQL of
    :func:`_prototype_sql`), one transaction per file as the integration does: the advisory lock,
    the file's sha256 looked up and recorded, the bytes COPYed raw, typed and checked, the
    product's staging tables filled by SQL, then its own customers' and orders' writes, the
    rejects to the quarantine, commit. The values are first cast as they are (no file of the bench
    has a bad one); a file with a value a cast refuses is typed again behind the guards, which
    cost about 4x more. Returns ``orders`` (created), ``rejected`` (rows), ``guarded`` (files
    typed behind the guards), ``copy_seconds`` (the raw COPYs) and ``writes_seconds`` (the
    product's own writes: customers and addresses, orders, their ledger, lines, payments)."""
    from passerelle.core import integrate
    from passerelle.core.integrate import writes

    sql, guarded = _prototype_sql(guarded=False), _prototype_sql()["type"]
    conn.execute(sql["setup"])
    conn.commit()
    out = dict.fromkeys(("orders", "rejected", "guarded", "copy_seconds", "writes_seconds"), 0)
    for name, data in files:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (integrate.LOCK_KEY,))
            digest = integrate.sha256(data)
            if conn.execute("SELECT 1 FROM passerelle.inbound_file WHERE sha256 = %s", (digest,)).fetchone():
                continue
            file_id = conn.execute(
                "INSERT INTO passerelle.inbound_file (name, size, sha256, kind, status, header, delimiter, decimal) "
                "VALUES (%s, %s, %s, 'orders', 'integrated', %s, ',', '.') RETURNING id",
                (name, len(data), digest, HEADER),
            ).fetchone()[0]
            t0 = time.perf_counter()
            with conn.cursor() as cur, cur.copy(sql["copy"]) as copy:
                copy.write(data)
            out["copy_seconds"] += time.perf_counter() - t0
            try:  # the values as they are, cast; a value a cast refuses: each behind its guard
                with conn.transaction():
                    conn.execute(sql["type"])
            except psycopg.DataError:
                conn.execute(guarded)
                out["guarded"] += 1
            conn.execute(sql["reject"])
            conn.execute(sql["drop"], {"statuses": integrate.DEFAULT_RULES["integrate"]})
            writes._staging_tables(conn)
            conn.execute(sql["stage"])
            t0 = time.perf_counter()
            writes.upsert_customers(conn)
            counts = writes.insert_orders(conn, file_id)
            out["writes_seconds"] += time.perf_counter() - t0
            bad = conn.execute(
                "INSERT INTO passerelle.quarantine (file_id, file, line, reason, raw, shop_order_id) "
                "SELECT %s, %s, coalesce(line, 0), reason, '', shop_order_id FROM t_reject",
                (file_id, name),
            ).rowcount
            conn.execute(
                "UPDATE passerelle.inbound_file SET counts = %s WHERE id = %s",
                (json.dumps({**counts, "rejected_rows": bad}), file_id),
            )
            out["orders"] += counts["orders_created"]
            out["rejected"] += bad
    return out


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
            after_customer = conn.execute("SELECT coalesce(max(id), 0) FROM erp.customer").fetchone()[0]
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
                after_customer = conn.execute("SELECT max(id) FROM erp.customer").fetchone()[0]
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
        with psycopg.connect(dsn) as conn:
            customers_floor_seconds, floor_customers = customers_floor(conn, after_customer)

        # After the floors, which copy every web order and customer: these would count in them.
        print("a design parsing on the server (prototype)...", file=sys.stderr)
        design_files = order_files(skus, args.orders, args.lines_per_order, args.files, tag="S")
        with psycopg.connect(dsn) as conn:
            cpu0, py0, t0 = backend_cpu(conn), time.process_time(), time.perf_counter()
            design = server_design(conn, design_files)
            design_seconds = time.perf_counter() - t0
            design_cpu = None if cpu0 is None else time.process_time() - py0 + backend_cpu(conn) - cpu0
        assert (design["orders"], design["rejected"], design["guarded"]) == (created, 0, 0), f"the prototype: {design}"
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
    server_bound = floor_seconds + raw_copy_seconds + typing_seconds + customers_floor_seconds
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
        "customers_floor_seconds": round(customers_floor_seconds, 3),
        "floor_customers": floor_customers,
        "server_design_orders": design["orders"],
        "server_design_seconds": round(design_seconds, 3),
        "server_design_ratio": round(design_seconds / floor_seconds, 2),
        "server_design_cpu_seconds": None if design_cpu is None else round(design_cpu, 3),
        "server_design_copy_seconds": round(design["copy_seconds"], 3),
        "server_design_writes_seconds": round(design["writes_seconds"], 3),
        "server_design_writes_ratio": round((design["copy_seconds"] + design["writes_seconds"]) / floor_seconds, 2),
        "server_bound_seconds": round(server_bound, 3),
        "server_bound_ratio": round(server_bound / floor_seconds, 2),
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
    print(
        f"{'server bound':<12} {server_bound:8.2f} s  (the server limit + the back office's own inserts of the "
        f"files' customers, addresses and links ({customers_floor_seconds:.2f} s): {result['server_bound_ratio']}x "
        "the floor)"
    )
    print(
        f"{'prototype':<12} {design_seconds:8.2f} s  (a design parsing on the server, its checks and "
        f"lookups in SQL, the integration's own writes: {result['server_design_ratio']}x the floor; its raw "
        f"COPY ({design['copy_seconds']:.2f} s) and those writes ({design['writes_seconds']:.2f} s) alone: "
        f"{result['server_design_writes_ratio']}x)"
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
