"""Every DAG file imports, cleanly and cheaply, and carries the tags, owner and retries we expect."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))


def test_every_dag_imports_without_error():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags"))
    assert bag.import_errors == {}
    assert len(bag.dags) == len(DAG_FILES)
    for dag_id, dag in bag.dags.items():
        assert "passerelle" in dag.tags, dag_id
        assert dag.max_active_runs == 1, dag_id
        for task in dag.tasks:
            assert task.owner == "passerelle", (dag_id, task.task_id)
            assert task.retries >= 1, (dag_id, task.task_id)
    assert {"catalog", "customers", "prices_stock", "order_status", "report"} <= set(bag.dags)


PROBE = r"""
import socket, sys, time, importlib.util
opened = []
real = socket.socket.connect
def connect(self, address):
    opened.append(address)
    return real(self, address)
socket.socket.connect = connect
import psycopg
real_pg = psycopg.connect
def pg(*a, **k):
    opened.append(("psycopg", a))
    return real_pg(*a, **k)
psycopg.connect = pg
import airflow.sdk  # the framework itself is not ours to time
start = time.perf_counter()
for path in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location("dagfile", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(time.perf_counter() - start, len(opened))
"""


def test_importing_dag_files_opens_no_connection_and_is_cheap():
    env = {
        **os.environ,
        "AIRFLOW_CONN_PASSERELLE_ERP": "postgres://nobody@192.0.2.1:5432/x",
        "AIRFLOW_CONN_PASSERELLE_SHOP": "ftp://nobody:x@192.0.2.1:21/",
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, DAG_FILES)], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seconds, opened = out.stdout.split()[-2:]
    assert int(opened) == 0, "a DAG file opened a connection at import"
    assert float(seconds) < 5, f"importing the DAG files took {seconds} s"


# -- the pool of the shop's server ----------------------------------------------------------------
#: Every task that connects to the shop's server, by DAG.
FTP_TASKS = {
    "catalog": {"render_images", "finish_images", "publish"},
    "customers": {"publish"},
    "prices_stock": {"publish"},
    "order_status": {"publish"},
    "orders_in": {"import_files"},
    "report": {"publish_report"},
}


def _pools(dag_folder: Path = ROOT / "dags") -> dict[str, dict[str, str]]:
    """dag_id -> task_id -> pool, as Airflow parses the DAG files (mapped tasks included)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(dag_folder))
    assert bag.import_errors == {}
    return {dag_id: {task.task_id: task.pool for task in dag.tasks} for dag_id, dag in bag.dags.items()}


def _talks_to_the_shop(task) -> bool:
    """The task's operator takes a connection to the shop's server (``shop_conn_id``)."""
    import inspect

    cls = getattr(task, "operator_class", type(task))  # a mapped task names its operator class
    return "shop_conn_id" in inspect.signature(cls.__init__).parameters


def test_the_shop_ftp_pool_holds_the_tasks_connecting_to_the_shop_and_only_them():
    from airflow.dag_processing.dagbag import DagBag

    pools = _pools()
    assert set(FTP_TASKS) == set(pools)
    for dag_id, tasks in pools.items():
        in_pool = {task_id for task_id, pool in tasks.items() if pool == "shop_ftp"}
        assert in_pool == FTP_TASKS[dag_id], dag_id
        assert {pool for task_id, pool in tasks.items() if task_id not in in_pool} <= {"default_pool"}, dag_id
    # The list above is every operator holding a shop connection, and nothing else.
    for dag_id, dag in DagBag(str(ROOT / "dags")).dags.items():
        assert {t.task_id for t in dag.tasks if _talks_to_the_shop(t)} == FTP_TASKS[dag_id], dag_id


def test_the_ftp_pool_name_comes_from_the_configuration_and_a_flow_pool_wins(tmp_path, monkeypatch):
    config = tmp_path / "passerelle.yaml"
    shipped = (ROOT / "include" / "config" / "passerelle.yaml").read_text(encoding="utf-8")
    config.write_text(
        shipped.replace("ftp_pool: shop_ftp", "ftp_pool: shop_sftp_2").replace(
            '    cron: "0 * * * *"           # hourly\n', '    cron: "0 * * * *"\n    pool: shop_products\n'
        ),
        encoding="utf-8",
    )
    assert "shop_sftp_2" in config.read_text() and "shop_products" in config.read_text()
    monkeypatch.setenv("PASSERELLE_CONFIG", str(config))

    pools = _pools()
    assert pools["catalog"]["publish"] == pools["orders_in"]["import_files"] == "shop_sftp_2"
    assert pools["catalog"]["build"] == "default_pool"
    # prices_stock has its own pool: all its tasks are in it, the upload included.
    assert set(pools["prices_stock"].values()) == {"shop_products"}


def test_a_bad_ftp_pool_name_is_refused(tmp_path):
    from passerelle.config import ConfigError, load_settings

    config = tmp_path / "passerelle.yaml"
    config.write_text("shop:\n  ftp_pool: shop ftp!\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"shop\.ftp_pool must be an Airflow pool name.*'shop ftp!'"):
        load_settings(config)


def test_ensure_ftp_pool_creates_the_configured_pool_once(airflow_db, tmp_path):
    from airflow.models.pool import Pool

    from passerelle.config import load_settings
    from passerelle.pools import DEFAULT_SLOTS, ensure_ftp_pool

    config = tmp_path / "passerelle.yaml"
    config.write_text("shop:\n  ftp_pool: passerelle_test_ftp\n", encoding="utf-8")
    settings = load_settings(config)
    assert Pool.get_pool("passerelle_test_ftp") is None

    assert ensure_ftp_pool(settings) == ("passerelle_test_ftp", DEFAULT_SLOTS)
    assert Pool.get_pool("passerelle_test_ftp").slots == DEFAULT_SLOTS
    assert ensure_ftp_pool(settings, slots=6) == ("passerelle_test_ftp", 6)
    assert ensure_ftp_pool(settings) == ("passerelle_test_ftp", 6)  # an existing pool keeps its size
    assert Pool.get_pool("passerelle_test_ftp").slots == 6
