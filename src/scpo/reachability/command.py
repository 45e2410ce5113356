"""``scpo reach``: exact backward reachable and invariant sets of a linear task, as JSON and PNG.

``scpo reach double-integrator --horizon N [--run RUN] [--out FILE] [--plot FILE]``

Exit codes: 0 every claim holds, 1 a claim failed (including an invariant-set iteration of the
backup that did not terminate), 2 bad input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from .._validate import check_in, check_int
from ..errors import CertificateError, InvalidInputError, SolverError, UnsupportedError

__all__ = ["reach_command", "reach", "REACH_TASKS"]

logger = logging.getLogger(__name__)

REACH_TASKS = ("double-integrator",)
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def stdout_progress(info: dict[str, Any]) -> None:
    typer.echo(
        f"  {info['stage']:<22} step {info['step']:>4}/{info['total']}: {info['facets']:>4} facets ({info['seconds'] * 1e3:.0f} ms)",
        err=True,
    )


def _summary(report: Any, task: Any) -> str:
    d = report.data
    N, T = report.horizon, report.task_horizon
    lines = [f"scpo reach {d['task']}: horizon N = {N} (task horizon T = {T})"]
    ti, to = d["targets"]["inner"], d["targets"]["outer"]
    xf = d["terminal_set"]["area"]
    lines.append(
        f"  targets   T_in ⊆ X_f: {ti['facets']} facets, area {ti['area']:.4f}   X_f: area {xf:.4f}   "
        f"T_out ⊇ X_f: {to['facets']} facets, area {to['area']:.4f}"
    )
    fams = d["families"]
    order = ("backup_inner", "backup_outer", "controlled_inner", "controlled_outer")
    lines.append("  exact sets R_k (facets / area)")
    lines.append("     k " + "".join(f"{name:>22}" for name in order))
    ks = list(range(N + 1)) if N <= 10 else sorted(set(list(range(0, N + 1, max(1, N // 10))) + [N]))
    for k in ks:
        cells = "".join(f"{fams[f]['sets'][k]['facets']:>10} / {fams[f]['sets'][k]['area']:<9.4f}" for f in order)
        lines.append(f"  {k:>4} {cells}")
    m, c = d["maximal_positively_invariant"], d["maximal_control_invariant"]
    lines.append(
        f"  O_∞ of the backup (Gilbert–Tan): {'terminated' if m['converged'] else 'NOT terminated'} after {m['steps']} step(s), "
        f"{m['facets']} facets, area {m['area']:.4f}"
    )
    lines.append(
        f"  C_∞ (maximal control invariant): {'terminated' if c['converged'] else 'NOT terminated'} after {c['steps']} step(s), "
        f"{c['facets']} facets, area {c['area']:.4f}" + ("" if c["converged"] else f" — {c['message']}")
    )
    s = d["safety_region"]
    lines.append(
        f"  task's safety region S: {s['states_in_S']} of {s['grid_states']} grid states; outside R_T(T_out): "
        f"{s['S_states_outside_outer_set']}, outside R_T(T_in): {s['S_states_outside_inner_set']} "
        f"(grid area estimate {s['fraction_of_grid_in_S_times_box_area']:.4f} vs exact {s['exact_area_R_T_inner']:.4f}"
        f"…{s['exact_area_R_T_outer']:.4f})"
    )
    if d["learned"] is not None:
        L = d["learned"]
        a = L["areas"]
        share = L["share_of_gap_closed"]
        lines.append(
            f"  learned policy (grid {L['grid']}×{L['grid']}, evaluated): T-step set area ≈ {a['learned_grid_estimate']:.4f}; "
            f"backup exact {a['backup_exact_inner']:.4f}…{a['backup_exact_outer']:.4f}; controllable exact "
            f"{a['controllable_exact_inner']:.4f}…{a['controllable_exact_outer']:.4f}"
        )
        lines.append(
            f"    beyond the backup's exact set: {L['grid_states_beyond_backup']} grid states (≈ {L['area_estimate_beyond_backup']:.4f}); "
            f"backup states lost: {L['grid_states_of_backup_set_lost']}; share of the backup→controllable gap closed: "
            + (f"{100 * share:.1f}%" if share is not None else "n/a")
        )
    lines.append("  claims")
    for cl in report.claims:
        lines.append(f"    {'holds ' if cl.holds else 'FAILS '} [{cl.level.value:>9}] {cl.name}")
    lines.append(f"  wall time {report.seconds.get('total', float('nan')):.1f} s")
    return "\n".join(lines)


def reach_command(
    task: str,
    horizon: int,
    run: Path | None,
    out: Path | None,
    plot: Path | None,
    *,
    progress: Callable[[dict[str, Any]], None] | None = None,
    directions: int = 32,
    grid: int = 100,
    samples: int = 100,
    echo: Callable[[str], None] | None = None,
    task_object: Any | None = None,
) -> int:
    """Compute, check, write and plot the reachable sets of a built-in linear task.

    Parameters
    ----------
    task : str
        ``"double-integrator"``.
    horizon : int
        ``N ≥ 1``.
    run : Path, optional
        A run directory of that task: its last checkpoint gives the learned policy's grid set,
        and its task config (box, horizon, gains) is used.
    out : Path, optional
        JSON report (H-representations, levels, areas, claims), written atomically.
    plot : Path, optional
        PNG figure.
    progress : callable, optional
        Called after every set step (see :data:`scpo.reachability.sets.Progress`).
    directions, grid, samples : int
        Tangent directions of the targets around ``X_f``; grid points per axis of the learned
        set; random states per independent membership check.
    echo : callable, optional
        Where the summary goes (default ``typer.echo``); errors go to ``typer.echo(err=True)``.
    task_object : DoubleIntegratorTask, optional
        A prebuilt task to use instead of the default one (library use; not with ``run``).

    Returns
    -------
    int
        0 every claim holds, 1 a claim failed, 2 bad input.
    """
    echo = echo or typer.echo
    try:
        task = check_in("task", task, REACH_TASKS)
        horizon = check_int("horizon", horizon, minimum=1, maximum=1000)
        for name, val in (("directions", directions), ("grid", grid), ("samples", samples)):
            check_int(name, val, minimum=1)
        theta = None
        if run is not None and task_object is not None:
            raise InvalidInputError("run, task_object: expected at most one of them, got both")
        if task_object is not None:
            if getattr(task_object, "name", None) != task:
                raise InvalidInputError(f"task_object: expected a {task!r} task, got {getattr(task_object, 'name', type(task_object).__name__)!r}")
            task_obj = task_object
        elif run is not None:
            from ..runs import load_run

            r = load_run(run)
            if r.task_name != task:
                raise InvalidInputError(f"--run: expected a run of task {task!r}, got a run of task {r.task_name!r}")
            task_obj = r.task
            theta = r.theta()
        else:
            from ..tasks.double_integrator import DoubleIntegratorTask

            task_obj = DoubleIntegratorTask()
        for name, path in (("--out", out), ("--plot", plot)):
            if path is not None and Path(path).is_dir():
                raise InvalidInputError(f"{name}: expected a file path, got the directory {str(path)!r}")
        from .report import linear_task_reach

        report = linear_task_reach(task_obj, horizon, theta=theta, directions=directions, grid=grid, samples=samples, progress=progress)
    except (InvalidInputError, UnsupportedError) as exc:
        typer.echo(f"error: {exc}", err=True)
        return EXIT_BAD_INPUT
    except (CertificateError, SolverError) as exc:
        typer.echo(f"failed: {exc}", err=True)
        return EXIT_FAILED

    echo(_summary(report, task_obj))
    if out is not None:
        from ..runs.files import atomic_write_json

        data = dict(report.data)
        data["run"] = str(run) if run is not None else None
        atomic_write_json(Path(out), data)
        echo(f"  wrote {out}")
    if plot is not None:
        from ..reports.figures import save
        from .plot import reach_figure
        from .sets import state_set

        fams = report.families
        T = report.task_horizon
        fig = reach_figure(
            backup_sets=fams["backup_inner"].sets[: horizon + 1],
            controllable_sets=fams["controlled_inner"].sets[: horizon + 1],
            state_box=state_set(task_obj.system),
            P=task_obj.P,
            gamma=task_obj.gamma,
            mpi=report.mpi.polytope,
            control_invariant=report.control_invariant.polytope,
            backup_outer=fams["backup_outer"].sets[T],
            learned=report.learned,
            safety_states=task_obj.safety_states,
            task_horizon=T,
            title=f"{task}: backward reachable sets of T_in ⊆ X_f, k = 0…{horizon} (exact)",
        )
        save(fig, Path(plot))
        echo(f"  wrote {plot}")
    return EXIT_OK if report.ok else EXIT_FAILED

