"""The ``scpo`` command line: a thin typed layer over the library.

Exit codes: 0 success / every certificate holds, 1 a certificate failed, 2 bad input,
130 interrupted (the run directory keeps everything written so far; resume it).
"""

from __future__ import annotations

import datetime as _dt
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .errors import CertificateError, InvalidInputError, ScpoError, SolverError, UnsupportedError

app = typer.Typer(
    name="scpo",
    help="Certified safe policy learning: SCPO training, certificates, reports and audits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _err(msg: str) -> None:
    typer.echo(msg, err=True)


def _progress(info: dict[str, Any]) -> None:
    _err(
        f"it {info['iteration']:>5}/{info['total']}  f {info['objective']:.5g}  max g {info['max_constraint']:+.3e}  "
        f"accepted {info['accepted']}  rejected {info['rejected']}  violations {info['violations']}  "
        f"L_max {info['L_max']:.3g}  {info['seconds_per_iteration'] * 1e3:.0f} ms/it"
    )


def _fail(exc: BaseException) -> typer.Exit:
    if isinstance(exc, CertificateError):
        _err(f"certificate failed: {exc}")
        return typer.Exit(EXIT_FAILED)
    if isinstance(exc, (InvalidInputError, UnsupportedError)):
        _err(f"error: {exc}")
        return typer.Exit(EXIT_BAD_INPUT)
    if isinstance(exc, SolverError):
        _err(f"solver failure: {exc}")
        return typer.Exit(EXIT_FAILED)
    raise exc


def _claims_of(run: Any) -> list[dict[str, Any]]:
    import json

    claims = list(run.base_certificate.get("claims", []))
    final = run.paths.certificates / "final.json"
    if final.is_file():
        claims += json.loads(final.read_text()).get("claims", [])
    return claims


def _print_summary(result: Any, *, title: str) -> None:
    q0, q1 = result.quality_initial, result.quality_final
    lines = [
        f"{title}",
        f"  run directory        {result.run.path}",
        f"  status               {result.status}",
        f"  iterations           {result.iterations} ({result.accepted} accepted, {result.rejected} rejected)",
        f"  objective            {result.objective_initial:.5f} -> {result.objective_final:.5f}",
    ]
    if "improvement_fraction" in q1:
        lines.append(
            f"  achievable improvement closed   {q1['improvement_fraction'] * 100:.1f}% "
            f"(f* = {q1['f_star']:.4f}, f(θ0) = {q1['f0']:.4f})"
        )
    if "imitation_loss" in q1:
        lines.append(
            f"  imitation loss       backup {q0['imitation_loss']:.4f} -> final policy {q1['imitation_loss']:.4f} "
            f"({100 * q1['imitation_loss'] / q0['imitation_loss']:.1f}% of the backup's)"
        )
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
    typer.echo("\n".join(lines))


@app.command()
def train(
    task: Annotated[str, typer.Argument(help="Built-in task: regression | double-integrator.")],
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
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines.")] = False,
) -> None:
    """Train a residual policy with the SCPO projector and write the certificate chain."""
    from .config import load_json_config
    from .training import resolve_config
    from .training import resume as resume_run
    from .training import train as train_run

    progress = None if quiet else _progress
    try:
        if resume is not None:
            if out is not None:
                raise InvalidInputError("--out and --resume: expected one of them, got both")
            others = [seed, bank_size, solver, lr, direction, checkpoint_every, config, certified_radius]
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
            for key, val in (("iterations", iterations), ("seed", seed), ("checkpoint_every", checkpoint_every)):
                if val is not None:
                    tr[key] = val
            cfg = resolve_config(task, file_data=file_data, projector_overrides=proj, train_overrides=tr)
            result = train_run(cfg, out, progress=progress)
    except KeyboardInterrupt:
        target = resume or out
        _err(f"\ninterrupted; everything written so far is kept. Continue with: scpo train {task} --resume {target}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ScpoError as exc:
        raise _fail(exc) from None
    _print_summary(result, title=f"scpo train {task}: {result.status}")


@app.command()
def demo(
    out: Annotated[Optional[Path], typer.Option("--out", help="Run directory (default: scpo-runs/demo-<time>).")] = None,
    iterations: Annotated[int, typer.Option(help="Iterations.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Run the embedded default: SCPO on the double integrator with a malicious expert."""
    from .training import resolve_config
    from .training import train as train_run

    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("scpo-runs") / f"demo-{stamp}"
    out.parent.mkdir(parents=True, exist_ok=True)
    typer.echo(
        f"scpo demo: double integrator, LQR backup, malicious PD expert tracking p* = 1.5 (outside |p| ≤ 1); "
        f"{iterations} SCPO iterations -> {out}"
    )
    try:
        cfg = resolve_config("double-integrator", train_overrides={"iterations": iterations, "seed": seed, "log_every": 25})
        result = train_run(cfg, out, progress=_progress)
    except KeyboardInterrupt:
        _err(f"\ninterrupted; continue with: scpo train double-integrator --resume {out}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ScpoError as exc:
        raise _fail(exc) from None
    _print_summary(result, title="scpo demo: done")
    claims = _claims_of(result.run)
    if result.violations or not all(c["holds"] for c in claims if c.get("details", {}).get("required") is not False):
        raise typer.Exit(EXIT_FAILED)


@app.command()
def certify(
    run: Annotated[Path, typer.Argument(help="Run directory written by scpo train.")],
    iteration: Annotated[Optional[int], typer.Option("--iteration", help="Saved iteration (default: the last checkpoint).")] = None,
    horizon: Annotated[Optional[int], typer.Option("--horizon", help="Rollout horizon T (default: the task's).")] = None,
    min_width: Annotated[float, typer.Option("--min-width", help="Smallest box width the refinement splits down to.")] = 0.002,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines.")] = False,
) -> None:
    """Sound region certificate: bound every rollout constraint over boxes covering S (exit 0 all certified, 1 a box failed, 2 bad input)."""
    from .certify.certify_command import certify_command, stderr_progress

    raise typer.Exit(certify_command(run, iteration, horizon, min_width, progress=None if quiet else stderr_progress))


@app.command("verify-lipschitz")
def verify_lipschitz(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    iteration: Annotated[Optional[int], typer.Option("--iteration", help="Iteration K (default: latest with a saved projector state).")] = None,
    radius: Annotated[Optional[float], typer.Option("--radius", help="L2 radius of the parameter region around θ_K (default: derived from the run).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of the table.")] = False,
) -> None:
    """Check the smoothness constants L a run used: sound upper and estimated lower bounds per row."""
    from .certify.lipschitz_command import verify_lipschitz_command

    raise typer.Exit(verify_lipschitz_command(run, iteration, radius, as_json))


@app.command()
def reach(
    task: Annotated[str, typer.Argument(help="Built-in linear task: double-integrator.")],
    horizon: Annotated[int, typer.Option("--horizon", help="N: compute the 0…N-step sets.")] = 30,
    run: Annotated[Optional[Path], typer.Option("--run", help="Run directory: add the learned policy's grid set.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="JSON file for the sets (H-representation) and claims.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="PNG file with the nested sets.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No per-step progress lines.")] = False,
) -> None:
    """Exact backward reachable and invariant sets of the linear system, with checks and a plot."""
    from .reachability.command import reach_command, stdout_progress

    raise typer.Exit(reach_command(task, horizon, run, out, plot, progress=None if quiet else stdout_progress))


@app.command()
def report(run: Annotated[Path, typer.Argument(help="Run directory written by scpo train.")]) -> None:
    """Render RUN/report/: index.html, report.md, summary.json, iterations.csv and the PNG figures."""
    from .reports.commands import report_command

    raise typer.Exit(report_command(run))


@app.command()
def audit(
    run: Annotated[Path, typer.Argument(help="Run directory to audit (trusted or not).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
    iterations: Annotated[
        Optional[str],
        typer.Option("--iterations", help="Checkpoints to re-evaluate: all (default) or a list such as 0,10-20,100-1000:50,last."),
    ] = None,
) -> None:
    """Re-verify a run's certificate chain from its files alone: exit 0 verified, 1 a check failed, 2 bad input."""
    from .reports.commands import audit_command

    raise typer.Exit(audit_command(run, json_out, iterations))


@app.command()
def bench(
    which: Annotated[str, typer.Argument(help="methods | ablations | scaling | all.")] = "all",
    quick: Annotated[bool, typer.Option("--quick", help="Tiny budgets, one seed: a smoke test, not results.")] = False,
    out: Annotated[Path, typer.Option("--out", help="Folder for the CSV and PNG files.")] = Path("bench-out"),
    seed: Annotated[Optional[list[int]], typer.Option("--seed", help="Seed (repeatable); default: each script's own.")] = None,
) -> None:
    """Run the repository's benchmark scripts (each writes CSV + PNG and prints a table)."""
    from .bench_command import bench_command

    try:
        code = bench_command(which, quick, out, seed or None)
    except ScpoError as exc:
        raise _fail(exc) from None
    raise typer.Exit(code)


def main() -> None:
    """Console entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app(prog_name="scpo")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
