"""The import task against a real PostgreSQL (a seeded back office per test) and a real FTP server on
loopback: each file its own unit of failure, read what you integrate (claim by a server-side rename),
ledger states a kill cannot strand, housekeeping of abandoned uploads.

A "kill" is simulated by a ``BaseException`` raised at the exact point (the state it leaves on the
server and in the database is the one a SIGKILL there would leave: nothing after it runs); the
next run is a real run of the operator.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

from passerelle import INCLUDE

SAMPLES = INCLUDE / "sample" / "inbound"
O900, O1000 = "orders_20261120_0900.csv", "orders_20261120_1000.csv"


class Killed(BaseException):
    """Stands for a SIGKILL: not an Exception, so no ``except Exception`` of the code under test catches it."""


@pytest.fixture
def importer(connections):
    from passerelle.operators.inbound import ImportOrdersOperator

    def run() -> dict:
        return ImportOrdersOperator(task_id="import_files").execute({})

    return run


def _drop(ftp_server, name: str, as_name: str | None = None) -> None:
    inbound = ftp_server.path("/inbound")
    inbound.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLES / name, inbound / (as_name or name))


def _orders(erp) -> list[str]:
    rows = erp.execute("SELECT shop_order_id FROM erp.sales_order WHERE origin = 'web' ORDER BY 1").fetchall()
    erp.commit()
    return [r[0] for r in rows]


def _ledger(erp) -> list[tuple]:
    rows = erp.execute("SELECT name, status, archived_as FROM passerelle.inbound_file ORDER BY id").fetchall()
    erp.commit()
    return rows


def _sha(name: str) -> str:
    from passerelle.core.integrate import sha256

    return sha256((SAMPLES / name).read_bytes())


def test_a_file_reuploaded_during_its_integration_is_not_archived_unread(importer, erp, ftp_server, monkeypatch):
    """The shop uploads a new orders_0900.csv (here: the 10:00 content) while the first one is being
    integrated: the first is archived, the new one stays in the inbound folder and the next run
    integrates it. Nothing lost, nothing doubled."""
    from passerelle.core import integrate as core

    _drop(ftp_server, O900)
    real = core.integrate_file
    calls = []

    def reupload_during(conn, name, data, **kwargs):
        if not calls:  # the shop writes the new version under the same name, mid-integration
            shutil.copy(SAMPLES / O1000, ftp_server.path("/inbound") / O900)
        calls.append(name)
        return real(conn, name, data, **kwargs)

    monkeypatch.setattr(core, "integrate_file", reupload_during)
    first = importer()
    assert [f["status"] for f in first["files"]] == ["integrated"]
    assert _orders(erp) == ["WEB-100231", "WEB-100232", "WEB-100233"]
    archive = ftp_server.path("/inbound/archive")
    assert sorted(p.name for p in archive.iterdir()) == [f"{_sha(O900)[:12]}_{O900}"]
    assert (archive / f"{_sha(O900)[:12]}_{O900}").read_bytes() == (SAMPLES / O900).read_bytes()
    # The re-upload is still there, unread, under its name.
    assert (ftp_server.path("/inbound") / O900).read_bytes() == (SAMPLES / O1000).read_bytes()

    second = importer()
    assert [f["status"] for f in second["files"]] == ["integrated"]
    assert _orders(erp) == ["WEB-100231", "WEB-100232", "WEB-100233", "WEB-100235", "WEB-100236"]
    assert sorted(p.name for p in archive.iterdir()) == sorted(
        [f"{_sha(O900)[:12]}_{O900}", f"{_sha(O1000)[:12]}_{O900}"]
    )
    assert [p.name for p in ftp_server.path("/inbound").iterdir() if p.is_file()] == []
    assert list(ftp_server.path("/inbound/.claimed").iterdir()) == []
    assert [r[1] for r in _ledger(erp)] == ["archived", "archived"]


def test_a_file_gone_between_listing_and_claim_is_skipped_and_the_others_go_through(
    importer, erp, ftp_server, monkeypatch
):
    from passerelle.hooks.shop import ShopFilesHook

    _drop(ftp_server, O900)
    _drop(ftp_server, O1000)
    real_list = ShopFilesHook.list

    def list_then_the_shop_deletes(self, folder, missing_ok=False):
        names = real_list(self, folder, missing_ok)
        if folder == "/inbound" and O900 in names:
            (ftp_server.path("/inbound") / O900).unlink()  # the shop takes it back after our listing
        return names

    monkeypatch.setattr(ShopFilesHook, "list", list_then_the_shop_deletes)
    # An upload of the rejects abandoned two days ago by a killed run: deleted; a fresh one kept.
    errors = ftp_server.path("/errors")
    errors.mkdir(parents=True)
    (errors / "old.rejects.csv.part").write_bytes(b"half")
    two_days_ago = time.time() - 2 * 86400
    os.utime(errors / "old.rejects.csv.part", (two_days_ago, two_days_ago))
    (errors / "new.rejects.csv.part").write_bytes(b"in progress")

    # A name the server could not rename into the claim folder or the archive (issue #12: too long).
    long_name = "o" * 240 + ".csv"
    _drop(ftp_server, O900, long_name)

    out = importer()
    assert {f["name"]: f["status"] for f in out["files"]} == {
        O900: "vanished",
        O1000: "integrated",
        long_name: "name_too_long",
    }
    assert _orders(erp) == ["WEB-100235", "WEB-100236"]
    assert (ftp_server.path("/inbound") / long_name).exists()  # left for a person to rename
    assert not (errors / "old.rejects.csv.part").exists() and (errors / "new.rejects.csv.part").exists()


@pytest.mark.parametrize("kind", ["pyftpdlib", "vsftpd"])
def test_a_file_the_shop_is_still_writing_in_place_is_left_until_it_stops_growing(
    kind, request, importer, erp, ftp_server, monkeypatch, tmp_path
):
    """The shop writes its export in place, under its final name, not a temporary one renamed when
    done: the run looks at each file's size and date twice, shop.inbound_settle_seconds apart, and
    the shop writes the second half meanwhile. The file is left where it is, nothing of it
    integrated (its first half would have made orders without their last lines); the next run
    finds it whole and still, and integrates every order of it. On a server with MLSD (pyftpdlib)
    one listing gives every size and date; vsftpd has none: SIZE and MDTM, file by file."""
    import passerelle.operators.inbound as operator
    from passerelle.core.inbound import read_inbound

    server, inbound = ftp_server, "/inbound"
    if kind == "vsftpd":
        import uuid

        import yaml

        server, top = request.getfixturevalue("vsftpd_shop"), f"/shop/t{uuid.uuid4().hex[:8]}"
        inbound = f"{top}/inbound"  # the server is shared by the session, its chroot's top not writable
        cfg = yaml.safe_load((INCLUDE / "config" / "passerelle.yaml").read_text(encoding="utf-8"))
        cfg["shop"].update(inbound_dir=inbound, archive_dir=f"{inbound}/archive", errors_dir=f"{top}/errors")
        (tmp_path / "passerelle.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
        monkeypatch.setenv("PASSERELLE_CONFIG", str(tmp_path / "passerelle.yaml"))
        monkeypatch.setenv("AIRFLOW_CONN_PASSERELLE_SHOP", server.connection())
        for folder in (top, inbound):
            server.make_folder(folder)
    data = (SAMPLES / O900).read_bytes()
    half = data.index(b"\n", len(data) // 2) + 1
    path = server.path(inbound) / "orders_in_place.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:half])
    real_sleep, waits = time.sleep, []

    def the_shop_writes_meanwhile(seconds):
        if not waits:
            with open(path, "ab") as fh:
                fh.write(data[half:])
        waits.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(operator.time, "sleep", the_shop_writes_meanwhile)
    first = importer()
    monkeypatch.setattr(operator.time, "sleep", real_sleep)
    assert waits == [2.0]  # the default settle time
    assert first["files"] == [{"name": "orders_in_place.csv", "status": "incomplete"}]
    assert path.read_bytes() == data  # not claimed: left in the inbound folder
    assert _orders(erp) == []
    # The run's note says the file was left, and does not count it as read.
    import contextlib
    from types import SimpleNamespace

    import pendulum
    from airflow.sdk.exceptions import AirflowSkipException

    from passerelle.operators.inbound import ProposeReordersOperator

    context = {
        "run_id": f"manual__in_place_{kind}",
        "dag": SimpleNamespace(dag_id="orders_in"),
        "logical_date": pendulum.datetime(2026, 11, 20, 9, 30, tz="UTC"),
        "dag_run": None,
    }
    with contextlib.suppress(AirflowSkipException):  # skipped when no reorder proposal changes
        ProposeReordersOperator(task_id="propose_reorders", imported=first).execute(context)
    note = erp.execute("SELECT note FROM passerelle.run_summary WHERE dag_run_id = %s", (context["run_id"],)).fetchone()
    erp.commit()
    assert note[0].startswith("integrated 0 rows in 0 files; 1 file still being written, left for the next run; ")

    second = importer()
    assert [f["status"] for f in second["files"]] == ["integrated"]
    shutil.copy(SAMPLES / O900, server.path(inbound) / O900)  # the same content: a duplicate, nothing more
    assert [f["status"] for f in importer()["files"]] == ["duplicate"]
    assert _orders(erp) == ["WEB-100231", "WEB-100232", "WEB-100233"]
    lines = erp.execute(
        "SELECT o.shop_order_id, count(*) FROM erp.sales_order_line l JOIN erp.sales_order o ON o.id = l.order_id "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall()
    erp.commit()
    whole = read_inbound(O900, data).lines.groupby("shop_order_id").size()
    assert lines == [(k, whole[k]) for k in ("WEB-100231", "WEB-100232", "WEB-100233")]  # every line of each


def test_a_missing_inbound_folder_fails_naming_the_server_the_folder_and_the_setting(importer, ftp_server):
    from passerelle.hooks.shop import FolderMissing

    with pytest.raises(FolderMissing) as caught:
        importer()
    message = str(caught.value)
    assert "/inbound" in message and "shop.inbound_dir" in message and f"127.0.0.1:{ftp_server.port}" in message


def test_a_database_failure_fails_the_task_naming_file_server_and_path_and_the_file_stays_claimed(
    importer, erp, ftp_server, monkeypatch
):
    import psycopg

    from passerelle.core import integrate as core

    _drop(ftp_server, O900)

    def database_down(conn, name, data, **kwargs):
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    real = core.integrate_file
    monkeypatch.setattr(core, "integrate_file", database_down)
    with pytest.raises(RuntimeError) as caught:
        importer()
    message = str(caught.value)
    assert O900 in message and f"127.0.0.1:{ftp_server.port}" in message and "/inbound/.claimed/" in message
    monkeypatch.setattr(core, "integrate_file", real)
    importer()  # the database is back: the claimed file is imported, once
    assert _orders(erp) == ["WEB-100231", "WEB-100232", "WEB-100233"]
    assert list(ftp_server.path("/inbound/.claimed").iterdir()) == []


@pytest.mark.parametrize("point", ["after_claim", "after_commit", "after_move"])
def test_a_kill_at_any_point_of_a_files_import_loses_and_doubles_nothing(point, importer, erp, ftp_server, monkeypatch):
    """Killed after the claim (nothing integrated), after the commit (not archived) or between the
    archive move and the ledger's update: the next run finishes the file, the ledger ends
    ``archived`` with its archive path, and every order is there once."""
    from passerelle.core import integrate as core
    from passerelle.operators.inbound import ImportOrdersOperator

    _drop(ftp_server, O1000)
    saved = (core.integrate_file, core.finish_file, ImportOrdersOperator.__dict__["_move"])
    if point == "after_claim":

        def killed(*args, **kwargs):
            raise Killed()

        monkeypatch.setattr(core, "integrate_file", killed)
    elif point == "after_commit":

        def killed(*args, **kwargs):
            raise Killed()

        monkeypatch.setattr(core, "finish_file", killed)
    else:
        real_move = ImportOrdersOperator._move

        def move_then_killed(shop, src, dst):
            real_move(shop, src, dst)
            raise Killed()

        monkeypatch.setattr(ImportOrdersOperator, "_move", staticmethod(move_then_killed))
    with pytest.raises(Killed):
        importer()
    claimed = list(ftp_server.path("/inbound/.claimed").iterdir())
    if point == "after_move":
        assert claimed == [] and _ledger(erp)[0][1] == "integrated"  # the stranded state of issue #12, item 9
    else:
        assert len(claimed) == 1 and claimed[0].read_bytes() == (SAMPLES / O1000).read_bytes()
    monkeypatch.setattr(core, "integrate_file", saved[0])
    monkeypatch.setattr(core, "finish_file", saved[1])
    monkeypatch.setattr(ImportOrdersOperator, "_move", saved[2])

    importer()
    archived_as = f"/inbound/archive/{_sha(O1000)[:12]}_{O1000}"
    assert _ledger(erp) == [(O1000, "archived", archived_as)]
    assert _orders(erp) == ["WEB-100235", "WEB-100236"]
    assert list(ftp_server.path("/inbound/.claimed").iterdir()) == []
    assert [p.name for p in ftp_server.path("/inbound/archive").iterdir()] == [archived_as.rsplit("/", 1)[1]]
    rejects = list(ftp_server.path("/errors").iterdir())
    assert len(rejects) == 1  # WEB-100237's unknown SKU, uploaded once whatever the point of the kill
    rows, lines = erp.execute(
        "SELECT count(*), count(DISTINCT (file_id, line, field)) FROM passerelle.quarantine "
        "WHERE shop_order_id = 'WEB-100237'"
    ).fetchone()
    assert rows > 0 and rows == lines  # quarantined, each row once


def test_a_refused_file_killed_before_its_move_is_refused_once(importer, erp, ftp_server, monkeypatch):
    from passerelle.hooks.shop import ShopFilesHook

    inbound = ftp_server.path("/inbound")
    inbound.mkdir(parents=True)
    (inbound / "notes.csv").write_bytes(b"hello;world\n1;2\n")
    real_rename = ShopFilesHook.rename

    def killed_moving_to_errors(self, src, dst):
        if dst.startswith("/errors/"):
            raise Killed()
        return real_rename(self, src, dst)

    monkeypatch.setattr(ShopFilesHook, "rename", killed_moving_to_errors)
    with pytest.raises(Killed):
        importer()
    monkeypatch.setattr(ShopFilesHook, "rename", real_rename)
    out = importer()
    assert [f["status"] for f in out["files"]] == ["refused"]
    assert erp.execute("SELECT count(*) FROM passerelle.quarantine WHERE file = 'notes.csv'").fetchone()[0] == 1
    assert [p.name.endswith("_notes.csv") for p in ftp_server.path("/errors").iterdir()] == [True]


def test_files_left_claimed_come_back_in_the_order_they_were_claimed():
    """Oldest claim first; claimed in the same second (one run claims its files within a second),
    in their names' order, whatever the claim's random part: the file that creates an order
    comes back before the one that cancels it."""
    from passerelle.operators.inbound import claim_name, claimed_names

    listing = [
        "orders_0900.csv.c20261204T082000Zffffff",  # created the order
        "orders_1000.csv.c20261204T082000Z000000",  # cancelled it: a smaller random part
        "orders_0800.csv.c20261204T081959Zeeeeee",  # an earlier run's
        "orders_0700.csv.c20261204T082001Z111111",  # a later one's
        "orders_0930.csv",  # not claimed
    ]
    assert claimed_names(listing) == [
        ("orders_0800.csv.c20261204T081959Zeeeeee", "orders_0800.csv"),
        ("orders_0900.csv.c20261204T082000Zffffff", "orders_0900.csv"),
        ("orders_1000.csv.c20261204T082000Z000000", "orders_1000.csv"),
        ("orders_0700.csv.c20261204T082001Z111111", "orders_0700.csv"),
    ]
    # What claim_name writes is what claimed_names reads back.
    claimed = claim_name("orders_1100.csv")
    assert claimed_names([claimed]) == [(claimed, "orders_1100.csv")]


def test_a_replay_that_fails_says_why_in_the_tasks_log(erp, ftp_server, connections, monkeypatch, caplog, capsys):
    """WEB-100237 waits in quarantine for ART-999999; the article is created, and the replay of its
    file fails on the back office's refusal of a value: the task goes on, and its log says which
    file, how many rows stay open and why (the error was only in the task's result)."""
    import passerelle.core.integrate as integrate
    from passerelle.operators.inbound import ImportOrdersOperator

    _drop(ftp_server, O1000)
    ImportOrdersOperator(task_id="import_files").execute({})
    assert "WEB-100237" not in _orders(erp)
    erp.execute(
        "INSERT INTO erp.article (reference, name, vat_rate, price_excl_vat) VALUES ('ART-999999', 'Retiré', 20, 15)"
    )
    erp.commit()

    def refused(conn, *args):
        conn.execute("SELECT 1/0")  # DivisionByZero: a DataError, as a value of the rows would cause

    monkeypatch.setattr(integrate, "stage", refused)
    out = ImportOrdersOperator(task_id="import_files", replay_quarantine=True).execute({})
    [replayed] = out["replayed"]
    assert replayed["rows_replayed"] == 0 and replayed["error"].startswith("DivisionByZero")
    logged = caplog.text + capsys.readouterr().out  # the task's log, wherever Airflow's logging sends it
    assert (
        f"replay of {O1000} failed, its {replayed['rows_still_open']} rows stay open: DivisionByZero: division by zero"
        in logged
    )
    assert "WEB-100237" not in _orders(erp)
