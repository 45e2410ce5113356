"""Floating-point facts and the named tolerances of scpo, in one place.

Every routine that returns a ``sound`` result takes a :class:`Margin` and records it; every
numerical comparison that is not exact uses one of the named tolerances below, so a reader can
find in one file how much slack any check allows and in which direction.

Directions. A *margin* widens a sound bound outward (towards the unsafe side of the claim it
supports); it never helps a claim hold. A *tolerance* decides when two floating-point numbers
are taken to agree (audits, set redundancy); it is never applied in the unsafe direction of a
safety check unless the claim records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import InvalidInputError

__all__ = [
    "UNIT_ROUNDOFF",
    "Margin",
    "DEFAULT_MARGIN",
    "EVAL_RTOL",
    "NEGLIGIBLE_STEP",
    "SET_TOL",
    "CONTAINMENT_TOL",
    "EXACT_CONTAINMENT_TOL",
    "BOUNDARY_TOL",
]

UNIT_ROUNDOFF = 2.0**-53
"""``u``: the unit roundoff of IEEE float64 with round-to-nearest (half the machine epsilon)."""

EVAL_RTOL = 128 * UNIT_ROUNDOFF
"""Relative round-off attributed to one evaluation of a constraint row ``g_i`` (64 machine epsilons).

Used only to decide whether the prediction (★) *failed* (the smoothness constant ``L_i`` is then
raised); safety decisions never use it."""

NEGLIGIBLE_STEP = 1e-10
"""Steps and bank offsets shorter than this fraction of ``1 + ‖θ‖`` carry no usable information."""

SET_TOL = 1e-9
"""Redundancy tolerance of polytope operations (a distance for unit-norm rows)."""

CONTAINMENT_TOL = 1e-7
"""Largest violation (a distance, unit rows) accepted by the floating-point LP containment test."""

EXACT_CONTAINMENT_TOL = 1e-8
"""Allowed violation in the rational containment tests between stored sets whose boundaries
coincide mathematically (rounding and the redundancy tolerance ``SET_TOL``)."""

BOUNDARY_TOL = 1e-9
"""Band around a set's boundary in which sampled membership checks do not count a disagreement."""


def _maximum(a: Any, b: Any) -> Any:
    if type(a).__module__.startswith("torch"):
        import torch

        return torch.maximum(a, b)
    import numpy as np

    return np.maximum(a, b)


@dataclass(frozen=True, kw_only=True)
class Margin:
    """Outward widening of every sound bound: ``rel · magnitude + abs``.

    Everything is computed in float64 with round-to-nearest (neither torch nor numpy offers
    directed rounding). The standard error bound of a float64 dot product of length ``N`` is
    ``N u Σ|a_i b_i|``; the longest sums in scpo's bounds (a few thousand terms, of the magnitude of
    the bound itself) stay below ``1e-12`` relative, so the default relative part ``1e-9`` leaves
    more than two orders of magnitude of headroom. The absolute part covers results near zero.

    Attributes
    ----------
    rel : float, default 1e-9
        Relative part, ``0 ≤ rel ≤ 1e-3``.
    abs : float, default 1e-10
        Absolute part, ``≥ 0``.
    """

    rel: float = 1e-9
    abs: float = 1e-10

    def __post_init__(self) -> None:
        for name in ("rel", "abs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
                raise InvalidInputError(f"margin.{name}: expected a finite non-negative number, got {value!r}")
        if self.rel > 1e-3:
            raise InvalidInputError(f"margin.rel: expected a small relative margin (≤ 1e-3), got {self.rel}")

    def widen(self, lower: Any, upper: Any) -> tuple[Any, Any]:
        """``[lower − s, upper + s]`` with ``s = rel · max(|lower|, |upper|) + abs``.

        Parameters
        ----------
        lower, upper : Tensor or ndarray, same shape
            A two-sided bound.

        Returns
        -------
        lower, upper : same type and shape
        """
        s = self.rel * _maximum(abs(lower), abs(upper)) + self.abs
        return lower - s, upper + s

    def widen_upper(self, upper: Any, magnitude: Any) -> Any:
        """``upper + rel · magnitude + abs`` for a one-sided bound whose terms have ``magnitude``.

        Parameters
        ----------
        upper : Tensor, ndarray or float
            An upper bound.
        magnitude : same type
            A bound on the magnitude of the terms summed into ``upper`` (``≥ |upper|``).

        Returns
        -------
        same type as ``upper``
        """
        return upper + self.rel * magnitude + self.abs

    def inflate(self, bound: Any) -> Any:
        """``bound · (1 + rel) + abs`` for a non-negative upper bound (a norm, a constant ``L``).

        Parameters
        ----------
        bound : Tensor, ndarray or float
            Non-negative.

        Returns
        -------
        same type as ``bound``
        """
        return bound * (1.0 + self.rel) + self.abs

    def to_dict(self) -> dict[str, Any]:
        """The margin as recorded in claim details."""
        return {"relative": self.rel, "absolute": self.abs,
                "rule": "every bound widened outward by relative·magnitude + absolute"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Margin":
        """Inverse of :meth:`to_dict`.

        Parameters
        ----------
        data : dict
            With keys ``relative`` and ``absolute``.

        Returns
        -------
        Margin
        """
        return cls(rel=float(data["relative"]), abs=float(data["absolute"]))


DEFAULT_MARGIN = Margin()
