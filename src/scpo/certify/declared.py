"""The declared region ``C`` of a certificate: the set of initial states it speaks about (DESIGN §6).

For a linear closed loop the default ``C`` is the backup's exact ``T``-step backward reachable set
(DESIGN §7), computed for a polytope ``T_in ⊆ X_f`` (the inner tangent polytope of the terminal
ellipsoid), optionally with a margin ``ε``:

    C_ε = { x_0 : the backup's rollout satisfies Hx x_t ≤ hx − ε‖Hx_i‖ (t = 0 … T−1),
                  Hu u_t ≤ hu − ε‖Hu_j‖ (t = 0 … T−1) and x_T ∈ T_in shrunk by ε }.

``C_0`` is the backup's own set of ``T_in``; ``ε > 0`` leaves a learned residual room: at every
state of ``C_ε`` the backup satisfies every original row with slack at least ``ε`` (per unit row
norm). The certificate is always about the *original* constraints and ``X_f``; the margin only
shapes ``C``. The terminal condition can be certified through ``T_in``: ``x_T ∈ T_in ⊆ X_f``
(``T_in ⊆ X_f`` is proved exactly), whose rows are linear in ``x_T`` — so that the backup itself,
whose rollout is linear in ``x_0``, certifies on 100 % of ``C`` (``θ_0`` at 100 %).

For a static problem (constraints on the policy's output, e.g. regression) ``C`` is the box of
inputs the task declares (``[−3, 3]``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .._validate import as_array, check_nonnegative
from ..errors import InvalidInputError
from ..evidence import Claim, Level
from ..reachability.exact import exact_measure, exact_vertices, polytope_in_ellipsoid
from ..reachability.polytope import Polytope, box, is_empty
from ..reachability.sets import backward_reachable_sets
from ..reachability.targets import terminal_targets
from ..systems import ClosedLoopProblem, LinearSystem

__all__ = ["DeclaredRegion", "backup_region", "box_region", "REGION_KINDS"]

REGION_KINDS = ("backup-reachable", "box", "polytope")


@dataclass(frozen=True)
class DeclaredRegion:
    """The region ``C`` a certificate is about.

    Attributes
    ----------
    polytope : Polytope
        ``C = {x : H x ≤ h}`` (bounded).
    kind : {"backup-reachable", "box", "polytope"}
    description : str
        One sentence: what ``C`` is.
    terminal_target : Polytope or None
        ``T_in ⊆ X_f`` (proved exactly) through which the terminal condition may be certified.
    margin : float
        ``ε`` of the construction (0 for a box or a given polytope).
    volume : float
        ``vol(C)``.
    volume_exact : Fraction or None
        Exact ``vol(C)`` when known (2-D: rational shoelace on exact vertices; boxes).
    claims : tuple of Claim
        Exact facts about ``C`` the certificate rests on (``C ⊆ X``; ``T_in ⊆ X_f``).
    details : dict
        Construction numbers (areas of the backup's own sets, time).
    """

    polytope: Polytope
    kind: str
    description: str
    terminal_target: Polytope | None
    margin: float
    volume: float
    volume_exact: Fraction | None
    claims: tuple[Claim, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Dimension."""
        return self.polytope.dim

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``C``'s rows as stored, the exact volume as a fraction string)."""
        return {
            "kind": self.kind,
            "description": self.description,
            "H": self.polytope.H.tolist(),
            "h": self.polytope.h.tolist(),
            "terminal_target": None if self.terminal_target is None else {"H": self.terminal_target.H.tolist(), "h": self.terminal_target.h.tolist()},
            "margin": self.margin,
            "volume": self.volume,
            "volume_exact": None if self.volume_exact is None else str(self.volume_exact),
            "claims": [c.to_dict() for c in self.claims],
            "details": self.details,
        }


def _volume(P: Polytope) -> tuple[float, Fraction | None]:
    if P.dim == 1:
        vs = exact_vertices(P)
        v = abs(vs[1][0] - vs[0][0]) if len(vs) == 2 else Fraction(0)
        return float(v), v
    v = exact_measure(P)
    return float(v), v


def _inside_X_claim(C: Polytope, system: LinearSystem) -> Claim:
    vs = exact_vertices(C)
    Hx = [[Fraction(float(a)) for a in row] for row in system.Hx]
    hx = [Fraction(float(b)) for b in system.hx]
    worst = max((sum(a * x for a, x in zip(row, v)) - b for v in vs for row, b in zip(Hx, hx)), default=Fraction(-1))
    return Claim("region_inside_state_constraints",
                 "C ⊆ X: every vertex of C satisfies every state constraint row (exact rational arithmetic), so the "
                 "t = 0 state rows hold on all of C", Level.EXACT, bool(worst <= 0),
                 {"vertices": len(vs), "worst_row": float(worst)})


def _tightened(system: LinearSystem, eps: float) -> LinearSystem:
    nx = np.linalg.norm(system.Hx, axis=1)
    nu = np.linalg.norm(system.Hu, axis=1)
    return LinearSystem(A=system.A, B=system.B, Hx=system.Hx, hx=system.hx - eps * nx, Hu=system.Hu, hu=system.hu - eps * nu,
                        name=f"{system.name} (constraints tightened by {eps:g})")


def backup_region(problem: ClosedLoopProblem, *, margin: float = 0.0, directions: int = 32) -> DeclaredRegion:
    """``C_ε``: the backup's exact ``T``-step backward reachable set of ``T_in`` under constraints tightened by ``ε``.

    Parameters
    ----------
    problem : ClosedLoopProblem
        With a terminal set ``X_f`` and a bounded ``X``.
    margin : float
        ``ε ≥ 0`` (per unit row norm).
    directions : int
        Tangent directions of ``T_in`` (2-D; see :func:`scpo.reachability.targets.terminal_targets`).

    Returns
    -------
    DeclaredRegion
        With the exact claims ``C ⊆ X`` and ``T_in ⊆ X_f`` and, in ``details``, the volumes of the
        backup's own sets of ``T_in`` and of the outer polytope ``T_out ⊇ X_f`` (they bracket the
        backup's set of ``X_f``) and ``C``'s share of the upper one.

    Raises
    ------
    InvalidInputError
        No terminal set, a negative margin, or an empty ``C`` (the margin is too large).
    """
    if not problem.has_terminal:
        raise InvalidInputError("problem: the backup's reachable region needs a terminal set X_f = {xᵀPx ≤ γ}")
    eps = check_nonnegative("margin", margin)
    t0 = time.perf_counter()
    inner, outer = terminal_targets(problem.system, problem.K, problem.P, problem.gamma, directions=directions)
    T_in = inner.polytope
    T_eps = Polytope(H=T_in.H, h=T_in.h - eps * np.linalg.norm(T_in.H, axis=1))
    if is_empty(T_eps):
        raise InvalidInputError(f"margin: ε = {eps:g} leaves no point of the terminal target T_in; choose a smaller margin")
    system = _tightened(problem.system, eps) if eps > 0 else problem.system
    C = backward_reachable_sets(T_eps, system, problem.horizon, K=problem.K).sets[-1]
    if is_empty(C):
        raise InvalidInputError(f"margin: ε = {eps:g} leaves the backup's reachable set empty; choose a smaller margin")
    vol, vol_exact = _volume(C)
    own_in = backward_reachable_sets(T_in, problem.system, problem.horizon, K=problem.K).sets[-1]
    own_out = backward_reachable_sets(outer.polytope, problem.system, problem.horizon, K=problem.K).sets[-1]
    v_in, v_out = _volume(own_in)[0], _volume(own_out)[0]
    inside_Xf, worst = polytope_in_ellipsoid(T_in, problem.P, problem.gamma)
    claims = (
        _inside_X_claim(C, problem.system),
        Claim("terminal_target_inside_Xf", "T_in ⊆ X_f: every vertex v of T_in has vᵀPv ≤ γ (exact rational arithmetic)",
              Level.EXACT, bool(inside_Xf), {"worst": worst, "rows": T_in.n_rows}),
    )
    desc = (f"the backup's exact {problem.horizon}-step backward reachable set of T_in ⊆ X_f"
            + (f" under constraints tightened by ε = {eps:g}" if eps > 0 else ""))
    details = {"volume_backup_inner": v_in, "volume_backup_outer": v_out, "share_of_backup_set": vol / v_out if v_out > 0 else None,
               "facets": C.n_rows, "directions": directions, "time_s": time.perf_counter() - t0}
    return DeclaredRegion(C, "backup-reachable", desc, T_in, eps, vol, vol_exact, claims, details)


def box_region(lower: Any, upper: Any, *, description: str = "") -> DeclaredRegion:
    """``C = [lower, upper]`` (e.g. the input interval of a static problem).

    Parameters
    ----------
    lower, upper : array_like, shape (n,)
    description : str

    Returns
    -------
    DeclaredRegion
    """
    lo = as_array("lower", lower, ndim=1)
    hi = as_array("upper", upper, shape=lo.shape)
    if not np.all(hi > lo):
        raise InvalidInputError(f"upper: expected upper > lower, got {lo.tolist()} and {hi.tolist()}")
    vol = Fraction(1)
    for a, b in zip(lo, hi):
        vol *= Fraction(float(b)) - Fraction(float(a))
    desc = description or "the box " + " × ".join(f"[{a:g}, {b:g}]" for a, b in zip(lo, hi))
    return DeclaredRegion(box(lo, hi), "box", desc, None, 0.0, float(vol), vol)
