"""Versioned migrations of Passerelle's state schema (``passerelle``), with Alembic.

    python -m passerelle.migrate                               # upgrade, through the Airflow connection passerelle_erp
    python -m passerelle.migrate --dsn postgresql://... upgrade
    python -m passerelle.migrate --conn-id passerelle_erp current
    python -m passerelle.migrate views                         # the views (passerelle_src) from include/sql/views
    python -m passerelle.migrate history
    python -m passerelle.migrate revision -m "add a column to passerelle.batch"   # a developer's new revision

The revisions are in ``passerelle/migrations/versions`` (shipped with the package, as Airflow
ships its own). Alembic's version table is ``passerelle.alembic_version``: the back office's
schemas and Airflow's metadata database are never touched (``views`` rebuilds only the schema
``passerelle_src``, the views Passerelle reads the back office through). An installation made before
migrations existed (the tables of revision 0001, no version table) is recognised by its tables'
columns and stamped at 0001, then upgraded: nothing is recreated, no row is lost. Runs take a
PostgreSQL advisory lock, so two processes upgrading at once (the compose stack's init and the
demo seeding) run one after the other.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SCHEMA = "passerelle"
VERSION_TABLE = "alembic_version"
#: The revision that holds the schema as it was before migrations.
BASELINE = "0001"
#: pg_advisory_lock key of migration runs (any constant; this one spells "passerel").
LOCK_KEY = 0x7061737365726C
DEFAULT_CONN_ID = "passerelle_erp"


def run_statements(statements) -> None:
    """A revision's ``upgrade``: its SQL statements, in order, on the migration's connection."""
    from alembic import op

    bind = op.get_bind()
    for statement in statements:
        bind.exec_driver_sql(statement)


def forward_only() -> None:
    """Every revision's ``downgrade``: the state schema is never taken back by a migration."""
    raise NotImplementedError("Passerelle's state schema only moves forward: restore a backup to go back")


class MigrationError(RuntimeError):
    """The schema cannot be migrated as it is; the message says what to do."""


@dataclass
class Outcome:
    """What an upgrade did: revisions before and after, and whether a legacy install was stamped."""

    before: str | None
    after: str | None
    stamped: bool = False
    created: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        said = [f"passerelle schema: {self.before or 'empty'} -> {self.after}"]
        if self.stamped:
            said[0] = f"passerelle schema: no version table -> {self.after}"
            said.append(f"(installation made before migrations: stamped at {BASELINE}, nothing recreated)")
        if self.created:
            said.append(f"(tables added to an installation made before migrations: {', '.join(self.created)})")
        if self.before == self.after and not self.stamped:
            said.append("(already up to date)")
        return " ".join(said)


def alembic_config(connection=None, stdout=None):
    """Alembic's configuration, built in code (no alembic.ini); ``connection`` a SQLAlchemy one."""
    from alembic.config import Config

    cfg = Config(stdout=stdout or sys.stdout)
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def script_directory():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    return script_directory().get_current_head()


def baseline_tables() -> dict[str, tuple[str, ...]]:
    """The tables and columns of revision 0001 (``TABLES`` in its file)."""
    return script_directory().get_revision(BASELINE).module.TABLES


def _sqlalchemy(conn: psycopg.Connection):
    """A SQLAlchemy engine over the caller's own psycopg connection (one connection, whatever its auth)."""
    import sqlalchemy as sa
    from sqlalchemy.pool import StaticPool

    return sa.create_engine("postgresql+psycopg://", creator=lambda: conn, poolclass=StaticPool)


def _current(sa_conn) -> str | None:
    from alembic.runtime.migration import MigrationContext

    ctx = MigrationContext.configure(sa_conn, opts={"version_table": VERSION_TABLE, "version_table_schema": SCHEMA})
    return ctx.get_current_revision()


def _columns(sa_conn) -> dict[str, set[str]]:
    import sqlalchemy as sa

    rows = sa_conn.execute(
        sa.text(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE c.table_schema = :schema AND t.table_type = 'BASE TABLE' AND c.table_name <> :version"
        ),
        {"schema": SCHEMA, "version": VERSION_TABLE},
    )
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(table, set()).add(column)
    return out


def _legacy_plan(sa_conn) -> tuple[bool, list[str]]:
    """For a schema without version table: (is it an installation made before migrations, tables it lacks).

    Raises MigrationError when a table of revision 0001 is there without all its columns: such a
    schema is not one any release made, and migrating it blindly could lose data.
    """
    present = _columns(sa_conn)
    expected = baseline_tables()
    known = set(present) & set(expected)
    if not known:
        return False, []
    problems = [
        f"{SCHEMA}.{t}: missing column(s) {', '.join(sorted(set(expected[t]) - present[t]))}"
        for t in sorted(known)
        if set(expected[t]) - present[t]
    ]
    if problems:
        raise MigrationError(
            f"schema {SCHEMA} has tables but no {SCHEMA}.{VERSION_TABLE}, and does not match revision {BASELINE} "
            f"(plugins/passerelle/migrations/versions/0001_state_schema.py): "
            + "; ".join(problems)
            + ". Add the columns by hand as revision 0001 defines them, then run `python -m passerelle.migrate` again."
        )
    return True, sorted(set(expected) - known)


def upgrade(conn: psycopg.Connection, revision: str = "head", *, out=None) -> Outcome:
    """Bring the ``passerelle`` schema to ``revision`` on ``conn`` (committed; pending work is committed too).

    Idempotent: at the revision already, nothing runs. An installation made before migrations
    is stamped at 0001 first (its missing 0001 tables, if any, are created by 0001's own
    ``CREATE TABLE IF NOT EXISTS`` instead).
    """
    import sqlalchemy as sa
    from alembic import command

    autocommit = conn.autocommit
    conn.commit()
    conn.autocommit = False
    engine = _sqlalchemy(conn)
    try:
        with engine.connect() as sa_conn:
            sa_conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
            sa_conn.commit()
            try:
                before = _current(sa_conn)
                stamped, created = False, []
                if before is None:
                    legacy, missing = _legacy_plan(sa_conn)
                    if legacy and not missing:
                        command.stamp(alembic_config(sa_conn, out), BASELINE)
                        stamped = True
                    elif legacy:
                        created = missing
                sa_conn.commit()
                command.upgrade(alembic_config(sa_conn, out), revision)
                sa_conn.commit()
                after = _current(sa_conn)
                sa_conn.commit()
            finally:
                sa_conn.rollback()
                sa_conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
                sa_conn.commit()
    finally:
        conn.autocommit = autocommit
    return Outcome(before=before, after=after, stamped=stamped, created=created)


def current(conn: psycopg.Connection) -> str | None:
    """The schema's revision, or None when there is no version table (empty or made before migrations).

    Like ``upgrade``, commits the connection's pending work first (SQLAlchemy's first use of a
    connection ends its transaction)."""
    conn.commit()
    engine = _sqlalchemy(conn)
    with engine.connect() as sa_conn:
        rev = _current(sa_conn)
        sa_conn.rollback()
    return rev


def apply_views(conn: psycopg.Connection) -> list[str]:
    """Rebuild the views Passerelle reads the back office through (schema ``passerelle_src``, the
    files of include/sql/views, in order) in one transaction: a file that fails leaves the views
    as they were, and the error names it. Views hold no data, so this is safe to run again, and
    needed after each release whose views changed. Holds the migrations' advisory lock, so that
    it never runs during an upgrade. Returns the files applied."""
    from passerelle.db import sql_files

    conn.commit()
    applied = []
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))  # never during an upgrade
            for path in sql_files(["views"]):
                applied.append(f"{path.parent.name}/{path.name}")
                conn.execute(path.read_text(encoding="utf-8"))
    except (psycopg.ProgrammingError, psycopg.DataError) as exc:
        hint = (
            "; the views are written for the reference back office (include/sql/erp): rewrite them for "
            'yours (README, "Another ERP")'
            if isinstance(exc, (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn))
            else ""
        )
        where = applied[-1] if applied else "include/sql/views"
        raise MigrationError(
            f"{where}: {type(exc).__name__}: {' '.join(str(exc).split())}{hint}; the views were left as they were"
        ) from exc
    return applied


def _connect(args) -> psycopg.Connection:
    """The connection the command works on, retried for ``--wait`` seconds while the server refuses."""
    deadline = time.monotonic() + args.wait
    while True:
        try:
            if args.dsn:
                return psycopg.connect(args.dsn)
            from passerelle.db import erp_connection

            return erp_connection(args.conn_id)
        except psycopg.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m passerelle.migrate", description=__doc__.split("\n")[0])
    where = p.add_mutually_exclusive_group()
    where.add_argument("--dsn", help="a PostgreSQL DSN (postgresql://user:password@host:port/database)")
    where.add_argument(
        "--conn-id",
        default=DEFAULT_CONN_ID,
        help=f"an Airflow connection id, read through the Postgres provider (default {DEFAULT_CONN_ID})",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="retry connecting this long while the server refuses (a starting container)",
    )
    p.add_argument(
        "command", nargs="?", default="upgrade", choices=("upgrade", "views", "current", "history", "revision")
    )
    p.add_argument("--to", default="head", metavar="REVISION", help="upgrade: the target revision (default head)")
    p.add_argument("-m", "--message", help="revision: what the new revision does")
    args = p.parse_args(argv)

    if args.command == "history":
        from alembic import command

        command.history(alembic_config(), verbose=False)
        return 0
    if args.command == "revision":
        if not args.message:
            p.error("revision needs -m/--message")
        from alembic import command

        number = max(int(r.revision) for r in script_directory().walk_revisions()) + 1
        command.revision(alembic_config(), message=args.message, rev_id=f"{number:04d}")
        return 0
    try:
        with _connect(args) as conn:
            if args.command == "views":
                applied = apply_views(conn)
                print(f"passerelle_src: views rebuilt from {', '.join(applied)}")
                return 0
            if args.command == "current":
                rev = current(conn)
                print(f"passerelle schema: {rev or 'no version table'} (head {head()})")
                return 0
            print(upgrade(conn, args.to, out=io.StringIO()))
    except MigrationError as exc:
        print(f"passerelle.migrate: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
