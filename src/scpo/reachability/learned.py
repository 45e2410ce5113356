"""The learned closed loop's backward reachable set of ``X_f``, estimated on a grid (``evaluated``).

``π_θ(x) = Kx + φ_θ(x)`` is nonlinear, so its ``T``-step backward reachable set
``R_T^θ(X_f) = {x₀ : x_t ∈ X, π_θ(x_t) ∈ U (t < T), x_T ∈ X_f}`` (with the task's rows: the
state rows for ``t = 1 … T``, the input rows for ``t = 0 … T−1``, the terminal row
``x_Tᵀ P x_T ≤ γ``) is not computed exactly. It is estimated on the centres of a
``grid × grid`` partition of the state box: a centre is in the estimate when every rollout row
is ``≤ 0``; the area estimate is (number of such centres) × (cell area). The same estimator
applied to an exact polytope shows the size of the discretisation error next to its exact
area.

The comparison this module reports measures safe adaptation beyond the backup: the learned
set against the backup's exact ``T``-step set (inner and outer polytopic brackets of ``X_f``)
and the ``T``-step controllable set (the upper limit that any policy can reach).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._validate import as_array, check_int
from ..evidence import Claim, Level
from .polytope import Polytope

__all__ = ["GridSet", "cell_centres", "learned_grid_set", "grid_area", "grid_containment_claim"]


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


def learned_grid_set(task: Any, theta: np.ndarray, *, grid: int = 100, chunk: int = 4096) -> GridSet:
    """Grid estimate of the ``T``-step backward reachable set of ``X_f`` under ``π_θ``.

    Parameters
    ----------
    task : DoubleIntegratorTask
        Provides ``rollout(thetas, states)`` and ``rollout_rows(ro)`` (rows ``≤ 0`` safe) and the
        state box in ``config``.
    theta : ndarray, shape (d,)
    grid : int
        Centres per axis.
    chunk : int
        States per rollout batch (bounds memory).

    Returns
    -------
    GridSet
    """
    theta = as_array("theta", theta, shape=(task.dim,))
    grid = check_int("grid", grid, minimum=2)
    cfg = task.config
    centres, cell = cell_centres(np.array([-cfg.p_max, -cfg.v_max]), np.array([cfg.p_max, cfg.v_max]), grid)
    worst = np.empty(centres.shape[0])
    with torch.no_grad():
        for s in range(0, centres.shape[0], chunk):
            ro = task.rollout(theta[None], centres[s : s + chunk])
            rows = task.rollout_rows(ro)[0].numpy()
            w = np.max(rows, axis=-1)
            w[~np.all(np.isfinite(rows), axis=-1)] = np.inf
            worst[s : s + chunk] = w
    return GridSet(states=centres, inside=worst <= 0, cell_area=cell, worst_row=worst)


def grid_area(P: Polytope, centres: np.ndarray, cell_area: float) -> float:
    """The grid estimator applied to a polytope: (centres in ``P``) × ``cell_area``."""
    return float(P.contains_points(centres).sum() * cell_area)


def grid_containment_claim(name: str, statement: str, states: np.ndarray, inside: np.ndarray, P: Polytope, *, tol: float = 1e-9) -> Claim:
    """``evaluated`` claim that every grid state marked ``inside`` lies in ``P`` (up to ``tol``)."""
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
