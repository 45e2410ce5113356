"""Estimated lower bounds on the curvature of constraint rows (DESIGN §6, level ``estimated``).

:func:`smoothness_lower_bounds`: the largest of (i) ``|vᵀ∇²g(θ')v|`` for unit ``v`` found by power
iteration with Hessian-vector products and ``θ'`` moved by projected gradient ascent on that
Rayleigh quotient inside the region, and (ii) second differences ``|g(θ+δ)+g(θ−δ)−2g(θ)|/‖δ‖²``
(each is a weighted average of ``δᵀ∇²g δ/‖δ‖²`` along the segment, so it never exceeds
``L_i(Θ)``) along random directions and along the top eigenvector, less their rounding error.
Plain random second differences underestimate badly in high dimension (a random direction sees
the average curvature, not the top eigenvalue).

The rows are those of :func:`scpo.systems.constraint_rows` of the one rollout
(:func:`scpo.systems.rollout`), evaluated for one ``θ`` and one initial state at a time so that
``torch.func`` can differentiate and ``vmap`` them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..._validate import as_array, check_in, check_int, check_positive
from ...errors import InvalidInputError, ShapeError, UnsupportedError
from ...numerics import UNIT_ROUNDOFF as _U
from ...policies import MLPStructure
from ...systems import ROW_AGGREGATIONS, ClosedLoopProblem, constraint_rows, rollout
from ..bounds.network import feedback_policy
from ._batch import DT
from .types import LowerBounds, Region

__all__ = ["row_function", "curvature_search", "exact_curvature_search", "smoothness_lower_bounds", "static_row_outputs",
           "second_difference_lower_bounds"]


def point_rows(problem: ClosedLoopProblem, structure: MLPStructure, theta: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Every row of the rollout of one ``θ`` (d,) from one ``x0`` (n,): shape (R,) (``torch.func``-friendly)."""
    K = problem.tensors(theta.device, theta.dtype)["K"]
    ro = rollout(problem, feedback_policy(structure, theta, K), x0.reshape(1, 1, -1), problem.horizon)
    return constraint_rows(problem, ro)[0, 0]


def static_row_outputs(problem: ClosedLoopProblem) -> tuple[np.ndarray, np.ndarray]:
    """For a static problem: the output each input row constrains and its coefficient.

    Row ``j`` of a static problem is ``Hu[j]·(K x + φ_θ(x)) − hu[j]``; its dependence on ``θ`` is
    ``Hu[j, o] φ_θ(x)_o`` when ``Hu[j]`` has a single non-zero entry ``o``.

    Parameters
    ----------
    problem : ClosedLoopProblem
        A static problem (``problem.is_static``).

    Returns
    -------
    outputs : ndarray of int, shape (q,)
    coefficients : ndarray, shape (q,)

    Raises
    ------
    UnsupportedError
        A row of ``Hu`` that combines several outputs.
    """
    Hu = np.asarray(problem.Hu)
    nz = np.count_nonzero(Hu, axis=1)
    if np.any(nz != 1):
        j = int(np.flatnonzero(nz != 1)[0])
        raise UnsupportedError(f"problem.Hu[{j}]: the MLP-output bounds need input rows on one output each (±s·e_o), got {Hu[j].tolist()}")
    outputs = np.abs(Hu).argmax(axis=1)
    return outputs, Hu[np.arange(Hu.shape[0]), outputs]


def row_function(problem: ClosedLoopProblem, structure: MLPStructure, aggregation: str = "per-row",
                 temperature: float = 0.02) -> tuple[Callable[..., torch.Tensor], str]:
    """A ``torch.func``-friendly function of one constraint row and its context.

    Parameters
    ----------
    problem : ClosedLoopProblem
    structure : MLPStructure
        The residual.
    aggregation : {"per-row", "max", "lse"}
        How the rows of one initial state enter ``g``.
    temperature : float
        ``τ`` of the log-sum-exp.

    Returns
    -------
    fn : callable
        Static problems, per-row: ``fn(θ (d,), x (n,), a (m,), h ()) = a·(K x + φ_θ(x)) − h``.
        Otherwise ``fn(θ, x0 (n,), onehot (R,))`` = the selected row of the rollout, or for ``lse``
        ``fn(θ, x0) = τ log Σ exp(r/τ)``.
    kind : str
        ``"static"``, ``"rollout"`` or ``"rollout-lse"``.
    """
    check_in("aggregation", aggregation, ROW_AGGREGATIONS)
    if problem.is_static and aggregation == "per-row":
        K = problem.tensors(None, DT)["K"]

        def fn(theta, x, a, h):
            return feedback_policy(structure, theta, K)(x.reshape(1, 1, -1))[0, 0] @ a - h

        return fn, "static"
    if aggregation == "lse":
        tau = check_positive("temperature", temperature)

        def fn_lse(theta, x0):
            return tau * torch.logsumexp(point_rows(problem, structure, theta, x0) / tau, dim=0)

        return fn_lse, "rollout-lse"

    def fn_row(theta, x0, onehot):
        return point_rows(problem, structure, theta, x0) @ onehot

    return fn_row, "rollout"


def curvature_search(
    fn: Callable[..., torch.Tensor],
    theta: np.ndarray,
    contexts: Sequence[torch.Tensor],
    region: Region,
    *,
    power_iters: int = 20,
    ascent_steps: int = 8,
    n_random: int = 8,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Largest observed curvature of rows ``fn(θ', *ctx)`` over ``θ'`` in the region (``estimated``).

    For each context: power iteration with Hessian-vector products at the centre (``‖∇²fn(θ)v‖``
    for the unit iterate ``v``), projected gradient ascent of ``‖∇²fn(θ')v‖²`` over ``θ'`` in the
    region (a few power steps after each move), second differences along the top eigenvector
    candidate and along random directions (less ``8u`` times the magnitudes, their rounding
    error). Every figure is a valid lower bound of ``sup_{θ'} ‖∇²fn(θ')‖₂`` in exact arithmetic.

    Parameters
    ----------
    fn : callable
        ``fn(θ (d,), *ctx) -> scalar tensor``.
    theta : ndarray, shape (d,)
    contexts : sequence of Tensor
        Each with leading dimension ``n`` (one entry per row examined).
    region : Region
    power_iters : int
        Power iterations at the centre.
    ascent_steps : int
        Projected ascent steps over the region.
    n_random : int
        Random directions for second differences.
    seed : int

    Returns
    -------
    dict of ndarray (n,)
        ``lower`` (the largest of the others), ``power_centre`` (``‖∇²fn(θ)v‖`` after power
        iteration), ``second_diff_eig``, ``second_diff_random``, ``ascent`` (best ``‖∇²fn(θ')v‖``).
    """
    from torch.func import grad, jvp, vmap

    check_int("power_iters", power_iters, minimum=1)
    check_int("ascent_steps", ascent_steps, minimum=0)
    check_int("n_random", n_random, minimum=0)
    th0 = torch.as_tensor(as_array("theta", theta, ndim=1), dtype=DT)
    d = th0.shape[0]
    ctx = [torch.as_tensor(c) for c in contexts]
    n = ctx[0].shape[0]
    gen = torch.Generator().manual_seed(int(seed))

    def hvp(th, v, *c):
        return jvp(lambda t: grad(fn)(t, *c), (th,), (v,))[1]

    vhvp = vmap(hvp)
    vfn = vmap(fn)

    def normalise(w):
        nw = torch.linalg.vector_norm(w, dim=-1, keepdim=True)
        return torch.where(nw > 0, w / torch.clamp(nw, min=1e-300), torch.ones_like(w) / math.sqrt(d))

    def power(ths, v, k):
        """k power steps; then ‖Hv‖ (a lower bound of ‖H‖) and the better of the two eigenvector
        candidates v ± Hv/‖Hv‖ (they separate a ±λ pair, where the Rayleigh quotient of v itself can vanish)."""
        for _ in range(k):
            v = normalise(vhvp(ths, v, *ctx))
        w = vhvp(ths, v, *ctx)
        nrm = torch.linalg.vector_norm(w, dim=-1)
        w1 = normalise(w)
        cands = [normalise(v + w1), normalise(v - w1)]
        qs = [(c * vhvp(ths, c, *ctx)).sum(-1) for c in cands]
        pick = qs[0].abs() >= qs[1].abs()
        u = torch.where(pick.unsqueeze(-1), cands[0], cands[1])
        q = torch.where(pick, qs[0], qs[1])
        return v, u, torch.maximum(nrm, q.abs())

    ths = th0.expand(n, d).contiguous()
    v = normalise(torch.randn(n, d, dtype=DT, generator=gen))
    v, u, lam = power(ths, v, power_iters)
    out = {"power_centre": lam}
    zeros = torch.zeros(n, dtype=DT)
    sd_eig, sd_rand, best = zeros.clone(), zeros.clone(), lam.clone()
    rad = region.radius
    if rad > 0:
        with torch.no_grad():
            f0 = vfn(ths, *ctx)

            def second_diff(delta):
                fp, fm = vfn(ths + delta, *ctx), vfn(ths - delta, *ctx)
                num = (fp + fm - 2 * f0).abs() - 8 * _U * (fp.abs() + fm.abs() + 2 * f0.abs())
                return (num / (delta * delta).sum(-1)).clamp(min=0.0)

            h = rad if region.kind == "ball" else rad / u.abs().amax(-1, keepdim=True)
            sd_eig = second_diff(h * u)
            for _ in range(n_random):
                g = torch.randn(d, dtype=DT, generator=gen)
                delta = (rad * g / torch.linalg.vector_norm(g)) if region.kind == "ball" else rad * torch.sign(g)
                sd_rand = torch.maximum(sd_rand, second_diff(delta.expand(n, d)))

        def sq(th, v, *c):  # ‖H(θ')v‖², maximised over θ' in the region
            w = hvp(th, v, *c)
            return (w * w).sum()

        vgrad = vmap(grad(sq))
        cur = ths.clone()
        for k in range(ascent_steps):
            gr = vgrad(cur, v, *ctx)
            if region.kind == "ball":
                step = normalise(gr) * (rad / (k + 1))
            else:
                step = torch.sign(gr) * (rad / (k + 1))
            cur = region.project(cur + step, th0)
            v, _, lk = power(cur, v, 3)
            best = torch.maximum(best, lk)
    out.update(second_diff_eig=sd_eig, second_diff_random=sd_rand, ascent=best)
    lower = torch.stack([out["power_centre"], sd_eig, sd_rand, best]).amax(0)
    out["lower"] = lower
    return {k: v_.detach().numpy().copy() for k, v_ in out.items()}


_EXACT_DIM = 64  # subspaces up to this dimension get the exact-Hessian search


def _restricted(fn: Callable[..., torch.Tensor], theta: torch.Tensor, Q: torch.Tensor) -> Callable[..., torch.Tensor]:
    """``a ↦ fn(θ + Qa, …)``: a row restricted to the affine subspace ``θ + span(Q)``."""

    def psi(a, *ctx):
        return fn(theta + Q @ a, *ctx)

    return psi


def exact_curvature_search(
    fn: Callable[..., torch.Tensor],
    dim: int,
    contexts: Sequence[torch.Tensor],
    radius: float,
    *,
    ascent_steps: int = 4,
    centre_hessians: torch.Tensor | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Largest observed ``‖∇²fn(a)‖₂`` over the ball ``‖a‖ ≤ radius`` of a low-dimensional ``a`` (``estimated``).

    For a function of few variables (a row restricted to the bank's subspace, ``dim ≤ 64``) the
    Hessian at the centre is computed whole (or given), so its top eigenpair ``(λ, v)`` is exact
    (what power iteration approximates). Then: the second difference along ``±radius·v``; projected
    ascent of ``s·vᵀ∇²fn(a)v`` over the ball (``s = sign λ``; gradients of the second directional
    derivative, forward-over-forward inside reverse mode); at the end ``‖∇²fn(a)v‖`` at the best
    point. Every figure is a valid lower bound of ``sup_{‖a‖≤radius} ‖∇²fn(a)‖₂`` in exact
    arithmetic (second differences less ``8u`` times the magnitudes).

    Parameters
    ----------
    fn : callable
        ``fn(a (dim,), *ctx) -> scalar tensor``.
    dim : int
        Number of variables.
    contexts : sequence of Tensor
        Each with leading dimension ``n`` (one entry per row examined).
    radius : float
        ``≥ 0``.
    ascent_steps : int
        Moves of the projected ascent.
    centre_hessians : Tensor or ndarray, shape (n, dim, dim), optional
        ``∇²fn(0)`` per context, if already known (e.g. :func:`~scpo.certify.smoothness.subspace_row_hessians`).

    Returns
    -------
    dict of ndarray (n,)
        ``lower``, ``power_centre`` (the top ``|eig|`` at the centre), ``second_diff_eig``,
        ``second_diff_random`` (zeros: no random directions here), ``ascent``.
    """
    from torch.func import grad, jvp, vmap

    check_int("dim", dim, minimum=1)
    check_int("ascent_steps", ascent_steps, minimum=0)
    ctx = [torch.as_tensor(c) for c in contexts]
    n = ctx[0].shape[0]

    def hvp(a, v, *c):
        return jvp(lambda t: grad(fn)(t, *c), (a,), (v,))[1]

    def curv(a, v, *c):  # vᵀ∇²fn(a)v, the second directional derivative
        return jvp(lambda t: jvp(lambda s_: fn(s_, *c), (t,), (v,))[1], (a,), (v,))[1]

    vfn, vhvp, vcurv, vgrad = vmap(fn), vmap(hvp), vmap(curv), vmap(grad(curv))
    a = torch.zeros(n, dim, dtype=DT)
    if centre_hessians is None:
        eye = torch.eye(dim, dtype=DT)
        H = vmap(lambda a1, *c: vmap(lambda v: hvp(a1, v, *c))(eye))(a, *ctx)
    else:
        H = torch.as_tensor(centre_hessians, dtype=DT)
        if tuple(H.shape) != (n, dim, dim):
            raise ShapeError(f"centre_hessians: expected shape ({n}, {dim}, {dim}), got {tuple(H.shape)}")
    e, V = torch.linalg.eigh((H + H.transpose(-1, -2)) / 2)
    i = e.abs().argmax(-1)
    idx = torch.arange(n)
    lam, v = e[idx, i], V[idx, :, i]
    centre = lam.abs()
    best = centre.clone()
    sd = torch.zeros(n, dtype=DT)
    if radius > 0:
        with torch.no_grad():
            f0, fp, fm = vfn(a, *ctx), vfn(a + radius * v, *ctx), vfn(a - radius * v, *ctx)
            num = (fp + fm - 2 * f0).abs() - 8 * _U * (fp.abs() + fm.abs() + 2 * f0.abs())
            sd = (num / radius**2).clamp(min=0.0)
        sgn = torch.where(lam >= 0, 1.0, -1.0).to(DT)[:, None]
        best_a = a.clone()
        for k in range(ascent_steps):
            g = vgrad(a, v, *ctx) * sgn
            gn = torch.linalg.vector_norm(g, dim=-1, keepdim=True)
            a = a + torch.where(gn > 0, g / torch.clamp(gn, min=1e-300), torch.zeros_like(g)) * (radius / (k + 1))
            na = torch.linalg.vector_norm(a, dim=-1, keepdim=True)
            a = torch.where(na > radius, a * (radius / torch.clamp(na, min=1e-300)), a)
            with torch.no_grad():
                val = vcurv(a, v, *ctx).abs()
            better = val > best
            best = torch.where(better, val, best)
            best_a = torch.where(better[:, None], a, best_a)
        if ascent_steps:
            with torch.no_grad():
                best = torch.maximum(best, torch.linalg.vector_norm(vhvp(best_a, v, *ctx), dim=-1))  # ‖H(a)v‖ ≤ ‖H(a)‖
    out = {"power_centre": centre, "second_diff_eig": sd, "second_diff_random": torch.zeros(n, dtype=DT), "ascent": best}
    out["lower"] = torch.stack([centre, sd, best]).amax(0)
    return {k: v_.detach().numpy().copy() for k, v_ in out.items()}


def _chunked_search(fn, theta, ctx, region, chunk, kw, exact: bool = False, centre=None) -> dict[str, np.ndarray]:
    """The search over batches of ``chunk`` rows; ``exact``: whole Hessians (low-dimensional ``θ``), ``centre`` if known."""
    n = ctx[0].shape[0]
    parts: list[dict[str, np.ndarray]] = []
    for i in range(0, n, chunk):
        part = [c[i : i + chunk] for c in ctx]
        if exact:
            parts.append(exact_curvature_search(fn, int(theta.shape[0]), part, region.radius, ascent_steps=min(kw["ascent_steps"], 4),
                                                centre_hessians=None if centre is None else centre[i : i + chunk]))
        else:
            parts.append(curvature_search(fn, theta, part, region, **kw))
    if not parts:
        return {k: np.zeros(0) for k in ("lower", "power_centre", "second_diff_eig", "second_diff_random", "ascent")}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _static_lower(problem, structure, fn, theta, states, rows, region, chunk, kw, exact) -> LowerBounds:
    """Per-row rows of a static problem: one search per (state, output); rows on one output share it."""
    q = problem.layout.n_rows
    outputs, coef = static_row_outputs(problem)
    rep_of_output = {int(o): int(np.flatnonzero(outputs == o)[0]) for o in np.unique(outputs)}
    s_idx, j_idx = rows // q, rows % q
    key = s_idx * structure.out_dim + outputs[j_idx]
    uniq, inv = np.unique(key, return_inverse=True)
    rep = np.array([rep_of_output[int(k % structure.out_dim)] for k in uniq], dtype=int)
    ctx = [torch.as_tensor(states[uniq // structure.out_dim]), torch.as_tensor(np.asarray(problem.Hu)[rep]),
           torch.as_tensor(np.asarray(problem.hu)[rep])]
    res = _chunked_search(fn, theta, ctx, region, chunk, kw, exact)
    scale = np.abs(coef[j_idx]) / np.abs(coef[rep][inv])
    details = {k: (v[inv] if np.all(scale == 1.0) else v[inv] * scale) for k, v in res.items()}
    return LowerBounds(rows=rows, values=details["lower"], details=details, region=region)


def _active_rows(problem, structure, theta, x0) -> np.ndarray:
    """Index of the largest row of each rollout at ``θ``."""
    th = torch.as_tensor(theta, dtype=DT)
    K = problem.tensors(None, DT)["K"]
    with torch.no_grad():
        ro = rollout(problem, feedback_policy(structure, th, K), torch.as_tensor(x0, dtype=DT), problem.horizon)
        return constraint_rows(problem, ro)[0].numpy().argmax(axis=1)


def smoothness_lower_bounds(
    problem: ClosedLoopProblem,
    structure: MLPStructure,
    theta: np.ndarray,
    states: np.ndarray,
    region: Region,
    rows: Sequence[int] | np.ndarray | None = None,
    *,
    aggregation: str = "per-row",
    temperature: float = 0.02,
    underlying_argmax: np.ndarray | None = None,
    power_iters: int = 20,
    ascent_steps: int = 8,
    n_random: int = 8,
    seed: int = 0,
    chunk: int = 128,
    basis: np.ndarray | None = None,
) -> LowerBounds:
    """``estimated`` lower bounds on the curvature of rows of ``g`` over the region.

    ``g`` is ``aggregate_rows(constraint_rows(rollout(problem, π_θ, states)), aggregation)``:
    ``S·R`` rows (state-major) for ``per-row``, ``S`` otherwise. With a ``basis`` ``Q`` (d, m) the
    search runs on ``ψ_i(a) = g_i(θ + Qa)`` over ``‖a‖ ≤ radius`` (the region must then be a
    ball): lower bounds of ``sup ‖Qᵀ∇²g_i(θ+Qa)Q‖₂``, the subspace curvature that (★) needs.

    Parameters
    ----------
    problem : ClosedLoopProblem
    structure : MLPStructure
        The residual ``φ`` (smooth activation).
    theta : ndarray, shape (d,)
        Centre of the region.
    states : ndarray, shape (S, n)
        Initial states of the rows of ``g``.
    region : Region
    rows : sequence of int, optional
        Row indices of ``g`` (default: all rows).
    aggregation : {"per-row", "max", "lse"}
    temperature : float
        ``τ`` of the log-sum-exp rows.
    underlying_argmax : ndarray, optional
        For ``max`` rows: the underlying row per state with the largest sound bound
        (:attr:`SmoothnessCertificate.underlying_argmax`); examined together with the row that
        attains the max at ``θ``.
    power_iters : int
        Power iterations at the centre (:func:`curvature_search`).
    ascent_steps : int
        Projected ascent steps.
    n_random : int
        Random directions for second differences.
    seed : int
    chunk : int
        Rows per vectorised batch.
    basis : ndarray, shape (d, m), optional
        Orthonormal basis of a subspace (:func:`~scpo.certify.smoothness.subspace_basis`).

    Returns
    -------
    LowerBounds
    """
    structure.require_smooth()
    theta = as_array("theta", theta, shape=(structure.dim,))
    states = as_array("states", states, shape=(None, problem.n))
    check_in("aggregation", aggregation, ROW_AGGREGATIONS)
    check_int("chunk", chunk, minimum=1)
    R = problem.layout.n_rows
    N = states.shape[0] * (R if aggregation == "per-row" else 1)
    rows = np.arange(N) if rows is None else np.asarray(rows, dtype=int).reshape(-1)
    if rows.size and (rows.min() < 0 or rows.max() >= N):
        raise InvalidInputError(f"rows: expected indices in [0, {N}), got range [{rows.min()}, {rows.max()}]")
    kw = dict(power_iters=power_iters, ascent_steps=ascent_steps, n_random=n_random, seed=seed)
    fn, kind = row_function(problem, structure, aggregation, temperature)
    search_at = theta
    if basis is not None:
        Q = as_array("basis", basis, ndim=2)
        if Q.shape[0] != structure.dim or Q.shape[1] < 1:
            raise InvalidInputError(f"basis: expected shape ({structure.dim}, m) with m ≥ 1, got {Q.shape}")
        if region.kind != "ball":
            raise InvalidInputError(f"region: a subspace search needs a ball, got {region.kind!r}")
        fn = _restricted(fn, torch.as_tensor(theta, dtype=DT), torch.as_tensor(Q, dtype=DT))
        search_at = np.zeros(Q.shape[1])
    exact = basis is not None and search_at.shape[0] <= _EXACT_DIM
    if kind == "static":
        return _static_lower(problem, structure, fn, search_at, states, rows, region, chunk, kw, exact)
    if kind == "rollout-lse":
        res = _chunked_search(fn, search_at, [torch.as_tensor(states[rows])], region, chunk, kw, exact)
        return LowerBounds(rows=rows, values=res["lower"], details=res, region=region)
    if aggregation == "per-row":
        s_idx, r_idx = rows // R, rows % R
        own = np.arange(rows.size)
    else:  # max: the active row at θ and the row with the largest sound bound
        cand = [_active_rows(problem, structure, theta, states[rows])]
        cand += [np.asarray(underlying_argmax)[rows]] if underlying_argmax is not None else []
        s_idx = np.concatenate([rows] * len(cand))
        r_idx = np.concatenate(cand)
        own = np.concatenate([np.arange(rows.size)] * len(cand))
    onehot = np.zeros((s_idx.size, R))
    onehot[np.arange(s_idx.size), r_idx] = 1.0
    centre = None
    if exact:  # the centre Hessians of every searched row from one forward propagation of their states
        from .subspace import subspace_row_hessians

        uniq, inv = np.unique(s_idx, return_inverse=True)
        centre = subspace_row_hessians(problem, structure, theta, states[uniq], basis)[inv, r_idx]
    res = _chunked_search(fn, search_at, [torch.as_tensor(states[s_idx]), torch.as_tensor(onehot)], region, chunk, kw, exact, centre)
    details = {}
    for k, v in res.items():
        agg = np.zeros(rows.size)
        np.maximum.at(agg, own, v)
        details[k] = agg
    details["underlying_row"] = r_idx[: rows.size].astype(float)
    return LowerBounds(rows=rows, values=details["lower"], details=details, region=region)


def _rows_at(problem: ClosedLoopProblem, structure: MLPStructure, thetas: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Every rollout row for a batch of parameter vectors: (P, d), (S, n) -> (P, S, R)."""
    K = problem.tensors(thetas.device, thetas.dtype)["K"]
    params = structure.unflatten(thetas)

    def policy(x):
        return x @ K.T + structure.forward_batched(params, x)

    return constraint_rows(problem, rollout(problem, policy, x0, problem.horizon))


def second_difference_lower_bounds(
    problem: ClosedLoopProblem,
    structure: MLPStructure,
    theta: np.ndarray,
    states: np.ndarray,
    directions: np.ndarray,
    step: float,
    *,
    aggregation: str = "per-row",
    temperature: float = 0.02,
    chunk: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """``estimated`` lower bounds of every row's curvature from second differences along given directions.

    For unit directions ``u_k`` and ``h = step``,
    ``|g(θ+hu) + g(θ−hu) − 2g(θ)| / h² = |uᵀ∇²g(ξ)u|`` for some ``ξ`` on the segment, so the largest
    quotient (less ``8u`` times the magnitudes over ``h²``, its rounding) is a lower bound of
    ``sup_{‖θ'−θ‖≤h, θ' ∈ θ+span(u)} ‖∇²g‖₂`` — and of the subspace curvature when the ``u_k`` lie in
    the subspace. Batched: ``2K + 1`` rollouts of every state, all rows at once. ``max`` rows use the
    underlying rows (the maximum itself has kinks whose second differences mean nothing) and give
    the largest underlying quotient; ``lse`` rows use the smooth log-sum-exp itself.

    Parameters
    ----------
    problem : ClosedLoopProblem
    structure : MLPStructure
        The residual.
    theta : ndarray, shape (d,)
    states : ndarray, shape (S, n)
    directions : ndarray, shape (K, d)
        Non-zero directions (normalised here), e.g. the bank offsets or the columns of its basis.
    step : float
        ``h > 0``.
    aggregation : {"per-row", "max", "lse"}
    temperature : float
        ``τ`` of the log-sum-exp rows.
    chunk : int
        States per batch.

    Returns
    -------
    lower : ndarray, shape (N,)
        The largest quotient per row of ``g`` (clamped at 0).
    best_direction : ndarray of int, shape (N,)
        Which direction gave it.
    """
    check_in("aggregation", aggregation, ROW_AGGREGATIONS)
    h = check_positive("step", step)
    theta = as_array("theta", theta, shape=(structure.dim,))
    states = as_array("states", states, shape=(None, problem.n))
    U = as_array("directions", directions, shape=(None, structure.dim))
    nrm = np.linalg.norm(U, axis=1)
    if U.shape[0] == 0 or np.any(nrm == 0):
        raise InvalidInputError(f"directions: expected at least one non-zero direction, got {U.shape[0]} ({int(np.sum(nrm == 0))} zero)")
    U = U / nrm[:, None]
    tau = check_positive("temperature", temperature) if aggregation == "lse" else None
    th = torch.as_tensor(theta, dtype=DT)
    Ut = torch.as_tensor(U, dtype=DT)
    thetas = torch.cat([th[None], th[None] + h * Ut, th[None] - h * Ut])
    k = U.shape[0]
    outs, args = [], []
    with torch.no_grad():
        for i in range(0, states.shape[0], chunk):
            rows = _rows_at(problem, structure, thetas, torch.as_tensor(states[i : i + chunk], dtype=DT))  # (2K+1, s, R)
            if aggregation == "lse":
                rows = tau * torch.logsumexp(rows / tau, dim=-1, keepdim=True)
            f0, fp, fm = rows[0], rows[1 : k + 1], rows[k + 1 :]
            num = (fp + fm - 2 * f0).abs() - 8 * _U * (fp.abs() + fm.abs() + 2 * f0.abs())
            q = (num / (h * h)).clamp(min=0.0)  # (K, s, R')
            best, arg = q.max(dim=0)
            if aggregation == "max":
                best, j = best.max(dim=-1, keepdim=True)
                arg = arg.gather(-1, j)
            outs.append(best.reshape(-1).numpy())
            args.append(arg.reshape(-1).numpy())
    if not outs:
        return np.zeros(0), np.zeros(0, dtype=int)
    return np.concatenate(outs), np.concatenate(args).astype(int)
