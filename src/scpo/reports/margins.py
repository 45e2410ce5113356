"""The reach-avoid margins figure: the worst rollout row of the final policy from each grid state.

Generic over the task's :class:`~scpo.systems.ClosedLoopProblem`: drawn for a dynamic problem
with two states (``n = 2``, not static); axes named by ``problem.state_names``, limited to the
bounding box of the state constraints ``{x : Hx x ≤ hx}`` widened by 10 %, the terminal set
``X_f = {xᵀPx ≤ γ}`` outlined when the problem has one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..plotting import ellipse_patch
from ..systems import ClosedLoopProblem

__all__ = ["MARGINS_FIGURE", "draws_margins", "margins_figure"]

MARGINS_FIGURE = "reach_avoid_margins.png"
"""File name of the figure."""


def draws_margins(problem: ClosedLoopProblem) -> bool:
    """Whether :func:`margins_figure` applies: two states and a dynamic (not static) problem.

    Parameters
    ----------
    problem : ClosedLoopProblem
    """
    return problem.n == 2 and not problem.is_static


def _limits(problem: ClosedLoopProblem, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box of the state constraints (of ``states`` where the constraints are unbounded)."""
    from ..reachability.polytope import Polytope, bounding_box

    lo, hi = bounding_box(Polytope(H=problem.Hx, h=problem.hx))
    if states.size:
        lo = np.where(np.isfinite(lo), lo, states.min(axis=0))
        hi = np.where(np.isfinite(hi), hi, states.max(axis=0))
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    return mid - 1.1 * half, mid + 1.1 * half


def margins_figure(task: Any, theta: np.ndarray) -> Figure:
    """Worst constraint row of the ``T``-step rollout of ``π_θ`` from each grid state of ``S``.

    ``worst(x_0) = max_j rows_j(rollout(π_θ, x_0))`` over the layout of
    :class:`~scpo.systems.RowLayout` (``≤ 0`` safe), evaluated with the task's rollout.

    Parameters
    ----------
    task : Task
        Its ``problem`` (see :func:`draws_margins`), ``safety_states`` (S, 2), ``rollout`` and
        ``rollout_rows``.
    theta : ndarray, shape (d,)

    Returns
    -------
    Figure
    """
    import torch

    problem = task.problem
    s = np.asarray(task.safety_states, dtype=float)
    with torch.no_grad():
        rows = task.rollout_rows(task.rollout(theta[None], s))[0].cpu().numpy()
    worst = np.max(rows, axis=-1)
    fig = Figure(figsize=(7, 5.6))
    ax = fig.subplots()
    vmax = float(np.max(np.abs(worst))) if worst.size else 1.0
    sc = ax.scatter(s[:, 0], s[:, 1], c=worst, cmap="RdYlGn_r", vmin=-vmax, vmax=vmax, s=14, marker="s")
    bad = worst > 0
    if np.any(bad):
        ax.plot(s[bad, 0], s[bad, 1], "kx", ms=6, label=f"fails reach-avoid ({int(bad.sum())})")
    if problem.has_terminal:
        ax.add_patch(ellipse_patch(problem.P, problem.gamma, fill=False, color="tab:purple", lw=2, label="X_f"))
    lo, hi = _limits(problem, s)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    fig.colorbar(sc, ax=ax, label="worst rollout row (≤ 0 safe)")
    verdict = "holds" if not np.any(bad) and np.all(np.isfinite(worst)) else "FAILS"
    what = "reach-avoid" if problem.has_terminal else "every rollout row ≤ 0"
    ax.set_title(f"final policy: {what} [evaluated] on {len(s)} grid states of S: {verdict}")
    ax.set_xlabel(problem.state_names[0])
    ax.set_ylabel(problem.state_names[1])
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
