"""Levels of evidence (DESIGN §2) and the claim record every check returns.

A claim's level says *how* it was established; it never says more than that. The order
``exact > sound > evaluated > estimated`` is used by reports to summarise a chain of claims by
its weakest link.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidInputError

__all__ = ["Level", "Claim", "weakest"]


class Level(str, enum.Enum):
    """How a claim was established.

    ``EXACT``: proved in exact rational arithmetic or by structure.
    ``SOUND``: floating-point over-approximation with an outward margin.
    ``EVALUATED``: computed at finitely many points (a grid, a batch of rollouts).
    ``ESTIMATED``: a statistical or sampled estimate.
    """

    EXACT = "exact"
    SOUND = "sound"
    EVALUATED = "evaluated"
    ESTIMATED = "estimated"

    @property
    def strength(self) -> int:
        """Larger is stronger: exact 3, sound 2, evaluated 1, estimated 0."""
        return {"exact": 3, "sound": 2, "evaluated": 1, "estimated": 0}[self.value]


def weakest(levels: list[Level]) -> Level:
    """The weakest of ``levels`` (the level of a conclusion that needs all of them).

    Parameters
    ----------
    levels : list of Level
        At least one.

    Returns
    -------
    Level
    """
    if not levels:
        raise InvalidInputError("levels: expected at least one level, got an empty list")
    return min(levels, key=lambda lv: lv.strength)


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays and non-finite floats into strict-JSON values."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a hard dependency
        np = None
    if np is not None and isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if np is not None and isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


@dataclass(frozen=True)
class Claim:
    """One checked statement.

    Attributes
    ----------
    name : str
        Short identifier, e.g. ``"base_case"``.
    statement : str
        The mathematical statement, readable on its own.
    level : Level
        How the statement was established.
    holds : bool
        Verdict. ``False`` whenever a check met NaN/inf or a non-optimal solver status.
    details : dict
        Numbers behind the verdict (margins, worst cases, solver records).
    """

    name: str
    statement: str
    level: Level
    holds: bool
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON dictionary (non-finite floats become strings)."""
        return {
            "name": self.name,
            "statement": self.statement,
            "level": self.level.value,
            "holds": bool(self.holds),
            "details": _jsonable(self.details),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Claim":
        """Inverse of :meth:`to_dict` (details are kept as stored).

        Parameters
        ----------
        data : dict

        Returns
        -------
        Claim
        """
        return cls(
            name=str(data["name"]),
            statement=str(data["statement"]),
            level=Level(data["level"]),
            holds=bool(data["holds"]),
            details=dict(data.get("details", {})),
        )
