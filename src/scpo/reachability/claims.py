"""The claims about the exact sets of a reachability report: inclusions and independent checks.

* :func:`exact_inclusion_claims` — ``exact`` claims, proved in rational arithmetic on the stored
  rows (:mod:`scpo.reachability.exact`): the backup's ``k``-step sets of ``T_in`` are nested and
  contain ``X_f``, the backup's sets lie in the controllable ones, the controllable sets are
  nested, the Gilbert–Tan iteration terminated, ``X_f ⊆ O_∞``, the backup's sets lie in ``O_∞``
  and (when ``C_∞`` was found) everything lies in ``C_∞``.
* :func:`independent_check_claims` — ``evaluated`` claims that membership in some of the computed
  sets agrees with forward simulation of the backup or with a steering LP
  (:func:`~scpo.reachability.checks.membership_agreement`), which does not use the set recursion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ..evidence import Claim, Level
from ..numerics import EXACT_CONTAINMENT_TOL
from ..systems import ClosedLoopProblem
from .checks import membership_agreement
from .exact import ellipsoid_in_polytope, polytope_in_polytope
from .polytope import Polytope
from .sets import InvariantSet, ReachableSets
from .targets import TerminalTarget

__all__ = ["inclusion_claim", "ellipsoid_inclusion_claim", "exact_inclusion_claims", "independent_check_claims", "FAMILY_NAMES"]

FAMILY_NAMES = ("backup_inner", "backup_outer", "controlled_inner", "controlled_outer")
"""The four families of a report: ``{backup, controlled}`` sets of ``{T_in, T_out}``."""


def inclusion_claim(
    name: str, statement: str, pairs: Sequence[tuple[str, Polytope, Polytope]], tol: float = EXACT_CONTAINMENT_TOL
) -> Claim:
    """``exact`` claim that ``inner ⊆ outer`` for every labelled pair.

    Each pair is decided by :func:`~scpo.reachability.exact.polytope_in_polytope`: every exact
    vertex of ``inner`` satisfies every row of ``outer`` up to ``tol`` (rational arithmetic).

    Parameters
    ----------
    name, statement : str
        Name and statement of the claim (the rule of the test is appended to the statement).
    pairs : sequence of (str, Polytope, Polytope)
        ``(label, inner, outer)``.
    tol : float
        Allowed violation (a distance on unit rows).

    Returns
    -------
    Claim
        Details: number of pairs, labels of the failed ones, worst violation, tolerance.
    """
    worst = -math.inf
    failed = []
    done: dict[tuple[int, int], tuple[bool, float]] = {}
    for label, inner, outer in pairs:
        key = (id(inner), id(outer))
        if key not in done:  # the sets after a fixed point are one object: decide each pair once
            done[key] = (True, -math.inf) if inner is outer else polytope_in_polytope(inner, outer, tol)
        ok, w = done[key]
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


def ellipsoid_inclusion_claim(
    name: str, statement: str, P: np.ndarray, gamma: float, sets: Sequence[tuple[int, Polytope]]
) -> Claim:
    """``exact`` claim that ``X_f = {xᵀPx ≤ γ} ⊆ R`` for every labelled set ``R``.

    Every row ``aᵀx ≤ b`` of each stored set must have ``b ≥ 0`` and ``γ aᵀP⁻¹a ≤ b²``
    (:func:`~scpo.reachability.exact.ellipsoid_in_polytope`, rational arithmetic).

    Parameters
    ----------
    name, statement : str
    P : ndarray, shape (n, n)
    gamma : float
    sets : sequence of (int, Polytope)
        ``(k, R_k)``.

    Returns
    -------
    Claim
        Details: the failing ``k`` and the worst support-minus-offset.
    """
    worst = -math.inf
    bad = []
    done: dict[int, tuple[bool, float]] = {}
    for k, R in sets:
        if id(R) not in done:
            done[id(R)] = ellipsoid_in_polytope(P, gamma, R)
        ok, w = done[id(R)]
        worst = max(worst, w)
        if not ok:
            bad.append(k)
    return Claim(name, statement, Level.EXACT, not bad, {"failing_k": bad, "worst_support_minus_offset": worst})


def _contain_Xf_claim(P: np.ndarray, gamma: float, sets: Sequence[Polytope], N: int) -> Claim:
    """``X_f ⊆ R_k(T_in)`` for ``k = k₀ … N``, ``k₀`` the first ``k`` from which it holds for every later ``k``.

    A coarse ``T_in`` (few tangent directions in ``n ≥ 4``) need not contain ``(A+BK) X_f``; the
    contracting backup then brings ``X_f`` into ``T_in`` after ``k₀ > 1`` steps, and the claim says
    from which ``k`` on the inclusion is proved (each ``k`` in rational arithmetic).
    """
    probe = ellipsoid_inclusion_claim("backup_sets_contain_Xf", "", P, gamma, [(k, sets[k]) for k in range(1, N + 1)])
    failing = probe.details["failing_k"]
    k0 = (max(failing) + 1) if failing else 1
    statement = (
        f"X_f ⊆ R_k(T_in) for k = {k0}…{N} (so X_f also lies in the backup's k-step sets of X_f itself): every row "
        "aᵀx ≤ b of the stored set has b ≥ 0 and γ aᵀP⁻¹a ≤ b² (rational arithmetic)"
    )
    if k0 > 1:
        statement += f"; for k < {k0} the polytope T_in is too coarse to contain (A+BK)ᵏ X_f"
    holds = k0 <= N
    details = {**probe.details, "from_k": k0 if holds else None}
    return Claim("backup_sets_contain_Xf", statement, Level.EXACT, holds, details)


def exact_inclusion_claims(
    problem: ClosedLoopProblem,
    families: Mapping[str, ReachableSets],
    mpi: InvariantSet,
    control_invariant: InvariantSet,
    horizon: int,
    *,
    tol: float = EXACT_CONTAINMENT_TOL,
) -> list[Claim]:
    """The ``exact`` claims about the families and invariant sets, ``k = 0 … N``.

    Parameters
    ----------
    problem : ClosedLoopProblem
        Provides ``X_f = {xᵀPx ≤ γ}``.
    families : mapping of name -> ReachableSets
        The :data:`FAMILY_NAMES` computed (``backup_inner`` and ``backup_outer`` at least), each
        with at least ``N + 1`` sets.
    mpi : InvariantSet
        The backup's maximal positively invariant set ``O_∞``.
    control_invariant : InvariantSet or None
        The maximal control-invariant set ``C_∞`` (claims about it only when it converged;
        ``None`` when it was not computed).
    horizon : int
        ``N``.
    tol : float
        Tolerance of the rational containment tests.

    Returns
    -------
    list of Claim
        ``backup_sets_nested, backup_sets_contain_Xf, backup_inside_controllable,
        controllable_sets_nested, mpi_converged, mpi_contains_Xf, backup_sets_inside_mpi`` and,
        when ``C_∞`` converged, ``inside_control_invariant``; without the controllable families
        the two claims about them are left out.
    """
    P, gamma, N = problem.P, problem.gamma, horizon
    bi, bo = families["backup_inner"].sets, families["backup_outer"].sets
    controlled = "controlled_inner" in families and "controlled_outer" in families
    ks, all_k = range(1, N + 1), range(N + 1)
    O = mpi.polytope
    claims = [
        inclusion_claim(
            "backup_sets_nested",
            f"R_{{k−1}} ⊆ R_k for k = 1…{N}: the backup's backward reachable sets of T_in are nested",
            [(f"k={k}", bi[k - 1], bi[k]) for k in ks],
            tol,
        ),
        _contain_Xf_claim(P, gamma, bi, N),
    ]
    if controlled:
        ci, co = families["controlled_inner"].sets, families["controlled_outer"].sets
        claims += [
            inclusion_claim(
                "backup_inside_controllable",
                f"R_k^backup(T) ⊆ R_k^controllable(T) for k = 0…{N} and T ∈ {{T_in, T_out}}",
                [(f"inner k={k}", bi[k], ci[k]) for k in all_k] + [(f"outer k={k}", bo[k], co[k]) for k in all_k],
                tol,
            ),
            inclusion_claim(
                "controllable_sets_nested",
                f"R_{{k−1}} ⊆ R_k for k = 1…{N}: the controllable sets of T_in are nested",
                [(f"k={k}", ci[k - 1], ci[k]) for k in ks],
                tol,
            ),
        ]
    claims.append(
        Claim(
            "mpi_converged",
            "the Gilbert–Tan iteration for the backup's maximal positively invariant set O_∞ in X_cl terminated",
            Level.EXACT,
            mpi.converged,
            {"steps": mpi.steps, "max_steps": mpi.max_steps, "message": mpi.message, "facets": O.n_rows},
        )
    )
    ok_m, w_m = ellipsoid_in_polytope(P, gamma, O)
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
        inclusion_claim(
            "backup_sets_inside_mpi",
            f"R_k(T_in) ⊆ O_∞ for k = 0…{N} (states that reach the invariant T_in ⊆ X_cl stay admissible forever)",
            [(f"k={k}", bi[k], O) for k in all_k],
            tol,
        )
    )
    if controlled and control_invariant is not None and control_invariant.converged:
        C = control_invariant.polytope
        claims.append(
            inclusion_claim(
                "inside_control_invariant",
                f"O_∞ ⊆ C_∞ and R_k^controllable(T_in) ⊆ C_∞ for k = 0…{N}",
                [("O_inf", O, C)] + [(f"k={k}", ci[k], C) for k in all_k],
                tol,
            )
        )
    return claims


def independent_check_claims(
    problem: ClosedLoopProblem,
    families: Mapping[str, ReachableSets],
    targets: Mapping[str, TerminalTarget],
    horizon: int,
    *,
    samples: int = 100,
    seed: int = 0,
) -> list[Claim]:
    """``evaluated`` membership checks of the sets ``R_k``, ``k ∈ {max(1, ⌊N/3⌋), N}``, of every family.

    For a family that reached its fixed point at step ``f`` (``R_f = R_{f−1}``, so that every
    later set is ``R_f``), ``k`` is replaced by ``min(k, f)``: checking ``R_f`` against ``f``-step
    trajectories tests the fixed point itself, and costs ``f`` steps instead of ``N``.

    The backup's sets are checked against forward simulation of ``u = Kx``, the controllable
    sets against the steering LP (:func:`~scpo.reachability.checks.membership_agreement`, seed
    ``seed + k``).

    Parameters
    ----------
    problem : ClosedLoopProblem
        Provides the system and ``K``.
    families : mapping of name -> ReachableSets
        The :data:`FAMILY_NAMES` computed; each is checked.
    targets : mapping of {"inner", "outer"} -> TerminalTarget
        The targets of the families.
    horizon : int
        ``N``.
    samples : int
        Random states per check.
    seed : int
        Base seed of the random states.

    Returns
    -------
    list of Claim
        One ``independent_check_{family}_k{k}`` claim per family and ``k``.
    """
    check_ks = sorted({max(1, horizon // 3), horizon})
    claims = []
    for fam in (f for f in FAMILY_NAMES if f in families):
        target = targets[fam.split("_")[1]].polytope
        K = problem.K if fam.startswith("backup") else None
        fp = families[fam].fixed_point
        # past a fixed point f (R_f = R_{f−1}, hence R_k = R_f for every k ≥ f) the set R_f is checked
        # against the f-step LP or simulation: that tests the numerical fixed point itself
        for k in sorted({k if fp is None else min(k, fp) for k in check_ks}):
            claims.append(
                membership_agreement(
                    families[fam].sets[k], problem.system, target, k, K=K, samples=samples, seed=seed + k,
                    name=f"independent_check_{fam}_k{k}",
                )
            )
    return claims
