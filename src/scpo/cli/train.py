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
    from ..reports.claims import claim_required

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
            if not claim_required(c):
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
    iterations: Annotated[Optional[int], typer.Option(help="Total iterations of the run. Default: 1000.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the task (initialisation, sampling): 0 … 2**64-1. Default: 0.")] = None,
    bank_size: Annotated[Optional[int], typer.Option("--bank-size", help="Bank size m. Default: 16.")] = None,
    solver: Annotated[Optional[str], typer.Option(help="auto | clarabel | mosek | scs. Default: auto.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate of the raw step. Default: the task's (0.01; chain-integrator "
                                                     "and linear 0.001, cart-pole 0.03).")] = None,
    direction: Annotated[Optional[str], typer.Option(help="Raw step rule: adam | sgd. Default: adam.")] = None,
    checkpoint_every: Annotated[
        Optional[int],
        typer.Option("--checkpoint-every",
                     help="Save θ_t of each accepted iteration t that is a multiple of K (0: θ_0 and the last iterate only; "
                          "the last accepted iterate is always saved). Default: 1."),
    ] = None,
    no_projection: Annotated[bool, typer.Option("--no-projection", metavar="",
                                                help="Unconstrained baseline: same optimiser, every raw step taken.")] = False,
    certified_radius: Annotated[
        Optional[float],
        typer.Option("--certified-radius", help="Use certified L over a ball of this radius instead of the adaptive L (no step is then rejected for safety)."),
    ] = None,
    L_mode: Annotated[
        Optional[str],
        typer.Option("--L-mode", help="adaptive | certified (full-space bound over the ball of --certified-radius) | subspace (the sound "
                                      "bound on the bank's span over that ball, every iteration; needs --certified-radius). "
                                      "Default: adaptive, or certified with --certified-radius."),
    ] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="JSON file with sections task_config, projector, train, gate.")] = None,
    task_file: Annotated[
        Optional[Path], typer.Option("--task-file", help="TOML spec of a linear system (task 'linear'; see scpo.tasks.spec).")
    ] = None,
    certify: Annotated[
        Optional[str],
        typer.Option("--certify", help="sound: accept a step only with a sound region certificate of the task's region C "
                                       "(what auto picks where the task declares one); grid: the evaluated grid rows alone. "
                                       "Default: auto."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", metavar="", help="No progress lines.")] = False,
    stop_after_stall: Annotated[
        Optional[int],
        typer.Option("--stop-after-stall", help="Stop early after N consecutive rejected iterations (θ unchanged; the run ends "
                                                "finished, run.json says stopped_early; stored, so a resume keeps it; on --resume it overrides for that resume). "
                                                "Default: off; a warning after 25 either way."),
    ] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Sound gate: bound the leaves on a local Ray instance with N CPUs "
                                                                    "(extra: ray; sets gate.task_leaves to 64 unless given).")] = None,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Sound gate: bound the leaves on a running Ray cluster.")] = None,
) -> None:
    """Train a residual policy with the SCPO projector and write the certificate chain."""
    from .._io import check_output_dir
    from .._validate import read_json_object
    from ..errors import ConfigError
    from ..training import resolve_config
    from ..training import resume as resume_run
    from ..training import train as train_run

    progress = None if quiet else _progress
    try:
        from ..distributed import Execution, require_ray

        execution = Execution(workers=workers, ray_address=ray_address)
        if execution.engine == "ray":
            require_ray("--workers / --ray-address", load=False)
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
            others = [seed, bank_size, solver, lr, direction, checkpoint_every, config, certified_radius, certify, L_mode]
            if any(v is not None for v in others) or no_projection:
                raise InvalidInputError("--resume: only --iterations may change when resuming (and, for this call, --stop-after-stall, "
                                        "--workers, --ray-address); the run keeps its config.json")
            result = resume_run(resume, iterations=iterations, progress=progress, task=task, stall_limit=stop_after_stall,
                                execution=execution)
        else:
            if out is None:
                raise InvalidInputError("--out: expected a new run directory (or --resume RUN), got neither")
            check_output_dir(out, "--out")
            file_data = read_json_object(config, f"--config {str(config)!r}", ConfigError) if config is not None else None
            proj: dict[str, Any] = {}
            for key, val in (("bank_size", bank_size), ("solver", solver), ("lr", lr), ("direction", direction)):
                if val is not None:
                    proj[key] = val
            if no_projection:
                proj["projection"] = False
            if certified_radius is not None:
                proj["L_mode"] = "certified"
                proj["certified_radius"] = certified_radius
            if L_mode is not None:
                proj["L_mode"] = L_mode
            tr: dict[str, Any] = {}
            for key, val in (("iterations", iterations), ("seed", seed), ("checkpoint_every", checkpoint_every), ("certify", certify),
                             ("stop_after_stall", stop_after_stall)):
                if val is not None:
                    tr[key] = val
            gate: dict[str, Any] = {}
            in_file = isinstance(file_data, dict) and isinstance(file_data.get("gate"), dict) and "task_leaves" in file_data["gate"]
            if execution.engine == "ray" and not in_file:
                from .certify import DEFAULT_TASK_LEAVES

                gate["task_leaves"] = DEFAULT_TASK_LEAVES  # recorded: the batching, not the engine, fixes the certificates' bits
            cfg = resolve_config(task, file_data=file_data, task_overrides=task_overrides, projector_overrides=proj, train_overrides=tr,
                                 gate_overrides=gate)
            result = train_run(cfg, out, progress=progress, execution=execution)
    except KeyboardInterrupt:
        target = resume or out
        err(f"\ninterrupted; everything written so far is kept. Continue with: scpo train {task or ''} --resume {target}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ScpoError as exc:
        raise fail(exc) from None
    typer.echo(_summary_text(result, title=f"scpo train {task or result.run.task_name}: {result.status}"))
    _exit_on_failure(result)


def _exit_on_failure(result: Any) -> None:
    """Exit 1 when an accepted iterate violates a constraint or a required certificate fails (train and demo alike)."""
    from ..reports.claims import claim_required

    if result.violations or not all(c["holds"] for c in _claims_of(result.run) if claim_required(c)):
        raise typer.Exit(EXIT_FAILED)


def demo(
    out: Annotated[Optional[Path], typer.Option("--out", help="Run directory (default: scpo-runs/demo-<time>).")] = None,
    iterations: Annotated[int, typer.Option(help="Iterations.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    certify: Annotated[str, typer.Option("--certify", help="sound (default): every iterate certified on the region C; grid: evaluated rows only.")] = "sound",
) -> None:
    """Run the embedded default: SCPO on the double integrator with a malicious expert."""
    from ..training import resolve_config
    from ..training import train as train_run

    from .._io import check_output_dir
    from .._validate import check_seed

    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("scpo-runs") / f"demo-{stamp}"
    try:
        check_output_dir(out, "--out")
        check_seed("--seed", seed)
        cfg = resolve_config("double-integrator", train_overrides={"iterations": iterations, "seed": seed, "log_every": 25,
                                                                   "certify": certify})
    except ScpoError as exc:
        raise fail(exc) from None
    typer.echo(
        f"scpo demo: double integrator, LQR backup, malicious PD expert tracking p* = 1.5 (outside |p| ≤ 1); "
        f"{iterations} SCPO iterations -> {out}"
    )
    try:
        result = train_run(cfg, out, progress=_progress)
    except KeyboardInterrupt:
        err(f"\ninterrupted; continue with: scpo train double-integrator --resume {out}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ScpoError as exc:
        raise fail(exc) from None
    typer.echo(_summary_text(result, title="scpo demo: done"))
    _exit_on_failure(result)
