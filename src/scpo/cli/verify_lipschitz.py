"""``scpo verify-lipschitz RUN [--iteration K] [--radius R] [--json]`` (DESIGN §6, smoothness certificate).

For the per-row smoothness constants ``L_used`` a run's projector held at iteration ``K``, a
``sound`` upper bound, an ``estimated`` lower bound and a verdict per row
(:func:`scpo.certify.verify_smoothness`); exit code 0 when every row is certified, 1 otherwise, 2 on
bad input. The certificate is written to ``RUN/certificates/lipschitz_iter_KKKKKK.json``.

Which ``L_used``. The projector's state file ``state/projector_KKKKKK.safetensors`` holds the
per-row ``L`` of iteration ``K`` (runs keep the last two); with ``L_fixed`` the per-row values never
change, so any state file gives them. Otherwise only the record's ``L_min``/``L_max`` are known:
a row is then certified only if ``L_min ≥ L̄_i`` and violated only if ``L_max < L̲_i``.

Which region (``R``). (★) at an iteration uses the segments from the iterate to every bank point
and to the candidate; ``B(θ_K, R)`` must contain the points of iterations ``K`` (which started
at ``θ_{K−1} = θ_K − Δ_K``) and ``K+1``. In order of preference:

1. ``--radius R``;
2. the projector's ``certified_radius`` from the run's config (a run trained with certified
   ``L``, whose projector keeps every evaluated point within that radius);
3. the saved bank, when it was written at iteration ``K`` and iteration ``K`` had no rejected
   try (then the bank after ``K`` is the one its final SOCP used, recentred):
   ``R = max(max_k ‖δ_k‖, ‖Δ_K‖)``; this is the region the steps actually covered;
4. a bound from the records alone (:func:`scpo.certify.record_region_radius`), usually much
   larger than the bank really was.
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


def _bank_radius(run, iteration: int, theta, records: dict[int, dict[str, Any]]) -> tuple[float, str] | None:
    """``max(max_k ‖δ_k‖, ‖Δ_K‖)`` from ``state/bank.safetensors`` when it describes iteration ``K``."""
    import numpy as np
    from safetensors import safe_open

    from ..runs.files import read_tensors

    path = run.paths.bank
    rec = records.get(iteration)
    if not path.is_file() or rec is None or int(rec.get("rejected_tries", 0) or 0) != 0:
        return None
    try:
        with safe_open(str(path), "np") as fh:
            meta = fh.metadata() or {}
        bank = read_tensors(path)
    except Exception:  # a damaged bank only loses this way of deriving the radius
        return None
    if meta.get("iteration") != str(iteration) or "bank_offsets" not in bank:
        return None
    ref = bank.get("bank_theta_ref")
    if ref is None or ref.shape != theta.shape or not np.array_equal(ref, theta):
        return None
    offs = np.asarray(bank["bank_offsets"], dtype=float)
    far = float(np.max(np.linalg.norm(offs, axis=1))) if offs.size else 0.0
    stp = float(rec.get("step_norm", 0.0)) if rec.get("accepted") else 0.0
    R = max(far, stp)
    if not (math.isfinite(R) and R > 0):
        return None
    return R, f"saved bank of iteration {iteration}: largest offset {far:.4g}, step {stp:.4g} (no rejected try)"


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


def _radius(run, iteration, theta, radius, proj, records, by_it, notes) -> tuple[float, str]:
    from .._validate import check_positive
    from ..certify import record_region_radius

    if radius is not None:
        return radius, "--radius"
    if proj.get("certified_radius"):
        return check_positive("projector.certified_radius", proj["certified_radius"]), "the run's certified_radius (certified-L training)"
    got = _bank_radius(run, iteration, theta, by_it)
    if got is None:
        got = record_region_radius(records, iteration, bank_size=int(proj.get("bank_size", 16)), probe_radius=proj.get("probe_radius"))
        notes.append("the radius is the records' worst case (every bank entry living bank_size iterations); 'violated' then "
                     "means L_used is too small for this ball, not necessarily for the points the run evaluated — "
                     "pass --radius to check a smaller region")
        if int(proj.get("refresh", 0) or 0) and proj.get("probe_radius") is None:
            notes.append("refresh > 0 without probe_radius: refreshed probes are bounded by the same sums of step lengths")
    return got


def lipschitz_run(run_path: str | Path, iteration: int | None = None, radius: float | None = None, *,
                  max_lower_rows: int = 64, seed: int = 0) -> dict[str, Any]:
    """Compute the smoothness certificate of a run and write it; returns the JSON-ready certificate.

    Raises the :mod:`scpo.errors` exceptions of bad input (missing run, iteration without checkpoint,
    radius ≤ 0, ReLU or switching policy, …).
    """
    import numpy as np

    from .._io import atomic_write_json
    from .._validate import check_int, check_positive
    from .._version import __version__
    from ..certify import require_unswitched, verify_smoothness
    from ..errors import RunDirectoryError
    from ..runs import SCHEMA_VERSION, load_run, theta_sha256

    t_start = time.perf_counter()
    if radius is not None:
        radius = check_positive("radius", radius)
    if iteration is not None:
        iteration = check_int("iteration", iteration, minimum=0)
    check_int("max_lower_rows", max_lower_rows, minimum=1)
    run = load_run(run_path)
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
    theta, src_theta, L_lo, L_hi, L_src = _theta_and_L(run, iteration, states, proj, by_it,
                                                       lambda th: int(np.asarray(task.constraints(th[None])).shape[1]))
    notes: list[str] = []
    R, how = _radius(run, iteration, theta, radius, proj, records, by_it, notes)
    require_unswitched(task.policy)
    ver = verify_smoothness(task.problem, task.structure, theta, task.constraint_states, L_lo, L_hi, R, aggregation=task.rows,
                            temperature=task.lse_temperature, labels=task.constraint_labels(), iteration=iteration,
                            max_lower_rows=max_lower_rows, seed=seed)
    body = ver.to_dict()
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "scpo_version": __version__, "kind": "lipschitz_certificate", "run": str(run.path),
        "task": task.name, "iteration": iteration, "theta_sha256": theta_sha256(theta), "theta_source": src_theta,
        "rows": body.pop("rows"), "row_mode": body.pop("row_mode"), "statement": body.pop("statement"),
        "region": {"kind": "ball", "radius": R, "derivation": how}, "L_used_source": L_src, **body,
    }
    out["timings_s"]["total"] = time.perf_counter() - t_start
    out["notes"] = notes + out["notes"]
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
    lines = [
        f"scpo verify-lipschitz {out['run']}  iteration {out['iteration']}  (θ sha256 {out['theta_sha256'][:12]}…, from {out['theta_source']})",
        f"  rows                   {out['rows']} ({out['row_mode']})",
        f"  region                 L2 ball of radius {out['region']['radius']:.4g} — {out['region']['derivation']}",
        f"  L used                 {out['L_used_source']}: {_fmt(sm['L_used'])}",
        f"  sound upper bound      {_fmt(sm['sound'])}",
    ]
    for k, v in sm["sound_by_method"].items():
        lines.append(f"    {k:<20} {_fmt(v)}")
    lines += [
        f"  estimated lower bound  {_fmt(sm['lower'])}",
        f"  looseness sound/lower  {_fmt(sm['looseness_sound_over_lower'])}",
        f"  verdicts               certified {c['certified']}   plausible {c['plausible']}   violated {c['violated']}",
        "  rows with the largest sound bound relative to L used",
        f"    {'row':>6} {'L used':>10} {'lower':>10} {'sound':>10}  verdict    label",
    ]
    for w in out["worst_rows"]:
        lu = f"{w['L_used_min']:.4g}" if w["L_used_min"] == w["L_used_max"] else f"{w['L_used_min']:.3g}..{w['L_used_max']:.3g}"
        lo = "—" if not math.isfinite(w["lower"]) else f"{w['lower']:.4g}"
        lines.append(f"    {w['row']:>6} {lu:>10} {lo:>10} {w['sound']:>10.4g}  {w['verdict']:<10} {w['label']}")
    lines.append(f"  statement              {out['statement']}")
    for n in out["notes"]:
        lines.append(f"  note: {n}")
    lines.append(f"  written                {out['written']}")
    lines.append("  result                 " + ("every row certified" if out["all_certified"] else
                                               f"not every row is certified ({c['plausible']} plausible, {c['violated']} violated)"))
    return "\n".join(lines)


def verify_lipschitz_command(run: Path, iteration: int | None, radius: float | None, as_json: bool) -> int:
    """Print the smoothness certificate of a run; return the exit code (0 all certified, 1 not, 2 bad input)."""
    from ..errors import ScpoError
    from ..evidence import _jsonable

    try:
        out = lipschitz_run(run, iteration, radius)
    except ScpoError as exc:
        return fail(exc).exit_code
    typer.echo(json.dumps(_jsonable(out), indent=2, allow_nan=False) if as_json else render(out))
    return EXIT_OK if out["all_certified"] else EXIT_FAILED


def verify_lipschitz(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    iteration: Annotated[Optional[int], typer.Option("--iteration", help="Iteration K (default: latest with a saved projector state).")] = None,
    radius: Annotated[Optional[float], typer.Option("--radius", help="L2 radius of the parameter region around θ_K (default: derived from the run).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of the table.")] = False,
) -> None:
    """Check the smoothness constants L a run used: sound upper and estimated lower bounds per row (exit 0 all certified, 1 not, 2 bad input)."""
    raise typer.Exit(verify_lipschitz_command(run, iteration, radius, as_json))
