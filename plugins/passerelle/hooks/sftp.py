"""SFTP through the SFTP provider's ``SFTPHook``: the adapter ``SFTPFiles``.

Verbs the provider has (``store_file``, ``retrieve_file``, ``delete_file``, ``list_directory``,
``create_directory``, ``path_exists``, ``isdir``) are called as they are, inside one managed connection
held open from :meth:`SFTPFiles.connect` to :meth:`SFTPFiles.close` (the provider would otherwise open
and close a session per call). What it lacks is a small method here, each saying why.

Connection extras follow the SSH provider: ``key_file`` or ``private_key`` (or the password),
``host_key`` (the server's public key, ``ssh-ed25519 AAAA...``; verified) or ``no_host_key_check``
(not for production), ``look_for_keys``, ``conn_timeout`` (seconds, default 60).
"""

from __future__ import annotations

import datetime
import socket
import stat
from contextlib import ExitStack
from io import BytesIO
from typing import Any

import paramiko
from airflow.providers.sftp.hooks.sftp import SFTPHook


class SFTPFiles:
    """The :class:`~passerelle.hooks.base.ServerFiles` verbs over SFTP (the provider's ``SFTPHook``)."""

    scheme = "sftp"

    def __init__(self, conn_id: str, connection: Any) -> None:
        self.host = connection.host or ""
        self.port = int(connection.port or 22)
        self.login = connection.login or ""
        self.conn_id = conn_id
        self.conn_timeout = int(connection.extra_dejson.get("conn_timeout") or 60)
        self.hook = self._new_hook()
        self._stack: ExitStack | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def _new_hook(self) -> SFTPHook:
        # One attempt per connect: ShopFilesHook retries (the provider would wait 3-5 s between its own
        # three attempts, also after a refused password, which no retry will change).
        # The banner wait too: the provider's 30 s would outlast a short conn_timeout on a hung server.
        return SFTPHook(
            ssh_conn_id=self.conn_id,
            conn_retry_attempts=1,
            conn_timeout=self.conn_timeout,
            banner_timeout=float(self.conn_timeout),
        )

    # -- session --------------------------------------------------------------------------------
    def connect(self) -> None:
        if self._stack is None:
            stack = ExitStack()
            self._sftp = stack.enter_context(self.hook.get_managed_conn())
            self._stack = stack

    def close(self) -> None:
        """End the session. After a dropped one the provider's hook may keep its dead client (closing
        it raised before the hook forgot it), so the next session gets a new provider hook."""
        stack, self._stack, self._sftp = self._stack, None, None
        if stack is not None:
            try:
                stack.close()
            except Exception:
                self.hook = self._new_hook()

    @property
    def _conn(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self.connect()
        assert self._sftp is not None
        return self._sftp

    def check(self) -> str:
        return self._conn.normalize(".")

    # -- provider verbs -------------------------------------------------------------------------
    def put(self, path: str, data: bytes) -> None:
        self.connect()
        self.hook.store_file(path, BytesIO(data))  # type: ignore[arg-type]  (the provider takes a buffer)

    def get(self, path: str) -> bytes:
        self.connect()
        buf = BytesIO()
        self.hook.retrieve_file(path, buf)  # type: ignore[arg-type]
        return buf.getvalue()

    def delete(self, path: str) -> None:
        self.connect()
        self.hook.delete_file(path)

    def listdir(self, folder: str) -> list[str]:
        """The provider's ``list_directory`` answers ``None`` for any error: ask again to learn which."""
        self.connect()
        names = self.hook.list_directory(folder)
        if names is None:
            self._conn.listdir(folder)  # raises FileNotFoundError, PermissionError...
            names = []
        return sorted(names)

    def stats(self, folder: str) -> dict[str, tuple[int | None, datetime.datetime | None]] | None:
        """``listdir_attr``: every entry's attributes in one request."""
        out = {}
        for attr in self._conn.listdir_attr(folder):
            if attr.st_mode is not None and not stat.S_ISREG(attr.st_mode):
                continue
            changed = None if attr.st_mtime is None else datetime.datetime.fromtimestamp(attr.st_mtime, datetime.UTC)
            out[attr.filename] = (attr.st_size, changed)
        return out

    def makedirs(self, folder: str) -> None:
        self.connect()
        self.hook.create_directory(folder, mode=0o755)  # not the provider's 0o777: others may not write

    def exists(self, path: str) -> bool:
        self.connect()
        return self.hook.path_exists(path)

    def isdir(self, path: str) -> bool:
        self.connect()
        return self.hook.isdir(path)

    # -- what the provider lacks ----------------------------------------------------------------
    def size(self, path: str) -> int | None:
        """``stat``: the provider has no size getter (only a whole-folder ``describe_directory``)."""
        return self._conn.stat(path).st_size

    def rename(self, src: str, dst: str) -> None:
        """``posix-rename`` (OpenSSH's extension: replaces ``dst`` at once); the provider has no rename."""
        self._conn.posix_rename(src, dst)

    def chmod(self, path: str, mode: int) -> bool:
        """``chmod``, which the provider lacks; a server that refuses leaves the file as it is."""
        try:
            self._conn.chmod(path, mode)
        except PermissionError:
            return False
        return True

    def mtime(self, path: str) -> datetime.datetime | None:
        """``stat``: the provider's ``get_mod_time`` gives a string in the worker's local time."""
        seconds = self._conn.stat(path).st_mtime
        return None if seconds is None else datetime.datetime.fromtimestamp(seconds, datetime.UTC)

    # -- classifying errors ---------------------------------------------------------------------
    def transient(self, exc: BaseException) -> bool:
        if isinstance(exc, (paramiko.AuthenticationException, paramiko.BadHostKeyException)):
            return False
        if isinstance(
            exc,
            (
                paramiko.SSHException,
                paramiko.ssh_exception.NoValidConnectionsError,
                EOFError,
                ConnectionError,
                socket.timeout,
                TimeoutError,
            ),
        ):
            return True
        # paramiko reports a dropped session as a bare OSError ("Socket is closed"), like a server's
        # refusal without a status code: only the state of the session tells them apart.
        return isinstance(exc, OSError) and self._sftp is not None and not self._alive()

    def _alive(self) -> bool:
        try:
            channel = self._sftp.get_channel()  # type: ignore[union-attr]
            return bool(channel and not channel.closed and channel.get_transport().is_active())
        except Exception:
            return False

    def missing(self, exc: BaseException, path: str) -> bool:
        return isinstance(exc, FileNotFoundError)

    def reply(self, exc: BaseException) -> str:
        if isinstance(exc, paramiko.BadHostKeyException):
            return "the server's host key is not the one in the connection's host_key extra"
        if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
            return "connection refused"
        if isinstance(exc, OSError) and exc.strerror:
            return f"the server replied {exc.strerror!r}" if exc.errno in (2, 13) else exc.strerror
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
