"""The shop's file server: FTP, FTPS or SFTP, through the Airflow providers' hooks.

``ShopFilesHook`` owns one connection and offers the few verbs Passerelle needs (put, get,
size, rename, list, delete, makedirs) whatever the protocol, plus ``publish``: upload under a
temporary name, check the size, set the mode, rename into place, manifest last.

The protocol is read once from the Airflow connection and picks an adapter
(:mod:`passerelle.hooks.ftp` for ``ftp``/``ftps``, :mod:`passerelle.hooks.sftp` for ``sftp``);
the verbs here are the same for all. Every error reaching a caller is a :class:`TransferError`
naming the server (``ftp://host:port``), the path and the server's reply, never a password;
:class:`FileVanished` and :class:`FolderMissing` are the two a caller may handle.

Extras: see the adapters' modules; ``file_mode`` (octal, e.g. ``"640"``; ``"keep"`` leaves the
server's choice) sets the mode of published files when the hook is not given one (default 0644,
so a web server can read photos).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import posixpath
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from airflow.sdk import BaseHook

from passerelle.hooks.base import FileVanished, FolderMissing, ServerFiles, TransferError
from passerelle.hooks.ftp import TRANSIENT, FTPFiles, ReusedSessionFTP_TLS, ShopFTPHook, ShopFTPSHook

__all__ = [
    "PART_SUFFIX",
    "TRANSIENT",
    "FileVanished",
    "FolderMissing",
    "PublishedFile",
    "ReusedSessionFTP_TLS",
    "ShopFTPHook",
    "ShopFTPSHook",
    "ShopFilesHook",
    "TransferError",
    "safe_name",
]

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"
DEFAULT_FILE_MODE = 0o644
_UNSET: Any = object()
T = TypeVar("T")


def _sftp_files(conn_id: str, connection: Any) -> ServerFiles:
    from passerelle.hooks.sftp import SFTPFiles  # paramiko only when a shop uses SFTP

    return SFTPFiles(conn_id, connection)


#: Connection type -> adapter factory. Picked once per hook.
ADAPTERS: dict[str, Callable[[str, Any], ServerFiles]] = {
    "ftp": FTPFiles,
    "ftps": FTPFiles,
    "sftp": _sftp_files,
    "ssh": _sftp_files,
}


@dataclass(frozen=True)
class PublishedFile:
    name: str
    bytes: int
    sha256: str
    rows: int | None = None


def _file_mode(value: Any, conn_id: str) -> int | None:
    if value is None or value == "":
        return DEFAULT_FILE_MODE
    if isinstance(value, str) and value.strip().lower() in ("keep", "none"):
        return None
    try:
        mode = int(value, 8) if isinstance(value, str) else int(value)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise TransferError(
            f"connection {conn_id}: extra file_mode={value!r} is not a file mode; expected octal "
            "digits such as 644 or 640, or 'keep'"
        )
    return mode


class ShopFilesHook(BaseHook):
    """Verbs over the shop's server, whatever the protocol; a context manager.

    :param shop_conn_id: the Airflow connection of the shop's server (``ftp``, ``ftps`` or ``sftp``).
    :param retries: attempts per operation on transient errors (backoff 1, 2, 4... s).
    :param backoff: seconds before the first retry.
    :param file_mode: mode of the files ``put_atomic``/``publish`` put (default: the connection's
        ``file_mode`` extra, else 0o644); ``None`` leaves the server's default (often 0600 on vsftpd).
    """

    conn_name_attr = "shop_conn_id"
    default_conn_name = "passerelle_shop"
    conn_type = "ftp"  # the connection may also be of type ftps or sftp
    hook_name = "Passerelle shop files (FTP, FTPS, SFTP)"
    adapters: ClassVar[dict[str, Callable[[str, Any], ServerFiles]]] = ADAPTERS

    def __init__(
        self,
        shop_conn_id: str = default_conn_name,
        *,
        retries: int = 3,
        backoff: float = 1.0,
        file_mode: int | None = _UNSET,
    ) -> None:
        super().__init__()
        self.shop_conn_id = shop_conn_id
        self.retries = max(1, retries)
        self.backoff = backoff
        self._file_mode = file_mode
        self._server: ServerFiles | None = None
        self._connected = False
        self._chmod_refused = False  # said once per hook at WARNING, then at DEBUG

    # -- connection -------------------------------------------------------------------------------
    def _adapter(self) -> ServerFiles:
        if self._server is None:
            try:
                connection = self.get_connection(self.shop_conn_id)
            except Exception as exc:
                raise TransferError(f"shop connection {self.shop_conn_id!r} not found: {exc}") from exc
            factory = self.adapters.get(connection.conn_type or "")
            if factory is None:
                raise TransferError(
                    f"connection {self.shop_conn_id}: type {connection.conn_type!r} is not a shop "
                    f"file server; expected one of {', '.join(sorted(self.adapters))}"
                )
            try:
                self._server = factory(self.shop_conn_id, connection)
            except Exception as exc:  # e.g. the SSH provider refusing a host_key extra
                raise TransferError(f"connection {self.shop_conn_id}: {exc}") from exc
            if self._file_mode is _UNSET:
                self._file_mode = _file_mode(connection.extra_dejson.get("file_mode"), self.shop_conn_id)
        return self._server

    @property
    def protocol(self) -> str:
        return self._adapter().scheme

    @property
    def file_mode(self) -> int | None:
        self._adapter()
        return self._file_mode

    @property
    def where(self) -> str:
        """``scheme://host:port`` of the server, for messages (no login, no password)."""
        server = self._adapter()
        return f"{server.scheme}://{server.host}:{server.port}"

    def get_conn(self) -> ServerFiles:
        """The adapter, logged in (lazily: nothing connects before the first verb)."""
        server = self._adapter()
        if self._connected:
            return server
        for attempt in range(1, self.retries + 1):
            try:
                server.connect()
                self._connected = True
                return server
            except Exception as exc:
                server.close()
                if not server.transient(exc) or attempt == self.retries:
                    tried = f" after {attempt} attempts" if attempt > 1 else ""
                    raise TransferError(
                        f"cannot connect to {self.where} as {server.login or '(no login)'}{tried}: {self._reply(exc)}"
                    ) from exc
                self._pause(f"connect to {self.where}", exc, attempt)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._connected = False

    def __enter__(self) -> ShopFilesHook:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def test_connection(self) -> tuple[bool, str]:
        try:
            home = self.get_conn().check()
            return True, f"{self.protocol.upper()} connection to {self.where} works (working folder {home})"
        except Exception as exc:
            return False, str(exc)
        finally:
            self.close()

    # -- errors -------------------------------------------------------------------------------------
    def _reply(self, exc: BaseException) -> str:
        text = self._adapter().reply(exc)
        try:
            password = self.get_connection(self.shop_conn_id).password
        except Exception:
            password = None
        return text.replace(password, "***") if password else text

    def _pause(self, what: str, exc: BaseException, attempt: int) -> None:
        log.warning("%s: transient error (%s), retry %d/%d", what, self._reply(exc), attempt, self.retries - 1)
        time.sleep(self.backoff * 2 ** (attempt - 1))

    def _do(self, what: str, fn: Callable[[ServerFiles], T], *, path: str | None = None) -> T:
        """Run ``fn(adapter)``; retry transient errors on a new connection; raise a ``TransferError``
        naming ``what``, the server and its reply (``FileVanished`` when ``path`` is not there)."""
        for attempt in range(1, self.retries + 1):
            server = self.get_conn()
            try:
                return fn(server)
            except TransferError:
                raise
            except Exception as exc:
                if server.transient(exc) and attempt < self.retries:
                    self.close()  # reconnect: the control connection may be dead
                    self._pause(f"{what} on {self.where}", exc, attempt)
                    continue
                if path is not None and server.missing(exc, path):
                    raise FileVanished(
                        f"{what} on {self.where}: {path} is not on the server ({self._reply(exc)})"
                    ) from exc
                tried = f" after {attempt} attempts" if attempt > 1 else ""
                raise TransferError(f"{what} on {self.where} failed{tried}: {self._reply(exc)}") from exc
        raise AssertionError("unreachable")

    # -- verbs --------------------------------------------------------------------------------------
    def put_bytes(self, path: str, data: bytes) -> None:
        self._do(f"upload {path}", lambda s: s.put(path, data))

    def get_bytes(self, path: str) -> bytes:
        """The file's bytes; :class:`FileVanished` when it is not (or no longer) there."""
        return self._do(f"download {path}", lambda s: s.get(path), path=path)

    def size(self, path: str) -> int | None:
        """Bytes held by the server; ``None`` when the file is missing or the server cannot tell."""
        try:
            return self._do(f"size of {path}", lambda s: s.size(path), path=path)
        except FileVanished:
            return None

    def stat(self, path: str) -> tuple[int | None, datetime.datetime | None]:
        """(size, last change) of ``path``, each None where the server does not tell it;
        :class:`FileVanished` when it is not there."""
        size = self._do(f"size of {path}", lambda s: s.size(path), path=path)
        changed = self._do(f"date of {path}", lambda s: s.mtime(path), path=path)
        return size, changed

    def stats(self, folder: str) -> dict[str, tuple[int | None, datetime.datetime | None]] | None:
        """(size, last change) of each file of ``folder`` in one listing (MLSD, SFTP's listing);
        ``None`` when the server has none (vsftpd): :meth:`stat` each file. For a folder just listed."""
        return self._do(f"list {folder} with sizes and dates", lambda s: s.stats(folder))

    def exists(self, path: str) -> bool:
        return self._do(f"look for {path}", lambda s: s.exists(path))

    def delete(self, path: str) -> None:
        self._do(f"delete {path}", lambda s: s.delete(path), path=path)

    def rename(self, src: str, dst: str) -> None:
        """Rename, replacing dst: some servers (FileZilla, IIS) refuse to rename over a file."""

        def go(server: ServerFiles) -> None:
            try:
                server.rename(src, dst)
            except Exception as exc:
                if server.transient(exc) or not server.exists(dst) or not server.exists(src):
                    raise
                server.delete(dst)
                server.rename(src, dst)

        self._do(f"rename {src} to {dst}", go, path=src)

    def list(self, folder: str, missing_ok: bool = False) -> list[str]:
        """Names (not paths) of the entries of a folder; never trusted as paths by callers.

        A folder that does not exist raises :class:`FolderMissing` (a mistyped folder would
        otherwise read as "no files" forever), unless ``missing_ok``.
        """
        try:
            return self._do(f"list {folder}", lambda s: s.listdir(folder), path=folder)
        except FileVanished as exc:
            if missing_ok:
                return []
            raise FolderMissing(
                f"list {folder} on {self.where}: the folder does not exist "
                f"({self._reply(exc.__cause__) if exc.__cause__ else 'not found'})"
            ) from exc

    def makedirs(self, folder: str) -> None:
        """Create a folder and its parents; existing ones are fine, a refused one is an error."""
        self._do(f"create folder {folder}", lambda s: s.makedirs(folder))

    def chmod(self, path: str, mode: int) -> bool:
        """Set ``path``'s mode; ``False`` (logged) when the server does not allow it."""
        done = self._do(f"set mode {mode:o} on {path}", lambda s: s.chmod(path, mode), path=path)
        if not done:
            # Once at WARNING: the files keep the server's own mode, which a web server serving
            # them (photos, invoices) may not be allowed to read.
            log.log(
                logging.DEBUG if self._chmod_refused else logging.WARNING,
                "%s: the server does not let us set mode %o on %s; left as it is (the server's umask "
                "decides: a web server reading these files needs them readable, e.g. vsftpd's "
                "local_umask=022; or set the connection's extra file_mode to keep)",
                self.where,
                mode,
                path,
            )
            self._chmod_refused = True
        return done

    def cleanup_parts(self, folder: str, older_than: datetime.timedelta | float) -> list[str]:
        """Delete the abandoned ``*.part`` uploads of ``folder`` last changed before ``older_than`` ago.

        A ``.part`` younger than that may be an upload in progress (another run, another worker) and
        is kept; so is one whose date the server does not tell. Housekeeping, never the task's
        failure: a folder the server will not list, or a ``.part`` it will not delete, is kept
        with a warning (callers run it after their real work, e.g. a publication's commit).
        Returns the names deleted.
        """
        age = older_than if isinstance(older_than, datetime.timedelta) else datetime.timedelta(seconds=older_than)
        limit = datetime.datetime.now(datetime.UTC) - age
        removed = []
        try:
            names = self.list(folder, missing_ok=True)
        except TransferError as exc:
            log.warning("%s: abandoned uploads of %s left: %s", self.where, folder, exc)
            return removed
        for name in names:
            if not name.endswith(PART_SUFFIX):
                continue
            path = posixpath.join(folder, name)
            try:
                changed = self._do(f"date of {path}", lambda s, p=path: s.mtime(p), path=path)
                if changed is None:
                    log.warning("%s: cannot tell when %s was written; kept", self.where, path)
                elif changed < limit:
                    self.delete(path)
                    removed.append(name)
            except FileVanished:  # finished (renamed) or removed meanwhile
                continue
            except TransferError as exc:
                log.warning("%s: abandoned upload %s kept: %s", self.where, path, exc)
        if removed:
            log.info("%s: deleted %d abandoned uploads in %s: %s", self.where, len(removed), folder, ", ".join(removed))
        return removed

    # -- atomic publishing --------------------------------------------------------------------------
    def put_atomic(self, path: str, data: bytes, *, file_mode: int | None = _UNSET) -> None:
        """Upload under a temporary name, check the size, set the mode, then rename into place.

        The size comes from ``SIZE`` (or ``stat``), else the folder's ``MLSD`` listing; a server
        offering neither gets the file read back and compared byte for byte.
        """
        tmp = path + PART_SUFFIX
        self.put_bytes(tmp, data)
        remote = self._do(f"size of {tmp}", lambda s: s.size(tmp), path=tmp)
        if remote is None:
            log.debug("%s tells no sizes: %s verified by reading it back", self.where, tmp)
            if self.get_bytes(tmp) != data:
                raise TransferError(
                    f"upload {path} on {self.where}: the copy read back from {tmp} differs "
                    f"from the {len(data)} bytes sent; {tmp} left in place"
                )
        elif remote != len(data):
            raise TransferError(
                f"upload {path} on {self.where}: server holds {remote} bytes, sent {len(data)}; {tmp} left in place"
            )
        mode = self.file_mode if file_mode is _UNSET else file_mode
        if mode is not None:
            self.chmod(tmp, mode)
        self.rename(tmp, path)

    def publish(
        self,
        folder: str,
        files: Iterable[tuple[str, bytes, dict[str, Any]]],
        manifest: dict[str, Any],
        *,
        manifest_name: str = "manifest.json",
        file_mode: int | None = _UNSET,
        before_manifest: Callable[[dict[str, Any]], None] | None = None,
    ) -> list[PublishedFile]:
        """Put every file in ``folder`` atomically, then the manifest (files, rows, sha256) last.

        ``files`` yields (name, content, info) with info holding at least ``sha256``; rows are
        read from ``info['rows']`` when given. Publishing again is safe: same names, same bytes.
        ``before_manifest(body)`` is called with the manifest, files listed, just before it goes up.
        """
        self.makedirs(folder)
        done: list[PublishedFile] = []
        for name, content, info in files:
            safe_name(name)
            digest = info.get("sha256") or hashlib.sha256(content).hexdigest()
            self.put_atomic(posixpath.join(folder, name), content, file_mode=file_mode)
            done.append(PublishedFile(name, len(content), digest, info.get("rows")))
            log.info("published %s/%s (%d bytes)", folder, name, len(content))
        body = dict(manifest)
        body["files"] = [f.__dict__ for f in done]
        if before_manifest is not None:
            before_manifest(body)
        self.put_atomic(
            posixpath.join(folder, manifest_name),
            json.dumps(body, indent=2, sort_keys=True).encode(),
            file_mode=file_mode,
        )
        return done


def safe_name(name: str) -> str:
    """A file name from or for the server, refused if it could be read as a path."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name or name.startswith("."):
        raise TransferError(f"refusing unsafe file name {name!r}: expected a plain name")
    return name
