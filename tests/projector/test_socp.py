"""The projection SOCP against closed-form projections (half-space, ball) and its KKT conditions."""

import cvxpy as cp
import numpy as np
import pytest

from scpo.projector.bank import Bank
from scpo.projector.inner import inner_bound
from scpo.projector.socp import ProjectionSOCP, gram_factor


def _setup(gfun, theta, probes, raw):
    """Bank quantities for probes (rows) around θ for the vector function gfun."""
    g = gfun(theta)
    bank = Bank(len(probes), theta.size, g.size)
    for p in probes:
        bank.add(p, gfun(theta + p))
    norms, gram, q = bank.geometry(raw)
    H = bank.difference_quotients(g)
    return bank, g, norms, gram, q, H


def test_half_space_projection_matches_closed_form():
    # g(θ) = aᵀθ − b is linear; with tiny L the inner approximation is the half-space itself and,
    # with probes spanning R^d, the projection is Euclidean: Δ* = raw − max(0, aᵀ(θ+raw) − b) a/‖a‖².
    a, b = np.array([1.0, 2.0, -1.0]), 1.0
    gfun = lambda t: np.array([a @ t - b])  # noqa: E731
    theta = np.zeros(3)
    raw = np.array([1.0, 1.0, 0.5])
    probes = 1e-3 * np.eye(3)
    bank, g, norms, gram, q, H = _setup(gfun, theta, [*probes, raw], raw)
    res = ProjectionSOCP("clarabel").solve(gram, q, norms, g, H, np.array([1e-9]))
    step = bank.step(res.coef)
    expected = raw - max(0.0, a @ (theta + raw) - b) * a / (a @ a)
    assert res.status == "optimal"
    np.testing.assert_allclose(step, expected, atol=2e-6)


def test_ball_projection_matches_closed_form():
    # g(θ) = ‖θ‖² − r² has Hessian 2I, so L = 2 exactly. With orthonormal probes of length ε → 0,
    # (★) tends to the ball itself and Δ* → r(θ+raw)/‖θ+raw‖ − θ (radial projection).
    r = 1.0
    gfun = lambda t: np.array([t @ t - r * r])  # noqa: E731
    theta = np.array([0.3, -0.2, 0.1, 0.0])
    raw = np.array([1.0, 0.5, 0.0, 0.3])
    eps = 1e-7
    bank, g, norms, gram, q, H = _setup(gfun, theta, [*(eps * np.eye(4)), raw], raw)
    res = ProjectionSOCP("clarabel").solve(gram, q, norms, g, H, np.array([2.0]))
    step = bank.step(res.coef)
    target = theta + raw
    expected = r * target / np.linalg.norm(target) - theta
    np.testing.assert_allclose(step, expected, atol=1e-4)
    # feasible for (★) and, L being the true constant, truly inside the ball
    pred = inner_bound(g, H, np.array([2.0]), norms, res.coef, step @ step)
    assert pred[0] <= 0
    assert gfun(theta + step)[0] <= pred[0] + 1e-12


def test_raw_step_safely_inside_is_returned_unchanged():
    gfun = lambda t: np.array([t @ t - 4.0])  # noqa: E731
    theta = np.array([0.1, 0.2])
    raw = np.array([0.05, -0.03])
    bank, g, norms, gram, q, H = _setup(gfun, theta, [raw], raw)
    res = ProjectionSOCP("clarabel").solve(gram, q, norms, g, H, np.array([2.0]))
    assert res.status == "unconstrained_feasible" and res.solver == "none"
    np.testing.assert_allclose(bank.step(res.coef), raw, rtol=1e-12)


def test_active_constraint_and_outward_raw_step_gives_zero():
    # g(θ) = aᵀθ with g(θ) = 0 (active) and raw = t·a pointing straight out: the projection is 0.
    a = np.array([0.6, 0.8])
    gfun = lambda t: np.array([a @ t])  # noqa: E731
    theta = np.zeros(2)
    raw = 0.5 * a
    bank, g, norms, gram, q, H = _setup(gfun, theta, [raw, 1e-3 * np.array([0.8, -0.6])], raw)
    res = ProjectionSOCP("clarabel").solve(gram, q, norms, g, H, np.array([1.0]))
    assert np.linalg.norm(bank.step(res.coef)) <= 1e-7


def test_projected_step_is_feasible_for_the_inner_approximation(rng):
    d, m, N = 20, 8, 300
    W = rng.normal(size=(N, d))
    gfun = lambda t: np.sin(W @ t) - 0.9  # noqa: E731  (L_i = ‖w_i‖²)
    theta = 0.01 * rng.normal(size=d)
    raw = 0.5 * rng.normal(size=d)
    probes = [0.05 * rng.normal(size=d) for _ in range(m - 1)] + [raw]
    bank, g, norms, gram, q, H = _setup(gfun, theta, probes, raw)
    L = np.sum(W**2, axis=1)
    res = ProjectionSOCP("clarabel", working_set=32).solve(gram, q, norms, g, H, L)
    step = bank.step(res.coef)
    pred = inner_bound(g, H, L, norms, res.coef, step @ step)
    assert np.all(pred <= 0)
    assert np.all(gfun(theta + step) <= pred + 1e-12)  # L is the true constant
    assert res.rounds >= 1 and res.rows <= N


def test_working_set_gives_the_same_answer_as_all_rows(rng):
    d, m, N = 15, 6, 500
    W = rng.normal(size=(N, d))
    gfun = lambda t: np.sin(W @ t) - 0.5  # noqa: E731
    theta = np.zeros(d)
    raw = 0.3 * rng.normal(size=d)
    probes = [0.01 * rng.normal(size=d) for _ in range(m - 1)] + [raw]
    bank, g, norms, gram, q, H = _setup(gfun, theta, probes, raw)
    L = np.sum(W**2, axis=1)
    small = ProjectionSOCP("clarabel", working_set=8).solve(gram, q, norms, g, H, L)
    full = ProjectionSOCP("clarabel", working_set=N).solve(gram, q, norms, g, H, L)
    assert small.rows < N and full.rows == N
    # same optimal value ‖Δ* − raw‖² (interior-point accuracy), both feasible for every row
    obj_small = np.sum((bank.step(small.coef) - raw) ** 2)
    obj_full = np.sum((bank.step(full.coef) - raw) ** 2)
    assert obj_small == pytest.approx(obj_full, rel=1e-6)
    for res in (small, full):
        step = bank.step(res.coef)
        assert np.all(inner_bound(g, H, L, norms, res.coef, step @ step) <= 0)


def test_kkt_residuals_of_the_solved_socp_are_small(rng):
    d, m, N = 12, 6, 40
    W = rng.normal(size=(N, d))
    gfun = lambda t: np.sin(W @ t) - 0.3  # noqa: E731
    theta = np.zeros(d)
    raw = 0.4 * rng.normal(size=d)
    probes = [0.01 * rng.normal(size=d) for _ in range(m - 1)] + [raw]
    bank, g, norms, gram, q, H = _setup(gfun, theta, probes, raw)
    L = np.sum(W**2, axis=1)
    solver = ProjectionSOCP("clarabel", working_set=N)
    res = solver.solve(gram, q, norms, g, H, L)
    assert res.status == "optimal" and res.solver == "CLARABEL"
    (prob,) = solver._cache.values()
    c1, c2, c3, c4, c5 = prob.constraints
    variables = {v.name(): v.value for v in prob.problem.variables()}
    c, a_var, w = prob.c.value, variables["abs_c"], np.atleast_1d(variables["w"])
    R, b, n, A = prob.R.value, prob.b.value, prob.n.value, prob.A.value
    mu1, mu2, nu, kappa, pi = (np.atleast_1d(con.dual_value) for con in (c1, c2, c3, c4, c5))
    # Lagrangian of: min ‖Rc − b‖² s.t. c − a ≤ 0, −c − a ≤ 0, nᵀa + t − w ≤ 0, ‖Rc‖² − t ≤ 0, g + A[c; w] ≤ 0
    grad_c = 2 * R.T @ (R @ c - b) + (mu1 - mu2) + 2 * kappa[0] * R.T @ R @ c + A[:, :-1].T @ pi
    grad_a = -mu1 - mu2 + nu[0] * n
    grad_t = nu[0] - kappa[0]
    grad_w = -nu[0] + A[:, -1] @ pi
    stationarity = np.concatenate([grad_c, grad_a, [grad_t, grad_w]])
    # Clarabel stops at 1e-8 on its equilibrated residuals; unscaled, 1e-5 on O(1) data is "small".
    assert np.max(np.abs(stationarity)) < 1e-5
    assert min(mu1.min(), mu2.min(), nu.min(), kappa.min(), pi.min()) >= -1e-8  # dual feasibility
    row = prob.g.value + A @ np.concatenate([c, w])
    assert np.max(row) <= 1e-8  # primal feasibility
    assert np.max(np.abs(pi * row)) < 1e-6  # complementary slackness on the rows
    assert np.max(np.abs(mu1 * (c - a_var))) < 1e-6 and np.max(np.abs(mu2 * (-c - a_var))) < 1e-6


def test_gram_factor_reproduces_the_objective(rng):
    m = 5
    U = rng.normal(size=(m, 9))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    raw = rng.normal(size=9)
    gram, q = U @ U.T, U @ raw
    R, b, c_min = gram_factor(gram, q)
    c = rng.normal(size=m)
    lhs = np.sum((R @ c - b) ** 2)
    rhs = np.sum((U.T @ c - raw) ** 2) - (raw @ raw - b @ b)
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)
    # c_min solves the unconstrained problem: U.T c_min is the projection of raw onto span(U)
    P = U.T @ np.linalg.pinv(U.T)
    np.testing.assert_allclose(U.T @ c_min, P @ raw, atol=1e-10)


def test_rank_deficient_bank_is_solved(rng):
    # raw = sum of the other probes' directions: an exactly singular Gram matrix
    d = 6
    parts = [0.01 * rng.normal(size=d) for _ in range(3)]
    raw = sum(parts)
    W = rng.normal(size=(10, d))
    gfun = lambda t: np.tanh(W @ t) - 0.01  # noqa: E731
    bank, g, norms, gram, q, H = _setup(gfun, np.zeros(d), [*parts, raw * 30], raw * 30)
    res = ProjectionSOCP("clarabel").solve(gram, q, norms, g, H, np.sum(W**2, axis=1))
    step = bank.step(res.coef)
    pred = inner_bound(g, H, np.sum(W**2, axis=1), norms, res.coef, step @ step)
    assert res.status in ("optimal", "unconstrained_feasible") and np.all(pred <= 0)


def test_cvxpy_problem_is_reused_per_shape(rng):
    d, N = 5, 30
    W = rng.normal(size=(N, d))
    gfun = lambda t: np.sin(W @ t) - 0.2  # noqa: E731
    solver = ProjectionSOCP("clarabel", working_set=N)
    for _ in range(3):
        raw = rng.normal(size=d)
        bank, g, norms, gram, q, H = _setup(gfun, np.zeros(d), [0.01 * rng.normal(size=d), raw], raw)
        solver.solve(gram, q, norms, g, H, np.sum(W**2, axis=1))
    assert len(solver._cache) == 1
    assert isinstance(next(iter(solver._cache.values())).problem, cp.Problem)


def test_max_norm_keeps_the_step_in_the_ball_of_a_certified_L():
    # linear g far from active, probes spanning R^3: without a ball the projection is raw itself;
    # with ‖Δ‖ ≤ ρ it is the nearest point of the ball to raw, ρ raw/‖raw‖ (closed form)
    a = np.array([1.0, 2.0, -1.0])
    gfun = lambda t: np.array([a @ t - 100.0])  # noqa: E731
    theta, raw = np.zeros(3), np.array([1.0, 1.0, 0.5])
    bank, g, norms, gram, q, H = _setup(gfun, theta, [*(1e-3 * np.eye(3)), raw], raw)
    socp = ProjectionSOCP("clarabel")
    free = socp.solve(gram, q, norms, g, H, np.array([1e-9]))
    assert free.status == "unconstrained_feasible"
    np.testing.assert_allclose(bank.step(free.coef), raw, atol=1e-10)
    rho = 0.3
    res = socp.solve(gram, q, norms, g, H, np.array([1e-9]), max_norm=rho)
    step = bank.step(res.coef)
    assert res.status == "optimal" and np.linalg.norm(step) <= rho * (1 + 1e-6)
    np.testing.assert_allclose(step, rho * raw / np.linalg.norm(raw), atol=1e-4 * rho)  # interior-point accuracy
    # a ball larger than the unconstrained step changes nothing
    big = socp.solve(gram, q, norms, g, H, np.array([1e-9]), max_norm=10.0)
    np.testing.assert_array_equal(big.coef, free.coef)
