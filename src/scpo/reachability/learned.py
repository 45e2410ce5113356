"""The learned closed loop's backward reachable set of ``X_f``, estimated on a grid (``evaluated``).

``π_θ(x) = Kx + φ_θ(x)`` is nonlinear, so its ``T``-step backward reachable set
``R_T^θ(X_f) = {x₀ : x_t ∈ X, π_θ(x_t) ∈ U (t < T), x_T ∈ X_f}`` (with the task's rows: the
state rows for ``t = 1 … T``, the input rows for ``t = 0 … T−1``, the terminal row
``x_Tᵀ P x_T ≤ γ``) is not computed exactly. It is estimated on the centres of a
``grid × grid`` partition of the bounding box of the state polytope (by LP): a centre is in the estimate when every rollout row
is ``≤ 0``; the area estimate is (number of such centres) × (cell area). The same estimator
applied to an exact polytope shows the size of the discretisation error next to its exact
area.

The comparison this module reports measures safe adaptation beyond the backup: the learned
set against the backup's exact ``T``-step set (inner and outer polytopic brackets of ``X_f``)
and the ``T``-step controllable set (the upper limit that any policy can reach).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._validate import as_array, check_int
from ..errors import InvalidInputError, ShapeError
from ..evidence import Claim, Level
from ..numerics import BOUNDARY_TOL
from ..policies import ResidualPolicy
from ..systems import ClosedLoopProblem, constraint_rows, rollout
from .polytope import Polytope

__all__ = [
    "GridSet",
    "PolicyMap",
    "RowsFn",
    "cell_centres",
    "state_box",
    "policy_rows",
    "residual_policy_map",
    "grid_set",
    "learned_grid_set",
    "grid_area",
    "grid_containment_claim",
]


@dataclass(frozen=True)
class GridSet:
    """Grid estimate of a set in the state box.

    Attributes
    ----------
    states : ndarray, shape (G², n)
        Cell centres.
    inside : ndarray of bool, shape (G²,)
    cell_area : float
    worst_row : ndarray, shape (G²,)
        ``max`` of the constraint rows per centre (``≤ 0`` inside; ``inf`` for NaN/inf rollouts).
    level : Level
        Always ``evaluated``.
    """

    states: np.ndarray
    inside: np.ndarray
    cell_area: float
    worst_row: np.ndarray
    level: Level = Level.EVALUATED

    @property
    def area(self) -> float:
        """Estimated area: ``count · cell_area``."""
        return float(self.inside.sum() * self.cell_area)

    def to_dict(self) -> dict[str, Any]:
        """Summary (counts and area, not the grid)."""
        return {
            "level": self.level.value,
            "grid_points": int(self.states.shape[0]),
            "inside": int(self.inside.sum()),
            "cell_area": self.cell_area,
            "area_estimate": self.area,
        }


def cell_centres(lower: np.ndarray, upper: np.ndarray, grid: int) -> tuple[np.ndarray, float]:
    """Centres of a ``grid × … × grid`` partition of the box ``[lower, upper]``.

    Parameters
    ----------
    lower, upper : array_like, shape (n,)
        Corners of the box.
    grid : int
        Cells per axis (``≥ 1``).

    Returns
    -------
    centres : ndarray, shape (gridⁿ, n)
        In ``meshgrid(..., indexing="xy")`` order for ``n = 2`` (first coordinate fastest).
    cell_volume : float
    """
    lo = as_array("lower", lower, ndim=1)
    hi = as_array("upper", upper, shape=(lo.size,))
    grid = check_int("grid", grid, minimum=1)
    axes = [lo[i] + (np.arange(grid) + 0.5) * (hi[i] - lo[i]) / grid for i in range(lo.size)]
    mesh = np.meshgrid(*axes, indexing="xy")
    centres = np.stack([m.ravel() for m in mesh], axis=1)
    return centres, float(np.prod((hi - lo) / grid))


PolicyMap = Callable[[torch.Tensor], torch.Tensor]
"""The closed-loop input map of :func:`scpo.systems.rollout`: states (1, S, n) -> inputs (1, S, m)."""

RowsFn = Callable[[np.ndarray], np.ndarray]
"""Constraint rows of initial states: (S, n) -> (S, R), ``≤ 0`` safe."""


def state_box(problem: ClosedLoopProblem) -> tuple[np.ndarray, np.ndarray]:
    """The bounding box of the problem's state polytope ``X = {x : Hx x ≤ hx}``.

    ``lower_i = min { x_i : x ∈ X }`` and ``upper_i = max { x_i : x ∈ X }`` (``2n`` LPs,
    :meth:`scpo.systems.LinearSystem.state_box`).

    Parameters
    ----------
    problem : ClosedLoopProblem

    Returns
    -------
    lower, upper : ndarray, shape (n,)

    Raises
    ------
    InvalidInputError
        ``X`` is unbounded (no finite box to grid).
    """
    return problem.system.state_box()


def policy_rows(problem: ClosedLoopProblem, policy: PolicyMap, *, device: Any = None) -> RowsFn:
    """The rollout rows of one policy as a function of the initial states.

    ``rows(x_0) = constraint_rows(problem, rollout(problem, policy, x_0, T))`` (the layout of
    :class:`~scpo.systems.RowLayout`: state rows ``t = 1 … T``, input rows ``t = 0 … T−1``, the
    terminal row), evaluated without gradients in float64.

    Parameters
    ----------
    problem : ClosedLoopProblem
        Dynamics, constraints, terminal set and horizon ``T``.
    policy : callable
        States (1, S, n) -> inputs (1, S, m), e.g. :func:`residual_policy_map` or
        :meth:`ResidualPolicy.batched <scpo.policies.ResidualPolicy.batched>` of one ``θ``.
    device : torch.device or str, optional
        Where the rollout runs (that of the policy; default CPU).

    Returns
    -------
    callable
        ``(S, n) ndarray -> (S, R) ndarray`` with ``R = problem.layout.n_rows``.
    """

    def rows(states: np.ndarray) -> np.ndarray:
        x0 = torch.as_tensor(np.asarray(states, dtype=np.float64), device=device)[None]
        with torch.no_grad():
            out = constraint_rows(problem, rollout(problem, policy, x0, problem.horizon))
        if out.ndim != 3 or out.shape[0] != 1:
            raise ShapeError(f"policy: expected the rows of one policy, shape (1, S, R), got {tuple(out.shape)}")
        return out[0].cpu().numpy()

    return rows


def residual_policy_map(policy: ResidualPolicy, theta: np.ndarray, *, device: Any = None) -> PolicyMap:
    """The closed-loop input map ``x ↦ π_θ(x)`` of a residual policy at one parameter vector.

    Parameters
    ----------
    policy : ResidualPolicy
        Its residual's :class:`~scpo.policies.MLPStructure` fixes the flat layout of ``θ``.
    theta : array_like, shape (d,)
        Flat residual parameters (e.g. a run's last checkpoint).
    device : torch.device or str, optional
        Device of ``policy`` (default CPU).

    Returns
    -------
    callable
        States (1, S, n) -> inputs (1, S, m), for :func:`policy_rows`.

    Raises
    ------
    ShapeError
        ``theta`` is not of shape (d,).
    """
    theta = as_array("theta", theta, shape=(policy.residual.structure.dim,))
    return policy.batched(torch.as_tensor(theta[None], device=device))


def grid_set(rows: RowsFn, lower: np.ndarray, upper: np.ndarray, *, grid: int = 100, chunk: int = 4096) -> GridSet:
    """Grid estimate of ``{x_0 : every row ≤ 0}`` on the cell centres of a box.

    A centre is inside when every entry of ``rows`` is ``≤ 0`` and finite (NaN/inf count as
    violated).

    Parameters
    ----------
    rows : callable
        Initial states (S, n) -> constraint rows (S, R), e.g. :func:`policy_rows`.
    lower, upper : array_like, shape (n,)
        The box, e.g. :func:`state_box`.
    grid : int
        Centres per axis (``≥ 2``).
    chunk : int
        States per call of ``rows`` (bounds memory).

    Returns
    -------
    GridSet
        ``gridⁿ`` centres in the order of :func:`cell_centres`.
    """
    grid = check_int("grid", grid, minimum=2)
    chunk = check_int("chunk", chunk, minimum=1)
    centres, cell = cell_centres(lower, upper, grid)
    worst = np.empty(centres.shape[0])
    for s in range(0, centres.shape[0], chunk):
        r = np.asarray(rows(centres[s : s + chunk]))
        w = np.max(r, axis=-1)
        w[~np.all(np.isfinite(r), axis=-1)] = np.inf
        worst[s : s + chunk] = w
    return GridSet(states=centres, inside=worst <= 0, cell_area=cell, worst_row=worst)


def learned_grid_set(problem: ClosedLoopProblem, policy: PolicyMap, *, grid: int = 100, chunk: int = 4096, device: Any = None) -> GridSet:
    """Grid estimate of the ``T``-step backward reachable set of ``X_f`` under a policy.

    :func:`grid_set` of :func:`policy_rows` over the :func:`state_box` of the problem.

    Parameters
    ----------
    problem : ClosedLoopProblem
        With a terminal set (otherwise the rows have no terminal row and the estimate is the
        ``T``-step admissible set).
    policy : callable
        States (1, S, n) -> inputs (1, S, m), see :func:`residual_policy_map`.
    grid : int
        Centres per axis.
    chunk : int
        States per rollout batch (bounds memory).
    device : torch.device or str, optional
        Device of the policy.

    Returns
    -------
    GridSet
    """
    lower, upper = state_box(problem)
    return grid_set(policy_rows(problem, policy, device=device), lower, upper, grid=grid, chunk=chunk)


def grid_area(P: Polytope, centres: np.ndarray, cell_area: float) -> float:
    """The grid estimator applied to a polytope: (centres in ``P``) × ``cell_area``.

    Parameters
    ----------
    P : Polytope
    centres : ndarray, shape (G, n)
        Cell centres (e.g. :attr:`GridSet.states`).
    cell_area : float
        Area (volume) of one cell.

    Returns
    -------
    float
    """
    return float(P.contains_points(centres).sum() * cell_area)


def grid_containment_claim(
    name: str, statement: str, states: np.ndarray, inside: np.ndarray, P: Polytope, *, tol: float = BOUNDARY_TOL
) -> Claim:
    """``evaluated`` claim that every grid state marked ``inside`` lies in ``P`` (up to ``tol``).

    Parameters
    ----------
    name, statement : str
        Name and statement of the claim.
    states : ndarray, shape (G, n)
        Grid states.
    inside : ndarray of bool, shape (G,)
        Which of them must lie in ``P``.
    P : Polytope
    tol : float
        Accepted unit-row residual (a distance).

    Returns
    -------
    Claim
        Holds when no chosen state has residual ``> tol`` (and every residual is finite);
        details count the states outside and list up to ten.
    """
    states = np.asarray(states)
    chosen = states[np.asarray(inside, dtype=bool)]
    res = P.residual(chosen) if chosen.size else np.zeros(0)
    out = res > tol
    return Claim(
        name,
        statement,
        Level.EVALUATED,
        bool(np.all(np.isfinite(res)) and not out.any()),
        {
            "grid_states": int(chosen.shape[0]),
            "outside": int(out.sum()),
            "worst_residual": float(res.max()) if res.size else None,
            "examples_outside": chosen[out][:10].tolist(),
        },
    )
