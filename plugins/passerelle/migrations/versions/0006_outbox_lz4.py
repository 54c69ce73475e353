"""The outbox's file contents compressed with lz4 instead of pglz.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

A full catalog send stores every file it writes in ``passerelle.outbox_file.content`` (at
1,000,000 articles, 18 files of about 20 MB). PostgreSQL compresses each content on insert, with
pglz by default: about 1.5 s per 20 MB file on the benchmark's machine, where lz4 takes 0.3 s
and stores about as little (bench/catalog_diff.py's full send; measured with the article files
of the demo catalog: 3.9 MB with pglz, 3.7 MB with lz4, for 20 MB). The contents already stored
keep their compression (PostgreSQL reads both); new ones use lz4.

lz4 needs a PostgreSQL 14 or later built with it (Debian's, Ubuntu's and the official images
are): on a server without it, the column is left as it is (pglz) and the migration says so.
"""

from __future__ import annotations

import logging

from alembic import op

from passerelle.migrate import forward_only

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)


def upgrade() -> None:
    bind = op.get_bind()
    nested = bind.begin_nested()
    try:
        bind.exec_driver_sql("ALTER TABLE passerelle.outbox_file ALTER COLUMN content SET COMPRESSION lz4")
    except Exception as exc:  # the server was built without lz4, or predates PostgreSQL 14
        nested.rollback()
        log.warning("outbox_file.content keeps pglz compression: %s", str(exc).splitlines()[0])
    else:
        nested.commit()


downgrade = forward_only
