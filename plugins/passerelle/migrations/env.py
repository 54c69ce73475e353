"""Alembic's environment for Passerelle's state schema, run by ``passerelle.migrate``.

There is no alembic.ini: ``passerelle.migrate`` builds the configuration and hands over the
connection (``config.attributes["connection"]``), so the same code runs on a DSN, on an Airflow
connection and inside the demo seeding. Alembic's version table lives in the ``passerelle``
schema itself (``passerelle.alembic_version``): the back office's own schemas and Airflow's
metadata database (which has its own ``alembic_version``) are never touched.
"""

from __future__ import annotations

from alembic import context

from passerelle.migrate import SCHEMA, VERSION_TABLE

if context.is_offline_mode():
    raise SystemExit("passerelle.migrate runs online only (it stamps installations made before migrations)")

connection = context.config.attributes["connection"]
# The version table is created before the first revision runs, so its schema must exist first.
connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
context.configure(connection=connection, version_table=VERSION_TABLE, version_table_schema=SCHEMA)
with context.begin_transaction():
    context.run_migrations()
