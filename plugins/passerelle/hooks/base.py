"""What every file-server adapter offers, and the errors ``ShopFilesHook`` raises to its callers.

An adapter (``ftp.FTPFiles``, ``sftp.SFTPFiles``) speaks one protocol through the provider's hook and
raises that protocol's own exceptions; ``ShopFilesHook`` alone turns them into the errors below, whose
message names the server (``ftp://host:port``), the path and the server's reply, never a password.
"""

from __future__ import annotations

import datetime
from typing import Protocol


class TransferError(RuntimeError):
    """A file could not be moved safely; the message names the server, the file and what was wrong."""


class FileVanished(TransferError):
    """The file is not (or no longer) on the server: listed, then gone before it was read or moved.

    Callers reading a listing skip it; the next run will not list it again.
    """


class FolderMissing(TransferError):
    """The folder does not exist on the server (a mistyped folder must not read as an empty one)."""


class ServerFiles(Protocol):
    """One connection to one server, in one protocol. Paths are the server's (``/`` separated).

    Methods raise the protocol's own exceptions; :meth:`transient` and :meth:`missing` classify them
    and :meth:`reply` gives the server's words for a message.
    """

    scheme: str  # ftp, ftps or sftp: for messages
    host: str
    port: int
    login: str

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def check(self) -> str:
        """The working folder after login (proves the session works)."""
        ...

    def put(self, path: str, data: bytes) -> None: ...

    def get(self, path: str) -> bytes: ...

    def size(self, path: str) -> int | None:
        """Bytes held; ``None`` when the server cannot tell; the protocol's error when missing."""
        ...

    def exists(self, path: str) -> bool: ...

    def isdir(self, path: str) -> bool: ...

    def delete(self, path: str) -> None: ...

    def rename(self, src: str, dst: str) -> None: ...

    def listdir(self, folder: str) -> list[str]:
        """Entry names (not paths); the protocol's error when the folder does not exist."""
        ...

    def stats(self, folder: str) -> dict[str, tuple[int | None, datetime.datetime | None]] | None:
        """(size, last change in UTC) of each file of a folder, in one listing; ``None`` when the
        server has no such listing (ask file by file); the protocol's error when the folder does
        not exist."""
        ...

    def makedirs(self, folder: str) -> None: ...

    def chmod(self, path: str, mode: int) -> bool:
        """Set the mode; ``False`` when the server does not let us (the file stays as it is)."""
        ...

    def mtime(self, path: str) -> datetime.datetime | None:
        """Last modification (UTC); ``None`` when the server cannot tell."""
        ...

    def transient(self, exc: BaseException) -> bool:
        """Worth a retry on a new connection (network, 4xx replies)."""
        ...

    def missing(self, exc: BaseException, path: str) -> bool:
        """``exc`` means that ``path`` does not exist (may ask the server to be sure)."""
        ...

    def reply(self, exc: BaseException) -> str:
        """The server's (or the network's) words for ``exc``, for a message."""
        ...
