"""Every benchmark of issue 15, one after the other, into README.md's table (``make bench-all``).

    .venv/bin/python bench/all.py            # the issue's sizes (34 minutes on a quiet 2-core machine)
    .venv/bin/python bench/all.py --quick    # small sizes: checks this script, writes no README

Runs, in this order, each in its own process (their output passes through; the machine does one
thing at a time): ``orders.py`` (10,000 orders; then again, ``--history 50000``, into a back office
that already holds 50,000 orders: a line of the table without a goal of its own, showing that
a file costs no more there), ``catalog_diff.py`` (100,000 articles, then
``--articles 1000000``), ``images.py`` (2,000 photos), ``latency.py`` (20 changes). Each prints
one JSON object as its last line; they are kept in ``bench/out/bench-all.json``.

From them, the figures of issue 15 (each a ratio to a baseline measured in the same run, or a
time end to end), printed as one JSON object on this script's last line:

========================================  =====================================================
``orders_floor_ratio``                    orders.py ``floor_ratio`` (goal <= 1.5)
``orders_connector_speedup``              orders.py ``connector_speedup`` (goal >= 10)
``orders_rerun_ratio``                    orders.py ``rerun_ratio`` (goal <= 0.05)
``catalog_1m_delta_floor_ratio``          catalog_diff.py at 1M, ``delta_floor_ratio`` (<= 2)
``catalog_1m_full_floor_ratio``           catalog_diff.py at 1M, ``full_floor_ratio`` (<= 4)
``catalog_memory_ratio``                  ``peak_rss_mb`` at 1M / at 100k (<= 1.5)
``photos_speedup``                        images.py ``speedup`` (>= 5)
``change_to_shop_p95_seconds``            latency.py ``p95_seconds`` (< 60)
========================================  =====================================================

and the README's table, written between the markers ``<!-- bench-all:start -->`` and
``<!-- bench-all:end -->`` (:func:`write_table`). A bench that prints no JSON last line, or whose
JSON lacks a field above, stops the run with a message naming the bench and the field. A bench
that exits non-zero after its JSON (a goal of its own missed, e.g. images.py's checks) is
reported in the table and makes this script exit 1, after the table is written.

``--quick`` runs small sizes (a few minutes) and writes its table to
``bench/out/bench-all-quick.md`` instead of README.md: small sizes do not measure the goals.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
START = "<!-- bench-all:start -->"
END = "<!-- bench-all:end -->"


class BenchError(RuntimeError):
    """A bench failed to give its figures; the message names the bench and what is missing."""


@dataclass(frozen=True)
class Bench:
    """One bench run: its key in the results, script and arguments (full and ``--quick``)."""

    key: str
    script: str
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    what: str


BENCHES: tuple[Bench, ...] = (
    Bench("orders", "orders.py", (), ("--orders", "1000"), "10,000 orders / 50,000 lines integrated"),
    Bench(
        "orders_past",
        "orders.py",
        ("--history", "50000", "--connector-orders", "100"),
        ("--orders", "1000", "--history", "2000", "--connector-orders", "50"),
        "the same orders into a back office that already holds 50,000",
    ),
    Bench("catalog_100k", "catalog_diff.py", (), ("--articles", "5000"), "catalog delta, 100,000 articles"),
    Bench(
        "catalog_1m",
        "catalog_diff.py",
        ("--articles", "1000000"),
        ("--articles", "20000"),
        "catalog delta, 1,000,000 articles",
    ),
    Bench("photos", "images.py", (), ("--photos", "20"), "2,000 photos 3000x2000 to thumbnail + large"),
    Bench("latency", "latency.py", (), ("--changes", "2"), "a back-office change to its file on the shop"),
)

#: (summary field, bench key, field of that bench's JSON) for the fields read as they are.
DIRECT: tuple[tuple[str, str, str], ...] = (
    ("orders_floor_ratio", "orders", "floor_ratio"),
    ("orders_connector_speedup", "orders", "connector_speedup"),
    ("orders_rerun_ratio", "orders", "rerun_ratio"),
    ("catalog_1m_delta_floor_ratio", "catalog_1m", "delta_floor_ratio"),
    ("catalog_1m_full_floor_ratio", "catalog_1m", "full_floor_ratio"),
    ("photos_speedup", "photos", "speedup"),
    ("change_to_shop_p95_seconds", "latency", "p95_seconds"),
)

#: Fields each bench's JSON must carry, checked as soon as it ends (a missing one stops the run
#: there, not an hour later).
REQUIRED: dict[str, tuple[str, ...]] = {
    "orders": ("floor_ratio", "connector_speedup", "rerun_ratio"),
    "orders_past": ("floor_ratio",),
    "catalog_100k": ("peak_rss_mb",),
    "catalog_1m": ("delta_floor_ratio", "full_floor_ratio", "peak_rss_mb"),
    "photos": ("speedup",),
    "latency": ("p95_seconds",),
}

#: Goals of issue 15: summary field -> (comparison, bound).
GOALS: dict[str, tuple[str, float]] = {
    "orders_floor_ratio": ("<=", 1.5),
    "orders_connector_speedup": (">=", 10.0),
    "orders_rerun_ratio": ("<=", 0.05),
    "catalog_1m_delta_floor_ratio": ("<=", 2.0),
    "catalog_1m_full_floor_ratio": ("<=", 4.0),
    "catalog_memory_ratio": ("<=", 1.5),
    "photos_speedup": (">=", 5.0),
    "change_to_shop_p95_seconds": ("<", 60.0),
}


def field(results: dict[str, dict[str, Any]], bench: str, name: str) -> Any:
    """``results[bench][name]``; :class:`BenchError` naming both when either is missing."""
    if bench not in results:
        raise BenchError(f"bench {bench!r} gave no results (no JSON last line)")
    figures = results[bench]
    if name not in figures or figures[name] is None:
        raise BenchError(
            f"bench {bench!r}: field {name!r} missing from its JSON last line (fields: {', '.join(sorted(figures))})"
        )
    return figures[name]


def summarize(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's figures from every bench's JSON last line (see the module doc)."""
    out: dict[str, Any] = {key: field(results, bench, name) for key, bench, name in DIRECT}
    peak_1m = float(field(results, "catalog_1m", "peak_rss_mb"))
    peak_100k = float(field(results, "catalog_100k", "peak_rss_mb"))
    if peak_100k <= 0:
        raise BenchError(f"bench 'catalog_100k': field 'peak_rss_mb' is {peak_100k}, expected > 0")
    out["catalog_memory_ratio"] = round(peak_1m / peak_100k, 3)
    order = [*[k for k, _, _ in DIRECT[:5]], "catalog_memory_ratio", *[k for k, _, _ in DIRECT[5:]]]
    return {key: out[key] for key in order}


def met(key: str, value: float) -> bool:
    op, bound = GOALS[key]
    return value <= bound if op == "<=" else value >= bound if op == ">=" else value < bound


def _n(value: Any, digits: int = 2) -> str:
    return f"{float(value):,.{digits}f}"


#: What each limit is: the least its ratio can be, measured in the same run (see the benches' docs).
ORDERS_LIMIT = "the floor + parsing the files + a bare `COPY` of their rows"
ORDERS_SERVER_LIMIT = "the floor + the files `COPY`ed raw and typed on the server"
ORDERS_CUSTOMERS = "the back office's own inserts of the files' customers, addresses and links"
DELTA_LIMIT = "one pass over the view hashing each selected row"
FULL_LIMIT = "every selected row out of the view with its hash, in key order"


def _limit(figures: dict[str, Any], name: str, what: str) -> str:
    """'; limit (what): Lx the floor' when the bench measured it (older JSON may lack it)."""
    if figures.get(name) is None:
        return ""
    return f"; measured limit ({what}): {_n(figures[name])}x the floor"


def _orders_bounds(figures: dict[str, Any]) -> str:
    """The limit of a design parsing the files on the server (alone, then with the customers any
    integration of the files writes, which the floor leaves out), and what the orders' own work costs
    at the least, when the bench measured them: its inserts file by file, and its CPU spread over
    the machine's cores (no overlap of the same work does better)."""
    out = ""
    if figures.get("server_limit_ratio") is not None:
        ratio = _n(figures["server_limit_ratio"])
        out += f"; a design parsing on the server ({ORDERS_SERVER_LIMIT}): {ratio}x the floor"
        if figures.get("server_bound_ratio") is not None:
            out += f", {_n(figures['server_bound_ratio'])}x with the customers it must write ({ORDERS_CUSTOMERS})"
        if figures.get("server_design_ratio") is not None:
            out += (
                f"; that design prototyped (checks and lookups in SQL, the integration's own writes): "
                f"{_n(figures['server_design_ratio'])}x, its raw `COPY` and those writes alone "
                f"{_n(figures['server_design_writes_ratio'])}x"
            )
    if figures.get("inserts_ratio") is not None:
        out += f"; the integration's own inserts alone, file by file: {_n(figures['inserts_ratio'])}x the floor"
    if figures.get("cpu_per_core_ratio") is not None:
        cores = figures.get("cores", "?")
        out += f"; the integration's CPU over the {cores} cores: {_n(figures['cpu_per_core_ratio'])}x the floor"
    return out


def _past_row(results: dict[str, dict[str, Any]]) -> list[str]:
    """The orders' line in a back office with a past (no goal of its own), when it was run."""
    past = results.get("orders_past")
    if not past or past.get("floor_ratio") is None:
        return []
    held = int(past.get("history_orders") or 0)
    return [
        f"| same, into a back office already holding {held:,} orders (`orders.py --history {held}`) | "
        f"**{_n(past['floor_ratio'])}x** the floor | the floor of the same run, the same "
        f"{int(past.get('orders', 0)):,} orders (a statement reading a whole table would cost more here) "
        "| as above | - |"
    ]


def table(results: dict[str, dict[str, Any]], summary: dict[str, Any], *, when: str, machine: str) -> str:
    """The README's table (Markdown) of one run: figure, what it is measured against, goal, met."""
    o, c1, c100, p, lat = (results[k] for k in ("orders", "catalog_1m", "catalog_100k", "photos", "latency"))

    def row(key: str, work: str, figure: str, anchor: str) -> str:
        op, bound = GOALS[key]
        mark = "**yes**" if met(key, float(summary[key])) else "**no**"
        goal = f"{op} {bound * 100:g} %" if key == "orders_rerun_ratio" else f"{op} {bound:g}"
        return f"| {work} | {figure} | {anchor} | {goal} | {mark} |"

    exits = {k: r["_exit_code"] for k, r in results.items() if r.get("_exit_code")}
    lines = [
        f"Measured by `make bench-all` on {when}, {machine}; each figure against a baseline of the same",
        "run. Details of each bench: [bench/README.md](bench/README.md).",
        "",
        "| work | figure | measured against | goal | met |",
        "| --- | --- | --- | --- | --- |",
        row(
            "orders_floor_ratio",
            f"{int(o.get('orders', 10000)):,} orders integrated (`orders.py`)",
            f"**{_n(summary['orders_floor_ratio'])}x** the floor",
            "the back office's own inserts of the same rows (its floor)"
            + _limit(o, "limit_ratio", ORDERS_LIMIT)
            + _orders_bounds(o),
        ),
        *_past_row(results),
        row(
            "orders_connector_speedup",
            "same, vs a one-order-per-transaction connector",
            f"**{_n(summary['orders_connector_speedup'], 1)}x** faster",
            "lookups and row inserts through the same constraints, as shop connectors do",
        ),
        row(
            "orders_rerun_ratio",
            "same file again (rerun)",
            f"**{_n(float(summary['orders_rerun_ratio']) * 100, 2)} %** of the first run",
            "the first run",
        ),
        row(
            "catalog_1m_delta_floor_ratio",
            "catalog delta, 1,000,000 articles, 1 % changed (`catalog_diff.py --articles 1000000`)",
            f"**{_n(summary['catalog_1m_delta_floor_ratio'])}x** the floor",
            "a bare `COPY` of every table the view reads" + _limit(c1, "delta_limit_ratio", DELTA_LIMIT),
        ),
        row(
            "catalog_1m_full_floor_ratio",
            "catalog full first send, 1,000,000 articles",
            f"**{_n(summary['catalog_1m_full_floor_ratio'])}x** the floor",
            "the same floor" + _limit(c1, "full_limit_ratio", FULL_LIMIT),
        ),
        row(
            "catalog_memory_ratio",
            "catalog peak memory, 1,000,000 vs 100,000 articles",
            f"**{_n(summary['catalog_memory_ratio'])}x** ({_n(c1['peak_rss_mb'], 0)} MB / "
            f"{_n(c100['peak_rss_mb'], 0)} MB)",
            "the 100,000-article run",
        ),
        row(
            "photos_speedup",
            f"{int(p.get('photos', 2000)):,} photos 3000x2000 to thumbnail + large (`images.py`)",
            f"**{_n(summary['photos_speedup'])}x** ImageMagick"
            + (f" ({_n(p['seconds'], 1)} s vs {_n(p['imagemagick_seconds'], 1)} s)" if "seconds" in p else ""),
            "ImageMagick, same photos, same number of processes",
        ),
        row(
            "change_to_shop_p95_seconds",
            f"a back-office change to its file on the shop, {lat.get('changes', '?')} changes (`latency.py`)",
            f"p95 **{_n(summary['change_to_shop_p95_seconds'], 1)} s**"
            + (f", p50 {_n(lat['p50_seconds'], 1)} s" if "p50_seconds" in lat else ""),
            "commit in the back office to file on the FTP server, on-change flow, real scheduler and triggerer",
        ),
    ]
    if exits:
        lines += [
            "",
            "Benches that exited non-zero: " + ", ".join(f"`{k}` ({v})" for k, v in sorted(exits.items())) + ".",
        ]
    if o.get("_quick"):
        lines += ["", "Quick sizes (`--quick`): these figures do not measure the goals."]
    return "\n".join(lines) + "\n"


def write_table(readme: Path, text: str) -> None:
    """Replace what lies between the bench-all markers of *readme* with *text*."""
    content = readme.read_text(encoding="utf-8")
    start, end = content.find(START), content.find(END)
    if start < 0 or end < 0 or end < start:
        raise BenchError(
            f"{readme}: markers {START} and {END} not found (in that order); add them where the table goes"
        )
    head = content[: start + len(START)]
    readme.write_text(f"{head}\n{text}{content[end:]}", encoding="utf-8")


def last_json(lines: list[str], bench: str) -> dict[str, Any]:
    """The JSON object on the last non-empty output line of *bench*."""
    tail = next((line for line in reversed(lines) if line.strip()), "")
    try:
        value = json.loads(tail)
    except json.JSONDecodeError:
        raise BenchError(f"bench {bench!r}: its last output line is not JSON: {tail[:200]!r}") from None
    if not isinstance(value, dict):
        raise BenchError(f"bench {bench!r}: its last output line is JSON but not an object: {tail[:200]!r}")
    return value


def run(bench: Bench, quick: bool) -> dict[str, Any]:
    """Run one bench, its output passing through; its JSON last line with ``_exit_code``, ``_seconds``."""
    argv = [sys.executable, str(ROOT / "bench" / bench.script), *(bench.quick_args if quick else bench.args)]
    print(f"\n=== {bench.key}: {' '.join(argv[1:])}", flush=True)
    started = time.monotonic()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugins"), os.environ.get("PYTHONPATH")])),
    }
    tail: deque[str] = deque(maxlen=20)
    with subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            tail.append(line.rstrip("\n"))
    figures = last_json(list(tail), bench.key)
    figures["_exit_code"] = proc.returncode
    figures["_seconds"] = round(time.monotonic() - started, 1)
    figures["_quick"] = quick
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; the table goes to bench/out, not README")
    parser.add_argument("--readme", type=Path, help="file with the markers (default README.md; --quick: bench/out)")
    parser.add_argument("--only", nargs="+", choices=[b.key for b in BENCHES], help="run these benches only")
    parser.add_argument(
        "--from-json", type=Path, help="skip running: take the results of an earlier run (bench-all.json)"
    )
    args = parser.parse_args(argv)

    OUT.mkdir(parents=True, exist_ok=True)
    store = OUT / ("bench-all-quick.json" if args.quick else "bench-all.json")
    if args.from_json:
        results = json.loads(args.from_json.read_text(encoding="utf-8"))
    else:
        results = json.loads(store.read_text(encoding="utf-8")) if args.only and store.exists() else {}
        for bench in BENCHES:
            if args.only and bench.key not in args.only:
                continue
            results[bench.key] = run(bench, args.quick)
            store.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")  # kept as it goes
            try:
                for name in REQUIRED[bench.key]:
                    field(results, bench.key, name)
            except BenchError as exc:
                sys.exit(f"bench/all.py: {exc} (results so far in {store})")
    try:
        summary = summarize(results)
    except BenchError as exc:
        sys.exit(f"bench/all.py: {exc} (results so far in {args.from_json or store})")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{os.cpu_count()} cores, Python {platform.python_version()}"
    text = table(results, summary, when=when, machine=machine)
    readme = args.readme or (OUT / "bench-all-quick.md" if args.quick else ROOT / "README.md")
    if args.quick and not readme.exists():
        readme.write_text(f"# bench/all.py --quick\n\n{START}\n{END}\n", encoding="utf-8")
    write_table(readme, text)
    print(f"\n{text}\ntable written to {readme}; results in {args.from_json or store}")
    failed = sorted(k for k, r in results.items() if r.get("_exit_code"))
    print(json.dumps(summary))
    if failed:
        sys.exit(1)
    return summary


if __name__ == "__main__":
    main()
