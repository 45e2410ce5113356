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
from .._validate import read_file_bytes
from ..errors import CheckpointFormatError, RunDirectoryError

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
    "read_records",
    "MAX_CHECKPOINT_BYTES",
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


def _scan_lines(data: bytes) -> tuple[list[dict[str, Any]], int | None, str | None]:
    """Records before the first bad line; that line's 1-based number; why a *complete* line is bad.

    The third value is None when the only bad line is an incomplete last one (no newline).
    """
    lines = data.split(b"\n")
    records: list[dict[str, Any]] = []
    for i, raw in enumerate(lines[:-1], start=1):
        try:
            rec = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            return records, i, f"line {i} of {len(lines) - 1}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
        except json.JSONDecodeError as exc:
            return records, i, f"line {i} of {len(lines) - 1}: not valid JSON ({exc})"
        if not isinstance(rec, dict):
            return records, i, f"line {i} of {len(lines) - 1}: expected a JSON object, got a JSON {type(rec).__name__}"
        records.append(rec)
    return records, (None if lines[-1] == b"" else len(lines)), None


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
    records, bad, _why = _scan_lines(Path(path).read_bytes())
    return records, bad


def read_records(path: Path) -> tuple[list[dict[str, Any]], int | None]:
    """Read ``certificates.jsonl`` strictly: every complete line must be a JSON object.

    A crash while appending can only leave the *last* line incomplete (no newline); that line
    is reported, not read. Any other bad line is damage.

    Parameters
    ----------
    path : Path

    Returns
    -------
    records : list of dict
        Every complete line, in order.
    torn_line : int or None
        1-based number of an incomplete last line (to be cut off by a resume), or None.

    Raises
    ------
    RunDirectoryError
        A missing file, or a complete line that is not UTF-8 JSON holding an object (the
        message names the line).
    """
    path = Path(path)
    data = read_file_bytes(path, f"{path.name} (the run's certificate records)", RunDirectoryError)
    records, bad, why = _scan_lines(data)
    if why is not None:
        raise RunDirectoryError(f"{path.name} {why}; only a torn last line can come from a crash: this is damage")
    return records, bad


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


MAX_CHECKPOINT_BYTES = 2**31
"""Largest checkpoint file read (a residual MLP's float64 parameters are far smaller); the audit's cap too."""
_MAX_HEADER = 100_000_000


def _checkpoint_header(path: Path) -> tuple[dict[str, Any], int, int]:
    """The JSON header of a safetensors file, where its buffer starts and the file's size (reads only the header)."""
    try:
        size = path.stat().st_size
        if size > MAX_CHECKPOINT_BYTES:
            raise CheckpointFormatError(f"checkpoint {str(path)!r}: {size} bytes, more than the {MAX_CHECKPOINT_BYTES} a checkpoint "
                                        "of this toolkit may have; not read")
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise CheckpointFormatError(f"checkpoint {str(path)!r}: expected a safetensors file, got {len(head)} bytes")
            header_len = int.from_bytes(head, "little")
            if header_len <= 1 or header_len > min(size - 8, _MAX_HEADER):
                raise CheckpointFormatError(
                    f"checkpoint {str(path)!r}: expected a safetensors file (8-byte header length, then JSON), "
                    f"got a header length of {header_len} bytes — not a safetensors file (a pickle?)"
                )
            header = json.loads(fh.read(header_len).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointFormatError(f"checkpoint {str(path)!r}: its safetensors header is not JSON ({exc})") from None
    except OSError as exc:
        raise CheckpointFormatError(f"checkpoint {str(path)!r}: cannot read it ({exc.strerror})") from None
    if not isinstance(header, dict):
        raise CheckpointFormatError(f"checkpoint {str(path)!r}: its safetensors header is not a JSON object")
    return header, 8 + header_len, size


def read_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors checkpoint without executing anything from the file.

    Only the 8-byte header length and the JSON header are read first; the tensors are read
    (by ``safetensors``) only when the header describes buffers that fit the file exactly, so a
    huge or sparse file is refused without being loaded (at most :data:`MAX_CHECKPOINT_BYTES`).

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
        If the file is missing, too large, not safetensors (e.g. a pickle), or lacks scpo's metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointFormatError(f"checkpoint {str(path)!r}: expected a safetensors file, found nothing")
    header, start, size = _checkpoint_header(path)
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else meta
        raise CheckpointFormatError(f"checkpoint {str(path)!r}: expected metadata format {CHECKPOINT_FORMAT!r}, got {got!r}")
    ends = [spec.get("data_offsets") for k, spec in header.items() if k != "__metadata__" and isinstance(spec, dict)]
    end = max((e[-1] for e in ends if isinstance(e, list) and e and isinstance(e[-1], int)), default=0)
    if start + end != size:
        raise CheckpointFormatError(f"checkpoint {str(path)!r}: its header describes {start + end} bytes, the file has {size}; "
                                    "not a checkpoint written by scpo (truncated or padded)")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointFormatError(f"checkpoint {str(path)!r}: not a readable safetensors file ({exc})") from None
    return tensors, {str(k): str(v) for k, v in meta.items()}


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
