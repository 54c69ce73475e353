"""Run notes kept with the run summaries, and what the last reorder proposals were computed from.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

* ``passerelle.run_summary.note``: the run's note ("sent 2 909 rows in 5 files; 3 rows
  quarantined, top reasons: ..."), written by the task that ends the run. The Passerelle view
  shows it on its runs page for every run, whether or not the note could also be written to the
  DAG run through Airflow's API (``alerts.api_conn_id``).
* ``passerelle.reorder_basis``: one row, the fingerprint of what the last reorder proposals were
  computed from (web stock, open web order quantities, each article's minimum and reorder
  quantity) and when. ``propose_reorders`` recomputes nothing while it is unchanged.
"""

from __future__ import annotations

from passerelle.migrate import forward_only, run_statements

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

STATEMENTS = (
    "ALTER TABLE passerelle.run_summary ADD COLUMN note text",
    """CREATE TABLE passerelle.reorder_basis (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    fingerprint  text NOT NULL,
    proposals    integer NOT NULL DEFAULT 0,
    computed_at  timestamptz NOT NULL DEFAULT now()
)""",
)


def upgrade() -> None:
    run_statements(STATEMENTS)


downgrade = forward_only
