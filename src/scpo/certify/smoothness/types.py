"""Parameter regions and the result types of the smoothness certificates."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from ..._validate import as_array, check_in, check_nonnegative
from ...evidence import Claim, Level
from ...numerics import Margin

__all__ = ["REGION_KINDS", "SMOOTHNESS_MARGIN", "ROWS_STATEMENT", "Region", "SmoothnessCertificate", "LowerBounds"]

REGION_KINDS = ("box", "ball")
SMOOTHNESS_MARGIN = Margin(rel=1e-9, abs=0.0)
"""Default outward margin of the smoothness and state-Lipschitz bounds: every sound constant ``L``
is inflated to ``L (1 + 1e-9)`` (:meth:`scpo.numerics.Margin.inflate`). The constants are norms
whose rounding is already covered by explicit ``(n + 4) u`` slacks; the relative part covers the
rest, and no absolute part is added (a zero Hessian stays zero)."""

ROWS_STATEMENT = {
    "mlp-output": "every row g_i(θ) = ±f_θ(x_j) − b is L_i-smooth on the region: sup_{θ∈Θ} ‖∇²g_i(θ)‖₂ ≤ L_i",
    "per-row": "every rollout row g_i(θ) is L_i-smooth on the region: sup_{θ∈Θ} ‖∇²g_i(θ)‖₂ ≤ L_i",
    "max": (
        "every rollout row r_j underlying the max row g_i = max_j r_j satisfies sup_{θ∈Θ} ‖∇²r_j(θ)‖₂ ≤ L_i; "
        "g_i itself is not smooth, and (★) for g_i is justified only for steps Δ = Σ c_k δ_k with c_k ≥ 0 "
        "and Σ c_k ≤ 1 (other steps rest on evaluation alone)"
    ),
    "lse": (
        "every log-sum-exp row g_i = τ log Σ_j exp(r_j/τ) is L_i-smooth on the region, with "
        "L_i = max_j sup‖∇²r_j‖ + max_j sup‖∇r_j‖² / τ"
    ),
}
"""What a :class:`SmoothnessCertificate` certifies, by row mode."""


@dataclass(frozen=True, kw_only=True)
class Region:
    """A parameter region around a centre: ``box`` = L∞ ball of ``radius``, ``ball`` = L2 ball.

    Attributes
    ----------
    kind : {"box", "ball"}
    radius : float
        ``r`` (box) or ``ρ`` (ball), ``>= 0``; ``0`` is the centre itself.
    """

    kind: str
    radius: float

    def __post_init__(self) -> None:
        check_in("region kind", self.kind, REGION_KINDS)
        check_nonnegative("radius", self.radius)

    @classmethod
    def box(cls, radius: float) -> "Region":
        """``{θ : ‖θ − θ_c‖_∞ ≤ radius}``.

        Parameters
        ----------
        radius : float

        Returns
        -------
        Region
        """
        return cls(kind="box", radius=radius)

    @classmethod
    def ball(cls, radius: float) -> "Region":
        """``{θ : ‖θ − θ_c‖₂ ≤ radius}``.

        Parameters
        ----------
        radius : float

        Returns
        -------
        Region
        """
        return cls(kind="ball", radius=radius)

    def l2_radius(self, dim: int) -> float:
        """Largest ``‖θ − θ_c‖₂`` in the region for ``dim`` parameters.

        Parameters
        ----------
        dim : int

        Returns
        -------
        float
        """
        return self.radius * (math.sqrt(dim) if self.kind == "box" else 1.0)

    def project(self, theta: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        """Euclidean projection of rows of ``theta`` onto the region around ``centre``.

        Parameters
        ----------
        theta : Tensor, shape (…, d)
        centre : Tensor, shape (d,) or broadcastable

        Returns
        -------
        Tensor, shape of ``theta``
        """
        d = theta - centre
        if self.kind == "box":
            return centre + d.clamp(-self.radius, self.radius)
        n = torch.linalg.vector_norm(d, dim=-1, keepdim=True)
        scale = torch.where(n > self.radius, self.radius / torch.clamp(n, min=1e-300), torch.ones_like(n))
        return centre + d * scale

    def to_dict(self) -> dict[str, Any]:
        """``{"kind", "radius"}``."""
        return {"kind": self.kind, "radius": self.radius}


@dataclass(frozen=True)
class SmoothnessCertificate:
    """Sound smoothness constants of constraint rows over a parameter region.

    Attributes
    ----------
    L : ndarray, shape (N,)
        The sound bound per constraint row: the smallest of the methods that ran.
    methods : dict of str -> ndarray (N,)
        Each method's bound (``"interval"``, ``"norm-chain"``).
    gradient : ndarray, shape (N,) or None
        Sound bounds on ``sup ‖∇g_i‖₂`` over the region where available.
    region : Region
    rows : str
        ``"mlp-output"``, ``"per-row"``, ``"max"`` or ``"lse"``; see :attr:`statement`.
    statement : str
        What exactly is certified.
    margin : Margin
        The outward margin applied to every bound.
    timings : dict of str -> float
        Seconds per method.
    notes : list of str
    underlying_argmax : ndarray or None
        For ``max``/``lse`` rows: index of the underlying rollout row with the largest bound.
    """

    L: np.ndarray
    methods: dict[str, np.ndarray]
    gradient: np.ndarray | None
    region: Region
    rows: str
    statement: str
    margin: Margin
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    underlying_argmax: np.ndarray | None = None

    level: ClassVar[Level] = Level.SOUND

    def claim(self, L_used: np.ndarray) -> Claim:
        """``L_used ≥ L`` row by row (``sound``); NaN/inf in either fails.

        Parameters
        ----------
        L_used : ndarray, shape (N,)

        Returns
        -------
        Claim
        """
        L_used = as_array("L_used", L_used, shape=(self.L.size,), finite=False)
        ok = np.isfinite(self.L) & np.isfinite(L_used) & (L_used >= self.L)
        return Claim(
            name="smoothness_certified",
            statement=f"For the region {self.region.kind} of radius {self.region.radius:g}: {self.statement}, with L_i ≤ L_used_i.",
            level=Level.SOUND,
            holds=bool(np.all(ok)),
            details={"rows": int(self.L.size), "rows_certified": int(ok.sum()), "margin": self.margin.to_dict(),
                     "worst_ratio_bound_over_used": float(np.max(self.L / L_used)) if self.L.size else float("nan")},
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (arrays as arrays; use :func:`scpo._io.atomic_write_json` to write it)."""
        return {
            "level": self.level.value,
            "region": self.region.to_dict(),
            "rows": self.rows,
            "statement": self.statement,
            "margin": self.margin.to_dict(),
            "L": self.L,
            "methods": self.methods,
            "gradient": self.gradient,
            "timings": self.timings,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class LowerBounds:
    """``estimated`` lower bounds on ``sup_{θ'∈Θ} ‖∇²g_i(θ')‖₂`` for some rows.

    Attributes
    ----------
    rows : ndarray of int, shape (n,)
        Row indices of ``g``.
    values : ndarray, shape (n,)
        The lower bounds (for ``max`` rows: of the largest underlying row curvature examined).
    details : dict of str -> ndarray (n,)
        The components (:func:`~scpo.certify.smoothness.curvature_search`).
    region : Region
    """

    rows: np.ndarray
    values: np.ndarray
    details: dict[str, np.ndarray]
    region: Region

    level: ClassVar[Level] = Level.ESTIMATED
