"""Figures of reachable sets (``matplotlib.figure.Figure`` with the Agg canvas, no pyplot): the 2-D
sets themselves, and 2-D projections and sections of ``n``-D sets (:func:`projections_figure`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as PolygonPatch

from .._validate import as_array
from ..errors import InvalidInputError, ShapeError
from .learned import GridSet
from .polytope import Polytope, bounding_box, is_empty, project, slice_at, vertices

if TYPE_CHECKING:
    from .report import ReachReport

__all__ = ["ellipse_points", "draw_polytope", "reach_figure", "report_figure", "projections_figure", "coordinate_pairs"]


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


def coordinate_pairs(n: int) -> list[tuple[int, int]]:
    """The coordinate pairs a projections figure shows: all ``n(n−1)/2`` for ``n ≤ 4``, else ``(i, i+1)``.

    Parameters
    ----------
    n : int
        ``≥ 2``.

    Returns
    -------
    list of (int, int)
    """
    if n < 2:
        raise InvalidInputError(f"n: expected at least 2 coordinates to pair, got {n}")
    if n <= 4:
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    return [(i, i + 1) for i in range(n - 1)]


def projections_figure(
    sets: Sequence[tuple[str, Polytope]],
    *,
    state_box: Polytope,
    points: np.ndarray | None = None,
    points_label: str = "",
    at: np.ndarray | None = None,
    pairs: Sequence[tuple[int, int]] | None = None,
    state_names: Sequence[str] | None = None,
    title: str = "",
    overlay: Callable[[Any, int, int], None] | None = None,
) -> Figure:
    """2-D projections (filled) and sections through ``at`` (dashed outline) of ``n``-D polytopes.

    For a pair ``(i, j)`` the projection is ``{(x_i, x_j) : x ∈ R}``
    (:func:`~scpo.reachability.polytope.project`) and the section is ``{(x_i, x_j) : x ∈ R,
    x_k = at_k for k ∉ {i, j}}`` (:func:`~scpo.reachability.polytope.slice_at`); the section lies
    inside the projection.

    Parameters
    ----------
    sets : sequence of (str, Polytope)
        Labelled bounded polytopes in ``Rⁿ``, drawn in order (the first one lowest: put the largest first).
    state_box : Polytope
        ``X``: its projections are outlined and fix the axes.
    points : ndarray, shape (S, n), optional
        States to scatter (projected), e.g. the task's ``S``.
    points_label : str
    at : ndarray, shape (n,), optional
        The point the sections go through (default the origin, the backup's equilibrium).
    pairs : sequence of (int, int), optional
        Default :func:`coordinate_pairs`.
    state_names : sequence of str, optional
        Axis labels (default ``x0 … x{n−1}``).
    title : str
    overlay : callable, optional
        Called as ``overlay(ax, i, j)`` on every panel before the legend is made (labelled
        artists it adds join the legend).

    Returns
    -------
    Figure
        One panel per pair.
    """
    if not sets:
        raise InvalidInputError("sets: expected at least one polytope to draw, got none")
    n = state_box.dim
    for label, P in sets:
        if P.dim != n:
            raise ShapeError(f"sets: {label!r} has dimension {P.dim}, expected {n} (that of state_box)")
    pairs = coordinate_pairs(n) if pairs is None else [(int(i), int(j)) for i, j in pairs]
    at = np.zeros(n) if at is None else as_array("at", at, shape=(n,))
    names = list(state_names) if state_names is not None else [f"x{k}" for k in range(n)]
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig = Figure(figsize=(4.6 * cols, 4.2 * rows + 0.9))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    cmap = colormaps["tab10"]
    for ax, (i, j) in zip(axes, pairs):
        draw_polytope(ax, project(state_box, [i, j]), fill=False, edgecolor="k", lw=1.2, label="X (projection)")
        for c, (label, P) in enumerate(sets):
            colour = cmap(c % 10)
            if is_empty(P):
                continue
            draw_polytope(ax, project(P, [i, j]), facecolor=(*colour[:3], 0.25), edgecolor=colour, lw=1.0, label=f"{label}: projection")
            section = slice_at(P, [i, j], at)
            if not is_empty(section):
                draw_polytope(ax, section, fill=False, edgecolor=colour, lw=1.2, ls="--", label=f"{label}: section")
        if points is not None and len(points):
            ax.plot(points[:, i], points[:, j], ".", ms=1.5, color="0.35", alpha=0.6, label=points_label or "points")
        if overlay is not None:
            overlay(ax, i, j)
        lo, hi = bounding_box(project(state_box, [i, j]))
        pad = 0.08 * (hi - lo)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j])
        ax.grid(alpha=0.3)
    for ax in axes[len(pairs):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7, frameon=False)
    others = ", ".join(f"{names[k]} = {at[k]:g}" for k in range(n))
    fig.suptitle((title or "projections and sections") + f"\nfilled: projections; dashed: sections through ({others}) in the other coordinates",
                 fontsize=10)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.9, bottom=0.1 + 0.04 * (len(labels) // 4), wspace=0.28, hspace=0.3)
    return fig


def _equal_sets(P: Polytope, Q: Polytope) -> bool:
    """Whether ``P = Q`` by LP containment both ways (:func:`scpo.reachability.polytope.contains`)."""
    from .polytope import contains

    return P.dim == Q.dim and contains(P, Q) and contains(Q, P)


def report_figure(report: ReachReport, *, title: str = "") -> Figure:
    """The figure of a report.

    A 2-D report with the controllable sets: :func:`reach_figure` (the sets of ``T_in`` for
    ``k = 0 … N``, ``O_∞``, ``C_∞``, the backup's ``R_T(T_out)``, the grid safety region and, if
    any, the learned grid set). Otherwise (``n ≥ 3``, or the backup's sets only):
    :func:`projections_figure` of the controllable ``R_N(T_in)`` (when computed), ``O_∞``, the
    backup's ``R_N(T_in)`` and ``T_in``, with the states of ``S``.

    Parameters
    ----------
    report : ReachReport
    title : str

    Returns
    -------
    Figure
    """
    problem = report.problem
    fams, N, T = report.families, report.horizon, report.task_horizon
    if problem.n != 2 or "controlled_inner" not in fams:
        sets = [(f"controllable R_{N}(T_in)", fams["controlled_inner"].sets[N])] if "controlled_inner" in fams else []
        sets += [("O_∞ of the backup", report.mpi.polytope), (f"backup R_{N}(T_in)", fams["backup_inner"].sets[N]),
                 ("T_in ⊆ X_f", fams["backup_inner"].sets[0])]
        return projections_figure(
            sets, state_box=Polytope(H=problem.Hx, h=problem.hx), points=report.safety_states,
            points_label="task's S", state_names=problem.state_names, title=title,
        )
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
