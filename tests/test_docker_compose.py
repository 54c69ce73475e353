"""The production stack's files: docker-compose.yaml, .env.example and the helpers in docker/.

Cheap checks (no Docker engine here): the compose file resolves with ``docker compose config``
(or Debian's ``docker-compose``) when one is installed, and is always read as YAML to check the
topology, the mounts and that it holds no secret. The demo helpers run for real: the FTPS
certificate serves verified TLS, the seeding script seeds a PostgreSQL database once.
"""

from __future__ import annotations

import base64
import ftplib
import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import yaml

from servers import ensure_packages

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKER = ROOT / "docker"
sys.path.insert(0, str(DOCKER))

import ftps_cert
import make_env

AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
}
EXPECTED_SERVICES = AIRFLOW_SERVICES | {"postgres", "redis", "erp-db", "erp-seed", "ftps-certs", "ftps"}
PROJECT_MOUNTS = {
    "/opt/airflow/dags": "dags",
    "/opt/airflow/plugins": "plugins",
    "/opt/airflow/include": "include",
    "/opt/airflow/config": "include/config",
}
SECRET_WORDS = re.compile(
    r"PASSWORD|PASS$|SECRET|FERNET|_KEY$|^AIRFLOW_CONN_|SQL_ALCHEMY_CONN|RESULT_BACKEND|BROKER_URL"
)


def compose_cli() -> list[str]:
    """``docker compose`` (v2 plugin) if it works, else Debian's ``docker-compose`` (v1), installed
    by apt-get when absent (as the file servers are: tests/servers.py)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    found = shutil.which("docker-compose")
    return [found or ensure_packages("/usr/bin/docker-compose", ("docker-compose",))]


def run_config(env_file: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    cli = compose_cli()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "AIRFLOW", "DOCKER_"))}
    return subprocess.run(
        [*cli, "--env-file", str(env_file), "--project-directory", str(ROOT), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
        timeout=120,
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def env_values(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


# -- docker compose config --------------------------------------------------------------------------
def test_compose_config_resolves_with_the_example_env(tmp_path):
    done = run_config(ENV_EXAMPLE, tmp_path)

    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert EXPECTED_SERVICES <= set(resolved["services"])
    worker_env = resolved["services"]["airflow-worker"]["environment"]
    assert worker_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # The values came from the env file, through the compose file's ${...} references.
    example = env_values(ENV_EXAMPLE.read_text(encoding="utf-8"))
    assert worker_env["AIRFLOW_CONN_PASSERELLE_ERP"] == example["AIRFLOW_CONN_PASSERELLE_ERP"]
    assert worker_env["AIRFLOW__CORE__FERNET_KEY"] == example["AIRFLOW_FERNET_KEY"]
    assert f":{example['REDIS_PASSWORD']}@redis:6379" in worker_env["AIRFLOW__CELERY__BROKER_URL"]


def test_compose_config_refuses_a_missing_secret(tmp_path):
    lines = [
        line
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if not line.startswith("AIRFLOW_DB_PASSWORD=")
    ]
    partial = tmp_path / "partial.env"
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")

    done = run_config(partial, tmp_path)

    assert done.returncode != 0
    assert "set AIRFLOW_DB_PASSWORD in .env" in done.stderr


# -- the file itself (always checked) -------------------------------------------------------------
def test_compose_has_the_celery_topology(compose):
    services = compose["services"]
    assert EXPECTED_SERVICES <= set(services)
    commands = {name: services[name].get("command") for name in AIRFLOW_SERVICES - {"airflow-init"}}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
        "airflow-worker": "celery worker",
    }
    common = compose["x-airflow-common"]["environment"]
    assert common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert common["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert common["AIRFLOW__CELERY__BROKER_URL"].endswith("@redis:6379/0")
    assert "@postgres/airflow" in common["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    # The worker's replicas share one queue: nothing pins a container name or a host port.
    assert "container_name" not in services["airflow-worker"] and "ports" not in services["airflow-worker"]
    assert "shop_ftp" in " ".join(services["airflow-init"]["command"])
    # The init upgrades Passerelle's state schema with the documented command, on the ERP connection.
    init = " ".join(services["airflow-init"]["command"])
    assert "python -m passerelle.migrate --conn-id passerelle_erp" in init
    assert "AIRFLOW_CONN_PASSERELLE_ERP" in services["airflow-init"]["environment"]
    assert set(compose["volumes"]) == {"postgres-db-volume", "erp-db-volume", "airflow-logs", "ftps-certs", "ftps-data"}


def test_compose_mounts_the_project_as_airflow_expects(compose):
    volumes = compose["x-airflow-common"]["volumes"]
    mounts = {}
    for volume in volumes:  # SOURCE:TARGET[:MODE], SOURCE may hold ${VAR:-default}
        match = re.match(r"^(?P<source>.+?):(?P<target>/[^:]+)(?::(?:ro|rw))?$", volume)
        assert match, f"cannot read the volume {volume!r}"
        mounts[match["target"]] = match["source"]
    for target, folder in PROJECT_MOUNTS.items():
        assert mounts[target] == f"${{AIRFLOW_PROJ_DIR:-.}}/{folder}"
        assert (ROOT / folder).is_dir()
    assert mounts["/opt/airflow/logs"] == "airflow-logs"
    assert compose["x-airflow-common"]["environment"]["PASSERELLE_CONFIG"] == "/opt/airflow/config/passerelle.yaml"
    assert (ROOT / "include" / "config" / "passerelle.yaml").is_file()


def _environments(compose: dict):
    yield "x-airflow-common", compose["x-airflow-common"]["environment"]
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        if isinstance(env, dict):
            yield name, env


def test_compose_holds_no_secret(compose):
    text = COMPOSE.read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    for where, env in _environments(compose):
        for key, value in env.items():
            if SECRET_WORDS.search(key) and not key.startswith("_PIP"):
                assert "${" in str(value), f"{where}: {key} holds a literal; take it from .env"
    # Every password-ish variable the file needs is required, never defaulted.
    for var in re.findall(r"\$\{([A-Z0-9_]*(?:PASSWORD|SECRET|KEY)[A-Z0-9_]*)", text):
        assert var in required, f"${{{var}}} must be written ${{{var}:?...}}: no default secret"
    # And no value of the example env file leaks into the compose file.
    for key, value in env_values(ENV_EXAMPLE.read_text(encoding="utf-8")).items():
        if "change-me" in value:
            assert value not in text, f"{key}'s example value is written in docker-compose.yaml"


def test_env_example_defines_every_variable_compose_requires(compose):
    text = COMPOSE.read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    example = env_values(ENV_EXAMPLE.read_text(encoding="utf-8"))
    assert required - set(example) == set()
    assert example["COMPOSE_PROFILES"] == "demo"
    gitignore = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert ".env" in gitignore


# -- docker/make_env.py ---------------------------------------------------------------------------
def test_make_env_replaces_every_placeholder_consistently():
    example = ENV_EXAMPLE.read_text(encoding="utf-8")

    first, second = make_env.render(example), make_env.render(example)

    values = env_values(first)
    assert "change-me" not in "".join(values.values())
    assert values != env_values(second)  # fresh secrets on every call
    # The same placeholder got the same value: the URIs embed the services' passwords.
    erp = urlsplit(values["AIRFLOW_CONN_PASSERELLE_ERP"])
    shop = urlsplit(values["AIRFLOW_CONN_PASSERELLE_SHOP"])
    assert erp.password == values["ERP_DB_PASSWORD"]
    assert (shop.username, shop.password) == (values["SHOP_FTP_USER"], values["SHOP_FTP_PASSWORD"])
    assert parse_qs(shop.query) == {"tls": ["true"], "ca_file": ["/opt/airflow/certs/ca.pem"]}
    assert len(base64.urlsafe_b64decode(values["AIRFLOW_FERNET_KEY"])) == 32
    from cryptography.fernet import Fernet

    assert Fernet(values["AIRFLOW_FERNET_KEY"]).decrypt(Fernet(values["AIRFLOW_FERNET_KEY"]).encrypt(b"x")) == b"x"

    # Comments are left alone (they mention placeholders to explain them).
    def comments(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("#")]

    assert comments(first) == comments(example)


def test_make_env_cli_writes_to_stdout(tmp_path):
    done = subprocess.run([sys.executable, str(DOCKER / "make_env.py")], capture_output=True, text=True, check=True)
    assert set(env_values(done.stdout)) == set(env_values(ENV_EXAMPLE.read_text(encoding="utf-8")))
    missing = subprocess.run(
        [sys.executable, str(DOCKER / "make_env.py"), "--example", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2 and "not found" in missing.stderr


# -- docker/ftps_cert.py --------------------------------------------------------------------------
@pytest.fixture
def tls_ftp_server(tmp_path):
    """pyftpdlib with explicit TLS required, serving the certificate ftps_cert.py made."""
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import TLS_FTPHandler
    from pyftpdlib.servers import FTPServer

    certs = tmp_path / "certs"
    assert ftps_cert.write_pair(certs, ["localhost", "127.0.0.1"]) is True
    root = tmp_path / "root"
    root.mkdir()
    authorizer = DummyAuthorizer()
    authorizer.add_user("shop", "pw", str(root), perm="elradfmw")
    handler = type("Handler", (TLS_FTPHandler,), {})
    handler.authorizer = authorizer
    handler.certfile = str(certs / ftps_cert.SERVER_FILE)
    handler.tls_control_required = True
    handler.tls_data_required = True
    server = FTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2}, daemon=True)
    thread.start()
    yield server.socket.getsockname()[1], certs, root
    server.close_all()
    thread.join(5)


def test_ftps_certificate_is_verified_against_the_demo_ca(tls_ftp_server):
    port, certs, root = tls_ftp_server
    context = ssl.create_default_context(cafile=str(certs / ftps_cert.CA_FILE))
    with ftplib.FTP_TLS(context=context, timeout=10) as ftp:
        ftp.connect("localhost", port)  # hostname checked against the certificate's names
        ftp.login("shop", "pw")
        ftp.prot_p()
        ftp.storbinary("STOR hello.csv", __import__("io").BytesIO(b"sku;qty\n"))
    assert (root / "hello.csv").read_bytes() == b"sku;qty\n"
    assert oct((certs / ftps_cert.SERVER_FILE).stat().st_mode & 0o777) == "0o600"


def test_ftps_certificate_is_refused_without_the_ca(tls_ftp_server):
    port, _, _ = tls_ftp_server
    with pytest.raises(ssl.SSLCertVerificationError):
        with ftplib.FTP_TLS(context=ssl.create_default_context(), timeout=10) as ftp:
            ftp.connect("localhost", port)
            ftp.login("shop", "pw")


def test_ftps_certificate_is_kept_until_names_change(tmp_path):
    assert ftps_cert.write_pair(tmp_path, ["ftps", "localhost"]) is True
    ca_before = (tmp_path / ftps_cert.CA_FILE).read_bytes()
    assert ftps_cert.write_pair(tmp_path, ["ftps"]) is False  # covered already: the CA workers trust stays
    assert (tmp_path / ftps_cert.CA_FILE).read_bytes() == ca_before
    assert ftps_cert.write_pair(tmp_path, ["ftps", "shop.example.com"]) is True
    assert (tmp_path / ftps_cert.CA_FILE).read_bytes() != ca_before
    (tmp_path / ftps_cert.CA_FILE).write_bytes(ftps_cert.make_pair(["ftps"])[0])  # a CA that did not sign it
    assert ftps_cert.still_good(tmp_path, ["ftps"]) is False


# -- docker/erp_seed.py ---------------------------------------------------------------------------
def test_erp_seed_seeds_an_empty_back_office_once(pg_server):
    from passerelle_demo.localenv import create_database, drop_database

    name = f"passerelle_seed_{uuid.uuid4().hex[:8]}"
    dsn = create_database(pg_server, name)
    env = {
        **os.environ,
        "PASSERELLE_DEMO_ERP_DSN": dsn,
        "PASSERELLE_DEMO_ARTICLES": "12",
        "PYTHONPATH": str(ROOT / "plugins"),
    }
    try:
        first = subprocess.run(
            [sys.executable, str(DOCKER / "erp_seed.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert first.returncode == 0, first.stderr
        with psycopg.connect(dsn) as conn:
            conn.execute("UPDATE erp.article SET name = 'Edited by hand' WHERE id = 1")
            conn.commit()
            count = conn.execute("SELECT count(*) FROM erp.article").fetchone()[0]
        assert count >= 12

        second = subprocess.run(
            [sys.executable, str(DOCKER / "erp_seed.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

        assert second.returncode == 0, second.stderr
        assert f"already has {count} articles" in second.stdout
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT name FROM erp.article WHERE id = 1").fetchone()[0] == "Edited by hand"
    finally:
        drop_database(pg_server, name)


def test_erp_seed_names_a_bad_setting():
    env = {k: v for k, v in os.environ.items() if k != "PASSERELLE_DEMO_ERP_DSN"}
    missing = subprocess.run(
        [sys.executable, str(DOCKER / "erp_seed.py")], env=env, capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2 and "PASSERELLE_DEMO_ERP_DSN" in missing.stderr
    bad = subprocess.run(
        [sys.executable, str(DOCKER / "erp_seed.py")],
        env={**env, "PASSERELLE_DEMO_ERP_DSN": "postgresql://x@127.0.0.1:1/x", "PASSERELLE_DEMO_ARTICLES": "many"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "'many'" in bad.stderr
