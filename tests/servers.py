"""Real file servers on loopback for the hook tests: pyftpdlib (FTP, FTPS), vsftpd with forced TLS,
OpenSSH's sshd serving SFTP.

Every server is a real process or thread speaking the real protocol; none is a mock. vsftpd and sshd
are Debian packages installed by :func:`ensure_packages` when absent (``apt-get``, as root). A server
that cannot be installed or started raises :class:`ServerUnavailable` naming the command and its
output, so the tests that need it FAIL with the reason (they never skip).

Every server gives its user the same tree, so one test suite runs against all of them::

    /            not writable by the user (vsftpd and sshd chroot the user there, as shops do)
    /shop/       writable: the tests work in fresh sub-folders of it
    /locked/     readable, not writable: refused mkdir, upload and rename

Folders for vsftpd and sshd live under ``/srv/passerelle-tests`` and not ``/tmp``: sshd refuses a
``ChrootDirectory`` with a world-writable component, such as ``/tmp``.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from passerelle_demo.localenv import free_port, self_signed_certificate, serve_in_thread

SERVER_BASE = Path("/srv/passerelle-tests")
SFTP_SERVER_PACKAGES = ("openssh-server", "openssh-sftp-server")
VSFTPD_PACKAGES = ("vsftpd",)


class ServerUnavailable(RuntimeError):
    """A test server could not be installed or started; the message says what was run and what it said."""


@dataclass
class ShopServer:
    """A running server and what the tests need to know about it.

    :param kind: ``ftp``, ``ftps``, ``vsftpd`` or ``sftp``.
    :param root: the local folder the user sees as ``/``.
    :param extra: the connection's extras (``tls``, ``ca_file``; ``key_file``, ``host_key``).
    """

    kind: str
    conn_type: str
    host: str
    port: int
    user: str
    password: str | None
    root: Path
    extra: dict = field(default_factory=dict)
    owner: tuple[int, int] | None = None  # uid, gid of the server's user, for files the test creates
    stop: Callable[[], None] = field(default=lambda: None, repr=False)
    account_password: str | None = None  # the user's password, also when the connection logs in by key

    def connection(self, **changes) -> str:
        """The Airflow connection as the JSON value of an ``AIRFLOW_CONN_<ID>`` variable; ``changes``
        replace fields (``password``, ``port``...) and ``extra`` is merged (a ``None`` value drops a key)."""
        body = {
            "conn_type": self.conn_type,
            "host": self.host,
            "port": self.port,
            "login": self.user,
            "password": self.password,
            "extra": dict(self.extra),
        }
        extra = changes.pop("extra", {})
        body.update(changes)
        body["extra"].update(extra)
        body["extra"] = {k: v for k, v in body["extra"].items() if v is not None}
        return json.dumps({k: v for k, v in body.items() if v is not None})

    def path(self, remote: str) -> Path:
        return self.root / remote.lstrip("/")

    def make_folder(self, remote: str) -> Path:
        """Create a folder the server's user owns (as the server's own mkdir would)."""
        local = self.path(remote)
        local.mkdir(parents=True, exist_ok=True)
        if self.owner:
            os.chown(local, *self.owner)
        return local

    def write(self, remote: str, data: bytes) -> Path:
        """Drop a file as the shop would (owned by the server's user)."""
        local = self.path(remote)
        local.write_bytes(data)
        if self.owner:
            os.chown(local, *self.owner)
        return local


def _run(cmd: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    except OSError as exc:
        raise ServerUnavailable(f"{what}: cannot run {' '.join(cmd)}: {exc}") from exc
    if done.returncode:
        raise ServerUnavailable(
            f"{what}: {' '.join(cmd)} exited {done.returncode}: {(done.stderr or done.stdout).strip()[-2000:]}"
        )
    return done


def ensure_packages(binary: str, packages: tuple[str, ...]) -> str:
    """The path of ``binary``, installing the Debian ``packages`` first when it is absent.

    Needs root and a reachable Debian mirror (a fresh machine gets ``apt-get update`` first).
    """
    if Path(binary).exists():
        return binary
    if os.geteuid() != 0:
        raise ServerUnavailable(
            f"{binary} is absent and installing {' '.join(packages)} needs root "
            f"(run: apt-get install -y {' '.join(packages)})"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]  # another apt-get may hold dpkg's lock: wait for it
    install = [*apt, "install", "-y", "--no-install-recommends", *packages]
    try:
        _run(install, f"installing {' '.join(packages)}", env=env, timeout=900)
    except ServerUnavailable:  # a fresh machine has no package lists yet
        _run([*apt, "update"], "apt-get update", env=env, timeout=900)
        _run(install, f"installing {' '.join(packages)}", env=env, timeout=900)
    if not Path(binary).exists():
        raise ServerUnavailable(f"{' '.join(packages)} installed but {binary} is still absent")
    return binary


def _wait_for_port(port: int, proc: subprocess.Popen, what: str, log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerUnavailable(
                f"{what} exited {proc.returncode} at start: {log.read_text(errors='replace').strip()[-2000:]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.settimeout(2)
                if s.recv(64):  # FTP's 220 or SSH's banner: the server is serving
                    return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise ServerUnavailable(
        f"{what} did not answer on 127.0.0.1:{port} within {timeout:.0f} s: "
        f"{log.read_text(errors='replace').strip()[-2000:]}"
    )


def _stopper(proc: subprocess.Popen, *cleanups: Callable[[], None]) -> Callable[[], None]:
    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for cleanup in cleanups:
            cleanup()

    return stop


# -- a local user for the servers that log in system users -------------------------------------------
@dataclass
class LocalUser:
    name: str
    password: str
    uid: int
    gid: int
    home: Path


def create_user(home: Path) -> LocalUser:
    """A system user (shell ``/bin/sh``, which PAM's ``pam_shells`` wants) with a random password."""
    name = f"pst{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    _run(
        ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh", name],
        f"creating the test user {name}",
    )
    _run(["chpasswd"], f"setting the password of {name}", input=f"{name}:{password}\n")
    entry = pwd.getpwnam(name)
    return LocalUser(name, password, entry.pw_uid, entry.pw_gid, home)


def delete_user(user: LocalUser) -> None:
    subprocess.run(["userdel", "--force", user.name], capture_output=True, check=False)


def _shop_tree(root: Path, owner: tuple[int, int] | None) -> None:
    """``/`` and ``/locked`` belong to root (mode 0755); ``/shop`` to the server's user."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    (root / "locked").mkdir(exist_ok=True)
    (root / "locked" / "keep.txt").write_bytes(b"a file the user may read, not move\n")
    shop = root / "shop"
    shop.mkdir(exist_ok=True)
    if owner:
        os.chown(shop, *owner)


def _server_dir(prefix: str) -> Path:
    SERVER_BASE.mkdir(parents=True, exist_ok=True)
    os.chmod(SERVER_BASE, 0o755)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=SERVER_BASE))
    os.chmod(folder, 0o755)  # mkdtemp's 0700 would keep the server's user out of its own home
    return folder


# -- pyftpdlib ---------------------------------------------------------------------------------------
def start_pyftpdlib(
    root: Path,
    *,
    tls: bool = False,
    without: tuple[str, ...] = (),
    chmod: bool = True,
    size_lies: bool = False,
    stor_reply: str | None = None,
    dele_reply: str | None = None,
) -> ShopServer:
    """pyftpdlib in a thread, with the shared tree; ``without`` removes commands (``SIZE``, ``MLSD``...),
    ``chmod=False`` refuses ``SITE CHMOD``, ``size_lies`` answers SIZE with one byte less (a server that
    truncated the upload silently), ``stor_reply`` answers every upload so (``452 ...``: a full disk),
    ``dele_reply`` every deletion (``550 ...``: a server that keeps what it received)."""
    import logging

    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    _shop_tree(root, None)
    user, password = "shop", secrets.token_urlsafe(10)
    authorizer = DummyAuthorizer()
    authorizer.add_user(user, password, str(root), perm="elr")  # "/" and "/locked": read only
    authorizer.override_perm(user, str(root / "shop"), "elr" + ("adfmwMT" if chmod else "adfmwT"), recursive=True)
    base = TLS_FTPHandler if tls else FTPHandler
    attrs: dict = {"authorizer": authorizer, "banner": "Passerelle test server", "auth_failed_timeout": 0.1}
    if without:
        attrs["proto_cmds"] = {k: v for k, v in base.proto_cmds.items() if k not in without}
    if size_lies:

        def ftp_SIZE(self, path):
            try:
                size = self.run_as_current_user(self.fs.getsize, path)
            except OSError:
                return self.respond("550 No such file or directory.")
            self.respond(f"213 {max(size - 1, 0)}")

        attrs["ftp_SIZE"] = ftp_SIZE
    if stor_reply:
        attrs["ftp_STOR"] = lambda self, file, mode="w": self.respond(stor_reply)
    if dele_reply:
        attrs["ftp_DELE"] = lambda self, path: self.respond(dele_reply)
    cafile = None
    if tls:
        cafile, keyfile = self_signed_certificate(Path(tempfile.mkdtemp(prefix="passerelle-tls-")))
        attrs.update(certfile=cafile, keyfile=keyfile, tls_control_required=True, tls_data_required=True)
    handler = type("Handler", (base,), attrs)
    server = ThreadedFTPServer(("127.0.0.1", 0), handler)
    port = server.socket.getsockname()[1]
    stop = serve_in_thread(server, "passerelle-test-ftp")
    extra = {"tls": "true", "ca_file": cafile} if tls else {}
    return ShopServer("ftps" if tls else "ftp", "ftp", "127.0.0.1", port, user, password, root, extra, None, stop)


# -- vsftpd ------------------------------------------------------------------------------------------
VSFTPD = "/usr/sbin/vsftpd"


def start_vsftpd(*, denied: tuple[str, ...] = ()) -> ShopServer:
    """vsftpd with forced TLS and session reuse, its user locked (chroot) into its home folder.

    The shops' hosting runs it so; ``local_umask`` is vsftpd's default (077: files 0600), which is why
    the hook sets the mode of published files. ``denied`` refuses commands (``cmds_denied``).
    """
    binary = ensure_packages(VSFTPD, VSFTPD_PACKAGES)
    base = _server_dir("vsftpd-")
    home, empty = base / "home", base / "empty"
    empty.mkdir()
    user = create_user(home)
    _shop_tree(home, (user.uid, user.gid))
    cert, key = self_signed_certificate(base)
    port = free_port()
    conf = base / "vsftpd.conf"
    log = base / "vsftpd.log"
    lines = {
        "listen": "YES",
        "listen_ipv6": "NO",
        "listen_address": "127.0.0.1",
        "listen_port": port,
        "background": "NO",
        "anonymous_enable": "NO",
        "local_enable": "YES",
        "write_enable": "YES",
        "chroot_local_user": "YES",
        "secure_chroot_dir": empty,
        "pam_service_name": "vsftpd",
        "ssl_enable": "YES",
        "force_local_logins_ssl": "YES",
        "force_local_data_ssl": "YES",
        "require_ssl_reuse": "YES",
        "ssl_ciphers": "HIGH",
        "rsa_cert_file": cert,
        "rsa_private_key_file": key,
        "seccomp_sandbox": "NO",
        "isolate": "NO",
        "isolate_network": "NO",
        "vsftpd_log_file": log,
        "xferlog_enable": "YES",
        "log_ftp_protocol": "YES",
        "dual_log_enable": "NO",
        "pasv_enable": "YES",
        "pasv_address": "127.0.0.1",
    }
    if denied:
        lines["cmds_denied"] = ",".join(denied)
    conf.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
    os.chmod(conf, 0o600)  # vsftpd refuses a configuration others may write
    stderr = base / "stderr.log"
    with stderr.open("wb") as err:
        proc = subprocess.Popen([binary, str(conf)], stdout=err, stderr=subprocess.STDOUT)
    stop = _stopper(proc, lambda: delete_user(user), lambda: shutil.rmtree(base, ignore_errors=True))
    try:
        _wait_for_port(port, proc, f"vsftpd ({binary} {conf})", stderr)
    except ServerUnavailable:
        stop()
        raise
    return ShopServer(
        "vsftpd",
        "ftp",
        "127.0.0.1",
        port,
        user.name,
        user.password,
        home,
        {"tls": "true", "ca_file": cert},
        (user.uid, user.gid),
        stop,
    )


# -- OpenSSH -----------------------------------------------------------------------------------------
SSHD = "/usr/sbin/sshd"


def start_sshd() -> ShopServer:
    """OpenSSH's sshd on a loopback port, serving SFTP only, its user chrooted into its folder.

    The SFTP server is OpenSSH's own (``internal-sftp``, the code of ``/usr/lib/openssh/sftp-server``
    built into sshd): a chroot holds no binary to run, so OpenSSH's documented way is the built-in one.
    The user logs in with a generated key (``key_file``) or its password; the host key is generated
    into the server's folder and given to the client (``host_key``), so it is verified.
    """
    binary = ensure_packages(SSHD, SFTP_SERVER_PACKAGES)
    base = _server_dir("sshd-")
    root = base / "root"
    user = create_user(root)
    _shop_tree(root, (user.uid, user.gid))
    keys = base / "keys"
    keys.mkdir(mode=0o755)
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "host_ed25519")], "host key")
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "client_ed25519")], "client key")
    authorized = keys / "authorized_keys"
    shutil.copy(keys / "client_ed25519.pub", authorized)
    os.chmod(authorized, 0o644)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation folder, absent without systemd
    port = free_port()
    conf = base / "sshd_config"
    conf.write_text(
        f"ListenAddress 127.0.0.1\nHostKey {keys / 'host_ed25519'}\nPidFile none\n"
        f"AuthorizedKeysFile {authorized}\nPubkeyAuthentication yes\nPasswordAuthentication yes\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin no\n"
        f"AllowUsers {user.name}\nSubsystem sftp internal-sftp -u 022\n"
        f"Match User {user.name}\n  ChrootDirectory {root}\n  ForceCommand internal-sftp -u 022\n"
        "  AllowTcpForwarding no\n  X11Forwarding no\n"
    )
    log = base / "sshd.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [binary, "-D", "-e", "-f", str(conf), "-p", str(port)], stdout=err, stderr=subprocess.STDOUT
        )
    stop = _stopper(proc, lambda: delete_user(user), lambda: shutil.rmtree(base, ignore_errors=True))
    try:
        _wait_for_port(port, proc, f"sshd ({binary} -D -f {conf} -p {port})", log)
    except ServerUnavailable:
        stop()
        raise
    host_key = " ".join((keys / "host_ed25519.pub").read_text().split()[:2])
    extra = {"key_file": str(keys / "client_ed25519"), "host_key": host_key, "look_for_keys": "false"}
    # The key logs in; the password is kept for the tests of password logins.
    return ShopServer(
        "sftp",
        "sftp",
        "127.0.0.1",
        port,
        user.name,
        None,
        root,
        extra,
        (user.uid, user.gid),
        stop,
        account_password=user.password,
    )


# -- fixtures (registered by tests/conftest.py) ----------------------------------------------------


@pytest.fixture
def ftp_shop(tmp_path):
    """pyftpdlib, plain FTP, with the shared tree."""
    server = start_pyftpdlib(tmp_path / "ftp-shop")
    yield server
    server.stop()


@pytest.fixture
def ftps_shop(tmp_path):
    """pyftpdlib, explicit FTPS required, certificate from a private CA (``ca_file``)."""
    server = start_pyftpdlib(tmp_path / "ftps-shop", tls=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vsftpd_shop():
    """vsftpd, forced TLS with session reuse, user chrooted; installed when absent. One per session."""
    server = start_vsftpd()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sftp_shop():
    """OpenSSH's sshd serving SFTP on loopback, user chrooted, key login; installed when absent."""
    server = start_sshd()
    yield server
    server.stop()
