"""Airflow's CeleryExecutor topology as real local processes, for integration tests.

The production stack (docker-compose.yaml) runs an api-server, a scheduler, a dag-processor and
Celery workers around a PostgreSQL metadata database and a Redis broker. No Docker engine runs on
our machines, so :class:`CeleryStack` starts the same components without containers:

* a fresh metadata database ``passerelle_af_<random>`` in the local PostgreSQL, dropped at the end;
* Redis at 127.0.0.1:6379 if it answers PING, else a private ``redis-server`` on a free port;
* ``airflow api-server`` (REST API + Execution API), ``airflow scheduler``,
  ``airflow dag-processor`` and ``airflow celery worker``, each in its own process group.

Every run uses its own Celery queue, so two stacks sharing one Redis never steal each other's
tasks. DAG runs are triggered and watched through the REST API, authenticated as a simple-auth-
manager admin: a task only succeeds if the scheduler queued it, a Celery worker picked it up and
the task talked to the Execution API, exactly as in production.

Typical use::

    with CeleryStack(tmp_path, bundles={"passerelle": PROJECT_DAGS}) as stack:
        result = stack.run_dag("catalog")

:meth:`CeleryStack.stop` stops every process (SIGTERM, then SIGKILL for the whole process tree),
also when start-up or a test failed.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import psycopg
from psycopg import sql

PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: The project's DAG files and Python package, mounted the same way in docker-compose.yaml.
PROJECT_DAGS = PROJECT_ROOT / "dags"
PROJECT_PLUGINS = PROJECT_ROOT / "plugins"

#: A PostgreSQL server (trust auth) on which the stack may create and drop its own database.
LOCAL_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = ("127.0.0.1", 6379)

ADMIN_USER = "passerelle"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
LOG_TAIL_CHARS = 4000
_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """The stack could not start, or a DAG run did not end as expected; the message says why."""


class StackUnavailable(StackError):
    """A prerequisite (PostgreSQL, Redis) is missing on this machine: tests should skip."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.5) -> Any:
    """Call ``predicate`` until it returns a truthy value; raise :class:`StackError` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the test process dies without cleaning up."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not glibc/Linux: teardown still stops the process
        pass


def tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    """Return the last ``chars`` characters of a text file ('' if it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - chars))
            return handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


@dataclass
class ManagedProcess:
    """A long-running child started in its own session, its output in ``log_path``."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    @classmethod
    def start(cls, name: str, argv: list[str], *, env: Mapping[str, str], log_dir: Path, cwd: Path) -> ManagedProcess:
        log_path = log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                argv,
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        return cls(name=name, popen=popen, log_path=log_path)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        return tail(self.log_path, chars)

    def describe_exit(self) -> str:
        return f"{self.name} (pid {self.popen.pid}) exited with code {self.popen.returncode}; log {self.log_path}"


def stop_processes(processes: list[ManagedProcess], *, grace: float = 20.0) -> None:
    """SIGTERM every process tree, wait up to ``grace`` seconds in total, then SIGKILL what is left.

    The trees are collected first (psutil) so that children which left the process group, such
    as task supervisors, are stopped too.
    """
    trees: list[psutil.Process] = []
    for proc in processes:
        if not proc.alive():
            continue
        try:
            root = psutil.Process(proc.popen.pid)
            trees.extend([root, *root.children(recursive=True)])
        except psutil.NoSuchProcess:
            continue
        try:
            os.killpg(proc.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for member in trees:
        try:
            member.terminate()
        except psutil.NoSuchProcess:
            pass
    _, still_alive = psutil.wait_procs(trees, timeout=grace)
    for member in still_alive:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(still_alive, timeout=5)
    for proc in processes:
        try:
            os.killpg(proc.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _redis_pings(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _install_redis_server() -> str | None:
    """Install Debian's redis-server when running as root with apt; return its path or None."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False, timeout=300)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"],
        env=env,
        capture_output=True,
        check=False,
        timeout=600,
    )
    return shutil.which("redis-server")


@dataclass
class RedisBroker:
    """The Celery broker: an existing Redis at 127.0.0.1:6379, or one started here."""

    host: str
    port: int
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @classmethod
    def ensure(cls, log_dir: Path, *, prefer: tuple[str, int] = DEFAULT_REDIS) -> RedisBroker:
        """Use the Redis at ``prefer`` if it answers PING, else start ``redis-server`` on a free port.

        :raises StackUnavailable: when neither is possible (no server, not root to install one).
        """
        host, port = prefer
        if _redis_pings(host, port):
            return cls(host, port)
        binary = shutil.which("redis-server") or _install_redis_server()
        if not binary:
            raise StackUnavailable(
                f"no Redis answers on {host}:{port} and redis-server is not installed "
                "(install Debian's package: apt-get install redis-server)"
            )
        host, port = "127.0.0.1", free_port()
        process = ManagedProcess.start(
            "redis",
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            env=os.environ,
            log_dir=log_dir,
            cwd=log_dir,
        )
        broker = cls(host, port, process)
        try:
            wait_until(lambda: _redis_pings(host, port) or not process.alive(), timeout=20, what="redis-server")
        except StackError:
            broker.stop()
            raise
        if not process.alive():
            raise StackError(f"{process.describe_exit()}\n{process.log_tail()}")
        return broker

    def stop(self) -> None:
        if self.process is not None:
            stop_processes([self.process], grace=5)


@dataclass
class MetadataDatabase:
    """A throw-away PostgreSQL database for Airflow's metadata, on the server of ``server_dsn``."""

    server_dsn: str = LOCAL_PG_DSN
    name: str = field(default_factory=lambda: f"passerelle_af_{uuid.uuid4().hex[:10]}")

    def _url(self, scheme: str) -> str:
        parts = urlsplit(self.server_dsn)
        return urlunsplit((scheme, parts.netloc, f"/{self.name}", parts.query, ""))

    @property
    def sqlalchemy_url(self) -> str:
        return self._url("postgresql+psycopg2")

    @property
    def celery_result_backend(self) -> str:
        return self._url("db+postgresql")

    def _admin(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self.server_dsn, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise StackUnavailable(f"PostgreSQL at {self.server_dsn} is not reachable: {exc}") from exc

    def create(self) -> None:
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))

    def drop(self) -> None:
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))


@dataclass
class DagRunResult:
    """How a DAG run ended, with its task instances as the REST API returns them."""

    dag_id: str
    run_id: str
    state: str
    task_instances: list[dict[str, Any]]

    def states(self) -> dict[str, list[str]]:
        """Task id -> states of its instances (several for a mapped task)."""
        out: dict[str, list[str]] = {}
        for ti in self.task_instances:
            out.setdefault(ti["task_id"], []).append(ti["state"])
        return out


class CeleryStack:
    """Airflow with CeleryExecutor as real processes; a context manager that always cleans up.

    :param workdir: empty folder for AIRFLOW_HOME, process logs and task logs.
    :param bundles: DAG bundle name -> folder of DAG files (each a ``LocalDagBundle``).
        Use ``{"passerelle": PROJECT_DAGS}`` to run the project's own DAGs.
    :param plugins_folder: AIRFLOW__CORE__PLUGINS_FOLDER, also put first on PYTHONPATH so DAG files
        import the ``passerelle`` package as in the containers.
    :param extra_env: more environment for every process (AIRFLOW_CONN_*, PASSERELLE_CONFIG, ...).
    :param concurrency: task slots of the Celery worker.
    :param pg_server_dsn: a PostgreSQL server (URL form) where the metadata database is created.
    :param startup_timeout: seconds allowed for the processes to become healthy.
    :param api_timeout: seconds a REST API call may take (raise it on a machine under load).
    :param triggerer: also start ``airflow triggerer`` (deferred tasks, the AssetWatchers of the
        ``on_change`` flows), and wait for it to be healthy.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        bundles: Mapping[str, Path],
        plugins_folder: Path | None = PROJECT_PLUGINS,
        extra_env: Mapping[str, str] | None = None,
        concurrency: int = 2,
        pg_server_dsn: str = LOCAL_PG_DSN,
        startup_timeout: float = 180.0,
        triggerer: bool = False,
        api_timeout: float = 30.0,
    ) -> None:
        if not bundles:
            raise ValueError("bundles is empty: give at least one {name: dags_folder}")
        for name, folder in bundles.items():
            if not Path(folder).is_dir():
                raise ValueError(f"DAG bundle {name!r}: folder {folder} does not exist")
        self.workdir = Path(workdir)
        self.home = self.workdir / "airflow_home"
        self.log_dir = self.workdir / "process_logs"
        self.bundles = {name: Path(folder).resolve() for name, folder in bundles.items()}
        self.plugins_folder = Path(plugins_folder).resolve() if plugins_folder else None
        self.extra_env = dict(extra_env or {})
        self.concurrency = concurrency
        self.startup_timeout = startup_timeout
        self.triggerer = triggerer
        self.api_timeout = api_timeout
        self.queue = f"passerelle_{uuid.uuid4().hex[:8]}"
        self.api_port = free_port()
        self.database = MetadataDatabase(pg_server_dsn)
        self.redis: RedisBroker | None = None
        self.processes: list[ManagedProcess] = []
        self._database_created = False
        self._password = secrets.token_urlsafe(16)
        self._client: httpx.Client | None = None
        self.env: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> CeleryStack:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        """Create the database, start Redis if needed, migrate, start the four Airflow processes.

        On any failure everything already started is stopped before the error propagates.
        """
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.database.create()
        self._database_created = True
        self.redis = RedisBroker.ensure(self.log_dir)
        self.env = self._build_env()
        (self.home / "passwords.json").write_text(json.dumps({ADMIN_USER: self._password}) + "\n")
        self._airflow_once("db-migrate", ["db", "migrate"], timeout=300)
        worker_name = f"{self.queue}@%h"
        self._spawn("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1"])
        self._spawn("scheduler", ["scheduler"])
        self._spawn("dag-processor", ["dag-processor"])
        if self.triggerer:
            self._spawn("triggerer", ["triggerer"])
        self._spawn(
            "celery-worker",
            [
                "celery",
                "worker",
                "--concurrency",
                str(self.concurrency),
                "--queues",
                self.queue,
                "--celery-hostname",
                worker_name,
                "--without-mingle",
                "--without-gossip",
            ],
        )
        wait_until(
            self._api_healthy,
            timeout=self.startup_timeout,
            what="api-server, scheduler, dag-processor" + (" and triggerer" if self.triggerer else "") + " health",
        )
        wait_until(self._worker_ready, timeout=self.startup_timeout, what="the Celery worker to be ready")

    def stop(self) -> None:
        """Stop every process (also after a failed start), then drop the metadata database."""
        if self._client is not None:
            self._client.close()
            self._client = None
        try:
            stop_processes(self.processes)
            if self.redis is not None:
                self.redis.stop()
        finally:
            if self._database_created:
                self.database.drop()
                self._database_created = False

    def _build_env(self) -> dict[str, str]:
        from cryptography.fernet import Fernet

        base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        pythonpath = [str(self.plugins_folder)] if self.plugins_folder else []
        if base.get("PYTHONPATH"):
            pythonpath.append(base["PYTHONPATH"])
        bundle_list = [
            {
                "name": name,
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(path)},
            }
            for name, path in self.bundles.items()
        ]
        assert self.redis is not None
        env = {
            **base,
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(next(iter(self.bundles.values()))),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundle_list),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.plugins_folder or self.home / "plugins"),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database.sqlalchemy_url,
            "AIRFLOW__CELERY__BROKER_URL": self.redis.url,
            "AIRFLOW__CELERY__RESULT_BACKEND": self.database.celery_result_backend,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.concurrency),
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "21600",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
            "AIRFLOW__API_AUTH__JWT_ISSUER": f"passerelle-test-{self.queue}",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # The task supervisor notices its task's end at its next heartbeat tick (default 5 s):
            # 1 s frees the worker's slot sooner, so short test tasks do not queue behind it.
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        }
        env.update(self.extra_env)
        return env

    def _airflow_argv(self, args: list[str]) -> list[str]:
        return [sys.executable, "-m", "airflow", *args]

    def _airflow_once(self, name: str, args: list[str], *, timeout: float) -> None:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            try:
                done = subprocess.run(
                    self._airflow_argv(args),
                    env=self.env,
                    cwd=self.workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            except subprocess.TimeoutExpired:
                raise StackError(f"`airflow {' '.join(args)}` took more than {timeout:.0f}s; log {log_path}") from None
        if done.returncode != 0:
            raise StackError(f"`airflow {' '.join(args)}` failed with code {done.returncode}:\n{tail(log_path)}")

    def _spawn(self, name: str, args: list[str]) -> None:
        self.processes.append(
            ManagedProcess.start(name, self._airflow_argv(args), env=self.env, log_dir=self.log_dir, cwd=self.workdir)
        )

    def check_processes(self) -> None:
        """Raise :class:`StackError` with the log of any Airflow process that has exited."""
        dead = [p for p in self.processes if not p.alive()]
        if dead:
            raise StackError("\n\n".join(f"{p.describe_exit()}\n{p.log_tail()}" for p in dead))

    def _api_healthy(self) -> bool:
        self.check_processes()
        try:
            response = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        health = response.json()
        components = [health.get("metadatabase"), health.get("scheduler"), health.get("dag_processor")]
        if self.triggerer:
            components.append(health.get("triggerer"))
        return all(c and c.get("status") == "healthy" for c in components)

    def _worker_ready(self) -> bool:
        self.check_processes()
        worker = next(p for p in self.processes if p.name == "celery-worker")
        return " ready." in tail(worker.log_path, 200_000)

    # -- REST API ---------------------------------------------------------------------------
    @property
    def client(self) -> httpx.Client:
        """An httpx client on the api-server, with a bearer token for the admin user."""
        if self._client is None:
            response = httpx.post(
                f"{self.base_url}/auth/token",
                json={"username": ADMIN_USER, "password": self._password},
                timeout=self.api_timeout,
            )
            if response.status_code not in (200, 201):
                raise StackError(f"login as {ADMIN_USER!r} failed: HTTP {response.status_code} {response.text}")
            token = response.json()["access_token"]
            self._client = httpx.Client(
                base_url=f"{self.base_url}/api/v2",
                headers={"Authorization": f"Bearer {token}"},
                timeout=self.api_timeout,
            )
        return self._client

    def api(self, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        """Call the REST API (``path`` under /api/v2) and return the decoded JSON body.

        :raises StackError: on a status not in ``expect``, with the response body.
        """
        response = self.client.request(method, path, **kwargs)
        if response.status_code not in expect:
            raise StackError(f"{method} /api/v2{path}: HTTP {response.status_code}, expected {expect}: {response.text}")
        return response.json() if response.content else None

    def import_errors(self) -> list[dict[str, Any]]:
        return self.api("GET", "/importErrors", params={"limit": 100})["import_errors"]

    def wait_for_dag(self, dag_id: str, *, dag_file: str | None = None, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the dag-processor has serialized ``dag_id``.

        :param dag_file: the DAG's file name (e.g. ``catalog.py``): an import error in
            that file fails at once, with Airflow's traceback, instead of waiting for ``timeout``.
        """

        def listing(errors: list[dict[str, Any]]) -> str:
            return "\n\n".join(f"{e['filename']}:\n{e['stack_trace']}" for e in errors)

        def parsed() -> dict[str, Any] | None:
            self.check_processes()
            response = self.client.get(f"/dags/{dag_id}")
            if response.status_code == 200:
                return response.json()
            if dag_file:
                mine = [e for e in self.import_errors() if Path(e["filename"]).name == dag_file]
                if mine:
                    raise StackError(f"DAG {dag_id!r} is not loaded; import error:\n{listing(mine)}")
            return None

        try:
            return wait_until(parsed, timeout=timeout, what=f"DAG {dag_id!r} to be parsed", interval=1.0)
        except StackError as exc:
            errors = self.import_errors()
            raise StackError(f"{exc}\nimport errors:\n{listing(errors) if errors else '(none)'}") from None

    def bundle_dags(self, bundle: str, *, timeout: float = 120.0) -> tuple[set[str], list[dict[str, Any]]]:
        """Wait until every DAG file of ``bundle`` is parsed; return (its dag ids, its import errors).

        A file counts as parsed once it yields a DAG or an import error. Files the dag-processor
        skips by its heuristic (no "airflow" and "dag" in the text) are not waited for.
        """
        folder = self.bundles[bundle]
        expected = {
            path.name
            for path in folder.glob("*.py")
            if all(word in path.read_bytes().lower() for word in (b"airflow", b"dag"))
        }

        def parsed() -> tuple[set[str], list[dict[str, Any]]] | None:
            self.check_processes()
            dags: list[dict[str, Any]] = []
            while True:
                page = self.api("GET", "/dags", params={"limit": 100, "offset": len(dags)})
                dags.extend(page["dags"])
                if not page["dags"] or len(dags) >= page["total_entries"]:
                    break
            mine = [d for d in dags if d.get("bundle_name") == bundle]
            errors = [e for e in self.import_errors() if e.get("bundle_name") == bundle]
            seen = {Path(d["fileloc"]).name for d in mine} | {Path(e["filename"]).name for e in errors}
            return ({d["dag_id"] for d in mine}, errors) if expected <= seen else None

        what = f"every DAG file of bundle {bundle!r} to be parsed"
        return wait_until(parsed, timeout=timeout, what=what, interval=1.0)

    def set_connection(self, conn_id: str, uri: str) -> None:
        """Create or replace an Airflow connection, given in URI form, through the REST API.

        Stored in the metadata database, so the workers read it through the Execution API as
        they would in production (where it may come from AIRFLOW_CONN_* or a secrets backend).
        """
        from airflow.models.connection import Connection

        conn = Connection(conn_id=conn_id, uri=uri)
        body = {
            "connection_id": conn_id,
            "conn_type": conn.conn_type,
            "host": conn.host,
            "port": conn.port,
            "login": conn.login,
            "password": conn.password,
            "schema": conn.schema,
            "extra": json.dumps(conn.extra_dejson) if conn.extra_dejson else None,
        }
        self.client.delete(f"/connections/{conn_id}")
        self.api("POST", "/connections", json=body, expect=(201,))

    def set_pool(self, name: str, slots: int, description: str = "") -> None:
        """Create or update a pool (e.g. ``shop_ftp``) through the REST API."""
        body = {"name": name, "slots": slots, "description": description}
        if self.client.get(f"/pools/{name}").status_code == 200:
            self.api("PATCH", f"/pools/{name}", json=body)
        else:
            self.api("POST", "/pools", json=body, expect=(201,))

    def trigger(
        self,
        dag_id: str,
        *,
        conf: Mapping[str, Any] | None = None,
        logical_date: datetime | None = None,
        dag_file: str | None = None,
    ) -> str:
        """Unpause ``dag_id`` and create a manual run; return its run id.

        ``logical_date`` defaults to now (UTC), so templates and data intervals are defined.
        Unpausing a DAG that has a schedule also lets the scheduler start its latest scheduled
        run: give DAGs under test a manual rhythm (the project's flows: ``manual: true``).
        """
        self.wait_for_dag(dag_id, dag_file=dag_file)
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        when = logical_date or datetime.now(UTC)
        run_id = f"manual__integration__{uuid.uuid4().hex[:8]}"
        body = {"dag_run_id": run_id, "logical_date": when.isoformat(), "conf": dict(conf or {})}
        return self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run (all pages; mapped instances included)."""
        out: list[dict[str, Any]] = []
        while True:
            page = self.api(
                "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100, "offset": len(out)}
            )
            out.extend(page["task_instances"])
            if not page["task_instances"] or len(out) >= page["total_entries"]:
                return out

    def xcom(self, dag_id: str, run_id: str, task_id: str, *, map_index: int = -1, key: str = "return_value") -> Any:
        """The deserialized XCom value a task pushed."""
        entry = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index, "deserialize": True},
        )
        return entry["value"]

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float = 240.0) -> DagRunResult:
        """Poll the run until it is finished (success or failed) and return how it ended."""

        def finished() -> str | None:
            self.check_processes()
            state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            return state if state in ("success", "failed") else None

        try:
            state = wait_until(finished, timeout=timeout, what=f"run {run_id} of {dag_id}", interval=1.0)
        except StackError as exc:
            raise StackError(f"{exc}\n{self.diagnostics(dag_id, run_id)}") from None
        return DagRunResult(dag_id, run_id, state, self.task_instances(dag_id, run_id))

    def run_dag(
        self,
        dag_id: str,
        *,
        conf: Mapping[str, Any] | None = None,
        dag_file: str | None = None,
        timeout: float = 240.0,
    ) -> DagRunResult:
        """Trigger ``dag_id``, wait for it and require success.

        :raises StackError: when the run failed or timed out, with the task states, the task logs
            and the tails of the process logs, so that CI shows why.
        """
        run_id = self.trigger(dag_id, conf=conf, dag_file=dag_file)
        result = self.wait_for_run(dag_id, run_id, timeout=timeout)
        if result.state != "success":
            raise StackError(f"run {run_id} of {dag_id} ended {result.state!r}\n{self.diagnostics(dag_id, run_id)}")
        return result

    # -- diagnostics ------------------------------------------------------------------------
    def celery_tasks_received(self) -> int:
        """How many Airflow workloads the Celery worker has received so far (from its log)."""
        worker = next(p for p in self.processes if p.name == "celery-worker")
        lines = tail(worker.log_path, 50_000_000).splitlines()
        return sum(1 for line in lines if "Task execute_workload[" in line and "] received" in line)

    def task_log_files(self, dag_id: str, run_id: str) -> list[Path]:
        base = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        return sorted(base.rglob("*.log")) if base.exists() else []

    def diagnostics(self, dag_id: str, run_id: str) -> str:
        """Task states, task logs and process log tails of one run, as one readable text."""
        parts = [f"=== task instances of {dag_id} / {run_id}"]
        try:
            for ti in self.task_instances(dag_id, run_id):
                parts.append(
                    f"{ti['task_id']}[{ti['map_index']}] state={ti['state']} try={ti['try_number']} "
                    f"queue={ti['queue']} host={ti['hostname']}"
                )
        except (StackError, httpx.HTTPError) as exc:
            parts.append(f"(could not list task instances: {exc})")
        for path in self.task_log_files(dag_id, run_id):
            parts.append(f"=== task log {path.relative_to(self.home)}\n{tail(path)}")
        for proc in self.processes:
            state = "running" if proc.alive() else f"exited {proc.popen.returncode}"
            parts.append(f"=== {proc.name} ({state}) {proc.log_path}\n{proc.log_tail(2000)}")
        return "\n".join(parts)
