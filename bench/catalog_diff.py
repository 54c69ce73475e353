"""Benchmark of the catalog delta against a bare COPY of the same view (issue 2).

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
   - the baseline: ``COPY (SELECT * FROM passerelle_src.article a WHERE a.web AND (<rule>)) TO
     STDOUT`` streamed with psycopg 3's ``cursor.copy`` and discarded (bytes counted).

``peak_rss_mb`` is the peak resident memory (``ru_maxrss``) of the measuring process, the Python
side of the delta; PostgreSQL's own memory is the server's (bounded by ``work_mem`` and
``shared_buffers``), not counted here.

The last line of output is one JSON object: ``rows`` (articles in the delta's view selection),
``seconds`` (median delta), ``copy_seconds`` (median COPY), ``ratio`` (seconds / copy_seconds),
``peak_rss_mb``, ``articles_changed``, ``files``, ``bytes`` and a few more.
Targets: ratio at most 3; peak_rss_mb at 1,000,000 articles at most 1.5 x that at 100,000.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import sys
import time
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


def _selection(rule: str) -> str:
    return f"SELECT * FROM passerelle_src.article a WHERE a.web AND ({rule})"


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


def prepare(dsn: str, articles: int, rule: str) -> dict[str, Any]:
    """Send every article once and confirm it, then change 1 % of the articles (child process)."""
    from passerelle.core.dialects import dialect
    from passerelle.core.differ import catalog_entities, confirm_batch
    from passerelle.core.export import build_catalog

    out: dict[str, Any] = {}
    with psycopg.connect(dsn) as conn:
        t = time.perf_counter()
        entities = catalog_entities(rule, ["article"])
        # One file for the full send: write_files stores a file while its COPY is still open
        # when a batch has more than rows_per_file rows, and psycopg's connection lock then
        # deadlocks (see bench/README.md). The delta measured below stays under 50,000 rows.
        batch, files = build_catalog(
            conn,
            flow=FLOW,
            run_key="bench-full",
            entities=entities,
            dialect=dialect("generic"),
            mode="full",
            rows_per_file=articles + 1,
        )
        confirm_batch(conn, batch.id)
        # The full send's files are not needed any more: keep the database small.
        conn.execute("DELETE FROM passerelle.outbox_file WHERE batch_id = %s", (batch.id,))
        conn.commit()
        out["full_seconds"] = round(time.perf_counter() - t, 1)
        out["full_rows"] = sum(f["rows"] for f in files)
        log(f"full batch: {out['full_rows']:,} articles in {len(files)} file(s), confirmed, in {out['full_seconds']} s")

        cur = conn.execute("UPDATE erp.article SET price_excl_vat = price_excl_vat + 1 WHERE id % 100 = 0")
        out["articles_changed"] = cur.rowcount
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as maint:
        maint.execute("VACUUM ANALYZE")
    log(f"changed {out['articles_changed']:,} articles (price + 1)")
    return out


def measure(dsn: str, rule: str, repeat: int) -> dict[str, Any]:
    """Time the delta and the bare COPY, interleaved, ``repeat`` times each (fresh child process)."""
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
    delta_times: list[float] = []
    copy_times: list[float] = []
    result: dict[str, Any] = {}
    with psycopg.connect(dsn) as conn:
        for i in range(1, repeat + 1):
            t = time.perf_counter()
            nbytes = 0
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for block in copy:
                    nbytes += len(block)
            conn.commit()
            copy_times.append(time.perf_counter() - t)

            t = time.perf_counter()
            batch, files = export.build_catalog(
                conn, flow=FLOW, run_key=f"bench-delta-{i}", entities=entities, dialect=generic, mode="delta"
            )
            delta_times.append(time.perf_counter() - t)
            counts = batch.counts["article"]
            rows = sum(counts.get(k, 0) for k in ("created", "changed", "unchanged"))
            log(
                f"repetition {i}: delta {delta_times[-1]:.2f} s (diff {diff_times[-1]:.2f} s), "
                f"COPY {copy_times[-1]:.2f} s; {counts}"
            )
            result = {
                "rows": rows,
                "counts": counts,
                "files": len(files),
                "bytes": sum(f["bytes"] for f in files),
                "copy_bytes": nbytes,
            }
            # Forget the batch, so that the next repetition computes the same delta again.
            conn.execute("DELETE FROM passerelle.batch WHERE id = %s", (batch.id,))
            conn.commit()
    seconds = statistics.median(delta_times)
    copy_seconds = statistics.median(copy_times)
    return {
        **result,
        "seconds": round(seconds, 3),
        "copy_seconds": round(copy_seconds, 3),
        "ratio": round(seconds / copy_seconds, 2),
        "diff_seconds": round(statistics.median(diff_times), 3),
        "delta_runs": [round(x, 3) for x in delta_times],
        "copy_runs": [round(x, 3) for x in copy_times],
        "peak_rss_mb": peak_rss_mb(),
    }


def in_child(func, *args) -> Any:
    """Run func(*args) in a fresh interpreter (spawn) and return its result."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(func, args)


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{'articles':<28}{report['articles']:>14,}",
        f"{'articles changed (1 %)':<28}{report['articles_changed']:>14,}",
        f"{'rows in the selection':<28}{report['rows']:>14,}",
        f"{'delta rows (C/U/D)':<28}{report['delta_rows']:>14,}",
        f"{'delta files / bytes':<28}{report['files']:>5} / {report['bytes']:>,}",
        f"{'delta seconds (median)':<28}{report['seconds']:>14.3f}",
        f"{'  of which diff':<28}{report['diff_seconds']:>14.3f}",
        f"{'COPY seconds (median)':<28}{report['copy_seconds']:>14.3f}",
        f"{'COPY bytes':<28}{report['copy_bytes']:>14,}",
        f"{'ratio (target <= 3)':<28}{report['ratio']:>14.2f}",
        f"{'peak RSS, measuring (MiB)':<28}{report['peak_rss_mb']:>14.1f}",
        f"{'peak RSS, seeding (MiB)':<28}{report['seed_peak_rss_mb']:>14.1f}",
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
    p.add_argument("--seed", type=int, default=42, help="demo data seed (default 42)")
    p.add_argument("--keep", action="store_true", help=f"keep the database {DATABASE} afterwards")
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
    dsn = create_database(server, DATABASE, replace=True)
    log(f"database {with_database(server, DATABASE)}; {args.articles:,} articles; rule {args.rule!r}")
    try:
        seeded = in_child(seed_demo, dsn, args.articles, args.seed)
        prepared = in_child(prepare, dsn, args.articles, args.rule)
        measured = in_child(measure, dsn, args.rule, REPEAT)
    finally:
        if args.keep and stop is not _nothing:
            log(f"--keep ignored: {server} is a throwaway cluster, stopped now")
        elif args.keep:
            log(f"kept database {DATABASE}")
        else:
            drop_database(server, DATABASE)
        stop()
    counts = measured.pop("counts")
    report = {
        "articles": args.articles,
        **measured,
        "delta_rows": counts["created"] + counts["changed"] + counts["removed"],
        **prepared,
        **seeded,
    }
    print(table(report))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
