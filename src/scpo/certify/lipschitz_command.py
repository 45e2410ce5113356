"""``scpo verify-lipschitz RUN [--iteration K] [--radius R] [--json]`` (DESIGN §6, smoothness certificate).

For the per-row smoothness constants ``L_used`` a run's projector held at iteration ``K``:

* a ``sound`` upper bound ``L̄_i ≥ sup_{θ ∈ B(θ_K, R)} ‖∇²g_i(θ)‖₂`` (:mod:`scpo.certify.smoothness`),
* an ``estimated`` lower bound ``L̲_i`` (power iteration, projected ascent, second differences)
  for every row (regression) or for the rows most at risk (rollout tasks),

and a verdict per row: ``certified`` (``L_used ≥ L̄``), ``violated`` (``L_used < L̲``: the
smoothness assumption behind (★) is false for that row on the region) or ``plausible``
(between). Exit code 0 when every row is certified, 1 otherwise, 2 on bad input.

Which ``L_used``. The projector's state file ``state/projector_XXXXXXXX.safetensors`` holds the
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
4. a bound from the records alone: a bank entry of iteration ``s`` has length at most
   ``p_s`` (``min(‖Δ_raw,s‖, probe_radius)``, or ``‖Δ_raw,s‖`` when a try was rejected or probes
   are not capped), grows by each later accepted step, and survives at most ``bank_size``
   probing iterations; candidates are at most ``‖Δ_raw‖`` (projection onto a convex set
   containing 0 does not lengthen the step) or exactly the accepted step when no try was
   rejected. This worst case is usually much larger than the bank really was.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import check_int, check_positive
from ..errors import InvalidInputError, RunDirectoryError, UnsupportedError
from ..evidence import Claim, Level

__all__ = ["verify_lipschitz_command", "verify_lipschitz", "record_region_radius", "VERDICTS"]

logger = logging.getLogger(__name__)

VERDICTS = ("certified", "plausible", "violated")
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
_STATE = re.compile(r"^projector_(\d{6,})\.safetensors$")
MAX_LOWER_ROWS = 64
"""Rollout tasks: rows examined for a lower bound (regression: every row)."""


def _state_files(run) -> dict[int, Path]:
    out: dict[int, Path] = {}
    if run.paths.state.is_dir():
        for p in run.paths.state.iterdir():
            m = _STATE.match(p.name)
            if m:
                out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def _load_state(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # a damaged or foreign file is bad input
        raise RunDirectoryError(f"state file {str(path)!r}: not a readable safetensors file ({exc})") from None


def record_region_radius(records: list[dict[str, Any]], iteration: int, *, bank_size: int, probe_radius: float | None) -> tuple[float, str]:
    """Record-only bound on the radius around ``θ_K`` that iterations ``K`` and ``K+1`` used.

    Parameters
    ----------
    records : list of dict
        The run's certificate records.
    iteration : int
        ``K``.
    bank_size : int
        The projector's bank capacity ``m``.
    probe_radius : float or None

    Returns
    -------
    radius : float
    how : str
        The derivation, for the report.

    Raises
    ------
    InvalidInputError
        When no record covers iteration ``K`` or ``K+1``.
    """
    by_it = {int(r["iteration"]): r for r in records}

    def fnum(r, key):
        v = r.get(key)
        return float(v) if isinstance(v, (int, float)) and math.isfinite(float(v)) else float("nan")

    def step(r):
        return fnum(r, "step_norm") if r.get("accepted") else 0.0

    def probing(r):
        raw = fnum(r, "raw_step_norm")
        return math.isfinite(raw) and raw > 0

    def entry_len(r):  # longest bank entry added at this iteration (relative to its start point)
        raw = fnum(r, "raw_step_norm")
        capped = probe_radius is not None and int(r.get("rejected_tries", 0) or 0) == 0
        return min(raw, probe_radius) if capped else raw

    def cand_len(r):
        if r.get("accepted") and int(r.get("rejected_tries", 0) or 0) == 0:
            return step(r)
        return fnum(r, "raw_step_norm")

    def reach(u):  # largest offset from θ_{u−1} used at iteration u
        r = by_it[u]
        if not probing(r):
            return 0.0
        best = max(cand_len(r), entry_len(r))
        window, acc, s = 0, 0.0, u - 1
        while s >= 1 and window < bank_size - 1 and s in by_it:
            rs = by_it[s]
            acc += step(rs)
            if probing(rs):
                window += 1
                best = max(best, entry_len(rs) + acc)
            s -= 1
        return best

    parts = []
    R = float("nan")
    if iteration + 1 in by_it:
        R = reach(iteration + 1)
        parts.append(f"iteration {iteration + 1}: {R:.4g}")
    if iteration in by_it:
        rk = reach(iteration) + step(by_it[iteration])
        parts.append(f"iteration {iteration}: {rk:.4g} (incl. its step)")
        R = rk if not math.isfinite(R) else max(R, rk)
    if not parts:
        raise InvalidInputError(f"iteration: no record of iteration {iteration} or {iteration + 1}, so the region its steps covered is unknown; pass --radius")
    if not (math.isfinite(R) and R > 0):
        raise InvalidInputError(f"iteration: the records give no step around iteration {iteration} (radius {R}); pass --radius")
    return R, f"records (worst-case bank lifetime of {bank_size} probing iterations): " + ", ".join(parts)


def _bank_radius(run, iteration: int, theta: np.ndarray, records: dict[int, dict[str, Any]]) -> tuple[float, str] | None:
    """``max(max_k ‖δ_k‖, ‖Δ_K‖)`` from ``state/bank.safetensors`` when it describes iteration ``K``."""
    path = run.paths.state / "bank.safetensors"
    rec = records.get(iteration)
    if not path.is_file() or rec is None or int(rec.get("rejected_tries", 0) or 0) != 0:
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), "np") as fh:
            meta = fh.metadata() or {}
        bank = _load_state(path)
    except Exception:
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


def _select_lower_rows(L_hi: np.ndarray, sound: np.ndarray, n: int) -> np.ndarray:
    """Rows most at risk: largest sound/used ratio, then smallest L_used."""
    N = sound.size
    if N <= n:
        return np.arange(N)
    ratio = sound / np.maximum(L_hi, 1e-300)
    a = np.argsort(-ratio, kind="stable")[: n // 2]
    b = np.argsort(L_hi, kind="stable")
    rest = [i for i in b if i not in set(a)][: n - a.size]
    return np.sort(np.concatenate([a, np.asarray(rest, dtype=int)]))


def verify_lipschitz(run_path: str | Path, iteration: int | None = None, radius: float | None = None,
                     *, max_lower_rows: int = MAX_LOWER_ROWS, seed: int = 0) -> dict[str, Any]:
    """Compute the smoothness certificate of a run (the work behind :func:`verify_lipschitz_command`).

    Parameters
    ----------
    run_path : path
    iteration : int, optional
        Default: the latest iteration with a saved projector state (else the last checkpoint).
    radius : float, optional
        L2 radius of the region around ``θ_K``; default derived as in the module docstring.
    max_lower_rows : int
        Rollout tasks: rows examined for a lower bound.
    seed : int

    Returns
    -------
    dict
        JSON-ready certificate (also written to ``RUN/certificates/lipschitz_iter_XXXXXX.json``).

    Raises
    ------
    InvalidInputError, RunDirectoryError, UnsupportedError
        Bad input (missing run, iteration without checkpoint, radius ≤ 0, ReLU policy, …).
    """
    from .. import __version__
    from ..runs import load_run
    from ..runs.files import SCHEMA_VERSION, atomic_write_json, theta_sha256
    from .smoothness import Region, smoothness_bounds, smoothness_lower_bounds

    t_start = time.perf_counter()
    if radius is not None:
        radius = check_positive("radius", radius)
    if iteration is not None:
        iteration = check_int("iteration", iteration, minimum=0)
    check_int("max_lower_rows", max_lower_rows, minimum=1)
    run = load_run(run_path)
    records = run.records
    by_it = {int(r["iteration"]): r for r in records}
    states = _state_files(run)
    if iteration is None:
        if states:
            iteration = max(states)
        elif run.checkpoints:
            iteration = max(run.checkpoints)
        else:
            raise RunDirectoryError(f"run {str(run.path)!r}: no projector state and no checkpoint")
    proj = dict(run.config.get("projector", {}))
    notes: list[str] = []
    # ---- θ_K and L_used
    state = _load_state(states[iteration]) if iteration in states else None
    if state is not None:
        theta = np.asarray(state["theta"], dtype=float)
        src_theta = f"state/{states[iteration].name}"
    else:
        theta = run.theta(iteration)
        src_theta = f"checkpoint of iteration {iteration}"
    rec = by_it.get(iteration)
    if rec is not None and rec.get("theta_sha256") and rec["theta_sha256"] != theta_sha256(theta):
        raise RunDirectoryError(f"iteration {iteration}: the parameters in the {src_theta} do not match the record's hash")
    task = run.task
    N = int(np.asarray(task.constraints(theta[None])).shape[1])
    if state is not None and "L" in state:
        L_lo = L_hi = np.asarray(state["L"], dtype=float)
        L_src = f"per-row L from state/{states[iteration].name}"
    elif proj.get("L_fixed") and states:
        any_state = _load_state(states[max(states)])
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
    # ---- region
    if radius is not None:
        R, how = radius, "--radius"
    elif proj.get("certified_radius"):
        R, how = check_positive("projector.certified_radius", proj["certified_radius"]), "the run's certified_radius (certified-L training)"
    else:
        got = _bank_radius(run, iteration, theta, by_it)
        if got is None:
            got = record_region_radius(records, iteration, bank_size=int(proj.get("bank_size", 16)),
                                       probe_radius=proj.get("probe_radius"))
            notes.append("the radius is the records' worst case (every bank entry living bank_size iterations); 'violated' then "
                         "means L_used is too small for this ball, not necessarily for the points the run evaluated — "
                         "pass --radius to check a smaller region")
            if int(proj.get("refresh", 0) or 0) and proj.get("probe_radius") is None:
                notes.append("refresh > 0 without probe_radius: refreshed probes are bounded by the same sums of step lengths")
        R, how = got
    region = Region.ball(R)
    # ---- bounds
    cert = smoothness_bounds(task, theta, region)
    notes += cert.notes
    sound = cert.L
    chosen = np.arange(N) if task.name == "regression" else _select_lower_rows(L_hi, sound, max_lower_rows)
    t0 = time.perf_counter()
    lb = smoothness_lower_bounds(task, theta, region, rows=chosen, underlying_argmax=cert.underlying_argmax, seed=seed)
    t_lower = time.perf_counter() - t0
    lower = np.full(N, np.nan)
    lower[lb.rows] = lb.values
    certified = np.isfinite(sound) & (L_lo >= sound)
    violated = np.isfinite(lower) & (L_hi < lower)
    verdict = np.where(certified, "certified", np.where(violated, "violated", "plausible"))
    counts = {v: int(np.sum(verdict == v)) for v in VERDICTS}
    labels = task.constraint_labels()
    order = np.argsort(-(sound / np.maximum(L_lo, 1e-300)), kind="stable")[:10]
    worst = [{"row": int(i), "label": labels[i], "L_used_min": float(L_lo[i]), "L_used_max": float(L_hi[i]),
              "lower": float(lower[i]), "sound": float(sound[i]), "verdict": str(verdict[i])} for i in order]
    claims = [
        Claim(name="smoothness_certified",
              statement=f"On the L2 ball of radius {R:.6g} around θ_{iteration}: {cert.statement}, with L_i ≤ L_used_i for every row.",
              level=Level.SOUND, holds=bool(counts["certified"] == N),
              details={"rows": N, "certified": counts["certified"], "rel_margin": cert.rel_margin}),
        Claim(name="smoothness_not_violated",
              statement=f"No examined row has an observed curvature above its L_used on the L2 ball of radius {R:.6g} around θ_{iteration}.",
              level=Level.ESTIMATED, holds=bool(counts["violated"] == 0),
              details={"rows_examined": int(lb.rows.size), "violated": counts["violated"]}),
    ]
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "scpo_version": __version__,
        "kind": "lipschitz_certificate",
        "run": str(run.path),
        "task": task.name,
        "iteration": iteration,
        "theta_sha256": theta_sha256(theta),
        "theta_source": src_theta,
        "rows": N,
        "row_mode": cert.rows,
        "statement": cert.statement,
        "region": {"kind": "ball", "radius": R, "derivation": how},
        "L_used_source": L_src,
        "counts": counts,
        "all_certified": counts["certified"] == N,
        "summary": {
            "L_used": _stats(L_lo),
            "sound": _stats(sound),
            "sound_by_method": {k: _stats(v) for k, v in cert.methods.items()},
            "lower": _stats(lower[np.isfinite(lower)]),
            "rows_with_lower_bound": int(lb.rows.size),
            "looseness_sound_over_lower": _stats((sound / lower)[np.isfinite(lower) & (lower > 0)]),
        },
        "worst_rows": worst,
        "per_row": {"L_used_min": L_lo, "L_used_max": L_hi, "sound": sound, "lower": lower, "verdict": verdict.tolist()},
        "claims": [c.to_dict() for c in claims],
        "rel_margin": cert.rel_margin,
        "timings_s": {**{f"sound_{k}": v for k, v in cert.timings.items()}, "lower": t_lower, "total": time.perf_counter() - t_start},
        "notes": notes,
    }
    target = run.paths.certificates / f"lipschitz_iter_{iteration:06d}.json"
    atomic_write_json(target, out)
    out["written"] = str(target)
    return out


def _stats(v: np.ndarray) -> dict[str, float]:
    v = np.asarray(v, dtype=float)
    if v.size == 0:
        return {"n": 0}
    return {"n": int(v.size), "min": float(np.min(v)), "median": float(np.median(v)), "max": float(np.max(v))}


def _fmt(s: dict[str, float]) -> str:
    if not s.get("n"):
        return "none"
    return f"min {s['min']:.4g}, median {s['median']:.4g}, max {s['max']:.4g} ({s['n']} rows)"


def _render(out: dict[str, Any]) -> str:
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
    """``scpo verify-lipschitz``: print the smoothness certificate of a run; return the exit code.

    Parameters
    ----------
    run : Path
        Run directory.
    iteration : int or None
        Iteration ``K`` (default: the latest with a saved projector state).
    radius : float or None
        L2 radius of the region (default: derived from the run, see the module docstring).
    as_json : bool
        Print JSON instead of the table.

    Returns
    -------
    int
        0 every row certified, 1 otherwise, 2 bad input (the message goes to stderr).
    """
    import sys

    try:
        out = verify_lipschitz(run, iteration, radius)
    except (InvalidInputError, UnsupportedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if as_json:
        from ..evidence import _jsonable

        print(json.dumps(_jsonable(out), indent=2, allow_nan=False))
    else:
        print(_render(out))
    return EXIT_OK if out["all_certified"] else EXIT_FAILED
