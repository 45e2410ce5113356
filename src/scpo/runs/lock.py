"""One writer per run directory: an OS file lock on ``RUN/.lock`` for the life of a train or resume.

The lock is an exclusive, non-blocking ``flock(2)`` on the file ``RUN/.lock``. The kernel releases
it when its holder exits for any reason (also SIGKILL or a power loss), so a lock can never be
held by a dead process. While held, the file says who holds it (one JSON line: ``pid``,
``started``, ``host``, ``command``); a clean release empties it. A non-empty file whose lock is
free is therefore the trace of a holder that died without releasing (a *stale* lock): the next
writer takes it over and reports whose it was (:attr:`RunLock.stale`).

A second writer gets :class:`~scpo.errors.RunLockedError` naming the holder's pid and start time.
The lock protects against concurrent scpo writers on one machine; ``flock`` over NFS depends on
the server (Linux NFSv4 emulates it with byte-range locks).
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from ..errors import RunDirectoryError, RunLockedError

try:  # POSIX only; on other platforms the run lock is unavailable
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunLock", "describe_holder"]


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``pid N, started T on HOST`` for a holder read from a lock file (``an unknown process`` for none).

    Parameters
    ----------
    holder : dict or None
        The JSON content of a lock file.

    Returns
    -------
    str
    """
    if not holder:
        return "an unknown process (it has not written its pid yet)"
    host = holder.get("host")
    return f"pid {holder.get('pid', '?')}, started {holder.get('started', '?')}" + (f" on {host}" if host else "")


def _alive(pid: Any) -> bool:
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's live process
        return True
    return True


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        holder = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {"pid": "?", "started": "?", "unreadable": True} if data.strip() else None
    return holder if isinstance(holder, dict) else {"pid": "?", "started": "?", "unreadable": True}


class RunLock:
    """The exclusive lock of one run directory (use :meth:`acquire` and :meth:`release`).

    Parameters
    ----------
    path : str or Path
        The lock file, ``RunPaths(run).lock``.

    Attributes
    ----------
    path : Path
    stale : dict or None
        After :meth:`acquire`: the holder recorded by a process that died holding the lock (its
        pid, start time, host, command, and ``alive``: whether a process with that pid runs now,
        a reused pid), or None when the lock was released cleanly.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.stale: dict[str, Any] | None = None
        self._fd: int | None = None
        self._previous = b""
        self._created = False

    def acquire(self) -> "RunLock":
        """Take the lock without waiting and write this process into the lock file.

        Returns
        -------
        RunLock
            ``self``.

        Raises
        ------
        RunLockedError
            Another live process holds the lock (the message names its pid and start time).
        RunDirectoryError
            The lock file cannot be created or opened for writing (a read-only run directory).
        """
        if fcntl is None:  # pragma: no cover
            raise RunDirectoryError("run lock: this platform has no fcntl.flock; scpo writes runs on POSIX systems only")
        existed = self.path.exists()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise RunDirectoryError(
                f"run {str(self.path.parent)!r}: cannot open its lock file {self.path.name} for writing ({exc.strerror}); "
                "the run directory must be writable to train or resume"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _parse(os.pread(fd, 65536, 0))
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):  # pragma: no cover
                raise RunDirectoryError(f"run {str(self.path.parent)!r}: cannot lock {self.path.name} ({exc.strerror})") from None
            raise RunLockedError(
                f"run {str(self.path.parent)!r}: another scpo process is writing to it ({describe_holder(holder)}); "
                "one writer per run: wait for it to finish or stop it, then resume"
            ) from None
        self._fd, self._created = fd, not existed
        self._previous = os.pread(fd, 65536, 0)
        old = _parse(self._previous)
        self.stale = None if old is None else {**old, "alive": _alive(old.get("pid"))}
        me = {
            "pid": os.getpid(),
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
            "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:500],
        }
        self._write(json.dumps(me).encode() + b"\n")
        return self

    def _write(self, data: bytes) -> None:
        fd = self._fd
        if fd is None:  # pragma: no cover - guarded by the callers
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def stale_note(self) -> str | None:
        """A sentence about the stale lock taken over, or None.

        Returns
        -------
        str or None
        """
        if self.stale is None:
            return None
        who = describe_holder(self.stale)
        if self.stale.get("alive"):
            return f"took over a stale lock of {who}: the lock was free although a process with that pid runs (a reused pid)"
        return f"took over a stale lock of {who}, which is no longer running (killed or crashed while writing)"

    def release(self, *, restore: bool = False) -> None:
        """Release the lock; the lock file is emptied (a clean release) or restored.

        Parameters
        ----------
        restore : bool
            Put the lock file back exactly as it was before :meth:`acquire` (removed if it did
            not exist): for a writer that stopped before writing anything, so that the run
            directory's bytes are unchanged.
        """
        fd = self._fd
        if fd is None:
            return
        try:
            if restore and self._created:
                self.path.unlink(missing_ok=True)
            else:
                self._write(self._previous if restore else b"")
        finally:
            self._fd = None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
