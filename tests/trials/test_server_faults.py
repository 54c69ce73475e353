"""Server faults during the publish and the import (issue #12): the shop's FTP server cuts the upload,
is full (452, 552), refuses the rename, has no SIZE, lies about sizes, is down; the back office's
connection is killed (``pg_terminate_backend``) and, in ``make trials``, its server restarted (a
cluster the test starts itself; never the machine's shared PostgreSQL).

The faults are pyftpdlib handlers subclassed to misbehave, serving a real folder. After each fault:
the task failed with a message naming the server and the file (or succeeded when the fault is one a
retry or a fallback overcomes); no file under its final name is partial; the batch is not marked
published and the snapshot has not moved; then a healthy server on the same folder takes a clean
rerun, which publishes every file whole.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from pathlib import Path

import pendulum
import psycopg
import pytest
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import DTPHandler, FTPHandler
from pyftpdlib.servers import ThreadedFTPServer
from tests.trials.conftest import size
from tests.trials.record import record
from tests.trials.shop import connections_env, import_config, orders_file, published_state

WHEN = pendulum.datetime(2026, 11, 20, 10, tz="Europe/Paris")


def start_faulty(root: Path, **attrs) -> tuple[str, callable]:
    """pyftpdlib on ``root`` (user ``shop``, all rights) with handler attributes replaced by ``attrs``;
    returns (the Airflow connection URI, stop)."""
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    root.mkdir(parents=True, exist_ok=True)
    authorizer = DummyAuthorizer()
    authorizer.add_user("shop", "s3cret-trials", str(root), perm="elradfmwMT")
    handler = type("Faulty", (FTPHandler,), {"authorizer": authorizer, "banner": "faulty", **attrs})
    server = ThreadedFTPServer(("127.0.0.1", 0), handler)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2}, daemon=True)
    thread.start()

    def stop() -> None:
        server.close_all()
        thread.join(5)

    return f"ftp://shop:s3cret-trials@127.0.0.1:{port}/", stop


def cutting_dtp(after: int, times: int | None = None) -> type:
    """A data channel that drops the whole session once ``after`` bytes of an upload arrived;
    ``times`` cuts at most that many uploads (None: every one)."""
    state = {"left": times}

    class CutDTP(DTPHandler):
        ac_in_buffer_size = 512

        def handle_read(self):
            super().handle_read()
            if self.receive and self.tot_bytes_received >= after and state["left"] != 0 and not self._closed:
                if state["left"] is not None:
                    state["left"] -= 1
                self.file_obj.flush()
                self.cmd_channel.close()  # the connection drops in mid-upload

        handle_read_event = handle_read  # the base class binds its own handle_read here

    return CutDTP


def _refuse(reply: str):
    return lambda self, *args, **kwargs: self.respond(reply)


def _lying_size(self, path):
    try:
        size_ = self.run_as_current_user(self.fs.getsize, path)
    except OSError:
        return self.respond("550 No such file or directory.")
    self.respond(f"213 {max(size_ - 7, 0)}")  # a server that truncated the upload silently


def _without(*commands: str) -> dict:
    return {"proto_cmds": {k: v for k, v in FTPHandler.proto_cmds.items() if k not in commands}}


#: fault -> (handler attributes, whether the publish must still succeed)
FAULTS = {
    "upload cut in mid-file, every time": ({"dtp_handler": cutting_dtp(1500)}, False),
    "upload cut in mid-file, once (a retry succeeds)": ({"dtp_handler": cutting_dtp(1500, times=1)}, True),
    "full disk: 452 on upload": ({"ftp_STOR": _refuse("452 Insufficient storage space.")}, False),
    "full disk: 552 on upload": ({"ftp_STOR": _refuse("552 Exceeded storage allocation.")}, False),
    "rename refused": ({"ftp_RNTO": _refuse("553 Rename refused by the server's policy.")}, False),
    "no SIZE, no MLSD (read back instead)": (_without("SIZE", "MLSD", "MLST"), True),
    "silent truncation (SIZE says less)": ({"ftp_SIZE": _lying_size}, False),
    "server down": (None, False),
}


def _publish(monkeypatch, erp_dsn: str, uri: str) -> dict:
    from passerelle.operators.batch import ConfirmBatchOperator, PublishBatchOperator
    from passerelle.operators.exchange import BuildExchangeOperator

    for k, v in connections_env(erp_dsn, uri).items():
        monkeypatch.setenv(k, v)
    context = {"logical_date": WHEN, "run_id": "scheduled__trials", "dag_run": None}
    batch = BuildExchangeOperator(task_id="build", flow="prices_stock", mode="full").execute(context)
    published = PublishBatchOperator(task_id="publish", batch=batch).execute(context)  # raises on a fault
    ConfirmBatchOperator(task_id="confirm", batch=batch, published=published).execute(context)
    return batch


#: The faults ``make test`` runs (about 10 s each); ``make trials`` runs them all.
FAST = ("upload cut in mid-file, every time", "full disk: 552 on upload", "no SIZE, no MLSD (read back instead)")


@pytest.mark.parametrize("fault", [f if f in FAST else pytest.param(f, marks=pytest.mark.trials) for f in FAULTS])
def test_publish_against_a_faulty_server(fault, monkeypatch, erp_dsn, tmp_path):
    from passerelle_demo.localenv import free_port

    attrs, succeeds = FAULTS[fault]
    root = tmp_path / "shop"
    if attrs is None:
        root.mkdir()
        uri, stop = f"ftp://shop:s3cret-trials@127.0.0.1:{free_port()}/", lambda: None
    else:
        uri, stop = start_faulty(root, **attrs)
    error = None
    t0 = time.monotonic()
    try:
        _publish(monkeypatch, erp_dsn, uri)
    except Exception as exc:
        error = exc
    finally:
        stop()
    seconds = time.monotonic() - t0
    with psycopg.connect(erp_dsn) as conn:
        state = published_state(conn, root, "prices_stock")
        status = conn.execute("SELECT status FROM passerelle.batch WHERE flow = 'prices_stock'").fetchone()
        snapshot = conn.execute("SELECT count(*) FROM passerelle.snapshot").fetchone()[0]
        conn.commit()
    problems = []
    message = str(error) if error else ""
    if succeeds and error:
        problems.append(f"failed: {type(error).__name__}: {message[:200]}")
    if not succeeds:
        if error is None:
            problems.append("the publish succeeded against a server that lost the files")
        elif not ("127.0.0.1" in message and ("prices_stock" in message or fault == "server down")):
            problems.append(
                f"the message names neither the server nor the file: {type(error).__name__}: {message[:200]}"
            )
        if status != ("built",) or snapshot:
            problems.append(f"after the failure the batch is {status} and the snapshot holds {snapshot} rows")
    problems += state["partial"] + [f"snapshot ahead of the shop: batch {b}" for b in state["ahead"]]

    # The server healthy again on the same folder: a clean rerun publishes everything, whole.
    rerun_problems = []
    if not succeeds:
        uri, stop = start_faulty(root)
        try:
            _publish(monkeypatch, erp_dsn, uri)
        except Exception as exc:
            rerun_problems.append(f"clean rerun failed: {exc}")
        finally:
            stop()
        with psycopg.connect(erp_dsn) as conn:
            after = published_state(conn, root, "prices_stock")
            confirmed = conn.execute("SELECT status FROM passerelle.batch WHERE flow = 'prices_stock'").fetchone()
            conn.commit()
        rerun_problems += after["partial"] + [f"snapshot ahead: {b}" for b in after["ahead"]]
        if confirmed != ("confirmed",):
            rerun_problems.append(f"after the clean rerun the batch is {confirmed}")
    partial = len(state["partial"])
    found = problems + rerun_problems
    record(
        f"server fault (publish): {fault}",
        "ok" + (f" ({type(error).__name__}: {message[:160]})" if error else "")
        if not found
        else "; ".join(found)[:600],
        server_faults=1,
        partial_files=partial,
        seconds=round(seconds, 1),
    )
    assert found == []


# ------------------------------------------------------------------------------------------------
# The back office's connection killed, its server restarted
# ------------------------------------------------------------------------------------------------


def _db_rounds(rounds: int, zygote, erp_dsn: str, tmp_path: Path, fault, *, trial: str) -> dict:
    """Drop order files, run the import in a child, hit the database with ``fault(dsn)`` after a random
    delay, then rerun cleanly and count lost and doubled orders."""
    from tests.trials.test_kills import _inbound_check

    from passerelle_demo.localenv import start_ftp

    rng = random.Random(7)
    server, stop = start_ftp(tmp_path / "shop")
    env = connections_env(erp_dsn, server.uri(), import_config(tmp_path))
    (server.root / "inbound").mkdir(parents=True)
    expected, dropped, found = {}, {}, []
    totals = {"lost": 0, "doubled": 0, "partial": 0, "failed_as_expected": 0}

    def drop(r: int) -> None:
        for k in range(2):
            data, exp = orders_file(f"D{r:03d}{k}", 20, rng)
            name = f"orders_db_{r:03d}_{k}.csv"
            (server.root / "inbound" / name).write_bytes(data)
            dropped[name] = data
            expected.update(exp)

    try:
        with psycopg.connect(erp_dsn) as conn:
            drop(999)  # calibration: a clean import of a round's files, to hit the next ones in mid-run
            t0 = time.monotonic()
            end = zygote.run("tests.trials.jobs:import_files", log=tmp_path / "calibrate.log", env=env)
            clean = time.monotonic() - t0
            assert end.get("exit") == 0, (tmp_path / "calibrate.log").read_text()[-3000:]
            for r in range(rounds):
                drop(r)
                log = tmp_path / f"db_{r:03d}.log"
                zygote.start("tests.trials.jobs:import_files", log=log, env=env)
                _wait_for_a_session(conn)  # the import connects to the back office only once it has files
                time.sleep(rng.uniform(0, 0.4) * clean)
                fault(erp_dsn)
                end = zygote.wait()
                if end.get("exit"):
                    totals["failed_as_expected"] += 1
                    text = log.read_text(errors="replace")
                    if "Traceback" in text and not any(
                        w in text for w in ("OperationalError", "AdminShutdown", "terminat", "connection")
                    ):
                        found.append(f"round {r}: the import failed for another reason: {text[-300:]}")
                for _ in range(30):  # the restarted server may take a moment to accept connections
                    try:
                        conn.execute("SELECT 1")
                        conn.commit()
                        break
                    except psycopg.OperationalError:
                        conn = psycopg.connect(erp_dsn)
                        time.sleep(0.5)
                rerun = zygote.run("tests.trials.jobs:import_files", log=log, env=env)
                if rerun.get("exit"):
                    found.append(f"round {r}: the clean rerun failed: {log.read_text()[-300:]}")
                state = _inbound_check(conn, server.root, expected, dropped)
                for k in ("lost", "doubled", "partial"):
                    totals[k] += len(state[k])
                    if state[k]:
                        found.append(f"round {r}: {k} {state[k][:5]}")
                if state["left"]:
                    found.append(f"round {r}: files left unread {state['left']}")
    finally:
        stop()
    if rounds >= 2 and not totals["failed_as_expected"]:
        found.append(f"the fault never hit a running import in {rounds} rounds (clean import {clean:.1f} s)")
    record(
        trial,
        "ok" if not found else "; ".join(found)[:600],
        server_faults=rounds,
        lost=totals["lost"],
        doubled=totals["doubled"],
        partial_files=totals["partial"],
        orders=len(expected),
        imports_failed_by_the_fault=totals["failed_as_expected"],
    )
    return {**totals, "found": found}


def _wait_for_a_session(conn: psycopg.Connection, timeout: float = 10) -> None:
    """Until another session than ours is open on our database (the child's), or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).fetchone()[0]
        conn.commit()
        if n:
            return
        time.sleep(0.02)


def _terminate(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )


def test_database_connection_killed_during_the_import(zygote, erp_dsn, tmp_path):
    out = _db_rounds(
        2, zygote, erp_dsn, tmp_path, _terminate, trial="PostgreSQL: pg_terminate_backend during the import (make test)"
    )
    assert out["found"] == []


@pytest.mark.trials
def test_database_connection_killed_many_times(zygote, erp_dsn, tmp_path):
    rounds = max(3, size("TRIALS_ROUNDS", 50) // 5)
    out = _db_rounds(
        rounds,
        zygote,
        erp_dsn,
        tmp_path,
        _terminate,
        trial=f"PostgreSQL: pg_terminate_backend during the import x{rounds}",
    )
    assert out["found"] == []


@pytest.fixture
def own_cluster():
    """A PostgreSQL cluster of this test's own (a restart must never touch the shared server), seeded."""
    import os
    import shutil
    import subprocess
    import tempfile

    from passerelle_demo.localenv import _pg_bin, create_database, free_port
    from passerelle_demo.seed import seed_database

    # Not under tmp_path: pytest's folder is root's alone, and the cluster runs as the postgres user.
    base = Path(tempfile.mkdtemp(prefix="passerelle-trials-pg-"))
    data, port = base / "data", free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    ctl = [*prefix, _pg_bin("pg_ctl"), "-D", str(data), "-l", str(base / "pg.log"), "-w"]
    opts = ["-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"]
    subprocess.run(
        [*prefix, _pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
    )
    subprocess.run([*ctl, *opts, "start"], check=True, capture_output=True)
    server = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    dsn = create_database(server, "passerelle_trials")
    with psycopg.connect(dsn) as conn:
        seed_database(conn, articles=300, seed=42)

    def restart(_dsn: str) -> None:
        subprocess.run([*ctl, "-m", "immediate", *opts, "restart"], check=True, capture_output=True)

    yield dsn, restart
    subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.trials
def test_database_server_restarted_during_the_import(zygote, own_cluster, tmp_path):
    dsn, restart = own_cluster
    rounds = max(2, size("TRIALS_ROUNDS", 50) // 10)
    out = _db_rounds(
        rounds,
        zygote,
        dsn,
        tmp_path,
        restart,
        trial=f"PostgreSQL: server restarted (immediate) during the import x{rounds}",
    )
    assert out["found"] == []


def test_results_table_is_json_safe():
    """The recorder writes one JSON object per line (make trials reads them back)."""
    import os

    from tests.trials.record import summarise

    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"trials-{os.getpid()}.jsonl"
    path.write_text(json.dumps({"trial": "a | b", "outcome": "ok", "lost": 2, "kill_rounds": 3}) + "\n")
    table = path.with_suffix(".md")
    assert summarise(path, table)["lost"] == 2 and "a \\| b" in table.read_text()
    path.unlink()
    table.unlink()
