"""``scpo verify-lipschitz RUN [--iteration K] [--radius R] [--bound subspace|full] [--sample N] [--json]`` (DESIGN §3, §6).

For the per-row smoothness constants ``L_used`` a run's projector held at iteration ``K``: a
``sound`` upper bound, an ``estimated`` lower bound and a verdict per row
(:func:`scpo.certify.smoothness.verify_smoothness`), summaries by row kind and time step, the
worst rows, the extrapolated violated fraction, and a figure of ``L_used`` against the bounds. Exit
code 0 when every row is certified, 1 otherwise, 2 on bad input. Written:
``RUN/certificates/lipschitz_iter_KKKKKK.json`` and ``RUN/figures/lipschitz_iter_KKKKKK.png``.

Which curvature (``--bound``). ``subspace`` (default): the curvature (★) needs, restricted to the
span of the bank the projector held after iteration ``K`` (``state/bank.safetensors`` of that
iteration, plus the step ``θ_K − θ_{K−1}``), over the ball those offsets and the step cover.
That bank and ball are exactly what the final SOCP of iteration ``K`` used (its offsets, recentred
on ``θ_K``). ``full``: the curvature over the full parameter ball (norm chain), far looser.

Which rows. ``g`` at iteration ``K``: the task's rows plus the states the sound gate added up to
``K`` (the records' ``added_states``).

Which ``L_used``. The projector's state file ``state/projector_KKKKKK.safetensors`` holds the
per-row ``L`` of iteration ``K`` (runs keep the last two); with ``L_fixed`` the per-row values never
change, so any state file gives them. Otherwise only the record's ``L_min``/``L_max`` are known:
a row is then certified only if ``L_min ≥ L̄_i`` and violated only if ``L_max < L̲_i``.

Which radius ``R``, in order of preference:

1. ``--radius R``;
2. the projector's ``certified_radius`` from the run's config (certified-``L`` training keeps every
   evaluated point within that radius);
3. the saved bank of iteration ``K``: ``R = max(max_k ‖δ_k‖, ‖θ_K − θ_{K−1}‖)``, the region the
   final SOCP of iteration ``K`` covered (the full bound also needs iteration ``K`` without a
   rejected try there);
4. full bound only: a bound from the records alone (:func:`scpo.certify.record_region_radius`),
   usually much larger than the bank really was.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._common import fail
from .exit_codes import EXIT_FAILED, EXIT_OK

__all__ = ["verify_lipschitz", "verify_lipschitz_command", "lipschitz_run", "render"]

_CERTIFIED_MODES = ("certified", "subspace")


def _read_bank(run, iteration: int, theta):
    """The saved bank offsets (k, d) when ``state/bank.safetensors`` describes iteration ``K`` at ``θ_K``; else None."""
    import numpy as np
    from safetensors import safe_open

    from ..runs.files import read_tensors

    path = run.paths.bank
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "np") as fh:
            meta = fh.metadata() or {}
        bank = read_tensors(path)
    except Exception:  # a damaged bank only loses this way of deriving the subspace and radius
        return None
    if meta.get("iteration") != str(iteration) or "bank_offsets" not in bank:
        return None
    ref = bank.get("bank_theta_ref")
    if ref is None or ref.shape != theta.shape or not np.array_equal(ref, theta):
        return None
    return np.asarray(bank["bank_offsets"], dtype=float)


def _previous_theta(run, iteration: int, states: dict):
    """``θ_{K−1}`` from its state file or checkpoint, or None."""
    import numpy as np

    from ..runs.files import read_tensors

    if iteration - 1 in states:
        return np.asarray(read_tensors(states[iteration - 1])["theta"], dtype=float)
    if iteration - 1 in run.checkpoints:
        return np.asarray(run.theta(iteration - 1), dtype=float)
    return None


def _theta_and_L(run, iteration: int, states: dict, proj: dict, by_it: dict, N_of):
    """θ_K (from the state file or the checkpoint) and the range of L_used per row, with their sources."""
    import numpy as np

    from ..errors import RunDirectoryError
    from ..runs import theta_sha256
    from ..runs.files import read_tensors

    state = read_tensors(states[iteration]) if iteration in states else None
    if state is not None:
        theta = np.asarray(state["theta"], dtype=float)
        src_theta = f"state/{states[iteration].name}"
    else:
        theta = run.theta(iteration)
        src_theta = f"checkpoint of iteration {iteration}"
    rec = by_it.get(iteration)
    if rec is not None and rec.get("theta_sha256") and rec["theta_sha256"] != theta_sha256(theta):
        raise RunDirectoryError(f"iteration {iteration}: the parameters in the {src_theta} do not match the record's hash")
    N = N_of(theta)
    if state is not None and "L" in state:
        L_lo = L_hi = np.asarray(state["L"], dtype=float)
        L_src = f"per-row L from state/{states[iteration].name}"
    elif proj.get("L_fixed") and states:
        any_state = read_tensors(states[max(states)])
        L_lo = L_hi = np.asarray(any_state["L"], dtype=float)
        L_src = f"per-row L from state/{states[max(states)].name} (L_fixed: the same at every iteration)"
    elif rec is not None:
        L_lo = np.full(N, float(rec["L_min"]))
        L_hi = np.full(N, float(rec["L_max"]))
        L_src = f"record of iteration {iteration}: per-row L not saved, only L_min = {rec['L_min']:.4g}, L_max = {rec['L_max']:.4g}"
    elif iteration == 0:
        L_lo = L_hi = np.full(N, float(proj.get("L_init", 1.0)))
        L_src = "the projector's L_init (iteration 0)"
    else:
        raise RunDirectoryError(f"iteration {iteration}: no state file and no record, so the L used is unknown")
    if L_lo.shape != (N,):
        raise RunDirectoryError(f"L_used: expected {N} rows, got shape {L_lo.shape}")
    return theta, src_theta, L_lo, L_hi, L_src


def _subspace(run, iteration, theta, states, radius, proj, available_bank) -> tuple[Any, float, float, str, Any]:
    """Basis, residual, radius and its derivation, and the second-difference directions of the subspace bound."""
    import numpy as np

    from .._validate import check_positive
    from ..certify.smoothness import subspace_basis
    from ..errors import RunDirectoryError

    offs = _read_bank(run, iteration, theta)
    if offs is None:
        hint = f" (the saved bank is of iteration {available_bank})" if available_bank is not None else ""
        raise RunDirectoryError(f"iteration {iteration}: no saved bank of this iteration{hint}, so the subspace (★) used is unknown; "
                                "pick the iteration of the saved bank or pass --bound full")
    prev = _previous_theta(run, iteration, states)
    step = None if prev is None else theta - prev
    pts = offs if step is None or not np.any(step) else np.vstack([offs, -step[None]])
    Q, residual = subspace_basis(pts)  # raises on a bank without a direction
    far = float(np.max(np.linalg.norm(offs, axis=1))) if offs.size else 0.0
    stp = 0.0 if step is None else float(np.linalg.norm(step))
    if radius is not None:
        R, how = radius, "--radius"
    elif proj.get("certified_radius"):
        R, how = check_positive("projector.certified_radius", proj["certified_radius"]), "the run's certified_radius (certified-L training)"
    else:
        R = max(far, stp)
        how = f"saved bank of iteration {iteration}: largest offset {far:.4g}, step {stp:.4g}"
        if step is None:
            how += " (θ_{K−1} not saved: the step is not in the subspace)"
    dirs = offs[np.linalg.norm(offs, axis=1) > 0]
    dirs = np.vstack([dirs, Q.T]) if dirs.size else Q.T
    if not (math.isfinite(R) and R > 0):
        raise RunDirectoryError(f"iteration {iteration}: the bank and step give no positive radius ({R}); pass --radius")
    return Q, residual, R, how, dirs


def _as_certified(run, iteration, theta, states, proj, available_bank) -> tuple[Any, str, Any, float, float, str, Any]:
    """Where a subspace-L run's constants of iteration ``K`` were certified: at ``θ_{K−1}``, on the ball of its certified_radius.

    Iteration ``K`` set ``L`` at ``θ_{K−1}`` on the span of its bank after probing; the saved bank
    holds the entries that survived the step ``Δ_K`` (offsets from ``θ_K``), i.e. ``δ + Δ_K`` from
    ``θ_{K−1}``, and ``Δ_K`` lies in that span too: the re-check is on a subspace of the one used,
    with the same centre and radius, so every row's ``L_used`` must be at least its sound bound.
    """
    import numpy as np

    from .._validate import check_positive
    from ..certify.smoothness import subspace_basis
    from ..errors import RunDirectoryError

    offs = _read_bank(run, iteration, theta)
    prev = _previous_theta(run, iteration, states)
    if offs is None or prev is None:
        hint = f" (the saved bank is of iteration {available_bank})" if available_bank is not None else ""
        raise RunDirectoryError(f"iteration {iteration}: a subspace-L run is re-checked at θ_(K−1) with the saved bank of iteration K, "
                                f"and one of them is missing{hint}; pick the iteration of the saved bank or pass --radius")
    step = theta - prev
    pts = np.vstack([offs + step[None, :], step[None, :]]) if np.any(step) else offs
    Q, residual = subspace_basis(pts)  # raises on a bank without a direction
    r = check_positive("projector.certified_radius", proj.get("certified_radius"))
    R = max(r, float(np.max(np.linalg.norm(pts, axis=1)))) * (1 + 1e-12)
    how = (f"the run's certified_radius {r:g} around θ_{iteration - 1}, where iteration {iteration} certified its L "
           f"(on the span of the surviving bank entries and the step, a subspace of the one it used)")
    dirs = pts[np.linalg.norm(pts, axis=1) > 0]
    return prev, f"θ_{iteration - 1} (centre of iteration {iteration}'s certificate)", Q, residual, R, how, np.vstack([dirs, Q.T])


def _full_radius(run, iteration, theta, radius, proj, records, by_it, notes) -> tuple[float, str]:
    import numpy as np

    from .._validate import check_positive
    from ..certify import record_region_radius

    if radius is not None:
        return radius, "--radius"
    if proj.get("certified_radius"):
        return check_positive("projector.certified_radius", proj["certified_radius"]), "the run's certified_radius (certified-L training)"
    rec = by_it.get(iteration)
    offs = _read_bank(run, iteration, theta)
    if offs is not None and rec is not None and int(rec.get("rejected_tries", 0) or 0) == 0:
        far = float(np.max(np.linalg.norm(offs, axis=1))) if offs.size else 0.0
        stp = float(rec.get("step_norm", 0.0)) if rec.get("accepted") else 0.0
        R = max(far, stp)
        if math.isfinite(R) and R > 0:
            return R, f"saved bank of iteration {iteration}: largest offset {far:.4g}, step {stp:.4g} (no rejected try)"
    got = record_region_radius(records, iteration, bank_size=int(proj.get("bank_size", 16)), probe_radius=proj.get("probe_radius"))
    notes.append("the radius is the records' worst case (every bank entry living bank_size iterations); 'violated' then "
                 "means L_used is too small for this ball, not necessarily for the points the run evaluated — "
                 "pass --radius to check a smaller region")
    if int(proj.get("refresh", 0) or 0) and proj.get("probe_radius") is None:
        notes.append("refresh > 0 without probe_radius: refreshed probes are bounded by the same sums of step lengths")
    return got


def lipschitz_run(run_path: str | Path, iteration: int | None = None, radius: float | None = None, *, bound: str = "subspace",
                  sample_rows: int = 192, worst_rows: int = 64, seed: int = 0, threads: int | None = 1) -> dict[str, Any]:
    """Compute the smoothness certificate of a run, write it and its figure; returns the JSON-ready certificate.

    ``threads``: torch threads during the computation (restored afterwards; ``None`` leaves them).
    The work per operation is small, and on a shared 2-core machine two threads were measured ten
    times slower than one (``benchmarks/bench_smoothness.py``).

    Raises the :mod:`scpo.errors` exceptions of bad input (missing run, iteration without checkpoint,
    radius ≤ 0 or not finite, no bank for the subspace bound, ReLU or switching policy, …).
    """
    import torch

    from .._validate import check_int

    if threads is None:
        return _lipschitz_run(run_path, iteration, radius, bound, sample_rows, worst_rows, seed)
    threads = check_int("threads", threads, minimum=1)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _lipschitz_run(run_path, iteration, radius, bound, sample_rows, worst_rows, seed)
    finally:
        torch.set_num_threads(old)


def _lipschitz_run(run_path, iteration, radius, bound, sample_rows, worst_rows, seed) -> dict[str, Any]:
    import numpy as np

    from .._io import atomic_write_json
    from .._validate import check_in, check_int, check_positive
    from .._version import __version__
    from ..certify import require_unswitched
    from ..certify.smoothness import BOUNDS, verification_figure, verify_smoothness
    from ..errors import RunDirectoryError
    from ..runs import SCHEMA_VERSION, load_run, theta_sha256, verify_intact
    from ..training import restore_added_states

    t_start = time.perf_counter()
    check_in("bound", bound, BOUNDS)
    if radius is not None:
        radius = check_positive("radius", radius)
    if iteration is not None:
        iteration = check_int("iteration", iteration, minimum=0)
    check_int("sample", sample_rows, minimum=0)
    run = load_run(run_path)
    verify_intact(run.path)  # a damaged run receives no new certificate (bad input, before any work)
    records = run.records
    by_it = {int(r["iteration"]): r for r in records}
    states = run.paths.state_files()
    if iteration is None:
        if states:
            iteration = max(states)
        elif run.checkpoints:
            iteration = max(run.checkpoints)
        else:
            raise RunDirectoryError(f"run {str(run.path)!r}: no projector state and no checkpoint")
    proj = dict(run.config.get("projector", {}))
    task = run.task
    # rows the sound gate added up to iteration K (the adaptive validation set) are rows of g there
    restore_added_states(task, [r for r in records if int(r["iteration"]) <= iteration])
    task.structure.require_smooth()
    require_unswitched(task.policy)
    theta, src_theta, L_lo, L_hi, L_src = _theta_and_L(run, iteration, states, proj, by_it,
                                                       lambda th: int(np.asarray(task.constraints(th[None])).shape[1]))
    notes: list[str] = []
    basis = dirs = None
    residual = float("nan")
    if bound == "subspace":
        bank_it = None
        if run.paths.bank.is_file():
            from safetensors import safe_open

            try:
                with safe_open(str(run.paths.bank), "np") as fh:
                    bank_it = (fh.metadata() or {}).get("iteration")
            except Exception:
                bank_it = None
        if proj.get("L_mode") == "subspace" and radius is None:
            theta, src_theta, basis, residual, R, how, dirs = _as_certified(run, iteration, theta, states, proj, bank_it)
        else:
            basis, residual, R, how, dirs = _subspace(run, iteration, theta, states, radius, proj, bank_it)
    else:
        R, how = _full_radius(run, iteration, theta, radius, proj, records, by_it, notes)
    required = proj.get("L_mode") in _CERTIFIED_MODES
    ver = verify_smoothness(task.problem, task.structure, theta, task.constraint_states, L_lo, L_hi, R, bound=bound, basis=basis,
                            directions=dirs, aggregation=task.rows, temperature=task.lse_temperature, labels=task.constraint_labels(),
                            iteration=iteration, sample_rows=sample_rows, worst_rows=worst_rows, required=required, residual=residual,
                            seed=seed)
    if not required:
        notes.append(f"L_mode {proj.get('L_mode', 'adaptive')!r}: the run's safety rests on the evaluated acceptance test, not on these "
                     "constants, so the smoothness claims are reported, not required")
    body = ver.to_dict()
    figure = verification_figure(ver, run.paths.figures / f"lipschitz_iter_{iteration:06d}.png")
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "scpo_version": __version__, "kind": "lipschitz_certificate", "run": str(run.path),
        "task": task.name, "iteration": iteration, "theta_sha256": theta_sha256(theta), "theta_source": src_theta,
        "rows": body.pop("rows"), "bound": body.pop("bound"), "row_mode": body.pop("row_mode"), "statement": body.pop("statement"),
        "region": {**body.pop("region"), "derivation": how}, "L_used_source": L_src, **body,
    }
    out["timings_s"]["total"] = time.perf_counter() - t_start
    out["notes"] = notes + out["notes"]
    out["figure"] = str(figure)
    target = run.paths.lipschitz_certificate(iteration)
    atomic_write_json(target, out)
    out["written"] = str(target)
    return out


def _fmt(s: dict[str, float]) -> str:
    if not s.get("n"):
        return "none"
    return f"min {s['min']:.4g}, median {s['median']:.4g}, max {s['max']:.4g} ({s['n']} rows)"


def render(out: dict[str, Any]) -> str:
    """The table printed by ``scpo verify-lipschitz``."""
    c = out["counts"]
    sm = out["summary"]
    reg = out["region"]
    where = (f"ball ‖a‖ ≤ {reg['radius']:.4g} in the {reg['dim']}-dimensional bank subspace" if out["bound"] == "subspace"
             else f"L2 ball of radius {reg['radius']:.4g} in parameter space")
    lines = [
        f"scpo verify-lipschitz {out['run']}  iteration {out['iteration']}  (θ sha256 {out['theta_sha256'][:12]}…, from {out['theta_source']})",
        f"  rows                   {out['rows']} ({out['row_mode']})",
        f"  curvature              {out['bound']} — {where} ({reg['derivation']})",
        f"  L used                 {out['L_used_source']}: {_fmt(sm['L_used'])}",
        f"  sound upper bound      {_fmt(sm['sound'])}",
        f"  estimated lower bound  {_fmt(sm['lower'])}",
    ]
    for k, v in sm["lower_by_source"].items():
        lines.append(f"    {k:<20} {_fmt(v)}")
    lines += [
        f"  looseness sound/lower  {_fmt(sm['looseness_sound_over_lower'])}",
        f"  verdicts               certified {c['certified']}   plausible {c['plausible']}   violated {c['violated']}   "
        f"unexamined {c['unexamined']}",
    ]
    ex = out["extrapolation"]
    if ex.get("sample"):
        lo, hi = ex["interval"]
        rlo, rhi = ex["rows_interval"]
        lines.append(f"  random sample          {ex['violated_in_sample']} of {ex['sample']} violated after the search: fraction "
                     f"{ex['fraction']:.3g}, {100 * ex['confidence']:.0f}% interval [{lo:.3g}, {hi:.3g}] -> about "
                     f"{ex['rows_estimate']:.4g} rows [{rlo:.4g}, {rhi:.4g}] (estimated)")
    lines.append("  by row kind            " + "   ".join(
        f"{k}: {v['certified']}/{v['rows']} certified, {v['violated']} violated, sound/lower {v['sound_over_lower_median']:.3g}"
        for k, v in sm["by_kind"].items()))
    by_t = sm["by_time"]
    if len(by_t) > 1:
        ts = sorted(by_t, key=lambda s: int(s))
        pick = ts if len(ts) <= 8 else sorted(set(ts[:: math.ceil(len(ts) / 7)] + [ts[-1]]), key=int)
        lines.append("  by time step           " + "   ".join(
            f"t={t}: {by_t[t]['violated']}/{by_t[t]['rows']} violated, sound/lower {by_t[t]['sound_over_lower_median']:.3g}" for t in pick))
    lines += ["  rows with the largest sound bound relative to L used",
              f"    {'row':>7} {'L used':>10} {'lower':>10} {'sound':>10}  verdict     label"]
    for w in out["worst_rows"]:
        lines.append(_row_line(w))
    if out["most_violated"]:
        lines += ["  rows with the largest lower bound relative to L used"]
        for w in out["most_violated"][:5]:
            lines.append(_row_line(w))
    lines.append(f"  statement              {out['statement']}")
    for n in out["notes"]:
        lines.append(f"  note: {n}")
    lines.append(f"  written                {out['written']}, {out['figure']}")
    lines.append(f"  time                   {out['timings_s']['total']:.1f} s")
    lines.append("  result                 " + ("every row certified" if out["all_certified"] else
                                               f"not every row is certified ({c['plausible']} plausible, {c['violated']} violated, "
                                               f"{c['unexamined']} unexamined)"))
    return "\n".join(lines)


def _row_line(w: dict[str, Any]) -> str:
    lu = f"{w['L_used_min']:.4g}" if w["L_used_min"] == w["L_used_max"] else f"{w['L_used_min']:.3g}..{w['L_used_max']:.3g}"
    lo = "—" if not math.isfinite(w["lower"]) else f"{w['lower']:.4g}"
    return f"    {w['row']:>7} {lu:>10} {lo:>10} {w['sound']:>10.4g}  {w['verdict']:<11} {w['label']}"


def verify_lipschitz_command(run: Path, iteration: int | None, radius: float | None, as_json: bool, *, bound: str = "subspace",
                             sample: int = 192, threads: int = 1) -> int:
    """Print the smoothness certificate of a run; return the exit code (0 all certified, 1 not, 2 bad input)."""
    from ..errors import ScpoError
    from ..evidence import _jsonable

    try:
        out = lipschitz_run(run, iteration, radius, bound=bound, sample_rows=sample, threads=threads)
    except ScpoError as exc:
        return fail(exc).exit_code
    typer.echo(json.dumps(_jsonable(out), indent=2, allow_nan=False) if as_json else render(out))
    return EXIT_OK if out["all_certified"] else EXIT_FAILED


def verify_lipschitz(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    iteration: Annotated[Optional[int], typer.Option("--iteration", help="Iteration K (default: latest with a saved projector state).")] = None,
    radius: Annotated[Optional[float], typer.Option("--radius", help="Radius of the region around θ_K (default: derived from the run).")] = None,
    bound: Annotated[str, typer.Option("--bound", help="Curvature to verify: 'subspace' (the bank's span, what (★) needs) or 'full'.")] = "subspace",
    sample: Annotated[int, typer.Option("--sample", help="Rows drawn at random for the lower-bound search.")] = 192,
    threads: Annotated[int, typer.Option("--threads", help="Torch threads during the computation.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of the table.", metavar="")] = False,
) -> None:
    """Check the smoothness constants L a run used: sound upper and estimated lower bounds per row (exit 0 all certified, 1 not, 2 bad input)."""
    raise typer.Exit(verify_lipschitz_command(run, iteration, radius, as_json, bound=bound, sample=sample, threads=threads))
