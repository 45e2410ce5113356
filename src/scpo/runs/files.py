"""Files of a run directory: atomic writes, parameter hashes, safetensors checkpoints.

Nothing here unpickles: checkpoints are safetensors (a JSON header and raw little-endian
buffers), read with ``safetensors.numpy``.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from ..errors import CheckpointFormatError
from ..evidence import _jsonable

__all__ = [
    "SCHEMA_VERSION",
    "CHECKPOINT_FORMAT",
    "theta_sha256",
    "atomic_write_text",
    "atomic_write_json",
    "write_checkpoint",
    "read_checkpoint",
    "flatten_tensors",
    "append_jsonl",
    "read_jsonl",
]

SCHEMA_VERSION = 1
CHECKPOINT_FORMAT = "scpo.checkpoint"


def theta_sha256(theta: np.ndarray) -> str:
    """SHA-256 of the flat parameter vector as contiguous little-endian float64 bytes."""
    return hashlib.sha256(np.ascontiguousarray(theta, dtype="<f8").tobytes()).hexdigest()


def _fsync_dir(path: Path) -> None:
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


def atomic_write_bytes_via(path: Path, write: Any) -> None:
    """Write through ``write(tmp_path)`` to a temporary file, fsync, then rename onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The writer creates the file itself, so it gets the usual umask-derived permissions.
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` atomically (temporary file + rename)."""
    atomic_write_bytes_via(path, lambda p: p.write_text(text))


def atomic_write_json(path: Path, data: Any) -> None:
    """Replace ``path`` by strict JSON (non-finite floats written as strings) atomically."""
    atomic_write_text(path, json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n")


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and fsync, so a crash never leaves an acknowledged record unwritten."""
    line = json.dumps(_jsonable(record), allow_nan=False, separators=(",", ":")) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int | None]:
    """Read complete JSON lines.

    Returns
    -------
    records : list of dict
        Every complete, parseable line before the first bad one.
    bad_line : int or None
        1-based number of the first line that is incomplete (no newline) or not a JSON object,
        or None when the whole file is clean.
    """
    records: list[dict[str, Any]] = []
    data = Path(path).read_bytes()
    lines = data.split(b"\n")
    for i, raw in enumerate(lines):
        if i == len(lines) - 1:
            return records, (None if raw == b"" else i + 1)
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return records, i + 1
        if not isinstance(rec, dict):
            return records, i + 1
        records.append(rec)
    return records, None  # pragma: no cover - loop always returns


def flatten_tensors(tensors: dict[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """Concatenate ``tensors[name].ravel()`` in the order ``names`` as float64, shape (d,)."""
    return np.concatenate([np.asarray(tensors[n], dtype=np.float64).ravel() for n in names]) if names else np.zeros(0)


def write_checkpoint(
    path: Path, tensors: dict[str, np.ndarray], names: Sequence[str], *, iteration: int, task: str
) -> str:
    """Write a safetensors checkpoint atomically; returns the θ hash stored in its metadata.

    Parameters
    ----------
    path : Path
    tensors : dict of name -> ndarray
        The residual network's parameters (float64).
    names : sequence of str
        Parameter order defining the flat ``θ`` (and so its hash).
    iteration : int
    task : str
    """
    arrays = {n: np.ascontiguousarray(tensors[n], dtype=np.float64) for n in names}
    digest = theta_sha256(flatten_tensors(arrays, names))
    meta = {
        "format": CHECKPOINT_FORMAT,
        "schema_version": str(SCHEMA_VERSION),
        "iteration": str(int(iteration)),
        "theta_sha256": digest,
        "task": task,
        "parameter_order": json.dumps(list(names)),
    }
    atomic_write_bytes_via(Path(path), lambda p: save_file(arrays, str(p), metadata=meta))
    return digest


def read_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors checkpoint without executing anything from the file.

    Returns
    -------
    tensors : dict of name -> ndarray
    metadata : dict of str -> str

    Raises
    ------
    CheckpointFormatError
        If the file is missing, not safetensors (e.g. a pickle), or lacks scpo's metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointFormatError(f"checkpoint {str(path)!r}: expected a safetensors file, found nothing")
    head = path.read_bytes()[:8]
    if len(head) < 8:
        raise CheckpointFormatError(f"checkpoint {str(path)!r}: expected a safetensors file, got {len(head)} bytes")
    header_len = int.from_bytes(head, "little")
    if header_len <= 1 or header_len > min(path.stat().st_size - 8, 100_000_000):
        raise CheckpointFormatError(
            f"checkpoint {str(path)!r}: expected a safetensors file (8-byte header length, then JSON), "
            f"got a header length of {header_len} bytes — not a safetensors file (a pickle?)"
        )
    try:
        with open(path, "rb") as fh:
            fh.seek(8)
            header = json.loads(fh.read(header_len).decode("utf-8"))
        tensors = load_file(str(path))
    except (SafetensorError, UnicodeDecodeError, json.JSONDecodeError, OSError, ValueError) as exc:
        raise CheckpointFormatError(f"checkpoint {str(path)!r}: not a readable safetensors file ({exc})") from None
    meta = header.get("__metadata__") or {}
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointFormatError(
            f"checkpoint {str(path)!r}: expected metadata format {CHECKPOINT_FORMAT!r}, got {meta.get('format')!r}"
        )
    return tensors, dict(meta)
