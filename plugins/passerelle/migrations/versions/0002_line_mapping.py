"""passerelle.line_mapping: the back-office article of a shop line that has no SKU.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

A Shopify line without a SKU (a product made in the shop, a custom item) that Passerelle cannot
match against what it published is quarantined with its order; the staff says once which
article it is (``shop_label`` -> ``reference``), and the replay and every later file use it.
``shop_label`` is the line's label as the shop wrote it, in lower case with its spaces
collapsed (``passerelle.core.integrate.rules.label_key``).
"""

from __future__ import annotations

from passerelle.migrate import forward_only, run_statements

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SQL = """
CREATE TABLE passerelle.line_mapping (
    shop_label  text PRIMARY KEY,
    reference   text NOT NULL,
    note        text,
    created_at  timestamptz NOT NULL DEFAULT now()
)
"""


def upgrade() -> None:
    run_statements([SQL])


downgrade = forward_only
