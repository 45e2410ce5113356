"""The subspace smoothness certificate: exact at radius 0 (torch.func.hessian restricted to the
subspace), sound against dense sampling plus ascent on small nets and double-integrator rows, the
constant (★) needs on a function with a known Hessian, aggregated and static rows, bad input."""

import numpy as np
import pytest
import torch
from torch.func import grad, jacfwd, jvp, vmap

from scpo.certify.smoothness import (
    Region,
    exact_curvature_search,
    second_difference_lower_bounds,
    smoothness_bounds,
    subspace_basis,
    subspace_certified_L,
    subspace_row_hessians,
    subspace_smoothness_bounds,
)
from scpo.certify.smoothness.lower import point_rows
from scpo.errors import InvalidInputError, NonFiniteError, ShapeError, UnsupportedError
from scpo.numerics import Margin
from scpo.projector.inner import inner_bound
from scpo.systems import ClosedLoopProblem, LinearSystem
from scpo.tasks import DoubleIntegratorConfig, DoubleIntegratorTask, RegressionConfig, RegressionTask

NO_MARGIN = Margin(rel=0.0, abs=0.0)


@pytest.fixture(scope="module")
def di():
    torch.set_num_threads(1)
    return DoubleIntegratorTask(DoubleIntegratorConfig(horizon=6, grid=6, hidden=(6, 5)))


def setup(task, seed, k=4, scale=0.4):
    """A trained-looking θ (non-zero final layer), a random bank of k offsets, its basis, and a few states."""
    rng = np.random.default_rng(seed)
    theta = task.theta0 + rng.normal(size=task.dim) * scale
    D = rng.normal(size=(k, task.dim))
    Q, _ = subspace_basis(D)
    states = task.constraint_states[rng.choice(task.constraint_states.shape[0], size=min(5, task.constraint_states.shape[0]), replace=False)]
    return theta, D, Q, states


def rows_fn(task, theta, Q):
    th, Qt = torch.as_tensor(theta), torch.as_tensor(Q)

    def f(a, x0):
        return point_rows(task.problem, task.structure, th + Qt @ a, x0)

    return f


def restricted_hessians(task, theta, Q, states, A):
    """Qᵀ∇²r(θ + Qa)Q of every rollout row (torch.func through the one rollout): (len(A), S, R, m, m)."""
    f = rows_fn(task, theta, Q)
    H = vmap(vmap(jacfwd(jacfwd(f)), in_dims=(None, 0)), in_dims=(0, None))
    return H(torch.as_tensor(A), torch.as_tensor(states))


def ball_points(rng, n, m, r):
    """Uniform in the ball, half of them on its sphere (where curvature peaks tend to lie)."""
    A = rng.normal(size=(n, m))
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    A[n // 2 :] *= rng.uniform(0, 1, size=(n - n // 2, 1)) ** (1 / m)
    return A * r


def ascent(task, theta, Q, states, pairs, a0, r, steps=25):
    """Projected ascent of |vᵀ∇²ψ(a)v| (v the current top eigenvector) for (state, row) pairs from a0: best |eig| seen."""
    f = rows_fn(task, theta, Q)
    best = np.zeros(len(pairs))
    for n, ((s, j), a) in enumerate(zip(pairs, a0)):
        x0 = torch.as_tensor(states[s])

        def row(a_):
            return f(a_, x0)[j]

        a = torch.as_tensor(a)
        for k in range(steps):
            H = jacfwd(jacfwd(row))(a)
            e, V = torch.linalg.eigh(H)
            i = int(e.abs().argmax())
            best[n] = max(best[n], float(e.abs().max()))
            v, sgn = V[:, i], float(torch.sign(e[i]))

            def curv(a_, v=v):
                return jvp(lambda t: jvp(row, (t,), (v,))[1], (a_,), (v,))[1]

            g = grad(curv)(a) * sgn
            a = a + g / g.norm().clamp(min=1e-300) * (r / (k + 2))
            a = a * min(1.0, r / float(a.norm()))
    return best


# --------------------------------------------------------------------------- radius 0 = torch.func.hessian
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_radius_zero_equals_the_restricted_torch_hessian(di, seed):
    theta, _, Q, states = setup(di, seed)
    H = restricted_hessians(di, theta, Q, states, np.zeros((1, Q.shape[1])))[0]
    ref = torch.linalg.eigvalsh(H).abs().amax(-1).numpy().reshape(-1)
    cert = subspace_smoothness_bounds(di.problem, di.structure, theta, states, Q, 0.0, margin=NO_MARGIN)
    assert cert.L.shape == ref.shape == (states.shape[0] * di.problem.layout.n_rows,)
    np.testing.assert_allclose(cert.L, ref, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(cert.centre, ref, rtol=1e-10, atol=1e-300)
    assert np.all(cert.radius_term <= 1e-11 * np.maximum(ref, 1e-3))
    # the row Hessians themselves, entry by entry
    mids = subspace_row_hessians(di.problem, di.structure, theta, states, Q)
    scale = float(H.abs().max())
    np.testing.assert_allclose(mids, H.numpy(), rtol=0, atol=1e-11 * scale)
    # the default margin widens by its relative 1e-9 and nothing else
    cert_m = subspace_smoothness_bounds(di.problem, di.structure, theta, states, Q, 0.0)
    assert np.all(cert_m.L >= ref) and np.all(cert_m.L <= ref * (1 + 1.2e-9))
    assert cert_m.margin.to_dict()["relative"] == 1e-9 and cert_m.margin.to_dict()["absolute"] == 0.0


def test_radius_zero_on_a_static_problem():
    task = RegressionTask(RegressionConfig(hidden=(7, 5), n_grid=12, n_train=10))
    theta, _, Q, states = setup(task, 3)
    H = restricted_hessians(task, theta, Q, states, np.zeros((1, Q.shape[1])))[0]
    ref = torch.linalg.eigvalsh(H).abs().amax(-1).numpy().reshape(-1)
    cert = subspace_smoothness_bounds(task.problem, task.structure, theta, states, Q, 0.0, margin=NO_MARGIN)
    assert cert.rows == "mlp-output"
    np.testing.assert_allclose(cert.L, ref, rtol=1e-10)


# --------------------------------------------------------------------------- soundness
def _check_sound(task, theta, Q, states, r, n_points, seed, ascent_rows):
    cert = subspace_smoothness_bounds(task.problem, task.structure, theta, states, Q, r)
    S, R = states.shape[0], task.problem.layout.n_rows
    L = cert.L.reshape(S, R)
    rng = np.random.default_rng(seed)
    A = ball_points(rng, n_points, Q.shape[1], r)
    best, arg = np.zeros((S, R)), np.zeros((S, R), dtype=int)
    for i in range(0, n_points, 250):
        ev = torch.linalg.eigvalsh(restricted_hessians(task, theta, Q, states, A[i : i + 250])).abs().amax(-1).numpy()
        j = ev.argmax(0)
        upd = ev.max(0) > best
        best = np.where(upd, ev.max(0), best)
        arg = np.where(upd, j + i, arg)
    assert np.all(L >= best), f"bound below a sampled curvature: worst ratio {np.min(L / best):.6f}"
    # ascent from the best sampled point on the rows closest to their bound
    close = np.argsort(-(best / L).reshape(-1))[:ascent_rows]
    pairs = [(int(c) // R, int(c) % R) for c in close]
    found = ascent(task, theta, Q, states, pairs, [A[arg[s, j]] for s, j in pairs], r)
    assert np.all(L[tuple(np.array(pairs).T)] >= found)
    return L, best


@pytest.mark.parametrize("seed", [0, 1])
def test_bound_holds_against_dense_sampling_and_ascent(di, seed):
    theta, _, Q, states = setup(di, seed)
    L, best = _check_sound(di, theta, Q, states, 0.05, 1000, seed, 4)
    assert np.median(L / best) < 3.0  # and it is not vacuous


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3, 4, 5])
@pytest.mark.parametrize("r", [0.01, 0.1, 0.3])
def test_bound_holds_against_dense_sampling_and_ascent_many_seeds(di, seed, r):
    theta, _, Q, states = setup(di, seed, k=5, scale=0.6)
    _check_sound(di, theta, Q, states, r, 3000, seed, 10)


@pytest.mark.parametrize("seed", [0, 1])
def test_bound_holds_on_random_small_nets_without_terminal_set(seed):
    """A random closed loop with coupled (non-box) input rows, no terminal set, two inputs."""
    rng = np.random.default_rng(10 + seed)
    A = np.eye(3) + 0.1 * rng.normal(size=(3, 3))
    B = 0.2 * rng.normal(size=(3, 2))
    sys = LinearSystem(A=A, B=B, Hx=np.vstack([np.eye(3), -np.eye(3)]), hx=np.full(6, 2.0),
                       Hu=np.array([[1.0, 0.5], [-1.0, 0.3], [0.0, -1.0]]), hu=np.ones(3))
    K = -0.3 * rng.normal(size=(2, 3))
    problem = ClosedLoopProblem(system=sys, K=K, horizon=4)
    problem.tensors(None, torch.float64)  # fill the tensor cache outside torch.func (a cache filled inside a transform escapes it)

    class T:  # the parts of a task the helpers use
        pass

    t = T()
    t.problem = problem
    from scpo.policies import MLP

    t.structure = MLP(3, (5, 4), 2, seed=seed).structure
    t.dim = t.structure.dim
    t.theta0 = np.zeros(t.dim)
    t.constraint_states = rng.uniform(-1, 1, size=(4, 3))
    theta, _, Q, states = setup(t, seed, k=3, scale=0.5)
    _check_sound(t, theta, Q, states, 0.1, 1000, seed, 3)


# --------------------------------------------------------------------------- the constant (★) needs
def test_star_needs_exactly_the_subspace_curvature_on_a_known_quadratic():
    """g(θ) = ½θᵀAθ + bᵀθ with curvature 10⁴ orthogonal to span(D) and eigenvalues (−2, 1, 0.5) inside
    it: (★) holds for every step Dc with L = ‖QᵀAQ‖ = 2 (the subspace constant) and fails with 0.9 of
    it (small steps along the bank entry on the −2 eigenvector), while ‖A‖ = 10⁴ — the full-space
    constant is not what (★) needs."""
    rng = np.random.default_rng(0)
    d, m = 12, 3
    Q, _ = subspace_basis(rng.normal(size=(m, d)))
    A = Q @ np.diag([-2.0, 1.0, 0.5]) @ Q.T + 1e4 * (np.eye(d) - Q @ Q.T)  # the known Hessian
    L_sub = float(np.abs(np.linalg.eigvalsh(Q.T @ A @ Q)).max())
    assert L_sub == pytest.approx(2.0) and np.abs(np.linalg.eigvalsh(A)).max() == pytest.approx(1e4)
    D = np.vstack([0.05 * Q[:, 0], (rng.normal(size=(2, m)) * 0.05) @ Q.T])  # bank offsets (rows) in span(Q)
    b = rng.normal(size=d)
    theta = rng.normal(size=d)

    def g(t):
        return np.array([0.5 * t @ A @ t + b @ t])

    norms = np.linalg.norm(D, axis=1)
    H = ((np.stack([g(theta + dk) for dk in D]) - g(theta)) / norms[:, None]).T  # (N, m) difference quotients
    cs = [rng.normal(size=m) * rng.uniform(0, 0.1) for _ in range(3000)] + [np.array([t, 0.0, 0.0]) for t in np.linspace(1e-4, 0.05, 50)]
    worst = {}
    for L in (L_sub, 0.9 * L_sub):
        worst[L] = max(float(g(theta + (c / norms) @ D)[0] - inner_bound(g(theta), H, np.array([L]), norms, c,
                                                                          float(((c / norms) @ D) @ ((c / norms) @ D)))[0]) for c in cs)
    assert worst[L_sub] <= 1e-12  # (★) holds with the subspace constant
    assert worst[0.9 * L_sub] > 1e-6  # and is tight: 10% less breaks it


def test_star_holds_on_closed_loop_rows_with_the_certified_subspace_L(di):
    """End to end: bank offsets and steps inside the ball, L from subspace_certified_L, (★) holds for every row."""
    rng = np.random.default_rng(5)
    theta = di.theta0 + rng.normal(size=di.dim) * 0.4
    r = 0.05
    D = rng.normal(size=(4, di.dim))
    D *= (r * rng.uniform(0.3, 1.0, size=(4, 1))) / np.linalg.norm(D, axis=1, keepdims=True)
    L, cert = subspace_certified_L(di.problem, di.structure, theta, di.constraint_states, D, r)
    assert cert.radius == r and cert.dim == 4 and len(cert.digest) == 64
    g = lambda th: di.constraints(th[None])[0]  # noqa: E731
    g0 = g(theta)
    norms = np.linalg.norm(D, axis=1)
    H = ((di.constraints(theta[None] + D) - g0) / norms[:, None]).T
    worst = -np.inf
    for _ in range(40):
        c = rng.normal(size=4)
        step = (c / norms) @ D
        step *= rng.uniform(0.2, 1.0) * r / np.linalg.norm(step)
        c = c * (np.linalg.norm(step) / np.linalg.norm((c / norms) @ D))
        worst = max(worst, float(np.max(g(theta + step) - inner_bound(g0, H, L, norms, c, float(step @ step)))))
    assert worst <= 1e-12


# --------------------------------------------------------------------------- aggregation, device, lower bounds
def test_max_and_lse_rows(di):
    theta, _, Q, states = setup(di, 7)
    r = 0.05
    per = subspace_smoothness_bounds(di.problem, di.structure, theta, states, Q, r, gradient=True)
    R = di.problem.layout.n_rows
    mx = subspace_smoothness_bounds(di.problem, di.structure, theta, states, Q, r, aggregation="max")
    assert mx.L.shape == (states.shape[0],) and mx.rows == "max"
    np.testing.assert_array_equal(mx.L, per.L.reshape(-1, R).max(axis=1))
    np.testing.assert_array_equal(mx.underlying_argmax, per.L.reshape(-1, R).argmax(axis=1))
    tau = 0.05
    ls = subspace_smoothness_bounds(di.problem, di.structure, theta, states, Q, r, aggregation="lse", temperature=tau)
    G = per.gradient.reshape(-1, R)
    assert np.all(ls.L >= per.L.reshape(-1, R).max(axis=1) + G.max(axis=1) ** 2 / tau)
    # sampled lse curvature below the bound; the centre equals the lse Hessian at θ
    f = rows_fn(di, theta, Q)

    def lse(a, x0):
        return tau * torch.logsumexp(f(a, x0) / tau, dim=0)

    Hs = vmap(vmap(jacfwd(jacfwd(lse)), in_dims=(None, 0)), in_dims=(0, None))
    A = ball_points(np.random.default_rng(0), 200, Q.shape[1], r)
    ev = torch.linalg.eigvalsh(Hs(torch.as_tensor(A), torch.as_tensor(states))).abs().amax(-1).numpy()
    assert np.all(ls.L >= ev.max(0))
    H0 = Hs(torch.zeros(1, Q.shape[1], dtype=torch.float64), torch.as_tensor(states))[0]
    np.testing.assert_allclose(ls.centre, torch.linalg.eigvalsh(H0).abs().amax(-1).numpy(), rtol=1e-9)
    # gradients: sound against sampled ‖Qᵀ∇r‖
    J = vmap(vmap(jacfwd(f), in_dims=(None, 0)), in_dims=(0, None))(torch.as_tensor(A), torch.as_tensor(states))
    assert np.all(per.gradient.reshape(-1, R) >= torch.linalg.vector_norm(J, dim=-1).amax(0).numpy())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(di):
    theta, _, Q, states = setup(di, 8)
    a = subspace_smoothness_bounds(di.problem, di.structure, theta, states, Q, 0.05)
    b = subspace_smoothness_bounds(di.problem, di.structure, theta, states, Q, 0.05, device="cuda")
    np.testing.assert_allclose(a.L, b.L, rtol=1e-9)


def test_subspace_bound_is_far_below_the_full_space_bound(di):
    theta, _, Q, states = setup(di, 9)
    sub = subspace_smoothness_bounds(di.problem, di.structure, theta, states, Q, 0.02)
    full = smoothness_bounds(di.problem, di.structure, theta, states, Region.ball(0.02))
    assert np.all(sub.L <= full.L)
    assert np.median(full.L / sub.L) > 10


def test_lower_bounds_lie_below_the_sound_bound(di):
    theta, D, Q, states = setup(di, 11)
    r = 0.05
    cert = subspace_smoothness_bounds(di.problem, di.structure, theta, states, Q, r)
    sd, _ = second_difference_lower_bounds(di.problem, di.structure, theta, states, D, r)
    assert sd.shape == cert.L.shape and np.all(sd <= cert.L) and np.any(sd > 0)
    sdm, _ = second_difference_lower_bounds(di.problem, di.structure, theta, states, D, r, aggregation="max")
    np.testing.assert_allclose(sdm, sd.reshape(states.shape[0], -1).max(axis=1))
    assert np.all(cert.centre <= cert.L)


def test_exact_search_finds_the_known_top_eigenvalue():
    """On ψ(a) = ½aᵀMa + ¼ s(wᵀa)⁴ the curvature grows towards the sphere along w; the search must
    see the centre's |λ_max(M)| exactly and more after the ascent, never more than the supremum."""
    rng = np.random.default_rng(0)
    m = 5
    C = rng.normal(size=(m, m))
    M = torch.as_tensor((C + C.T) / 2)
    w = torch.as_tensor(rng.normal(size=m))
    w = w / w.norm()
    r = 0.5

    def psi(a, s):
        return 0.5 * a @ M @ a + 0.25 * s * (w @ a) ** 4

    s = torch.tensor([1.0, 3.0], dtype=torch.float64)
    out = exact_curvature_search(psi, m, [s], r, ascent_steps=4)
    lam = float(torch.linalg.eigvalsh(M).abs().max())
    np.testing.assert_allclose(out["power_centre"], lam, rtol=1e-12)
    sup = [max(float(torch.linalg.eigvalsh(M + 3 * si * (w @ (t * w)) ** 2 * torch.outer(w, w)).abs().max())
               for t in np.linspace(-r, r, 401)) for si in s.tolist()]
    assert np.all(out["lower"] <= np.array(sup) * (1 + 1e-12))
    assert np.all(out["lower"] >= lam)


# --------------------------------------------------------------------------- bad input
def test_bad_input_gives_clear_errors(di):
    theta, D, Q, states = setup(di, 0)
    pb, st = di.problem, di.structure
    with pytest.raises(InvalidInputError, match="radius"):
        subspace_smoothness_bounds(pb, st, theta, states, Q, -0.1)
    with pytest.raises(InvalidInputError, match="radius"):
        subspace_smoothness_bounds(pb, st, theta, states, Q, float("nan"))
    with pytest.raises(InvalidInputError, match="radius"):
        subspace_certified_L(pb, st, theta, states, D, 0.0)
    with pytest.raises(InvalidInputError, match="contain every bank offset"):
        subspace_certified_L(pb, st, theta, states, D, 1e-6)
    with pytest.raises(InvalidInputError, match="at least one direction"):
        subspace_smoothness_bounds(pb, st, theta, states, np.zeros((st.dim, 0)), 0.1)
    with pytest.raises(InvalidInputError, match="at least one non-zero direction"):
        subspace_basis(np.zeros((3, st.dim)))
    with pytest.raises(InvalidInputError, match="at least one non-zero direction"):
        subspace_basis(np.zeros((0, st.dim)))
    with pytest.raises(InvalidInputError, match="orthonormal"):
        subspace_smoothness_bounds(pb, st, theta, states, D.T, 0.1)
    with pytest.raises(ShapeError, match="basis"):
        subspace_smoothness_bounds(pb, st, theta, states, Q[:-1], 0.1)
    with pytest.raises(NonFiniteError):
        subspace_smoothness_bounds(pb, st, np.full_like(theta, np.nan), states, Q, 0.1)
    relu = DoubleIntegratorTask(DoubleIntegratorConfig(horizon=3, grid=5, hidden=(4,), activation="relu"))
    with pytest.raises(UnsupportedError, match="ReLU|relu"):
        subspace_smoothness_bounds(relu.problem, relu.structure, relu.theta0, relu.constraint_states, subspace_basis(D[:, : relu.dim])[0], 0.1)
    with pytest.raises(InvalidInputError, match="temperature"):
        subspace_smoothness_bounds(pb, st, theta, states, Q, 0.1, aggregation="lse", temperature=0.0)


def test_basis_spans_the_offsets_and_drops_dependent_ones():
    rng = np.random.default_rng(0)
    D = rng.normal(size=(3, 20))
    D4 = np.vstack([D, D[0] - 2 * D[1], np.zeros(20)])  # a dependent and a zero offset
    Q, res = subspace_basis(D4)
    assert Q.shape == (20, 3) and res < 1e-14
    np.testing.assert_allclose(Q.T @ Q, np.eye(3), atol=1e-14)
    np.testing.assert_allclose(D4 - D4 @ Q @ Q.T, 0.0, atol=1e-13)
