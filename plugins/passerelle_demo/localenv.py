"""Embedded defaults for the demo and the tests: a PostgreSQL and an FTP server on loopback.

``local_postgres()`` returns the server at 127.0.0.1:5432 when it answers, else starts a
throwaway cluster from the installed server binaries (``initdb``/``pg_ctl``; as root, the
cluster runs as the ``postgres`` user, since PostgreSQL refuses to run as root).
``start_ftp()`` runs a pyftpdlib server (plain FTP or explicit FTPS) in a thread.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

LOCAL_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    path = found[-1] if found else shutil.which(name)
    if not path:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql)")
    return path


def start_postgres() -> tuple[str, Callable[[], None]]:
    """Start a throwaway PostgreSQL cluster on a free port; returns (dsn, stop)."""
    base = Path(tempfile.mkdtemp(prefix="passerelle-pg-"))
    data, port = base / "data", free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        prefix + [_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        prefix
        + [
            _pg_bin("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "pg.log"),
            "-w",
            "start",
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off",
        ],
        check=True,
        capture_output=True,
    )

    def stop() -> None:
        subprocess.run(prefix + [_pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)

    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop


def local_postgres() -> tuple[str, Callable[[], None]]:
    """(server dsn, stop): 127.0.0.1:5432 if it answers, else a throwaway cluster."""
    if answers(LOCAL_DSN):
        return LOCAL_DSN, lambda: None
    return start_postgres()


def with_database(dsn: str, name: str) -> str:
    return dsn.rsplit("/", 1)[0] + "/" + name


def create_database(server_dsn: str, name: str, *, template: str | None = None, replace: bool = False) -> str:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        if replace:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return with_database(server_dsn, name)


def drop_database(server_dsn: str, name: str) -> None:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class FTPServer:
    host: str
    port: int
    user: str
    password: str
    root: Path
    tls: bool = False
    cafile: str | None = None

    def uri(self) -> str:
        """The Airflow connection URI (AIRFLOW_CONN_...) of this server."""
        extra = f"?tls=true&ca_file={quote(self.cafile, safe='')}" if self.tls else ""
        return f"ftp://{self.user}:{self.password}@{self.host}:{self.port}/{extra}"

    def path(self, remote: str) -> Path:
        return self.root / remote.lstrip("/")


def self_signed_certificate(folder: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1/localhost and its key, as PEM files in folder."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(certfile), str(keyfile)


def start_ftp(root: Path, *, tls: bool = False, port: int = 0) -> tuple[FTPServer, Callable[[], None]]:
    """Run a pyftpdlib server on loopback in a thread; returns (server, stop)."""
    import logging

    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    authorizer = DummyAuthorizer()
    authorizer.add_user("shop", "s3cret", str(root), perm="elradfmwMT")
    handler = type("Handler", (TLS_FTPHandler if tls else FTPHandler,), {})
    handler.authorizer = authorizer
    handler.banner = "Passerelle local shop server"
    cafile = None
    if tls:
        certdir = Path(tempfile.mkdtemp(prefix="passerelle-tls-"))
        cafile, keyfile = self_signed_certificate(certdir)
        handler.certfile, handler.keyfile = cafile, keyfile
        handler.tls_control_required = True
        handler.tls_data_required = True
    server = ThreadedFTPServer(("127.0.0.1", port), handler)
    actual = server.socket.getsockname()[1]
    stop = serve_in_thread(server, "passerelle-ftp")
    return FTPServer("127.0.0.1", actual, "shop", "s3cret", root, tls=tls, cafile=cafile), stop


def serve_in_thread(server: Any, name: str) -> Callable[[], None]:
    """Run a pyftpdlib server's loop in a thread; returns ``stop``, which ends the loop, then closes.

    Closing the server from another thread while its loop polls makes the loop fail on a closed
    descriptor: the loop turns in short steps and checks a flag, as pyftpdlib's own test server does.
    """
    stopping = threading.Event()

    def loop() -> None:
        while not stopping.is_set():
            server.serve_forever(timeout=0.1, blocking=False)

    thread = threading.Thread(target=loop, daemon=True, name=name)
    thread.start()

    def stop() -> None:
        stopping.set()
        thread.join(5)
        server.close_all()

    return stop
