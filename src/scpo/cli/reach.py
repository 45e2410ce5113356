"""``scpo reach``: exact backward reachable and invariant sets of a linear task, as JSON and PNG.

``scpo reach TASK --horizon N [--sets auto|all|backup] [--run RUN] [--out FILE] [--plot FILE]``

``TASK`` is any registered task whose closed-loop problem has a terminal set ``X_f``; with
``--run`` the task is rebuilt from the run's ``config.json`` and its last checkpoint adds the
learned policy's grid set. The computation is :func:`scpo.reachability.linear_reach`; this module
only builds its inputs from the task, prints, writes the files and picks the exit code:
0 every claim holds, 1 a claim failed (including an invariant-set iteration of the backup that did
not terminate), 2 bad input (an unknown task, a task without a terminal set, a bad option).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._common import err, fail
from .exit_codes import EXIT_FAILED, EXIT_OK

__all__ = ["reach", "reach_task", "load_reach_task", "summary"]


def _progress(info: dict[str, Any]) -> None:
    err(f"  {info['stage']:<22} step {info['step']:>4}/{info['total']}: {info['facets']:>4} facets ({info['seconds'] * 1e3:.0f} ms)")


def _num(value: Any, fmt: str = ".4f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _set_lines(d: dict[str, Any], N: int) -> list[str]:
    fams = d["families"]
    order = [f for f in ("backup_inner", "backup_outer", "controlled_inner", "controlled_outer") if f in fams]
    lines = ["  exact sets R_k (facets / area)", "     k " + "".join(f"{name:>22}" for name in order)]
    ks = list(range(N + 1)) if N <= 10 else sorted(set(list(range(0, N + 1, max(1, N // 10))) + [N]))
    for k in ks:
        cells = "".join(f"{fams[f]['sets'][k]['facets']:>10} / {fams[f]['sets'][k]['area']:<9.4f}" for f in order)
        lines.append(f"  {k:>4} {cells}")
    return lines


def _learned_lines(L: dict[str, Any]) -> list[str]:
    a = L["areas"]
    share = L["share_of_gap_closed"]
    return [
        f"  learned policy (grid {L['grid']}×{L['grid']}, evaluated): T-step set area ≈ {a['learned_grid_estimate']:.4f}; "
        f"backup exact {a['backup_exact_inner']:.4f}…{a['backup_exact_outer']:.4f}; controllable exact "
        f"{a['controllable_exact_inner']:.4f}…{a['controllable_exact_outer']:.4f}",
        f"    beyond the backup's exact set: {L['grid_states_beyond_backup']} grid states (≈ {L['area_estimate_beyond_backup']:.4f}); "
        f"backup states lost: {L['grid_states_of_backup_set_lost']}; share of the backup→controllable gap closed: "
        + (f"{100 * share:.1f}%" if share is not None else "n/a"),
    ]


def summary(report: Any) -> str:
    """The printed summary of a reachability report.

    Parameters
    ----------
    report : scpo.reachability.ReachReport

    Returns
    -------
    str
    """
    d = report.data
    N, T = report.horizon, report.task_horizon
    ti, to = d["targets"]["inner"], d["targets"]["outer"]
    lines = [
        f"scpo reach {d['task']}: horizon N = {N} (task horizon T = {T})",
        f"  targets   T_in ⊆ X_f: {ti['facets']} facets, area {ti['area']:.4f}   X_f: area {_num(d['terminal_set']['area'])}   "
        f"T_out ⊇ X_f: {to['facets']} facets, area {to['area']:.4f}",
        *_set_lines(d, N),
    ]
    m, c = d["maximal_positively_invariant"], d["maximal_control_invariant"]
    lines.append(
        f"  O_∞ of the backup (Gilbert–Tan): {'terminated' if m['converged'] else 'NOT terminated'} after {m['steps']} step(s), "
        f"{m['facets']} facets, area {m['area']:.4f}"
    )
    if c is None:
        lines.append(f"  controllable sets and C_∞: not computed — {d['sets_statement']}")
    else:
        lines.append(
            f"  C_∞ (maximal control invariant): {'terminated' if c['converged'] else 'NOT terminated'} after {c['steps']} step(s), "
            f"{c['facets']} facets, area {c['area']:.4f}" + ("" if c["converged"] else f" — {c['message']}")
        )
    s = d["safety_region"]
    lines.append(
        f"  task's safety region S: {s['states_in_S']} of {s['grid_states']} grid states; outside R_T(T_out): "
        f"{s['S_states_outside_outer_set']}, outside R_T(T_in): {s['S_states_outside_inner_set']} "
        f"(grid area estimate {_num(s['fraction_of_grid_in_S_times_box_area'])} vs exact {s['exact_area_R_T_inner']:.4f}"
        f"…{s['exact_area_R_T_outer']:.4f})"
    )
    if d["learned"] is not None:
        lines += _learned_lines(d["learned"])
    lines.append("  claims")
    lines += [f"    {'holds ' if cl.holds else 'FAILS '} [{cl.level.value:>9}] {cl.name}" for cl in report.claims]
    lines.append(f"  wall time {report.seconds.get('total', float('nan')):.1f} s")
    return "\n".join(lines)


def _check_options(
    horizon: int, directions: int, grid: int, samples: int, out: Path | None, plot: Path | None, sets: str = "auto"
) -> int:
    from .._validate import check_int
    from ..errors import InvalidInputError
    from ..reachability import SET_CHOICES

    horizon = check_int("horizon", horizon, minimum=1, maximum=1000)
    if sets not in SET_CHOICES:
        raise InvalidInputError(f"--sets: expected one of {', '.join(SET_CHOICES)}, got {sets!r}")
    for name, val in (("directions", directions), ("grid", grid), ("samples", samples)):
        check_int(name, val, minimum=1)
    from .._io import check_output_dir

    for name, path in (("--out", out), ("--plot", plot)):
        if path is not None and Path(path).is_dir():
            raise InvalidInputError(f"{name}: expected a file path, got the directory {str(path)!r}")
        if path is not None:
            check_output_dir(Path(path), name, file=True)  # before the computation, not after it
    return horizon


def _write(report: Any, *, run: Path | None, out: Path | None, plot: Path | None, echo: Callable[[str], None]) -> None:
    if out is not None:
        from .._io import atomic_write_json

        atomic_write_json(Path(out), {**report.data, "run": str(run) if run is not None else None})
        echo(f"  wrote {out}")
    if plot is not None:
        from ..plotting import save
        from ..reachability.plot import report_figure

        title = f"{report.name}: backward reachable sets of T_in ⊆ X_f, k = 0…{report.horizon} (exact)"
        if report.problem.n != 2:
            title = f"{report.name}: exact {report.problem.n}-D sets, N = {report.horizon}"
        save(report_figure(report, title=title), Path(plot))
        echo(f"  wrote {plot}")


def reach_task(
    task: Any,
    horizon: int,
    *,
    theta: Any = None,
    run: Path | None = None,
    out: Path | None = None,
    plot: Path | None = None,
    directions: int = 32,
    grid: int = 100,
    samples: int = 100,
    sets: str = "auto",
    progress: Callable[[dict[str, Any]], None] | None = None,
    echo: Callable[[str], None] = typer.echo,
) -> int:
    """Compute, check, print, write and plot the reachable sets of a built task (``scpo reach`` after parsing).

    Parameters
    ----------
    task : Task
        Any task whose ``problem`` has a terminal set.
    horizon : int
        ``N``, ``1 ≤ N ≤ 1000``.
    theta : ndarray, shape (d,), optional
        Parameters of the learned residual: adds the learned policy's grid set.
    run : Path, optional
        The run ``theta`` comes from (written to the JSON).
    out : Path, optional
        JSON report, written atomically.
    plot : Path, optional
        PNG figure (2-D: the sets; ``n ≥ 3``: their 2-D projections and sections).
    directions : int
        Tangent directions of the targets around ``X_f``.
    grid : int
        Grid points per axis of the learned set.
    samples : int
        Random states per independent membership check.
    sets : {"auto", "all", "backup"}
        Which sets (:func:`scpo.reachability.resolve_sets`): ``"auto"`` leaves the controllable
        sets out for ``n ≥ 4``.
    progress : callable, optional
        Called after every set step.
    echo : callable
        Where the summary goes; errors go to stderr.

    Returns
    -------
    int
        0 every claim holds, 1 a claim failed, 2 bad input.
    """
    from ..errors import InvalidInputError, ScpoError
    from ..reachability import linear_reach, resolve_sets, residual_policy_map

    try:
        horizon = _check_options(horizon, directions, grid, samples, out, plot, sets)
        problem = task.problem
        if not problem.has_terminal:
            raise InvalidInputError(
                f"task: expected a task whose problem has a terminal set X_f = {{xᵀPx ≤ γ}} (scpo reach computes its "
                f"backward reachable sets), got {task.name!r}, which has none"
            )
        chosen = resolve_sets(sets, problem.n)
        if theta is not None and chosen == "backup":
            raise InvalidInputError(
                f"--run: the learned policy's set is compared with the controllable sets, which --sets {sets} leaves out for "
                f"task {task.name!r} (n = {problem.n}); pass --sets all, or leave out --run"
            )
        grid_states, in_S = task.safety_grid()
        learned = None if theta is None else residual_policy_map(task.policy, theta, device=task.device)
        report = linear_reach(
            problem, horizon, grid_states=grid_states, in_S=in_S, learned=learned, name=task.name, directions=directions,
            grid=grid, samples=samples, device=task.device, progress=progress, sets=chosen,
            safety_domain=task.safety_grid_domain() if hasattr(task, "safety_grid_domain") else None,
        )
        echo(summary(report))
        _write(report, run=run, out=out, plot=plot, echo=echo)
    except ScpoError as exc:
        return fail(exc).exit_code
    return EXIT_OK if report.ok else EXIT_FAILED


def load_reach_task(task: str, run: Path | None) -> tuple[Any, Any]:
    """The task named on the command line and, with ``--run``, the run's last ``θ``.

    Parameters
    ----------
    task : str
        A registered task name (:func:`scpo.tasks.task_names`) or ``module:factory``.
    run : Path, optional
        A run directory of that task: the task is rebuilt from its ``config.json``.

    Returns
    -------
    task : Task
    theta : ndarray of shape (d,) or None

    Raises
    ------
    InvalidInputError
        Unknown task, unreadable run, or a run of another task.
    """
    from ..errors import InvalidInputError

    if run is None:
        from ..tasks import make_task

        return make_task(task), None
    from ..runs import load_run

    r = load_run(run)
    if r.task_name != task:
        raise InvalidInputError(f"--run: expected a run of task {task!r}, got a run of task {r.task_name!r}")
    return r.task, r.theta()


def reach(
    task: Annotated[str, typer.Argument(help="A registered task whose problem has a terminal set, e.g. double-integrator.")],
    horizon: Annotated[int, typer.Option("--horizon", help="N: compute the 0…N-step sets.")] = 30,
    run: Annotated[Optional[Path], typer.Option("--run", help="Run directory: use its task and add the learned policy's grid set.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="JSON file for the sets (H-representation) and claims.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="PNG file with the nested sets (n ≥ 3: 2-D projections and sections).")] = None,
    directions: Annotated[int, typer.Option("--directions", help="Tangent directions of the polytopes around X_f.")] = 32,
    grid: Annotated[int, typer.Option("--grid", help="Grid points per axis of the learned policy's set.")] = 100,
    samples: Annotated[int, typer.Option("--samples", help="Random states per independent membership check.")] = 100,
    sets: Annotated[
        str,
        typer.Option(
            "--sets", metavar="auto|all|backup",
            help="all: the backup's and the controllable sets; backup: the backup's sets and O_∞ only; auto: all for n ≤ 3, backup above.",
        ),
    ] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", metavar="", help="No per-step progress lines.")] = False,
) -> None:
    """Exact backward reachable and invariant sets of a linear task, with checks and a plot (exit 0 all claims hold, 1 a claim failed, 2 bad input)."""
    from ..errors import ScpoError

    try:
        _check_options(horizon, directions, grid, samples, out, plot, sets)
        task_obj, theta = load_reach_task(task, run)
    except ScpoError as exc:
        raise fail(exc) from None
    code = reach_task(
        task_obj, horizon, theta=theta, run=run, out=out, plot=plot, directions=directions, grid=grid, samples=samples,
        sets=sets, progress=None if quiet else _progress,
    )
    raise typer.Exit(code)
