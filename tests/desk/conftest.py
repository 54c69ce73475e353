"""The Passerelle view under a real Airflow API server, and a bad inbound file to quarantine.

``desk_server`` starts ``airflow api-server`` on a free loopback port with its own AIRFLOW_HOME
(SQLite, migrated), Airflow's SimpleAuthManager with known users (``admin``, role admin;
``viewer``, role viewer), the project's plugins folder (so ``passerelle_plugin.py`` is loaded) and
DAGs (serialized into its database, so the UI shows them and their trigger forms),
the back office as the Airflow connection ``passerelle_erp`` (a copy of the seeded template)
and a configuration whose report folder is a temporary one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"admin": "desk-admin-pw", "viewer": "desk-viewer-pw"}

HEADER = (
    "shop_order_id,order_date,status,shop_customer_id,email,currency,line_number,sku,label,quantity,"
    "unit_price_excl_vat,vat_rate,line_discount_excl_vat,payment_method,payment_amount,payment_paid,"
    "billing_first_name,billing_last_name,billing_address1,billing_postcode,billing_city,billing_country"
)

#: A shop label the back office does not know (the desk maps it to an existing reference).
SHOP_LABEL = "MUG-ROUGE-SHOP"


def shop_label(prefix: str) -> str:
    """The unknown shop label of the file made with ``prefix`` (one per file: tests sharing a
    server do not map each other's labels)."""
    return f"{SHOP_LABEL}-{prefix.strip('-')}"


def bad_orders_file(prefix: str, label: str | None = None) -> tuple[str, bytes]:
    """Three paid orders: ``<prefix>1`` fine, ``<prefix>2`` sold under a shop label the back office
    does not know (``label``, by default :func:`shop_label`), ``<prefix>3`` with no customer at all (neither e-mail nor
    shop customer id)."""
    row = (
        "{id},2026-11-20T08:00:00+01:00,paid,{cust},{email},EUR,1,{sku},Mug rouge,2,10.00,20,0,card,24.00,1,"
        "Ana,Test,1 rue Haute,75001,Paris,FR"
    )
    rows = [
        HEADER,
        row.format(id=f"{prefix}1", cust="9101", email="ana@exemple.fr", sku="ART-000001"),
        row.format(id=f"{prefix}2", cust="9102", email="bob@exemple.fr", sku=label or shop_label(prefix)),
        row.format(id=f"{prefix}3", cust="", email="", sku="ART-000002"),
    ]
    return f"orders_{prefix}.csv", ("\n".join(rows) + "\n").encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DeskServer:
    url: str
    erp_dsn: str
    home: Path
    reports: Path
    log: Path

    def token(self, user: str = "admin") -> str:
        r = httpx.post(f"{self.url}/auth/token", json={"username": user, "password": PASSWORDS[user]}, timeout=30)
        assert r.status_code in (200, 201), r.text
        return r.json()["access_token"]

    def client(self, user: str | None = "admin") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, follow_redirects=False)


@pytest.fixture(scope="session")
def desk_db(pg_server, erp_template):
    """A back office for the server's whole life (the server reads it through an Airflow connection)."""
    from passerelle_demo.localenv import create_database, drop_database

    name = f"passerelle_desk_{uuid.uuid4().hex[:8]}"
    dsn = create_database(pg_server, name, template=erp_template)
    yield dsn
    drop_database(pg_server, name)


@pytest.fixture(scope="session")
def desk_server(desk_db, tmp_path_factory):
    home = tmp_path_factory.mktemp("desk-airflow")
    reports = home / "reports"
    reports.mkdir()
    config = yaml.safe_load((ROOT / "include" / "config" / "passerelle.yaml").read_text(encoding="utf-8"))
    config.setdefault("flows", {}).setdefault("report", {})["local_dir"] = str(reports)
    (home / "passerelle.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (home / "passwords.json").write_text(json.dumps(PASSWORDS), encoding="utf-8")
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_PASSERELLE_ERP": desk_db.replace("postgresql://", "postgres://", 1),
        "PASSERELLE_CONFIG": str(home / "passerelle.yaml"),
    }
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True, timeout=600
    )
    # The project's DAGs into the metadata database, as the DAG processor would: the UI's DAG pages
    # and trigger forms (tests/desk/test_browser.py) read them from there (no scheduler here).
    subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "reserialize"], env=env, check=True, capture_output=True, timeout=600
    )
    log = home / "api-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow",
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            if proc.poll() is not None:
                pytest.fail(f"airflow api-server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"airflow api-server did not answer on {url} in 240 s:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        yield DeskServer(url, desk_db, home, reports, log)
    finally:
        # The server and its uvicorn worker: the whole session started for it, nothing else.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture
def quarantined(desk_server):
    """A bad file through the real integration into the server's back office: the prefix of its orders."""
    import psycopg

    from passerelle.core.integrate import integrate_file

    prefix = f"Q{uuid.uuid4().hex[:6].upper()}-"
    name, data = bad_orders_file(prefix)
    with psycopg.connect(desk_server.erp_dsn) as conn:
        result = integrate_file(conn, name, data)
    assert result.status == "integrated" and result.counts["rejected_orders"] == 2, result
    return prefix


def ensure_chromium() -> tuple[str, str]:
    """Debian's Chromium and its driver, installed with apt-get when absent (the test machine is
    the project's own: root, Debian's archive reachable). Returns (browser, driver) paths."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # Another apt-get (a test run's, interrupted) may hold dpkg's lock for a while: wait for it.
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]
        install = [*apt, "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run([*apt, "update"], env=env, capture_output=True, check=True)
            subprocess.run(install, env=env, capture_output=True, check=True)
        browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser and driver, "chromium and chromium-driver could not be installed"
    return browser, driver
