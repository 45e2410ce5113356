"""State-Lipschitz bounds (naive, LipSDP with re-check, local interval Jacobians) and the
record-only radius of the smoothness verdicts (``scpo verify-lipschitz`` is tested in tests/cli)."""

import cvxpy as cp
import numpy as np
import pytest
import torch
from torch import nn
from torch.func import jacrev, vmap

from scpo.certify.lipschitz import (
    layers_of,
    lipsdp,
    local_lipschitz,
    naive_lipschitz,
    network_weights,
    sampled_jacobian_norm,
    state_lipschitz,
)
from scpo.certify.region_cover import state_box
from scpo.certify.smoothness import record_region_radius
from scpo.errors import InvalidInputError, NonFiniteError, UnsupportedError
from scpo.evidence import Level
from scpo.projector.solvers import mosek_status
from scpo.tasks import DoubleIntegratorConfig, DoubleIntegratorTask, RegressionConfig, RegressionTask

A = np.array([[1.0, 0.1], [0.0, 1.0]])
B = np.array([[0.005], [0.1]])
K = np.array([[-0.9, -1.4]])


def random_net(seed, hidden, scale=1.5, activation="tanh"):
    rng = np.random.default_rng(seed)
    widths = [2, *hidden, 1]
    Ws = [rng.normal(size=(o, i)) * scale / np.sqrt(i) for i, o in zip(widths[:-1], widths[1:])]
    bs = [rng.normal(size=o) * 0.5 for o in widths[1:]]
    return Ws, bs


def torch_map(Ws, bs, C, O, activation="tanh"):
    """y(x) = C x + O φ(x), written independently of the module under test."""
    Wt = [torch.as_tensor(W) for W in Ws]
    bt = [torch.as_tensor(b) for b in bs]
    Ct, Ot = torch.as_tensor(C), torch.as_tensor(O)
    act = torch.tanh if activation == "tanh" else torch.relu

    def y(x):
        h = x
        for W, b in zip(Wt[:-1], bt[:-1]):
            h = act(W @ h + b)
        return Ct @ x + Ot @ (Wt[-1] @ h + bt[-1])

    return y


def sampled_max_jacobian(Ws, bs, C, O, rng, n=4000, box=3.0, steps=15):
    """Largest ‖J(x)‖₂ over dense samples plus gradient ascent (an estimated lower bound of Lip)."""
    y = torch_map(Ws, bs, C, O)
    X = torch.as_tensor(rng.uniform(-box, box, size=(n, 2)))
    jn = torch.linalg.matrix_norm(vmap(jacrev(y))(X), ord=2)
    best = float(jn.max())
    x = X[torch.argsort(jn, descending=True)[:32]].clone()

    def norm_at(z):
        return torch.linalg.matrix_norm(jacrev(y)(z), ord=2)

    for k in range(steps):
        g = vmap(jacrev(norm_at))(x)
        x = (x + 0.1 / (k + 1) * g / g.norm(dim=-1, keepdim=True).clamp(min=1e-12)).clamp(-box, box)
        best = max(best, float(vmap(norm_at)(x).max()))
    return best


MAPS = {"residual": (np.zeros((1, 2)), np.eye(1)), "policy": (K, np.eye(1)), "closed-loop": (A + B @ K, B)}


@pytest.mark.parametrize("seed,hidden", [(0, (8, 8)), (1, (6,)), (2, (5, 5, 5))])
@pytest.mark.parametrize("map_name", list(MAPS))
def test_lipsdp_lies_between_the_sampled_jacobian_and_the_naive_product(seed, hidden, map_name):
    Ws, bs = random_net(seed, hidden)
    C, O = MAPS[map_name]
    res = lipsdp(Ws, C, O, label=map_name)
    assert res.method == "lipsdp", res.details.get("fallback")
    assert res.level == Level.SOUND
    assert res.details["status"] == cp.OPTIMAL
    # MOSEK when licensed, otherwise Clarabel for LMIs this small (scpo.projector.solvers.mosek_status)
    assert res.details["solver"] == (cp.MOSEK if mosek_status()[0] else cp.CLARABEL)
    assert any(c["passed"] for c in res.details["recheck"])
    sampled = sampled_max_jacobian(Ws, bs, C, O, np.random.default_rng(seed))
    naive = naive_lipschitz(Ws, C, O)
    assert sampled <= res.value <= naive


def test_lipsdp_reaches_the_slope_bound_where_the_naive_product_is_twice_too_large():
    # φ(x) = tanh(x₁) − tanh(x₁ + 3): any M(ρ, λ) ⪰ 0 implies ρ ≥ sup_{s ∈ [0,1]²} ‖W₂ diag(s) W₁‖² = 1
    # (closed form, s = (1, 0)), while the naive product is ‖W₂‖‖W₁‖ = 2.
    W1, W2 = np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[1.0, -1.0]])
    res = lipsdp([W1, W2])
    assert res.method == "lipsdp"
    assert 1.0 <= res.value <= 1.0 + 1e-5
    assert naive_lipschitz([W1, W2]) == pytest.approx(2.0)
    # one neuron: LipSDP and the naive product coincide with |w₂| ‖w₁‖ (closed form); the smaller is reported
    w1, w2 = np.array([[0.6, -1.7]]), np.array([[-2.5]])
    one = lipsdp([w1, w2])
    exact = 2.5 * np.linalg.norm(w1)
    assert exact <= one.value <= exact * (1 + 1e-6)


def test_naive_product_closed_form():
    W1, W2 = np.diag([2.0, 3.0]), np.array([[1.0, 1.0]])
    assert naive_lipschitz([W1, W2]) == pytest.approx(np.sqrt(2) * 3.0, rel=1e-8)
    # an affine map (no hidden layer) is exact: ‖C + O W₁‖
    C = np.array([[1.0, 0.0]])
    assert naive_lipschitz([np.array([[0.0, 2.0]])], C, np.eye(1)) == pytest.approx(np.sqrt(5.0), rel=1e-8)


def test_lipsdp_falls_back_when_the_solver_is_not_optimal(monkeypatch):
    Ws, _ = random_net(3, (4,))

    def inaccurate(self, *a, **k):
        for v in self.variables():
            v.value = np.ones(v.shape)
        self._status = cp.OPTIMAL_INACCURATE
        return 0.0

    monkeypatch.setattr(cp.Problem, "solve", inaccurate)
    res = lipsdp(Ws)
    assert res.method == "naive" and res.level == Level.SOUND
    assert "not optimal" in res.details["fallback"]
    assert res.value == pytest.approx(naive_lipschitz(Ws))


def test_lipsdp_recheck_rejects_multipliers_that_do_not_certify(monkeypatch):
    Ws, _ = random_net(4, (4,))

    def zeros(self, *a, **k):  # "optimal" but ρ = 0, λ = 0: M = −ĈᵀĈ is not PSD
        for v in self.variables():
            v.value = np.zeros(v.shape)
        self._status = cp.OPTIMAL
        return 0.0

    monkeypatch.setattr(cp.Problem, "solve", zeros)
    res = lipsdp(Ws)
    assert res.method == "naive"
    assert "re-check failed" in res.details["fallback"]
    assert not any(c["passed"] for c in res.details["recheck"])


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_local_bounds_hold_on_thousands_of_cells(activation):
    rng = np.random.default_rng(7)
    Ws, bs = random_net(5, (6, 6))
    C, O = MAPS["closed-loop"]
    n = 2000
    lo = rng.uniform(-2, 2, size=(n, 2))
    hi = lo + 10 ** rng.uniform(-3, -0.5, size=(n, 2))
    bound = local_lipschitz(Ws, bs, lo, hi, C, O, activation=activation)
    y = torch_map(Ws, bs, C, O, activation)
    m = 8
    P = torch.as_tensor(lo[:, None] + (hi - lo)[:, None] * rng.uniform(size=(n, m, 2)))
    Q = torch.as_tensor(lo[:, None] + (hi - lo)[:, None] * rng.uniform(size=(n, m, 2)))
    yv = vmap(vmap(y))
    quot = ((yv(P) - yv(Q)).norm(dim=-1) / (P - Q).norm(dim=-1)).amax(-1).numpy()
    assert np.all(quot <= bound), f"difference quotient above the bound in {np.sum(quot > bound)} cells"
    if activation == "tanh":  # the Jacobian exists everywhere: its norm is a lower bound too
        jn = torch.linalg.matrix_norm(vmap(vmap(jacrev(y)))(P), ord=2).amax(-1).numpy()
        assert np.all(jn <= bound)


def test_local_and_global_agree_with_sampled_jacobians_on_the_task():
    task = DoubleIntegratorTask(DoubleIntegratorConfig(hidden=(6, 6), grid=8, n_samples=8, horizon=5))
    theta = task.theta0 + 0.4 * np.random.default_rng(0).normal(size=task.dim)
    lo, hi = state_box(task.problem)
    rep = state_lipschitz(task.problem, task.structure, theta, lo, hi, cells_per_axis=6, n_samples=3000)
    for claim in rep.claims():
        assert claim.holds, claim.details
    for m in ("residual", "policy", "closed-loop"):
        nv = [b for b in rep.bounds if b.map == m and b.method == "naive"][0]
        sd = [b for b in rep.bounds if b.map == m and b.method == "sampled"][0]
        assert sd.value <= rep.best(m).value <= nv.value
        assert rep.local[m].shape == (36,) and np.all(np.isfinite(rep.local[m]))
    # local bounds dominate the Jacobian norm sampled inside each cell
    Ws, bs, act = network_weights(task.policy_at(theta).residual)
    Ws2, bs2 = layers_of(task.structure, theta)  # the same layers from the flat layout
    assert all(np.array_equal(a, b) for a, b in zip(Ws + bs, Ws2 + bs2))
    rng = np.random.default_rng(1)
    P = task.problem
    for i in range(36):
        pts = rng.uniform(rep.cells_lower[i], rep.cells_upper[i], size=(50, 2))
        assert sampled_jacobian_norm(Ws, bs, pts, P.A_cl, P.B).max() <= rep.local["closed-loop"][i]


def test_a_static_problem_has_the_residual_map_only():
    task = RegressionTask(RegressionConfig(hidden=(5,), n_grid=9, n_train=5))
    theta = task.theta0 + 0.3 * np.random.default_rng(3).normal(size=task.dim)
    x = task.constraint_states
    rep = state_lipschitz(task.problem, task.structure, theta, x.min(0), x.max(0), cells_per_axis=4, n_samples=200)
    assert {b.map for b in rep.bounds} == {"residual"} and rep.local["residual"].shape == (4,)
    assert all(c.holds for c in rep.claims())
    with pytest.raises(InvalidInputError, match="lower < upper"):
        state_lipschitz(task.problem, task.structure, theta, x.max(0), x.min(0))


def test_bad_input_names_the_problem():
    Ws, bs = random_net(0, (3,))
    with pytest.raises(InvalidInputError, match="lower <= upper"):
        local_lipschitz(Ws, bs, np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]]))
    with pytest.raises(NonFiniteError, match="lower"):
        local_lipschitz(Ws, bs, np.array([[np.nan, 0.0]]), np.array([[1.0, 1.0]]))
    with pytest.raises(UnsupportedError, match="Dropout"):
        network_weights(nn.Sequential(nn.Linear(2, 3), nn.Dropout(), nn.Linear(3, 1)))
    with pytest.raises(InvalidInputError, match="solver"):
        lipsdp(Ws, solver="cplex")


def test_record_region_radius_covers_consecutive_steps():
    # iteration 5 accepted a step of 0.3 with no rejected try; iteration 6 probed with a raw step 0.2
    recs = [{"iteration": 5, "accepted": True, "step_norm": 0.3, "raw_step_norm": 0.4, "rejected_tries": 0},
            {"iteration": 6, "accepted": True, "step_norm": 0.1, "raw_step_norm": 0.2, "rejected_tries": 0}]
    R, how = record_region_radius(recs, 5, bank_size=4, probe_radius=None)
    # iteration 6: its own raw step 0.2, and the entry of iteration 5 (0.4) moved by step 5 (0.3): 0.7
    # iteration 5 (incl. its step): 0.4 + 0.3
    assert R == pytest.approx(0.7) and "records" in how
    with pytest.raises(InvalidInputError, match="no record"):
        record_region_radius(recs, 9, bank_size=4, probe_radius=None)
