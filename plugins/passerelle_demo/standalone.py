"""`make airflow`: Airflow's UI and scheduler on the project's DAGs, usable from a fresh clone.

``airflow standalone`` with:

- ``AIRFLOW_HOME=var/airflow`` (``make demo`` keeps its own, ``var/demo-airflow``), the project's
  DAGs and plugins folders, no example DAGs, and ``.venv/bin`` first on ``PATH`` (standalone starts
  its scheduler, API server, DAG processor and triggerer as ``airflow`` commands found there);
- the admin's password (SimpleAuthManager) made here the first time and kept where Airflow keeps
  it, ``var/airflow/simple_auth_manager_passwords.json.generated`` (Airflow reads it from there and
  adds nothing), so that
- the connection ``airflow_api`` (``AIRFLOW_CONN_AIRFLOW_API``) reaches this API server with that
  login: each run writes its note on the DAG run (``alerts.api_conn_id`` of the project's
  configuration), shown in the grid and on the run's page;
- the back office ``passerelle_erp``: unless ``AIRFLOW_CONN_PASSERELLE_ERP`` is set, the demo's
  (database ``passerelle_demo`` on 127.0.0.1:5432, made by ``make demo``), its state schema brought
  to the latest migration;
- the shop's server ``passerelle_shop``: unless ``AIRFLOW_CONN_PASSERELLE_SHOP`` is set, an FTP
  server on loopback over ``var/shop`` (the demo's shop files) for as long as this command runs;
- the shop's pool (``shop.ftp_pool``) created, Airflow's database migrated.

Stop it with Ctrl-C (the FTP server stops with it).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from passerelle import PROJECT_ROOT

VAR = PROJECT_ROOT / "var"
HOME = VAR / "airflow"
#: The demo's back office (``make demo``), on the local PostgreSQL.
DEMO_DSN = "postgresql://postgres@127.0.0.1:5432/passerelle_demo"
#: Airflow's own name for the file of SimpleAuthManager's passwords, in AIRFLOW_HOME.
PASSWORDS = "simple_auth_manager_passwords.json.generated"


def admin_password(home: Path) -> str:
    """The admin's password from the file Airflow keeps, made (and added to it) when absent."""
    path = home / PASSWORDS
    passwords = {}
    if path.exists() and path.read_text(encoding="utf-8").strip():
        passwords = json.loads(path.read_text(encoding="utf-8"))
    if not passwords.get("admin"):
        passwords["admin"] = secrets.token_urlsafe(12)
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(passwords) + "\n", encoding="utf-8")
        path.chmod(0o600)
    return passwords["admin"]


def api_connection(password: str, port: int) -> str:
    """The URI of the HTTP connection ``airflow_api`` to this API server, as user admin."""
    return f"http://admin:{quote(password, safe='')}@127.0.0.1:{port}"


def demo_back_office() -> str | None:
    """The demo's back office as an Airflow connection URI, when it exists (else None)."""
    import psycopg

    try:
        with psycopg.connect(DEMO_DSN, connect_timeout=3):
            pass
    except psycopg.OperationalError:
        return None
    return DEMO_DSN.replace("postgresql://", "postgres://", 1)


def environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The variables `make airflow` runs under (see the module); *env* defaults to os.environ."""
    env = dict(os.environ if env is None else env)
    home = Path(env.setdefault("AIRFLOW_HOME", str(HOME)))
    env["PATH"] = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), env.get("PATH")]))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT / "plugins"), env.get("PYTHONPATH")]))
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
    env.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(PROJECT_ROOT / "plugins"))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    port = int(env.get("AIRFLOW__API__PORT", "8080"))
    env.setdefault("AIRFLOW_CONN_AIRFLOW_API", api_connection(admin_password(home), port))
    return env


def _prepare(env: dict[str, str]) -> None:
    """In this process (Airflow imported once, not three times: it takes seconds): Airflow's
    database migrated (standalone then finds it ready), the shop's pool, the back office's state
    schema at the latest migration."""
    os.environ.update(env)  # before Airflow is imported: it reads its configuration then
    from airflow.utils.db import upgradedb

    from passerelle import migrate, pools

    upgradedb()
    pools.main([])
    if "AIRFLOW_CONN_PASSERELLE_ERP" in env:
        if migrate.main(["upgrade"]):
            raise SystemExit("the back office's state schema could not be migrated (see above)")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    from passerelle_demo.localenv import start_ftp

    env = environment()
    stops = []
    if "AIRFLOW_CONN_PASSERELLE_ERP" not in env:
        erp = demo_back_office()
        if erp:
            env["AIRFLOW_CONN_PASSERELLE_ERP"] = erp
            print(f"back office: the demo's ({DEMO_DSN})", flush=True)
        else:
            print(
                "back office: none (no database passerelle_demo on 127.0.0.1:5432): run `make demo` first, or set "
                "AIRFLOW_CONN_PASSERELLE_ERP; the flows and the Passerelle view need it",
                flush=True,
            )
    if "AIRFLOW_CONN_PASSERELLE_SHOP" not in env:
        ftp, stop = start_ftp(VAR / "shop")
        stops.append(stop)
        env["AIRFLOW_CONN_PASSERELLE_SHOP"] = ftp.uri()
        print(f"shop's server: ftp://{ftp.host}:{ftp.port} (user {ftp.user}), files in {VAR / 'shop'}", flush=True)
    home = Path(env["AIRFLOW_HOME"])
    print(f"Airflow home: {home}; user admin, password in {home / PASSWORDS}", flush=True)
    try:
        _prepare(env)
        standalone = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], env=env)
        signal.signal(signal.SIGTERM, _interrupt)  # `timeout`, `kill`: stop like Ctrl-C, FTP server included
        try:
            return standalone.wait()
        except KeyboardInterrupt:
            standalone.send_signal(signal.SIGINT)  # standalone stops its components on Ctrl-C
            try:
                return standalone.wait(60)
            except subprocess.TimeoutExpired:
                standalone.kill()
                return standalone.wait()
    finally:
        for stop in stops:
            stop()


if __name__ == "__main__":
    raise SystemExit(main())
