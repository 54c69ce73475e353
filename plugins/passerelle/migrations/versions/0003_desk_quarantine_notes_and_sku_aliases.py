"""The operator's desk: a note on a dismissed quarantined row, and shop labels mapped to references.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

* ``passerelle.quarantine`` gets ``note``, ``resolved_at`` and ``resolved_by``: a row dismissed
  from the Passerelle view (status ``resolved``, already allowed by 0001) says who dismissed it,
  when and why, so the dismissal can be read back later instead of being a silent delete.
* ``passerelle.sku_alias``: a shop's article label (the SKU it sends in its order files) mapped
  to a back-office article or variant reference. The integration reads it before checking SKUs,
  so a file, and a replay of quarantined rows, with that label goes through.
"""

from __future__ import annotations

from passerelle.migrate import forward_only, run_statements

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STATEMENTS = (
    "ALTER TABLE passerelle.quarantine ADD COLUMN note text",
    "ALTER TABLE passerelle.quarantine ADD COLUMN resolved_at timestamptz",
    "ALTER TABLE passerelle.quarantine ADD COLUMN resolved_by text",
    """CREATE TABLE passerelle.sku_alias (
    shop_sku    text PRIMARY KEY,
    reference   text NOT NULL,
    note        text,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now()
)""",
)


def upgrade() -> None:
    run_statements(STATEMENTS)


downgrade = forward_only
