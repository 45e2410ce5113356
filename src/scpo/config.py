"""Reading and writing frozen configuration dataclasses.

Every config in scpo is a frozen, keyword-only dataclass that validates itself in
``__post_init__``. This module turns mappings (from JSON files or the CLI) into such
dataclasses, rejecting unknown keys and listing the valid ones.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError

__all__ = ["from_mapping", "to_mapping", "load_json_config"]

T = TypeVar("T")


def _coerce(cls_name: str, key: str, annotation: Any, value: Any) -> Any:
    """Light type check of a JSON value against a dataclass field annotation."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _coerce(cls_name, key, non_none[0], value)
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{cls_name}.{key}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(cls_name, key, item, v) for v in value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{cls_name}.{key}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{cls_name}.{key}: expected an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{cls_name}.{key}: expected true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{cls_name}.{key}: expected a string, got {value!r}")
        return value
    return value


def from_mapping(cls: type[T], data: dict[str, Any] | None, *, where: str | None = None) -> T:
    """Build the frozen dataclass ``cls`` from ``data``.

    Parameters
    ----------
    cls : dataclass type
        The config class.
    data : dict or None
        Field values; missing fields take their defaults.
    where : str, optional
        Where the mapping came from, for error messages (e.g. a file name).

    Raises
    ------
    ConfigError
        On an unknown key (the message lists the valid keys), a value of the wrong type, or a
        value the class's own validation rejects.
    """
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    prefix = f"{where}: " if where else ""
    if unknown:
        raise ConfigError(
            f"{prefix}unknown key(s) {', '.join(map(repr, unknown))} for {cls.__name__}; "
            f"valid keys are {', '.join(sorted(fields))}"
        )
    kwargs = {k: _coerce(cls.__name__, k, hints[k], v) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix}{cls.__name__}: {exc}") from None


def to_mapping(cfg: Any) -> dict[str, Any]:
    """The dataclass ``cfg`` as a JSON-ready dict (tuples become lists).

    Parameters
    ----------
    cfg : dataclass instance

    Returns
    -------
    dict
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def load_json_config(path: str | Path) -> dict[str, Any]:
    """Read a JSON object from ``path``; a clear :class:`ConfigError` on any problem.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict
    """
    from ._validate import read_json_object

    p = Path(path)
    return read_json_object(p, f"config file {str(p)!r}", ConfigError)
