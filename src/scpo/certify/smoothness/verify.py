"""Verdicts on the smoothness constants a run used (``scpo verify-lipschitz``, DESIGN §3, §6).

For the per-row constants ``L_used`` of an iterate ``θ_K`` and the region its steps used, a
``sound`` upper bound ``L̄_i``, an ``estimated`` lower bound ``L̲_i`` and a verdict per row.

Which curvature. (★) uses ``g`` only along segments inside ``θ + span(D)`` (the bank), so the
constant it needs is the *subspace* curvature ``sup_{‖a‖≤R} ‖Qᵀ∇²g_i(θ+Qa)Q‖₂`` on the ball of
radius ``R`` that the bank offsets and the step cover (:mod:`scpo.certify.smoothness.subspace`);
``bound="subspace"`` (the default) verifies that one. ``bound="full"`` verifies the stronger
statement over the full parameter ball ``‖θ' − θ‖ ≤ R`` (the norm chain,
:func:`~scpo.certify.smoothness.smoothness_bounds`), much looser on rollouts.

Lower bounds (``estimated``), from three sources, every one a valid lower bound of the supremum
in exact arithmetic:

* ``centre`` — ``‖Qᵀ∇²g_i(θ)Q‖₂`` at the iterate itself, for every row (subspace bound only; the
  centre of the sound bound);
* ``second_difference`` — along the bank's directions with step ``R``, for every row (``2K + 1``
  batched rollouts);
* ``search`` — power iteration, projected ascent over the ball and second differences
  (:func:`~scpo.certify.smoothness.curvature_search`, restricted to the subspace for the subspace
  bound), for a random sample of rows and for the worst rows.

Verdicts: ``certified`` (``L_used ≥ L̄``), ``violated`` (``L_used < L̲``: the smoothness assumption
of (★) is false for that row on the region), ``plausible`` (a lower bound exists and neither holds),
``unexamined`` (no lower bound — never counted as plausible). When only the range
``[L_min, L_max]`` of the used constants is known, a row is certified only if ``L_min ≥ L̄_i`` and
violated only if ``L_max < L̲_i``. The random sample gives the fraction of rows the search finds
violated, extrapolated to all rows with a Clopper–Pearson interval (``estimated``).

The region's radius, when not given, can be bounded from the run's records alone
(:func:`record_region_radius`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..._validate import as_array, check_in, check_int, check_positive
from ...errors import InvalidInputError
from ...evidence import Claim, Level
from ...numerics import Margin
from ...policies import MLPStructure
from ...systems import ClosedLoopProblem
from .certificate import smoothness_bounds
from .lower import second_difference_lower_bounds, smoothness_lower_bounds
from .subspace import SubspaceCertificate, subspace_smoothness_bounds
from .types import SMOOTHNESS_MARGIN, Region, SmoothnessCertificate

__all__ = [
    "ROW_VERDICTS",
    "BOUNDS",
    "SAMPLE_ROWS",
    "WORST_ROWS",
    "SmoothnessVerification",
    "verify_smoothness",
    "record_region_radius",
    "select_lower_rows",
    "clopper_pearson",
    "verification_figure",
]

ROW_VERDICTS = ("certified", "plausible", "violated", "unexamined")
BOUNDS = ("subspace", "full")
"""``subspace``: the curvature (★) needs (bank span, default); ``full``: over the full parameter ball."""
SAMPLE_ROWS = 192
"""Rows drawn at random for the curvature search (static problems with at most this many rows: all)."""
WORST_ROWS = 64
"""Rows most at risk added to the search (:func:`select_lower_rows`)."""
_LOWER_HAIRCUT = 1e-9  # the centre norm is a floating-point value: count it as a lower bound only after this relative haircut


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


def select_lower_rows(L_hi: np.ndarray, sound: np.ndarray, n: int, *, lower: np.ndarray | None = None) -> np.ndarray:
    """The rows most at risk: by the largest ratio sound bound / ``L_used``, by the largest ratio
    known lower bound / ``L_used`` (when given) and by the smallest ``L_used``, in equal shares.

    Parameters
    ----------
    L_hi : ndarray, shape (N,)
        Largest ``L_used`` per row.
    sound : ndarray, shape (N,)
        Sound upper bounds.
    n : int
        Rows to pick.
    lower : ndarray, shape (N,), optional
        Lower bounds already known (NaN where none).

    Returns
    -------
    ndarray of int, sorted, at most ``n`` entries
    """
    N = sound.size
    if N <= n:
        return np.arange(N)
    denom = np.maximum(L_hi, 1e-300)
    orders = [np.argsort(-(sound / denom), kind="stable")]
    if lower is not None:
        orders.append(np.argsort(-np.nan_to_num(lower / denom, nan=-np.inf), kind="stable"))
    orders.append(np.argsort(L_hi, kind="stable"))
    share = max(1, n // len(orders))
    chosen: list[int] = []
    seen: set[int] = set()
    for k, order in enumerate(orders):
        want = share if k < len(orders) - 1 else n - len(chosen)
        got = 0
        for i in order:
            if got >= want:
                break
            if int(i) not in seen:
                seen.add(int(i))
                chosen.append(int(i))
                got += 1
    return np.sort(np.asarray(chosen, dtype=int))


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial (Clopper–Pearson) confidence interval of a proportion ``k / n``.

    Parameters
    ----------
    k : int
        Successes, ``0 ≤ k ≤ n``.
    n : int
        Trials, ``n ≥ 1``.
    confidence : float
        Two-sided level in ``(0, 1)``.

    Returns
    -------
    lo, hi : float
        ``Beta(α/2; k, n−k+1)`` and ``Beta(1−α/2; k+1, n−k)`` quantiles (0 and 1 at the ends).
    """
    from scipy.stats import beta

    n = check_int("n", n, minimum=1)
    k = check_int("k", k, minimum=0, maximum=n)
    if not 0 < confidence < 1:
        raise InvalidInputError(f"confidence: expected a level in (0, 1), got {confidence!r}")
    a = 1.0 - confidence
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def _stats(v: np.ndarray) -> dict[str, float]:
    v = np.asarray(v, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0}
    return {"n": int(v.size), "min": float(np.min(v)), "median": float(np.median(v)), "p90": float(np.percentile(v, 90)),
            "max": float(np.max(v))}


def _row_refs(problem: ClosedLoopProblem, aggregation: str, S: int) -> tuple[np.ndarray, np.ndarray]:
    """Kind (``state``/``input``/``terminal``, or ``aggregated``) and time step of every row of ``g``."""
    if aggregation != "per-row":
        return np.full(S, "aggregated", dtype=object), np.full(S, -1)
    lay = problem.layout
    refs = [lay.locate(j) for j in range(lay.n_rows)]
    kinds = np.array([r.kind for r in refs], dtype=object)
    ts = np.array([r.t for r in refs])
    return np.tile(kinds, S), np.tile(ts, S)


@dataclass(frozen=True)
class SmoothnessVerification:
    """Sound and estimated bounds and per-row verdicts for the ``L`` a run used at one iterate.

    Attributes
    ----------
    bound : {"subspace", "full"}
        Which curvature the sound bound and the verdicts speak about.
    certificate : SubspaceCertificate or SmoothnessCertificate
        The sound upper bounds.
    L_used_min, L_used_max : ndarray, shape (N,)
        The constants used (equal when known per row).
    lower : ndarray, shape (N,)
        The best estimated lower bound per row (NaN where none).
    lower_sources : dict of str -> ndarray (N,)
        ``centre``, ``second_difference``, ``search`` (NaN where a source did not run).
    sample : ndarray of int
        The randomly drawn rows that the search examined.
    searched : ndarray of int
        Every row the search examined (the sample and the worst rows).
    verdict : ndarray of str, shape (N,)
        One of :data:`ROW_VERDICTS` per row.
    labels : list of str
        Row labels of ``g``.
    kinds, times : ndarray, shape (N,)
        Row kind (``state``, ``input``, ``terminal`` or ``aggregated``) and time step (−1 if none).
    radius : float
        The region's radius.
    iteration : int or None
    required : bool
        Whether the run's safety rests on these constants (certified-``L`` training) — otherwise
        the claims are reported, not required.
    confidence : float
        Level of the extrapolation interval.
    timings : dict of str -> float
        Seconds (``sound``, ``second_difference``, ``search``).
    notes : list of str
    """

    bound: str
    certificate: SubspaceCertificate | SmoothnessCertificate
    L_used_min: np.ndarray
    L_used_max: np.ndarray
    lower: np.ndarray
    lower_sources: dict[str, np.ndarray]
    sample: np.ndarray
    searched: np.ndarray
    verdict: np.ndarray
    labels: list[str]
    kinds: np.ndarray
    times: np.ndarray
    radius: float
    iteration: int | None = None
    required: bool = False
    confidence: float = 0.95
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def sound(self) -> np.ndarray:
        """The sound upper bound per row."""
        return self.certificate.L

    @property
    def counts(self) -> dict[str, int]:
        """Rows per verdict."""
        return {v: int(np.sum(self.verdict == v)) for v in ROW_VERDICTS}

    @property
    def all_certified(self) -> bool:
        """Every row ``certified``."""
        return self.counts["certified"] == self.verdict.size

    @property
    def rows_examined(self) -> int:
        """Rows with a lower bound."""
        return int(np.sum(np.isfinite(self.lower)))

    def extrapolation(self) -> dict[str, Any]:
        """The violated fraction on the random sample, with its Clopper–Pearson interval, scaled to all rows (``estimated``)."""
        n, N = int(self.sample.size), int(self.verdict.size)
        if n == 0:
            return {"sample": 0, "level": Level.ESTIMATED.value}
        k = int(np.sum(self.verdict[self.sample] == "violated"))
        lo, hi = clopper_pearson(k, n, self.confidence)
        return {"sample": n, "violated_in_sample": k, "fraction": k / n, "interval": [lo, hi], "confidence": self.confidence,
                "rows_estimate": k / n * N, "rows_interval": [lo * N, hi * N], "level": Level.ESTIMATED.value}

    def _where(self) -> str:
        cert = self.certificate
        if self.bound == "subspace":
            return f"on the ball ‖a‖ ≤ {self.radius:.6g} of the {cert.dim}-dimensional bank subspace θ_{self.iteration} + span(Q)"
        return f"on the L2 ball of radius {self.radius:.6g} around θ_{self.iteration}"

    def claims(self) -> list[Claim]:
        """``smoothness_certified`` (``sound``) and ``smoothness_not_violated`` (``estimated``)."""
        cert, counts, N = self.certificate, self.counts, int(self.verdict.size)
        sub = self.bound == "subspace"
        extra = {"digest": cert.digest} if sub else {}
        return [
            Claim(name="smoothness_certified",
                  statement=f"{self._where()[0].upper()}{self._where()[1:]}: {cert.statement}, with L_i ≤ L_used_i for every row.",
                  level=Level.SOUND, holds=bool(counts["certified"] == N),
                  details={"rows": N, "certified": counts["certified"], "bound": self.bound, "margin": cert.margin.to_dict(),
                           "required": self.required, **extra}),
            Claim(name="smoothness_not_violated",
                  statement=f"No examined row has an observed curvature above its L_used {self._where()}.",
                  level=Level.ESTIMATED, holds=bool(counts["violated"] == 0),
                  details={"rows_examined": self.rows_examined, "unexamined": counts["unexamined"], "violated": counts["violated"],
                           "extrapolation": self.extrapolation(), "required": self.required}),
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
        order = np.argsort(-(self.sound / np.maximum(self.L_used_min, 1e-300)), kind="stable")[:k]
        return [self._row(i) for i in order]

    def most_violated(self, k: int = 10) -> list[dict[str, Any]]:
        """The ``k`` rows with the largest lower bound relative to ``L_used`` (violated first).

        Parameters
        ----------
        k : int

        Returns
        -------
        list of dict
        """
        ratio = np.nan_to_num(self.lower / np.maximum(self.L_used_max, 1e-300), nan=-np.inf)
        order = np.argsort(-ratio, kind="stable")[:k]
        return [self._row(i) for i in order if np.isfinite(ratio[i])]

    def _row(self, i: int) -> dict[str, Any]:
        return {"row": int(i), "label": self.labels[i], "L_used_min": float(self.L_used_min[i]), "L_used_max": float(self.L_used_max[i]),
                "lower": float(self.lower[i]), "sound": float(self.sound[i]), "verdict": str(self.verdict[i])}

    def summary_by(self, key: str) -> dict[str, dict[str, Any]]:
        """Counts and medians per row kind (``key="kind"``) or per time step (``key="time"``).

        Parameters
        ----------
        key : {"kind", "time"}

        Returns
        -------
        dict
        """
        check_in("key", key, ("kind", "time"))
        groups = self.kinds if key == "kind" else self.times
        out: dict[str, dict[str, Any]] = {}
        ratio = self.sound / self.lower
        for g in dict.fromkeys(groups.tolist()):
            sel = groups == g
            v = self.verdict[sel]
            out[str(g)] = {"rows": int(sel.sum()), **{c: int(np.sum(v == c)) for c in ROW_VERDICTS},
                           "L_used_median": float(np.median(self.L_used_min[sel])), "sound_median": float(np.median(self.sound[sel])),
                           "lower_median": _stats(self.lower[sel]).get("median", float("nan")),
                           "sound_over_lower_median": _stats(ratio[sel]).get("median", float("nan"))}
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: counts, summaries, extrapolation, worst rows, per-row arrays, claims, margin, timings, notes."""
        cert, lower, sound = self.certificate, self.lower, self.sound
        region: dict[str, Any] = {"kind": "subspace-ball" if self.bound == "subspace" else "ball", "radius": self.radius}
        if self.bound == "subspace":
            region.update(dim=cert.dim, basis_residual=cert.residual, digest=cert.digest)
        ok = np.isfinite(lower) & (lower > 0)
        return {
            "rows": int(self.verdict.size),
            "bound": self.bound,
            "row_mode": cert.rows,
            "statement": cert.statement,
            "region": region,
            "counts": self.counts,
            "all_certified": self.all_certified,
            "required": self.required,
            "summary": {
                "L_used": _stats(self.L_used_min),
                "sound": _stats(sound),
                "lower": _stats(lower),
                "lower_by_source": {k: _stats(v) for k, v in self.lower_sources.items()},
                "rows_with_lower_bound": self.rows_examined,
                "rows_searched": int(self.searched.size),
                "looseness_sound_over_lower": _stats((sound / lower)[ok]),
                "L_used_over_sound": _stats(self.L_used_min / sound),
                "by_kind": self.summary_by("kind"),
                "by_time": self.summary_by("time"),
            },
            "extrapolation": self.extrapolation(),
            "worst_rows": self.worst_rows(),
            "most_violated": self.most_violated(),
            "per_row": {"L_used_min": self.L_used_min, "L_used_max": self.L_used_max, "sound": sound, "lower": lower,
                        "verdict": self.verdict.tolist()},
            "sample_rows": self.sample,
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
    bound: str = "subspace",
    basis: np.ndarray | None = None,
    directions: np.ndarray | None = None,
    aggregation: str = "per-row",
    temperature: float = 0.02,
    labels: list[str] | None = None,
    iteration: int | None = None,
    sample_rows: int = SAMPLE_ROWS,
    worst_rows: int = WORST_ROWS,
    ascent_steps: int = 2,
    required: bool = False,
    confidence: float = 0.95,
    margin: Margin = SMOOTHNESS_MARGIN,
    residual: float = float("nan"),
    seed: int = 0,
    device: Any = None,
) -> SmoothnessVerification:
    """Sound and estimated curvature bounds on the region of ``θ`` and a verdict per row of ``g``.

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
        ``R > 0``: the ball ``‖a‖ ≤ R`` in the subspace, or ``‖θ' − θ‖ ≤ R``.
    bound : {"subspace", "full"}
        Which curvature to verify (module docstring).
    basis : ndarray, shape (d, m), optional
        Orthonormal basis of the bank's span (:func:`~scpo.certify.smoothness.subspace_basis`);
        required for ``bound="subspace"``.
    directions : ndarray, shape (K, d), optional
        Directions of the second differences (default: the basis columns; none without a basis).
    aggregation : {"per-row", "max", "lse"}
    temperature : float
        ``τ`` of log-sum-exp rows.
    labels : list of str, optional
        Row labels (default ``"row i"``).
    iteration : int, optional
        ``K``, for the statements.
    sample_rows : int
        Rows drawn at random for the search (``0``: none).
    worst_rows : int
        Rows most at risk added to the search (:func:`select_lower_rows`).
    ascent_steps : int
        Projected ascent steps of the search.
    required : bool
        Whether the run's safety rests on these constants (recorded in the claims).
    confidence : float
        Level of the Clopper–Pearson interval of the extrapolation.
    margin : Margin
        Outward margin of the sound bound.
    residual : float
        The basis residual (recorded).
    seed : int
        Of the sample and of the search.
    device : torch.device or str, optional
        Where the subspace bound runs.

    Returns
    -------
    SmoothnessVerification

    Raises
    ------
    InvalidInputError
        ``L_used`` of the wrong length, a radius ≤ 0 or not finite, a subspace bound without a basis.
    UnsupportedError
        A ReLU residual.
    """
    check_in("bound", bound, BOUNDS)
    R = check_positive("radius", radius)
    check_int("sample_rows", sample_rows, minimum=0)
    check_int("worst_rows", worst_rows, minimum=0)
    structure.require_smooth()
    theta = as_array("theta", theta, shape=(structure.dim,))
    states = as_array("states", states, shape=(None, problem.n))
    timings: dict[str, float] = {}
    notes: list[str] = []
    t0 = time.perf_counter()
    if bound == "subspace":
        if basis is None:
            raise InvalidInputError("basis: bound='subspace' needs the bank's basis (subspace_basis(bank offsets)); pass bound='full' without a bank")
        cert: SubspaceCertificate | SmoothnessCertificate = subspace_smoothness_bounds(
            problem, structure, theta, states, basis, R, aggregation=aggregation, temperature=temperature, margin=margin,
            device=device, residual=residual)
    else:
        cert = smoothness_bounds(problem, structure, theta, states, Region.ball(R), aggregation=aggregation, temperature=temperature,
                                 margin=margin)
        notes += cert.notes
    timings["sound"] = time.perf_counter() - t0
    N = cert.L.size
    L_lo = as_array("L_used_min", L_used_min, shape=(N,), finite=False)
    L_hi = as_array("L_used_max", L_used_max, shape=(N,), finite=False)
    sound = cert.L
    nan = np.full(N, np.nan)
    sources: dict[str, np.ndarray] = {}
    if bound == "subspace":
        sources["centre"] = cert.centre / (1.0 + _LOWER_HAIRCUT)
    if directions is None and basis is not None:
        directions = np.asarray(basis, dtype=float).T
    if directions is not None and len(directions):
        t0 = time.perf_counter()
        sources["second_difference"], _ = second_difference_lower_bounds(problem, structure, theta, states, directions, R,
                                                                          aggregation=aggregation, temperature=temperature)
        timings["second_difference"] = time.perf_counter() - t0
    known = np.nanmax(np.stack(list(sources.values())), axis=0) if sources else nan.copy()
    rng = np.random.default_rng(seed)
    if problem.is_static and N <= sample_rows + worst_rows:
        sample = searched = np.arange(N)
    else:
        sample = np.sort(rng.choice(N, size=min(sample_rows, N), replace=False)) if sample_rows else np.zeros(0, dtype=int)
        worst = select_lower_rows(L_hi, sound, worst_rows, lower=known) if worst_rows else np.zeros(0, dtype=int)
        searched = np.union1d(sample, worst).astype(int)
    search = nan.copy()
    if searched.size:
        t0 = time.perf_counter()
        lb = smoothness_lower_bounds(problem, structure, theta, states, Region.ball(R), rows=searched, aggregation=aggregation,
                                     temperature=temperature, underlying_argmax=cert.underlying_argmax, seed=seed,
                                     basis=basis if bound == "subspace" else None, ascent_steps=ascent_steps)
        search[lb.rows] = lb.values
        timings["search"] = time.perf_counter() - t0
    sources["search"] = search
    lower = np.stack([known, search])
    lower = np.where(np.all(np.isnan(lower), axis=0), np.nan, np.nanmax(np.where(np.isnan(lower), -np.inf, lower), axis=0))
    certified = np.isfinite(sound) & (L_lo >= sound)
    violated = np.isfinite(lower) & (L_hi < lower)
    examined = np.isfinite(lower)
    verdict = np.where(certified, "certified", np.where(violated, "violated", np.where(examined, "plausible", "unexamined")))
    labels = list(labels) if labels is not None else [f"row {i}" for i in range(N)]
    if len(labels) != N:
        raise InvalidInputError(f"labels: expected {N} row labels, got {len(labels)}")
    kinds, ts = _row_refs(problem, aggregation, states.shape[0])
    if bound == "subspace":
        notes.append(f"subspace of dimension {cert.dim} (basis residual {cert.residual:.1e}); the verdicts speak about the curvature "
                     "(★) uses, restricted to the bank's span")
    return SmoothnessVerification(bound=bound, certificate=cert, L_used_min=L_lo, L_used_max=L_hi, lower=lower, lower_sources=sources,
                                  sample=sample, searched=searched, verdict=verdict, labels=labels, kinds=kinds, times=ts, radius=R,
                                  iteration=iteration, required=bool(required), confidence=confidence, timings=timings, notes=notes)


def verification_figure(ver: SmoothnessVerification, path: str | Path, *, max_points: int = 6000, seed: int = 0) -> Path:
    """Scatter of the sound and the lower bound against ``L_used`` per row (log–log, with ``y = x``).

    A row is certified where its sound bound lies on or below the diagonal, violated where its
    lower bound lies above it. At most ``max_points`` rows are drawn (a random subset plus the
    worst rows).

    Parameters
    ----------
    ver : SmoothnessVerification
    path : str or Path
        Where the PNG goes (written atomically).
    max_points : int
        Rows drawn.
    seed : int
        Of the subset.

    Returns
    -------
    Path
    """
    from matplotlib.figure import Figure

    from ...plotting import save

    N = ver.verdict.size
    rng = np.random.default_rng(seed)
    pick = np.arange(N) if N <= max_points else np.union1d(rng.choice(N, size=max_points, replace=False),
                                                            [w["row"] for w in ver.worst_rows(50) + ver.most_violated(50)]).astype(int)
    x = np.maximum(ver.L_used_min[pick], 1e-300)
    fig = Figure(figsize=(11.0, 4.6))
    ax = fig.add_subplot(1, 2, 1)
    ax.scatter(x, ver.sound[pick], s=4, alpha=0.5, color="tab:blue", label=f"sound upper bound ({ver.bound})", rasterized=True)
    lo = ver.lower[pick]
    ok = np.isfinite(lo) & (lo > 0)
    ax.scatter(x[ok], lo[ok], s=4, alpha=0.5, color="tab:orange", label="estimated lower bound", rasterized=True)
    vals = np.concatenate([x, ver.sound[pick][np.isfinite(ver.sound[pick])], lo[ok]])
    vals = vals[vals > 0]
    a, b = (float(vals.min()), float(vals.max())) if vals.size else (1e-3, 1.0)
    ax.plot([a, b], [a, b], color="black", lw=1, label="bound = L_used")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("L used")
    ax.set_ylabel("curvature bound")
    ax.legend(loc="upper left", fontsize=8)
    # every row: the distribution of bound / L_used (≤ 1 certified for the sound bound, > 1 violated for the lower bound)
    ax2 = fig.add_subplot(1, 2, 2)
    for v, color, name in ((ver.sound, "tab:blue", "sound / L_used"), (ver.lower, "tab:orange", "lower / L_used")):
        q = v / np.maximum(ver.L_used_min, 1e-300)
        q = np.sort(q[np.isfinite(q) & (q > 0)])
        if q.size:
            ax2.plot(q, np.arange(1, q.size + 1) / N, color=color, label=name)
    ax2.axvline(1.0, color="black", lw=1)
    ax2.set_xscale("log")
    ax2.set_xlabel("bound / L used")
    ax2.set_ylabel(f"fraction of the {N} rows")
    ax2.legend(loc="lower right", fontsize=8)
    c = ver.counts
    fig.suptitle(f"iteration {ver.iteration}: certified {c['certified']}, plausible {c['plausible']}, violated {c['violated']}, "
                 f"unexamined {c['unexamined']}", fontsize=10)
    return save(fig, path)
