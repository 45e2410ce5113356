"""``scpo certify RUN``: the region certificate of a saved iterate, written into the run directory.

Writes ``RUN/certificates/region_iter_XXXXXX.json`` (the claims at level ``sound``, the summary,
the failed boxes with their reasons and the certified boxes) and
``RUN/figures/region_iter_XXXXXX.png`` (certified and failed boxes over the state box).

Exit codes: 0 every box of the region certified, 1 some box failed, 2 bad input.
"""

from __future__ import annotations

import datetime as _dt
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._validate import check_int, check_positive
from ..errors import InvalidInputError, UnsupportedError

__all__ = [
    "REGION_FILE_KIND",
    "certify_command",
    "read_region_certificates",
    "region_certificate_path",
    "region_figure",
    "stderr_progress",
]

REGION_FILE_KIND = "scpo.region_certificate"
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
_MAX_CERTIFIED_LISTED = 20_000


def stderr_progress(info: dict[str, Any]) -> None:
    """One progress line per refinement round, on standard error."""
    print(
        f"round {info['round']:>2}: certified {100 * info['certified_fraction']:7.3f}% of R, "
        f"{info['pending']:>6} boxes to split, {info['failed']:>5} failed, {info['boxes_bounded']:>7} bounded, "
        f"{info['elapsed_s']:6.1f} s",
        file=sys.stderr,
        flush=True,
    )


def region_certificate_path(run_root: Path, iteration: int) -> Path:
    """``RUN/certificates/region_iter_XXXXXX.json``."""
    return Path(run_root) / "certificates" / f"region_iter_{iteration:06d}.json"


def read_region_certificates(run_root: Path) -> dict[int, dict[str, Any]]:
    """Every region certificate written into a run, by iteration (for reports and audits).

    Files that are not readable JSON of kind :data:`REGION_FILE_KIND` are skipped with a warning
    in the log, never half-read.

    Returns
    -------
    dict of int -> dict
        The stored records (``claims``, ``summary``, ``failed_boxes``, ``theta_sha256``, …).
    """
    import json
    import logging
    import re

    log = logging.getLogger(__name__)
    out: dict[int, dict[str, Any]] = {}
    folder = Path(run_root) / "certificates"
    if not folder.is_dir():
        return out
    for p in sorted(folder.glob("region_iter_*.json")):
        m = re.fullmatch(r"region_iter_(\d{6,})\.json", p.name)
        if not m:
            continue
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable region certificate (%s); skipped", p, exc)
            continue
        if not isinstance(data, dict) or data.get("kind") != REGION_FILE_KIND:
            log.warning("%s: not an scpo region certificate; skipped", p)
            continue
        out[int(m.group(1))] = data
    return out


def region_figure(task: Any, result: Any, *, title: str = ""):
    """Certified (green) and failed boxes (red: violated, orange: inconclusive) over the state box.

    Parameters
    ----------
    task : DoubleIntegratorTask
    result : RegionResult

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.collections import PatchCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Ellipse, Rectangle

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
    lam, V = np.linalg.eigh(task.P)
    w = 2 * np.sqrt(task.gamma / lam)
    ax.add_patch(Ellipse((0, 0), w[0], w[1], angle=float(np.degrees(np.arctan2(V[1, 0], V[0, 0]))), fill=False,
                         color="tab:purple", lw=1.8))
    xlo, xhi = result.summary["region"].get("state_box", [[-1, -1], [1, 1]])
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
    names = getattr(task, "name", "") == "double-integrator"
    ax.set_xlabel("position p" if names else "x0")
    ax.set_ylabel("velocity v" if names else "x1")
    ax.set_title(title or f"region certificate (sound), T = {s['horizon']}, min width {s['min_width']:g}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def certify_command(
    run: Path,
    iteration: int | None,
    horizon: int | None,
    min_width: float,
    *,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Certify the region of a saved iterate and write the certificate and figure into the run.

    Parameters
    ----------
    run : Path
        Run directory written by ``scpo train`` (a closed-loop task, e.g. the double integrator).
    iteration : int or None
        Saved iteration to certify; ``None``: the last checkpoint.
    horizon : int or None
        ``T``; ``None``: the task's horizon.
    min_width : float
        Smallest box width the refinement splits down to (> 0).
    progress : callable, optional
        Receives one dict per refinement round (e.g. :func:`stderr_progress`).

    Returns
    -------
    int
        0 all of the region certified, 1 some box failed, 2 bad input (the message is printed
        on standard error).
    """
    from ..reports.figures import save
    from ..runs import load_run
    from ..runs.files import SCHEMA_VERSION, atomic_write_json, theta_sha256
    from .region import RegionConfig, certify_region

    try:
        mw = check_positive("--min-width", min_width)
        if horizon is not None:
            check_int("--horizon", horizon, minimum=1)
        if iteration is not None:
            check_int("--iteration", iteration, minimum=0)
        r = load_run(run)
        ckpts = r.checkpoints
        it = iteration if iteration is not None else (max(ckpts) if ckpts else None)
        if it is None:
            raise InvalidInputError(f"run {str(run)!r}: no checkpoints saved, nothing to certify")
        theta = r.theta(it)
        task = r.task
        result = certify_region(task, theta, RegionConfig(horizon=horizon, min_width=mw, threads=1), progress=progress)
    except (InvalidInputError, UnsupportedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from .. import __version__

    record = {
        "schema_version": SCHEMA_VERSION,
        "kind": REGION_FILE_KIND,
        "scpo_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "run": str(r.path),
        "task": r.task_name,
        "iteration": int(it),
        "theta_sha256": theta_sha256(theta),
        "level": "sound",
        "horizon": result.summary["horizon"],
        "min_width": mw,
        **result.to_dict(),
    }
    n_cert = len(result.certified_lower)
    if n_cert > _MAX_CERTIFIED_LISTED:
        record["certified_boxes"] = {"omitted": f"{n_cert} boxes (more than {_MAX_CERTIFIED_LISTED}); see the figure"}
    out = region_certificate_path(r.path, int(it))
    atomic_write_json(out, record)
    fig_path = save(region_figure(task, result), r.paths.figures / f"region_iter_{int(it):06d}.png")
    s = result.summary
    lines = [
        f"scpo certify: region certificate of {r.path} at iteration {it} (level sound)",
        f"  region R             {s['cells']} grid cells around the states of S, area {s['area_total']:.4f}",
        f"  certified            {100 * s['certified_fraction']:.3f}% of R by area ({s['certified_boxes']} boxes; "
        f"{s['certified_by_ibp']} by IBP, {s['certified_by_crown']} by CROWN)",
        f"  failed boxes         {s['failed_boxes']} ({s['failed_violated']} with a violation found, "
        f"{s['failed_inconclusive']} inconclusive), area {s['area_failed']:.3e}",
    ]
    for key, count in sorted(s["failures_by_row"].items(), key=lambda kv: -kv[1])[:6]:
        lines.append(f"      {count:>6} × {key}")
    for f in result.failed[:3]:
        box = " × ".join(f"[{a:+.4f}, {b:+.4f}]" for a, b in zip(f["lower"], f["upper"]))
        lines.append(f"    e.g. {box}: {f['reason']}")
    vd = result.claims[1]
    frac = vd.details.get("fraction_decrease_certified")
    lines.append(
        f"  value decrease       {'holds' if vd.holds else 'not everywhere'} outside X_f"
        + (f" ({100 * frac:.2f}% of the area outside X_f)" if frac is not None else "")
    )
    lines.append(f"  horizon T            {s['horizon']}, min width {mw:g}, margin rel {result.summary['margin']['relative']:g} "
                 f"abs {result.summary['margin']['absolute']:g}")
    lines.append(f"  time                 {s['time_s']:.1f} s ({s['boxes_bounded_ibp']} boxes bounded)")
    lines.append(f"  written              {out}")
    lines.append(f"                       {fig_path}")
    print("\n".join(lines))
    return EXIT_OK if result.claims[0].holds else EXIT_FAILED
