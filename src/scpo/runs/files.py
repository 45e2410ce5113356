"""Files of a run directory: atomic writes, parameter hashes, safetensors checkpoints.

Nothing here unpickles: checkpoints are safetensors (a JSON header and raw little-endian
buffers), read with ``safetensors.numpy``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from .._io import append_jsonl, atomic_write_bytes_via, atomic_write_json, atomic_write_text
from ..errors import CheckpointFormatError

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
    "write_tensors",
    "read_tensors",
]

SCHEMA_VERSION = 1
CHECKPOINT_FORMAT = "scpo.checkpoint"


def theta_sha256(theta: np.ndarray) -> str:
    """SHA-256 of the flat parameter vector as contiguous little-endian float64 bytes.

    Parameters
    ----------
    theta : ndarray, shape (d,)

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    return hashlib.sha256(np.ascontiguousarray(theta, dtype="<f8").tobytes()).hexdigest()


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int | None]:
    """Read complete JSON lines.

    Parameters
    ----------
    path : Path

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
    """Concatenate ``tensors[name].ravel()`` in the order ``names`` as float64.

    Parameters
    ----------
    tensors : dict of name -> ndarray
    names : sequence of str

    Returns
    -------
    ndarray, shape (d,)
    """
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

    Parameters
    ----------
    path : Path

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


def write_tensors(path: Path, arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Write float arrays as a safetensors file atomically (projector state, bank).

    Parameters
    ----------
    path : Path
    arrays : dict of name -> ndarray
    metadata : dict of str -> str, optional
    """
    data = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    atomic_write_bytes_via(Path(path), lambda p: save_file(data, str(p), metadata=metadata))


def read_tensors(path: Path) -> dict[str, np.ndarray]:
    """Read a safetensors file written by :func:`write_tensors` (never unpickles).

    Parameters
    ----------
    path : Path

    Returns
    -------
    dict of name -> ndarray

    Raises
    ------
    CheckpointFormatError
        If the file is missing or not a readable safetensors file.
    """
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointFormatError(f"{str(path)!r}: not a readable safetensors file ({exc})") from None
