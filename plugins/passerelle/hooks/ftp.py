"""FTP and explicit FTPS through the FTP provider's ``FTPHook``: the adapter ``FTPFiles``.

Verbs the provider has (``store_file``, ``retrieve_file``, ``rename``, ``delete_file``,
``list_directory``, ``create_directory``, ``describe_directory``, ``get_mod_time``) are called as they
are. What it lacks, or gets wrong for us, is a small method here, each saying why.

Connection extras: ``tls`` (explicit FTPS; or use conn type ``ftps``), ``ca_file`` (a PEM bundle to
trust, e.g. the shop's self-signed certificate), ``verify`` (default true; false only when explicitly
set), ``passive`` (default true), ``encoding``, ``timeout`` (seconds, default 60).
"""

from __future__ import annotations

import datetime
import errno
import ftplib  # nosec: B402 (plain FTP is what many shops still run; FTPS and SFTP are offered)
import io
import posixpath
import socket
import ssl
from typing import Any

from airflow.providers.ftp.hooks.ftp import FTPHook

#: Errors worth a retry: the network, and FTP's 4xx "transient negative" replies.
TRANSIENT = (ftplib.error_temp, socket.timeout, ConnectionError, EOFError, TimeoutError, ssl.SSLEOFError)
#: Replies of a server that does not know (or refuses to run) a command at all.
UNSUPPORTED = ("500", "502", "504")


def truthy(value: Any, default: bool) -> bool:
    """An extra's boolean: URIs give strings, and ``"false"`` is a non-empty (true) string."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off", "")
    return bool(value)


class DataSocket(ssl.SSLSocket):
    """A TLS data connection whose closing handshake may find the TLS handshake still in progress.

    Under TLS 1.3 a short transfer (an empty listing) can end while OpenSSL is still reading the
    server's post-handshake messages; ``ftplib`` then calls ``unwrap()`` and OpenSSL refuses with
    ``SHUTDOWN_WHILE_IN_INIT`` (CPython bpo-34391, OpenSSL issue 25798). The data has been read to
    its end by then, and the server's own reply on the control connection (226 or an error), which
    ``ftplib`` reads next, says whether the transfer was whole: skip the TLS goodbye and close.
    Raising instead would also leave that reply unread and the control connection out of step.
    """

    def unwrap(self):
        try:
            return super().unwrap()
        except ssl.SSLError as exc:
            if exc.reason != "SHUTDOWN_WHILE_IN_INIT":
                raise
            return None


class ReusedSessionFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS that resumes the control connection's TLS session on data connections.

    vsftpd (``require_ssl_reuse=YES``, its default), ProFTPD (``TLSOptions
    NoSessionReuseRequired`` absent) and FileZilla Server refuse data connections that do not
    reuse the control session; the standard library does not do it. Its sockets are
    :class:`DataSocket`.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.context.sslsocket_class = DataSocket

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size


class ShopFTPHook(FTPHook):
    """The provider's ``FTPHook`` with a timeout and an anonymous login when none is given.

    The provider's ``get_conn`` opens ``ftplib.FTP()`` without a timeout: a server that stops
    answering would hold the task forever. Subclasses change :meth:`_client` and :meth:`_secure`.
    """

    hook_name = "Shop FTP"

    def _client(self, extra: dict[str, Any], timeout: float) -> ftplib.FTP:
        kwargs: dict[str, Any] = {"timeout": timeout}
        if extra.get("encoding"):
            kwargs["encoding"] = extra["encoding"]
        return ftplib.FTP(**kwargs)  # nosec: B321

    def _secure(self, conn: ftplib.FTP) -> None:
        """Plain FTP: nothing to protect."""

    def get_conn(self) -> ftplib.FTP:
        if self.conn is None:
            params = self.get_connection(self.ftp_conn_id)
            extra = params.extra_dejson
            conn = self._client(extra, float(extra.get("timeout", 60)))
            self.log.info("Connecting to %s:%s", params.host, params.port or ftplib.FTP_PORT)
            try:
                conn.connect(params.host, int(params.port or ftplib.FTP_PORT))
                conn.login(params.login or "anonymous", params.password or "")
                self._secure(conn)
                conn.set_pasv(truthy(extra.get("passive"), True))
            except BaseException:
                conn.close()
                raise
            self.conn = conn
        return self.conn


class ShopFTPSHook(ShopFTPHook):
    """Explicit FTPS with certificate verification on by default.

    The provider's ``FTPSHook`` sets the port on the ``FTP_TLS`` class (shared by every
    connection in the process), cannot trust a private CA and does not reuse TLS sessions;
    this subclass fixes the three.
    """

    hook_name = "Shop FTPS"

    def _client(self, extra: dict[str, Any], timeout: float) -> ftplib.FTP:
        context = ssl.create_default_context(cafile=extra.get("ca_file") or None)
        if not truthy(extra.get("verify"), True):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        kwargs: dict[str, Any] = {"context": context, "timeout": timeout}
        if extra.get("encoding"):
            kwargs["encoding"] = extra["encoding"]
        return ReusedSessionFTP_TLS(**kwargs)

    def _secure(self, conn: ftplib.FTP) -> None:
        """Protect the data connections too (``PROT P``): without it file payloads go in clear."""
        conn.prot_p()


def _code(exc: BaseException) -> str:
    return str(exc)[:3]


class FTPFiles:
    """The :class:`~passerelle.hooks.base.ServerFiles` verbs over FTP or FTPS (``ShopFTP[S]Hook``)."""

    def __init__(self, conn_id: str, connection: Any) -> None:
        tls = connection.conn_type == "ftps" or truthy(connection.extra_dejson.get("tls"), False)
        self.scheme = "ftps" if tls else "ftp"
        self.host = connection.host or ""
        self.port = int(connection.port or ftplib.FTP_PORT)
        self.login = connection.login or "anonymous"
        self.hook: ShopFTPHook = (ShopFTPSHook if tls else ShopFTPHook)(ftp_conn_id=conn_id)
        self._has_size: bool | None = None  # learnt from the server: SIZE refused -> listing or re-reading
        self._has_mlsd: bool | None = None
        self._has_mdtm: bool | None = None
        self._has_chmod: bool | None = None
        self._home = "/"

    # -- session --------------------------------------------------------------------------------
    def connect(self) -> None:
        self._home = self.hook.get_conn().pwd()

    def close(self) -> None:
        if self.hook.conn is not None:
            try:
                self.hook.close_conn()  # QUIT: may fail on a dead connection
            except Exception:
                self.hook.conn.close()
                self.hook.conn = None

    @property
    def _ftp(self) -> ftplib.FTP:
        return self.hook.get_conn()

    def check(self) -> str:
        return self._ftp.pwd()

    # -- provider verbs -------------------------------------------------------------------------
    def put(self, path: str, data: bytes) -> None:
        self.hook.store_file(path, io.BytesIO(data), block_size=65536)

    def get(self, path: str) -> bytes:
        buf = io.BytesIO()
        self.hook.retrieve_file(path, buf, block_size=65536)
        return buf.getvalue()

    def delete(self, path: str) -> None:
        self.hook.delete_file(path)

    def rename(self, src: str, dst: str) -> None:
        self.hook.rename(src, dst)

    def makedirs(self, folder: str) -> None:
        """One ``MKD`` per missing level (FTP has no ``mkdir -p``); a refusal stands unless the level
        exists after all (550 is also how servers say "already there")."""
        parts = [p for p in folder.split("/") if p]
        path = "/" if folder.startswith("/") else ""
        for part in parts:
            path = posixpath.join(path, part) if path else part
            try:
                self.hook.create_directory(path)
            except ftplib.error_perm:
                if not self.isdir(path):
                    raise

    def listdir(self, folder: str) -> list[str]:
        """``NLST`` through the provider; an empty or refused listing is checked against the folder
        itself, since vsftpd lists a missing folder as empty and others answer 550 for an empty one."""
        try:
            names = self.hook.list_directory(folder)
        except ftplib.error_perm as exc:
            if _code(exc) != "550" or not self.isdir(folder):
                raise
            names = []
        if not names and not self.isdir(folder):
            raise FileNotFoundError(errno.ENOENT, "no such folder (listed as empty, and CWD there is refused)")
        return sorted({posixpath.basename(n.rstrip("/")) for n in names} - {".", "..", ""})

    def stats(self, folder: str) -> dict[str, tuple[int | None, datetime.datetime | None]] | None:
        """``MLSD``'s ``size`` and ``modify`` facts (RFC 3659: UTC); ``None`` without MLSD (vsftpd)."""
        if self._has_mlsd is False:
            return None
        try:
            facts = self.hook.describe_directory(folder)
        except ftplib.error_perm as exc:
            if _code(exc) not in UNSUPPORTED:
                raise
            self._has_mlsd = False
            return None
        self._has_mlsd = True
        out = {}
        for name, fact in facts.items():
            if fact.get("type", "file").lower() != "file":
                continue
            size = int(fact["size"]) if "size" in fact else None
            modify = fact.get("modify", "")
            try:
                changed = datetime.datetime.strptime(modify[:14], "%Y%m%d%H%M%S").replace(tzinfo=datetime.UTC)
            except ValueError:
                changed = None
            out[posixpath.basename(name)] = (size, changed)
        return out

    def mtime(self, path: str) -> datetime.datetime | None:
        """``MDTM`` (UTC, RFC 3659); ``None`` where the server refuses it: 500/502/504, or 550 on a
        file that is there (vsftpd's ``cmds_denied``), or answers a date in no known shape."""
        if self._has_mdtm is False:
            return None
        try:
            changed = self.hook.get_mod_time(path).replace(tzinfo=datetime.UTC)
        except ftplib.error_perm as exc:
            if _code(exc) not in UNSUPPORTED and (self._has_mdtm or not self.exists(path)):
                raise
            self._has_mdtm = False
            return None
        except ValueError:  # a reply the provider cannot read as a date
            return None
        self._has_mdtm = True
        return changed

    # -- what the provider lacks ----------------------------------------------------------------
    def size(self, path: str) -> int | None:
        """``SIZE`` in binary mode, else the ``MLSD`` size fact, else ``None`` (the caller re-reads).

        The provider's ``get_size`` reads 0 bytes as ``None`` and leaves the transfer type as the
        last listing set it (ASCII), in which SIZE is refused or wrong. Servers without SIZE answer
        500/502, or 550 like for a missing file (vsftpd's ``cmds_denied``): a 550 on a file that is
        listed means SIZE is refused.
        """
        if self._has_size is not False:
            try:
                self._ftp.voidcmd("TYPE I")
                value = self._ftp.size(path)
                if value is not None:
                    self._has_size = True
                    return int(value)
            except ftplib.error_perm as exc:
                if _code(exc) not in UNSUPPORTED and (self._has_size or not self.exists(path)):
                    raise
                self._has_size = False
        folder, name = posixpath.split(path)
        listing = self.stats(folder or ".")
        if listing is not None:
            if name not in listing:
                raise FileNotFoundError(errno.ENOENT, "not in its folder's MLSD listing")
            return listing[name][0]
        if not self.exists(path):
            raise FileNotFoundError(errno.ENOENT, "not in its folder's NLST listing")
        return None

    def exists(self, path: str) -> bool:
        """Listed in its folder (``NLST``): unlike SIZE, every server has it and it says "file"."""
        folder, name = posixpath.split(path)
        try:
            names = self.hook.list_directory(folder or ".")
        except ftplib.error_perm:
            return False
        return name in {posixpath.basename(n.rstrip("/")) for n in names}

    def isdir(self, path: str) -> bool:
        """``CWD`` there and back: the one test of a folder every server answers (no MLST on vsftpd)."""
        try:
            self._ftp.cwd(path)
        except ftplib.error_perm:
            return False
        self._ftp.cwd(self._home)
        return True

    def chmod(self, path: str, mode: int) -> bool:
        """``SITE CHMOD``, which the provider lacks; many servers refuse it (then: ``False``)."""
        if self._has_chmod is False:
            return False
        try:
            self._ftp.sendcmd(f"SITE CHMOD {mode:o} {path}")
        except ftplib.error_perm as exc:
            if _code(exc) in UNSUPPORTED:
                self._has_chmod = False
            return False
        self._has_chmod = True
        return True

    # -- classifying errors ---------------------------------------------------------------------
    def transient(self, exc: BaseException) -> bool:
        return isinstance(exc, TRANSIENT)

    def missing(self, exc: BaseException, path: str) -> bool:
        """A 550 means many things (missing, refused, busy): ask the folder whether the file is there."""
        if isinstance(exc, FileNotFoundError):  # our own finding, from a listing
            return True
        if not isinstance(exc, ftplib.error_perm) or _code(exc) != "550":
            return False
        try:
            return not self.exists(path)
        except Exception:
            return False

    def reply(self, exc: BaseException) -> str:
        if isinstance(exc, ftplib.Error):
            return f"the server replied {str(exc).strip()!r}"
        if isinstance(exc, ssl.SSLCertVerificationError):
            return f"TLS certificate refused: {exc.verify_message} (set ca_file to the shop's CA bundle)"
        if isinstance(exc, OSError) and exc.strerror:
            return exc.strerror
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
