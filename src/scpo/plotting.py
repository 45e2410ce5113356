"""Figure helpers shared by every layer: atomic PNG output, training curves, ellipses.

Built on ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot, no global state).
Task-specific figures live with their task.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from ._io import atomic_write_bytes_via

__all__ = ["save", "training_curves", "ellipse_patch", "series"]


def save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG through a temporary file (never a half-written figure).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or Path
    dpi : int

    Returns
    -------
    Path
        ``path``.
    """
    FigureCanvasAgg(fig)
    path = Path(path)
    atomic_write_bytes_via(path, lambda p: fig.savefig(p, dpi=dpi, format="png"))
    return path


def series(records: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    """The numeric values of ``key`` across ``records`` (NaN where absent or not a number).

    Parameters
    ----------
    records : sequence of dict
    key : str

    Returns
    -------
    ndarray, shape (len(records),)
    """
    out = []
    for r in records:
        v = r.get(key)
        out.append(float(v) if isinstance(v, (int, float)) else np.nan)
    return np.array(out)


def training_curves(records: Sequence[dict[str, Any]], *, title: str = "") -> Figure:
    """Objective, evaluated vs predicted max constraint, ``L`` range and accepted/rejected steps.

    With no records (a run of 0 iterations) the panels are drawn empty.

    Parameters
    ----------
    records : sequence of dict
        Certificate records of a run.
    title : str

    Returns
    -------
    Figure
    """
    it = series(records, "iteration")
    acc = np.array([bool(r.get("accepted")) for r in records], dtype=bool)
    fig = Figure(figsize=(11, 7))
    ax = fig.subplots(2, 2)
    ax[0, 0].plot(it, series(records, "objective"), color="tab:blue")
    ax[0, 0].set_yscale("log")
    ax[0, 0].set_title("objective f(θ_t)")
    ax[0, 0].set_xlabel("iteration")
    mc = series(records, "max_constraint")
    pmc = series(records, "predicted_max_constraint")
    ax[0, 1].plot(it, mc, label="evaluated max g(θ_t)", color="tab:green")
    ax[0, 1].plot(it[acc], pmc[acc], ".", ms=2, label="predicted by (★) at the accepted step", color="tab:orange")
    ax[0, 1].axhline(0.0, color="k", lw=1)
    viol = acc & (mc > 0)
    if viol.any():
        ax[0, 1].plot(it[viol], mc[viol], "rx", label="accepted iterate violating")
    ax[0, 1].set_yscale("symlog", linthresh=1e-4)
    ax[0, 1].set_title("constraints (≤ 0 is safe)")
    ax[0, 1].legend(fontsize=7)
    ax[1, 0].plot(it, series(records, "L_min"), label="L min", color="tab:purple")
    ax[1, 0].plot(it, series(records, "L_median"), label="L median", color="tab:gray")
    ax[1, 0].plot(it, series(records, "L_max"), label="L max", color="tab:red")
    ax[1, 0].set_yscale("log")
    ax[1, 0].set_title("smoothness constants L (per row)")
    ax[1, 0].legend(fontsize=7)
    ax[1, 1].plot(it, np.cumsum(acc), label="accepted", color="tab:green")
    ax[1, 1].plot(it, np.cumsum(~acc), label="rejected (θ unchanged)", color="tab:red")
    ax[1, 1].plot(it, np.cumsum(series(records, "rejected_tries")), label="rejected tries (cumulative)", color="tab:orange", ls="--")
    ax[1, 1].set_title("steps")
    ax[1, 1].legend(fontsize=7)
    for a in ax.ravel():
        a.grid(alpha=0.3)
    fig.suptitle(title or "SCPO training")
    fig.tight_layout()
    return fig


def ellipse_patch(P: np.ndarray, gamma: float, **kw: Any) -> Ellipse:
    """The 2-D ellipse ``{xᵀPx ≤ γ}`` as a matplotlib patch.

    Parameters
    ----------
    P : ndarray, shape (2, 2)
        Symmetric positive definite.
    gamma : float
    **kw
        Patch properties.

    Returns
    -------
    Ellipse
    """
    lam, V = np.linalg.eigh(P)
    widths = 2 * np.sqrt(gamma / lam)
    angle = np.degrees(np.arctan2(V[1, 0], V[0, 0]))
    return Ellipse((0, 0), widths[0], widths[1], angle=angle, **kw)
