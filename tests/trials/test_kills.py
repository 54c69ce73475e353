"""SIGKILL at random points of the import and of the publish, then a clean rerun (issue #12).

Each round runs the flow's real operators in a fresh process (forked from a zygote that imported
Airflow once), kills it with ``os.kill(pid, SIGKILL)`` after a random delay, looks at what the
shop's server and the back office hold, then reruns cleanly and compares:

* import: every paid order of the shop's files is in the back office exactly once, with its lines
  and payment once (the shop's order ids in the files against ``erp.sales_order`` and the order
  ledger); no file left unread; nothing under a final name in the archive or error folder that is
  not whole;
* publish: no file under its final name on the shop's server that is not the outbox's bytes, the
  snapshot never holds (or calls confirmed) a batch whose manifest is not on the server, and after
  the rerun every batch is on the server once, whole, and confirmed.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pendulum
import psycopg
import pytest
from tests.trials.conftest import size
from tests.trials.record import record
from tests.trials.shop import connections_env, import_config, orders_file, published_state, sha

from passerelle_demo.localenv import start_ftp

SEED = int(os.environ.get("TRIALS_SEED") or 12)


def _kill_after(zygote, job: str, delay: float, *, log: Path, env: dict, **kwargs) -> str:
    """Start ``job``, SIGKILL it after ``delay`` seconds; what became of it."""
    pid = zygote.start(job, log=log, env=env, **kwargs)
    time.sleep(delay)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    end = zygote.wait()
    if end.get("signal") == signal.SIGKILL:
        return "killed"
    return "finished" if end.get("exit") == 0 else "failed"


def _delay(rng: random.Random, r: int, clean: float) -> float:
    """When to kill round ``r``: anywhere in a clean run's duration, the first round in its first half
    (so that even two rounds kill at least one run in mid-flight)."""
    return rng.uniform(0.1, 0.5) * clean if r == 0 else rng.uniform(0, clean * 1.1)


# ------------------------------------------------------------------------------------------------
# Import
# ------------------------------------------------------------------------------------------------


def _inbound_check(conn: psycopg.Connection, root: Path, expected: dict[str, int], dropped: dict[str, bytes]) -> dict:
    """Lost, doubled and partial files after a rerun (see the module's docstring)."""
    rows = conn.execute(
        "SELECT o.shop_order_id, count(DISTINCT o.id), count(l.*), "
        "(SELECT count(*) FROM erp.payment p WHERE p.order_id = min(o.id)), "
        "(SELECT count(*) FROM passerelle.order_ledger g WHERE g.shop_order_id = o.shop_order_id) "
        "FROM erp.sales_order o LEFT JOIN erp.sales_order_line l ON l.order_id = o.id "
        "WHERE o.shop_order_id = ANY(%s) GROUP BY o.shop_order_id",
        (list(expected),),
    ).fetchall()
    held = {r[0]: r[1:] for r in rows}
    lost = sorted(set(expected) - set(held))
    doubled = sorted(
        o for o, (n, lines, pays, ledger) in held.items() if n > 1 or lines != expected[o] or pays > 1 or ledger != 1
    )
    stranded = conn.execute("SELECT count(*) FROM passerelle.inbound_file WHERE status = 'integrated'").fetchone()[0]
    conn.commit()
    left = sorted(p.name for p in (root / "inbound").glob("*.csv"))
    return {
        "lost": lost,
        "doubled": doubled,
        "partial": _inbound_partial(root, dropped),
        "left": left,
        "stranded": stranded,
    }


def _inbound_partial(root: Path, dropped: dict[str, bytes]) -> list[str]:
    """Files under a final name in the archive or error folder whose bytes are not what they claim:
    ``<sha12>_<name>`` must be the shop's file of that name, a rejects file must end its last row."""
    bad = []
    by_name = dict(dropped.items())
    for folder in (root / "inbound" / "archive", root / "errors"):
        for f in folder.glob("*") if folder.exists() else []:
            if f.name.endswith(".part"):
                continue
            data = f.read_bytes()
            if f.name.endswith(".rejects.csv"):
                if not data.endswith(b"\n") or b"reason" not in data.splitlines()[0]:
                    bad.append(f"{folder.name}/{f.name}")
                continue
            digest, _, name = f.name.partition("_")
            if by_name.get(name) != data or sha(data)[:12] != digest:
                bad.append(f"{folder.name}/{f.name}")
    return bad


def import_rounds(rounds: int, zygote, erp_dsn: str, tmp_path: Path, *, trial: str) -> dict:
    rng = random.Random(SEED)
    server, stop = start_ftp(tmp_path / "shop")
    env = connections_env(erp_dsn, server.uri(), import_config(tmp_path))
    inbound = server.root / "inbound"
    inbound.mkdir(parents=True)
    expected: dict[str, int] = {}
    dropped: dict[str, bytes] = {}
    outcomes = {"killed": 0, "finished": 0, "failed": 0}
    totals = {"lost": 0, "doubled": 0, "partial": 0, "left": 0, "stranded": 0, "reruns_failed": 0}
    found: list[str] = []

    def drop(r: int) -> None:
        for k in range(2):
            data, exp = orders_file(f"K{r:03d}{k}", 20, rng)
            name = f"orders_{r:03d}_{k}.csv"
            (inbound / name).write_bytes(data)
            dropped[name] = data
            expected.update(exp)

    try:
        with psycopg.connect(erp_dsn) as conn:
            drop(999)  # calibration: how long one clean import of a round's files takes
            t0 = time.monotonic()
            end = zygote.run("tests.trials.jobs:import_files", log=tmp_path / "calibrate.log", env=env)
            clean = time.monotonic() - t0
            assert end.get("exit") == 0, (tmp_path / "calibrate.log").read_text()[-3000:]
            for r in range(rounds):
                drop(r)
                log = tmp_path / f"import_{r:03d}.log"
                what = _kill_after(zygote, "tests.trials.jobs:import_files", _delay(rng, r, clean), log=log, env=env)
                outcomes[what] += 1
                now = _inbound_partial(server.root, dropped)  # what the shop sees right after the kill
                rerun = zygote.run("tests.trials.jobs:import_files", log=log, env=env)
                if rerun.get("exit") != 0:
                    totals["reruns_failed"] += 1
                    found.append(f"round {r}: the clean rerun failed: {log.read_text()[-400:]}")
                state = _inbound_check(conn, server.root, expected, dropped)
                state["partial"] = sorted(set(state["partial"]) | set(now))
                for k in ("lost", "doubled", "partial", "left"):
                    totals[k] += len(state[k])
                    if state[k]:
                        found.append(f"round {r}: {k} {state[k][:5]}")
                totals["stranded"] = state["stranded"]
    finally:
        stop()
    outcome = "ok" if not found else "; ".join(found)[:600]
    if totals["stranded"]:
        outcome += f"; {totals['stranded']} ledger rows left 'integrated' without their archive name (issue #12 item 9)"
    record(
        trial,
        outcome,
        kill_rounds=rounds,
        lost=totals["lost"],
        doubled=totals["doubled"],
        partial_files=totals["partial"],
        orders=len(expected),
        killed=outcomes["killed"],
        ended_before_kill=outcomes["finished"] + outcomes["failed"],
        files_left_unread=totals["left"],
        stranded_ledger_rows=totals["stranded"],
        clean_run_s=round(clean, 1),
    )
    return {**totals, **outcomes, "found": found, "orders": len(expected)}


def _assert_import(out: dict, rounds: int) -> None:
    assert out["killed"] >= 1 or rounds < 2, f"no round was killed mid-run: {out}"
    assert (out["lost"], out["doubled"], out["partial"], out["left"], out["reruns_failed"]) == (0, 0, 0, 0, 0), out[
        "found"
    ]


def test_import_killed_at_random_points_loses_and_doubles_nothing(zygote, erp_dsn, tmp_path):
    out = import_rounds(2, zygote, erp_dsn, tmp_path, trial="import: SIGKILL (make test)")
    _assert_import(out, 2)


@pytest.mark.trials
def test_import_killed_many_times(zygote, erp_dsn, tmp_path):
    rounds = size("TRIALS_ROUNDS", 50)
    out = import_rounds(rounds, zygote, erp_dsn, tmp_path, trial=f"import: SIGKILL x{rounds}")
    _assert_import(out, rounds)


# ------------------------------------------------------------------------------------------------
# Publish
# ------------------------------------------------------------------------------------------------


def publish_rounds(
    rounds: int, zygote, erp_dsn: str, tmp_path: Path, *, trial: str, flow: str = "prices_stock"
) -> dict:
    rng = random.Random(SEED + 1)
    server, stop = start_ftp(tmp_path / "shop")
    env = connections_env(erp_dsn, server.uri())
    start = pendulum.datetime(2026, 11, 20, 10, tz="Europe/Paris")
    outcomes = {"killed": 0, "finished": 0, "failed": 0}
    totals = {"lost": 0, "doubled": 0, "partial": 0, "ahead": 0, "reruns_failed": 0}
    found: list[str] = []
    try:
        with psycopg.connect(erp_dsn) as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM erp.article WHERE web AND price_excl_vat > 0 ORDER BY id LIMIT 300"
                )
            ]
            conn.commit()
            # Calibration: the first run (full), then a delta as each round sends; the kills fall within it.
            for back in (2, 1):
                conn.execute(
                    "UPDATE erp.article SET price_excl_vat = price_excl_vat + 1 WHERE id = ANY(%s)",
                    (rng.sample(ids, 5),),
                )
                conn.commit()
                t0 = time.monotonic()
                end = zygote.run(
                    "tests.trials.jobs:publish_flow",
                    log=tmp_path / "calibrate.log",
                    env=env,
                    flow=flow,
                    logical_date=start.subtract(hours=back).isoformat(),
                )
                clean = time.monotonic() - t0
                assert end.get("exit") == 0, (tmp_path / "calibrate.log").read_text()[-3000:]
            for r in range(rounds):
                # Something to send: a few prices and stock levels change every hour.
                conn.execute(
                    "UPDATE erp.article SET price_excl_vat = price_excl_vat + 1 WHERE id = ANY(%s)",
                    (rng.sample(ids, 5),),
                )
                conn.commit()
                when = start.add(hours=r).isoformat()
                log = tmp_path / f"publish_{r:03d}.log"
                what = _kill_after(
                    zygote,
                    "tests.trials.jobs:publish_flow",
                    _delay(rng, r, clean),
                    log=log,
                    env=env,
                    flow=flow,
                    logical_date=when,
                )
                outcomes[what] += 1
                now = published_state(conn, server.root, flow)
                rerun = zygote.run("tests.trials.jobs:publish_flow", log=log, env=env, flow=flow, logical_date=when)
                if rerun.get("exit") != 0:
                    totals["reruns_failed"] += 1
                    found.append(f"round {r}: the clean rerun failed: {log.read_text()[-400:]}")
                after = published_state(conn, server.root, flow)
                partial = sorted(set(now["partial"]) | set(after["partial"]))
                ahead = sorted(set(now["ahead"]) | set(after["ahead"]))
                batch = conn.execute(
                    "SELECT id, status FROM passerelle.batch WHERE flow = %s AND run_key = %s", (flow, when)
                ).fetchone()
                conn.commit()
                lost = [] if batch and batch[1] == "confirmed" and batch[0] in after["folders"] else [when]
                doubled = [b for b, folders in after["folders"].items() if len(folders) > 1]
                for k, v in (("lost", lost), ("doubled", doubled), ("partial", partial), ("ahead", ahead)):
                    totals[k] += len(v)
                    if v:
                        found.append(f"round {r} ({what}): {k} {v[:5]}")
    finally:
        stop()
    record(
        trial,
        "ok" if not found else "; ".join(found)[:600],
        kill_rounds=rounds,
        lost=totals["lost"],
        doubled=totals["doubled"],
        partial_files=totals["partial"],
        snapshot_ahead=totals["ahead"],
        killed=outcomes["killed"],
        ended_before_kill=outcomes["finished"] + outcomes["failed"],
        clean_run_s=round(clean, 1),
    )
    return {**totals, **outcomes, "found": found}


def _assert_publish(out: dict, rounds: int) -> None:
    assert out["killed"] >= 1 or rounds < 2, f"no round was killed mid-run: {out}"
    assert (out["lost"], out["doubled"], out["partial"], out["ahead"], out["reruns_failed"]) == (0, 0, 0, 0, 0), out[
        "found"
    ]


def test_publish_killed_at_random_points_never_shows_a_partial_file_nor_runs_ahead(zygote, erp_dsn, tmp_path):
    out = publish_rounds(2, zygote, erp_dsn, tmp_path, trial="publish: SIGKILL (make test)")
    _assert_publish(out, 2)


@pytest.mark.trials
def test_publish_killed_many_times(zygote, erp_dsn, tmp_path):
    rounds = size("TRIALS_ROUNDS", 50)
    out = publish_rounds(rounds, zygote, erp_dsn, tmp_path, trial=f"publish: SIGKILL x{rounds}")
    _assert_publish(out, rounds)
