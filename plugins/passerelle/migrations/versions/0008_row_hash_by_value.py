"""The snapshot's row hashes by value: ``hash_record_extended`` instead of md5 of the row's text.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

The differ hashed each selected view row as ``md5(row::text)``: every column turned into text,
then digested, in one server process. It now hashes the values with their types' own hash
functions (``passerelle.core.differ.row_hash``), about a third of the cost (the pass over the
article view at 1,000,000 articles: 16 s instead of 22 s, bench/README.md).

A snapshot written before holds md5 hashes, which no new hash equals: every row would be sent
again by the next delta. This revision converts what it can prove unchanged: a snapshot row whose
md5 is the md5 of its view's current row gets that row's new hash. Any other row (it changed since
it was sent, its view reads run settings it was sent with, e.g. a safety stock, or the row was
built as WooCommerce's and Shopify's articles with their variants' JSON, now jsonb) keeps its md5
and is sent again once, by the next delta, as a changed row: the shop gets it again, nothing is
missed. Entities whose view is gone, or cannot be hashed, are left as they are in the same way.
"""

from __future__ import annotations

from passerelle.migrate import forward_only, run_statements

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: (no percent sign: the statement goes through a driver that reads them as placeholders)
STATEMENTS = (
    """DO $$
DECLARE
    e text;
BEGIN
    FOR e IN SELECT DISTINCT entity FROM passerelle.snapshot LOOP
        CONTINUE WHEN to_regclass('passerelle_src.' || quote_ident(e)) IS NULL;
        BEGIN
            EXECUTE 'UPDATE passerelle.snapshot s SET hash = hash_record_extended(v, 0)::text '
                    'FROM passerelle_src.' || quote_ident(e) || ' v WHERE s.entity = ' || quote_literal(e)
                    || ' AND s.key = v.key AND s.hash = md5(v::text)';
        EXCEPTION WHEN undefined_function THEN
            NULL;  -- a view with a column PostgreSQL cannot hash: the differ names it at the next send
        END;
    END LOOP;
END $$""",
)


def upgrade() -> None:
    run_statements(STATEMENTS)


downgrade = forward_only
