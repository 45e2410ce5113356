"""The reachability report of a linear task: exact sets, their checks, and the learned grid set.

:func:`linear_task_reach` computes, for a task with a linear system, backup gain ``K`` and
terminal ellipsoid ``X_f = {xᵀPx ≤ γ}`` (the double integrator of DESIGN §5):

* the inner and outer polytopic targets ``T_in ⊆ X_f ⊆ T_out`` (:mod:`.targets`);
* for each target, the backup's ``k``-step backward reachable sets and the ``k``-step
  controllable sets, ``k = 0 … N`` (``N`` = the requested horizon; up to the task's ``T`` too
  when ``T > N``, for the comparisons);
* the maximal positively invariant set of the backup and the maximal control-invariant set;
* claims: the exact inclusions (nested sets, ``X_f`` inside, backup inside controllable, inside
  the invariant sets), an ``evaluated`` independent check of membership by steering LPs and
  forward simulation, and ``evaluated`` comparisons of the task's grid safety region ``S`` and
  (with ``θ``) of the learned policy's grid set with the exact sets;
* areas: exact (rational shoelace on exact vertices) for polytopes, grid estimates for the
  learned set, plus the same grid estimator applied to the exact sets to show its error.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validate import check_int
from ..evidence import Claim, Level
from .checks import membership_agreement
from .exact import ellipsoid_in_polytope, exact_area, polytope_in_polytope
from .learned import GridSet, grid_area, grid_containment_claim, learned_grid_set
from .polytope import DEFAULT_TOL, Polytope
from .sets import (
    InvariantSet,
    Progress,
    ReachableSets,
    backup_invariant_set,
    backward_reachable_sets,
    maximal_control_invariant,
    state_set,
)
from .targets import TerminalTarget, terminal_targets

__all__ = ["ReachReport", "linear_task_reach", "EXACT_CONTAINMENT_TOL", "NUMERICS", "REPORT_SCHEMA_VERSION"]

logger = logging.getLogger(__name__)

REPORT_SCHEMA_VERSION = 1
EXACT_CONTAINMENT_TOL = 1e-8
"""Allowed violation (a distance, unit rows) in the exact containment tests between stored sets
whose boundaries coincide mathematically (rounding and the 1e-9 redundancy tolerance)."""

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


@dataclass(frozen=True)
class ReachReport:
    """Everything :func:`linear_task_reach` computed.

    Attributes
    ----------
    data : dict
        The JSON-ready report (H-representations, levels, areas, claims).
    claims : list of Claim
    targets : dict of {"inner", "outer"} -> TerminalTarget
    families : dict of name -> ReachableSets
        ``"backup_inner"``, ``"backup_outer"``, ``"controlled_inner"``, ``"controlled_outer"``;
        each up to ``max(N, T)`` steps.
    mpi : InvariantSet
        Maximal positively invariant set of the backup.
    control_invariant : InvariantSet
    learned : GridSet or None
    horizon : int
        ``N``.
    task_horizon : int
        ``T``.
    """

    data: dict[str, Any]
    claims: list[Claim]
    targets: dict[str, TerminalTarget]
    families: dict[str, ReachableSets]
    mpi: InvariantSet
    control_invariant: InvariantSet
    learned: GridSet | None
    horizon: int
    task_horizon: int
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every claim holds."""
        return all(c.holds for c in self.claims)


def _area(P: Polytope) -> float:
    return float(exact_area(P)) if P.dim == 2 else math.nan


def _chain_claim(name: str, statement: str, pairs: list[tuple[str, Polytope, Polytope]], tol: float) -> Claim:
    """Exact claim that ``inner ⊆ outer`` for every labelled pair."""
    worst = -math.inf
    failed = []
    for label, inner, outer in pairs:
        ok, w = polytope_in_polytope(inner, outer, tol)
        worst = max(worst, w)
        if not ok:
            failed.append(label)
    return Claim(
        name,
        statement + f" (every exact vertex of the smaller set satisfies every row of the larger up to {tol:g}, rational arithmetic)",
        Level.EXACT,
        not failed,
        {"pairs": len(pairs), "failed": failed, "worst_violation": worst, "tolerance": tol},
    )


def linear_task_reach(
    task: Any,
    horizon: int,
    *,
    theta: np.ndarray | None = None,
    directions: int = 32,
    grid: int = 100,
    samples: int = 100,
    max_invariant_steps: int = 100,
    tol: float = DEFAULT_TOL,
    containment_tol: float = EXACT_CONTAINMENT_TOL,
    seed: int = 0,
    progress: Progress | None = None,
) -> ReachReport:
    """Exact reachable and invariant sets of a linear task, their checks and (with ``θ``) the
    learned policy's grid set.

    Parameters
    ----------
    task : DoubleIntegratorTask
        Provides ``system``, ``K``, ``P``, ``gamma``, ``config.horizon`` (``T``),
        ``safety_states`` and, for ``θ``, ``rollout``/``rollout_rows``.
    horizon : int
        ``N ≥ 1``: the sets ``R_0 … R_N`` are reported.
    theta : ndarray, shape (d,), optional
        Parameters of the learned residual (e.g. a run's last checkpoint).
    directions : int
        Tangent directions of the polytopic targets around ``X_f``.
    grid : int
        Cell centres per axis of the learned set's grid estimate.
    samples : int
        Random states per independent membership check.
    max_invariant_steps : int
        Bound of the invariant-set iterations.
    tol, containment_tol : float
        LP redundancy tolerance; tolerance of the exact containment claims.
    seed : int
        Seed of the random states of the independent check.
    progress : callable, optional
        Receives ``{"stage", "step", "total", "facets", "seconds"}`` after each step.

    Returns
    -------
    ReachReport
    """
    horizon = check_int("horizon", horizon, minimum=1)
    t_all = time.perf_counter()
    system, K, P, gamma = task.system, np.asarray(task.K), np.asarray(task.P), float(task.gamma)
    T = int(task.config.horizon)
    steps = max(horizon, T)
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    inner, outer = terminal_targets(system, K, P, gamma, directions=directions, tol=tol)
    targets = {"inner": inner, "outer": outer}
    seconds["targets"] = time.perf_counter() - t0

    families: dict[str, ReachableSets] = {}
    for mode in ("backup", "controlled"):
        for rel, tgt in targets.items():
            name = f"{mode}_{rel}"
            t0 = time.perf_counter()

            def prog(info: dict[str, Any], _name: str = name) -> None:
                if progress is not None:
                    progress({**info, "stage": _name})

            families[name] = backward_reachable_sets(
                tgt.polytope, system, steps, K=K if mode == "backup" else None, tol=tol, progress=prog
            )
            seconds[name] = time.perf_counter() - t0

    t0 = time.perf_counter()
    mpi = backup_invariant_set(system, K, max_steps=max_invariant_steps, tol=tol, progress=progress)
    seconds["mpi"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cinv = maximal_control_invariant(system, max_steps=max_invariant_steps, tol=tol, progress=progress)
    seconds["control_invariant"] = time.perf_counter() - t0

    # ------------------------------------------------------------------ exact claims
    t0 = time.perf_counter()
    claims: list[Claim] = [c for t in targets.values() for c in t.claims]
    bi, bo = families["backup_inner"].sets, families["backup_outer"].sets
    ci, co = families["controlled_inner"].sets, families["controlled_outer"].sets
    ks = range(1, horizon + 1)
    claims.append(
        _chain_claim(
            "backup_sets_nested",
            f"R_{{k−1}} ⊆ R_k for k = 1…{horizon}: the backup's backward reachable sets of T_in are nested",
            [(f"k={k}", bi[k - 1], bi[k]) for k in ks],
            containment_tol,
        )
    )
    worst_xf = -math.inf
    bad_xf = []
    for k in ks:
        ok, w = ellipsoid_in_polytope(P, gamma, bi[k])
        worst_xf = max(worst_xf, w)
        if not ok:
            bad_xf.append(k)
    claims.append(
        Claim(
            "backup_sets_contain_Xf",
            f"X_f ⊆ R_k(T_in) for k = 1…{horizon} (so X_f also lies in the backup's k-step sets of X_f itself): every row "
            "aᵀx ≤ b of the stored set has b ≥ 0 and γ aᵀP⁻¹a ≤ b² (rational arithmetic)",
            Level.EXACT,
            not bad_xf,
            {"failing_k": bad_xf, "worst_support_minus_offset": worst_xf},
        )
    )
    claims.append(
        _chain_claim(
            "backup_inside_controllable",
            f"R_k^backup(T) ⊆ R_k^controllable(T) for k = 0…{horizon} and T ∈ {{T_in, T_out}}",
            [(f"inner k={k}", bi[k], ci[k]) for k in range(horizon + 1)] + [(f"outer k={k}", bo[k], co[k]) for k in range(horizon + 1)],
            containment_tol,
        )
    )
    claims.append(
        _chain_claim(
            "controllable_sets_nested",
            f"R_{{k−1}} ⊆ R_k for k = 1…{horizon}: the controllable sets of T_in are nested",
            [(f"k={k}", ci[k - 1], ci[k]) for k in ks],
            containment_tol,
        )
    )
    claims.append(
        Claim(
            "mpi_converged",
            "the Gilbert–Tan iteration for the backup's maximal positively invariant set O_∞ in X_cl terminated",
            Level.EXACT,
            mpi.converged,
            {"steps": mpi.steps, "max_steps": mpi.max_steps, "message": mpi.message, "facets": mpi.polytope.n_rows},
        )
    )
    ok_m, w_m = ellipsoid_in_polytope(P, gamma, mpi.polytope)
    claims.append(
        Claim(
            "mpi_contains_Xf",
            "X_f ⊆ O_∞ (every row aᵀx ≤ b of the stored O_∞ has b ≥ 0 and γ aᵀP⁻¹a ≤ b², rational arithmetic)",
            Level.EXACT,
            ok_m,
            {"worst_support_minus_offset": w_m},
        )
    )
    claims.append(
        _chain_claim(
            "backup_sets_inside_mpi",
            f"R_k(T_in) ⊆ O_∞ for k = 0…{horizon} (states that reach the invariant T_in ⊆ X_cl stay admissible forever)",
            [(f"k={k}", bi[k], mpi.polytope) for k in range(horizon + 1)],
            containment_tol,
        )
    )
    if cinv.converged:
        claims.append(
            _chain_claim(
                "inside_control_invariant",
                f"O_∞ ⊆ C_∞ and R_k^controllable(T_in) ⊆ C_∞ for k = 0…{horizon}",
                [("O_inf", mpi.polytope, cinv.polytope)] + [(f"k={k}", ci[k], cinv.polytope) for k in range(horizon + 1)],
                containment_tol,
            )
        )
    seconds["exact_claims"] = time.perf_counter() - t0

    # ------------------------------------------------------------------ independent check
    t0 = time.perf_counter()
    check_ks = sorted({max(1, horizon // 3), horizon})
    for fam, tgt_name in (("backup_inner", "inner"), ("backup_outer", "outer"), ("controlled_inner", "inner"), ("controlled_outer", "outer")):
        for k in check_ks:
            claims.append(
                membership_agreement(
                    families[fam].sets[k],
                    system,
                    targets[tgt_name].polytope,
                    k,
                    K=K if fam.startswith("backup") else None,
                    samples=samples,
                    seed=seed + k,
                    name=f"independent_check_{fam}_k{k}",
                )
            )
    seconds["independent_check"] = time.perf_counter() - t0

    # ------------------------------------------------------------------ the task's S
    S = np.asarray(task.safety_states)
    brs_in, brs_out = bi[T], bo[T]
    claims.append(
        grid_containment_claim(
            "safety_region_inside_outer_set",
            f"every grid state of the task's safety region S (backup reaches X_f in T = {T} steps, evaluated by "
            f"rollouts) lies in the exact backup set R_T(T_out) ⊇ R_T(X_f)",
            S,
            np.ones(S.shape[0], dtype=bool),
            brs_out,
        )
    )
    grid_states = np.asarray(task.grid_states)
    strictly_in = brs_in.residual(grid_states) <= -1e-9
    in_S = np.asarray(task.in_safety_region, dtype=bool)
    missing = strictly_in & ~in_S
    claims.append(
        Claim(
            "inner_set_grid_states_in_safety_region",
            f"every task grid state strictly inside the exact backup set R_T(T_in) ⊆ R_T(X_f) (T = {T}) is in S",
            Level.EVALUATED,
            not missing.any(),
            {"grid_states_strictly_inside": int(strictly_in.sum()), "not_in_S": int(missing.sum()), "examples": grid_states[missing][:10].tolist()},
        )
    )
    s_outside_inner = int((brs_in.residual(S) > 1e-9).sum())
    box_area = float(np.prod(np.ptp(grid_states, axis=0)))
    safety = {
        "level": Level.EVALUATED.value,
        "grid_states": int(grid_states.shape[0]),
        "states_in_S": int(S.shape[0]),
        "S_states_outside_inner_set": s_outside_inner,
        "S_states_outside_outer_set": int((brs_out.residual(S) > 1e-9).sum()),
        "note": "S states outside R_T(T_in) are expected near its boundary (T_in is strictly inside X_f); none may lie outside R_T(T_out)",
        "fraction_of_grid_in_S_times_box_area": box_area * S.shape[0] / grid_states.shape[0],
        "exact_area_R_T_inner": _area(brs_in),
        "exact_area_R_T_outer": _area(brs_out),
    }

    # ------------------------------------------------------------------ learned policy
    learned = None
    learned_data: dict[str, Any] | None = None
    if theta is not None:
        t0 = time.perf_counter()
        learned = learned_grid_set(task, np.asarray(theta, dtype=float), grid=grid)
        c_out = co[T]
        claims.append(
            grid_containment_claim(
                "learned_set_inside_controllable_set",
                f"every grid state from which the learned policy reaches X_f in T = {T} steps inside the constraints "
                f"(rollouts) lies in the exact controllable set R_T^controllable(T_out) ⊇ R_T^controllable(X_f)",
                learned.states,
                learned.inside,
                c_out,
            )
        )
        beyond = learned.inside & (brs_out.residual(learned.states) > 1e-9)
        backup_lost = (brs_in.residual(learned.states) <= -1e-9) & ~learned.inside
        learned_data = {
            **learned.to_dict(),
            "grid": grid,
            "statement": f"grid estimate of the learned closed loop's T = {T}-step backward reachable set of X_f (cell centres, rollouts)",
            "area_estimate_beyond_backup": float(beyond.sum() * learned.cell_area),
            "grid_states_beyond_backup": int(beyond.sum()),
            "grid_states_of_backup_set_lost": int(backup_lost.sum()),
            "areas": {
                "learned_grid_estimate": learned.area,
                "backup_exact_inner": _area(brs_in),
                "backup_exact_outer": _area(brs_out),
                "controllable_exact_inner": _area(ci[T]),
                "controllable_exact_outer": _area(c_out),
                "backup_grid_estimate_of_exact_inner": grid_area(brs_in, learned.states, learned.cell_area),
                "controllable_grid_estimate_of_exact_outer": grid_area(c_out, learned.states, learned.cell_area),
            },
        }
        a = learned_data["areas"]
        gap = a["controllable_exact_inner"] - a["backup_exact_outer"]
        learned_data["share_of_gap_closed"] = (
            (a["learned_grid_estimate"] - a["backup_exact_outer"]) / gap if gap > 0 else None
        )
        learned_data["share_of_gap_note"] = (
            "(learned area − backup area) / (controllable area − backup area), grid estimate against exact areas; "
            "negative when the learned policy reaches X_f from less than the backup"
        )
        seconds["learned"] = time.perf_counter() - t0

    seconds["total"] = time.perf_counter() - t_all
    data = _report_data(task, horizon, T, steps, targets, families, mpi, cinv, claims, safety, learned_data, seconds, P, gamma, K)
    return ReachReport(
        data=data,
        claims=claims,
        targets=targets,
        families=families,
        mpi=mpi,
        control_invariant=cinv,
        learned=learned,
        horizon=horizon,
        task_horizon=T,
        seconds=seconds,
    )


def _report_data(task, horizon, T, steps, targets, families, mpi, cinv, claims, safety, learned, seconds, P, gamma, K) -> dict[str, Any]:
    from .. import __version__

    fams = {}
    for name, fam in families.items():
        mode, rel = name.split("_")
        tname = "T_in" if rel == "inner" else "T_out"
        fams[name] = {
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
            "facets": fam.facets[: horizon + 1],
            "seconds": list(fam.seconds[: horizon + 1]),
            "sets": [
                {"k": k, "facets": S.n_rows, "area": _area(S), **S.to_dict()} for k, S in enumerate(fam.sets[: horizon + 1])
            ],
        }
        if steps > horizon:
            S = fam.sets[T]
            fams[name]["task_horizon_set"] = {"k": T, "facets": S.n_rows, "area": _area(S), **S.to_dict()}
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "scpo_version": __version__,
        "task": getattr(task, "name", "linear task"),
        "system": task.system.to_dict(),
        "backup_gain_K": np.asarray(K).tolist(),
        "terminal_set": {
            "P": np.asarray(P).tolist(),
            "gamma": gamma,
            "statement": "X_f = {x : xᵀPx ≤ γ} (an ellipsoid, not a polytope: polytopic computations use T_in ⊆ X_f ⊆ T_out)",
            "area": math.pi * gamma / math.sqrt(float(np.linalg.det(P))) if np.asarray(P).shape == (2, 2) else None,
        },
        "horizon": horizon,
        "task_horizon": T,
        "targets": {k: v.to_dict() | {"area": _area(v.polytope)} for k, v in targets.items()},
        "families": fams,
        "maximal_positively_invariant": mpi.to_dict() | {"level": Level.EXACT.value, "numerics": NUMERICS, "area": _area(mpi.polytope)},
        "maximal_control_invariant": cinv.to_dict()
        | {
            "level": Level.EXACT.value if cinv.converged else "outer approximation (not converged)",
            "numerics": NUMERICS,
            "area": _area(cinv.polytope),
        },
        "state_box_area": _area(state_set(task.system)),
        "safety_region": safety,
        "learned": learned,
        "claims": [c.to_dict() for c in claims],
        "all_claims_hold": all(c.holds for c in claims),
        "seconds": seconds,
    }
