"""Sound smoothness constants L: exactness at radius 0, soundness against sampling and ascent,
lower bounds below upper bounds, and the 'certified L ⇒ no rejected step' property."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, hessian, vmap

from scpo.certify.intervals import TANH_D2_MAX
from scpo.certify.smoothness import (
    Region,
    certified_L,
    curvature_search,
    mlp_hessian_bound_chain,
    mlp_hessian_bound_interval,
    mlp_hessian_factors,
    rollout_hessian_bound_chain,
    smoothness_bounds,
    smoothness_lower_bounds,
)
from scpo.certify.smoothness.lower import point_rows
from scpo.errors import InvalidInputError, NonFiniteError, ShapeError, UnsupportedError
from scpo.numerics import Margin
from scpo.policies import MLP, MLPStructure
from scpo.projector import Projector, ProjectorConfig
from scpo.tasks import DoubleIntegratorConfig, DoubleIntegratorTask, RegressionConfig, RegressionTask


def bounds(task, theta, region, **kw):
    """smoothness_bounds for a task's problem, residual, constraint states and row aggregation."""
    return smoothness_bounds(task.problem, task.structure, theta, task.constraint_states, region, aggregation=task.rows,
                             temperature=task.lse_temperature, **kw)


def lower_bounds(task, theta, region, rows=None, **kw):
    return smoothness_lower_bounds(task.problem, task.structure, theta, task.constraint_states, region, rows,
                                   aggregation=task.rows, temperature=task.lse_temperature, **kw)


def cert_L(task, theta, radius, **kw):
    return certified_L(task.problem, task.structure, theta, task.constraint_states, radius, aggregation=task.rows,
                       temperature=task.lse_temperature, **kw)


def reference_output(mlp: MLP):
    """f(θ, x) through the module itself (torch.func.functional_call), independent of MLPStructure."""
    names = [n for n, _ in mlp.named_parameters()]
    shapes = [p.shape for _, p in mlp.named_parameters()]
    sizes = [p.numel() for _, p in mlp.named_parameters()]

    def f(theta, x):
        parts = torch.split(theta, sizes)
        params = {n: t.reshape(s) for n, t, s in zip(names, parts, shapes)}
        return functional_call(mlp, params, (x,))[0]

    return f


def dense_hessian_norms(f, thetas, x):
    """‖∇²_θ f(θ, x)‖₂ at each row of thetas (torch.func.hessian + eigvalsh: the reference)."""
    H = vmap(hessian(f), in_dims=(0, None))(thetas, x)
    return torch.linalg.eigvalsh(H).abs().amax(-1)


@pytest.mark.parametrize("seed,hidden,n_in", [(0, (5, 4), 2), (1, (7,), 1), (2, (3, 4, 3), 2)])
def test_factorisation_and_radius_zero_match_torch_hessian(seed, hidden, n_in):
    mlp = MLP(n_in, hidden, 1, seed=seed)
    st = MLPStructure.from_module(mlp)
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=st.dim) * 0.8
    x = rng.normal(size=n_in)
    f = reference_output(mlp)
    H = hessian(f)(torch.as_tensor(theta), torch.as_tensor(x)).numpy()
    U, M = mlp_hessian_factors(st, theta, x)
    # the explicit Hessian graph UᵀMU equals torch.func.hessian entrywise
    np.testing.assert_allclose(U.T @ M @ U, H, rtol=0, atol=1e-12 * max(1.0, np.abs(H).max()))
    norm = np.abs(np.linalg.eigvalsh(H)).max()
    bound = mlp_hessian_bound_interval(st, theta[None], x[None], 0.0, margin=Margin(rel=0.0, abs=0.0))[0]
    # at radius 0 the interval bound is the Hessian norm itself (up to the documented rounding inflation)
    assert norm <= bound <= norm * (1 + 1e-12)
    # the norm chain is sound but looser
    assert mlp_hessian_bound_chain(st, theta[None], x[None], 0.0)[0] >= norm


def _batched_norms(f, pts, xs):
    """‖∇²_θ f(θ, x)‖₂ for pts (B, n, d) and xs (B, n0): shape (B, n) (reference: torch.func.hessian)."""
    H = vmap(vmap(hessian(f), in_dims=(0, None)), in_dims=(0, 0))(pts, xs)
    return torch.linalg.eigvalsh(H).abs().amax(-1)


def _ascent(f, centres, xs, region, starts, steps=4):
    """Projected gradient ascent on |λ|_max(∇²f) from starts (B, n, d), kept in each region around centres (B, d)."""
    cur = starts.clone()
    B, n, d = cur.shape

    def rq(th, x, v, s):
        return s * v @ hessian(f)(th, x) @ v

    gfun = vmap(vmap(grad(rq), in_dims=(0, None, 0, 0)), in_dims=(0, 0, 0, 0))
    for k in range(steps):
        H = vmap(vmap(hessian(f), in_dims=(0, None)), in_dims=(0, 0))(cur, xs)
        ev, vec = torch.linalg.eigh(H)
        idx = ev.abs().argmax(-1, keepdim=True)
        u = torch.take_along_dim(vec, idx.unsqueeze(-2), dim=-1).squeeze(-1)
        sgn = torch.sign(torch.take_along_dim(ev, idx, dim=-1).squeeze(-1))
        g = gfun(cur, xs, u, sgn)
        step = torch.sign(g) if region.kind == "box" else g / g.norm(dim=-1, keepdim=True).clamp(min=1e-300)
        cur = region.project(cur + step * region.radius[:, None, None] / (k + 2), centres[:, None, :])
    return cur


class _Regions:
    """Regions with one radius per row (for the batched projection in the tests)."""

    def __init__(self, kind, radius):
        self.kind, self.radius = kind, radius

    def project(self, theta, centre):
        d = theta - centre
        r = self.radius[:, None, None]
        if self.kind == "box":
            return centre + torch.maximum(torch.minimum(d, r), -r)
        n = d.norm(dim=-1, keepdim=True)
        return centre + d * torch.where(n > r, r / n.clamp(min=1e-300), torch.ones_like(n))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["box", "ball"])
def test_mlp_bounds_hold_against_sampling_and_ascent(seed, kind):
    # 400 regions per (seed, kind), 2400 in all, each with 16 sampled points (half of them box
    # corners or ball-boundary points) and 4 steps of projected ascent from 4 of them
    rng = np.random.default_rng(100 + seed)
    mlp = MLP(2, (4, 3), 1, seed=seed)
    st = MLPStructure.from_module(mlp)
    f = reference_output(mlp)
    n_box, n_pts = 400, 16
    centres = rng.normal(size=(n_box, st.dim)) * rng.uniform(0.3, 1.5, size=(n_box, 1))
    radii = 10 ** rng.uniform(-4, -0.5, size=n_box)
    xs = rng.normal(size=(n_box, 2)) * 1.5
    a = mlp_hessian_bound_interval(st, centres, xs, radii, kind=kind)
    b = mlp_hessian_bound_chain(st, centres, xs, radii, kind=kind)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    if kind == "box":
        D = rng.uniform(-1, 1, size=(n_box, n_pts, st.dim))
        D[:, : n_pts // 2] = np.sign(D[:, : n_pts // 2])  # corners
    else:
        D = rng.normal(size=(n_box, n_pts, st.dim))
        D /= np.linalg.norm(D, axis=-1, keepdims=True)
        D[:, n_pts // 2 :] *= rng.uniform(0.0, 1.0, size=(n_box, n_pts - n_pts // 2, 1))
    C = torch.as_tensor(centres)
    X = torch.as_tensor(xs)
    pts = C[:, None, :] + torch.as_tensor(radii[:, None, None] * D)
    pts = torch.cat([C[:, None, :], pts], dim=1)
    regions = _Regions(kind, torch.as_tensor(radii))
    asc = _ascent(f, C, X, regions, pts[:, :4])
    sampled = torch.cat([_batched_norms(f, pts, X), _batched_norms(f, asc, X)], dim=1).amax(-1).numpy()
    bad_a, bad_b = np.flatnonzero(a < sampled), np.flatnonzero(b < sampled)
    assert bad_a.size == 0, f"interval bound below the sampled maximum in regions {bad_a[:5]}"
    assert bad_b.size == 0, f"norm-chain bound below the sampled maximum in regions {bad_b[:5]}"


def _tiny_rollout_task(horizon=4):
    return DoubleIntegratorTask(DoubleIntegratorConfig(hidden=(3, 3), horizon=horizon, grid=8, n_samples=8, rows="per-row"))


@pytest.mark.parametrize("seed", [0, 1])
def test_rollout_chain_holds_against_sampling(seed):
    task = _tiny_rollout_task()
    st = task.structure
    problem = task.problem
    rng = np.random.default_rng(seed)
    n_box, n_pts = 40, 12
    centres = task.theta0[None] + rng.normal(size=(n_box, task.dim)) * rng.uniform(0.2, 1.0, size=(n_box, 1))
    states = rng.uniform(-1, 1, size=(n_box, 2))
    radii = 10 ** rng.uniform(-3, -1, size=n_box)
    Hb, Gb = rollout_hessian_bound_chain(st, problem, centres, states, radii, kind="ball")
    assert Hb.shape == (n_box, problem.layout.n_rows)
    for i in range(n_box):
        x0 = torch.as_tensor(states[i])

        def rows(th):
            return point_rows(problem, st, th, x0)

        D = rng.normal(size=(n_pts, task.dim))
        D *= radii[i] / np.linalg.norm(D, axis=1, keepdims=True)
        pts = torch.as_tensor(np.vstack([centres[i], centres[i] + D]))
        H = vmap(hessian(rows))(pts)  # (n, R, d, d)
        sampled = torch.linalg.eigvalsh(H).abs().amax(-1).amax(0).numpy()
        J = vmap(torch.func.jacrev(rows))(pts)
        gsampled = torch.linalg.vector_norm(J, dim=-1).amax(0).numpy()
        assert np.all(Hb[i] >= sampled), f"region {i}: Hessian bound below sample in rows {np.flatnonzero(Hb[i] < sampled)}"
        assert np.all(Gb[i] >= gsampled), f"region {i}: gradient bound below sample"


def test_task_rows_match_the_task_and_max_rows_take_the_largest_underlying_bound():
    task_pr = _tiny_rollout_task()
    task_max = DoubleIntegratorTask(DoubleIntegratorConfig(hidden=(3, 3), horizon=4, grid=8, n_samples=8, rows="max"))
    st = task_pr.structure
    theta = task_pr.theta0 + 0.3 * np.random.default_rng(0).normal(size=task_pr.dim)
    # the rows of one θ and one x0 are the task's rows (reference: the task's batched rollout)
    x0 = task_pr.constraint_states[3]
    ref = task_pr.rollout_rows(task_pr.rollout(theta[None], x0[None]))[0, 0].numpy()
    mine = point_rows(task_pr.problem, st, torch.as_tensor(theta), torch.as_tensor(x0)).numpy()
    np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-14)
    c_pr = bounds(task_pr, theta, Region.ball(0.01))
    c_max = bounds(task_max, theta, Region.ball(0.01))
    R = task_pr.problem.layout.n_rows
    assert c_pr.L.size == task_pr.constraints(theta[None]).shape[1]
    np.testing.assert_array_equal(c_max.L, c_pr.L.reshape(-1, R).max(axis=1))
    assert "c_k ≥ 0" in c_max.statement


def test_lse_rows_bound_covers_sampled_curvature():
    task = DoubleIntegratorTask(DoubleIntegratorConfig(hidden=(3, 3), horizon=3, grid=8, n_samples=8, rows="lse", lse_temperature=0.05))
    assert task.constraint_states.shape[0] > 0
    theta = task.theta0 + 0.3 * np.random.default_rng(1).normal(size=task.dim)
    cert = bounds(task, theta, Region.ball(0.02))
    lb = lower_bounds(task, theta, Region.ball(0.02), rows=np.arange(min(10, cert.L.size)), ascent_steps=3)
    assert np.all(lb.values <= cert.L[lb.rows])
    assert np.all(lb.values > 0)


def test_lower_bounds_find_the_top_eigenvalue_and_stay_below_the_sound_bound():
    task = RegressionTask(RegressionConfig(hidden=(6, 5), n_grid=12, n_train=20))
    rng = np.random.default_rng(3)
    theta = task.theta0 + 0.5 * rng.normal(size=task.dim)
    mlp = task.policy.residual
    f = reference_output(mlp)
    x = torch.as_tensor(task.constraint_states)
    # radius 0: power iteration reaches the Hessian norm (reference: eigvalsh of torch.func.hessian)
    lb0 = lower_bounds(task, theta, Region.ball(0.0), power_iters=200)
    exact = np.array([float(dense_hessian_norms(f, torch.as_tensor(theta)[None], x[j])[0]) for j in range(x.shape[0])])
    np.testing.assert_allclose(lb0.values[::2], exact, rtol=1e-4)
    assert np.all(lb0.values <= np.repeat(exact, 2) * (1 + 1e-9))
    # radius > 0: every lower bound is below the sound bound, and ascent beats the centre
    for region in (Region.ball(0.05), Region.box(0.01)):
        cert = bounds(task, theta, region)
        lb = lower_bounds(task, theta, region)
        assert np.all(lb.values <= cert.L), region
        assert np.all(lb.details["ascent"] >= lb.details["power_centre"] * (1 - 1e-9))


def test_random_second_differences_underestimate_in_high_dimension():
    # a 1-64-64-1 net (d = 4353): random directions see the average curvature, the eigen-search the top
    task = RegressionTask(RegressionConfig(n_grid=4, n_train=10))
    theta = task.theta0 + 0.05 * np.random.default_rng(0).normal(size=task.dim)
    lb = lower_bounds(task, theta, Region.ball(1e-2), n_random=8, ascent_steps=2)
    assert np.all(lb.details["second_diff_random"] * 3 < lb.values)


def test_certified_L_gives_zero_rejected_steps():
    task = RegressionTask(RegressionConfig(hidden=(8,), n_grid=60, n_train=40))
    # start close to the constraint boundary (max g = −0.05): fit without constraints, then shrink the output
    theta = task.theta0.copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for k in range(1, 401):
        _, gr = task.objective_and_grad(theta)
        m, v = 0.9 * m + 0.1 * gr, 0.999 * v + 0.001 * gr**2
        theta -= 0.02 * (m / (1 - 0.9**k)) / (np.sqrt(v / (1 - 0.999**k)) + 1e-8)
    theta[-9:] *= 0.95 / np.abs(task.predict(theta[None], np.linspace(-3, 3, 60))).max()
    R = 0.1
    L = cert_L(task, theta, R)
    evaluated = []

    def g(ths):
        evaluated.append(np.array(ths))
        return task.constraints(ths)

    def run(L0):
        evaluated.clear()
        cfg = ProjectorConfig(direction="sgd", lr=0.02, L_fixed=True, armijo=-1.0, bank_size=8, probe_radius=1e-3, solver="clarabel")
        p = Projector(theta0=theta, objective=task.objective, objective_and_grad=task.objective_and_grad, constraints=g, config=cfg, L0=L0)
        return [p.step() for _ in range(12)], np.concatenate(evaluated)

    recs, pts = run(L)
    # precondition of the certificate: every point (★) used lies in the certified ball
    assert np.max(np.linalg.norm(pts - theta, axis=1)) <= R
    assert all(r.accepted for r in recs)
    assert sum(r.prediction_failures for r in recs) == 0
    assert sum(r.rejected_tries for r in recs) == 0
    assert max(r.max_constraint for r in recs) <= 0
    # the same run with L twenty times too small is rejected repeatedly (the check can fail)
    recs_small, _ = run(L / 20)
    assert sum(r.rejected_tries for r in recs_small) > 0


def test_relu_is_refused_with_a_clear_message():
    task = RegressionTask(RegressionConfig(hidden=(4,), n_grid=5, n_train=5, activation="relu"))
    with pytest.raises(UnsupportedError, match="ReLU.*no finite L.*region certificate"):
        bounds(task, task.theta0, Region.ball(0.1))
    with pytest.raises(UnsupportedError, match="ReLU"):
        cert_L(task, task.theta0, 0.1)


def test_bad_input_is_rejected():
    mlp = MLP(1, (3,), 1)
    st = MLPStructure.from_module(mlp)
    task = RegressionTask(RegressionConfig(hidden=(3,), n_grid=5, n_train=5))
    with pytest.raises(InvalidInputError, match="radius"):
        Region.ball(-1.0)
    with pytest.raises(InvalidInputError, match="radius"):
        cert_L(task, task.theta0, 0.0)
    with pytest.raises(InvalidInputError, match="region kind"):
        Region(kind="sphere", radius=1.0)
    with pytest.raises(NonFiniteError, match="theta"):
        bounds(task, np.full(task.dim, np.nan), Region.ball(0.1))
    with pytest.raises(ShapeError, match="theta"):
        bounds(task, np.zeros(task.dim + 1), Region.ball(0.1))
    with pytest.raises(ShapeError, match="states"):
        smoothness_bounds(task.problem, task.structure, task.theta0, np.zeros((3, 2)), Region.ball(0.1))
    with pytest.raises(InvalidInputError, match="aggregation"):
        smoothness_bounds(task.problem, task.structure, task.theta0, task.constraint_states, Region.ball(0.1), aggregation="mean")
    with pytest.raises(InvalidInputError, match="radius"):
        mlp_hessian_bound_chain(st, np.zeros((1, st.dim)), np.zeros((1, 1)), -0.1)
    with pytest.raises(NonFiniteError, match="x"):
        mlp_hessian_bound_interval(st, np.zeros((1, st.dim)), np.array([[np.inf]]), 0.1)
    with pytest.raises(UnsupportedError, match="Sigmoid"):
        MLPStructure.from_module(nn.Sequential(nn.Linear(1, 2), nn.Sigmoid(), nn.Linear(2, 1)))
    from scpo.certify.bounds import require_unswitched

    with pytest.raises(UnsupportedError, match="switch"):
        require_unswitched(DoubleIntegratorTask(DoubleIntegratorConfig(hidden=(3,), horizon=2, grid=6, n_samples=4, switching=True)).policy)


def test_tanh_second_derivative_constant():
    # |tanh''| ≤ 4/(3√3), attained at atanh(1/√3) (closed form)
    z = torch.linspace(-5, 5, 200001, dtype=torch.float64)
    t = torch.tanh(z)
    assert float((2 * t * (1 - t * t)).abs().max()) == pytest.approx(TANH_D2_MAX, rel=1e-9)
    assert TANH_D2_MAX == pytest.approx(4 / (3 * math.sqrt(3)))


def test_curvature_search_on_a_quadratic_with_known_spectrum():
    # fn(θ) = ½ θᵀ diag(s) θ: ‖∇²fn‖ = max |s| everywhere (closed form), also with an eigenvalue pair ±λ
    s = torch.tensor([3.0, -3.0, 1.0, 0.5], dtype=torch.float64)

    def fn(theta, c):
        return 0.5 * c * (theta * s * theta).sum()

    res = curvature_search(fn, np.ones(4), [torch.ones(2, dtype=torch.float64)], Region.ball(0.3), power_iters=30)
    np.testing.assert_allclose(res["lower"], 3.0, rtol=1e-9)
    np.testing.assert_allclose(res["second_diff_eig"], 3.0, rtol=1e-9)


def test_static_rows_follow_the_problem_layout_and_the_margin_is_recorded():
    # The regression task is a static problem: its rows are +f − b and −f − b per grid point, so the
    # two rows of a grid point share one bound (the Hessian of −f is that of f).
    task = RegressionTask(RegressionConfig(hidden=(4, 3), n_grid=7, n_train=5))
    assert task.problem.is_static
    theta = task.theta0 + 0.4 * np.random.default_rng(5).normal(size=task.dim)
    cert = bounds(task, theta, Region.ball(0.03))
    assert cert.rows == "mlp-output" and cert.L.size == 2 * 7
    np.testing.assert_array_equal(cert.L[0::2], cert.L[1::2])
    per_x = mlp_hessian_bound_chain(task.structure, theta[None], task.constraint_states, 0.03, kind="ball")
    np.testing.assert_array_equal(cert.methods["norm-chain"][0::2], per_x)
    assert cert.to_dict()["margin"] == cert.margin.to_dict() and cert.margin.abs == 0.0
    # a larger relative margin scales every bound by exactly (1 + rel)
    wide = bounds(task, theta, Region.ball(0.03), margin=Margin(rel=1e-6, abs=0.0))
    np.testing.assert_allclose(wide.L, cert.L / (1 + 1e-9) * (1 + 1e-6), rtol=1e-15)


def test_rollout_chain_without_a_terminal_set_bounds_the_layout_rows():
    task = _tiny_rollout_task(horizon=3)
    P = task.problem
    from scpo.systems import ClosedLoopProblem

    no_term = ClosedLoopProblem(system=P.system, K=P.K, horizon=P.horizon, state_names=P.state_names, input_names=P.input_names)
    theta = task.theta0 + 0.2 * np.random.default_rng(2).normal(size=task.dim)
    x0 = task.constraint_states[:4]
    H, G = rollout_hessian_bound_chain(task.structure, no_term, theta[None], x0, 0.01)
    assert H.shape == (4, no_term.layout.n_rows) == (4, P.layout.n_rows - 1)
    assert np.all(np.isfinite(H)) and np.all(H >= 0)
    # per row it is never tighter than the variant that also uses the terminal metric
    H_t, _ = rollout_hessian_bound_chain(task.structure, P, theta[None], x0, 0.01)
    assert np.all(H_t[:, :-1] <= H * (1 + 1e-12))
