"""Figures of a run: training curves, the double-integrator state box, the regression fit.

Built on ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot, no global state).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, Rectangle

__all__ = ["training_curves", "double_integrator_portrait", "regression_fit", "save"]


def save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG through a temporary file (never a half-written figure)."""
    from ..runs.files import atomic_write_bytes_via

    FigureCanvasAgg(fig)
    path = Path(path)
    atomic_write_bytes_via(path, lambda p: fig.savefig(p, dpi=dpi, format="png"))
    return path


def _series(records: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    out = []
    for r in records:
        v = r.get(key)
        out.append(float(v) if isinstance(v, (int, float)) else np.nan)
    return np.array(out)


def training_curves(records: Sequence[dict[str, Any]], *, title: str = "") -> Figure:
    """Objective, evaluated vs predicted max constraint, ``L`` range and accepted/rejected steps.

    With no records (a run of 0 iterations) the panels are drawn empty.
    """
    it = _series(records, "iteration")
    acc = np.array([bool(r.get("accepted")) for r in records], dtype=bool)
    fig = Figure(figsize=(11, 7))
    ax = fig.subplots(2, 2)
    ax[0, 0].plot(it, _series(records, "objective"), color="tab:blue")
    ax[0, 0].set_yscale("log")
    ax[0, 0].set_title("objective f(θ_t)")
    ax[0, 0].set_xlabel("iteration")
    mc = _series(records, "max_constraint")
    pmc = _series(records, "predicted_max_constraint")
    ax[0, 1].plot(it, mc, label="evaluated max g(θ_t)", color="tab:green")
    ax[0, 1].plot(it[acc], pmc[acc], ".", ms=2, label="predicted by (★) at the accepted step", color="tab:orange")
    ax[0, 1].axhline(0.0, color="k", lw=1)
    viol = acc & (mc > 0)
    if viol.any():
        ax[0, 1].plot(it[viol], mc[viol], "rx", label="accepted iterate violating")
    ax[0, 1].set_yscale("symlog", linthresh=1e-4)
    ax[0, 1].set_title("constraints (≤ 0 is safe)")
    ax[0, 1].legend(fontsize=7)
    ax[1, 0].plot(it, _series(records, "L_min"), label="L min", color="tab:purple")
    ax[1, 0].plot(it, _series(records, "L_median"), label="L median", color="tab:gray")
    ax[1, 0].plot(it, _series(records, "L_max"), label="L max", color="tab:red")
    ax[1, 0].set_yscale("log")
    ax[1, 0].set_title("smoothness constants L (per row)")
    ax[1, 0].legend(fontsize=7)
    ax[1, 1].plot(it, np.cumsum(acc), label="accepted", color="tab:green")
    ax[1, 1].plot(it, np.cumsum(~acc), label="rejected (θ unchanged)", color="tab:red")
    ax[1, 1].plot(it, np.cumsum(_series(records, "rejected_tries")), label="rejected tries (cumulative)", color="tab:orange", ls="--")
    ax[1, 1].set_title("steps")
    ax[1, 1].legend(fontsize=7)
    for a in ax.ravel():
        a.grid(alpha=0.3)
    fig.suptitle(title or "SCPO training")
    fig.tight_layout()
    return fig


def _ellipse(P: np.ndarray, gamma: float, **kw) -> Ellipse:
    lam, V = np.linalg.eigh(P)
    widths = 2 * np.sqrt(gamma / lam)
    angle = np.degrees(np.arctan2(V[1, 0], V[0, 0]))
    return Ellipse((0, 0), widths[0], widths[1], angle=angle, **kw)


def double_integrator_portrait(
    task: Any,
    trajectories: dict[str, np.ndarray],
    *,
    title: str = "",
    learned_set: np.ndarray | None = None,
) -> Figure:
    """The state box with the grid, ``S``, ``X_f`` and closed-loop trajectories.

    Parameters
    ----------
    task : DoubleIntegratorTask
    trajectories : dict of label -> ndarray, shape (k, T+1, 2)
    learned_set : ndarray of bool, shape (grid²,), optional
        Grid states certified for the learned policy (drawn as a second marker).
    """
    cfg = task.config
    fig = Figure(figsize=(7, 6.2))
    ax = fig.subplots()
    g = task.grid_states
    ax.plot(g[:, 0], g[:, 1], ".", ms=1.5, color="0.75", label="grid")
    s = task.safety_states
    ax.plot(s[:, 0], s[:, 1], ".", ms=2.5, color="tab:blue", alpha=0.6, label=f"S: backup reaches X_f in T={cfg.horizon} ({len(s)} states)")
    if learned_set is not None:
        ls = g[learned_set]
        ax.plot(ls[:, 0], ls[:, 1], "s", ms=2, mfc="none", color="tab:green", alpha=0.5, label=f"learned policy reaches X_f ({len(ls)})")
    ax.add_patch(_ellipse(task.P, task.gamma, fill=False, color="tab:purple", lw=2, label="X_f"))
    ax.add_patch(Rectangle((-cfg.p_max, -cfg.v_max), 2 * cfg.p_max, 2 * cfg.v_max, fill=False, color="k", lw=1.5, label="state box X"))
    colors = {"backup": "tab:blue", "expert": "tab:red", "final policy": "tab:green", "plain imitation": "tab:orange"}
    for label, traj in trajectories.items():
        c = colors.get(label, None)
        for k, tr in enumerate(traj):
            ax.plot(tr[:, 0], tr[:, 1], "-", color=c, lw=1.3, alpha=0.9, label=label if k == 0 else None)
            ax.plot(tr[0, 0], tr[0, 1], "o", color=c, ms=3)
    ax.axvline(cfg.expert_target, color="tab:red", ls=":", lw=1, label=f"expert target p* = {cfg.expert_target}")
    ax.set_xlim(-1.3 * cfg.p_max, max(1.3 * cfg.p_max, cfg.expert_target + 0.2))
    ax.set_ylim(-1.4 * cfg.v_max, 1.4 * cfg.v_max)
    ax.set_xlabel("position p")
    ax.set_ylabel("velocity v")
    ax.set_title(title or "double integrator")
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def regression_fit(task: Any, thetas: dict[str, np.ndarray], *, title: str = "") -> Figure:
    """``f_θ(x)`` for the given parameter vectors against the target and the band ``|f| ≤ bound``."""
    cfg = task.config
    x = np.linspace(cfg.x_min, cfg.x_max, 800)
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    ax.plot(x, cfg.amplitude * np.sin(cfg.frequency * x), "k--", lw=1, label="target (harmful outside the band)")
    ax.axhspan(-cfg.bound, cfg.bound, color="tab:green", alpha=0.08, label="safe band |f| ≤ bound")
    for label, th in thetas.items():
        ax.plot(x, task.predict(th[None], x)[0], lw=1.8, label=label)
    ax.set_xlabel("x")
    ax.set_ylabel("f_θ(x)")
    ax.set_title(title or "regression with harmful supervision")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
