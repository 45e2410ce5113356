"""``scpo certify RUN``: the sound region certificate of a saved iterate, written into the run directory.

Loads the run, picks the iteration (default: the last checkpoint), rebuilds the task from the run's
config, covers the safety region by grid cells (:func:`scpo.certify.safety_region_cover`),
certifies every cell (:func:`scpo.certify.certify_region`) and writes
``RUN/certificates/region_iter_KKKKKK.json`` (:func:`scpo.certify.region_record`) and
``RUN/figures/region_iter_KKKKKK.png`` through :class:`scpo.runs.RunPaths`.

Exit codes: 0 every box of the region certified, 1 some box failed, 2 bad input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from ._common import err, fail
from .exit_codes import EXIT_FAILED, EXIT_OK

__all__ = ["certify", "certify_command", "certify_run", "RegionRun", "stderr_progress", "render"]


def stderr_progress(info: dict[str, Any]) -> None:
    """One progress line per refinement round, on standard error."""
    err(
        f"round {info['round']:>2}: certified {100 * info['certified_fraction']:7.3f}% of R, "
        f"{info['pending']:>6} boxes to split, {info['failed']:>5} failed, {info['boxes_bounded']:>7} bounded, "
        f"{info['elapsed_s']:6.1f} s"
    )


@dataclass(frozen=True)
class RegionRun:
    """A region certificate computed for a run and the files written."""

    run: Path
    iteration: int
    result: Any
    record: dict[str, Any]
    certificate_path: Path
    figure_path: Path | None
    states: int

    @property
    def holds(self) -> bool:
        """Whether every box of the region was certified (the reach-avoid claim holds)."""
        return bool(self.result.claims[0].holds)


def certify_run(
    run: Path,
    iteration: int | None = None,
    horizon: int | None = None,
    min_width: float = 0.002,
    *,
    progress: Callable[[dict[str, Any]], None] | None = None,
    threads: int | None = 1,
) -> RegionRun:
    """Certify the region of a saved iterate and write the certificate and figure into the run.

    Raises the :mod:`scpo.errors` exceptions of bad input (a missing run, iteration or checkpoint,
    a bad width or horizon, a task without a closed loop and terminal set, a switching policy).
    """
    from .._io import atomic_write_json
    from .._validate import check_int, check_positive
    from ..certify import RegionConfig, certify_region, region_figure, region_record, require_unswitched, safety_region_cover
    from ..certify.region import require_reach_avoid
    from ..errors import InvalidInputError
    from ..plotting import save
    from ..runs import SCHEMA_VERSION, load_run, theta_sha256

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
    problem = task.problem
    require_reach_avoid(problem)
    require_unswitched(task.policy)
    grid, _ = task.safety_grid()  # the cover needs the full grid for its spacing
    lo, hi, info = safety_region_cover(problem, grid, task.safety_states)
    cfg = RegionConfig(horizon=horizon, min_width=mw, threads=threads)
    result = certify_region(problem, task.structure, theta, lo, hi, cfg, progress=progress, region_info=info)
    record = region_record(result, schema_version=SCHEMA_VERSION, run=str(r.path), task=r.task_name, iteration=int(it),
                           theta_sha256=theta_sha256(theta), min_width=mw)
    out = r.paths.region_certificate(int(it))
    atomic_write_json(out, record)
    fig_path = save(region_figure(problem, result), r.paths.region_figure(int(it))) if problem.n == 2 else None
    return RegionRun(run=r.path, iteration=int(it), result=result, record=record, certificate_path=out, figure_path=fig_path,
                     states=problem.n)


def render(done: RegionRun) -> str:
    """The summary printed by ``scpo certify``."""
    result = done.result
    s = result.summary
    lines = [
        f"scpo certify: region certificate of {done.run} at iteration {done.iteration} (level sound)",
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
        f"  value decrease       {'holds' if vd.holds else 'not everywhere'} outside X_f (reported, not required)"
        + (f" ({100 * frac:.2f}% of the area outside X_f)" if frac is not None else "")
    )
    lines.append(f"  horizon T            {s['horizon']}, min width {s['min_width']:g}, margin rel {s['margin']['relative']:g} "
                 f"abs {s['margin']['absolute']:g}")
    lines.append(f"  time                 {s['time_s']:.1f} s ({s['boxes_bounded_ibp']} boxes bounded)")
    lines.append(f"  written              {done.certificate_path}")
    lines.append(f"                       {done.figure_path}" if done.figure_path else
                 f"                       (no figure: it draws two states, the problem has {done.states})")
    return "\n".join(lines)


def certify_command(run: Path, iteration: int | None, horizon: int | None, min_width: float, *, quiet: bool = False) -> int:
    """Certify, write and print; return the exit code (0 all certified, 1 a box failed, 2 bad input)."""
    from ..errors import ScpoError

    try:
        done = certify_run(run, iteration, horizon, min_width, progress=None if quiet else stderr_progress)
    except ScpoError as exc:
        return fail(exc).exit_code
    typer.echo(render(done))
    return EXIT_OK if done.holds else EXIT_FAILED


def certify(
    run: Annotated[Path, typer.Argument(help="Run directory written by scpo train.")],
    iteration: Annotated[Optional[int], typer.Option("--iteration", help="Saved iteration (default: the last checkpoint).")] = None,
    horizon: Annotated[Optional[int], typer.Option("--horizon", help="Rollout horizon T (default: the task's).")] = None,
    min_width: Annotated[float, typer.Option("--min-width", help="Smallest box width the refinement splits down to.")] = 0.002,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines.")] = False,
) -> None:
    """Sound region certificate: bound every rollout constraint over boxes covering S (exit 0 all certified, 1 a box failed, 2 bad input)."""
    raise typer.Exit(certify_command(run, iteration, horizon, min_width, quiet=quiet))
