"""Shared fixtures: a real PostgreSQL, a real FTP/FTPS server on loopback, an Airflow home.

PostgreSQL, first that answers: ``PASSERELLE_TEST_DSN``; 127.0.0.1:5432 (user postgres);
else a throwaway cluster started from the installed server binaries (pytest-postgresql).
Each test that wants a back office gets its own database, copied from a seeded template.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

# Airflow reads its configuration when first imported: set the home before any test imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="passerelle-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "PASSERELLE_CONFIG": str(ROOT / "include" / "config" / "passerelle.yaml"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugins"), os.environ.get("PYTHONPATH")])),
    }
)

import psycopg

# Real FTP, FTPS (pyftpdlib, vsftpd) and SFTP (OpenSSH) servers for the hook tests: tests/servers.py.
pytest_plugins = ["servers"]


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


from passerelle_demo.localenv import FTPServer, create_database, drop_database, local_postgres, start_ftp  # noqa: F401


# -- PostgreSQL ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_server():
    """A DSN of a PostgreSQL server we may create databases on (see the module docstring)."""
    dsn = os.environ.get("PASSERELLE_TEST_DSN")
    if dsn:
        yield dsn
        return
    dsn, stop = local_postgres()
    try:
        yield dsn
    finally:
        stop()


@pytest.fixture(scope="session")
def erp_template(pg_server):
    """A seeded demo back office (1,000 articles, seed 42), used as a template database."""
    from passerelle_demo.seed import seed_database

    name = f"passerelle_tpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(create_database(pg_server, name)) as conn:
        seed_database(conn, articles=1000, seed=42)
    yield name
    drop_database(pg_server, name)


@pytest.fixture
def erp_dsn(pg_server, erp_template):
    """A fresh back office for one test (a copy of the template)."""
    name = f"passerelle_t_{uuid.uuid4().hex[:10]}"
    dsn = create_database(pg_server, name, template=erp_template)
    yield dsn
    drop_database(pg_server, name)


@pytest.fixture
def erp(erp_dsn):
    with psycopg.connect(erp_dsn) as conn:
        yield conn


@pytest.fixture
def empty_db(pg_server):
    """An empty database for one test."""
    name = f"passerelle_e_{uuid.uuid4().hex[:10]}"
    dsn = create_database(pg_server, name)
    yield dsn
    drop_database(pg_server, name)


# -- FTP / FTPS ---------------------------------------------------------------------------------
@pytest.fixture
def ftp_server(tmp_path):
    server, stop = start_ftp(tmp_path / "ftp-root")
    yield server
    stop()


@pytest.fixture
def ftps_server(tmp_path):
    server, stop = start_ftp(tmp_path / "ftps-root", tls=True)
    yield server
    stop()


# -- Airflow ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata database (SQLite in the temporary AIRFLOW_HOME), migrated once."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ.copy()
    )
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


@pytest.fixture
def connections(monkeypatch, erp_dsn, ftp_server):
    """The back office and the shop as Airflow connections (AIRFLOW_CONN_* variables)."""
    monkeypatch.setenv("AIRFLOW_CONN_PASSERELLE_ERP", erp_dsn.replace("postgresql://", "postgres://", 1))
    monkeypatch.setenv("AIRFLOW_CONN_PASSERELLE_SHOP", ftp_server.uri())
    return {"erp": erp_dsn, "shop": ftp_server}
