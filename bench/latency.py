"""Benchmark: a change in the back office to its file on the shop's server (issue 15).

    .venv/bin/python bench/latency.py                 # 20 changes (the issue's run), about 15 min
    .venv/bin/python bench/latency.py --changes 3     # a quick one

The ``on_change`` flow under the real scheduler and triggerer, end to end, as in production:

1. a back office in a temporary database (``passerelle_demo.seed``, 1,000 articles) and an FTP
   server on loopback (``passerelle_demo.localenv.start_ftp``, in this process);
2. Airflow with CeleryExecutor as real processes (``tests/integration/celery_stack.py``: api-server,
   scheduler, dag-processor, a Celery worker with 2 slots) **plus the triggerer**, which runs the
   ``AssetWatcher`` of the flow (``passerelle.triggers.ErpChangeTrigger``);
3. the project's configuration (``include/config/passerelle.yaml``) with ``prices_stock`` set to
   ``on_change: true`` alone (no clock: only a change starts it) and every other flow manual;
   the poll and settle intervals are the configuration's (``flows.prices_stock.poll_seconds`` and
   ``settle_seconds``) unless ``--poll-seconds`` / ``--settle-seconds`` say otherwise;
4. a first, manual run sends every price and stock (the shop's first full file): the baseline;
5. then ``--changes`` times, one at a time: the price of one article (a different one each time)
   is raised by 1 in one committed transaction, and the clock runs from that ``COMMIT`` until a
   new file holding that article's row is on the FTP server (renamed from its ``.part``: the
   server's folder is watched every 50 ms); the next change waits until the flow's run is over.

Each change also reports when the flow's run was queued (the trigger fired and the scheduler
created the run) and when the file arrived, so the time splits into *detect* (commit to run
queued: polling, settling, the asset event) and *run* (queued to file: the tasks on the worker).

The last line of output is one JSON object: ``changes``, ``p50_seconds``, ``p95_seconds``,
``max_seconds``, ``min_seconds``, the detect/run splits (``detect_p50_seconds``,
``run_p50_seconds``...), ``poll_seconds``, ``settle_seconds`` and ``latencies``. Goal:
``p95_seconds`` < 60. It exits non-zero when a change never reached the shop (``--timeout``).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(ROOT))

from tests.integration.celery_stack import PROJECT_DAGS, CeleryStack, wait_until

from passerelle.config import DEFAULT_PATH, FLOW_NAMES, load_settings
from passerelle_demo.localenv import create_database, drop_database, local_postgres, start_ftp
from passerelle_demo.seed import seed_database

FLOW = "prices_stock"
DATABASE = "passerelle_bench_latency"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


#: A task failed by the machine (other work starving the worker) is retried after this pause, not
#: the configuration's 5 minutes; each retry is counted in the JSON (``task_retries``).
RETRY_DELAY_SECONDS = 5


def bench_config(path: Path, poll_seconds: float | None, settle_seconds: float | None) -> Path:
    """The project's configuration with FLOW on change only (its retries, a short retry delay)
    and every other flow manual."""
    cfg = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8")) or {}
    flows = {name: {"manual": True, "retries": 0} for name in FLOW_NAMES}
    flows[FLOW] = {"on_change": True}
    cfg.setdefault("timeouts", {})["retry_delay_seconds"] = RETRY_DELAY_SECONDS
    if poll_seconds is not None:
        flows[FLOW]["poll_seconds"] = poll_seconds
    if settle_seconds is not None:
        flows[FLOW]["settle_seconds"] = settle_seconds
    cfg["flows"] = flows
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in 0..100."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def shop_files(root: Path) -> dict[Path, int]:
    """Every complete file on the shop's server (a ``.part`` is an upload in progress)."""
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and not p.name.endswith(".part")}


def wait_for_row(root: Path, known: dict[Path, int], needle: bytes, *, timeout: float) -> tuple[float, Path] | None:
    """(time.time() when first seen, path) of the first new or rewritten file holding *needle*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path, mtime in shop_files(root).items():
            if known.get(path) == mtime:
                continue
            try:
                if needle in path.read_bytes():
                    return time.time(), path
            except FileNotFoundError:  # renamed or removed meanwhile
                continue
        time.sleep(0.05)
    return None


def runs(stack: CeleryStack) -> list[dict[str, Any]]:
    return stack.api("GET", f"/dags/{FLOW}/dagRuns", params={"limit": 100, "order_by": "-run_after"})["dag_runs"]


def wait_runs_over(stack: CeleryStack, *, timeout: float) -> None:
    def over() -> bool:
        stack.check_processes()
        return all(r["state"] in ("success", "failed") for r in runs(stack))

    wait_until(over, timeout=timeout, what=f"the runs of {FLOW} to end", interval=0.5)
    failed = [r["dag_run_id"] for r in runs(stack) if r["state"] == "failed"]
    if failed:
        raise SystemExit(f"bench/latency.py: runs of {FLOW} failed: {failed}\n{stack.diagnostics(FLOW, failed[0])}")


def stamp(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=20, help="back-office changes, one at a time (default 20)")
    parser.add_argument("--articles", type=int, default=1000, help="articles in the demo back office (default 1000)")
    parser.add_argument("--poll-seconds", type=float, help="flows.prices_stock.poll_seconds (default: the config's)")
    parser.add_argument("--settle-seconds", type=float, help="flows.prices_stock.settle_seconds (default: config's)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a change may take (default 300)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) and the database")
    args = parser.parse_args(argv)
    if args.changes < 1:
        parser.error("--changes must be >= 1")

    work = Path(tempfile.mkdtemp(prefix="passerelle-bench-latency-"))
    config = bench_config(work / "passerelle.yaml", args.poll_seconds, args.settle_seconds)
    settings = load_settings(config)
    flow = settings.flow(FLOW)
    server_dsn, stop_pg = local_postgres()
    stop_ftp = None
    stack: CeleryStack | None = None
    try:
        log(f"seeding a back office of {args.articles} articles into {DATABASE} ...")
        dsn = create_database(server_dsn, DATABASE, replace=True)
        with psycopg.connect(dsn) as conn:
            seed_database(conn, articles=args.articles, seed=42, photos=False)
            picked = [
                r[0]
                for r in conn.execute(
                    "SELECT reference FROM erp.article a WHERE web AND price_excl_vat > 0 AND name <> '' "
                    "AND NOT EXISTS (SELECT 1 FROM erp.variant v WHERE v.article_id = a.id) ORDER BY id LIMIT %s",
                    (args.changes,),
                )
            ]
        if len(picked) < args.changes:
            raise SystemExit(f"bench/latency.py: only {len(picked)} articles without variants to change")
        ftp, stop_ftp = start_ftp(work / "shop")
        for folder in (settings.shop.outbound_dir, "/inbound"):
            ftp.path(folder).mkdir(parents=True, exist_ok=True)

        log("starting Airflow (CeleryExecutor: api-server, scheduler, dag-processor, triggerer, worker) ...")
        started = time.monotonic()
        stack = CeleryStack(
            work / "stack",
            bundles={"passerelle": PROJECT_DAGS},
            extra_env={"PASSERELLE_CONFIG": str(config)},
            triggerer=True,
            pg_server_dsn=server_dsn,
            api_timeout=180.0,  # the machine may be shared: a slow answer is not a failure here
        )
        stack.start()
        stack.set_pool(settings.ftp_pool(FLOW), 2, "Connections to the shop's FTP/FTPS/SFTP server")
        stack.set_connection(settings.shop.erp_conn_id, dsn.replace("postgresql://", "postgres://", 1))
        stack.set_connection(settings.shop.shop_conn_id, ftp.uri())
        # Airflow's logging, set up by the import above, let the FTP server's per-command lines through.
        logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
        log(f"  up in {time.monotonic() - started:.0f} s; first run of {FLOW} (every price and stock) ...")
        baseline = stack.run_dag(FLOW, dag_file=f"{FLOW}.py", timeout=600)  # also unpauses the DAG
        log(f"  baseline run {baseline.run_id}: {baseline.state}")

        watcher = f"passerelle.change.{FLOW}"

        def watching() -> bool:
            stack.check_processes()
            with psycopg.connect(dsn) as conn:
                try:
                    row = conn.execute("SELECT 1 FROM passerelle.change_marker WHERE watcher = %s", (watcher,))
                except psycopg.errors.UndefinedTable:  # the watcher creates it when it first starts
                    return False
                return bool(row.fetchone())

        wait_until(watching, timeout=300, what=f"the triggerer to start the watcher {watcher}", interval=1.0)
        wait_runs_over(stack, timeout=600)
        log(f"watcher {watcher} running (poll {flow.poll_seconds:g} s, settle {flow.settle_seconds:g} s)")

        results: list[dict[str, Any]] = []
        for n, reference in enumerate(picked, 1):
            before = {r["dag_run_id"] for r in runs(stack)}
            known = shop_files(ftp.root)
            with psycopg.connect(dsn) as conn:
                conn.execute(
                    "UPDATE erp.article SET price_excl_vat = price_excl_vat + 1 WHERE reference = %s", (reference,)
                )
                conn.commit()
                committed = time.time()
            seen = wait_for_row(ftp.root, known, reference.encode(), timeout=args.timeout)
            if seen is None:
                raise SystemExit(
                    f"bench/latency.py: change {n} (price of {reference}) not on the shop's server after "
                    f"{args.timeout:.0f} s; Airflow logs in {stack.log_dir}"
                )
            arrived, path = seen
            wait_runs_over(stack, timeout=600)
            new = [r for r in runs(stack) if r["dag_run_id"] not in before]
            retries = sum(
                max(0, ti["try_number"] - 1) for r in new for ti in stack.task_instances(FLOW, r["dag_run_id"])
            )
            queued = min((stamp(r.get("queued_at")) or arrived for r in new), default=arrived)
            row = {
                "change": n,
                "reference": reference,
                "seconds": round(arrived - committed, 2),
                "detect_seconds": round(queued - committed, 2),
                "run_seconds": round(arrived - queued, 2),
                "file": str(path.relative_to(ftp.root)),
                "runs": len(new),
                "task_retries": retries,
            }
            results.append(row)
            log(
                f"  change {n:2d}: {reference} price +1 -> {row['file']} in {row['seconds']:6.2f} s "
                f"(detect {row['detect_seconds']:.2f} s, run {row['run_seconds']:.2f} s"
                + (f", {retries} task retries)" if retries else ")")
            )
    finally:
        if stack is not None:
            stack.stop()
        if stop_ftp is not None:
            stop_ftp()
        if not args.keep:
            drop_database(server_dsn, DATABASE)
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        stop_pg()

    latencies = [r["seconds"] for r in results]
    detect = [r["detect_seconds"] for r in results]
    run = [r["run_seconds"] for r in results]
    result = {
        "changes": len(results),
        "flow": FLOW,
        "articles": args.articles,
        "poll_seconds": flow.poll_seconds,
        "settle_seconds": flow.settle_seconds,
        "p50_seconds": round(statistics.median(latencies), 2),
        "p95_seconds": round(percentile(latencies, 95), 2),
        "max_seconds": round(max(latencies), 2),
        "min_seconds": round(min(latencies), 2),
        "detect_p50_seconds": round(statistics.median(detect), 2),
        "detect_p95_seconds": round(percentile(detect, 95), 2),
        "run_p50_seconds": round(statistics.median(run), 2),
        "run_p95_seconds": round(percentile(run, 95), 2),
        "task_retries": sum(r["task_retries"] for r in results),
        "retry_delay_seconds": RETRY_DELAY_SECONDS,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "latencies": latencies,
    }
    print(
        f"{FLOW} on change, {len(results)} changes: p50 {result['p50_seconds']:.1f} s, "
        f"p95 {result['p95_seconds']:.1f} s, max {result['max_seconds']:.1f} s "
        f"(detect p50 {result['detect_p50_seconds']:.1f} s, run p50 {result['run_p50_seconds']:.1f} s; "
        f"poll {flow.poll_seconds:g} s, settle {flow.settle_seconds:g} s); goal p95 < 60 s"
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
