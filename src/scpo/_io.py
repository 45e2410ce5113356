"""Crash-safe file writes shared by every layer: temporary file, fsync, rename.

A reader never sees a half-written file: each write goes to a temporary file in the same
directory, is fsynced, and is renamed onto its target; the directory is fsynced after the rename.
JSON is strict (non-finite floats are written as the strings ``"nan"``, ``"inf"``, ``"-inf"``).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .evidence import _jsonable

__all__ = ["atomic_write_bytes_via", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "append_jsonl", "fsync_dir"]


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
    # The writer creates the file itself, so it gets the usual umask-derived permissions.
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        write(Path(tmp))
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
