"""Benchmark of the catalog delta and full send against the floor: reading every source row once (issues 2, 15).

    .venv/bin/python bench/catalog_diff.py                    # 100,000 articles (the default)
    .venv/bin/python bench/catalog_diff.py --articles 1000000 # the 1M run (seeding takes minutes)
    .venv/bin/python bench/catalog_diff.py --articles 5000    # a quick one

What it does, in its own database on the local PostgreSQL (``passerelle_bench_catalog_diff``,
dropped at the end unless ``--keep``):

1. *seed* (a child process): loads the demo back office with N articles, photos off
   (``passerelle_demo.seed.seed_database``) and runs ``VACUUM ANALYZE``;
   *prepare* (another child): runs one full catalog batch of the articles (generic dialect) and
   confirms it, so the snapshot holds every article; then changes 1 % of the articles set-wise
   (``UPDATE ... WHERE id % 100 = 0``: price + 1) and runs ``VACUUM ANALYZE`` again;
2. *measure* (a fresh child process, so that seeding does not count in its memory), three times
   each, interleaved, keeping the medians:

   - the delta: ``build_catalog`` for the article entity with the generic dialect, i.e. hashing
     every selected row in SQL, diffing against the snapshot, writing the changed rows' files to
     the outbox (each repetition uses its own run key; its batch is deleted afterwards, so every
     repetition sees the same 1 %);
   - the full send: ``build_catalog`` of the article entity in ``full`` mode (every selected
     article hashed, recorded in the batch and written to files of 50,000 rows, the default);
     its batch is deleted afterwards too;
   - the floor: a bare ``COPY <table> TO STDOUT`` of every table the article view reads (found
     in PostgreSQL's catalog, through the views it uses: articles, variants, stock, locations,
     promotions, photos, orders and their lines, families, brands, suppliers), one after the
     other, streamed and discarded; ``floor_seconds`` is their sum. No program can produce the
     catalog without reading these rows once;
   - a reference: ``COPY (SELECT * FROM passerelle_src.article a WHERE a.web AND (<rule>)) TO
     STDOUT`` streamed with psycopg 3's ``cursor.copy`` and discarded (bytes counted): the view's
     own cost, which the delta and the full send pay at least once;
   - the limits, what any design pays beyond the floor, whatever it does next: for the delta,
     one pass over the view hashing each selected row with the differ's hash (``COPY (SELECT
     hash_record_extended(ROW(a.<columns>), 0)::text ...)``, ``differ.row_hash``,
     ``delta_limit_seconds``): it cannot know what changed without it; for the full send, every
     selected row out of the database with its hash, in key order (``COPY (SELECT a.*, <the
     hash> ... ORDER BY a.key)``, ``full_limit_seconds``), before any file is written.

``peak_rss_mb`` is the Python side's peak resident memory: the measuring process's
(``ru_maxrss``, ``own_peak_rss_mb``) plus those of the processes a large send formats its files in
(``VmHWM`` read from /proc, ``formatter_peak_rss_mb``), as if all peaked at once; PostgreSQL's
own memory is the server's (bounded by ``work_mem`` and ``shared_buffers``), not counted here.

The last line of output is one JSON object: ``rows`` (articles in the delta's view selection),
``seconds`` (median delta), ``full_seconds`` (median full send), ``floor_seconds`` (median sum of
the tables' COPY), ``delta_floor_ratio`` (delta / floor) and ``full_floor_ratio`` (full send /
floor), each the median of the ratios taken within each repetition, ``delta_limit_seconds``,
``delta_limit_ratio``, ``full_limit_seconds``, ``full_limit_ratio`` (the limits above, and their
ratio to the floor: the least ``delta_floor_ratio`` and ``full_floor_ratio`` can be with this
view on this machine), ``copy_seconds`` (median
COPY of the view) and ``ratio`` (seconds / copy_seconds, the reference of issue 2),
``peak_rss_mb``, ``articles_changed``, ``files``, ``bytes`` and a few more.
Targets (issue 15, at 1,000,000 articles): delta_floor_ratio at most 2, full_floor_ratio at most
4; peak_rss_mb at 1,000,000 articles at most 1.5 x that at 100,000.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

import psycopg

from passerelle_demo.localenv import (
    LOCAL_DSN,
    create_database,
    drop_database,
    local_postgres,
    with_database,
)

DATABASE = "passerelle_bench_catalog_diff"
FLOW = "bench_catalog"
REPEAT = 3


def _nothing() -> None:
    """The stop of a server this script did not start."""


def log(message: str) -> None:
    """Progress on stderr, so that stdout holds only the table and the JSON line."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class DescendantsPeak(threading.Thread):
    """The peak resident memory (MiB) of this process's descendants together: every 0.2 s, the sum of
    the peaks (``VmHWM``, from /proc) of those alive, the largest sum kept. The processes a large
    send formats its files in (passerelle.core.export._Formatter) are grandchildren, which
    ``RUSAGE_CHILDREN`` does not see."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_mb = 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self._stop_event.wait(0.2):
            parents = {}
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        with open(f"/proc/{entry}/stat") as f:
                            parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
                    except (OSError, IndexError, ValueError):
                        continue
            total = 0.0
            for pid in parents:
                ancestor = parents.get(pid)
                while ancestor not in (None, 0, 1, me):
                    ancestor = parents.get(ancestor)
                if ancestor != me:
                    continue
                try:
                    with open(f"/proc/{pid}/status") as f:
                        for line in f:
                            if line.startswith("VmHWM:"):
                                total += int(line.split()[1]) / 1024
                except OSError:
                    continue
            self.peak_mb = max(self.peak_mb, total)

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return round(self.peak_mb, 1)


def _selection(rule: str) -> str:
    return f"SELECT * FROM passerelle_src.article a WHERE a.web AND ({rule})"


#: Every table (or materialised view) a view reads, through the views and functions' views it
#: uses: PostgreSQL records each view's dependencies on its rewrite rule (pg_depend).
SOURCE_TABLES = """
WITH RECURSIVE uses(oid) AS (
    SELECT %s::regclass::oid
    UNION
    SELECT d.refobjid
    FROM uses u
    JOIN pg_rewrite r ON r.ev_class = u.oid
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
         AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> u.oid
)
SELECT c.oid::regclass::text FROM uses u JOIN pg_class c ON c.oid = u.oid
WHERE c.relkind IN ('r', 'p', 'm') ORDER BY 1
"""


def source_tables(conn: psycopg.Connection, view: str) -> list[str]:
    """The tables the view reads (schema-qualified), found in PostgreSQL's catalog."""
    return [r[0] for r in conn.execute(SOURCE_TABLES, (view,)).fetchall()]


def copy_discard(conn: psycopg.Connection, sql: str) -> int:
    """Run ``COPY ... TO STDOUT``, stream it and throw it away; return the bytes."""
    nbytes = 0
    with conn.cursor() as cur, cur.copy(sql) as copy:
        for block in copy:
            nbytes += len(block)
    conn.commit()
    return nbytes


def seed_demo(dsn: str, articles: int, demo_seed: int) -> dict[str, Any]:
    """Load the demo back office, photos off, and analyse it (child process)."""
    from passerelle_demo.seed import seed_database

    t = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        counts = seed_database(conn, articles=articles, seed=demo_seed, photos=False)
    with psycopg.connect(dsn, autocommit=True) as maint:
        maint.execute("VACUUM ANALYZE")
    out = {"seed_seconds": round(time.perf_counter() - t, 1), "seed_peak_rss_mb": peak_rss_mb()}
    log(
        f"seeded {counts['article']:,} articles, {counts['variant']:,} variants, {counts['stock']:,} stock rows "
        f"in {out['seed_seconds']} s (peak RSS {out['seed_peak_rss_mb']} MiB)"
    )
    return out


def reapply(dsn: str) -> dict[str, Any]:
    """--reuse: the project's SQL files and migrations again (a changed view or index), then
    ANALYZE (child process)."""
    from passerelle.db import apply_sql

    with psycopg.connect(dsn) as conn:
        apply_sql(conn)
    with psycopg.connect(dsn, autocommit=True) as maint:
        maint.execute("VACUUM ANALYZE")
    return {"seed_seconds": None, "seed_peak_rss_mb": None}


def prepare(dsn: str, articles: int, rule: str) -> dict[str, Any]:
    """Send every article once and confirm it, then change 1 % of the articles (child process)."""
    from passerelle.core.dialects import dialect
    from passerelle.core.differ import catalog_entities, confirm_batch
    from passerelle.core.export import build_catalog

    out: dict[str, Any] = {}
    with psycopg.connect(dsn) as conn:
        t = time.perf_counter()
        entities = catalog_entities(rule, ["article"])
        batch, files = build_catalog(
            conn, flow=FLOW, run_key="bench-full", entities=entities, dialect=dialect("generic"), mode="full"
        )
        confirm_batch(conn, batch.id)
        # The full send's files are not needed any more: keep the database small.
        conn.execute("DELETE FROM passerelle.outbox_file WHERE batch_id = %s", (batch.id,))
        conn.commit()
        out["first_full_seconds"] = round(time.perf_counter() - t, 1)
        out["first_full_rows"] = sum(f["rows"] for f in files)
        log(
            f"first full batch: {out['first_full_rows']:,} articles in {len(files)} file(s), confirmed, "
            f"in {out['first_full_seconds']} s"
        )

        cur = conn.execute("UPDATE erp.article SET price_excl_vat = price_excl_vat + 1 WHERE id % 100 = 0")
        out["articles_changed"] = cur.rowcount
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as maint:
        maint.execute("VACUUM ANALYZE")
    log(f"changed {out['articles_changed']:,} articles (price + 1)")
    return out


def measure(dsn: str, rule: str, repeat: int) -> dict[str, Any]:
    """Time the floor, the view's COPY, the delta and the full send, interleaved, ``repeat``
    times each (fresh child process)."""
    import passerelle.core.differ as differ
    import passerelle.core.export as export
    from passerelle.core.dialects import dialect
    from passerelle.core.differ import catalog_entities

    # Time the diff (hashes + FULL JOIN + batch rows) apart from the files, without touching
    # the code measured: wrap the build_batch that build_catalog calls.
    diff_times: list[float] = []
    build_batch = export.build_batch

    def timed_build_batch(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return build_batch(*args, **kwargs)
        finally:
            diff_times.append(time.perf_counter() - t0)

    export.build_batch = timed_build_batch
    entities = catalog_entities(rule, ["article"])
    generic = dialect("generic")
    copy_sql = f"COPY ({_selection(rule)}) TO STDOUT"
    selected = f"FROM passerelle_src.article a WHERE a.web AND ({rule})"
    times: dict[str, list[float]] = {
        "floor": [],
        "copy": [],
        "hash": [],
        "rows_hash": [],
        "delta": [],
        "full": [],
        "delta_diff": [],
        "full_diff": [],
    }
    per_table: dict[str, list[float]] = {}
    result: dict[str, Any] = {}
    descendants = DescendantsPeak()
    descendants.start()
    with psycopg.connect(dsn) as conn:
        # Every statement measured gets the work_mem and jit the catalog's building transaction sets
        # for itself (export.WORK_MEM, export.JIT) and the planner costs its diff reads the view with
        # (differ.PARALLEL_DIFF_SETTINGS: parallel workers): the limits and the view's COPY are not
        # slowed by spills, or kept to one core, where the send is not. The floor's bare COPY of a
        # table is one process whatever the settings.
        # The least a delta does: evaluate the view once and hash each selected row with the
        # differ's own hash (differ.row_hash, its columns read from the catalog), the hash it
        # compares with the snapshot; nothing joined, nothing recorded, nothing written.
        row_hash = differ.row_hash("a", differ.hashed_columns(conn, "passerelle_src.article"))
        hash_sql = f"COPY (SELECT {row_hash} {selected}) TO STDOUT"
        # The least a full send does: every selected row, whole, out of the database with its hash,
        # in key order (its files are in key order), nothing recorded, nothing written.
        rows_hash_sql = f"COPY (SELECT a.*, {row_hash} {selected} ORDER BY a.key) TO STDOUT"
        conn.execute("SELECT set_config('work_mem', %s, false)", (export.WORK_MEM,))
        conn.execute("SELECT set_config('jit', %s, false)", (export.JIT,))
        for name, value in differ.PARALLEL_DIFF_SETTINGS.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        tables = source_tables(conn, "passerelle_src.article")
        conn.commit()
        log(f"floor: COPY of {len(tables)} tables: {', '.join(tables)}")
        for i in range(1, repeat + 1):
            floor_bytes = 0
            t = time.perf_counter()
            for name in tables:
                t_table = time.perf_counter()
                floor_bytes += copy_discard(conn, f"COPY {name} TO STDOUT")
                per_table.setdefault(name, []).append(time.perf_counter() - t_table)
            times["floor"].append(time.perf_counter() - t)

            t = time.perf_counter()
            nbytes = copy_discard(conn, copy_sql)
            times["copy"].append(time.perf_counter() - t)

            # The limits: what any delta, and any full send, must do beyond the floor, timed here.
            t = time.perf_counter()
            copy_discard(conn, hash_sql)
            times["hash"].append(time.perf_counter() - t)
            t = time.perf_counter()
            copy_discard(conn, rows_hash_sql)
            times["rows_hash"].append(time.perf_counter() - t)

            t = time.perf_counter()
            batch, files = export.build_catalog(
                conn, flow=FLOW, run_key=f"bench-delta-{i}", entities=entities, dialect=generic, mode="delta"
            )
            times["delta"].append(time.perf_counter() - t)
            times["delta_diff"].append(diff_times[-1])
            counts = batch.counts["article"]
            rows = sum(counts.get(k, 0) for k in ("created", "changed", "unchanged"))
            result = {
                "rows": rows,
                "counts": counts,
                "files": len(files),
                "bytes": sum(f["bytes"] for f in files),
                "copy_bytes": nbytes,
                "floor_bytes": floor_bytes,
            }
            # Forget the batch, so that the next repetition computes the same delta again.
            conn.execute("DELETE FROM passerelle.batch WHERE id = %s", (batch.id,))
            conn.commit()

            t = time.perf_counter()
            full, full_files = export.build_catalog(
                conn, flow=FLOW, run_key=f"bench-full-{i}", entities=entities, dialect=generic, mode="full"
            )
            times["full"].append(time.perf_counter() - t)
            times["full_diff"].append(diff_times[-1])
            result["full_files"] = len(full_files)
            result["full_bytes"] = sum(f["bytes"] for f in full_files)
            result["full_rows"] = sum(f["rows"] for f in full_files)
            conn.execute("DELETE FROM passerelle.batch WHERE id = %s", (full.id,))
            conn.commit()
            log(
                f"repetition {i}: floor {times['floor'][-1]:.2f} s, view COPY {times['copy'][-1]:.2f} s, "
                f"limits: hash pass {times['hash'][-1]:.2f} s, rows + hash {times['rows_hash'][-1]:.2f} s, "
                f"delta {times['delta'][-1]:.2f} s (diff {times['delta_diff'][-1]:.2f} s), "
                f"full {times['full'][-1]:.2f} s (diff {times['full_diff'][-1]:.2f} s); {counts}"
            )
    med = {k: statistics.median(v) for k, v in times.items()}
    # Each ratio is taken within its repetition (the floor and the send measured minutes apart at
    # most, under the same load), then the median of those: on a shared machine whose load
    # changes from one repetition to the next, a ratio of medians would pair a quiet floor with
    # a busy send.
    delta_ratios = [d / f for d, f in zip(times["delta"], times["floor"], strict=True)]
    full_ratios = [d / f for d, f in zip(times["full"], times["floor"], strict=True)]
    hash_ratios = [d / f for d, f in zip(times["hash"], times["floor"], strict=True)]
    rows_hash_ratios = [d / f for d, f in zip(times["rows_hash"], times["floor"], strict=True)]
    report = {
        **result,
        "seconds": round(med["delta"], 3),
        "full_seconds": round(med["full"], 3),
        "floor_seconds": round(med["floor"], 3),
        "delta_floor_ratio": round(statistics.median(delta_ratios), 2),
        "full_floor_ratio": round(statistics.median(full_ratios), 2),
        "delta_floor_ratios": [round(x, 2) for x in delta_ratios],
        "full_floor_ratios": [round(x, 2) for x in full_ratios],
        "delta_limit_seconds": round(med["hash"], 3),
        "delta_limit_ratio": round(statistics.median(hash_ratios), 2),
        "full_limit_seconds": round(med["rows_hash"], 3),
        "full_limit_ratio": round(statistics.median(rows_hash_ratios), 2),
        "copy_seconds": round(med["copy"], 3),
        "ratio": round(med["delta"] / med["copy"], 2),
        "copy_floor_ratio": round(med["copy"] / med["floor"], 2),
        "diff_seconds": round(med["delta_diff"], 3),
        "full_diff_seconds": round(med["full_diff"], 3),
        "floor_tables": {name: round(statistics.median(v), 3) for name, v in per_table.items()},
        "delta_runs": [round(x, 3) for x in times["delta"]],
        "full_runs": [round(x, 3) for x in times["full"]],
        "floor_runs": [round(x, 3) for x in times["floor"]],
        "copy_runs": [round(x, 3) for x in times["copy"]],
        "own_peak_rss_mb": peak_rss_mb(),
        "formatter_peak_rss_mb": descendants.stop(),
    }
    # Both processes of a large send at their peaks at once: the Python side's memory, at most.
    report["peak_rss_mb"] = round(report["own_peak_rss_mb"] + report["formatter_peak_rss_mb"], 1)
    return report


def in_child(func, *args) -> Any:
    """Run func(*args) in a fresh interpreter (spawn) and return its result. Not a
    ``multiprocessing.Pool``, whose daemonic processes may not start the process a large send
    formats its files in."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(func, *args).result()


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{'articles':<28}{report['articles']:>14,}",
        f"{'articles changed (1 %)':<28}{report.get('articles_changed', 0):>14,}",
        f"{'rows in the selection':<28}{report['rows']:>14,}",
        f"{'delta rows (C/U/D)':<28}{report['delta_rows']:>14,}",
        f"{'delta files / bytes':<28}{report['files']:>5} / {report['bytes']:>,}",
        f"{'delta seconds (median)':<28}{report['seconds']:>14.3f}",
        f"{'  of which diff':<28}{report['diff_seconds']:>14.3f}",
        f"{'full send seconds (median)':<28}{report['full_seconds']:>14.3f}",
        f"{'  of which diff':<28}{report['full_diff_seconds']:>14.3f}",
        f"{'full send files / rows':<28}{report['full_files']:>5} / {report['full_rows']:>,}",
        f"{'floor seconds (median)':<28}{report['floor_seconds']:>14.3f}",
        f"{'floor bytes':<28}{report['floor_bytes']:>14,}",
        f"{'delta / floor (<= 2)':<28}{report['delta_floor_ratio']:>14.2f}",
        f"{'full / floor (<= 4)':<28}{report['full_floor_ratio']:>14.2f}",
        f"{'delta limit (hash pass) s':<28}{report['delta_limit_seconds']:>14.3f}",
        f"{'  / floor':<28}{report['delta_limit_ratio']:>14.2f}",
        f"{'full limit (rows + hash) s':<28}{report['full_limit_seconds']:>14.3f}",
        f"{'  / floor':<28}{report['full_limit_ratio']:>14.2f}",
        f"{'view COPY seconds (median)':<28}{report['copy_seconds']:>14.3f}",
        f"{'view COPY bytes':<28}{report['copy_bytes']:>14,}",
        f"{'delta / view COPY (ref.)':<28}{report['ratio']:>14.2f}",
        f"{'view COPY / floor':<28}{report['copy_floor_ratio']:>14.2f}",
        f"{'peak RSS, Python (MiB)':<28}{report['peak_rss_mb']:>14.1f}",
        f"{'  measuring process':<28}{report['own_peak_rss_mb']:>14.1f}",
        f"{'  formatting process':<28}{report['formatter_peak_rss_mb']:>14.1f}",
        f"{'peak RSS, seeding (MiB)':<28}{report['seed_peak_rss_mb'] or 0:>14.1f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--articles", type=int, default=100_000, help="articles to generate (default 100000)")
    p.add_argument(
        "--rule",
        default=None,
        help="selection rule, SQL with alias a (default: catalog.selection_rule of the project config)",
    )
    p.add_argument("--repeat", type=int, default=REPEAT, help=f"repetitions of each measure (default {REPEAT})")
    p.add_argument("--seed", type=int, default=42, help="demo data seed (default 42)")
    p.add_argument("--database", default=DATABASE, help=f"the database's name (default {DATABASE})")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="measure again on the database kept by an earlier --keep run (its SQL files and "
        "migrations applied again, no seeding; implies --keep)",
    )
    p.add_argument(
        "--dsn",
        default=None,
        help="server DSN to create the database from (default: 127.0.0.1:5432, else a throwaway cluster)",
    )
    args = p.parse_args(argv)
    if args.articles < 100:
        p.error(f"--articles must be at least 100 (1 % of them are changed), got {args.articles}")
    if args.rule is None:
        from passerelle.config import load_settings

        args.rule = load_settings().catalog.selection_rule

    server, stop = (args.dsn, _nothing) if args.dsn else local_postgres()
    if server == LOCAL_DSN:
        stop = _nothing
    if args.reuse:
        args.keep = True
        dsn = with_database(server, args.database)
    else:
        dsn = create_database(server, args.database, replace=True)
    log(f"database {with_database(server, args.database)}; {args.articles:,} articles; rule {args.rule!r}")
    try:
        if args.reuse:
            seeded, prepared = in_child(reapply, dsn), {}
        else:
            seeded = in_child(seed_demo, dsn, args.articles, args.seed)
            prepared = in_child(prepare, dsn, args.articles, args.rule)
        measured = in_child(measure, dsn, args.rule, args.repeat)
    finally:
        if args.keep and stop is not _nothing:
            log(f"--keep ignored: {server} is a throwaway cluster, stopped now")
        elif args.keep:
            log(f"kept database {args.database}")
        else:
            drop_database(server, args.database)
        stop()
    counts = measured.pop("counts")
    report = {
        "articles": args.articles,
        **measured,
        "delta_rows": counts["created"] + counts["changed"] + counts["removed"],
        **prepared,
        **seeded,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(table(report))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
