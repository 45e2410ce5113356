"""Verdicts on the smoothness constants a run used (``scpo verify-lipschitz``, DESIGN §6).

For the per-row constants ``L_used`` of an iterate ``θ_K`` and a parameter region ``B(θ_K, R)``:

* a ``sound`` upper bound ``L̄_i ≥ sup_{θ ∈ B(θ_K, R)} ‖∇²g_i(θ)‖₂`` (:func:`smoothness_bounds`),
* an ``estimated`` lower bound ``L̲_i`` (:func:`smoothness_lower_bounds`) for every row of a
  static problem, or for the rows most at risk of a closed loop,

and a verdict per row: ``certified`` (``L_used ≥ L̄``), ``violated`` (``L_used < L̲``: the smoothness
assumption behind (★) is false for that row on the region) or ``plausible`` (between). When only
the range ``[L_min, L_max]`` of the used constants is known, a row is certified only if
``L_min ≥ L̄_i`` and violated only if ``L_max < L̲_i``.

The region's radius, when not given, can be bounded from the run's records alone
(:func:`record_region_radius`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..._validate import as_array, check_int
from ...errors import InvalidInputError
from ...evidence import Claim, Level
from ...policies import MLPStructure
from ...systems import ClosedLoopProblem
from .certificate import smoothness_bounds
from .lower import smoothness_lower_bounds
from .types import Region, SmoothnessCertificate

__all__ = ["ROW_VERDICTS", "MAX_LOWER_ROWS", "SmoothnessVerification", "verify_smoothness", "record_region_radius", "select_lower_rows"]

ROW_VERDICTS = ("certified", "plausible", "violated")
MAX_LOWER_ROWS = 64
"""Closed loops: rows examined for a lower bound (static problems: every row)."""


def record_region_radius(records: list[dict[str, Any]], iteration: int, *, bank_size: int, probe_radius: float | None) -> tuple[float, str]:
    """Record-only bound on the radius around ``θ_K`` that iterations ``K`` and ``K+1`` used.

    (★) at an iteration uses the segments from the iterate to every bank point and to the
    candidate. A bank entry of iteration ``s`` has length at most ``p_s``
    (``min(‖Δ_raw,s‖, probe_radius)``, or ``‖Δ_raw,s‖`` when a try was rejected or probes are not
    capped), grows by each later accepted step, and survives at most ``bank_size`` probing
    iterations; candidates are at most ``‖Δ_raw‖`` (projection onto a convex set containing 0 does
    not lengthen the step) or exactly the accepted step when no try was rejected. This worst case
    is usually much larger than the bank really was.

    Parameters
    ----------
    records : list of dict
        The run's certificate records.
    iteration : int
        ``K``.
    bank_size : int
        The projector's bank capacity ``m``.
    probe_radius : float or None
        The projector's probe cap.

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


def select_lower_rows(L_hi: np.ndarray, sound: np.ndarray, n: int) -> np.ndarray:
    """The rows most at risk: half by the largest ratio sound bound / ``L_used``, the rest by the smallest ``L_used``.

    Parameters
    ----------
    L_hi : ndarray, shape (N,)
        Largest ``L_used`` per row.
    sound : ndarray, shape (N,)
        Sound upper bounds.
    n : int
        Rows to pick.

    Returns
    -------
    ndarray of int, sorted, at most ``n`` entries
    """
    N = sound.size
    if N <= n:
        return np.arange(N)
    ratio = sound / np.maximum(L_hi, 1e-300)
    a = np.argsort(-ratio, kind="stable")[: n // 2]
    b = np.argsort(L_hi, kind="stable")
    rest = [i for i in b if i not in set(a)][: n - a.size]
    return np.sort(np.concatenate([a, np.asarray(rest, dtype=int)]))


def _stats(v: np.ndarray) -> dict[str, float]:
    v = np.asarray(v, dtype=float)
    if v.size == 0:
        return {"n": 0}
    return {"n": int(v.size), "min": float(np.min(v)), "median": float(np.median(v)), "max": float(np.max(v))}


@dataclass(frozen=True)
class SmoothnessVerification:
    """Sound and estimated bounds and per-row verdicts for the ``L`` a run used at one iterate.

    Attributes
    ----------
    certificate : SmoothnessCertificate
        The sound upper bounds.
    L_used_min, L_used_max : ndarray, shape (N,)
        The constants used (equal when known per row).
    lower : ndarray, shape (N,)
        Estimated lower bounds (NaN for rows not examined).
    rows_examined : int
    verdict : ndarray of str, shape (N,)
        One of :data:`ROW_VERDICTS` per row.
    labels : list of str
        Row labels of ``g``.
    iteration : int or None
    timings : dict of str -> float
        Seconds (``sound_<method>``, ``lower``).
    notes : list of str
    """

    certificate: SmoothnessCertificate
    L_used_min: np.ndarray
    L_used_max: np.ndarray
    lower: np.ndarray
    rows_examined: int
    verdict: np.ndarray
    labels: list[str]
    iteration: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Rows per verdict."""
        return {v: int(np.sum(self.verdict == v)) for v in ROW_VERDICTS}

    @property
    def all_certified(self) -> bool:
        """Every row ``certified``."""
        return self.counts["certified"] == self.verdict.size

    def claims(self) -> list[Claim]:
        """``smoothness_certified`` (``sound``) and ``smoothness_not_violated`` (``estimated``)."""
        cert, counts, N = self.certificate, self.counts, int(self.verdict.size)
        R, K = cert.region.radius, self.iteration
        return [
            Claim(name="smoothness_certified",
                  statement=f"On the L2 ball of radius {R:.6g} around θ_{K}: {cert.statement}, with L_i ≤ L_used_i for every row.",
                  level=Level.SOUND, holds=bool(counts["certified"] == N),
                  details={"rows": N, "certified": counts["certified"], "margin": cert.margin.to_dict()}),
            Claim(name="smoothness_not_violated",
                  statement=f"No examined row has an observed curvature above its L_used on the L2 ball of radius {R:.6g} around θ_{K}.",
                  level=Level.ESTIMATED, holds=bool(counts["violated"] == 0),
                  details={"rows_examined": self.rows_examined, "violated": counts["violated"]}),
        ]

    def worst_rows(self, k: int = 10) -> list[dict[str, Any]]:
        """The ``k`` rows with the largest sound bound relative to ``L_used``.

        Parameters
        ----------
        k : int

        Returns
        -------
        list of dict
        """
        sound, L_lo, L_hi = self.certificate.L, self.L_used_min, self.L_used_max
        order = np.argsort(-(sound / np.maximum(L_lo, 1e-300)), kind="stable")[:k]
        return [{"row": int(i), "label": self.labels[i], "L_used_min": float(L_lo[i]), "L_used_max": float(L_hi[i]),
                 "lower": float(self.lower[i]), "sound": float(sound[i]), "verdict": str(self.verdict[i])} for i in order]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: rows, counts, summaries, worst rows, per-row arrays, claims, margin, timings, notes."""
        cert, lower, sound = self.certificate, self.lower, self.certificate.L
        counts = self.counts
        return {
            "rows": int(self.verdict.size),
            "row_mode": cert.rows,
            "statement": cert.statement,
            "counts": counts,
            "all_certified": self.all_certified,
            "summary": {
                "L_used": _stats(self.L_used_min),
                "sound": _stats(sound),
                "sound_by_method": {k: _stats(v) for k, v in cert.methods.items()},
                "lower": _stats(lower[np.isfinite(lower)]),
                "rows_with_lower_bound": self.rows_examined,
                "looseness_sound_over_lower": _stats((sound / lower)[np.isfinite(lower) & (lower > 0)]),
            },
            "worst_rows": self.worst_rows(),
            "per_row": {"L_used_min": self.L_used_min, "L_used_max": self.L_used_max, "sound": sound, "lower": lower,
                        "verdict": self.verdict.tolist()},
            "claims": [c.to_dict() for c in self.claims()],
            "margin": cert.margin.to_dict(),
            "timings_s": dict(self.timings),
            "notes": list(self.notes),
        }


def verify_smoothness(
    problem: ClosedLoopProblem,
    structure: MLPStructure,
    theta: np.ndarray,
    states: np.ndarray,
    L_used_min: np.ndarray,
    L_used_max: np.ndarray,
    radius: float,
    *,
    aggregation: str = "per-row",
    temperature: float = 0.02,
    labels: list[str] | None = None,
    iteration: int | None = None,
    max_lower_rows: int = MAX_LOWER_ROWS,
    seed: int = 0,
) -> SmoothnessVerification:
    """Sound and estimated curvature bounds on ``B(θ, radius)`` and a verdict per row of ``g``.

    Parameters
    ----------
    problem : ClosedLoopProblem
    structure : MLPStructure
        The residual (smooth activation).
    theta : ndarray, shape (d,)
        The iterate ``θ_K``.
    states : ndarray, shape (S, n)
        Initial states of the rows of ``g``.
    L_used_min, L_used_max : ndarray, shape (N,)
        The range of the constants used per row (equal when known exactly).
    radius : float
        L2 radius of the region around ``θ``.
    aggregation : {"per-row", "max", "lse"}
    temperature : float
        ``τ`` of log-sum-exp rows.
    labels : list of str, optional
        Row labels (default ``"row i"``).
    iteration : int, optional
        ``K``, for the statements.
    max_lower_rows : int
        Closed loops: rows examined for a lower bound (:func:`select_lower_rows`).
    seed : int
        Of the curvature search.

    Returns
    -------
    SmoothnessVerification

    Raises
    ------
    InvalidInputError
        ``L_used`` of the wrong length, a bad radius.
    UnsupportedError
        A ReLU residual.
    """
    check_int("max_lower_rows", max_lower_rows, minimum=1)
    region = Region.ball(radius)
    cert = smoothness_bounds(problem, structure, theta, states, region, aggregation=aggregation, temperature=temperature)
    N = cert.L.size
    L_lo = as_array("L_used_min", L_used_min, shape=(N,), finite=False)
    L_hi = as_array("L_used_max", L_used_max, shape=(N,), finite=False)
    sound = cert.L
    chosen = np.arange(N) if problem.is_static else select_lower_rows(L_hi, sound, max_lower_rows)
    t0 = time.perf_counter()
    lb = smoothness_lower_bounds(problem, structure, theta, states, region, rows=chosen, aggregation=aggregation,
                                 temperature=temperature, underlying_argmax=cert.underlying_argmax, seed=seed)
    t_lower = time.perf_counter() - t0
    lower = np.full(N, np.nan)
    lower[lb.rows] = lb.values
    certified = np.isfinite(sound) & (L_lo >= sound)
    violated = np.isfinite(lower) & (L_hi < lower)
    verdict = np.where(certified, "certified", np.where(violated, "violated", "plausible"))
    labels = list(labels) if labels is not None else [f"row {i}" for i in range(N)]
    if len(labels) != N:
        raise InvalidInputError(f"labels: expected {N} row labels, got {len(labels)}")
    timings = {**{f"sound_{k}": v for k, v in cert.timings.items()}, "lower": t_lower}
    return SmoothnessVerification(certificate=cert, L_used_min=L_lo, L_used_max=L_hi, lower=lower, rows_examined=int(lb.rows.size),
                                  verdict=verdict, labels=labels, iteration=iteration, timings=timings, notes=list(cert.notes))
