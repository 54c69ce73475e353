"""The integration's writes into the back office, set-wise, inside the caller's transaction:
the parsed frames COPYed into TEMP staging tables (one COPY each, the lines with their article
already looked up), then customers (matched by shop customer id
through ``passerelle.customer_link``, then by e-mail) and addresses upserted; orders inserted
``ON CONFLICT (shop_order_id) DO NOTHING`` (quotes as ``kind='quote'``), lines and payments for
the newly inserted orders only, ``passerelle.order_ledger``; cancellations applied to orders
already integrated."""

from __future__ import annotations

import pandas as pd
import psycopg

from passerelle.core import inbound as ib
from passerelle.core.emails import email_key_sql
from passerelle.db import copy_in

#: E-mails compared as the parser wrote the file's (:mod:`passerelle.core.emails`, one normalisation).
_EMAIL = {"c_email": email_key_sql("c.email"), "o_email": email_key_sql("o.email")}

#: The staging tables: TEMP, made once per session and emptied at each commit (``ON COMMIT DELETE
#: ROWS``), so that a file's transaction pays no DDL (creating and dropping seven tables cost about
#: as much as COPYing a 1,000-order file into them).
_STAGING = """
CREATE TEMP TABLE s_customer (line int, shop_customer_id text, email text, first_name text, last_name text,
    company text, phone text, customer_family text, updated_at timestamptz, source text, customer_id int, code text)
    ON COMMIT DELETE ROWS;
CREATE TEMP TABLE s_address (line int, shop_order_id text, shop_customer_id text, email text, kind text,
    first_name text, last_name text, company text, address1 text, address2 text, postcode text, city text,
    region text, country text, phone text, customer_id int) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE s_order (line int, shop_order_id text, order_date timestamptz, status text, shop_status text,
    shop_customer_id text, email text, phone text, currency text, shipping_method text, shipping_excl_vat numeric,
    shipping_incl_vat numeric, shipping_vat_rate numeric, order_discount_excl_vat numeric,
    order_discount_incl_vat numeric, discount_code text, total_excl_vat numeric, total_incl_vat numeric,
    taxes_total numeric, refunded_amount numeric, note text, vat_rates text, kind text, number text,
    walk_in boolean, vat_disagreement text, awaiting boolean) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE s_line (line int, shop_order_id text, line_number int, sku text, article_id int, variant_id int,
    label text, quantity numeric, unit_price_excl_vat numeric, unit_price_incl_vat numeric, vat_rate numeric,
    discount_excl_vat numeric, discount_incl_vat numeric, matched_by text) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE s_payment (line int, shop_order_id text, method text, amount numeric, transaction_id text,
    paid boolean, paid_at timestamptz) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE s_cancel (line int, shop_order_id text, raw text) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE s_refund (line int, shop_order_id text, status text, shop_status text, refunded_amount numeric,
    total_incl_vat numeric) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE s_new (id int, shop_order_id text, kind text, status text) ON COMMIT DELETE ROWS;
"""
_STAGING_TABLES = ("s_customer", "s_address", "s_order", "s_line", "s_payment", "s_cancel", "s_refund", "s_new")

#: The lines as staged: ids of the back office's article and variant already looked up, each
#: order's lines numbered 1..n (their order in the file: line_number, then physical line).
_LINE_STAGED = [
    "line",
    "shop_order_id",
    "line_number",
    "sku",
    "article_id",
    "variant_id",
    "label",
    "quantity",
    "unit_price_excl_vat",
    "unit_price_incl_vat",
    "vat_rate",
    "discount_excl_vat",
    "discount_incl_vat",
    "matched_by",
]


def _staging_tables(conn: psycopg.Connection) -> None:
    """The staging tables, empty: made on the session's first file; emptied by every commit, and
    here again in case a transaction stages twice."""
    if conn.execute("SELECT to_regclass('pg_temp.s_new')").fetchone()[0] is None:
        conn.execute(_STAGING)
    else:
        conn.execute("; ".join(f"DELETE FROM {t}" for t in _STAGING_TABLES))


def staged_lines(lines: pd.DataFrame, references: pd.DataFrame) -> pd.DataFrame:
    """``lines`` as :data:`_LINE_STAGED`: the article and variant of each SKU from ``references``
    (:func:`~passerelle.core.integrate.rules.sku_references`; a line whose SKU is not there is
    not written), the label and VAT rate the file leaves empty taken from the article, and each
    order's lines numbered 1..n in the file's order (line_number, then physical line)."""
    at = pd.Index(references["reference"].astype("object")).get_indexer(lines["sku"].astype("object"))
    found = at >= 0
    lines, at = lines[found], at[found]
    refs = {c: references[c].array[at] for c in ("article_id", "variant_id", "vat_rate", "name")}  # Int64 kept
    out = lines.assign(
        article_id=refs["article_id"],
        variant_id=refs["variant_id"],
        label=lines["label"].where(lines["label"].notna(), refs["name"]),
        vat_rate=lines["vat_rate"].astype("float64").where(lines["vat_rate"].notna(), refs["vat_rate"]),
        matched_by=lines.get("matched_by", "sku"),
    )
    out = out.sort_values(["shop_order_id", "line_number", "line"], kind="stable")
    out["line_number"] = out.groupby("shop_order_id", sort=False).cumcount().to_numpy() + 1
    return out


def stage(
    conn: psycopg.Connection,
    parsed: ib.ParsedFile,
    wanted: pd.DataFrame,
    lines: pd.DataFrame,
    payments: pd.DataFrame,
    cancels: pd.DataFrame,
    references: pd.DataFrame,
) -> None:
    """COPY the file's frames into the staging tables, once each; ``references`` from
    :func:`~passerelle.core.integrate.rules.sku_references` give the lines their article."""
    _staging_tables(conn)
    copy_in(conn, "s_customer", parsed.customers, ib.CUSTOMER_COLUMNS)
    copy_in(conn, "s_address", parsed.addresses, ib.ADDRESS_COLUMNS)
    wanted = wanted.assign(
        walk_in=wanted.get("walk_in", False),
        vat_disagreement=wanted.get("vat_disagreement"),
        awaiting=wanted.get("awaiting", False),
    )
    copy_in(conn, "s_order", wanted, [*ib.ORDER_COLUMNS, "kind", "number", "walk_in", "vat_disagreement", "awaiting"])
    copy_in(conn, "s_line", staged_lines(lines, references), _LINE_STAGED)
    copy_in(conn, "s_payment", payments, ib.PAYMENT_COLUMNS)
    copy_in(conn, "s_cancel", cancels.assign(raw=cancels["line"].map(parsed.raw)), ["line", "shop_order_id", "raw"])
    refunds = parsed.orders
    if len(refunds):  # every order the file keeps that says a refund (status or amount)
        refunds = refunds[(refunds["status"] == "refunded") | (refunds["refunded_amount"].fillna(0) > 0)]
    copy_in(
        conn,
        "s_refund",
        refunds,
        ["line", "shop_order_id", "status", "shop_status", "refunded_amount", "total_incl_vat"],
    )


_CUSTOMERS = """
UPDATE s_customer s SET customer_id = l.customer_id FROM passerelle.customer_link l
 WHERE l.shop_customer_id = s.shop_customer_id;
UPDATE s_customer s SET customer_id = c.id FROM erp.customer c
 WHERE s.customer_id IS NULL AND s.email IS NOT NULL AND {c_email} = s.email;
UPDATE s_customer SET code = CASE WHEN shop_customer_id IS NOT NULL THEN 'WEB-C' || shop_customer_id
                                  ELSE 'WEB-E' || left(md5(email), 12) END;
""".format(**_EMAIL)

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
 WHERE s.customer_id IS NULL AND s.email IS NOT NULL AND {c_email} = s.email;
""".format(**_EMAIL)

# Existing customers: the latest row wins; a value the file leaves empty keeps the back office's.
_CUSTOMERS_UPDATE = """
WITH latest AS (
    SELECT DISTINCT ON (customer_id) * FROM s_customer WHERE customer_id IS NOT NULL
     ORDER BY customer_id, updated_at DESC NULLS LAST, line DESC)
UPDATE erp.customer c SET
    email = CASE WHEN s.email IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM erp.customer o WHERE {o_email} = s.email AND o.id <> c.id)
            THEN s.email ELSE c.email END,
    first_name = coalesce(s.first_name, c.first_name), last_name = coalesce(s.last_name, c.last_name),
    company = coalesce(s.company, c.company), phone = coalesce(s.phone, c.phone),
    customer_family = coalesce(f.code, c.customer_family)
  FROM latest s LEFT JOIN erp.customer_family f ON f.code = s.customer_family
 WHERE c.id = s.customer_id AND c.id = ANY (ARRAY(SELECT customer_id FROM latest))
   AND (c.email, c.first_name, c.last_name, c.company, c.phone, c.customer_family) IS DISTINCT FROM
       (coalesce(s.email, c.email), coalesce(s.first_name, c.first_name), coalesce(s.last_name, c.last_name),
        coalesce(s.company, c.company), coalesce(s.phone, c.phone), coalesce(f.code, c.customer_family))
""".format(**_EMAIL)

_LINKS = """
INSERT INTO passerelle.customer_link (shop_customer_id, customer_id)
SELECT DISTINCT ON (shop_customer_id) shop_customer_id, customer_id FROM s_customer
 WHERE shop_customer_id IS NOT NULL AND customer_id IS NOT NULL
 ORDER BY shop_customer_id, updated_at DESC NULLS LAST, line DESC
ON CONFLICT (shop_customer_id) DO UPDATE SET customer_id = EXCLUDED.customer_id, updated_at = now()
 WHERE passerelle.customer_link.customer_id <> EXCLUDED.customer_id
"""

# Every row of a shop customer id now names the customer its link names (the latest row's, as
# _LINKS wrote it; rows differ only for a new id given with two e-mails): each staged row is then the
# customer its orders and addresses belong to, and they are looked up here, not in the back office.
_SAME_AS_LINK = """
UPDATE s_customer s SET customer_id = w.customer_id
  FROM (SELECT DISTINCT ON (shop_customer_id) shop_customer_id, customer_id FROM s_customer
         WHERE shop_customer_id IS NOT NULL AND customer_id IS NOT NULL
         ORDER BY shop_customer_id, updated_at DESC NULLS LAST, line DESC) w
 WHERE s.shop_customer_id = w.shop_customer_id AND s.customer_id IS DISTINCT FROM w.customer_id
"""

#: A staged row's customer key, NULLs compared equal and hashable (the parser writes no '' value).
_KEY = (
    "coalesce({0}.shop_customer_id, '') = coalesce({1}.shop_customer_id, '') "
    "AND coalesce({0}.email, '') = coalesce({1}.email, '')"
)

# Addresses belong to the customer of their row (its staged customer; else shop id, then e-mail); one per
# kind: that of the customer's latest order in the file (a customers file: the latest updated row),
# whatever the lines' order.
_ADDRESSES = """
UPDATE s_address a SET customer_id = s.customer_id FROM s_customer s WHERE {key};
UPDATE s_address a SET customer_id = l.customer_id FROM passerelle.customer_link l
 WHERE a.customer_id IS NULL AND l.shop_customer_id = a.shop_customer_id;
UPDATE s_address a SET customer_id = c.id FROM erp.customer c
 WHERE a.customer_id IS NULL AND a.email IS NOT NULL AND {c_email} = a.email;
""".format(key=_KEY.format("s", "a"), **_EMAIL)

_ADDRESSES_UPSERT = """
INSERT INTO erp.address AS t (customer_id, kind, name, line1, line2, postcode, city, country, phone)
SELECT DISTINCT ON (a.customer_id, a.kind) a.customer_id, a.kind,
       coalesce(nullif(trim(concat_ws(' ', a.first_name, a.last_name)), ''), a.company),
       a.address1, a.address2, a.postcode, a.city,
       CASE WHEN length(a.country) = 2 THEN upper(a.country) ELSE 'FR' END, a.phone
  FROM s_address a
  LEFT JOIN (SELECT DISTINCT ON (shop_order_id) shop_order_id, order_date FROM s_order
              ORDER BY shop_order_id, line) o ON o.shop_order_id = a.shop_order_id
  LEFT JOIN s_customer c ON a.shop_order_id IS NULL AND c.line = a.line
 WHERE a.customer_id IS NOT NULL AND a.address1 IS NOT NULL AND a.postcode IS NOT NULL AND a.city IS NOT NULL
 ORDER BY a.customer_id, a.kind, coalesce(o.order_date, c.updated_at) DESC NULLS LAST, a.line DESC
ON CONFLICT (customer_id, kind) DO UPDATE SET name = EXCLUDED.name, line1 = EXCLUDED.line1, line2 = EXCLUDED.line2,
    postcode = EXCLUDED.postcode, city = EXCLUDED.city, country = EXCLUDED.country, phone = EXCLUDED.phone,
    updated_at = now()
 WHERE (t.name, t.line1, t.line2, t.postcode, t.city, t.country, t.phone) IS DISTINCT FROM
       (EXCLUDED.name, EXCLUDED.line1, EXCLUDED.line2, EXCLUDED.postcode, EXCLUDED.city, EXCLUDED.country,
        EXCLUDED.phone)
"""


def upsert_customers(conn: psycopg.Connection) -> dict[str, int]:
    conn.execute(_CUSTOMERS)
    created = conn.execute(_CUSTOMERS_NEW).rowcount
    conn.execute(_CUSTOMERS_RESOLVE)
    updated = conn.execute(_CUSTOMERS_UPDATE).rowcount
    conn.execute(_LINKS)
    conn.execute(_SAME_AS_LINK)
    conn.execute(_ADDRESSES)
    addresses = conn.execute(_ADDRESSES_UPSERT).rowcount
    return {"customers_created": created, "customers_updated": max(updated, 0), "addresses_upserted": addresses}


# The orders not yet in the back office, their ledger rows, and s_new (their ids) in one statement. An
# order's customer is its staged customer's (upsert_customers); else, were it not staged, that of its
# shop id's link, then of its e-mail (each looked up only then, through an index); else the walk-in one.
_ORDERS = """
WITH src AS (
    SELECT o.*, coalesce(
               s.customer_id,
               (SELECT l.customer_id FROM passerelle.customer_link l WHERE l.shop_customer_id = o.shop_customer_id),
               (SELECT min(c.id) FROM erp.customer c WHERE o.email IS NOT NULL AND {c_email} = o.email),
               CASE WHEN o.walk_in THEN %(walk_in)s::int END) AS customer_id,
           coalesce(nullif(trim(concat_ws(' ', b.first_name, b.last_name)), ''), b.company) AS b_name,
           b.address1 AS b1, b.address2 AS b2, b.postcode AS bp, b.city AS bc, b.country AS bco,
           b.company AS bcomp, b.region AS breg, b.phone AS bph,
           coalesce(nullif(trim(concat_ws(' ', d.first_name, d.last_name)), ''), d.company) AS d_name,
           d.address1 AS d1, d.address2 AS d2, d.postcode AS dp, d.city AS dc, d.country AS dco,
           d.company AS dcomp, d.region AS dreg, d.phone AS dph
      FROM s_order o
      LEFT JOIN s_customer s ON {key}
      LEFT JOIN s_address b ON b.shop_order_id = o.shop_order_id AND b.kind = 'billing'
      LEFT JOIN s_address d ON d.shop_order_id = o.shop_order_id AND d.kind = 'delivery'
), ins AS (
    INSERT INTO erp.sales_order (number, kind, origin, shop_order_id, customer_id, order_date, status, currency,
        shipping_excl_vat, shipping_vat_rate, total_excl_vat, total_vat, total_incl_vat,
        billing_name, billing_line1, billing_line2, billing_postcode, billing_city, billing_country,
        delivery_name, delivery_line1, delivery_line2, delivery_postcode, delivery_city, delivery_country,
        carrier, note, billing_company, billing_region, billing_phone, delivery_company, delivery_region,
        delivery_phone, vat_disagreement)
    SELECT number,
           kind, 'web', shop_order_id, customer_id, order_date,
           CASE WHEN kind = 'quote' THEN 'quote' WHEN awaiting THEN 'awaiting_payment' ELSE 'confirmed' END,
           coalesce(currency, 'EUR'),
           coalesce(shipping_excl_vat, 0), coalesce(shipping_vat_rate, 20), coalesce(total_excl_vat, 0),
           coalesce(taxes_total, 0), coalesce(total_incl_vat, 0),
           b_name, b1, b2, bp, bc, CASE WHEN length(bco) = 2 THEN bco END,
           coalesce(d_name, b_name), coalesce(d1, b1), CASE WHEN d1 IS NULL THEN b2 ELSE d2 END,
           coalesce(dp, bp), coalesce(dc, bc), CASE WHEN length(coalesce(dco, bco)) = 2 THEN coalesce(dco, bco) END,
           shipping_method,
           nullif(concat_ws(' / ', note, CASE WHEN discount_code IS NOT NULL THEN 'code ' || discount_code END), ''),
           bcomp, breg, coalesce(bph, phone),
           CASE WHEN d1 IS NULL THEN bcomp ELSE dcomp END, CASE WHEN d1 IS NULL THEN breg ELSE dreg END,
           CASE WHEN d1 IS NULL THEN coalesce(bph, phone) ELSE dph END, vat_disagreement
      FROM src
    ON CONFLICT (shop_order_id) DO NOTHING
    RETURNING id, shop_order_id, kind, status
), ledger AS (
    INSERT INTO passerelle.order_ledger (shop_order_id, order_id, kind, file_id)
    SELECT shop_order_id, id, kind, %(file_id)s FROM ins
    ON CONFLICT DO NOTHING
)
INSERT INTO s_new (id, shop_order_id, kind, status) SELECT id, shop_order_id, kind, status FROM ins
""".format(key=_KEY.format("s", "o"), **_EMAIL)

# The lines come staged with their article, variant, label, rate and number (staged_lines).
_LINES = """
INSERT INTO erp.sales_order_line (order_id, line_number, article_id, variant_id, label, quantity,
    unit_price_excl_vat, discount_excl_vat, vat_rate)
SELECT n.id, l.line_number, l.article_id, l.variant_id, l.label, l.quantity,
       coalesce(l.unit_price_excl_vat, l.unit_price_incl_vat / (1 + l.vat_rate / 100)),
       coalesce(l.discount_excl_vat, l.discount_incl_vat / (1 + l.vat_rate / 100), 0), l.vat_rate
  FROM s_new n JOIN s_line l ON l.shop_order_id = n.shop_order_id
"""

_PAYMENTS = """
INSERT INTO erp.payment (order_id, method, amount, transaction_id, paid, paid_at)
SELECT DISTINCT ON (n.id) n.id, coalesce(p.method, 'unknown'), p.amount, p.transaction_id, coalesce(p.paid, false),
       p.paid_at
  FROM s_new n JOIN s_payment p ON p.shop_order_id = n.shop_order_id
 ORDER BY n.id, p.line
ON CONFLICT DO NOTHING
"""

# A quote the shop later says is paid becomes an order (its lines are the quote's); its payment
# is the file's: an unpaid payment row the quote had is completed, else one is written.
_QUOTES_CONFIRMED = """
CREATE TEMP TABLE s_converted ON COMMIT DROP AS
WITH upd AS (
    UPDATE erp.sales_order o SET kind = 'order', status = 'confirmed'
      FROM s_order s WHERE s.kind = 'order' AND NOT s.awaiting AND o.shop_order_id = s.shop_order_id
       AND o.kind = 'quote' AND o.status = 'quote'
    RETURNING o.id, o.shop_order_id
)
SELECT * FROM upd
"""

_CONVERTED_PAYMENTS_UPDATE = """
WITH p AS (
    SELECT DISTINCT ON (n.id) n.id AS order_id, p.method, p.amount, p.transaction_id, p.paid, p.paid_at
      FROM s_converted n JOIN s_payment p ON p.shop_order_id = n.shop_order_id
     WHERE p.amount IS NOT NULL
     ORDER BY n.id, p.line
), target AS (
    SELECT DISTINCT ON (e.order_id) e.id, e.order_id FROM erp.payment e JOIN p ON p.order_id = e.order_id
     WHERE NOT e.paid ORDER BY e.order_id, e.id
)
UPDATE erp.payment e SET method = coalesce(p.method, e.method), amount = p.amount,
       transaction_id = coalesce(p.transaction_id, e.transaction_id), paid = coalesce(p.paid, e.paid),
       paid_at = coalesce(p.paid_at, e.paid_at)
  FROM target t JOIN p ON p.order_id = t.order_id
 WHERE e.id = t.id
"""

_CONVERTED_PAYMENTS_INSERT = """
INSERT INTO erp.payment (order_id, method, amount, transaction_id, paid, paid_at)
SELECT DISTINCT ON (n.id) n.id, coalesce(p.method, 'unknown'), p.amount, p.transaction_id, coalesce(p.paid, false),
       p.paid_at
  FROM s_converted n JOIN s_payment p ON p.shop_order_id = n.shop_order_id
 WHERE p.amount IS NOT NULL AND NOT EXISTS (SELECT 1 FROM erp.payment e WHERE e.order_id = n.id)
 ORDER BY n.id, p.line
ON CONFLICT DO NOTHING
"""


# Payments seen later: an order already in the back office (not created nor confirmed from a quote by
# this file) that the file now puts in the ``integrate`` group. Its payment, when the file says it
# is paid and the back office has no paid payment for it yet, completes the first unpaid payment
# row (else one is written); an order ``awaiting_payment`` becomes ``confirmed``. Both only change
# what is not done yet: the same news in another file changes nothing (exactly once).
_LATE = """
CREATE TEMP TABLE s_late ON COMMIT DROP AS
SELECT DISTINCT ON (o.id) o.id AS order_id, p.method, p.amount, p.transaction_id, coalesce(p.paid, false) AS paid,
       p.paid_at
  FROM s_order s JOIN erp.sales_order o ON o.shop_order_id = s.shop_order_id AND o.kind = 'order'
  LEFT JOIN s_payment p ON p.shop_order_id = s.shop_order_id
 WHERE s.kind = 'order' AND NOT s.awaiting
   AND NOT EXISTS (SELECT 1 FROM s_new n WHERE n.id = o.id)
   AND NOT EXISTS (SELECT 1 FROM s_converted c WHERE c.id = o.id)
 ORDER BY o.id, p.line
"""

_LATE_PAYMENTS_UPDATE = """
WITH target AS (
    SELECT DISTINCT ON (e.order_id) e.id, e.order_id FROM erp.payment e JOIN s_late l ON l.order_id = e.order_id
     WHERE l.paid AND NOT e.paid
       AND NOT EXISTS (SELECT 1 FROM erp.payment x WHERE x.order_id = e.order_id AND x.paid)
     ORDER BY e.order_id, e.id
)
UPDATE erp.payment e SET method = coalesce(nullif(l.method, ''), e.method), amount = coalesce(l.amount, e.amount),
       transaction_id = coalesce(l.transaction_id, e.transaction_id), paid = true,
       paid_at = coalesce(l.paid_at, e.paid_at)
  FROM target t JOIN s_late l ON l.order_id = t.order_id
 WHERE e.id = t.id
"""

_LATE_PAYMENTS_INSERT = """
INSERT INTO erp.payment (order_id, method, amount, transaction_id, paid, paid_at)
SELECT l.order_id, coalesce(nullif(l.method, ''), 'unknown'), l.amount, l.transaction_id, true, l.paid_at
  FROM s_late l
 WHERE l.paid AND l.amount IS NOT NULL AND NOT EXISTS (SELECT 1 FROM erp.payment e WHERE e.order_id = l.order_id)
ON CONFLICT DO NOTHING
"""

_LATE_CONFIRMED = """
UPDATE erp.sales_order o SET status = 'confirmed'
  FROM s_late l WHERE o.id = l.order_id AND o.status = 'awaiting_payment'
"""


def insert_orders(conn: psycopg.Connection, file_id: int, walk_in_id: int | None = None) -> dict[str, int]:
    """Orders, lines and payments of the staged orders not yet in the back office; an order
    marked ``walk_in`` (no e-mail, no customer id) goes to the customer ``walk_in_id``, one marked
    ``awaiting`` is created in the status ``awaiting_payment``. Quotes the file says are paid
    become orders; orders already integrated get the payment the file now reports, once."""
    conn.execute(_ORDERS, {"walk_in": walk_in_id, "file_id": file_id})
    staged, orders, quotes, awaiting = conn.execute(
        "SELECT (SELECT count(*) FROM s_order), count(*) FILTER (WHERE kind = 'order'), "
        "count(*) FILTER (WHERE kind = 'quote'), count(*) FILTER (WHERE status = 'awaiting_payment') FROM s_new"
    ).fetchone()
    lines = conn.execute(_LINES).rowcount
    payments = conn.execute(_PAYMENTS).rowcount
    converted = completed = paid_later = confirmed_later = 0
    if staged > orders + quotes:  # some were in the back office already: quotes now paid, late payments?
        conn.execute(_QUOTES_CONFIRMED)
        converted = conn.execute("SELECT count(*) FROM s_converted").fetchone()[0]
        completed = conn.execute(_CONVERTED_PAYMENTS_UPDATE).rowcount
        payments += conn.execute(_CONVERTED_PAYMENTS_INSERT).rowcount
        conn.execute(_LATE)
        paid_later = max(conn.execute(_LATE_PAYMENTS_UPDATE).rowcount, 0)
        paid_later += conn.execute(_LATE_PAYMENTS_INSERT).rowcount
        confirmed_later = conn.execute(_LATE_CONFIRMED).rowcount
        conn.execute("DROP TABLE s_converted, s_late")
    # A confirmed quote is counted once: as confirmed, not also as already integrated.
    return {
        "orders_created": orders,
        "quotes_created": quotes,
        "quotes_confirmed": converted,
        "orders_already_integrated": staged - orders - quotes - converted,
        "lines_created": lines,
        "payments_created": payments,
        "payments_completed": max(completed, 0),
        "orders_awaiting_payment": awaiting,
        "payments_seen_later": paid_later,
        "orders_confirmed_by_payment": confirmed_later,
    }


def cancel_orders(
    conn: psycopg.Connection, file_id: int, name: str, *, quarantine: bool, staged: int | None = None
) -> dict[str, int]:
    """Cancel integrated orders the shop cancelled; an order already shipped or invoiced is not
    changed: the cancellation goes to the quarantine for the staff to handle. ``staged``: the
    cancellations staged, when the caller knows it (none: no statement is sent)."""
    if staged == 0:
        return {"orders_cancelled": 0, "cancels_too_late": 0, "cancels_not_integrated": 0}
    # The staged ids go to the orders' unique index as one array (or one probe per cancellation): the
    # planner, which does not know the staging tables' size, cannot choose to read every order.
    cancelled = conn.execute(
        "UPDATE erp.sales_order o SET status = 'cancelled' "
        "WHERE o.shop_order_id = ANY (ARRAY(SELECT shop_order_id FROM s_cancel)) "
        "AND o.status IN ('quote', 'awaiting_payment', 'confirmed', 'prepared')"
    ).rowcount
    staged_status = conn.execute(
        "SELECT s.line, s.shop_order_id, s.raw, "
        "(SELECT o.status FROM erp.sales_order o WHERE o.shop_order_id = s.shop_order_id) FROM s_cancel s"
    ).fetchall()
    late = [row for row in staged_status if row[3] in ("shipped", "invoiced")]
    unknown = sum(row[3] is None for row in staged_status)
    if late and quarantine:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO passerelle.quarantine (file_id, file, line, field, value, reason, raw, shop_order_id) "
                "VALUES (%s, %s, %s, 'status', 'cancelled', %s, %s, %s)",
                [
                    (file_id, name, line, f"order {sid} is already {status}: cancel it by hand", raw, sid)
                    for line, sid, raw, status in late
                ],
            )
    return {"orders_cancelled": cancelled, "cancels_too_late": len(late), "cancels_not_integrated": unknown}


# A refund in the shop never changes the order: it asks the back office for a credit note. The shop
# states the refunded total so far (Shopify's ``Refunded Amount``, the generic ``refunded_amount``;
# a ``refunded`` status without amount: the order's total); what it adds to the requests already
# made for the order is requested. The same file again, or another one saying the same, asks for
# nothing more; a second partial refund asks for the difference.
_CREDIT_NOTES = """
WITH r AS (
    SELECT DISTINCT ON (shop_order_id) shop_order_id, status, shop_status,
           CASE WHEN coalesce(refunded_amount, 0) > 0 THEN refunded_amount
                WHEN status = 'refunded' THEN total_incl_vat END AS refunded
      FROM s_refund ORDER BY shop_order_id, line
), due AS (
    SELECT o.id, o.currency, o.total_incl_vat, r.status, r.shop_status, round(r.refunded, 2) AS refunded,
           round(r.refunded - coalesce((SELECT sum(q.amount) FROM erp.credit_note_request q WHERE q.order_id = o.id),
                                       0), 2) AS amount
      FROM r JOIN erp.sales_order o ON o.shop_order_id = r.shop_order_id AND o.kind = 'order'
     WHERE r.refunded > 0
)
INSERT INTO erp.credit_note_request (order_id, amount, refunded_total, reason, shop_status, source_file)
SELECT id, amount, refunded,
       CASE WHEN refunded >= total_incl_vat - 0.005 THEN 'refunded in the shop' ELSE 'partly refunded in the shop'
       END || format(': %%s %%s refunded in all', to_char(refunded, 'FM999999990.00'), currency)
       || CASE WHEN amount < refunded
               THEN format(', %%s already requested', to_char(refunded - amount, 'FM999999990.00')) ELSE '' END,
       nullif(shop_status, ''), %(file)s
  FROM due WHERE amount > 0.005
ON CONFLICT (order_id, refunded_total) DO NOTHING
"""


def request_credit_notes(conn: psycopg.Connection, name: str) -> dict[str, int]:
    """Credit note requests (``erp.credit_note_request``) for the refunds the staged file reports
    on orders in the back office; the order itself is left as it is."""
    done = conn.execute(_CREDIT_NOTES, {"file": name}).rowcount
    return {"credit_notes_requested": done}
