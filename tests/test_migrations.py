"""Migrations of the state schema (passerelle.migrate), against a real PostgreSQL.

A legacy installation is built with the frozen copy of the state SQL that releases made before
migrations (tests/fixtures/state_schema_before_migrations.sql), filled with a row in every
table, and upgraded with the documented command: nothing may be recreated or lost.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from passerelle.db import apply_sql
from passerelle.migrate import BASELINE, SCHEMA, VERSION_TABLE, baseline_tables, current, head, upgrade

LEGACY_SQL = Path(__file__).parent / "fixtures" / "state_schema_before_migrations.sql"

#: A little of everything a running installation holds: a confirmed and a built batch, its rows,
#: a file in the outbox, a refused row, a run summary, an integrated inbound file, order ledger
#: rows, a customer link, a quarantined row and a photo snapshot row.
LEGACY_DATA = r"""
INSERT INTO passerelle.batch (flow, run_key, mode, status, entities, counts, manifest, published_at, confirmed_at)
VALUES ('catalog', '2026-11-30T02:00:00+01:00', 'full', 'confirmed', '{article,variant}',
        '{"article": {"created": 2, "changed": 1}}', '{"files": [{"name": "articles_1.csv"}]}',
        '2026-11-30 02:05:00+01', '2026-11-30 02:06:00+01'),
       ('prices_stock', '2026-11-30T03:00:00+01:00', 'delta', 'built', '{price,stock}', '{}', NULL, NULL, NULL);
INSERT INTO passerelle.batch_row VALUES (1, 'article', 'ART-000001', 'h1', 'Casserole 24 cm', 'C'),
                                        (1, 'article', 'ART-000002', 'h2', NULL, 'U'),
                                        (1, 'article', 'ART-000003', NULL, 'Poêle', 'D');
INSERT INTO passerelle.snapshot VALUES ('article', 'ART-000001', 'h1', 'Casserole 24 cm', 1),
                                       ('variant', 'ART-000001-M-BLEU', 'h3', NULL, 1);
INSERT INTO passerelle.outbox_file
VALUES (1, 1, 'articles_1.csv', 'article', 2, 11, 'e3b0c442', '\x7265663b6e616d650a');
INSERT INTO passerelle.outbound_reject VALUES (1, 'article', 'ART-000004', 'ean13', '1234', 'not an EAN-13');
INSERT INTO passerelle.run_summary (flow, dag_run_id, run_key, mode, counts, rejects, bytes_sent, bytes_received,
                                    started_at, finished_at)
VALUES ('catalog', 'scheduled__2026-11-30T01:00:00+00:00', '2026-11-30T02:00:00+01:00', 'full',
        '{"article": {"created": 2}}', 1, 11, 0, '2026-11-30 02:00:00+01', '2026-11-30 02:06:00+01');
INSERT INTO passerelle.inbound_file (name, size, sha256, kind, status, header, delimiter, decimal, counts,
                                     received_at, integrated_at, archived_at, archived_as)
VALUES ('orders_20261120_0900.csv', 1234, 'deadbeef', 'orders', 'archived', 'order_id;sku;qty', ';', ',',
        '{"orders": 3, "rejected": 1}', '2026-11-20 09:01:00+01', '2026-11-20 09:02:00+01',
        '2026-11-20 09:03:00+01', 'archive/orders_20261120_0900.csv');
INSERT INTO passerelle.order_ledger VALUES ('WEB-1001', 17, 'order', 1, '2026-11-20 09:02:00+01'),
                                           ('WEB-1003', 18, 'quote', 1, '2026-11-20 09:02:00+01');
INSERT INTO passerelle.customer_link VALUES ('C-9', 42, '2026-11-20 09:02:00+01');
INSERT INTO passerelle.quarantine (file_id, file, line, field, value, reason, raw, shop_order_id, created_at)
VALUES (1, 'orders_20261120_0900.csv', 4, 'sku', 'NOPE', 'unknown SKU', 'WEB-1002;NOPE;1', 'WEB-1002',
        '2026-11-20 09:02:00+01');
INSERT INTO passerelle.image_snapshot (reference, position, key, source_hash, path, stat_signature, names, settings,
                                       updated_at)
VALUES ('ART-000001', 1, 'ART-000001/1', 'sha-1', '/photos/ART-000001.jpg', '1234:5678',
        '{ART-000001-1.jpg,ART-000001-1-small.jpg}', 'fp-1', '2026-11-30 02:04:00+01');
"""


def legacy_installation(dsn: str, *, data: bool = True) -> None:
    """The back office and its views as today, and the state schema as releases before migrations made it."""
    with psycopg.connect(dsn) as conn:
        apply_sql(conn, ("erp", "views"))
        conn.execute(LEGACY_SQL.read_text(encoding="utf-8"))
        if data:
            conn.execute(LEGACY_DATA)


def migrate(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """The documented command, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "passerelle.migrate", *args],
        capture_output=True,
        text=True,
        check=check,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def baseline_rows_sql(table: str) -> str:
    """Every row of a 0001 table as JSON of 0001's columns (later revisions may add columns: the
    data a legacy installation had is what must survive), in a stable order."""
    columns = ", ".join(baseline_tables()[table])
    return f"SELECT to_jsonb(t) FROM (SELECT {columns} FROM {SCHEMA}.{table}) t ORDER BY to_jsonb(t)::text"


def rows(dsn: str) -> dict[str, list]:
    """Every row of every state table, as JSON, in a stable order."""
    with psycopg.connect(dsn) as conn:
        return {t: [r[0] for r in conn.execute(baseline_rows_sql(t))] for t in baseline_tables()}


def schema_of(dsn: str) -> dict[str, list]:
    """Tables, columns, constraints, indexes and sequences of the state schema (the version table aside)."""
    queries = {
        "columns": "SELECT table_name, column_name, ordinal_position, data_type, udt_name, is_nullable, "
        "column_default, character_maximum_length FROM information_schema.columns "
        "WHERE table_schema = %(s)s AND table_name <> %(v)s",
        "table_constraints": "SELECT table_name, constraint_name, constraint_type FROM "
        "information_schema.table_constraints WHERE table_schema = %(s)s AND table_name <> %(v)s",
        "check_constraints": "SELECT cc.constraint_name, cc.check_clause FROM information_schema.check_constraints cc "
        "JOIN information_schema.table_constraints tc USING (constraint_schema, constraint_name) "
        "WHERE cc.constraint_schema = %(s)s AND tc.table_name <> %(v)s",
        "key_columns": "SELECT table_name, constraint_name, column_name, ordinal_position FROM "
        "information_schema.key_column_usage WHERE table_schema = %(s)s AND table_name <> %(v)s",
        "definitions": "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
        "JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = %(s)s "
        "AND c.conrelid::regclass::text <> %(s)s || '.' || %(v)s",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = %(s)s "
        "AND tablename <> %(v)s",
        "sequences": "SELECT sequence_name, data_type FROM information_schema.sequences WHERE sequence_schema = %(s)s",
        "tables": "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = %(s)s "
        "AND table_name <> %(v)s",
    }
    with psycopg.connect(dsn) as conn:
        return {
            name: sorted(
                (
                    tuple(_oid_free(v) for v in row)
                    for row in conn.execute(q, {"s": SCHEMA, "v": VERSION_TABLE}).fetchall()
                ),
                key=repr,
            )
            for name, q in queries.items()
        }


def _oid_free(value):
    """PostgreSQL names NOT NULL constraints after object ids (``16384_16390_1_not_null``): not comparable
    between databases, and already covered by the columns' ``is_nullable``."""
    return "<not null>" if isinstance(value, str) and re.fullmatch(r"\d+_\d+_\d+_not_null", value) else value


def version_tables(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [
            f"{s}.{t}"
            for s, t in conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_name = %s", (VERSION_TABLE,)
            )
        ]


@pytest.fixture
def other_db(pg_server):
    """A second empty database, to compare a legacy installation with a fresh one."""
    import uuid

    from passerelle_demo.localenv import create_database, drop_database

    name = f"passerelle_e_{uuid.uuid4().hex[:10]}"
    yield create_database(pg_server, name)
    drop_database(pg_server, name)


def test_legacy_installation_upgrades_with_one_command_and_loses_nothing(empty_db):
    legacy_installation(empty_db)
    before_rows, before_schema = rows(empty_db), schema_of(empty_db)
    assert all(before_rows.values()), {t: len(r) for t, r in before_rows.items()}  # a row in every table
    assert version_tables(empty_db) == []

    done = migrate("--dsn", empty_db, "--to", BASELINE)

    assert f"stamped at {BASELINE}" in done.stdout
    assert rows(empty_db) == before_rows
    after_schema = schema_of(empty_db)
    # Nothing recreated or changed: every table, column, constraint, index and sequence is still
    # there as it was (later revisions only add).
    assert {k: [x for x in v if x not in after_schema[k]] for k, v in before_schema.items()} == {
        k: [] for k in before_schema
    }
    migrate("--dsn", empty_db)  # then the later revisions, as on any installation
    assert rows(empty_db) == before_rows
    assert version_tables(empty_db) == [f"{SCHEMA}.{VERSION_TABLE}"]  # never public, never Airflow's
    with psycopg.connect(empty_db) as conn:
        assert current(conn) == head()
        # The sequences went on where they were: nothing was recreated under the data.
        new_id = conn.execute(
            "INSERT INTO passerelle.batch (flow, run_key, mode, status, entities) "
            "VALUES ('catalog', 'next', 'delta', 'built', '{article}') RETURNING id"
        ).fetchone()[0]
        assert new_id == 3


def test_upgrade_twice_is_a_no_op_also_through_an_airflow_connection(empty_db):
    first = migrate("--dsn", empty_db)
    assert f"empty -> {head()}" in first.stdout
    with psycopg.connect(empty_db) as conn:
        conn.execute(LEGACY_DATA)
    schema, data = schema_of(empty_db), rows(empty_db)

    again = migrate(
        "--conn-id",
        "passerelle_migrate_test",
        env={"AIRFLOW_CONN_PASSERELLE_MIGRATE_TEST": empty_db.replace("postgresql://", "postgres://", 1)},
    )

    assert f"{head()} -> {head()} (already up to date)" in again.stdout
    assert (schema_of(empty_db), rows(empty_db)) == (schema, data)
    assert f"passerelle schema: {head()} (head {head()})" in migrate("--dsn", empty_db, "current").stdout


def test_fresh_database_has_exactly_the_legacy_schema(empty_db, other_db):
    legacy_installation(empty_db, data=False)
    with psycopg.connect(other_db) as conn:
        apply_sql(conn, ("erp", "views"))
        assert upgrade(conn, BASELINE).after == BASELINE
    assert schema_of(other_db) == schema_of(empty_db)

    # And at head, whatever later revisions add, both roads end in the same schema.
    migrate("--dsn", empty_db)
    migrate("--dsn", other_db)
    assert schema_of(other_db) == schema_of(empty_db)
    assert schema_of(empty_db)["tables"]  # not two empty descriptions


def test_baseline_tables_are_the_columns_revision_0001_creates(empty_db):
    with psycopg.connect(empty_db) as conn:
        upgrade(conn, BASELINE)
    columns: dict[str, set[str]] = {}
    for table, column, *_ in schema_of(empty_db)["columns"]:
        columns.setdefault(table, set()).add(column)
    assert columns == {t: set(c) for t, c in baseline_tables().items()}


def test_a_legacy_schema_missing_a_column_is_refused_and_left_alone(empty_db):
    legacy_installation(empty_db)
    with psycopg.connect(empty_db) as conn:
        conn.execute("ALTER TABLE passerelle.quarantine DROP COLUMN raw")
    before = schema_of(empty_db), rows_without_raw(empty_db)

    refused = migrate("--dsn", empty_db, check=False)

    assert refused.returncode == 1
    assert "passerelle.quarantine: missing column(s) raw" in refused.stderr
    assert "0001_state_schema.py" in refused.stderr
    assert version_tables(empty_db) == []
    assert (schema_of(empty_db), rows_without_raw(empty_db)) == before


def rows_without_raw(dsn: str) -> list:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT to_jsonb(q) FROM passerelle.quarantine q ORDER BY id").fetchall()


def test_a_legacy_installation_without_a_later_table_gets_it_and_keeps_its_rows(empty_db, other_db):
    """An installation older than the photo snapshot: 0001 (IF NOT EXISTS) adds only what is missing."""
    legacy_installation(empty_db)
    with psycopg.connect(empty_db) as conn:
        conn.execute("DROP TABLE passerelle.image_snapshot")
    before = rows_without(empty_db, "image_snapshot")

    with psycopg.connect(empty_db) as conn:
        outcome = upgrade(conn)

    assert (outcome.before, outcome.after, outcome.stamped, outcome.created) == (
        None,
        head(),
        False,
        ["image_snapshot"],
    )
    assert rows_without(empty_db, "image_snapshot") == before
    with psycopg.connect(other_db) as conn:
        apply_sql(conn, ("erp", "views"))
        upgrade(conn)
    assert schema_of(empty_db) == schema_of(other_db)


def rows_without(dsn: str, table: str) -> dict[str, list]:
    with psycopg.connect(dsn) as conn:
        return {t: conn.execute(baseline_rows_sql(t)).fetchall() for t in baseline_tables() if t != table}


def test_two_upgrades_at_once_run_one_after_the_other(empty_db):
    """The compose stack's init and the demo seeding may upgrade the same database together."""
    outcomes, errors = [], []

    def run():
        try:
            with psycopg.connect(empty_db) as conn:
                outcomes.append(upgrade(conn))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert sorted((o.before or "", o.after) for o in outcomes) == [("", head()), (head(), head())]


def test_the_seeded_back_office_is_at_head(erp):
    """The test template (tests/conftest.py -> seed_database -> apply_sql) is made by the migrations."""
    assert current(erp) == head()
    assert apply_sql(erp, ("state",)) == [f"state@{head()}"]
    assert current(erp) == head()


def test_batch_rows_belong_to_a_batch_and_go_with_it(erp):
    """0007: the rows of a batch are checked per statement, not per row, and still obey the rules
    of the foreign key they replace: no row of a missing batch, and a deleted batch takes its rows."""
    make = (
        "INSERT INTO passerelle.batch (flow, run_key, mode, status, entities) "
        "VALUES ('t', %s, 'full', 'built', '{article}') RETURNING id"
    )
    kept, dropped = (erp.execute(make, (key,)).fetchone()[0] for key in ("kept", "dropped"))
    rows = (
        "INSERT INTO passerelle.batch_row (batch_id, entity, key, hash, label, op) "
        "SELECT %s, 'article', 'ART-' || i, 'h', NULL, 'C' FROM generate_series(1, 3) i"
    )
    erp.execute(rows, (kept,))
    erp.execute(rows, (dropped,))
    erp.execute("DELETE FROM passerelle.batch WHERE id = %s", (dropped,))
    left = erp.execute(
        "SELECT batch_id, count(*) FROM passerelle.batch_row WHERE batch_id IN (%s, %s) GROUP BY 1", (kept, dropped)
    )
    assert left.fetchall() == [(kept, 3)]
    erp.commit()
    missing = dropped + 1000
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match=f"batch {missing} does not exist"):
        erp.execute(rows, (missing,))
    erp.rollback()
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match=f"batch {missing} does not exist"):
        erp.execute("UPDATE passerelle.batch_row SET batch_id = %s WHERE batch_id = %s", (missing, kept))
    erp.rollback()
    erp.execute("DELETE FROM passerelle.batch WHERE id = %s", (kept,))
    erp.commit()
    assert erp.execute("SELECT count(*) FROM passerelle.batch_row WHERE batch_id = %s", (kept,)).fetchone() == (0,)


def test_apply_sql_names_an_unknown_part(empty_db):
    with psycopg.connect(empty_db) as conn, pytest.raises(ValueError, match=r"unknown part\(s\) \['stat'\]"):
        apply_sql(conn, ("erp", "stat"))


def test_history_lists_the_baseline():
    out = migrate("history").stdout
    assert f"-> {BASELINE}" in out and "before migrations" in out


def test_a_later_revision_reaches_a_legacy_installation(empty_db, tmp_path, monkeypatch):
    """The point of migrations: a column added by a later release reaches an installation made
    before migrations, its rows kept (a copy of the revisions plus a probe revision after the head)."""
    import shutil

    import passerelle.migrate as migrate_module

    folder = tmp_path / "migrations"
    shutil.copytree(migrate_module.MIGRATIONS_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    last = head()  # the probe follows the project's own revisions
    probe = f"{int(last) + 1:04d}"
    (folder / "versions" / f"{probe}_probe.py").write_text(
        f'revision = "{probe}"\ndown_revision = "{last}"\nbranch_labels = None\ndepends_on = None\n\n\n'
        "def upgrade():\n    import sqlalchemy as sa\n    from alembic import op\n\n"
        '    op.add_column("batch", sa.Column("note", sa.Text(), server_default="kept"), schema="passerelle")\n'
    )
    monkeypatch.setattr(migrate_module, "MIGRATIONS_DIR", folder)
    legacy_installation(empty_db)
    before = rows(empty_db)

    with psycopg.connect(empty_db) as conn:
        outcome = upgrade(conn)
        notes = conn.execute("SELECT id, note FROM passerelle.batch ORDER BY id").fetchall()

    assert (outcome.before, outcome.stamped, outcome.after) == (None, True, probe)
    assert notes == [(1, "kept"), (2, "kept")]
    assert rows(empty_db) == before  # 0001's columns of every row, as they were


STALE_VIEWS = "CREATE SCHEMA passerelle_src; CREATE VIEW passerelle_src.article AS SELECT 'old'::text AS key"


def view_columns(dsn: str, view: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 ORDER BY attnum",
                (view,),
            )
        ]


def test_views_are_rebuilt_from_the_release_with_one_command(empty_db, capsys):
    """After a release whose views changed, ``migrate views`` replaces the installed ones (here a
    stale article view) with include/sql/views; again, it changes nothing."""
    from passerelle.migrate import main

    with psycopg.connect(empty_db) as conn:
        apply_sql(conn, ["erp"])
        conn.execute(STALE_VIEWS)
        conn.commit()
    assert view_columns(empty_db, "passerelle_src.article") == ["key"]

    assert main(["--dsn", empty_db, "views"]) == 0
    out = capsys.readouterr().out
    assert "views/10_catalog.sql" in out and "views/80_accounting.sql" in out
    columns = view_columns(empty_db, "passerelle_src.article")
    assert columns[0] == "key" and {"reference", "name", "price_excl_vat", "vat_rate"} <= set(columns)
    assert view_columns(empty_db, "passerelle_src.customer")  # every file applied, not only the first

    assert main(["--dsn", empty_db, "views"]) == 0
    assert view_columns(empty_db, "passerelle_src.article") == columns


def test_views_that_do_not_fit_the_back_office_are_refused_and_the_old_ones_kept(empty_db, capsys):
    """A back office without a table a view reads (another back office, views not rewritten): the
    command fails naming the file and what to do, and the installed views stay as they were, even
    those the files before it had already rebuilt (one transaction)."""
    from passerelle.migrate import main

    with psycopg.connect(empty_db) as conn:
        apply_sql(conn, ["erp"])
        conn.execute("DROP TABLE erp.payment")  # read by the accounting views only, the last file
        conn.execute(STALE_VIEWS)
        conn.commit()
    assert main(["--dsn", empty_db, "views"]) == 1
    err = capsys.readouterr().err
    assert "views/80_accounting.sql" in err and "erp.payment" in err and "Another ERP" in err
    assert view_columns(empty_db, "passerelle_src.article") == ["key"]
    assert view_columns(empty_db, "passerelle_src.customer") == []  # 50_customers.sql rolled back too
