"""Figures of 2-D reachable sets (``matplotlib.figure.Figure`` with the Agg canvas, no pyplot)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as PolygonPatch

from ..errors import ShapeError
from .learned import GridSet
from .polytope import Polytope, bounding_box, vertices

if TYPE_CHECKING:
    from .report import ReachReport

__all__ = ["ellipse_points", "draw_polytope", "reach_figure", "report_figure"]


def ellipse_points(P: np.ndarray, gamma: float, count: int = 400) -> np.ndarray:
    """Points ``x = √γ L⁻ᵀ (cos t, sin t)`` on the boundary of ``{xᵀPx ≤ γ}`` (``P = LLᵀ``).

    Parameters
    ----------
    P : ndarray, shape (2, 2)
        Symmetric positive definite.
    gamma : float
        ``γ > 0``.
    count : int
        Number of points.

    Returns
    -------
    ndarray, shape (count, 2)
    """
    L = np.linalg.cholesky(np.asarray(P, dtype=float))
    t = np.linspace(0, 2 * np.pi, count)
    Z = np.stack([np.cos(t), np.sin(t)])
    return (np.sqrt(gamma) * np.linalg.solve(L.T, Z)).T


def draw_polytope(ax: Any, P: Polytope, **kw: Any) -> None:
    """Add a bounded 2-D polytope to ``ax`` as a polygon patch (nothing if empty).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    P : Polytope
        Dimension 2, bounded.
    **kw
        Patch properties (``facecolor``, ``edgecolor``, ``label`` …).
    """
    if P.dim != 2:
        raise ShapeError(f"P: expected a 2-D polytope to draw, got dimension {P.dim}")
    V = vertices(P)
    if V.shape[0] >= 3:
        ax.add_patch(PolygonPatch(V, closed=True, **kw))
    elif V.shape[0] > 0:
        ax.plot(V[:, 0], V[:, 1], "-", color=kw.get("edgecolor", "k"), label=kw.get("label"))


def reach_figure(
    *,
    backup_sets: Sequence[Polytope],
    controllable_sets: Sequence[Polytope],
    state_box: Polytope,
    P: np.ndarray,
    gamma: float,
    mpi: Polytope | None = None,
    control_invariant: Polytope | None = None,
    backup_outer: Polytope | None = None,
    learned: GridSet | None = None,
    safety_states: np.ndarray | None = None,
    task_horizon: int | None = None,
    state_names: Sequence[str] = ("x0", "x1"),
    title: str = "",
) -> Figure:
    """Nested backup sets (left) and controllable sets (right) with ``X_f`` and the state box.

    Parameters
    ----------
    backup_sets, controllable_sets : sequence of Polytope
        ``R_0 … R_N`` (2-D), drawn from the largest down, shaded by ``k``.
    state_box : Polytope
    P, gamma : ``X_f = {xᵀPx ≤ γ}``
    mpi, control_invariant : Polytope, optional
        Outlined.
    backup_outer : Polytope, optional
        The backup's ``R_T`` of the outer target (dashed).
    learned : GridSet, optional
        The learned policy's grid set (green dots) on both panels.
    safety_states : ndarray, shape (S, 2), optional
        The task's grid safety region (grey dots, left panel).
    task_horizon : int, optional
        ``T`` (legend of ``backup_outer``).
    state_names : sequence of two str
        Axis labels.
    title : str

    Returns
    -------
    Figure
    """
    fig = Figure(figsize=(13, 7.6))
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    ell = ellipse_points(P, gamma)
    for ax, sets, name, cmap in (
        (axes[0], backup_sets, "backup (u = Kx)", "Blues"),
        (axes[1], controllable_sets, "controllable (any u ∈ U)", "Oranges"),
    ):
        N = len(sets) - 1
        cm = colormaps[cmap]
        for k in range(N, -1, -1):
            shade = 0.08 + 0.55 * (1 - k / max(N, 1))
            draw_polytope(
                ax, sets[k], facecolor=cm(shade), edgecolor=cm(min(1.0, shade + 0.3)), lw=0.5,
                label=(f"R_k, k = 0…{N} (darker: smaller k)" if k == N else None),
            )
        draw_polytope(ax, state_box, fill=False, edgecolor="k", lw=1.5, label="state box X")
        ax.plot(ell[:, 0], ell[:, 1], color="tab:purple", lw=1.8, label="X_f = {xᵀPx ≤ γ}")
        if learned is not None and learned.states.shape[1] == 2:
            g = int(round(np.sqrt(learned.states.shape[0])))
            if g * g == learned.states.shape[0] and learned.inside.any() and not learned.inside.all():
                X = learned.states[:, 0].reshape(g, g)
                Y = learned.states[:, 1].reshape(g, g)
                ax.contour(X, Y, learned.inside.reshape(g, g).astype(float), levels=[0.5], colors="tab:green", linewidths=2.0)
            ax.plot([], [], color="tab:green", lw=2.0,
                    label=f"learned policy reaches X_f in T (grid boundary, {int(learned.inside.sum())} of {learned.states.shape[0]} cells)")
        ax.set_title(name)
        ax.set_xlabel(state_names[0])
        ax.grid(alpha=0.3)
        ax.set_aspect("equal", adjustable="box")
    N_b, N_c = len(backup_sets) - 1, len(controllable_sets) - 1
    mpi_same = mpi is not None and _equal_sets(mpi, backup_sets[-1])
    cinv_same = control_invariant is not None and _equal_sets(control_invariant, controllable_sets[-1])
    if mpi is not None:
        draw_polytope(axes[0], mpi, fill=False, edgecolor="tab:red", lw=1.5, ls="--",
                      label=f"O_∞ = R_{N_b} (equal sets)" if mpi_same else "O_∞ (maximal positively invariant)")
    if backup_outer is not None:
        draw_polytope(axes[0], backup_outer, fill=False, edgecolor="navy", lw=1.0, ls=":",
                      label=f"R_T of T_out ⊇ X_f (T = {task_horizon})")
    if safety_states is not None and len(safety_states):
        axes[0].plot(safety_states[:, 0], safety_states[:, 1], ".", ms=1.2, color="0.3", alpha=0.6, label="task's grid S")
    if control_invariant is not None:
        draw_polytope(axes[1], control_invariant, fill=False, edgecolor="tab:red", lw=1.5, ls="--",
                      label=f"C_∞ = C_{N_c} (equal sets)" if cinv_same else "C_∞ (maximal control invariant)")
    if mpi is not None:
        draw_polytope(axes[1], mpi, fill=False, edgecolor="tab:blue", lw=1.2, ls="-.", label="backup's O_∞")
    axes[0].set_ylabel(state_names[1])
    lo, hi = bounding_box(state_box)
    lim = 1.15 * float(np.max(np.abs(np.concatenate([lo, hi]))))
    axes[0].set_xlim(-lim, lim)
    axes[0].set_ylim(-lim, lim)
    inside = learned is None  # few entries: the legend fits inside the axes (the state box leaves room at its corners)
    for ax in axes:
        if inside:
            ax.legend(fontsize=7, loc="lower left", framealpha=0.85)
        else:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    fig.suptitle(title or "backward reachable sets")
    # explicit margins: legends below the axes sit where no layout engine reserves room for them
    fig.subplots_adjust(left=0.06, right=0.98, top=0.92, bottom=0.08 if inside else 0.2, wspace=0.12)
    return fig


def _equal_sets(P: Polytope, Q: Polytope) -> bool:
    """Whether ``P = Q`` by LP containment both ways (:func:`scpo.reachability.polytope.contains`)."""
    from .polytope import contains

    return P.dim == Q.dim and contains(P, Q) and contains(Q, P)


def report_figure(report: ReachReport, *, title: str = "") -> Figure:
    """:func:`reach_figure` of a 2-D report: the sets of ``T_in`` for ``k = 0 … N``, ``O_∞``, ``C_∞``,
    the backup's ``R_T(T_out)``, the grid safety region and (if any) the learned grid set.

    Parameters
    ----------
    report : ReachReport
        Of a problem with ``n = 2`` states.
    title : str

    Returns
    -------
    Figure

    Raises
    ------
    ShapeError
        The problem is not 2-D.
    """
    problem = report.problem
    if problem.n != 2:
        raise ShapeError(f"report: expected a problem with 2 states to draw, got n = {problem.n}")
    fams, N, T = report.families, report.horizon, report.task_horizon
    return reach_figure(
        backup_sets=fams["backup_inner"].sets[: N + 1],
        controllable_sets=fams["controlled_inner"].sets[: N + 1],
        state_box=Polytope(H=problem.Hx, h=problem.hx),
        P=problem.P,
        gamma=problem.gamma,
        mpi=report.mpi.polytope,
        control_invariant=report.control_invariant.polytope,
        backup_outer=fams["backup_outer"].sets[T],
        learned=report.learned,
        safety_states=report.safety_states,
        task_horizon=T,
        state_names=problem.state_names,
        title=title,
    )
