"""New-only sends, and the ledger of the customer notices Passerelle mailed itself.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

* ``passerelle.batch.mode`` also takes ``new``: a send of the rows the shop never confirmed
  (new articles) beside ``delta`` and ``full`` (:mod:`passerelle.core.differ`).
* ``passerelle.customer_notice``: one row per notice mailed to a customer (a status of an order,
  an invoice available), written in the same transaction as the send is recorded, so that a
  rerun, a retry or a backfill never mails the same notice twice (:mod:`passerelle.core.notices`).
"""

from __future__ import annotations

from passerelle.migrate import forward_only, run_statements

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STATEMENTS = (
    "ALTER TABLE passerelle.batch DROP CONSTRAINT IF EXISTS batch_mode_check",
    "ALTER TABLE passerelle.batch ADD CONSTRAINT batch_mode_check CHECK (mode IN ('full', 'delta', 'new'))",
    """CREATE TABLE passerelle.customer_notice (
    key           text PRIMARY KEY,          -- the status row's key, or 'invoice:<number>'
    kind          text NOT NULL CHECK (kind IN ('status', 'invoice')),
    order_number  text NOT NULL,
    status        text NOT NULL,             -- the order's status, or 'invoice_available'
    recipient     text NOT NULL,
    language      text NOT NULL,
    subject       text NOT NULL,
    batch_id      bigint,                    -- the order_status batch that carried the change
    sent_at       timestamptz NOT NULL DEFAULT now()
)""",
)


def upgrade() -> None:
    run_statements(STATEMENTS)


downgrade = forward_only
