"""The reachability report of a linear closed-loop problem: exact sets, their checks, grid comparisons.

:func:`linear_reach` computes, for a :class:`~scpo.systems.ClosedLoopProblem` with backup gain
``K``, terminal ellipsoid ``X_f = {xᵀPx ≤ γ}`` and horizon ``T`` (the double integrator of
DESIGN §5, or any other):

* the inner and outer polytopic targets ``T_in ⊆ X_f ⊆ T_out`` (:func:`compute_targets`);
* for each target, the backup's ``k``-step backward reachable sets and the ``k``-step
  controllable sets, ``k = 0 … N`` (``N`` = the requested horizon; up to ``T`` too when
  ``T > N``, for the comparisons) (:func:`reachable_families`);
* the maximal positively invariant set of the backup and the maximal control-invariant set
  (:func:`invariant_sets`);
* with ``sets="backup"`` (the default ``"auto"`` picks it for ``n ≥ 4``) only the backup's sets and
  ``O_∞``, and the claims about them: the controllable sets of a 4-D system grow thousands of
  facets within a few steps (the cart-pole: 200 → 1,864 in 7 steps, and Qhull then fails on their
  nearly degenerate vertices), so the report says they were not computed;
* claims: the exact inclusions (:func:`~scpo.reachability.claims.exact_inclusion_claims`), an
  ``evaluated`` independent check of membership by steering LPs and forward simulation
  (:func:`~scpo.reachability.claims.independent_check_claims`), and ``evaluated`` comparisons of
  a grid safety region ``S`` and (with a learned policy) of its grid set with the exact sets
  (:mod:`scpo.reachability.comparisons`);
* areas: exact (rational shoelace on exact vertices) for 2-D polytopes, grid estimates for the
  learned set, plus the same grid estimator applied to the exact sets to show its error.

The result is a :class:`ReachReport`; :func:`report_data` turns it into the JSON document.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import numpy as np

from .._validate import as_array, check_int
from .._version import __version__
from ..errors import InvalidInputError, ShapeError
from ..evidence import Claim, Level
from ..numerics import EXACT_CONTAINMENT_TOL, SET_TOL
from ..systems import ClosedLoopProblem
from .claims import FAMILY_NAMES, exact_inclusion_claims, independent_check_claims
from .comparisons import Comparison, learned_comparison, safety_region_comparison
from .exact import exact_area_or_nan
from .learned import GridSet, PolicyMap, learned_grid_set
from .polytope import Polytope
from .sets import InvariantSet, Progress, ReachableSets, backup_invariant_set, backward_reachable_sets, maximal_control_invariant, state_set
from .targets import TerminalTarget, terminal_targets

__all__ = [
    "ReachReport",
    "linear_reach",
    "compute_targets",
    "reachable_families",
    "invariant_sets",
    "report_data",
    "NUMERICS",
    "REPORT_SCHEMA_VERSION",
    "SET_CHOICES",
    "resolve_sets",
]

REPORT_SCHEMA_VERSION = 1

NUMERICS = (
    "exact set recursion (no sampling or gridding): rows are stacked (closed loop) or projected by cddlib "
    "(controlled system) in float64, redundant rows removed by HiGHS LPs with tolerance 1e-9 (a distance); "
    "the stored rows equal the exact-arithmetic rows up to this rounding. Inclusions between stored sets are "
    "proved in rational arithmetic (claims)."
)

FAMILY_STATEMENTS = {
    "backup": "R_k = {{x₀ : x_t ∈ X and K x_t ∈ U for t = 0…k−1 under x⁺ = (A+BK)x, and x_k ∈ {target}}}",
    "controlled": "R_k = {{x₀ : some u_0…u_{{k−1}} ∈ U keep x_t ∈ X for t = 0…k−1 and reach x_k ∈ {target}}} (k-step controllable set)",
}

SET_CHOICES = ("auto", "all", "backup")
"""``sets`` of :func:`linear_reach`: ``"all"`` the backup's and the controllable sets, ``"backup"``
the backup's sets and ``O_∞`` only, ``"auto"`` ``"all"`` for ``n ≤ 3`` and ``"backup"`` above."""

AUTO_ALL_MAX_DIM = 3

_R = TypeVar("_R")


def resolve_sets(sets: str, n: int) -> str:
    """The family selection ``"all"`` or ``"backup"`` that ``sets`` means for an ``n``-state problem.

    Parameters
    ----------
    sets : {"auto", "all", "backup"}
    n : int
        State dimension.

    Returns
    -------
    str
        ``"all"`` or ``"backup"``.

    Raises
    ------
    InvalidInputError
        ``sets`` is not one of :data:`SET_CHOICES`.
    """
    if sets not in SET_CHOICES:
        raise InvalidInputError(f"sets: expected one of {', '.join(SET_CHOICES)}, got {sets!r}")
    if sets == "auto":
        return "all" if n <= AUTO_ALL_MAX_DIM else "backup"
    return sets


def _timed(seconds: dict[str, float], key: str, fn: Callable[..., _R], *args: Any, **kwargs: Any) -> _R:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    seconds[key] = time.perf_counter() - t0
    return out


@dataclass(frozen=True, eq=False)
class ReachReport:
    """Everything :func:`linear_reach` computed.

    Attributes
    ----------
    problem : ClosedLoopProblem
        The problem analysed (``T = problem.horizon``).
    name : str
        Name written to the report (e.g. the task's registry name).
    horizon : int
        ``N``.
    targets : dict of {"inner", "outer"} -> TerminalTarget
    families : dict of name -> ReachableSets
        ``"backup_inner"``, ``"backup_outer"`` and (``sets == "all"``) ``"controlled_inner"``,
        ``"controlled_outer"``; each up to ``max(N, T)`` steps.
    mpi : InvariantSet
        Maximal positively invariant set of the backup.
    control_invariant : InvariantSet or None
        Maximal control-invariant set (an outer approximation when not converged); ``None`` when
        ``sets == "backup"``.
    claims : list of Claim
        Target claims, exact inclusions, independent checks, grid comparisons, in that order.
    safety : Comparison
        The grid safety region ``S`` against the exact sets.
    safety_states : ndarray, shape (S, n)
        The grid states of ``S``.
    learned : GridSet or None
        The learned policy's grid set.
    learned_comparison : Comparison or None
        The learned grid set against the exact sets.
    seconds : dict of str -> float
        Wall time of each stage and ``"total"``.
    sets : {"all", "backup"}
        Which families were computed.
    """

    problem: ClosedLoopProblem
    name: str
    horizon: int
    targets: dict[str, TerminalTarget]
    families: dict[str, ReachableSets]
    mpi: InvariantSet
    control_invariant: InvariantSet | None
    claims: list[Claim]
    safety: Comparison
    safety_states: np.ndarray
    learned: GridSet | None = None
    learned_comparison: Comparison | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    sets: str = "all"

    @property
    def task_horizon(self) -> int:
        """``T``, the horizon of the problem (of ``S`` and of the learned set)."""
        return self.problem.horizon

    @property
    def ok(self) -> bool:
        """Every claim holds."""
        return all(c.holds for c in self.claims)

    @cached_property
    def data(self) -> dict[str, Any]:
        """The JSON-ready report (:func:`report_data`)."""
        return report_data(self)


def compute_targets(problem: ClosedLoopProblem, *, directions: int = 32, tol: float = SET_TOL) -> dict[str, TerminalTarget]:
    """The polytopic targets ``T_in ⊆ X_f ⊆ T_out`` of the problem's terminal set.

    Parameters
    ----------
    problem : ClosedLoopProblem
        With a terminal set ``X_f = {xᵀPx ≤ γ}``.
    directions : int
        Tangent directions around ``X_f`` (2-D; see :func:`~scpo.reachability.targets.terminal_targets`).
    tol : float
        LP redundancy tolerance.

    Returns
    -------
    dict of {"inner", "outer"} -> TerminalTarget
    """
    inner, outer = terminal_targets(problem.system, problem.K, problem.P, problem.gamma, directions=directions, tol=tol)
    return {"inner": inner, "outer": outer}


def reachable_families(
    problem: ClosedLoopProblem,
    targets: dict[str, TerminalTarget],
    steps: int,
    *,
    tol: float = SET_TOL,
    progress: Progress | None = None,
    seconds: dict[str, float] | None = None,
    modes: tuple[str, ...] = ("backup", "controlled"),
) -> dict[str, ReachableSets]:
    """The backup's and the controllable ``k``-step sets of both targets, ``k = 0 … steps``.

    ``R_k^backup(T) = Pre_cl(R_{k−1})`` under ``u = Kx`` and ``R_k^controllable(T) =
    Pre(R_{k−1})`` for some ``u ∈ U`` (:func:`~scpo.reachability.sets.backward_reachable_sets`).

    Parameters
    ----------
    problem : ClosedLoopProblem
    targets : dict of {"inner", "outer"} -> TerminalTarget
    steps : int
        Number of backward steps.
    tol : float
        LP redundancy tolerance.
    progress : callable, optional
        Receives each step's ``{"stage", "step", "total", "facets", "seconds"}``, ``stage`` the
        family name.
    seconds : dict, optional
        Receives the wall time of each family under its name.
    modes : tuple of {"backup", "controlled"}
        Which kinds of sets to compute.

    Returns
    -------
    dict of name -> ReachableSets
        The :data:`~scpo.reachability.claims.FAMILY_NAMES` of ``modes``, each with ``steps + 1`` sets.
    """
    seconds = {} if seconds is None else seconds
    families: dict[str, ReachableSets] = {}
    for name in FAMILY_NAMES:
        mode, rel = name.split("_")
        if mode not in modes:
            continue

        def prog(info: dict[str, Any], _name: str = name) -> None:
            if progress is not None:
                progress({**info, "stage": _name})

        K = problem.K if mode == "backup" else None
        families[name] = _timed(
            seconds, name, backward_reachable_sets, targets[rel].polytope, problem.system, steps, K=K, tol=tol, progress=prog
        )
    return families


def invariant_sets(
    problem: ClosedLoopProblem,
    *,
    max_steps: int = 100,
    tol: float = SET_TOL,
    progress: Progress | None = None,
    seconds: dict[str, float] | None = None,
    control_invariant: bool = True,
) -> tuple[InvariantSet, InvariantSet | None]:
    """The backup's maximal positively invariant set ``O_∞`` and the maximal control-invariant set ``C_∞``.

    Parameters
    ----------
    problem : ClosedLoopProblem
    max_steps : int
        Bound of both iterations.
    tol : float
        LP redundancy tolerance.
    progress : callable, optional
        Receives each step (stages ``"positively invariant"``, ``"control invariant"``).
    seconds : dict, optional
        Receives the wall times under ``"mpi"`` and ``"control_invariant"``.
    control_invariant : bool
        Compute ``C_∞`` (``False``: only ``O_∞``, and ``None`` in its place).

    Returns
    -------
    mpi : InvariantSet
    control_invariant : InvariantSet or None
    """
    seconds = {} if seconds is None else seconds
    mpi = _timed(seconds, "mpi", backup_invariant_set, problem.system, problem.K, max_steps=max_steps, tol=tol, progress=progress)
    if not control_invariant:
        return mpi, None
    cinv = _timed(seconds, "control_invariant", maximal_control_invariant, problem.system, max_steps=max_steps, tol=tol, progress=progress)
    return mpi, cinv


def _check_inputs(problem: Any, grid_states: Any, in_S: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(problem, ClosedLoopProblem):
        raise InvalidInputError(f"problem: expected a scpo.systems.ClosedLoopProblem, got {type(problem).__name__}")
    if not problem.has_terminal:
        raise InvalidInputError(
            f"problem: expected a closed-loop problem with a terminal set X_f = {{xᵀPx ≤ γ}} (the target of the backward "
            f"reachable sets), got {problem.name!r} without one"
        )
    grid_states = as_array("grid_states", grid_states, shape=(None, problem.n))
    in_S = np.asarray(in_S)
    if in_S.dtype != bool:
        raise InvalidInputError(f"in_S: expected a boolean mask over grid_states, got dtype {in_S.dtype}")
    if in_S.shape != (grid_states.shape[0],):
        raise ShapeError(f"in_S: expected shape ({grid_states.shape[0]},) to match grid_states, got {in_S.shape}")
    return grid_states, in_S


def linear_reach(
    problem: ClosedLoopProblem,
    horizon: int,
    *,
    grid_states: np.ndarray,
    in_S: np.ndarray,
    learned: PolicyMap | GridSet | None = None,
    name: str | None = None,
    directions: int = 32,
    grid: int = 100,
    samples: int = 100,
    max_invariant_steps: int = 100,
    tol: float = SET_TOL,
    containment_tol: float = EXACT_CONTAINMENT_TOL,
    seed: int = 0,
    device: Any = None,
    progress: Progress | None = None,
    sets: str = "auto",
    safety_domain: Polytope | None = None,
) -> ReachReport:
    """Exact reachable and invariant sets of a linear closed-loop problem, their checks and the
    grid comparisons with a safety region and (optionally) a learned policy's set.

    Parameters
    ----------
    problem : ClosedLoopProblem
        With a terminal set ``X_f``; its horizon ``T`` is that of ``S`` and of the learned set.
    horizon : int
        ``N ≥ 1``: the sets ``R_0 … R_N`` are reported.
    grid_states : ndarray, shape (G, n)
        Grid on which the safety region ``S`` was decided.
    in_S : ndarray of bool, shape (G,)
        Which grid states are in ``S`` (the backup reaches ``X_f`` in ``T`` steps inside the
        constraints, decided by rollouts).
    learned : callable or GridSet, optional
        The learned closed loop: a policy map for :func:`scpo.systems.rollout` (states
        (1, S, n) -> inputs (1, S, m), e.g. :func:`~scpo.reachability.learned.residual_policy_map`),
        whose grid set is estimated on ``grid`` centres per axis of the state box, or a grid set
        computed by the caller.
    name : str, optional
        Name written to the report (default ``problem.name``).
    directions : int
        Tangent directions of the polytopic targets around ``X_f``.
    grid : int
        Cell centres per axis of the learned set's grid estimate.
    samples : int
        Random states per independent membership check.
    max_invariant_steps : int
        Bound of the invariant-set iterations.
    tol : float
        LP redundancy tolerance.
    containment_tol : float
        Tolerance of the exact containment claims.
    seed : int
        Seed of the random states of the independent check.
    device : torch.device or str, optional
        Device of the learned policy's rollouts.
    progress : callable, optional
        Receives ``{"stage", "step", "total", "facets", "seconds"}`` after each step.
    sets : {"auto", "all", "backup"}
        Which sets to compute (:data:`SET_CHOICES`, :func:`resolve_sets`): ``"backup"`` leaves out
        the controllable sets, ``C_∞`` and the claims about them.
    safety_domain : Polytope, optional
        The polytope ``S`` was restricted to (the task's declared region ``C``, when its ``S`` is
        the backup's grid set inside ``C``): the safety comparison's coverage claim is about the grid
        states inside it.

    Returns
    -------
    ReachReport

    Raises
    ------
    InvalidInputError
        No terminal set, ``N < 1``, grid arrays that do not match the problem, an unknown
        ``sets``, or a learned policy with ``sets`` resolving to ``"backup"`` (its comparison is
        against the controllable sets).
    """
    grid_states, in_S = _check_inputs(problem, grid_states, in_S)
    horizon = check_int("horizon", horizon, minimum=1)
    chosen = resolve_sets(sets, problem.n)
    if chosen == "backup" and learned is not None:
        raise InvalidInputError(
            f"sets: the learned policy's set is compared with the controllable sets, which sets={sets!r} leaves out for "
            f"n = {problem.n}; pass sets='all' (slow and numerically fragile in n ≥ 4) or no learned policy"
        )
    t_all = time.perf_counter()
    T = problem.horizon
    seconds: dict[str, float] = {}

    targets = _timed(seconds, "targets", compute_targets, problem, directions=directions, tol=tol)
    modes = ("backup", "controlled") if chosen == "all" else ("backup",)
    families = reachable_families(problem, targets, max(horizon, T), tol=tol, progress=progress, seconds=seconds, modes=modes)
    mpi, cinv = invariant_sets(
        problem, max_steps=max_invariant_steps, tol=tol, progress=progress, seconds=seconds, control_invariant=chosen == "all"
    )

    claims: list[Claim] = [c for t in targets.values() for c in t.claims]
    claims += _timed(seconds, "exact_claims", exact_inclusion_claims, problem, families, mpi, cinv, horizon, tol=containment_tol)
    claims += _timed(seconds, "independent_check", independent_check_claims, problem, families, targets, horizon, samples=samples, seed=seed)
    if safety_domain is not None and (not isinstance(safety_domain, Polytope) or safety_domain.dim != problem.n):
        raise InvalidInputError(f"safety_domain: expected a Polytope in R^{problem.n}, got {safety_domain!r}")
    safety = safety_region_comparison(families, T, grid_states, in_S, domain=safety_domain)
    claims += safety.claims

    learned_set, learned_cmp = None, None
    if learned is not None:
        t0 = time.perf_counter()
        learned_set = learned if isinstance(learned, GridSet) else learned_grid_set(problem, learned, grid=grid, device=device)
        per_axis = grid if not isinstance(learned, GridSet) else int(round(learned.states.shape[0] ** (1 / problem.n)))
        learned_cmp = learned_comparison(families, T, learned_set, per_axis)
        claims += learned_cmp.claims
        seconds["learned"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_all
    return ReachReport(
        problem=problem, name=problem.name if name is None else str(name), horizon=horizon, targets=targets, families=families,
        mpi=mpi, control_invariant=cinv, claims=claims, safety=safety, safety_states=grid_states[in_S],
        learned=learned_set, learned_comparison=learned_cmp, seconds=seconds, sets=chosen,
    )


def _set_data(k: int, P: Any) -> dict[str, Any]:
    return {"k": k, "facets": P.n_rows, "area": exact_area_or_nan(P), **P.to_dict()}


def _family_data(name: str, fam: ReachableSets, horizon: int, task_horizon: int) -> dict[str, Any]:
    mode, rel = name.split("_")
    tname = "T_in" if rel == "inner" else "T_out"
    out = {
        "mode": mode,
        "target": rel,
        "level": Level.EXACT.value,
        "statement": FAMILY_STATEMENTS[mode].format(target=tname),
        "relation_to_Xf": (
            f"{tname} ⊆ X_f: inner approximations of the k-step sets of X_f"
            if rel == "inner"
            else f"{tname} ⊇ X_f: outer approximations of the k-step sets of X_f"
        ),
        "numerics": NUMERICS,
        "fixed_point": fam.fixed_point,
        "fixed_point_statement": (
            f"R_{fam.fixed_point} = R_{fam.fixed_point - 1} (same facets up to 1e-9): the sets of every later step equal it "
            "and were not recomputed" if fam.fixed_point is not None else "no fixed point within the steps computed"
        ),
        "facets": fam.facets[: horizon + 1],
        "seconds": list(fam.seconds[: horizon + 1]),
        "sets": [_set_data(k, S) for k, S in enumerate(fam.sets[: horizon + 1])],
    }
    if fam.horizon > horizon:
        out["task_horizon_set"] = _set_data(task_horizon, fam.sets[task_horizon])
    return out


def report_data(report: ReachReport) -> dict[str, Any]:
    """The JSON document of a report (schema :data:`REPORT_SCHEMA_VERSION`).

    Parameters
    ----------
    report : ReachReport

    Returns
    -------
    dict
        ``schema_version, scpo_version, task, system, backup_gain_K, terminal_set, horizon,
        task_horizon, sets, sets_statement, targets, families, maximal_positively_invariant,
        maximal_control_invariant, state_box_area, safety_region, learned, claims, all_claims_hold,
        seconds``; every set with its H-representation, facets and exact area (``nan`` outside 2-D).
        With ``sets == "backup"`` the families are the backup's two and ``maximal_control_invariant``
        is ``None``.
    """
    problem, cinv = report.problem, report.control_invariant
    P, gamma = np.asarray(problem.P), float(problem.gamma)
    if cinv is None:
        cinv_data = None
        sets_statement = (
            "backup's sets and O_∞ only: the controllable sets, C_∞ and the claims about them were not computed "
            f"(n = {problem.n}; sets='all' computes them)"
        )
    else:
        cinv_data = cinv.to_dict() | {
            "level": Level.EXACT.value if cinv.converged else "outer approximation (not converged)",
            "numerics": NUMERICS,
            "area": exact_area_or_nan(cinv.polytope),
        }
        sets_statement = "the backup's and the controllable sets, O_∞ and C_∞"
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "scpo_version": __version__,
        "task": report.name,
        "system": problem.system.to_dict(),
        "backup_gain_K": np.asarray(problem.K).tolist(),
        "terminal_set": {
            "P": P.tolist(),
            "gamma": gamma,
            "statement": "X_f = {x : xᵀPx ≤ γ} (an ellipsoid, not a polytope: polytopic computations use T_in ⊆ X_f ⊆ T_out)",
            "area": math.pi * gamma / math.sqrt(float(np.linalg.det(P))) if P.shape == (2, 2) else None,
        },
        "horizon": report.horizon,
        "task_horizon": report.task_horizon,
        "sets": report.sets,
        "sets_statement": sets_statement,
        "targets": {k: v.to_dict() | {"area": exact_area_or_nan(v.polytope)} for k, v in report.targets.items()},
        "families": {name: _family_data(name, fam, report.horizon, report.task_horizon) for name, fam in report.families.items()},
        "maximal_positively_invariant": report.mpi.to_dict()
        | {"level": Level.EXACT.value, "numerics": NUMERICS, "area": exact_area_or_nan(report.mpi.polytope)},
        "maximal_control_invariant": cinv_data,
        "state_box_area": exact_area_or_nan(state_set(problem.system)),
        "safety_region": report.safety.data,
        "learned": None if report.learned_comparison is None else report.learned_comparison.data,
        "claims": [c.to_dict() for c in report.claims],
        "all_claims_hold": report.ok,
        "seconds": report.seconds,
    }
