"""A batch's rows checked against their batch once per statement, not once per row.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

``passerelle.batch_row`` referenced ``passerelle.batch`` with a foreign key, which PostgreSQL
checks with one lookup per inserted row: a full catalog send records every selected row, and at
1,000,000 articles those 900,000 lookups took 4.5 s of the 9 s the insert took
(bench/catalog_diff.py's database; 3.8 s without any check, 4.3 s with the checks below).

The same two rules now hold by statement-level triggers, each one set-wise statement over the
rows the statement touched (its transition table):

* ``batch_row_of_a_batch`` (after INSERT, and after UPDATE): every row's ``batch_id`` names a
  batch, else the statement fails with ``foreign_key_violation``, as the key did;
* ``batch_rows_go_with_it`` (after DELETE on ``passerelle.batch``): the rows of the deleted
  batches are deleted too, as ``ON DELETE CASCADE`` did.

What the key also did and these do not: lock the batch while its rows are written. Rows are only
written by the transaction that creates their batch (``passerelle.core.differ.build_batch``), so no
other transaction can delete that batch meanwhile.
"""

from __future__ import annotations

from passerelle.migrate import forward_only, run_statements

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

STATEMENTS = (
    "ALTER TABLE passerelle.batch_row DROP CONSTRAINT IF EXISTS batch_row_batch_id_fkey",
    """CREATE FUNCTION passerelle.batch_row_of_a_batch() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    orphan bigint;
BEGIN
    SELECT r.batch_id INTO orphan FROM written r
    WHERE NOT EXISTS (SELECT 1 FROM passerelle.batch b WHERE b.id = r.batch_id) LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'passerelle.batch_row: batch ' || orphan || ' does not exist',
            TABLE = 'batch_row', SCHEMA = 'passerelle';
    END IF;
    RETURN NULL;
END $$""",
    "CREATE TRIGGER batch_row_of_a_batch AFTER INSERT ON passerelle.batch_row "
    "REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION passerelle.batch_row_of_a_batch()",
    "CREATE TRIGGER batch_row_moved_to_a_batch AFTER UPDATE ON passerelle.batch_row "
    "REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION passerelle.batch_row_of_a_batch()",
    """CREATE FUNCTION passerelle.batch_rows_go_with_it() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM passerelle.batch_row r USING gone g WHERE r.batch_id = g.id;
    RETURN NULL;
END $$""",
    "CREATE TRIGGER batch_rows_go_with_it AFTER DELETE ON passerelle.batch "
    "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION passerelle.batch_rows_go_with_it()",
)


def upgrade() -> None:
    run_statements(STATEMENTS)


downgrade = forward_only
