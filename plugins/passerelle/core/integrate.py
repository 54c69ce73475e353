"""Integrate the shop's inbound files into the back office, exactly once.

Plain functions over a psycopg (3) connection and bytes; no Airflow. One file, one
transaction (:func:`integrate_file`):

1. lock (one integrator at a time), look the file's sha256 up in ``passerelle.inbound_file``:
   already there (a rerun, a retry, the same file under another name) -> nothing is written;
2. parse (:func:`passerelle.core.inbound.read_inbound`), move orders with an unknown SKU or no
   customer key to the rejects, split orders by shop status (:func:`filter_orders`);
3. COPY the frames into TEMP staging tables, then set-wise SQL: customers (matched by shop
   customer id through ``passerelle.customer_link``, then by e-mail) and addresses upserted;
   orders inserted ``ON CONFLICT (shop_order_id) DO NOTHING`` (quotes as ``kind='quote'``),
   lines and payments for the newly inserted orders only, ``passerelle.order_ledger``;
   cancellations applied to orders already integrated; rejects to ``passerelle.quarantine``;
   the ledger row; commit.

What happens on the server afterwards (rejects CSV to the error folder, file to the archive) is
:func:`finish_file`, driven by the ledger row, so a crash between commit and archive only
leaves the archive to do. :func:`replay_quarantine` integrates again the open quarantined rows
once their cause is fixed; :func:`propose_reorders` writes reorder proposals.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
import psycopg

from passerelle.core import inbound as ib
from passerelle.db import copy_in

#: Advisory lock key: one integrator at a time, whatever the number of runs or workers.
LOCK_KEY = 0x5A55_0001
#: Test hook: when set to a path, the integration creates that file and sleeps before commit,
#: so a test can kill the process inside the transaction.
PAUSE_ENV = "PASSERELLE_INTEGRATE_PAUSE"

DEFAULT_RULES: dict[str, list[str]] = {"integrate": ["paid", "validated"], "quotes": ["quote"],
                                       "cancels": ["cancelled"]}


@dataclass
class FileResult:
    """What one file did: for the log, XCom and the run summary."""

    name: str
    sha256: str
    status: str  # integrated | duplicate | error
    file_id: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    duplicate_of: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def known_skus(conn: psycopg.Connection, candidates: Iterable[str] | None = None) -> pd.Series:
    """References of the back office's articles and variants: those among ``candidates`` (a
    file's SKUs; one indexed lookup, whatever the size of the catalog), or all when None."""
    if candidates is None:
        rows = conn.execute("SELECT reference FROM erp.article UNION ALL SELECT reference FROM erp.variant")
    else:
        wanted = sorted({str(c).strip() for c in candidates if c is not None})
        rows = conn.execute("SELECT reference FROM erp.article WHERE reference = ANY(%(s)s) "
                            "UNION SELECT reference FROM erp.variant WHERE reference = ANY(%(s)s)", {"s": wanted})
    return pd.Series([r[0] for r in rows.fetchall()], dtype="str")


# --------------------------------------------------------------------------------------------
# One file
# --------------------------------------------------------------------------------------------


def integrate_file(conn: psycopg.Connection, name: str, data: bytes, *,
                   rules: Mapping[str, Iterable[str]] | None = None,
                   declared: Mapping[str, Any] | None = None) -> FileResult:
    """Integrate one file in one transaction (committed here), or nothing if already done.

    :param conn: the back office (psycopg 3); must not be inside a transaction.
    :param name: the file's name on the server (messages, ledger, quarantine).
    :param data: its bytes.
    :param rules: shop statuses ``integrate``/``quotes``/``cancels`` (default :data:`DEFAULT_RULES`).
    :param declared: dialect options for :func:`read_inbound` (encoding, delimiter, decimal...).
    :raises InboundError: the file as a whole cannot be read (nothing is written).
    """
    digest = sha256(data)
    _idle(conn)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        row = conn.execute("SELECT id, name FROM passerelle.inbound_file WHERE sha256 = %s", (digest,)).fetchone()
        if row:
            return FileResult(name, digest, "duplicate", file_id=row[0], duplicate_of=row[1])
        parsed = ib.read_inbound(name, data, declared=declared)
        file_id = conn.execute(
            "INSERT INTO passerelle.inbound_file (name, size, sha256, kind, status, header, delimiter, decimal) "
            "VALUES (%s, %s, %s, %s, 'integrated', %s, %s, %s) RETURNING id",
            (name, len(data), digest, parsed.kind, parsed.header, parsed.delimiter, parsed.decimal),
        ).fetchone()[0]
        counts, _ = _integrate_parsed(conn, parsed, file_id, rules or DEFAULT_RULES)
        conn.execute("UPDATE passerelle.inbound_file SET counts = %s WHERE id = %s", (json.dumps(counts), file_id))
        _maybe_pause()
    return FileResult(name, digest, "integrated", file_id=file_id, counts=counts)


def _idle(conn: psycopg.Connection) -> None:
    """Our transactions must be real ones, not savepoints inside the caller's."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise RuntimeError("integrate: the connection is inside a transaction; commit or roll back first")


def _maybe_pause() -> None:
    marker = os.environ.get(PAUSE_ENV)
    if marker:
        with open(marker, "w") as fh:
            fh.write(str(os.getpid()))
        time.sleep(600)


def _integrate_parsed(conn: psycopg.Connection, parsed: ib.ParsedFile, file_id: int,
                      rules: Mapping[str, Iterable[str]], *,
                      quarantine: bool = True) -> tuple[dict[str, int], pd.DataFrame]:
    """The set-wise part, inside the caller's transaction. Returns counts and the rejects (the
    parser's and the back office checks'); when ``quarantine``, the rejects go to
    ``passerelle.quarantine`` (a replay handles its own)."""
    parsed = _checked(conn, parsed)
    sel = ib.filter_orders(parsed, **{k: list(v) for k, v in rules.items()})
    wanted = pd.concat([sel.create.assign(kind="order"), sel.quotes.assign(kind="quote")], ignore_index=True)
    keep = set(wanted["shop_order_id"])
    if parsed.kind != ib.CUSTOMERS:  # customers of an order file: those of the orders integrated
        pairs = wanted[["shop_customer_id", "email"]].drop_duplicates()
        customers = parsed.customers.merge(pairs, how="inner", on=["shop_customer_id", "email"])
        addresses = parsed.addresses[parsed.addresses["shop_order_id"].isin(keep)]
        parsed = replace(parsed, customers=customers, addresses=addresses)
    lines = parsed.lines[parsed.lines["shop_order_id"].isin(keep)]
    payments = parsed.payments[parsed.payments["shop_order_id"].isin(keep)]
    counts: dict[str, int] = {"rows_read": int(parsed.rows_read), **{f"orders_{k}": v for k, v in sel.counts.items()}}

    _stage(conn, parsed, wanted, lines, payments, sel.cancels)
    counts.update(_upsert_customers(conn))
    counts.update(_insert_orders(conn, file_id))
    counts.update(_cancel_orders(conn, file_id, parsed.name, quarantine=quarantine))
    rejects = parsed.rejects
    if quarantine and len(rejects):
        q = rejects.assign(file_id=file_id)
        copy_in(conn, "passerelle.quarantine", q,
                ["file_id", "file", "line", "field", "value", "reason", "raw", "shop_order_id"])
    counts["rejected_rows"] = int(rejects["line"].nunique())
    counts["rejected_orders"] = int(rejects["shop_order_id"].dropna().nunique())
    conn.execute("DROP TABLE IF EXISTS s_customer, s_address, s_order, s_line, s_payment, s_cancel, s_new")
    return counts, rejects


def _checked(conn: psycopg.Connection, parsed: ib.ParsedFile) -> ib.ParsedFile:
    """The checks that need the back office: orders with an unknown SKU, or without a customer
    key, go to the rejects."""
    parsed = ib.reject_unknown_skus(parsed, known_skus(conn, parsed.lines["sku"].unique()))
    return _reject_orders_without_customer(parsed)


def _reject_orders_without_customer(parsed: ib.ParsedFile) -> ib.ParsedFile:
    """An order needs a customer key (shop customer id or e-mail): without one it is rejected."""
    o = parsed.orders
    ids = set(o.loc[o["shop_customer_id"].isna() & o["email"].isna(), "shop_order_id"])
    if not ids:
        return parsed
    rows = pd.concat([o[["line", "shop_order_id"]], parsed.lines[["line", "shop_order_id"]]]).drop_duplicates("line")
    bad = rows[rows["shop_order_id"].isin(ids)].sort_values("line")
    own = pd.DataFrame({"file": parsed.name, "line": bad["line"].to_numpy(), "field": "email", "value": "",
                        "reason": "no customer: shop_customer_id and email are both empty",
                        "raw": bad["line"].map(parsed.raw).to_numpy(),
                        "shop_order_id": bad["shop_order_id"].to_numpy()})
    rejects = pd.concat([parsed.rejects, own], ignore_index=True)

    def keep(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[~frame["shop_order_id"].isin(ids)].reset_index(drop=True)

    return replace(parsed, orders=keep(o), lines=keep(parsed.lines), payments=keep(parsed.payments),
                   addresses=keep(parsed.addresses), rejects=rejects,
                   customers=parsed.customers[~(parsed.customers["shop_customer_id"].isna()
                                                & parsed.customers["email"].isna())])


_STAGING = """
CREATE TEMP TABLE s_customer (line int, shop_customer_id text, email text, first_name text, last_name text,
    company text, phone text, customer_family text, updated_at timestamptz, source text, customer_id int, code text)
    ON COMMIT DROP;
CREATE TEMP TABLE s_address (line int, shop_order_id text, shop_customer_id text, email text, kind text,
    first_name text, last_name text, company text, address1 text, address2 text, postcode text, city text,
    region text, country text, phone text, customer_id int) ON COMMIT DROP;
CREATE TEMP TABLE s_order (line int, shop_order_id text, order_date timestamptz, status text, shop_status text,
    shop_customer_id text, email text, phone text, currency text, shipping_method text, shipping_excl_vat numeric,
    shipping_incl_vat numeric, shipping_vat_rate numeric, order_discount_excl_vat numeric,
    order_discount_incl_vat numeric, discount_code text, total_excl_vat numeric, total_incl_vat numeric,
    taxes_total numeric, refunded_amount numeric, note text, kind text) ON COMMIT DROP;
CREATE TEMP TABLE s_line (line int, shop_order_id text, line_number int, sku text, label text, quantity numeric,
    unit_price_excl_vat numeric, unit_price_incl_vat numeric, vat_rate numeric, discount_excl_vat numeric,
    discount_incl_vat numeric) ON COMMIT DROP;
CREATE TEMP TABLE s_payment (line int, shop_order_id text, method text, amount numeric, transaction_id text,
    paid boolean, paid_at timestamptz) ON COMMIT DROP;
CREATE TEMP TABLE s_cancel (line int, shop_order_id text, raw text) ON COMMIT DROP;
"""


def _stage(conn: psycopg.Connection, parsed: ib.ParsedFile, wanted: pd.DataFrame, lines: pd.DataFrame,
           payments: pd.DataFrame, cancels: pd.DataFrame) -> None:
    conn.execute("DROP TABLE IF EXISTS s_customer, s_address, s_order, s_line, s_payment, s_cancel, s_new")
    conn.execute(_STAGING)
    copy_in(conn, "s_customer", parsed.customers, ib.CUSTOMER_COLUMNS)
    copy_in(conn, "s_address", parsed.addresses, ib.ADDRESS_COLUMNS)
    copy_in(conn, "s_order", wanted, [*ib.ORDER_COLUMNS, "kind"])
    copy_in(conn, "s_line", lines, ib.LINE_COLUMNS)
    copy_in(conn, "s_payment", payments, ib.PAYMENT_COLUMNS)
    copy_in(conn, "s_cancel", cancels.assign(raw=cancels["line"].map(parsed.raw)), ["line", "shop_order_id", "raw"])


_CUSTOMERS = """
UPDATE s_customer s SET customer_id = l.customer_id FROM passerelle.customer_link l
 WHERE l.shop_customer_id = s.shop_customer_id;
UPDATE s_customer s SET customer_id = c.id FROM erp.customer c
 WHERE s.customer_id IS NULL AND s.email IS NOT NULL AND lower(c.email) = s.email;
UPDATE s_customer SET code = CASE WHEN shop_customer_id IS NOT NULL THEN 'WEB-C' || shop_customer_id
                                  ELSE 'WEB-E' || left(md5(email), 12) END;
"""

_CUSTOMERS_NEW = """
INSERT INTO erp.customer (code, email, first_name, last_name, company, phone, customer_family, web)
SELECT DISTINCT ON (s.code) s.code, s.email, s.first_name, s.last_name, s.company, s.phone, f.code, true
  FROM s_customer s LEFT JOIN erp.customer_family f ON f.code = s.customer_family
 WHERE s.customer_id IS NULL
 ORDER BY s.code, s.updated_at DESC NULLS LAST, s.line DESC
ON CONFLICT DO NOTHING
"""

_CUSTOMERS_RESOLVE = """
UPDATE s_customer s SET customer_id = c.id FROM erp.customer c WHERE s.customer_id IS NULL AND c.code = s.code;
UPDATE s_customer s SET customer_id = c.id FROM erp.customer c
 WHERE s.customer_id IS NULL AND s.email IS NOT NULL AND lower(c.email) = s.email;
"""

# Existing customers: the latest row wins; a value the file leaves empty keeps the back office's.
_CUSTOMERS_UPDATE = """
WITH latest AS (
    SELECT DISTINCT ON (customer_id) * FROM s_customer WHERE customer_id IS NOT NULL
     ORDER BY customer_id, updated_at DESC NULLS LAST, line DESC)
UPDATE erp.customer c SET
    email = CASE WHEN s.email IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM erp.customer o WHERE lower(o.email) = s.email AND o.id <> c.id)
            THEN s.email ELSE c.email END,
    first_name = coalesce(s.first_name, c.first_name), last_name = coalesce(s.last_name, c.last_name),
    company = coalesce(s.company, c.company), phone = coalesce(s.phone, c.phone),
    customer_family = coalesce(f.code, c.customer_family)
  FROM latest s LEFT JOIN erp.customer_family f ON f.code = s.customer_family
 WHERE c.id = s.customer_id
   AND (c.email, c.first_name, c.last_name, c.company, c.phone, c.customer_family) IS DISTINCT FROM
       (coalesce(s.email, c.email), coalesce(s.first_name, c.first_name), coalesce(s.last_name, c.last_name),
        coalesce(s.company, c.company), coalesce(s.phone, c.phone), coalesce(f.code, c.customer_family))
"""

_LINKS = """
INSERT INTO passerelle.customer_link (shop_customer_id, customer_id)
SELECT DISTINCT ON (shop_customer_id) shop_customer_id, customer_id FROM s_customer
 WHERE shop_customer_id IS NOT NULL AND customer_id IS NOT NULL
 ORDER BY shop_customer_id, updated_at DESC NULLS LAST, line DESC
ON CONFLICT (shop_customer_id) DO UPDATE SET customer_id = EXCLUDED.customer_id, updated_at = now()
 WHERE passerelle.customer_link.customer_id <> EXCLUDED.customer_id
"""

# Addresses belong to the customer of their row (shop id first, then e-mail); one per kind.
_ADDRESSES = """
UPDATE s_address a SET customer_id = l.customer_id FROM passerelle.customer_link l
 WHERE l.shop_customer_id = a.shop_customer_id;
UPDATE s_address a SET customer_id = c.id FROM erp.customer c
 WHERE a.customer_id IS NULL AND a.email IS NOT NULL AND lower(c.email) = a.email;
"""

_ADDRESSES_UPSERT = """
INSERT INTO erp.address AS t (customer_id, kind, name, line1, line2, postcode, city, country, phone)
SELECT DISTINCT ON (customer_id, kind) customer_id, kind,
       nullif(trim(concat_ws(' ', first_name, last_name,
                             CASE WHEN company IS NOT NULL THEN '(' || company || ')' END)), ''),
       address1, address2, postcode, city, CASE WHEN length(country) = 2 THEN upper(country) ELSE 'FR' END, phone
  FROM s_address
 WHERE customer_id IS NOT NULL AND address1 IS NOT NULL AND postcode IS NOT NULL AND city IS NOT NULL
 ORDER BY customer_id, kind, line DESC
ON CONFLICT (customer_id, kind) DO UPDATE SET name = EXCLUDED.name, line1 = EXCLUDED.line1, line2 = EXCLUDED.line2,
    postcode = EXCLUDED.postcode, city = EXCLUDED.city, country = EXCLUDED.country, phone = EXCLUDED.phone,
    updated_at = now()
 WHERE (t.name, t.line1, t.line2, t.postcode, t.city, t.country, t.phone) IS DISTINCT FROM
       (EXCLUDED.name, EXCLUDED.line1, EXCLUDED.line2, EXCLUDED.postcode, EXCLUDED.city, EXCLUDED.country,
        EXCLUDED.phone)
"""


def _upsert_customers(conn: psycopg.Connection) -> dict[str, int]:
    conn.execute(_CUSTOMERS)
    created = conn.execute(_CUSTOMERS_NEW).rowcount
    conn.execute(_CUSTOMERS_RESOLVE)
    updated = conn.execute(_CUSTOMERS_UPDATE).rowcount
    conn.execute(_LINKS)
    conn.execute(_ADDRESSES)
    addresses = conn.execute(_ADDRESSES_UPSERT).rowcount
    return {"customers_created": created, "customers_updated": max(updated, 0), "addresses_upserted": addresses}


_ORDERS = """
CREATE TEMP TABLE s_new ON COMMIT DROP AS
WITH src AS (
    SELECT o.*, coalesce(l.customer_id, c.id) AS customer_id,
           b.first_name || ' ' || b.last_name AS b_name, b.address1 AS b1, b.address2 AS b2, b.postcode AS bp,
           b.city AS bc, b.country AS bco,
           d.first_name || ' ' || d.last_name AS d_name, d.address1 AS d1, d.address2 AS d2, d.postcode AS dp,
           d.city AS dc, d.country AS dco
      FROM s_order o
      LEFT JOIN passerelle.customer_link l ON l.shop_customer_id = o.shop_customer_id
      LEFT JOIN erp.customer c ON o.email IS NOT NULL AND lower(c.email) = o.email
      LEFT JOIN s_address b ON b.shop_order_id = o.shop_order_id AND b.kind = 'billing'
      LEFT JOIN s_address d ON d.shop_order_id = o.shop_order_id AND d.kind = 'delivery'
), ins AS (
    INSERT INTO erp.sales_order (number, kind, origin, shop_order_id, customer_id, order_date, status, currency,
        shipping_excl_vat, shipping_vat_rate, total_excl_vat, total_vat, total_incl_vat,
        billing_name, billing_line1, billing_line2, billing_postcode, billing_city, billing_country,
        delivery_name, delivery_line1, delivery_line2, delivery_postcode, delivery_city, delivery_country,
        carrier, note)
    SELECT CASE WHEN shop_order_id LIKE 'WEB-%' THEN shop_order_id ELSE 'WEB-' || shop_order_id END,
           kind, 'web', shop_order_id, customer_id, order_date,
           CASE WHEN kind = 'quote' THEN 'quote' ELSE 'confirmed' END, coalesce(currency, 'EUR'),
           coalesce(shipping_excl_vat, 0), coalesce(shipping_vat_rate, 20), coalesce(total_excl_vat, 0),
           coalesce(taxes_total, 0), coalesce(total_incl_vat, 0),
           b_name, b1, b2, bp, bc, CASE WHEN length(bco) = 2 THEN bco END,
           coalesce(d_name, b_name), coalesce(d1, b1), CASE WHEN d1 IS NULL THEN b2 ELSE d2 END,
           coalesce(dp, bp), coalesce(dc, bc), CASE WHEN length(coalesce(dco, bco)) = 2 THEN coalesce(dco, bco) END,
           shipping_method,
           nullif(concat_ws(' / ', note, CASE WHEN discount_code IS NOT NULL THEN 'code ' || discount_code END), '')
      FROM src
    ON CONFLICT (shop_order_id) DO NOTHING
    RETURNING id, shop_order_id, kind
)
SELECT * FROM ins
"""

_LINES = """
WITH sku AS (
    SELECT v.reference, v.article_id, v.id AS variant_id FROM erp.variant v
    UNION ALL
    SELECT a.reference, a.id, NULL FROM erp.article a
     WHERE NOT EXISTS (SELECT 1 FROM erp.variant v WHERE v.reference = a.reference)
)
INSERT INTO erp.sales_order_line (order_id, line_number, article_id, variant_id, label, quantity,
    unit_price_excl_vat, discount_excl_vat, vat_rate)
SELECT n.id, row_number() OVER (PARTITION BY n.id ORDER BY l.line_number, l.line), k.article_id, k.variant_id,
       coalesce(l.label, a.name), l.quantity,
       coalesce(l.unit_price_excl_vat, l.unit_price_incl_vat / (1 + coalesce(l.vat_rate, a.vat_rate) / 100)),
       coalesce(l.discount_excl_vat, 0), coalesce(l.vat_rate, a.vat_rate)
  FROM s_new n
  JOIN s_line l ON l.shop_order_id = n.shop_order_id
  JOIN sku k ON k.reference = l.sku
  JOIN erp.article a ON a.id = k.article_id
"""

_PAYMENTS = """
INSERT INTO erp.payment (order_id, method, amount, transaction_id, paid, paid_at)
SELECT DISTINCT ON (n.id) n.id, coalesce(p.method, 'unknown'), p.amount, p.transaction_id, coalesce(p.paid, false),
       p.paid_at
  FROM s_new n JOIN s_payment p ON p.shop_order_id = n.shop_order_id
 ORDER BY n.id, p.line
ON CONFLICT DO NOTHING
"""

# A quote the shop later says is paid becomes an order (its lines are the quote's).
_QUOTES_CONFIRMED = """
UPDATE erp.sales_order o SET kind = 'order', status = 'confirmed'
  FROM s_order s WHERE s.kind = 'order' AND o.shop_order_id = s.shop_order_id AND o.kind = 'quote'
   AND o.status = 'quote'
"""


def _insert_orders(conn: psycopg.Connection, file_id: int) -> dict[str, int]:
    conn.execute(_ORDERS)
    new = conn.execute("SELECT count(*) FILTER (WHERE kind = 'order'), count(*) FILTER (WHERE kind = 'quote') "
                       "FROM s_new").fetchone()
    lines = conn.execute(_LINES).rowcount
    payments = conn.execute(_PAYMENTS).rowcount
    conn.execute("INSERT INTO passerelle.order_ledger (shop_order_id, order_id, kind, file_id) "
                 "SELECT shop_order_id, id, kind, %s FROM s_new ON CONFLICT DO NOTHING", (file_id,))
    converted = conn.execute(_QUOTES_CONFIRMED).rowcount
    staged = conn.execute("SELECT count(*) FROM s_order").fetchone()[0]
    return {"orders_created": new[0], "quotes_created": new[1], "quotes_confirmed": converted,
            "orders_already_integrated": staged - new[0] - new[1], "lines_created": lines,
            "payments_created": payments}


def _cancel_orders(conn: psycopg.Connection, file_id: int, name: str, *, quarantine: bool) -> dict[str, int]:
    """Cancel integrated orders the shop cancelled; an order already shipped or invoiced is not
    changed: the cancellation goes to the quarantine for the staff to handle."""
    cancelled = conn.execute(
        "UPDATE erp.sales_order o SET status = 'cancelled' FROM s_cancel s "
        "WHERE o.shop_order_id = s.shop_order_id AND o.status IN ('quote', 'confirmed', 'prepared')").rowcount
    late = conn.execute(
        "SELECT s.line, s.shop_order_id, s.raw, o.status FROM s_cancel s "
        "JOIN erp.sales_order o ON o.shop_order_id = s.shop_order_id AND o.status IN ('shipped', 'invoiced')"
    ).fetchall()
    unknown = conn.execute("SELECT count(*) FROM s_cancel s WHERE NOT EXISTS "
                           "(SELECT 1 FROM erp.sales_order o WHERE o.shop_order_id = s.shop_order_id)").fetchone()[0]
    if late and quarantine:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO passerelle.quarantine (file_id, file, line, field, value, reason, raw, shop_order_id) "
                "VALUES (%s, %s, %s, 'status', 'cancelled', %s, %s, %s)",
                [(file_id, name, line, f"order {sid} is already {status}: cancel it by hand", raw, sid)
                 for line, sid, raw, status in late])
    return {"orders_cancelled": cancelled, "cancels_too_late": len(late), "cancels_not_integrated": unknown}


# --------------------------------------------------------------------------------------------
# After commit: rejects CSV and archive
# --------------------------------------------------------------------------------------------


def rejects_for_file(conn: psycopg.Connection, file_id: int) -> pd.DataFrame:
    """The quarantined rows of one file, as the parser's rejects frame."""
    rows = conn.execute("SELECT file, line, field, value, reason, raw, shop_order_id FROM passerelle.quarantine "
                        "WHERE file_id = %s ORDER BY line, id", (file_id,)).fetchall()
    return pd.DataFrame(rows, columns=ib.REJECT_COLUMNS)


def archive_name(name: str, digest: str) -> str:
    """Name in the archive folder: the content's hash prefix avoids clashes between files
    dropped under the same name on different days."""
    return f"{digest[:12]}_{name}"


def rejects_name(name: str, digest: str) -> str:
    stem = name.rsplit(".", 1)[0]
    return f"{stem}.{digest[:8]}.rejects.csv"


def finish_file(conn: psycopg.Connection, result: FileResult, *, put: Callable[[str, bytes], None],
                move: Callable[[str], str]) -> dict[str, Any]:
    """After commit: upload the file's rejects (if any) with ``put(name, bytes)``, move the
    file away with ``move(archive_name) -> path``, mark the ledger row archived.

    Driven by the ledger row, not by this run: a file whose row is still ``integrated`` (a crash
    after commit, before the archive) gets its rejects and its archive now, even when this run
    found it a duplicate. Safe to run again.
    """
    _idle(conn)
    row = conn.execute("SELECT status FROM passerelle.inbound_file WHERE id = %s", (result.file_id,)).fetchone()
    pending = bool(row) and row[0] == "integrated"
    out: dict[str, Any] = {}
    if pending:
        rejects = rejects_for_file(conn, result.file_id)
        conn.commit()
        if len(rejects):
            rname = rejects_name(result.name, result.sha256)
            put(rname, ib.rejects_csv(rejects))
            out["rejects_file"] = rname
    conn.commit()
    archived = move(archive_name(result.name, result.sha256))
    out["archived_as"] = archived
    if pending:
        conn.execute("UPDATE passerelle.inbound_file SET status = 'archived', archived_at = now(), archived_as = %s "
                     "WHERE id = %s", (archived, result.file_id))
        conn.commit()
    return out


# --------------------------------------------------------------------------------------------
# Replay
# --------------------------------------------------------------------------------------------


#: Quarantined rows a replay takes: not the cancellations of orders already shipped or invoiced
#: (those are for the staff; nothing to fix in the file).
_REPLAYABLE = "NOT (q.field = 'status' AND q.value = 'cancelled')"


def replay_quarantine(conn: psycopg.Connection, *, rules: Mapping[str, Iterable[str]] | None = None,
                      declared: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Integrate again the open quarantined rows, one transaction per original file.

    Fix the cause first: add the missing article, or correct the row's ``raw`` text in
    ``passerelle.quarantine``. Rows that now pass become ``replayed``; rows still refused stay
    ``open`` with their new reason. Orders already integrated are never integrated twice.
    """
    files = conn.execute(
        "SELECT DISTINCT f.id, f.name, f.header, f.delimiter, f.decimal, f.kind FROM passerelle.quarantine q "
        "JOIN passerelle.inbound_file f ON f.id = q.file_id WHERE q.status = 'open' AND f.header IS NOT NULL "
        f"AND {_REPLAYABLE} ORDER BY f.id").fetchall()
    conn.commit()
    results = []
    _idle(conn)
    for file_id, name, header, delimiter, decimal, kind in files:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            rows = conn.execute(
                "SELECT line, min(raw) FROM passerelle.quarantine q WHERE file_id = %s AND status = 'open' "
                f"AND {_REPLAYABLE} GROUP BY line ORDER BY line", (file_id,)).fetchall()
            if not rows:
                continue
            text = "\n".join([header, *[r[1] or "" for r in rows]]) + "\n"
            opts = {**(declared or {}), "encoding": "utf-8", "delimiter": delimiter, "decimal": decimal, "kind": kind}
            parsed = ib.read_inbound(f"{name} (replay)", text.encode("utf-8"), declared=opts)
            # Replayed physical line i+2 is the original line rows[i].
            original = {i + 2: r[0] for i, r in enumerate(rows)}
            remap = lambda f: f.assign(line=f["line"].map(original).astype("int64"))  # noqa: E731
            parsed = replace(parsed, name=name, orders=remap(parsed.orders), lines=remap(parsed.lines),
                             payments=remap(parsed.payments), customers=remap(parsed.customers),
                             addresses=remap(parsed.addresses), rejects=remap(parsed.rejects).assign(file=name),
                             raw=pd.Series(parsed.raw.to_numpy(), index=parsed.raw.index.map(original)))
            counts, rejects = _integrate_parsed(conn, parsed, file_id, rules or DEFAULT_RULES, quarantine=False)
            still = rejects.drop_duplicates("line").set_index("line")["reason"]
            done = conn.execute(
                "UPDATE passerelle.quarantine q SET status = 'replayed', replayed_at = now() "
                f"WHERE file_id = %s AND status = 'open' AND {_REPLAYABLE} AND NOT (line = ANY(%s))",
                (file_id, [int(x) for x in still.index])).rowcount
            with conn.cursor() as cur:
                cur.executemany("UPDATE passerelle.quarantine SET reason = %s WHERE file_id = %s AND line = %s "
                                "AND status = 'open'",
                                [(reason, file_id, int(line)) for line, reason in still.items()])
            results.append({"file": name, "file_id": file_id, "rows_replayed": done,
                            "rows_still_open": int(len(still)), **counts})
    return results


# --------------------------------------------------------------------------------------------
# Reorder proposals
# --------------------------------------------------------------------------------------------

_REORDER = """
WITH open_web AS (
    SELECT l.article_id, l.variant_id, sum(l.quantity - l.shipped_qty) AS qty
      FROM erp.sales_order o JOIN erp.sales_order_line l ON l.order_id = o.id
     WHERE o.origin = 'web' AND o.kind = 'order' AND o.status IN ('confirmed', 'prepared')
     GROUP BY l.article_id, l.variant_id
), projected AS (
    SELECT sl.article_id, sl.variant_id, sl.available_qty - coalesce(w.qty, 0) AS projected_qty
      FROM passerelle_src.stock_level sl
      LEFT JOIN open_web w ON w.article_id = sl.article_id AND w.variant_id IS NOT DISTINCT FROM sl.variant_id
)
INSERT INTO erp.reorder_proposal (supplier_id, article_id, variant_id, projected_qty, min_stock, proposed_qty)
SELECT a.supplier_id, p.article_id, p.variant_id, p.projected_qty, a.min_stock,
       greatest(a.reorder_qty, a.min_stock - p.projected_qty)
  FROM projected p JOIN erp.article a ON a.id = p.article_id
 WHERE p.projected_qty < a.min_stock
ON CONFLICT (article_id, coalesce(variant_id, 0)) WHERE status = 'proposed' DO NOTHING
"""


def propose_reorders(conn: psycopg.Connection) -> int:
    """Reorder proposals (per supplier) for articles and variants whose projected stock (web
    available stock less open web order quantities) is below the article's minimum. An open
    proposal for the same article and variant is left alone. Commits; returns rows added."""
    _idle(conn)
    with conn.transaction():
        return conn.execute(_REORDER).rowcount


# --------------------------------------------------------------------------------------------
# Configuration and whole-file refusals
# --------------------------------------------------------------------------------------------


def inbound_settings(cfg: Any, shop_timezone: str | None = None) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """The ``inbound`` section as (status rules, declared dialect for :func:`read_inbound`).

    ``cfg`` is the typed section (``Settings.inbound``, then *shop_timezone* is the files' default
    timezone), the whole :class:`passerelle.config.Settings`, or ``load_config()``'s dict; the
    configuration model has checked it (a status not among the parser's, one in two groups...).
    """
    from passerelle.config import InboundSection, Settings, as_settings  # local: no configuration import at load

    if isinstance(cfg, InboundSection):
        section, timezone = cfg, shop_timezone or "Europe/Paris"
    else:
        settings = cfg if isinstance(cfg, Settings) else as_settings(cfg)
        section, timezone = settings.inbound, shop_timezone or settings.shop.timezone
    return section.rules, section.declared(timezone)


def refuse_file(conn: psycopg.Connection, name: str, error: Exception) -> None:
    """A file that cannot be read at all goes to the quarantine as one row (line 0) with the
    parser's message; the caller moves it to the error folder. Commits."""
    _idle(conn)
    with conn.transaction():
        conn.execute("INSERT INTO passerelle.quarantine (file, line, field, reason) VALUES (%s, 0, 'file', %s)",
                     (name, str(error)))

