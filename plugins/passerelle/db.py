"""PostgreSQL access: connections, the project's SQL files, and COPY in and out.

The core takes a psycopg (3) connection, so it runs with or without Airflow; operators get
theirs from the Postgres provider's hook (``erp_connection``), which hands out psycopg 3
connections when SQLAlchemy 2 is installed, as it is here.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import psycopg

from passerelle import SQL_DIR

#: What ``apply_sql`` sets up, in this order: the reference back office and the views Passerelle
#: reads it through (plain, idempotent SQL files in include/sql/<part>), then Passerelle's own
#: state, which is versioned: the ``passerelle`` schema is brought to the latest migration
#: (passerelle.migrate), never created from files, so a later column reaches every installation.
SQL_PARTS = ("erp", "views", "state")
MIGRATED_PARTS = ("state",)


def connect(dsn: str, **kwargs) -> psycopg.Connection:
    return psycopg.connect(dsn, **kwargs)


def erp_connection(conn_id: str) -> psycopg.Connection:
    """A connection to the back office through the Airflow Postgres provider."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    if not isinstance(conn, psycopg.Connection):
        raise RuntimeError(
            "Passerelle needs psycopg 3 connections from the Postgres provider "
            "(install psycopg and SQLAlchemy 2, as requirements.txt pins them)"
        )
    return conn


def sql_files(parts: Sequence[str] = SQL_PARTS) -> list[Path]:
    """The SQL files of the plain parts among ``parts`` (the state has migrations, not files)."""
    return [f for part in parts if part not in MIGRATED_PARTS for f in sorted((SQL_DIR / part).glob("*.sql"))]


def apply_sql(conn: psycopg.Connection, parts: Sequence[str] = SQL_PARTS) -> list[str]:
    """Run include/sql/<part>/*.sql in order (each file is idempotent), and for ``state`` the
    migrations up to head; return what was applied (file names, then ``state@<revision>``)."""
    unknown = [p for p in parts if p not in SQL_PARTS]
    if unknown:
        raise ValueError(f"apply_sql: unknown part(s) {unknown}; expected some of {list(SQL_PARTS)}")
    done = []
    for part in parts:
        if part in MIGRATED_PARTS:
            from passerelle.migrate import upgrade

            conn.commit()
            done.append(f"{part}@{upgrade(conn).after}")
            continue
        for path in sql_files([part]):
            conn.execute(path.read_text(encoding="utf-8"))
            done.append(f"{path.parent.name}/{path.name}")
    conn.commit()
    return done


@contextmanager
def local_settings(conn: psycopg.Connection, settings: Mapping[str, str]) -> Iterator[None]:
    """Server settings (``work_mem``, planner options...) for the block's statements only, set
    transaction-locally and put back after it. If the block fails they are not put back: the
    transaction is rolled back, and its local settings with it."""
    previous = {name: conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0] for name in settings}
    for name, value in settings.items():
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))
    yield
    for name, value in previous.items():
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))


#: About how many bytes :func:`copy_out` gathers before it hands them over.
COPY_BLOCK = 1 << 20


def copy_out(conn: psycopg.Connection, query: str, params: Sequence | dict | None = None) -> Iterator[bytes]:
    """Stream ``COPY (query) TO STDOUT`` as CSV with a header, in blocks of about :data:`COPY_BLOCK`
    bytes (PostgreSQL sends one message per row: 900,000 rows handed over one by one cost the
    caller seconds of Python)."""
    with conn.cursor() as cur:
        with cur.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)", params) as copy:
            block = bytearray()
            for row in copy:
                block += row
                if len(block) >= COPY_BLOCK:
                    yield bytes(block)
                    block.clear()
            if block:
                yield bytes(block)


def copy_parts(
    conn: psycopg.Connection, query: str, params: Sequence | dict | None, out: BinaryIO, *, rows: int
) -> Iterator[tuple[int, int, int]]:
    """Write ``COPY (query) TO STDOUT`` (CSV, header first) to the file *out*, and yield each part
    of at most *rows* rows as soon as it is written: ``(start, end, rows)``, its bytes' offsets in
    the file and its row count, flushed, so that another process may read it while the rest comes.
    The first item is the header (rows 0), which every part needs to be read (:func:`read_part`).

    PostgreSQL sends each row of a ``COPY TO`` in its own message: a part ends between two rows
    whatever their text (a description with line breaks included), counted without parsing any
    CSV. While the COPY runs, the connection serves nothing else (psycopg holds its lock).
    """
    with conn.cursor() as cur:
        with cur.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)", params) as copy:
            block = bytearray()
            start = out.tell()
            count = -1  # the header first
            for row in copy:
                block += row
                count += 1
                if count == 0 or count == rows or len(block) >= COPY_BLOCK:
                    out.write(block)
                    block.clear()
                if count == 0 or count == rows:
                    out.flush()
                    end = out.tell()
                    yield start, end, count
                    start, count = end, 0
            out.write(block)
            out.flush()
            if count > 0:
                yield start, out.tell(), count


def read_part(path: str | Path, header: tuple[int, int], part: tuple[int, int], *, dtype=str) -> pd.DataFrame:
    """The rows of a part of a COPY written by :func:`copy_parts` to *path* (offsets of its header
    and of the part), as :func:`read_query_chunks` gives them: values as text, empty for NULL."""
    with open(path, "rb") as f:
        f.seek(header[0])
        data = f.read(header[1] - header[0])
        f.seek(part[0])
        data += f.read(part[1] - part[0])
    return pd.read_csv(io.BytesIO(data), dtype=dtype, keep_default_na=False, na_values=[], engine="c")


def read_query_chunks(
    conn: psycopg.Connection, query: str, params=None, *, chunksize: int = 50_000, dtype=str
) -> Iterator[pd.DataFrame]:
    """Rows of a query as DataFrames of at most ``chunksize`` rows, via COPY, memory flat.

    The COPY is read to its end first, into a spooled temporary file (in memory up to 64 MiB,
    then on disk): psycopg holds the connection's lock for the whole COPY, so the caller could
    not run a statement (store a file) between two chunks while it is open.
    Values stay text (dtype=str) unless told: what goes to the shop is text anyway and the
    back office's formatting of numbers is kept exactly.
    """
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
        for block in copy_out(conn, query, params):
            spool.write(block)
        spool.seek(0)
        yield from pd.read_csv(spool, chunksize=chunksize, dtype=dtype, keep_default_na=False, na_values=[], engine="c")


def json_texts(values: Iterable[object], *, strip: bool = False) -> str:
    """The distinct ``values`` (but None, NaN, NA; as text, stripped if told) as a JSON array, for a
    lookup of many keys in one parameter: ``WHERE key IN (SELECT json_array_elements_text(%s::json))``.
    psycopg dumps a Python list into an array parameter element by element in Python; pandas and
    ``json.dumps`` do it in C (a file's 3,000 SKUs: 0.7 ms of CPU instead of 3 ms, 2 ms on the
    wire instead of 10)."""
    s = pd.Series(
        values
        if isinstance(values, (pd.Series, pd.Index, np.ndarray, pd.api.extensions.ExtensionArray))
        else list(values),
        dtype="object",
    )
    s = s[s.notna()].astype("str")
    if strip:
        s = s.str.strip()
    return json.dumps(s.unique().tolist(), ensure_ascii=False)


def copy_in(conn: psycopg.Connection, table: str, df: pd.DataFrame, columns: Sequence[str] | None = None) -> int:
    """``COPY table (columns) FROM STDIN`` from a DataFrame; missing values (None, NaN, NaT) are NULL.

    Rows go through psycopg's own COPY writer (C in psycopg-binary), which is about twice as
    fast as formatting the frame with ``to_csv`` first, and types each value itself (numbers,
    timestamps with their zone, booleans).
    """
    columns = list(columns or df.columns)
    values = []
    for col in columns:
        s = df[col]
        arr = s.to_numpy(dtype=object)
        missing = s.isna().to_numpy()
        if missing.any():
            arr = arr.copy()
            arr[missing] = None
        values.append(arr)
    cols = ", ".join(f'"{c}"' for c in columns)
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for row in zip(*values):
                copy.write_row(row)
    return len(df)
