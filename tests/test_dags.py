"""Every DAG file imports, cleanly and cheaply, and carries the tags, owner and retries we expect."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
    assert {"catalog_nightly", "prices_stock_export", "order_status_export", "daily_report"} <= set(bag.dags)


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
    env = {**os.environ, "AIRFLOW_CONN_PASSERELLE_ERP": "postgres://nobody@192.0.2.1:5432/x",
           "AIRFLOW_CONN_PASSERELLE_SHOP": "ftp://nobody:x@192.0.2.1:21/"}
    out = subprocess.run([sys.executable, "-c", PROBE, *map(str, DAG_FILES)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    seconds, opened = out.stdout.split()[-2:]
    assert int(opened) == 0, "a DAG file opened a connection at import"
    assert float(seconds) < 5, f"importing the DAG files took {seconds} s"
