"""The snapshot's row hashes by value: ``hash_record_extended`` instead of md5 of the row's text.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

The differ hashed each selected view row as ``md5(row::text)``: every column turned into text,
then digested, in one server process. It now hashes the values with their types' own hash
functions (``passerelle.core.differ.row_hash``), about a third of the cost (the pass over the
article view at 1,000,000 articles: 16 s instead of 22 s, bench/README.md). PostgreSQL 14 or
later (``hash_record_extended``).

A snapshot written before holds md5 hashes, which no new hash equals: every row would be sent
again by the next delta. This revision converts what it can prove unchanged: a snapshot row whose
md5 is the md5 of its view's current row gets that row's new hash; the articles are tried twice,
without and with their variants' JSON (PrestaShop and generic; WooCommerce and Shopify). Any other
row (it changed since it was sent, or its view reads a run setting it was sent with, e.g. a safety
stock) keeps its md5 and is sent again once, by the next delta, as a changed row: the shop gets
it again, nothing is missed. Entities whose view is gone are left as they are in the same way.
"""

from __future__ import annotations

from passerelle.migrate import MigrationError, forward_only

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: Entities read from a view of another name (passerelle.core.exchange: the stock file's two levels).
SOURCES = {"variant_stock": "stock"}
#: Run settings under which an entity's rows may have been sent (the article's variants' JSON).
SETTINGS = {"article": ({}, {"passerelle.article_variants": "on"})}


def convert(conn) -> None:
    """The conversion on a psycopg connection, inside the caller's transaction."""
    from passerelle.core.differ import hashed_columns, row_hash

    if conn.info.server_version < 140000:
        raise MigrationError(
            f"Passerelle needs PostgreSQL 14 or later (hash_record_extended); this server is {conn.info.server_version}"
        )
    for (entity,) in conn.execute("SELECT DISTINCT entity FROM passerelle.snapshot ORDER BY 1").fetchall():
        view = conn.execute("SELECT to_regclass(%s)::text", (f"passerelle_src.{SOURCES.get(entity, entity)}",))
        view = view.fetchone()[0]
        if view is None:
            continue
        new = row_hash("v", hashed_columns(conn, view))
        for settings in SETTINGS.get(entity, ({},)):
            for name, value in settings.items():
                conn.execute("SELECT set_config(%s, %s, true)", (name, value))
            conn.execute(
                f"UPDATE passerelle.snapshot s SET hash = {new} FROM {view} v "
                "WHERE s.entity = %s AND s.key = v.key AND s.hash = md5(v::text)",
                (entity,),
            )
            for name in settings:
                conn.execute("SELECT set_config(%s, '', true)", (name,))


def upgrade() -> None:
    from alembic import op

    convert(op.get_bind().connection.driver_connection)


downgrade = forward_only
