"""The region certificate as a file: its JSON record, its reader and its figure.

A run's region certificate of iteration ``K`` is the JSON object written to
``RUN/certificates/region_iter_KKKKKK.json`` (the name is :meth:`scpo.runs.RunPaths.region_certificate`'s)
with ``"kind": "scpo.region_certificate"``, the iteration, the SHA-256 of ``θ_K``, the claims at
level ``sound``, the summary, the failed boxes with their reasons and the certified boxes; the
figure (:func:`region_figure`) goes to :meth:`scpo.runs.RunPaths.region_figure`. Writing them is
the caller's (the ``scpo certify`` command); this module only builds and reads the content.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import UnsupportedError
from ..systems import ClosedLoopProblem
from .region import RegionResult
from .region_cover import state_box

__all__ = ["REGION_FILE_KIND", "MAX_CERTIFIED_LISTED", "region_record", "load_region_record", "region_figure"]

logger = logging.getLogger(__name__)

REGION_FILE_KIND = "scpo.region_certificate"
"""The ``kind`` of a region-certificate file."""
MAX_CERTIFIED_LISTED = 20_000
"""Above this many certified boxes the file lists none (the figure shows them)."""


def region_record(result: RegionResult, *, schema_version: int, run: str, task: str, iteration: int, theta_sha256: str,
                  min_width: float) -> dict[str, Any]:
    """The JSON content of a region-certificate file.

    Parameters
    ----------
    result : RegionResult
    schema_version : int
        The run directory's schema version.
    run : str
        The run directory.
    task : str
        The run's task name (for the reader; never used to switch behaviour).
    iteration : int
    theta_sha256 : str
        Hash of the certified parameters.
    min_width : float
        The refinement's minimum box width.

    Returns
    -------
    dict
        ``schema_version, kind, scpo_version, created, run, task, iteration, theta_sha256, level,
        horizon, min_width`` and :meth:`RegionResult.to_dict`'s keys.
    """
    record = {
        "schema_version": schema_version,
        "kind": REGION_FILE_KIND,
        "scpo_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "run": str(run),
        "task": task,
        "iteration": int(iteration),
        "theta_sha256": theta_sha256,
        "level": "sound",
        "horizon": result.summary["horizon"],
        "min_width": min_width,
        **result.to_dict(),
    }
    n_cert = len(result.certified_lower)
    if n_cert > MAX_CERTIFIED_LISTED:
        record["certified_boxes"] = {"omitted": f"{n_cert} boxes (more than {MAX_CERTIFIED_LISTED}); see the figure"}
    return record


def load_region_record(path: str | Path) -> dict[str, Any] | None:
    """Read one region-certificate file; ``None`` (with a warning in the log) when it is not one.

    Files that are not readable JSON objects of kind :data:`REGION_FILE_KIND` are skipped, never
    half-read.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict or None
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("%s: unreadable region certificate (%s); skipped", p, exc)
        return None
    if not isinstance(data, dict) or data.get("kind") != REGION_FILE_KIND:
        logger.warning("%s: not an scpo region certificate; skipped", p)
        return None
    return data


def region_figure(problem: ClosedLoopProblem, result: RegionResult, *, title: str = ""):
    """Certified (green) and failed boxes (red: violated, orange: inconclusive) over the state box, with ``X_f``.

    Parameters
    ----------
    problem : ClosedLoopProblem
        Two states, a terminal set; the state names label the axes.
    result : RegionResult
    title : str
        Default: the horizon and minimum width.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    UnsupportedError
        A problem with other than two states.
    """
    if problem.n != 2:
        raise UnsupportedError(f"problem: the region figure draws two states, this problem has {problem.n}")
    from matplotlib.collections import PatchCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Ellipse, Rectangle

    from ..plotting import ellipse_patch

    fig = Figure(figsize=(7.2, 6.4))
    ax = fig.subplots()

    def boxes(lo, hi, **kw):
        rects = [Rectangle((a[0], a[1]), b[0] - a[0], b[1] - a[1]) for a, b in zip(lo, hi)]
        if rects:
            ax.add_collection(PatchCollection(rects, **kw))

    boxes(result.certified_lower, result.certified_upper, facecolor="tab:green", edgecolor="darkgreen", linewidth=0.15, alpha=0.45)
    violated = np.array([f["verdict"] == "violated" for f in result.failed], dtype=bool)
    if len(result.failed):
        boxes(result.failed_lower[~violated], result.failed_upper[~violated], facecolor="tab:orange", edgecolor="none", alpha=0.9)
        boxes(result.failed_lower[violated], result.failed_upper[violated], facecolor="tab:red", edgecolor="none", alpha=0.9)
    ax.add_patch(ellipse_patch(problem.P, problem.gamma, fill=False, color="tab:purple", lw=1.8))
    box = result.summary.get("region", {}).get("state_box")
    xlo, xhi = box if box is not None else [a.tolist() for a in state_box(problem)]
    ax.add_patch(Rectangle(tuple(xlo), xhi[0] - xlo[0], xhi[1] - xlo[1], fill=False, color="k", lw=1.2))
    s = result.summary
    handles = [
        Rectangle((0, 0), 1, 1, facecolor="tab:green", alpha=0.45, label=f"certified ({s['certified_boxes']} boxes, {100 * s['certified_fraction']:.2f}% of R)"),
        Rectangle((0, 0), 1, 1, facecolor="tab:red", label=f"failed, violation found ({s['failed_violated']})"),
        Rectangle((0, 0), 1, 1, facecolor="tab:orange", label=f"failed, inconclusive ({s['failed_inconclusive']})"),
        Ellipse((0, 0), 1, 1, fill=False, color="tab:purple", label="X_f"),
    ]
    ax.legend(handles=handles, fontsize=7, loc="lower left")
    pad = 0.1 * (xhi[0] - xlo[0])
    ax.set_xlim(xlo[0] - pad, xhi[0] + pad)
    ax.set_ylim(xlo[1] - pad, xhi[1] + pad)
    ax.set_xlabel(problem.state_names[0])
    ax.set_ylabel(problem.state_names[1])
    ax.set_title(title or f"region certificate (sound), T = {s['horizon']}, min width {s['min_width']:g}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
