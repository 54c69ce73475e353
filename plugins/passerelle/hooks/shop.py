"""The shop's file server: FTP, FTPS or SFTP, through the Airflow providers' hooks.

``ShopFilesHook`` owns one connection and offers the few verbs Passerelle needs (put, get,
size, rename, list, delete, makedirs) whatever the protocol, plus ``publish``: upload under a
temporary name, check the size, rename into place, manifest last.

Which protocol is read from the Airflow connection: ``conn_type`` ``sftp`` uses the SFTP
provider; ``ftp`` uses the FTP provider, with TLS (explicit FTPS) when the connection's
extra has ``"tls": true`` or its type is ``ftps``.

FTPS extras: ``ca_file`` (a PEM bundle to trust, e.g. the shop's self-signed certificate),
``verify`` (default true; false only when explicitly set), ``passive`` (default true),
``encoding``, ``timeout`` (seconds, default 60).
"""

from __future__ import annotations

import ftplib  # nosec: B402 (plain FTP is what many shops still run; FTPS and SFTP are offered)
import io
import json
import logging
import posixpath
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from airflow.providers.ftp.hooks.ftp import FTPHook, FTPSHook

log = logging.getLogger(__name__)

#: Errors worth a retry: the network, and FTP's 4xx "transient negative" replies.
TRANSIENT = (ftplib.error_temp, socket.timeout, ConnectionError, EOFError, TimeoutError)
PART_SUFFIX = ".part"


class TransferError(RuntimeError):
    """A file could not be moved safely; the message names the file and what was wrong."""


def _truthy(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off", "")
    return bool(value)


class ReusedSessionFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS that resumes the control connection's TLS session on data connections.

    vsftpd (``require_ssl_reuse=YES``, its default), ProFTPD (``TLSOptions
    NoSessionReuseRequired`` absent) and FileZilla Server refuse data connections that do not
    reuse the control session; the standard library does not do it.
    """

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size


class ShopFTPSHook(FTPSHook):
    """FTPS (explicit TLS) with certificate verification on by default.

    The provider's ``FTPSHook`` sets the port on the ``FTP_TLS`` class (shared by every
    connection in the process), cannot trust a private CA and does not reuse TLS sessions;
    this subclass fixes the three.
    """

    hook_name = "Shop FTPS"

    def get_conn(self) -> ftplib.FTP:
        if self.conn is None:
            params = self.get_connection(self.ftp_conn_id)
            extra = params.extra_dejson
            context = ssl.create_default_context(cafile=extra.get("ca_file") or None)
            if not _truthy(extra.get("verify"), True):
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            timeout = float(extra.get("timeout", 60))
            kwargs: dict[str, Any] = {"context": context, "timeout": timeout}
            if extra.get("encoding"):
                kwargs["encoding"] = extra["encoding"]
            conn = ReusedSessionFTP_TLS(**kwargs)
            conn.connect(params.host, int(params.port or ftplib.FTP_PORT))
            conn.login(params.login or "anonymous", params.password or "")
            conn.prot_p()
            conn.set_pasv(_truthy(extra.get("passive"), True))
            self.conn = conn
        return self.conn


@dataclass(frozen=True)
class PublishedFile:
    name: str
    bytes: int
    sha256: str
    rows: int | None = None


class ShopFilesHook:
    """Verbs over the shop's server, whatever the protocol; a context manager.

    :param shop_conn_id: the Airflow connection of the shop's server.
    :param retries: attempts per operation on transient errors (backoff 1, 2, 4... s).
    """

    conn_name_attr = "shop_conn_id"
    default_conn_name = "passerelle_shop"

    def __init__(self, shop_conn_id: str = default_conn_name, *, retries: int = 3, backoff: float = 1.0):
        self.shop_conn_id = shop_conn_id
        self.retries = retries
        self.backoff = backoff
        self._hook: Any = None

    # -- connection -------------------------------------------------------------------------
    @cached_property
    def connection(self):
        return FTPHook.get_connection(self.shop_conn_id)

    @cached_property
    def protocol(self) -> str:
        conn = self.connection
        if conn.conn_type == "sftp":
            return "sftp"
        if conn.conn_type == "ftps" or _truthy(conn.extra_dejson.get("tls"), False):
            return "ftps"
        return "ftp"

    def _new_hook(self):
        if self.protocol == "sftp":
            from airflow.providers.sftp.hooks.sftp import SFTPHook

            return SFTPHook(ssh_conn_id=self.shop_conn_id)
        if self.protocol == "ftps":
            return ShopFTPSHook(ftp_conn_id=self.shop_conn_id)
        return FTPHook(ftp_conn_id=self.shop_conn_id)

    def _client(self):
        if self._hook is None:
            self._hook = self._new_hook()
        return self._hook.get_conn()

    def close(self) -> None:
        if self._hook is not None:
            try:
                self._hook.close_conn()
            except Exception:  # a broken connection is dropped either way
                pass
            self._hook = None

    def __enter__(self) -> ShopFilesHook:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _retry(self, what: str, fn: Callable[[], Any]) -> Any:
        for attempt in range(1, self.retries + 1):
            try:
                return fn()
            except TRANSIENT as exc:
                if attempt == self.retries:
                    raise TransferError(f"{what}: failed after {attempt} attempts: {exc}") from exc
                log.warning("%s: transient error (%s), retry %d/%d", what, exc, attempt, self.retries - 1)
                self.close()  # reconnect: the control connection may be dead
                time.sleep(self.backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.list(".")
            return True, f"{self.protocol.upper()} connection to the shop works"
        except Exception as exc:
            return False, str(exc)

    # -- verbs ------------------------------------------------------------------------------
    def put_bytes(self, path: str, data: bytes) -> None:
        def go():
            client = self._client()
            if self.protocol == "sftp":
                with client.open(path, "wb") as fh:
                    fh.set_pipelined(True)
                    fh.write(data)
            else:
                client.storbinary(f"STOR {path}", io.BytesIO(data), 65536)

        self._retry(f"upload {path}", go)

    def get_bytes(self, path: str) -> bytes:
        def go():
            client = self._client()
            if self.protocol == "sftp":
                with client.open(path, "rb") as fh:
                    fh.prefetch()
                    return fh.read()
            buf = io.BytesIO()
            client.retrbinary(f"RETR {path}", buf.write, 65536)
            return buf.getvalue()

        return self._retry(f"download {path}", go)

    def size(self, path: str) -> int | None:
        def go():
            client = self._client()
            if self.protocol == "sftp":
                return client.stat(path).st_size
            client.voidcmd("TYPE I")  # SIZE is only reliable in binary mode
            value = client.size(path)
            return int(value) if value is not None else None

        try:
            return self._retry(f"size of {path}", go)
        except (ftplib.error_perm, FileNotFoundError, IOError):
            return None

    def exists(self, path: str) -> bool:
        return self.size(path) is not None

    def delete(self, path: str) -> None:
        def go():
            client = self._client()
            if self.protocol == "sftp":
                client.remove(path)
            else:
                client.delete(path)

        self._retry(f"delete {path}", go)

    def rename(self, src: str, dst: str) -> None:
        """Rename, replacing dst: some servers (FileZilla, IIS) refuse to rename over a file."""

        def go():
            client = self._client()
            if self.protocol == "sftp":
                try:
                    client.posix_rename(src, dst)
                except OSError:
                    if self.exists(dst):
                        client.remove(dst)
                    client.rename(src, dst)
                return
            try:
                client.rename(src, dst)
            except ftplib.error_perm:
                if not self.exists(dst):
                    raise
                client.delete(dst)
                client.rename(src, dst)

        self._retry(f"rename {src} to {dst}", go)

    def list(self, folder: str) -> list[str]:
        """Names (not paths) of the entries of a folder; never trusted as paths by callers."""

        def go():
            client = self._client()
            if self.protocol == "sftp":
                return sorted(client.listdir(folder))
            try:
                names = client.nlst(folder)
            except ftplib.error_perm as exc:  # some servers answer 550 for an empty folder
                if str(exc).startswith("550"):
                    return []
                raise
            return sorted(posixpath.basename(n.rstrip("/")) for n in names if n not in (".", ".."))

        return self._retry(f"list {folder}", go)

    def makedirs(self, folder: str) -> None:
        """Create a folder and its parents; existing ones are fine."""
        parts = [p for p in folder.split("/") if p]
        path = "/" if folder.startswith("/") else ""
        client = self._client()
        for part in parts:
            path = posixpath.join(path, part) if path else part
            try:
                if self.protocol == "sftp":
                    client.mkdir(path)
                else:
                    client.mkd(path)
            except (ftplib.error_perm, OSError):
                pass  # exists (or not ours to create: the upload will say so clearly)

    # -- atomic publishing --------------------------------------------------------------------
    def put_atomic(self, path: str, data: bytes) -> None:
        """Upload under a temporary name, check the size, then rename into place."""
        tmp = path + PART_SUFFIX
        self.put_bytes(tmp, data)
        remote = self.size(tmp)
        if remote != len(data):
            raise TransferError(f"upload {path}: server holds {remote} bytes, sent {len(data)}")
        self.rename(tmp, path)

    def publish(
        self,
        folder: str,
        files: Iterable[tuple[str, bytes, dict[str, Any]]],
        manifest: dict[str, Any],
        *,
        manifest_name: str = "manifest.json",
    ) -> list[PublishedFile]:
        """Put every file in ``folder`` atomically, then the manifest (files, rows, sha256) last.

        ``files`` yields (name, content, info) with info holding at least ``sha256``; rows are
        read from ``info['rows']`` when given. Publishing again is safe: same names, same bytes.
        """
        import hashlib

        self.makedirs(folder)
        done: list[PublishedFile] = []
        for name, content, info in files:
            safe_name(name)
            digest = info.get("sha256") or hashlib.sha256(content).hexdigest()
            self.put_atomic(posixpath.join(folder, name), content)
            done.append(PublishedFile(name, len(content), digest, info.get("rows")))
            log.info("published %s/%s (%d bytes)", folder, name, len(content))
        body = dict(manifest)
        body["files"] = [f.__dict__ for f in done]
        self.put_atomic(posixpath.join(folder, manifest_name), json.dumps(body, indent=2, sort_keys=True).encode())
        return done


def safe_name(name: str) -> str:
    """A file name from or for the server, refused if it could be read as a path."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name or name.startswith("."):
        raise TransferError(f"refusing unsafe file name {name!r}: expected a plain name")
    return name
