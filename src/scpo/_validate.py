"""Argument checks shared by every module.

Messages follow one pattern: the argument's name, what was expected, what arrived.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidInputError, NonFiniteError, ShapeError

__all__ = [
    "as_array",
    "check_positive",
    "check_nonnegative",
    "check_in",
    "check_int",
    "check_finite_scalar",
    "check_seed",
    "read_json_object",
    "read_file_bytes",
    "SEED_MAX",
]

SEED_MAX = 2**64 - 1
"""Largest seed accepted: seeds are unsigned 64-bit integers (``torch.Generator.manual_seed``'s range)."""


def _shape_str(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def as_array(
    name: str,
    value: Any,
    *,
    ndim: int | None = None,
    shape: Sequence[int | None] | None = None,
    finite: bool = True,
    dtype: type = np.float64,
) -> np.ndarray:
    """Convert ``value`` to a float array and check its shape and finiteness.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    value : array_like
        The value to convert.
    ndim : int, optional
        Required number of dimensions.
    shape : sequence of int or None, optional
        Required shape; ``None`` entries match any length.
    finite : bool, default True
        Reject NaN and infinity.
    dtype : numpy dtype, default float64

    Returns
    -------
    numpy.ndarray
        ``value`` as a C-contiguous array of ``dtype``.

    Raises
    ------
    ShapeError
        If the number of dimensions or the shape differs from the requirement.
    NonFiniteError
        If ``finite`` and an entry is NaN or infinite.
    InvalidInputError
        If ``value`` cannot be converted to a numeric array.
    """
    try:
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name}: expected a numeric array, got {type(value).__name__} ({exc})") from None
    if shape is not None:
        ndim = len(shape)
    if ndim is not None and arr.ndim != ndim:
        expected = _shape_str(shape) if shape is not None else f"{ndim} dimension(s)"
        raise ShapeError(f"{name}: expected an array of shape {expected}, got shape {arr.shape}")
    if shape is not None:
        for want, got in zip(shape, arr.shape):
            if want is not None and want != got:
                raise ShapeError(f"{name}: expected shape {_shape_str(shape)}, got {arr.shape}")
    if finite and arr.size and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise NonFiniteError(f"{name}: expected finite values, got {bad} NaN/inf entr{'y' if bad == 1 else 'ies'}")
    return arr


def check_finite_scalar(name: str, value: Any) -> float:
    """Return ``value`` as a finite float or raise :class:`InvalidInputError`.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    value : object
        The value to check.

    Returns
    -------
    float
    """
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}: expected a real number, got {value!r}") from None
    if not math.isfinite(out):
        raise NonFiniteError(f"{name}: expected a finite number, got {out}")
    return out


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float, requiring ``0 < value < inf``.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    value : object
        The value to check.

    Returns
    -------
    float
    """
    out = check_finite_scalar(name, value)
    if not out > 0:
        raise InvalidInputError(f"{name}: expected a positive number, got {value!r}")
    return out


def check_nonnegative(name: str, value: Any) -> float:
    """Return ``value`` as a float, requiring ``0 <= value < inf``.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    value : object
        The value to check.

    Returns
    -------
    float
    """
    out = check_finite_scalar(name, value)
    if not out >= 0:
        raise InvalidInputError(f"{name}: expected a non-negative number, got {value!r}")
    return out


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int within ``[minimum, maximum]``; bools are rejected.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    value : object
        The value to check.
    minimum, maximum : int, optional
        Inclusive bounds.

    Returns
    -------
    int
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidInputError(f"{name}: expected an integer, got {value!r} ({type(value).__name__})")
    out = int(value)
    if minimum is not None and out < minimum:
        raise InvalidInputError(f"{name}: expected an integer >= {minimum}, got {out}")
    if maximum is not None and out > maximum:
        raise InvalidInputError(f"{name}: expected an integer <= {maximum}, got {out}")
    return out


def check_in(name: str, value: Any, options: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``options``; the error lists the valid names.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    value : object
        The value to check.
    options : sequence of str
        The valid values.

    Returns
    -------
    str
    """
    if value not in options:
        raise InvalidInputError(f"{name}: expected one of {', '.join(repr(o) for o in options)}, got {value!r}")
    return str(value)


def check_seed(name: str, value: Any) -> int:
    """Return ``value`` as a seed: an integer in ``[0, 2**64 − 1]`` (:data:`SEED_MAX`).

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    value : object
        The value to check.

    Returns
    -------
    int
    """
    out = check_int(name, value)
    if not 0 <= out <= SEED_MAX:
        raise InvalidInputError(f"{name}: expected an integer in [0, 2**64 - 1] (a 64-bit seed), got {out}")
    return out


def read_file_bytes(path: Path, what: str, error: type[InvalidInputError] = InvalidInputError) -> bytes:
    """The bytes of the file ``path``; ``error`` naming ``what`` when it is missing or unreadable.

    Parameters
    ----------
    path : Path
    what : str
        How messages name the file.
    error : type
        The exception raised (a subclass of :class:`~scpo.errors.InvalidInputError`).

    Returns
    -------
    bytes
    """
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what}: expected a file, found none ({str(path)!r})") from None
    except OSError as exc:
        raise error(f"{what}: cannot read it ({exc.strerror})") from None


def read_json_object(path: Path, what: str, error: type[InvalidInputError] = InvalidInputError) -> dict[str, Any]:
    """The JSON object in ``path`` (strict UTF-8); ``error`` naming ``what`` on any problem.

    Parameters
    ----------
    path : Path
    what : str
        How messages name the file (e.g. ``"config.json"`` or ``"--config file 'x.json'"``).
    error : type
        The exception raised (a subclass of :class:`~scpo.errors.InvalidInputError`).

    Returns
    -------
    dict

    Raises
    ------
    InvalidInputError
        (as ``error``) a missing or unreadable file, bytes that are not UTF-8, text that is not
        JSON, or JSON that is not an object.
    """
    data = read_file_bytes(path, what, error)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what}: expected UTF-8 JSON, got the byte 0x{data[exc.start]:02x} at offset {exc.start}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise error(f"{what}: expected a JSON object, got a JSON {type(value).__name__}")
    return value
