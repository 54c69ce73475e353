"""bench/all.py's bookkeeping on sample JSON last lines (the benches themselves are not run here)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench_all():
    spec = importlib.util.spec_from_file_location("bench_all", ROOT / "bench" / "all.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_all"] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_all", None)


def sample() -> dict[str, dict]:
    """Last lines as the benches print them (only the fields bench/all.py reads, plus a few)."""
    return {
        "orders": {"orders": 10000, "floor_ratio": 1.42, "connector_speedup": 11.3, "rerun_ratio": 0.004},
        "catalog_100k": {"rows": 90026, "delta_floor_ratio": 1.8, "full_floor_ratio": 3.1, "peak_rss_mb": 80.0},
        "catalog_1m": {"rows": 899991, "delta_floor_ratio": 1.9, "full_floor_ratio": 3.6, "peak_rss_mb": 100.0},
        "photos": {"photos": 2000, "seconds": 40.0, "imagemagick_seconds": 220.0, "speedup": 5.5},
        "latency": {"changes": 20, "p50_seconds": 31.2, "p95_seconds": 71.5},
    }


def test_summary_takes_each_field_and_divides_the_peaks(bench_all):
    summary = bench_all.summarize(sample())

    assert summary == {
        "orders_floor_ratio": 1.42,
        "orders_connector_speedup": 11.3,
        "orders_rerun_ratio": 0.004,
        "catalog_1m_delta_floor_ratio": 1.9,
        "catalog_1m_full_floor_ratio": 3.6,
        "catalog_memory_ratio": 1.25,
        "photos_speedup": 5.5,
        "change_to_shop_p95_seconds": 71.5,
    }
    assert json.loads(json.dumps(summary)) == summary  # the last line is plain JSON


@pytest.mark.parametrize(
    ("bench", "name"),
    [("orders", "connector_speedup"), ("catalog_1m", "delta_floor_ratio"), ("catalog_100k", "peak_rss_mb")],
)
def test_a_missing_field_names_the_bench_and_the_field(bench_all, bench, name):
    results = sample()
    del results[bench][name]

    with pytest.raises(bench_all.BenchError, match=rf"bench '{bench}': field '{name}' missing"):
        bench_all.summarize(results)


def test_a_bench_without_json_is_named(bench_all):
    with pytest.raises(bench_all.BenchError, match="bench 'photos': its last output line is not JSON"):
        bench_all.last_json(["rendering...", "Traceback (most recent call last):", "  boom"], "photos")
    assert bench_all.last_json(["table", '{"speedup": 5.1}', ""], "photos") == {"speedup": 5.1}


def test_table_goes_between_the_markers_and_says_which_goals_are_met(bench_all, tmp_path):
    readme = tmp_path / "README.md"
    before, after = "# Project\n\n## Benchmarks\n\nintro\n", "\n## Trials\n\nuntouched\n"
    readme.write_text(f"{before}{bench_all.START}\nold figures\n{bench_all.END}{after}", encoding="utf-8")
    results = sample()
    results["photos"]["_exit_code"] = 1
    summary = bench_all.summarize(results)

    text = bench_all.table(results, summary, when="2026-12-01 23:00 UTC", machine="2 cores")
    bench_all.write_table(readme, text)
    bench_all.write_table(readme, text)  # twice: same file (the markers stay, nothing piles up)

    content = readme.read_text(encoding="utf-8")
    assert content.startswith(before + bench_all.START) and content.endswith(bench_all.END + after)
    assert "old figures" not in content and content.count("| work | figure |") == 1
    rows = {line.split(" | ")[0].strip("| "): line for line in content.splitlines() if line.startswith("| ")}
    latency = next(line for key, line in rows.items() if key.startswith("a back-office change"))
    assert "p95 **71.5 s**" in latency and latency.endswith("| < 60 | **no** |")  # 71.5 s misses the goal
    photos = next(line for key, line in rows.items() if key.startswith("2,000 photos"))
    assert "**5.50x** ImageMagick (40.0 s vs 220.0 s)" in photos and photos.endswith("| >= 5 | **yes** |")
    memory = next(line for key, line in rows.items() if key.startswith("catalog peak memory"))
    assert "**1.25x** (100 MB / 80 MB)" in memory and memory.endswith("| <= 1.5 | **yes** |")
    rerun = next(line for key, line in rows.items() if key.startswith("same file again"))
    assert "**0.40 %** of the first run" in rerun and rerun.endswith("| <= 5 % | **yes** |")
    assert "Benches that exited non-zero: `photos` (1)." in content


def test_a_readme_without_markers_is_refused(bench_all, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n", encoding="utf-8")
    with pytest.raises(bench_all.BenchError, match="markers .* not found"):
        bench_all.write_table(readme, "| table |\n")
    assert readme.read_text(encoding="utf-8") == "# Project\n"


def test_the_project_readme_has_the_markers(bench_all):
    content = (ROOT / "README.md").read_text(encoding="utf-8")
    assert content.index(bench_all.START) < content.index(bench_all.END)


def test_every_field_read_is_checked_when_its_bench_ends(bench_all):
    """The early check (after each bench) covers every field the summary reads."""
    read = {(bench, name) for _, bench, name in bench_all.DIRECT}
    read |= {("catalog_1m", "peak_rss_mb"), ("catalog_100k", "peak_rss_mb")}
    read |= {("orders_past", "floor_ratio")}  # the table's line without a goal
    required = {(bench, name) for bench, names in bench_all.REQUIRED.items() for name in names}
    assert read == required
    assert set(bench_all.REQUIRED) == {b.key for b in bench_all.BENCHES}


def test_the_measured_limits_are_shown_beside_their_goal(bench_all):
    """Where a goal lies below what any design pays, the table says so with the bench's own limit."""
    results = sample()
    results["orders"].update(
        {
            "limit_ratio": 1.83,
            "server_limit_ratio": 1.23,
            "server_bound_ratio": 1.31,
            "server_design_ratio": 2.56,
            "server_design_writes_ratio": 1.52,
            "inserts_ratio": 1.52,
            "cores": 2,
            "cpu_per_core_ratio": 1.71,
        }
    )
    results["catalog_1m"].update({"delta_limit_ratio": 1.71, "full_limit_ratio": 2.4})
    text = bench_all.table(results, bench_all.summarize(results), when="now", machine="2 cores")

    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    orders = next(line for key, line in rows.items() if key.startswith("10,000 orders"))
    assert "measured limit (the floor + parsing the files + a bare `COPY` of their rows): 1.83x the floor" in orders
    assert "parsing on the server (the floor + the files `COPY`ed raw and typed on the server): 1.23x" in orders
    assert "1.31x with the customers it must write (the back office's own inserts of the files' customers" in orders
    assert "prototyped (checks and lookups in SQL, the integration's own writes): 2.56x, its raw `COPY` and" in orders
    assert "those writes alone 1.52x" in orders
    assert "own inserts alone, file by file: 1.52x the floor; the integration's CPU over the 2 cores: 1.71x" in orders
    delta = next(line for key, line in rows.items() if key.startswith("catalog delta"))
    assert "measured limit (one pass over the view hashing each selected row): 1.71x the floor" in delta
    full = next(line for key, line in rows.items() if key.startswith("catalog full"))
    assert "2.40x the floor" in full

    del results["catalog_1m"]["full_limit_ratio"]  # an older bench's JSON: no limit, no claim
    del results["orders"]["cpu_per_core_ratio"]
    del results["orders"]["server_limit_ratio"]
    del results["orders"]["server_bound_ratio"]
    del results["orders"]["server_design_ratio"]
    text = bench_all.table(results, bench_all.summarize(results), when="now", machine="2 cores")
    assert "measured limit (every selected row" not in text
    assert "parsing on the server" not in text
    assert "file by file: 1.52x" in text and "CPU over" not in text


def run_bench(script: str, *args: str, dsn: str, tmp_path: Path) -> dict:
    """``bench/<script> args`` on the tests' server, in a database of its own (dropped by the
    bench); asserts it exits 0 and returns its JSON last line."""
    import subprocess

    database = f"passerelle_bench_{Path(script).stem}_{tmp_path.name[-8:].lower()}"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args, "--database", database, "--dsn", dsn],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_catalog_bench_runs_end_to_end(pg_server, tmp_path):
    """bench/catalog_diff.py at a tiny size on the tests' PostgreSQL: it seeds, sends, measures each
    line and prints its JSON last line with the fields bench/all.py reads (a change of the differ's
    functions once broke it unnoticed until a 1,000,000-article run)."""
    last = run_bench("catalog_diff.py", "--articles", "300", "--repeat", "1", dsn=pg_server, tmp_path=tmp_path)
    assert last["rows"] > 0 and last["delta_rows"] > 0 and last["full_rows"] == last["rows"]
    for field in ("delta_floor_ratio", "full_floor_ratio", "delta_limit_ratio", "full_limit_ratio", "peak_rss_mb"):
        assert last[field] > 0, field


def test_the_orders_bench_runs_end_to_end(pg_server, tmp_path):
    """bench/orders.py at a tiny size on the tests' PostgreSQL: every line measured, the orders
    integrated, the connector's too, and the JSON last line with the fields bench/all.py reads and
    the limits it shows."""
    last = run_bench(
        "orders.py",
        *("--orders", "120", "--files", "3", "--connector-orders", "40", "--history", "80"),
        dsn=pg_server,
        tmp_path=tmp_path,
    )
    # The floor re-inserts the 120 timed orders only, not the back office's past 80.
    assert (last["orders"], last["lines"], last["files"], last["rejected_rows"]) == (120, 600, 3, 0)
    assert (last["history_orders"], last["floor_orders"]) == (80, 120)
    assert last["connector_orders"] == 40 and last["connector_lines"] == 200
    # The inserts are timed inside the integration; the CPU is read from the server process (local).
    assert 0 < last["inserts_seconds"] < last["seconds"]
    assert last["cores"] >= 1
    if last["server_cpu_seconds"] is not None:  # None when the server's /proc cannot be read
        assert last["cpu_per_core_ratio"] > 0
    for field in ("floor_ratio", "connector_speedup", "limit_ratio", "inserts_ratio"):
        assert last[field] > 0, field
    # The server-side design's bound: the floor plus a raw COPY and a typing pass over every row.
    assert last["raw_copy_seconds"] > 0 and last["typing_seconds"] > 0
    assert last["server_limit_seconds"] > last["floor_seconds"] and last["server_limit_ratio"] > 1
    # With the customers the files carry (40 of the 120 orders'), addresses and links written again.
    assert last["floor_customers"] == 40 and last["customers_floor_seconds"] > 0
    assert last["server_bound_seconds"] > last["server_limit_seconds"]
    assert last["server_bound_ratio"] >= last["server_limit_ratio"]
    # The prototype of that design integrates the same orders (under other ids), none rejected; its raw
    # COPY and the integration's own writes are part of its time.
    assert last["server_design_orders"] == 120
    assert 0 < last["server_design_copy_seconds"] + last["server_design_writes_seconds"] < last["server_design_seconds"]
    assert 0 <= last["rerun_ratio"] < 1


def test_the_orders_into_a_back_office_with_a_past_get_their_own_line_without_a_goal(bench_all):
    """orders.py --history: its line follows the orders' own, with its ratio and no goal of its
    own; results of a run before it (no such bench) give the table without that line."""
    results = sample()
    results["orders_past"] = {"orders": 10000, "history_orders": 50000, "floor_ratio": 2.81}
    text = bench_all.table(results, bench_all.summarize(results), when="now", machine="2 cores")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    at = next(i for i, line in enumerate(rows) if "already holding 50,000 orders" in line)
    assert rows[at - 1].startswith("| 10,000 orders integrated")
    assert "**2.81x** the floor" in rows[at] and rows[at].endswith("| as above | - |")
    del results["orders_past"]
    text = bench_all.table(results, bench_all.summarize(results), when="now", machine="2 cores")
    assert "already holding" not in text
