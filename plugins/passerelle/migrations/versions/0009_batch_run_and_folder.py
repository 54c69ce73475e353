"""The DAG run that built each batch, and the folder its manifest went up to.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

* ``passerelle.batch.dag_run_id``: the Airflow run whose build task made the batch (NULL for a
  batch built before this revision, or outside Airflow). A batch published by a run that then
  failed before its confirm is confirmed by the flow's next build
  (``passerelle.core.differ.build_batch``); that build records the run summary the failed run
  could not write, under that run's id, so that the runs page and the daily report count the rows
  it sent, and a later rerun of that run, which sends nothing, keeps it.
* ``passerelle.batch.publish_folder``: the folder on the shop's server whose ``manifest.json`` the
  publish task was about to upload, written (with the manifest) just before that upload. A batch
  with a folder but no publication recorded (the database lost between the upload and its
  record) may be on the shop: the flow's next run takes it up, rather than sending its rows again
  in a new batch, and its publish finishes it in that folder
  (``passerelle.core.batches.unrecorded_publication``).
"""

from __future__ import annotations

from passerelle.migrate import forward_only, run_statements

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

STATEMENTS = (
    "ALTER TABLE passerelle.batch ADD COLUMN dag_run_id text",
    "ALTER TABLE passerelle.batch ADD COLUMN publish_folder text",
)


def upgrade() -> None:
    run_statements(STATEMENTS)


downgrade = forward_only
