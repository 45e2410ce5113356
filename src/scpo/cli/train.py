"""``scpo train`` and ``scpo demo``: SCPO training runs and their summary."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import InvalidInputError, ScpoError
from ._common import err, fail, format_progress
from .exit_codes import EXIT_FAILED, EXIT_INTERRUPTED

__all__ = ["train", "demo"]


def _progress(info: dict[str, Any]) -> None:
    err(format_progress(info))


def _claims_of(run: Any) -> list[dict[str, Any]]:
    claims = list(run.base_certificate.get("claims", []))
    final = run.paths.final_certificate
    if final.is_file():
        claims += json.loads(final.read_text(encoding="utf-8")).get("claims", [])
    return claims


def _summary_text(result: Any, *, title: str) -> str:
    lines = [
        f"{title}",
        f"  run directory        {result.run.path}",
        f"  status               {result.status}",
        f"  iterations           {result.iterations} ({result.accepted} accepted, {result.rejected} rejected)",
        f"  objective            {result.objective_initial:.5f} -> {result.objective_final:.5f}",
    ]
    lines += [f"  {line}" for line in result.run.task.quality_summary(result.quality_initial, result.quality_final)]
    lines.append(f"  accepted iterates violating a constraint   {result.violations}")
    claims = _claims_of(result.run)
    if claims:
        lines.append("  certificates")
        for c in claims:
            if c.get("details", {}).get("required") is False:
                d = c["details"]
                frac = d.get("fraction_decreasing")
                note = f" ({100 * frac:.1f}% of steps outside X_f decrease)" if isinstance(frac, float) else ""
                lines.append(f"    report [{c['level']:>9}] {c['name']}: {'holds' if c['holds'] else 'does not hold everywhere'}{note}; not required for safety")
            else:
                lines.append(f"    {'holds ' if c['holds'] else 'FAILS '} [{c['level']:>9}] {c['name']}")
    figs = sorted(result.run.paths.figures.glob("*.png")) if result.run.paths.figures.is_dir() else []
    if figs:
        lines.append(f"  figures              {result.run.paths.figures}/ ({', '.join(f.name for f in figs)})")
    lines.append(f"  wall time            {result.wall_time_s:.1f} s")
    return "\n".join(lines)


def train(
    task: Annotated[Optional[str], typer.Argument(help="Task: a built-in name (scpo tasks) or module:factory; omit with --task-file.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="New run directory to write.")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue this run directory instead.")] = None,
    iterations: Annotated[Optional[int], typer.Option(help="Total iterations of the run.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the task (initialisation, sampling).")] = None,
    bank_size: Annotated[Optional[int], typer.Option("--bank-size", help="Bank size m.")] = None,
    solver: Annotated[Optional[str], typer.Option(help="auto | clarabel | mosek | scs.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate of the raw step.")] = None,
    direction: Annotated[Optional[str], typer.Option(help="Raw step rule: adam | sgd.")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option("--checkpoint-every", help="Save θ every K accepted iterations (0: first and last only).")] = None,
    no_projection: Annotated[bool, typer.Option("--no-projection", help="Unconstrained baseline: same optimiser, every raw step taken.")] = False,
    certified_radius: Annotated[
        Optional[float],
        typer.Option("--certified-radius", help="Use certified L over a ball of this radius instead of the adaptive L (no step is then rejected for safety)."),
    ] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="JSON file with sections task_config, projector, train.")] = None,
    task_file: Annotated[
        Optional[Path], typer.Option("--task-file", help="TOML spec of a linear system (task 'linear'; see scpo.tasks.spec).")
    ] = None,
    certify: Annotated[
        Optional[str],
        typer.Option("--certify", help="sound: accept a step only with a sound region certificate of the task's region C "
                                       "(default where the task declares one); grid: the evaluated grid rows alone; auto."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines.")] = False,
) -> None:
    """Train a residual policy with the SCPO projector and write the certificate chain."""
    from ..config import load_json_config
    from ..training import resolve_config
    from ..training import resume as resume_run
    from ..training import train as train_run

    progress = None if quiet else _progress
    try:
        task_overrides: dict[str, Any] | None = None
        if task_file is not None:
            from ..tasks.spec import load_spec

            if resume is not None:
                raise InvalidInputError("--task-file and --resume: expected one of them, got both (a run keeps its task)")
            if task not in (None, "linear"):
                raise InvalidInputError(f"--task-file: the spec defines the task 'linear'; got the task argument {task!r} as well")
            task = "linear"
            task_overrides = load_spec(task_file)
        elif task is None and resume is None:
            raise InvalidInputError("task: expected a task name or --task-file SPEC.toml, got neither")
        if resume is not None:
            if out is not None:
                raise InvalidInputError("--out and --resume: expected one of them, got both")
            others = [seed, bank_size, solver, lr, direction, checkpoint_every, config, certified_radius, certify]
            if any(v is not None for v in others) or no_projection:
                raise InvalidInputError("--resume: only --iterations may change when resuming; the run keeps its config.json")
            result = resume_run(resume, iterations=iterations, progress=progress)
        else:
            if out is None:
                raise InvalidInputError("--out: expected a new run directory (or --resume RUN), got neither")
            file_data = load_json_config(config) if config is not None else None
            proj: dict[str, Any] = {}
            for key, val in (("bank_size", bank_size), ("solver", solver), ("lr", lr), ("direction", direction)):
                if val is not None:
                    proj[key] = val
            if no_projection:
                proj["projection"] = False
            if certified_radius is not None:
                proj["L_mode"] = "certified"
                proj["certified_radius"] = certified_radius
            tr: dict[str, Any] = {}
            for key, val in (("iterations", iterations), ("seed", seed), ("checkpoint_every", checkpoint_every), ("certify", certify)):
                if val is not None:
                    tr[key] = val
            cfg = resolve_config(task, file_data=file_data, task_overrides=task_overrides, projector_overrides=proj, train_overrides=tr)
            result = train_run(cfg, out, progress=progress)
    except KeyboardInterrupt:
        target = resume or out
        err(f"\ninterrupted; everything written so far is kept. Continue with: scpo train {task or ''} --resume {target}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ScpoError as exc:
        raise fail(exc) from None
    typer.echo(_summary_text(result, title=f"scpo train {task}: {result.status}"))


def demo(
    out: Annotated[Optional[Path], typer.Option("--out", help="Run directory (default: scpo-runs/demo-<time>).")] = None,
    iterations: Annotated[int, typer.Option(help="Iterations.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    certify: Annotated[str, typer.Option("--certify", help="sound (default): every iterate certified on the region C; grid: evaluated rows only.")] = "sound",
) -> None:
    """Run the embedded default: SCPO on the double integrator with a malicious expert."""
    from ..training import resolve_config
    from ..training import train as train_run

    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("scpo-runs") / f"demo-{stamp}"
    out.parent.mkdir(parents=True, exist_ok=True)
    typer.echo(
        f"scpo demo: double integrator, LQR backup, malicious PD expert tracking p* = 1.5 (outside |p| ≤ 1); "
        f"{iterations} SCPO iterations -> {out}"
    )
    try:
        cfg = resolve_config("double-integrator", train_overrides={"iterations": iterations, "seed": seed, "log_every": 25,
                                                                   "certify": certify})
        result = train_run(cfg, out, progress=_progress)
    except KeyboardInterrupt:
        err(f"\ninterrupted; continue with: scpo train double-integrator --resume {out}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ScpoError as exc:
        raise fail(exc) from None
    typer.echo(_summary_text(result, title="scpo demo: done"))
    claims = _claims_of(result.run)
    if result.violations or not all(c["holds"] for c in claims if c.get("details", {}).get("required") is not False):
        raise typer.Exit(EXIT_FAILED)
