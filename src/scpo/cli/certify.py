"""``scpo certify RUN``: the sound region certificate of a saved iterate, written into the run directory.

Loads the run, picks the iteration (default: the last checkpoint) and rebuilds the task from the
run's config. The default cover is the task's declared region ``C`` (the backup's exact backward
reachable set for a linear task, the input interval for regression), partitioned into dyadic
boxes clipped to ``C`` (:class:`scpo.certify.sound_region.RegionCertifier`); the certificate is
written to ``RUN/certificates/region_iter_KKKKKK.json`` in the format the sound gate writes, with
the figure ``RUN/figures/region_iter_KKKKKK.png`` (two states: the leaves; more: 2-D projections
and sections of ``C`` with the failed leaves). ``--cover grid-cells`` keeps the
legacy cover (one grid cell around each grid state of ``S``, which reaches past ``S`` so that even
the backup can fail it), written to ``RUN/certificates/gridcells_iter_KKKKKK.json``.

Exit codes: 0 every box certified, 1 some box failed, 2 bad input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from ._common import err, fail
from .exit_codes import EXIT_FAILED, EXIT_OK

__all__ = ["certify", "certify_command", "certify_run", "certify_region_run", "RegionRun", "SoundRegionRun", "stderr_progress", "RegionProgress",
           "render", "render_region", "COVERS"]


CERTIFY_MAX_LEAVES = 20_000
"""Live-leaf budget of ``scpo certify`` (the training gate's is smaller in ``n ≥ 3``: :data:`scpo.training.config.DEFAULT_MAX_LEAVES`)."""

DEFAULT_TASK_LEAVES = 64
"""Leaves per Ray task of the region cover: a CROWN leaf costs a few milliseconds, a Ray task about one."""


def stderr_progress(info: dict[str, Any]) -> None:
    """One progress line per refinement round, on standard error."""
    err(
        f"round {info['round']:>2}: certified {100 * info['certified_fraction']:7.3f}% of R, "
        f"{info['pending']:>6} boxes to split, {info['failed']:>5} failed, {info['boxes_bounded']:>7} bounded, "
        f"{info['elapsed_s']:6.1f} s"
    )


class RegionProgress:
    """Progress lines of the region cover on standard error: every round, and batches (over all workers) at most every 2 s."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, info: dict[str, Any]) -> None:
        where = "" if info["engine"] == "in-process" else (f" on {info['workers']} Ray workers" if info.get("workers") else " on Ray")
        if info["event"] == "batch":
            if info["leaves_done"] < info["leaves_total"] and info["elapsed_s"] - self.last < 2.0:
                return
            self.last = info["elapsed_s"]
            err(f"round {info['round']:>2}: {info['method']} bounds {info['leaves_done']:>7}/{info['leaves_total']} leaves{where}, "
                f"{info['elapsed_s']:6.1f} s")
            return
        self.last = info["elapsed_s"]
        err(f"round {info['round']:>2}: certified {100 * info['certified_fraction']:7.3f}% of C, {info['splitting']:>6} leaves to split, "
            f"{info['failed']:>5} failed, {info['leaves_bounded']:>7} bounded{where}, {info['elapsed_s']:6.1f} s")


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


def _saved_iterate(run: Path, iteration: int | None) -> tuple[Any, int, Any]:
    """The run, the iteration to certify (default: the last checkpoint) and its ``θ``."""
    from .._validate import check_int
    from ..errors import InvalidInputError
    from ..runs import load_run

    if iteration is not None:
        check_int("--iteration", iteration, minimum=0)
    from ..runs import verify_intact

    r = load_run(run)
    verify_intact(r.path)  # a damaged run receives no new certificate (bad input, before any work)
    ckpts = r.checkpoints
    it = iteration if iteration is not None else (max(ckpts) if ckpts else None)
    if it is None:
        raise InvalidInputError(f"run {str(run)!r}: no checkpoints saved, nothing to certify")
    return r, int(it), r.theta(it)


def _chain_names(r: Any, path: Path) -> bool:
    """Whether the chain (the base certificate or a record) names ``path`` as its certificate file."""
    rel = path.relative_to(r.paths.root).as_posix()
    return r.base_certificate.get("region_certificate") == rel or any(rec.get("region_certificate") == rel for rec in r.records)


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
    from ..plotting import save
    from ..runs import SCHEMA_VERSION, theta_sha256

    mw = check_positive("--min-width", min_width)
    if horizon is not None:
        check_int("--horizon", horizon, minimum=1)
    r, it, theta = _saved_iterate(run, iteration)
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
    out = r.paths.gridcells_certificate(int(it))
    atomic_write_json(out, record)
    fig_path = save(region_figure(problem, result), r.paths.figures / f"gridcells_iter_{int(it):06d}.png") if problem.n == 2 else None
    return RegionRun(run=r.path, iteration=int(it), result=result, record=record, certificate_path=out, figure_path=fig_path,
                     states=problem.n)


@dataclass(frozen=True)
class SoundRegionRun:
    """A sound region certificate over the declared region ``C`` computed for a run, and its files."""

    run: Path
    iteration: int
    region: Any
    certificate: Any
    record: dict[str, Any]
    certificate_path: Path
    figure_path: Path | None

    @property
    def holds(self) -> bool:
        """Whether every leaf meeting ``C`` is certified."""
        return bool(self.certificate.holds)


def certify_region_run(run: Path, iteration: int | None = None, *, max_depth: int | None = None, max_leaves: int | None = None,
                       cells_per_axis: int | None = None, workers: int | None = None, ray_address: str | None = None,
                       task_leaves: int | None = None, device: str = "cpu",
                       progress: Callable[[dict[str, Any]], None] | None = None) -> SoundRegionRun:
    """Certify a saved iterate on the task's declared region ``C`` and write the certificate and figure.

    With ``workers`` or ``ray_address`` the leaves of each refinement round are bounded as Ray
    tasks of ``task_leaves`` leaves (default 64 then); the same ``task_leaves`` gives the same
    certificate bytes in this process (``task_leaves`` alone) and on any number of workers.

    Raises the :mod:`scpo.errors` exceptions of bad input (a missing run, iteration or checkpoint, a
    task without a declared region, a switching policy).
    """
    from .._validate import check_int
    from ..certify import require_unswitched
    from ..certify.sound_region import certificate_figure
    from ..errors import InvalidInputError
    from ..plotting import save
    from ..training import GateSettings, SoundGate, write_region_certificate

    r, it, theta = _saved_iterate(run, iteration)
    task = r.task
    require_unswitched(task.policy)
    if task.declared_region() is None:
        raise InvalidInputError(f"task {r.task_name!r} declares no region C (its rows are evaluated only); "
                                "--cover grid-cells certifies the cells around its grid states instead")
    kw: dict[str, Any] = {}
    if max_depth is not None:
        kw["max_depth"] = check_int("--max-depth", max_depth, minimum=0, maximum=60)
    # a certificate of its own, not a candidate's: the large budget whatever the dimension
    kw["max_leaves"] = check_int("--max-leaves", max_leaves if max_leaves is not None else CERTIFY_MAX_LEAVES, minimum=1)
    if cells_per_axis is not None:
        kw["cells_per_axis"] = check_int("--cells-per-axis", cells_per_axis, minimum=1)
    from ..distributed import Execution

    execution = Execution(workers=workers, ray_address=ray_address)
    if task_leaves is not None:
        kw["task_leaves"] = check_int("--task-leaves", task_leaves, minimum=1)
    elif execution.engine == "ray":
        kw["task_leaves"] = DEFAULT_TASK_LEAVES
    gate = SoundGate(task, GateSettings(**kw, device=device), execution if execution.engine == "ray" else None)
    cert = gate.certify(theta, progress=progress)
    target = r.paths.region_certificate(int(it))
    if _chain_names(r, target):  # evidence of the chain, never overwritten: the new certificate goes beside it
        target = r.paths.region_recertificate(int(it))
    record = write_region_certificate(r.paths, int(it), theta, cert, gate.region_dict, target)
    fig = None
    if task.problem.n >= 2:  # n ≥ 3: projections and sections of C with the failed leaves
        fig = save(certificate_figure(task.problem, gate.region, cert), r.paths.region_figure(int(it)))
    return SoundRegionRun(run=r.path, iteration=int(it), region=gate.region, certificate=cert, record=record,
                          certificate_path=r.paths.root / record["region_certificate"], figure_path=fig)


def render_region(done: SoundRegionRun) -> str:
    """The summary printed by ``scpo certify`` for the declared region."""
    c, s = done.certificate, done.certificate.summary
    lines = [
        f"scpo certify: region certificate of {done.run} at iteration {done.iteration} (level sound): "
        + ("holds" if c.holds else "FAILS"),
        f"  region C             {done.region.description}, volume {done.region.volume:.6g}",
        f"  certified            {100 * c.certified_fraction:.4f}% of C by volume ({s['certified_leaves']} of {s['live_leaves']} "
        f"leaves; {s['crown']} CROWN bounds, {s['splits']} splits)",
        f"  failed leaves        {len(c.failed)} ({sum(f['verdict'] == 'violated' for f in c.failed)} with a violation found)",
    ]
    for f in c.failed[:3]:
        srch = f.get("search")
        where = (f"; {'violated' if f['verdict'] == 'violated' else 'largest row found'} {srch['largest_row']:+.3e} at x0 = "
                 f"({', '.join(f'{v:+.6f}' for v in srch['x0'])}) ({srch['label']}, t = {srch['t']})") if srch else ""
        lines.append(f"    e.g. {f['box']}: bound {f['worst_bound']['value']:+.3e} on {f['worst_bound']['label']}{where}")
    lines.append(f"  horizon T            {s['horizon']}, max depth {s['max_depth']}, margin rel {s['margin']['relative']:g} "
                 f"abs {s['margin']['absolute']:g}")
    lines.append(f"  time                 {s['time_s']:.1f} s")
    lines.append(f"  written              {done.certificate_path}")
    lines.append(f"                       {done.figure_path}" if done.figure_path else "                       (no figure for one state)")
    return "\n".join(lines)


def render(done: RegionRun) -> str:
    """The summary printed by ``scpo certify --cover grid-cells``."""
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


COVERS = ("region", "grid-cells")


def certify_command(run: Path, iteration: int | None, horizon: int | None, min_width: float, *, quiet: bool = False,
                    cover: str = "region", max_depth: int | None = None, cells_per_axis: int | None = None,
                    max_leaves: int | None = None,
                    workers: int | None = None, ray_address: str | None = None, task_leaves: int | None = None,
                    device: str = "cpu") -> int:
    """Certify, write and print; return the exit code (0 all certified, 1 a box failed, 2 bad input)."""
    from .._validate import check_in
    from ..errors import InvalidInputError, ScpoError

    try:
        check_in("--cover", cover, COVERS)
        if cover == "region":
            if horizon is not None:
                raise InvalidInputError("--horizon: the declared region is the backup's set for the task's own horizon; "
                                        "use --cover grid-cells to certify another horizon")
            done = certify_region_run(run, iteration, max_depth=max_depth, max_leaves=max_leaves, cells_per_axis=cells_per_axis,
                                      workers=workers, ray_address=ray_address, task_leaves=task_leaves, device=device,
                                      progress=None if quiet else RegionProgress())
            typer.echo(render_region(done))
            return EXIT_OK if done.holds else EXIT_FAILED
        if max_leaves is not None:
            raise InvalidInputError("--max-leaves: only the region cover (--cover region) has a leaf budget; the grid-cells "
                                    "cover refines down to --min-width")
        if workers is not None or ray_address is not None or task_leaves is not None or device != "cpu":
            raise InvalidInputError("--workers, --ray-address, --task-leaves, --device: only the region cover (--cover region) "
                                    "distributes its bounding")
        legacy = certify_run(run, iteration, horizon, min_width, progress=None if quiet else stderr_progress)
    except ScpoError as exc:
        return fail(exc).exit_code
    typer.echo(render(legacy))
    return EXIT_OK if legacy.holds else EXIT_FAILED


def certify(
    run: Annotated[Path, typer.Argument(help="Run directory written by scpo train.")],
    iteration: Annotated[Optional[int], typer.Option("--iteration", help="Saved iteration (default: the last checkpoint).")] = None,
    horizon: Annotated[Optional[int], typer.Option("--horizon", help="Rollout horizon T (default: the task's).")] = None,
    min_width: Annotated[float, typer.Option("--min-width", help="grid-cells cover: smallest box width the refinement splits down to.")] = 0.002,
    cover: Annotated[str, typer.Option("--cover", help="region (default): the task's declared region C; grid-cells: the legacy cells around the grid states of S.")] = "region",
    max_depth: Annotated[Optional[int], typer.Option("--max-depth", help="region cover: bisections per root cell before a leaf fails (default 12).")] = None,
    max_leaves: Annotated[Optional[int], typer.Option("--max-leaves", help="region cover: budget of live leaves (default 20,000).")] = None,
    cells_per_axis: Annotated[Optional[int], typer.Option("--cells-per-axis", help="region cover: root cells per axis (default by dimension).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Bound the leaves on a local Ray instance with N CPUs (extra: ray).")] = None,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Bound the leaves on a running Ray cluster ('auto', 'host:6379').")] = None,
    task_leaves: Annotated[Optional[int], typer.Option("--task-leaves", help=f"Leaves per bounding task (default {DEFAULT_TASK_LEAVES} with Ray, one call otherwise); fixes the certificate's bits.")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda[:K]: where the leaf bounds are computed.")] = "cpu",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines.", metavar="")] = False,
) -> None:
    """Sound region certificate: bound every rollout constraint over boxes covering C (exit 0 all certified, 1 a box failed, 2 bad input)."""
    raise typer.Exit(certify_command(run, iteration, horizon, min_width, quiet=quiet, cover=cover, max_depth=max_depth, max_leaves=max_leaves,
                                     cells_per_axis=cells_per_axis, workers=workers, ray_address=ray_address,
                                     task_leaves=task_leaves, device=device))
