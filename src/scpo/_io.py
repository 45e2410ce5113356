"""Crash-safe file writes shared by every layer: temporary file, fsync, rename.

A reader never sees a half-written file: each write goes to a temporary file in the same
directory, is fsynced, and is renamed onto its target; the directory is fsynced after the rename.
JSON is strict (non-finite floats are written as the strings ``"nan"``, ``"inf"``, ``"-inf"``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import InvalidInputError
from .evidence import _jsonable


logger = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    """Whether a process with this id exists (a permission error means it does)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def staging_dir(out: Path, kind: str) -> Path:
    """A fresh hidden sibling ``.NAME.KIND-PID-HEX`` of ``out`` to build a directory in before renaming it.

    Staging directories of the same ``out`` and ``kind`` left by processes that no longer exist
    (killed before their rename) are removed first; those of live processes are kept.

    Parameters
    ----------
    out : Path
        The directory the staging one will be renamed to.
    kind : str
        ``"partial"`` (a new run) or ``"tmp"`` (a report).

    Returns
    -------
    Path
        Not created yet.
    """
    out = Path(out)
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.{re.escape(kind)}-(\d+)(-[0-9a-f]+)?$")
    if out.parent.is_dir():
        for p in out.parent.iterdir():
            m = pattern.match(p.name)
            if m and p.is_dir() and not p.is_symlink() and not _alive(int(m.group(1))):
                logger.info("removing %s, left by process %s which no longer exists", p, m.group(1))
                shutil.rmtree(p, ignore_errors=True)
    return out.parent / f".{out.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def file_mode() -> int:
    """The permission bits a new file gets under the current umask (``0o666 & ~umask``; 0644 under 022).

    Returns
    -------
    int
    """
    try:  # Linux: read the umask without changing it (os.umask is process-wide and not thread-safe)
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):  # pragma: no cover - other platforms
        pass
    mask = os.umask(0o022)  # pragma: no cover
    os.umask(mask)  # pragma: no cover
    return 0o666 & ~mask  # pragma: no cover


def check_output_dir(path: Path, what: str, *, file: bool = False) -> Path:
    """Check, before any work, that the directory ``path`` (or with ``file``, the file) can be created or written.

    The nearest existing ancestor must be a directory (not a regular file) in which this process
    can create entries; this is probed by creating and removing an empty temporary directory
    there (``os.access`` alone misjudges ``/proc`` and similar file systems for root).

    Parameters
    ----------
    path : Path
        The output directory (it need not exist).
    what : str
        The argument's name for messages (e.g. ``"--out"``).
    file : bool
        ``path`` is a file to write: an existing regular file there is replaced, not refused.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InvalidInputError
        ``path`` or an ancestor is a regular file, or the location is not writable.
    """
    import tempfile

    path = Path(path)
    probe = path.parent if file and path.is_file() else path
    while not probe.exists() and probe != probe.parent:
        if probe.is_symlink():  # a dangling link
            raise InvalidInputError(f"{what}: {str(probe)!r} is a dangling symbolic link")
        probe = probe.parent
    if not probe.is_dir():
        under = "is" if probe == path else f"is under {str(probe)!r}, which is"
        raise InvalidInputError(f"{what}: {str(path)!r} {under} a regular file, not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".scpo-probe-", dir=probe))
    except OSError as exc:
        raise InvalidInputError(f"{what}: cannot write to {str(probe)!r} ({exc.strerror})") from None
    return path

__all__ = ["atomic_write_bytes_via", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "append_jsonl", "fsync_dir",
           "check_output_dir", "file_mode"]


def fsync_dir(path: Path) -> None:
    """fsync the directory ``path`` (makes a rename inside it durable; a no-op where unsupported).

    Parameters
    ----------
    path : Path
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes_via(path: Path, write: Callable[[Path], Any]) -> None:
    """Write through ``write(tmp_path)`` to a temporary file, fsync, then rename onto ``path``.

    Parameters
    ----------
    path : Path
        Target; its parent directory is created if needed.
    write : callable
        Writes the content to the temporary path it is given (e.g. ``safetensors``' ``save_file``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        write(Path(tmp))
        # some writers (safetensors) create files 0600; every file of a run gets the umask's mode
        os.chmod(tmp, file_mode())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically.

    Parameters
    ----------
    path : Path
    data : bytes
    """
    atomic_write_bytes_via(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` (UTF-8) atomically.

    Parameters
    ----------
    path : Path
    text : str
    """
    atomic_write_bytes_via(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    """Replace ``path`` by strict JSON (indented; non-finite floats written as strings) atomically.

    Parameters
    ----------
    path : Path
    data : JSON-ready data (numpy values are converted)
    """
    atomic_write_text(path, json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n")


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one compact JSON line and fsync, so an acknowledged record is never lost.

    Parameters
    ----------
    path : Path
    record : dict
    """
    line = json.dumps(_jsonable(record), allow_nan=False, separators=(",", ":")) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
