"""Independent checks of computed sets: steering LPs over input sequences and forward simulation.

Nothing here uses the set recursions of :mod:`scpo.reachability.sets`; the constraints along a
trajectory are written out directly, so agreement between the two is evidence that both are
right.

* :func:`steering_margin` — for a state ``x₀``, the largest ``s`` such that some inputs
  ``u_0 … u_{N−1}`` satisfy every constraint row with slack ``s``:
  ``Hx x_t ≤ hx − s`` (``t = 0 … N−1``), ``Hu u_t ≤ hu − s`` (``t = 0 … N−1``) and
  ``H_T x_N ≤ h_T − s`` with ``x_t = Aᵗx₀ + Σ_{j<t} A^{t−1−j} B u_j`` (rows scaled to unit
  norm). ``s ≥ 0`` iff ``x₀`` can be steered into ``T`` in ``N`` steps inside the constraints.
* :func:`simulation_margins` — the same slack along the backup's own trajectory ``x_{t+1} =
  (A + BK) x_t`` (no decision variables: a forward simulation by :func:`scpo.systems.rollout`,
  batched over the states).
* :func:`membership_agreement` — sample points, classify them by a computed set (leaving out a
  thin band around its boundary where the float sets cannot decide) and by the margins above,
  and count disagreements. The result is an ``evaluated`` :class:`~scpo.evidence.Claim`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.optimize
import scipy.sparse
import torch

from .._validate import as_array, check_int, check_nonnegative
from ..errors import InvalidInputError, ShapeError
from ..evidence import Claim, Level
from ..systems import LinearSystem, linear_policy, rollout
from .polytope import Polytope, bounding_box, normalize

__all__ = ["steering_margin", "simulation_margin", "simulation_margins", "membership_agreement"]


def _unit(H: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.linalg.norm(H, axis=1)
    n = np.where(n > 0, n, 1.0)
    return H / n[:, None], h / n


def steering_margin(x0: np.ndarray, system: LinearSystem, target: Polytope, steps: int) -> float:
    """Largest uniform slack of an input sequence steering ``x0`` into ``target`` in ``steps`` steps.

    Solves the LP ``max s  s.t.  s ≤ 1`` and every constraint row (see the module docstring)
    holds with slack ``s``, over ``u_0 … u_{N−1}`` and ``s`` (HiGHS). The LP is always feasible
    (``s`` may be as negative as needed), so a non-optimal status is a solver failure.

    Parameters
    ----------
    x0 : array_like, shape (n,)
    system : LinearSystem
    target : Polytope
    steps : int
        ``N ≥ 0``; with ``N = 0`` the margin is that of ``x0 ∈ target``.

    Returns
    -------
    float
        ``s*`` (``≥ 0``: steerable); ``nan`` if the LP failed (never counted as agreement).
    """
    x0 = as_array("x0", x0, shape=(system.n,))
    steps = check_int("steps", steps, minimum=0)
    if target.dim != system.n:
        raise ShapeError(f"target: expected dimension {system.n}, got {target.dim}")
    n, m, N = system.n, system.m, steps
    A, B = system.A, system.B
    Hx, hx = _unit(system.Hx, system.hx)
    Hu, hu = _unit(system.Hu, system.hu)
    T = normalize(target)
    HT, hT = T.H, T.h
    if N == 0:
        return float(min(1.0, np.min(hT - HT @ x0))) if T.n_rows else 1.0
    # sparse form: variables z = (x_1 … x_N, u_0 … u_{N−1}, s) with the dynamics as equalities
    # x_{t+1} = A x_t + B u_t (x_0 given); the same LP as eliminating the states, far sparser
    nx, nu = N * n, N * m
    eye_N = scipy.sparse.eye(N, format="csr")
    sub = scipy.sparse.eye(N, k=-1, format="csr")
    Aeq = scipy.sparse.hstack([
        scipy.sparse.kron(eye_N, scipy.sparse.eye(n)) - scipy.sparse.kron(sub, scipy.sparse.csr_matrix(A)),
        -scipy.sparse.kron(eye_N, scipy.sparse.csr_matrix(B)),
        scipy.sparse.csr_matrix((nx, 1)),
    ], format="csr")
    beq = np.zeros(nx)
    beq[:n] = A @ x0
    blocks, rhs = [], []
    # state rows at t = 1 … N−1 (t = 0 is a constant row on s)
    if N > 1:
        sel = scipy.sparse.eye(N - 1, N, format="csr")
        blocks.append(scipy.sparse.hstack([scipy.sparse.kron(sel, scipy.sparse.csr_matrix(Hx)), scipy.sparse.csr_matrix(((N - 1) * Hx.shape[0], nu)),
                                           np.ones(((N - 1) * Hx.shape[0], 1))]))
        rhs.append(np.tile(hx, N - 1))
    blocks.append(scipy.sparse.hstack([scipy.sparse.csr_matrix((N * Hu.shape[0], nx)), scipy.sparse.kron(eye_N, scipy.sparse.csr_matrix(Hu)),
                                       np.ones((N * Hu.shape[0], 1))]))
    rhs.append(np.tile(hu, N))
    if T.n_rows:
        last = scipy.sparse.csr_matrix(([1.0], ([0], [N - 1])), shape=(1, N))
        blocks.append(scipy.sparse.hstack([scipy.sparse.kron(last, scipy.sparse.csr_matrix(HT)), scipy.sparse.csr_matrix((HT.shape[0], nu)),
                                           np.ones((HT.shape[0], 1))]))
        rhs.append(hT)
    Aub = scipy.sparse.vstack(blocks, format="csr")
    bub = np.concatenate(rhs)
    s0 = float(np.min(hx - Hx @ x0)) if Hx.shape[0] else 1.0  # the t = 0 state rows: s ≤ min(hx − Hx x0)
    c = np.zeros(nx + nu + 1)
    c[-1] = -1.0
    bounds = [(None, None)] * (nx + nu) + [(None, min(1.0, s0))]  # s ≤ 1 keeps the LP bounded; it is always feasible
    res = scipy.optimize.linprog(c, A_ub=Aub, b_ub=bub, A_eq=Aeq, b_eq=beq, bounds=bounds, method="highs")
    if res.status != 0:
        return math.nan
    return float(res.x[-1])


def simulation_margins(points: np.ndarray, system: LinearSystem, K: np.ndarray, target: Polytope, steps: int) -> np.ndarray:
    """Smallest slack of the backup's trajectory from each of ``points``.

    For ``x_{t+1} = (A + BK) x_t`` simulated by :func:`scpo.systems.rollout` (policy
    :func:`scpo.systems.linear_policy`), the margin of ``x_0`` is

        min( min_{t < N} min(hx − Hx x_t),  min_{t < N} min(hu − Hu K x_t),  min(h_T − H_T x_N) )

    over unit-norm rows, capped at 1 like :func:`steering_margin`. It is ``≥ 0`` iff the backup
    steers ``x_0`` into ``target`` at step ``N`` inside the constraints (these are the rows of the
    backward reachable set, ``t = 0 … N−1`` for ``X`` and ``U``, not the rows of ``g``).

    Parameters
    ----------
    points : array_like, shape (S, n)
        Initial states ``x_0``.
    system : LinearSystem
    K : array_like, shape (m, n)
        The backup gain.
    target : Polytope
        ``T``, dimension ``n``.
    steps : int
        ``N ≥ 0``.

    Returns
    -------
    ndarray, shape (S,)
        The margins; ``nan`` where the trajectory is not finite (never counted as agreement).
    """
    X0 = as_array("points", points, shape=(None, system.n))
    K = as_array("K", K, shape=(system.m, system.n))
    steps = check_int("steps", steps, minimum=0)
    Hx, hx = _unit(system.Hx, system.hx)
    Hu, hu = _unit(system.Hu, system.hu)
    T = normalize(target)
    with torch.no_grad():
        ro = rollout(system, linear_policy(K), torch.as_tensor(X0, dtype=torch.float64)[None], steps)
    states, inputs = ro.states[0].numpy(), ro.inputs[0].numpy()
    worst = np.full(X0.shape[0], np.inf)
    if steps:
        worst = np.minimum(worst, np.min(hx - states[:, :steps] @ Hx.T, axis=(1, 2)))
        worst = np.minimum(worst, np.min(hu - inputs @ Hu.T, axis=(1, 2)))
    if T.n_rows:
        worst = np.minimum(worst, np.min(T.h - states[:, steps] @ T.H.T, axis=1))
    return np.where(np.isnan(worst), np.nan, np.minimum(worst, 1.0))


def simulation_margin(x0: np.ndarray, system: LinearSystem, K: np.ndarray, target: Polytope, steps: int) -> float:
    """Smallest slack of the backup's trajectory from one state (see :func:`simulation_margins`).

    Parameters
    ----------
    x0 : array_like, shape (n,)
    system : LinearSystem
    K : array_like, shape (m, n)
    target : Polytope
    steps : int
        ``N ≥ 0``.

    Returns
    -------
    float
        ``≥ 0`` iff the backup steers ``x0`` into ``target`` at step ``N`` inside the
        constraints; capped at 1; ``nan`` for a non-finite trajectory.
    """
    x0 = as_array("x0", x0, shape=(system.n,))
    return float(simulation_margins(x0[None], system, K, target, steps)[0])


def membership_agreement(
    computed: Polytope,
    system: LinearSystem,
    target: Polytope,
    steps: int,
    *,
    K: np.ndarray | None = None,
    samples: int = 200,
    band: float = 1e-6,
    region: Polytope | None = None,
    seed: int = 0,
    name: str = "membership_agreement",
) -> Claim:
    """Compare membership in ``computed`` with the steering LP (or the backup's simulation).

    Points are drawn uniformly in the bounding box of ``region`` (default: the state
    constraints). A point is *inside* if its unit-row residual in ``computed`` is ``≤ −band``,
    *outside* if ``≥ band``; points in the band are left out (and counted). An inside point must
    have margin ``≥ 0`` (it can be steered; with ``K``: the backup steers it), an outside point
    margin ``< 0``. Each verdict is computed once by LP/simulation, independently of the set
    recursion.

    Parameters
    ----------
    computed : Polytope
        The computed ``N``-step set to check.
    system : LinearSystem
    target : Polytope
        The target ``T`` of the set.
    steps : int
        ``N``.
    K : array_like, shape (m, n), optional
        The backup gain: check against its simulation (:func:`simulation_margins`); without it
        against the steering LP (:func:`steering_margin`, the controllable set).
    samples : int
        Number of random states.
    band : float
        Half-width of the band around the boundary of ``computed`` left out (a distance).
    region : Polytope, optional
        Where the states are drawn (its bounding box); default the state constraints ``X``.
    seed : int
        Seed of the random states.
    name : str
        Name of the claim.

    Returns
    -------
    Claim
        Level ``evaluated``; fails on any disagreement or any failed LP.
    """
    samples = check_int("samples", samples, minimum=1)
    band = check_nonnegative("band", band)
    region = region if region is not None else Polytope(H=system.Hx, h=system.hx)
    lo, hi = bounding_box(region)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise InvalidInputError("region: expected a bounded sampling region, got an unbounded one")
    rng = np.random.default_rng(seed)
    pts = rng.uniform(lo, hi, size=(samples, system.n))
    res = computed.residual(pts)
    inside, outside = res <= -band, res >= band
    margins = np.full(samples, np.nan)
    decided = np.flatnonzero(inside | outside)
    if K is not None and decided.size:
        margins[decided] = simulation_margins(pts[decided], system, K, target, steps)
    else:
        for j in decided:
            margins[j] = steering_margin(pts[j], system, target, steps)
    bad_in = inside & ~(margins >= 0)
    bad_out = outside & ~(margins < 0)
    failed_lp = (inside | outside) & np.isnan(margins)
    holds = not (bad_in.any() or bad_out.any() or failed_lp.any())
    how = "forward simulation of the backup" if K is not None else "an LP over the input sequence"
    details: dict[str, Any] = {
        "samples": samples,
        "inside": int(inside.sum()),
        "outside": int(outside.sum()),
        "left_out_in_boundary_band": int((~inside & ~outside).sum()),
        "band": band,
        "inside_not_steerable": int(bad_in.sum()),
        "outside_but_steerable": int(bad_out.sum()),
        "failed_lps": int(failed_lp.sum()),
        "steps": steps,
        "seed": seed,
    }
    if bad_in.any() or bad_out.any():
        details["disagreeing_points"] = pts[bad_in | bad_out][:10].tolist()
    return Claim(
        name,
        f"for {samples} uniform random states, membership in the computed {steps}-step set agrees with {how} "
        f"(points within {band:g} of the boundary left out)",
        Level.EVALUATED,
        bool(holds),
        details,
    )
