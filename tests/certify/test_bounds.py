"""Sound bound propagation (scpo.certify.bounds).

References used below: dense sampling and projected-gradient search inside every box (soundness),
closed forms for the toy examples, brute-force vertex enumeration for the zonotope quadratic, the
direct sum for the sorted support function, the task's own rollout (scpo.systems.rollout) for the
point simulation, and bound-propagation 0.4.7 (a test-only, independently written library) for
the CROWN and IBP cross-checks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from scpo.certify.bounds import crown as bnd
from scpo.certify.bounds import (
    ClosedLoop,
    IntervalBounds,
    Network,
    activation_relaxation,
    as_boxes,
    auto_lirpa_rollout_bounds,
    bound_rollout,
    box_max_quadratic,
    closed_loop,
    closed_loop_from_policy,
    closed_loop_module,
    ibp_network,
    interval_affine,
    network_from_module,
    parameter_box,
    zonotope_max_quadratic,
)
from scpo.errors import InvalidInputError, NonFiniteError, ShapeError, UnsupportedError
from scpo.numerics import Margin
from scpo.policies import MLP, LinearBackup, ResidualPolicy
from scpo.systems import ClosedLoopProblem, LinearSystem, dlqr, rollout

DT = 0.1
A_DI = np.array([[1.0, DT], [0.0, 1.0]])
B_DI = np.array([[DT * DT / 2], [DT]])


def _lqr(A, B):
    return dlqr(A, B, np.eye(A.shape[0]), np.eye(B.shape[1])).K


def simulate(loop: ClosedLoop, x0, horizon: int):
    """Point rollouts of the loop through scpo.systems.rollout (differentiable in x0): (S, T+1, n), (S, T, m)."""
    x = torch.as_tensor(x0, dtype=torch.float64) if not isinstance(x0, torch.Tensor) else x0
    ro = rollout(loop, loop.policy(), x, horizon)
    return ro.states[0], ro.inputs[0]


def random_loop(seed: int, act: str = "tanh", scale: float = 0.5, hidden=(16, 16), m: int = 1) -> ClosedLoop:
    """Double integrator (m = 1) or a 2-state, 2-input system (m = 2) with LQR K and a random residual."""
    rng = np.random.default_rng(seed)
    if m == 1:
        A, B = A_DI, B_DI
    else:
        A, B = np.array([[1.0, DT], [-0.05, 0.98]]), np.array([[DT, 0.0], [0.02, DT]])
    widths = [2, *hidden, m]
    ws = tuple(rng.normal(0, 1.0 / math.sqrt(a), (b, a)) for a, b in zip(widths[:-1], widths[1:]))
    ws = ws[:-1] + (ws[-1] * scale * math.sqrt(widths[-2]),)
    bs = tuple(rng.normal(0, 0.3, b) for b in widths[1:])
    return ClosedLoop(A, B, _lqr(A, B), Network.from_layers(ws, bs, act))


def random_boxes(seed: int, count: int, lo_w=1e-3, hi_w=0.3, centre=0.9):
    rng = np.random.default_rng(seed + 1000)
    c = rng.uniform(-centre, centre, (count, 2))
    w = np.exp(rng.uniform(np.log(lo_w), np.log(hi_w), (count, 2)))
    return c - w / 2, c + w / 2


def sample_in(lo, hi, k, seed):
    """Corners plus k uniform points per box: shape (B, 4 + k, 2)."""
    rng = np.random.default_rng(seed + 2000)
    corners = np.stack([np.stack([np.where(bits[0], hi[:, 0], lo[:, 0]), np.where(bits[1], hi[:, 1], lo[:, 1])], -1)
                        for bits in ((0, 0), (0, 1), (1, 0), (1, 1))], 1)
    pts = lo[:, None, :] + rng.random((len(lo), k, 2)) * (hi - lo)[:, None, :]
    return np.concatenate([corners, pts], 1)


def pgd_max(objective, lo, hi, x_start, steps=25):
    """Projected signed-gradient ascent of objective(x) (B,) -> (B,) inside the boxes; returns the best values."""
    lo_t, hi_t = torch.as_tensor(lo), torch.as_tensor(hi)
    x = torch.as_tensor(x_start).clone()
    best = torch.full((len(lo),), -math.inf, dtype=torch.float64)
    step = (hi_t - lo_t) / 10
    for s in range(steps + 1):
        xg = x.clone().requires_grad_(True)
        v = objective(xg)
        best = torch.maximum(best, v.detach())
        if s == steps:
            break
        (g,) = torch.autograd.grad(v.sum(), xg)
        with torch.no_grad():
            x = torch.minimum(torch.maximum(x + step * torch.sign(g), lo_t), hi_t)
        if s % 8 == 7:
            step = step / 2
    return best


# ----------------------------------------------------------------------------- relaxations
def _check_relaxation(name, lower, upper, k_samples=257):
    l, u = torch.as_tensor(lower), torch.as_tensor(upper)
    k, bl, bu = activation_relaxation(name, l, u)
    s = torch.linspace(0, 1, k_samples, dtype=torch.float64)
    z = l[:, None] + (u - l)[:, None] * s[None, :]
    z = torch.minimum(z, u[:, None])
    f = torch.tanh(z) if name == "tanh" else torch.relu(z)
    g = f - k[:, None] * z
    # soundness: k z + b_l <= σ(z) <= k z + b_u at every sample (no tolerance)
    assert torch.all(g >= bl[:, None]), (g - bl[:, None]).min()
    assert torch.all(g <= bu[:, None]), (g - bu[:, None]).max()
    # tightness: the offsets are the exact extrema of g (g is 2-Lipschitz; sampling error ≤ spacing)
    spacing = (u - l) / (k_samples - 1)
    assert torch.all(bu - g.max(1).values <= 2 * spacing + 1e-12)
    assert torch.all(g.min(1).values - bl <= 2 * spacing + 1e-12)
    return k, bl, bu


@pytest.mark.parametrize("name", ["tanh", "relu"])
def test_relaxation_is_sound_and_tight_by_dense_sampling(name):
    rng = np.random.default_rng(3)
    n = 4000
    centre = rng.normal(0, 1, n) * rng.choice([0.01, 1.0, 5.0, 30.0], n)
    width = rng.choice([0.0, 1e-12, 1e-7, 1e-3, 0.3, 2.0, 10.0, 60.0], n)
    lower = centre - width * rng.random(n)
    upper = lower + width
    lower = np.concatenate([lower, [0.0, -1.0, -3.0, 0.0, -20.0, 19.0]])
    upper = np.concatenate([upper, [0.0, 1.0, 2.0, 5.0, -19.0, 20.0]])
    _check_relaxation(name, lower, upper)


@given(st.floats(-40, 40), st.floats(0, 50))
def test_tanh_relaxation_property(centre, width):
    _check_relaxation("tanh", np.array([centre - width / 2]), np.array([centre + width / 2]), k_samples=2049)


def test_relaxation_toy_values():
    # tanh on [0, 1] (closed form): chord slope k = tanh 1 through (0, 0) and (1, tanh 1), so
    # b_l = 0; the parallel tangent touches at z* = atanh(sqrt(1 − k)), b_u = tanh z* − k z*.
    k, bl, bu = activation_relaxation("tanh", torch.tensor([0.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64))
    k_ref = math.tanh(1.0)
    z = math.atanh(math.sqrt(1 - k_ref))
    assert k.item() == pytest.approx(k_ref, rel=1e-15)
    assert bl.item() == pytest.approx(0.0, abs=1e-14) and bl.item() <= 0
    assert bu.item() == pytest.approx(math.tanh(z) - k_ref * z, rel=1e-12)
    # ReLU on [−1, 3]: k = 3/4, ReLU(z) − 3z/4 ranges over [0, 3/4] (at z = 0 and z ∈ {−1, 3})
    k, bl, bu = activation_relaxation("relu", torch.tensor([-1.0], dtype=torch.float64), torch.tensor([3.0], dtype=torch.float64))
    assert (k.item(), bl.item(), bu.item()) == pytest.approx((0.75, 0.0, 0.75), abs=1e-14)


# ----------------------------------------------------------------------------- toy closed loops
def _scalar_loop(act_weight: float, K: float, A: float = 1.0):
    """x⁺ = A x + (K x + w2 tanh(w1 x)), a 1-1-1 network."""
    net = Network.from_layers((np.array([[1.0]]), np.array([[act_weight]])), (np.zeros(1), np.zeros(1)), "tanh")
    return ClosedLoop(np.array([[A]]), np.array([[1.0]]), np.array([[K]]), net)


def test_linear_loop_bounds_are_exact():
    # x⁺ = 0.5 x from [1, 2] (zero residual): x_t ∈ [0.5^t, 2·0.5^t] exactly (closed form)
    loop = _scalar_loop(0.0, -0.5)
    boxes = as_boxes([[1.0]], [[2.0]])
    for method in ("crown", "ibp"):
        rb = bound_rollout(loop, boxes, 5, method=method)
        ref_lo = np.array([0.5**t for t in range(6)])
        np.testing.assert_allclose(rb.states.lower[0, :, 0].numpy(), ref_lo, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(rb.states.upper[0, :, 0].numpy(), 2 * ref_lo, rtol=1e-8, atol=1e-8)
        assert np.all(rb.states.lower[0, :, 0].numpy() <= ref_lo)
        assert np.all(rb.states.upper[0, :, 0].numpy() >= 2 * ref_lo)


def test_affine_residual_gives_exact_bounds():
    # No hidden layer: φ(x) = W x + b, the loop is affine and x_T's range over a box is spanned by
    # the box's corners (reference: the corners' rollouts).
    rng = np.random.default_rng(4)
    net = Network.from_layers((rng.normal(0, 0.3, (1, 2)),), (np.array([0.05]),))
    loop = ClosedLoop(A_DI, B_DI, _lqr(A_DI, B_DI), net)
    lo, hi = random_boxes(4, 30)
    rb = bound_rollout(loop, as_boxes(lo, hi), 7, method="crown")
    corners = sample_in(lo, hi, 0, 4)
    xs, _ = simulate(loop, torch.as_tensor(corners.reshape(-1, 2)), 7)
    xs = xs.reshape(len(lo), 4, 8, 2)
    torch.testing.assert_close(rb.states.upper, xs.amax(1), rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(rb.states.lower, xs.amin(1), rtol=1e-8, atol=1e-9)


def test_one_tanh_step_toy():
    # x_1 = tanh(x_0) on [0, 1] (A = 0, K = 0): IBP is exact, [0, tanh 1]; CROWN's bound is the
    # relaxation concretised: [0 + b_l, k·1 + b_u] with k = tanh 1, b_u = tanh z* − k z* (closed form).
    loop = _scalar_loop(1.0, 0.0, A=0.0)
    boxes = as_boxes([[0.0]], [[1.0]])
    ibp = bound_rollout(loop, boxes, 1, method="ibp")
    crown = bound_rollout(loop, boxes, 1, method="crown")
    k = math.tanh(1.0)
    z = math.atanh(math.sqrt(1 - k))
    assert ibp.states.upper[0, 1, 0].item() == pytest.approx(math.tanh(1.0), rel=1e-8)
    assert ibp.states.lower[0, 1, 0].item() == pytest.approx(0.0, abs=1e-8)
    assert crown.states.upper[0, 1, 0].item() == pytest.approx(k + math.tanh(z) - k * z, rel=1e-8)
    assert crown.states.lower[0, 1, 0].item() == pytest.approx(0.0, abs=1e-8)


# ----------------------------------------------------------------------------- soundness
@pytest.mark.parametrize("seed,act,m", [(0, "tanh", 1), (1, "tanh", 1), (2, "relu", 1), (3, "relu", 1), (4, "tanh", 2)])
def test_rollout_bounds_hold_against_sampling_and_search(seed, act, m):
    T = 8 if m == 1 else 10  # m = 2, T = 10: 322 generators, the sorted support function is used
    loop = random_loop(seed, act, scale=0.6, m=m)
    lo, hi = random_boxes(seed, 500)
    boxes = as_boxes(lo, hi)
    rng = np.random.default_rng(seed)
    H = rng.normal(size=(3, 2))
    Hu = rng.normal(size=(2, m))
    P = np.array([[2.0, 0.5], [0.5, 1.0]])
    crown = bound_rollout(loop, boxes, T, method="crown", state_rows=H, input_rows=Hu, terminal_P=P, value_change_P=P)
    ibp = bound_rollout(loop, boxes, T, method="ibp", state_rows=H, input_rows=Hu, terminal_P=P)
    x0 = sample_in(lo, hi, 60, seed)
    S = x0.shape[1]
    xs, us = simulate(loop, torch.as_tensor(x0.reshape(-1, 2)), T)
    xs, us = xs.reshape(len(lo), S, T + 1, 2), us.reshape(len(lo), S, T, m)
    Pt, Ht, Hut = (torch.as_tensor(a) for a in (P, H, Hu))
    for rb in (crown, ibp):
        assert torch.all(rb.states.lower[:, None] <= xs) and torch.all(xs <= rb.states.upper[:, None])
        assert torch.all(rb.inputs.lower[:, None] <= us) and torch.all(us <= rb.inputs.upper[:, None])
        hx = xs @ Ht.T
        assert torch.all(rb.state_rows.lower[:, None] <= hx) and torch.all(hx <= rb.state_rows.upper[:, None])
        hu = us @ Hut.T
        assert torch.all(rb.input_rows.lower[:, None] <= hu) and torch.all(hu <= rb.input_rows.upper[:, None])
        VT = torch.einsum("bsi,ij,bsj->bs", xs[:, :, -1], Pt, xs[:, :, -1])
        assert torch.all(VT <= rb.terminal_upper[:, None])
    V0 = torch.einsum("bsi,ij,bsj->bs", xs[:, :, 0], Pt, xs[:, :, 0])
    V1 = torch.einsum("bsi,ij,bsj->bs", xs[:, :, 1], Pt, xs[:, :, 1])
    assert torch.all(V1 - V0 <= crown.value_change_upper[:, None])
    # affine bounds in x_0, evaluated at the samples
    for lin, vals in ((crown.state_linear, xs), (crown.input_linear, us)):
        for j in range(S):
            ev = lin.evaluate(torch.as_tensor(x0[:, j]))
            assert torch.all(ev.lower <= vals[:, j]) and torch.all(vals[:, j] <= ev.upper)
        conc = lin.concretize()
        assert torch.all(conc.lower <= vals.amin(1)) and torch.all(vals.amax(1) <= conc.upper)

    # projected-gradient search for the extremes of x_T, u_{T−1}, V(x_T) and ΔV inside each box
    start = torch.as_tensor(x0[:, 4 + rng.integers(60)])

    def xT(i, sign):
        return lambda x: sign * simulate(loop, x, T)[0][:, -1, i]

    def uT(i, sign):
        return lambda x: sign * simulate(loop, x, T)[1][:, -1, i]

    for i in range(2):
        for sign, bound in ((1.0, crown.states.upper[:, -1, i]), (-1.0, -crown.states.lower[:, -1, i])):
            assert torch.all(pgd_max(xT(i, sign), lo, hi, start) <= bound)
    for i in range(m):
        for sign, bound in ((1.0, crown.inputs.upper[:, -1, i]), (-1.0, -crown.inputs.lower[:, -1, i])):
            assert torch.all(pgd_max(uT(i, sign), lo, hi, start) <= bound)

    def vT(x):
        s_ = simulate(loop, x, T)[0][:, -1]
        return torch.einsum("bi,ij,bj->b", s_, Pt, s_)

    def dV(x):
        s_ = simulate(loop, x, 1)[0]
        return torch.einsum("bi,ij,bj->b", s_[:, 1], Pt, s_[:, 1]) - torch.einsum("bi,ij,bj->b", s_[:, 0], Pt, s_[:, 0])

    assert torch.all(pgd_max(vT, lo, hi, start) <= crown.terminal_upper)
    assert torch.all(pgd_max(dV, lo, hi, start) <= crown.value_change_upper)


def test_crown_is_close_to_sampling_and_ibp_is_not():
    # Trained-like residual (final layer std 0.1, as after training): CROWN within 15% of the
    # sampled range at T = 10 (median), IBP more than twice as wide (measured reference: sampling).
    loop = random_loop(7, "tanh", scale=0.1, hidden=(32, 32))
    lo, hi = random_boxes(7, 200, lo_w=0.02, hi_w=0.04, centre=0.7)
    T = 10
    crown = bound_rollout(loop, as_boxes(lo, hi), T, method="crown")
    ibp = bound_rollout(loop, as_boxes(lo, hi), T, method="ibp")
    x0 = sample_in(lo, hi, 200, 7)
    xs, _ = simulate(loop, torch.as_tensor(x0.reshape(-1, 2)), T)
    xs = xs.reshape(len(lo), -1, T + 1, 2)
    w_samp = xs[:, :, -1].amax(1) - xs[:, :, -1].amin(1)
    assert (crown.states.width[:, -1] / w_samp).median() < 1.15
    assert (ibp.states.width[:, -1] / w_samp).median() > 2.0


def test_support_function_sorted_path_equals_direct_sum(monkeypatch):
    rng = np.random.default_rng(11)
    G = rng.normal(size=(6, 2, 700))
    G[:, :, :50] = 0.0  # zero generators
    G[:, :, 50:100] = G[:, :, 100:150] * rng.uniform(-2, 2, (6, 1, 50))  # parallel pairs
    G = torch.as_tensor(G)
    A = torch.as_tensor(rng.normal(size=(6, 40, 2)))
    A[:, 0] = torch.tensor([1.0, 0.0])
    A[:, 1] = torch.tensor([0.0, -1.0])
    A[:, 2] = 0.0
    A[:, 3] = G[:, :, 120]  # along a generator
    sup = bnd._Support(G)
    assert sup.sorted
    ref = torch.bmm(A, G).abs().sum(-1)  # the direct sum (reference)
    got = sup(A)
    assert torch.all(got >= ref)
    assert torch.all(got - ref <= 1e-11 * (1 + ref))


def test_sorted_and_direct_support_give_the_same_rollout_bounds(monkeypatch):
    loop = random_loop(5, "tanh", scale=0.6, m=2)
    lo, hi = random_boxes(5, 40)
    a = bound_rollout(loop, as_boxes(lo, hi), 10, method="crown")
    monkeypatch.setattr(bnd, "_SORT_MIN_GENERATORS", 10**9)
    b = bound_rollout(loop, as_boxes(lo, hi), 10, method="crown")
    torch.testing.assert_close(a.states.upper, b.states.upper, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(a.states.lower, b.states.lower, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- quadratics
def test_zonotope_max_quadratic_matches_brute_force():
    rng = np.random.default_rng(5)
    P = np.array([[3.0, 1.0], [1.0, 2.0]])
    for N in (0, 1, 2, 5, 11):
        c = rng.normal(size=(30, 2))
        G = rng.normal(size=(30, 2, N)) * rng.uniform(0.01, 1.0, (30, 1, N))
        signs = ((np.arange(2**N)[:, None] >> np.arange(N)) & 1) * 2 - 1  # every vertex of the cube
        pts = c[:, None, :] + np.einsum("bin,kn->bki", G, signs)
        brute = np.einsum("bki,ij,bkj->bk", pts, P, pts).max(1)
        got = zonotope_max_quadratic(torch.as_tensor(c), torch.as_tensor(G), torch.as_tensor(P)).numpy()
        assert np.all(got >= brute)
        np.testing.assert_allclose(got, brute, rtol=1e-8, atol=1e-9)
    # n = 3: the interval-hull bound is sound (≥ the brute-force maximum)
    P3 = np.diag([1.0, 2.0, 3.0])
    c = rng.normal(size=(20, 3))
    G = rng.normal(size=(20, 3, 6))
    signs = ((np.arange(64)[:, None] >> np.arange(6)) & 1) * 2 - 1
    pts = c[:, None, :] + np.einsum("bin,kn->bki", G, signs)
    brute = np.einsum("bki,ij,bkj->bk", pts, P3, pts).max(1)
    assert np.all(zonotope_max_quadratic(torch.as_tensor(c), torch.as_tensor(G), torch.as_tensor(P3)).numpy() >= brute)


def test_box_max_quadratic_interval_arithmetic_path_is_sound():
    # n = 13 > 12: interval arithmetic instead of the 2^n corners; reference: the corners of a
    # random 13-dimensional box sampled (the maximum of a convex function is at a corner)
    rng = np.random.default_rng(6)
    n = 13
    M = rng.normal(size=(n, n))
    P = M @ M.T
    lo = rng.normal(size=(10, n))
    hi = lo + rng.uniform(0, 1, (10, n))
    bits = rng.integers(0, 2, (4000, n)).astype(bool)
    corners = np.where(bits[None], hi[:, None, :], lo[:, None, :])
    sampled = np.einsum("bki,ij,bkj->bk", corners, P, corners).max(1)
    got = box_max_quadratic(torch.as_tensor(lo), torch.as_tensor(hi), torch.as_tensor(P)).numpy()
    assert np.all(got >= sampled)


@pytest.mark.parametrize("batched", [False, True])
def test_interval_affine_with_interval_weights_holds_for_samples(batched):
    # W ∈ W_c ± W_r, b ∈ b_c ± b_r, x ∈ box: every sampled W x + b lies in the result (reference: sampling)
    rng = np.random.default_rng(9)
    B, o, i = 20, 5, 4
    Wc = rng.normal(size=(B, o, i) if batched else (o, i))
    Wr = rng.uniform(0, 0.3, Wc.shape)
    bc, br = rng.normal(size=(B, o) if batched else (o,)), rng.uniform(0, 0.2, (B, o) if batched else (o,))
    xl = rng.normal(size=(B, i))
    xh = xl + rng.uniform(0, 0.5, (B, i))
    out = interval_affine(*(torch.as_tensor(a) for a in (Wc, bc)), as_boxes(xl, xh), torch.as_tensor(Wr), torch.as_tensor(br))
    for _ in range(300):
        W = Wc + Wr * rng.uniform(-1, 1, Wc.shape)
        b = bc + br * rng.uniform(-1, 1, bc.shape)
        x = xl + (xh - xl) * rng.random((B, i))
        y = np.einsum("boi,bi->bo", W, x) if batched else x @ W.T
        y = y + b
        assert np.all(out.lower.numpy() <= y + 1e-12) and np.all(y <= out.upper.numpy() + 1e-12)


# ----------------------------------------------------------------------------- networks and parameter boxes
def test_the_loop_policy_and_module_match_the_task_rollout():
    from scpo.tasks import DoubleIntegratorConfig, DoubleIntegratorTask

    task = DoubleIntegratorTask(DoubleIntegratorConfig(grid=8, horizon=6, hidden=(8, 8), n_samples=16))
    theta = task.theta0 + np.random.default_rng(0).normal(0, 0.2, task.dim)
    loop = closed_loop(task.problem, task.structure, theta)
    assert loop.network.structure == task.structure and np.array_equal(loop.network.theta, theta)
    # the loop read from the policy module is the same loop
    other = closed_loop_from_policy(task.problem, task.policy_at(theta))
    assert np.array_equal(other.network.theta, theta) and np.array_equal(other.K, loop.K)
    x0 = task.grid_states
    xs, us = simulate(loop, x0, 6)
    ro = task.rollout(theta[None], x0)  # reference: scpo.systems.rollout with the task's batched policy
    torch.testing.assert_close(xs, ro.states[0], rtol=0, atol=1e-13)
    torch.testing.assert_close(us, ro.inputs[0], rtol=0, atol=1e-13)
    mod = closed_loop_module(loop, 6)
    out = mod(torch.as_tensor(x0))
    ref = torch.cat([xs[:, 1:].reshape(len(x0), -1), us.reshape(len(x0), -1)], 1)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-13)


def test_network_uses_the_one_flat_layout():
    mlp = MLP(2, (5, 3), 1, "tanh", seed=4)
    net = network_from_module(mlp)
    assert net.structure == mlp.structure
    for (W, b), (Wn, bn) in zip(mlp.structure.unflatten_numpy(net.theta), zip(net.weights, net.biases)):
        assert np.array_equal(W, Wn) and np.array_equal(b, bn)
    again = Network.from_layers(net.weights, net.biases, "tanh")
    assert np.array_equal(again.theta, net.theta)
    with pytest.raises(ShapeError, match="chain"):
        Network.from_layers([np.zeros((3, 2)), np.zeros((1, 4))], [np.zeros(3), np.zeros(1)])


def test_ibp_with_a_parameter_box_holds_for_sampled_parameters():
    mlp = MLP(2, (8, 8), 1, "tanh", seed=3)
    with torch.no_grad():
        mlp.final_layer.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    net = network_from_module(mlp)
    theta = net.flat()
    tlo, thi = parameter_box(theta, 0.02)
    lo, hi = random_boxes(2, 50, lo_w=0.01, hi_w=0.2)
    out = ibp_network(net, as_boxes(lo, hi), theta_box=(tlo, thi))
    rng = np.random.default_rng(0)
    x = sample_in(lo, hi, 10, 2)
    for _ in range(40):
        th = tlo + rng.random(theta.size) * (thi - tlo)
        pick = rng.random(theta.size)
        th = np.where(pick < 0.2, tlo, np.where(pick > 0.8, thi, th))  # include faces of the box
        layers = net.structure.unflatten_numpy(th)
        h = torch.as_tensor(x)
        for j, (W, b) in enumerate(layers):
            h = h @ torch.as_tensor(W).T + torch.as_tensor(b)
            if j < 2:
                h = torch.tanh(h)
        assert torch.all(out.lower[:, None] <= h) and torch.all(h <= out.upper[:, None])
    # closed loop with a parameter box: rollouts of sampled θ stay inside
    loop = ClosedLoop(A_DI, B_DI, _lqr(A_DI, B_DI), net)
    rb = bound_rollout(loop, as_boxes(lo, hi), 3, method="ibp", theta_box=(tlo, thi))
    for _ in range(10):
        th = tlo + rng.random(theta.size) * (thi - tlo)
        xs, us = simulate(ClosedLoop(A_DI, B_DI, loop.K, net.with_theta(th)), x.reshape(-1, 2), 3)
        xs = xs.reshape(len(lo), -1, 4, 2)
        assert torch.all(rb.states.lower[:, None] <= xs) and torch.all(xs <= rb.states.upper[:, None])


# ----------------------------------------------------------------------------- cross-checks with bound-propagation 0.4.7
# bound-propagation scripts its kernels with torch.jit, which torch 2.13 marks as deprecated
BP_WARNINGS = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _bp():
    try:
        import bound_propagation
    except Exception as exc:  # noqa: BLE001 - any import failure means the reference is unavailable
        pytest.skip(f"bound-propagation (test-only reference library) is not importable: {exc}")
    return bound_propagation


def _bp_step(bp, loop: ClosedLoop, out: str = "state"):
    layers = []
    last = len(loop.network.weights) - 1
    for j, (W, b) in enumerate(zip(loop.network.weights, loop.network.biases)):
        layers.append(bp.FixedLinear(torch.tensor(W), torch.tensor(b)))
        if j < last:
            layers.append(loop.network.activation.module())
    head = np.hstack([loop.A_cl, loop.B]) if out == "state" else np.hstack([loop.K, np.eye(loop.m)])
    return nn.Sequential(bp.Parallel(bp.FixedLinear(torch.eye(loop.n, dtype=torch.float64)), nn.Sequential(*layers)),
                         bp.FixedLinear(torch.tensor(head)))


def _bp_bounds(bp, loop, lo, hi, t, out="state", method="crown"):
    steps = [_bp_step(bp, loop) for _ in range(t)] + ([_bp_step(bp, loop, "input")] if out == "input" else [])
    net = bp.BoundModelFactory().build(nn.Sequential(*steps))
    region = bp.HyperRectangle(torch.as_tensor(lo), torch.as_tensor(hi))
    ib = net.crown(region).concretize() if method == "crown" else net.ibp(region)
    return ib.lower, ib.upper


@BP_WARNINGS
def test_crown_no_looser_than_bound_propagation_on_a_trained_like_loop():
    bp = _bp()
    loop = random_loop(8, "tanh", scale=0.1, hidden=(32, 32))  # trained-like residual
    lo, hi = random_boxes(8, 80, lo_w=0.04, hi_w=0.04, centre=0.8)  # grid cells of the 50×50 grid
    T = 10
    ours = bound_rollout(loop, as_boxes(lo, hi), T, method="crown")
    x0 = sample_in(lo, hi, 30, 8)
    xs, _ = simulate(loop, torch.as_tensor(x0.reshape(-1, 2)), T)
    xs = xs.reshape(len(lo), -1, T + 1, 2)
    for t in (1, 5, 10):
        bl, bu = _bp_bounds(bp, loop, lo, hi, t)
        assert torch.all(bl[:, None] <= xs[:, :, t] + 1e-12) and torch.all(xs[:, :, t] <= bu[:, None] + 1e-12)
        # every box, every coordinate: our width ≤ 1.01 × theirs
        assert torch.all(ours.states.width[:, t] <= 1.01 * (bu - bl) + 1e-9)
    bl, bu = _bp_bounds(bp, loop, lo, hi, T - 1, out="input")
    assert torch.all(ours.inputs.width[:, T - 1] <= 1.01 * (bu - bl) + 1e-9)


@BP_WARNINGS
def test_crown_matches_bound_propagation_in_aggregate_on_a_strong_residual():
    # A residual as strong as the backup (final layer std 0.6) and wide boxes: per box the
    # parallel-chord and the adaptive relaxation each win somewhere; in total ours is no looser than 1%.
    bp = _bp()
    loop = random_loop(9, "tanh", scale=0.6, hidden=(16, 16))
    lo, hi = random_boxes(9, 120, lo_w=0.05, hi_w=0.2, centre=0.8)
    ours = bound_rollout(loop, as_boxes(lo, hi), 5, method="crown")
    for t in (1, 3, 5):
        bl, bu = _bp_bounds(bp, loop, lo, hi, t)
        ratio = ours.states.width[:, t] / (bu - bl)
        assert ours.states.width[:, t].sum() <= 1.01 * (bu - bl).sum()
        assert ratio.median() <= 1.01


@BP_WARNINGS
def test_ibp_equals_bound_propagation_ibp():
    bp = _bp()
    loop = random_loop(10, "relu", scale=0.5)
    lo, hi = random_boxes(10, 60)
    ours = bound_rollout(loop, as_boxes(lo, hi), 6, method="ibp")
    for t in (1, 6):
        bl, bu = _bp_bounds(bp, loop, lo, hi, t, method="ibp")
        # ours contains theirs (outward margin) and differs by no more than the margin
        assert torch.all(ours.states.lower[:, t] <= bl + 1e-12 * bl.abs()) and torch.all(ours.states.upper[:, t] >= bu - 1e-12 * bu.abs())
        torch.testing.assert_close(ours.states.lower[:, t], bl, rtol=1e-6, atol=1e-8)
        torch.testing.assert_close(ours.states.upper[:, t], bu, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------- optional auto_LiRPA backend
def _has_auto_lirpa() -> bool:
    try:
        import auto_LiRPA  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


@pytest.mark.skipif(not _has_auto_lirpa(), reason="auto_LiRPA is not installed (optional backend; install it from its source repository)")
def test_auto_lirpa_backend_is_sound_and_agrees_with_ours():
    loop = random_loop(12, "tanh", scale=0.3)
    lo, hi = random_boxes(12, 20, lo_w=0.02, hi_w=0.05)
    theirs = auto_lirpa_rollout_bounds(loop, as_boxes(lo, hi), 5, method="CROWN")
    ours = bound_rollout(loop, as_boxes(lo, hi), 5, method="crown")
    x0 = sample_in(lo, hi, 30, 12)
    xs, _ = simulate(loop, torch.as_tensor(x0.reshape(-1, 2)), 5)
    xs = xs.reshape(len(lo), -1, 6, 2)
    assert torch.all(theirs.states.lower[:, None] <= xs) and torch.all(xs <= theirs.states.upper[:, None])
    assert torch.all(ours.states.width <= 1.01 * theirs.states.width + 1e-9)


def test_auto_lirpa_backend_runs_in_float64_and_restores_the_default_dtype(monkeypatch):
    # issue 15, item 11: upstream auto_LiRPA fails unless torch's default dtype is float64 during the
    # call. A stand-in package records the default dtype inside the call and returns the IBP bounds of
    # the traced module (reference: our own IBP of the same loop).
    import sys
    import types

    loop = random_loop(12, "tanh", scale=0.3)
    lo, hi = random_boxes(12, 5, lo_w=0.02, hi_w=0.05)
    seen = {}

    class BoundedModule:
        def __init__(self, module, example, device):
            self.module = module
            seen["init"] = torch.get_default_dtype()

        def compute_bounds(self, x, method):
            seen["call"] = torch.get_default_dtype()
            ours = bound_rollout(loop, as_boxes(lo, hi), 2, method="ibp", margin=Margin(rel=0.0, abs=0.0))
            b = lo.shape[0]
            lb = torch.cat([ours.states.lower[:, 1:].reshape(b, -1), ours.inputs.lower.reshape(b, -1)], 1)
            ub = torch.cat([ours.states.upper[:, 1:].reshape(b, -1), ours.inputs.upper.reshape(b, -1)], 1)
            return lb.float(), ub.float()

    fake = types.ModuleType("auto_LiRPA")
    fake.BoundedModule = BoundedModule
    fake.BoundedTensor = lambda c, p: c
    pert = types.ModuleType("auto_LiRPA.perturbations")
    pert.PerturbationLpNorm = lambda **kw: kw
    monkeypatch.setitem(sys.modules, "auto_LiRPA", fake)
    monkeypatch.setitem(sys.modules, "auto_LiRPA.perturbations", pert)
    before = torch.get_default_dtype()
    out = auto_lirpa_rollout_bounds(loop, as_boxes(lo, hi), 2, method="IBP")
    assert seen == {"init": torch.float64, "call": torch.float64}
    assert torch.get_default_dtype() == before
    assert out.states.lower.dtype == torch.float64 and out.method == "auto_LiRPA:IBP"
    torch.testing.assert_close(out.states.lower[:, 0], torch.as_tensor(lo))


@pytest.mark.skipif(_has_auto_lirpa(), reason="auto_LiRPA is installed; the missing-backend message cannot be checked")
def test_auto_lirpa_backend_absent_gives_a_clear_error():
    loop = random_loop(12, "tanh")
    with pytest.raises(UnsupportedError, match="auto_LiRPA is not installed"):
        auto_lirpa_rollout_bounds(loop, as_boxes([[0.0, 0.0]], [[0.1, 0.1]]), 3)


# ----------------------------------------------------------------------------- bad input
def test_bad_boxes_are_rejected_with_clear_messages():
    with pytest.raises(InvalidInputError, match=r"lower <= upper.*box 1, coordinate 0"):
        as_boxes([[0.0, 0.0], [0.5, 0.0]], [[1.0, 1.0], [0.4, 1.0]])
    with pytest.raises(NonFiniteError, match="NaN/inf"):
        as_boxes([[np.nan, 0.0]], [[1.0, 1.0]])
    with pytest.raises(NonFiniteError):
        as_boxes([[0.0, 0.0]], [[np.inf, 1.0]])
    with pytest.raises(ShapeError, match="shape"):
        as_boxes([[0.0, 0.0]], [[1.0, 1.0, 1.0]])
    with pytest.raises(ShapeError, match=r"expected shape \(B, 2\)"):
        bound_rollout(random_loop(0), IntervalBounds(torch.zeros(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64)), 2)
    with pytest.raises(InvalidInputError, match="lower <= upper"):
        bound_rollout(random_loop(0), IntervalBounds(torch.ones(1, 2, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64)), 2)
    with pytest.raises(InvalidInputError, match="horizon"):
        bound_rollout(random_loop(0), as_boxes([[0.0, 0.0]], [[0.1, 0.1]]), -1)
    with pytest.raises(InvalidInputError, match="at least one box"):
        bound_rollout(random_loop(0), as_boxes(np.zeros((0, 2)), np.zeros((0, 2))), 2)


def test_parameter_box_radius_must_be_positive():
    for r in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(InvalidInputError, match="radius"):
            parameter_box(np.zeros(3), r)
    with pytest.raises(InvalidInputError, match="radius"):
        parameter_box(np.zeros(3), np.array([0.1, 0.0, 0.1]))


def test_unsupported_layers_are_named():
    with pytest.raises(UnsupportedError, match="Sigmoid"):
        network_from_module(nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 1)))
    with pytest.raises(UnsupportedError, match="Conv1d"):
        network_from_module(nn.Sequential(nn.Conv1d(1, 1, 1)))
    with pytest.raises(UnsupportedError, match="GRU"):
        network_from_module(nn.GRU(2, 2))
    pol = ResidualPolicy(LinearBackup(np.array([[-1.0, -1.0]])), MLP(2, (4,), 1), switch_P=np.eye(2), switch_level=0.1)
    system = LinearSystem(A=A_DI, B=B_DI, Hx=np.vstack([np.eye(2), -np.eye(2)]), hx=np.ones(4), Hu=np.array([[1.0], [-1.0]]), hu=np.ones(2))
    problem = ClosedLoopProblem(system=system, K=np.array([[-1.0, -1.0]]), horizon=3)
    with pytest.raises(UnsupportedError, match="switch"):
        closed_loop_from_policy(problem, pol)
    with pytest.raises(UnsupportedError, match="theta_box"):
        bound_rollout(random_loop(0), as_boxes([[0.0, 0.0]], [[0.1, 0.1]]), 2, method="crown", theta_box=(np.zeros(1), np.ones(1)))
    with pytest.raises(UnsupportedError, match="'ibp', 'crown'"):
        bound_rollout(random_loop(0), as_boxes([[0.0, 0.0]], [[0.1, 0.1]]), 2, method="deeppoly")


def test_indefinite_terminal_matrix_is_rejected():
    with pytest.raises(InvalidInputError, match="positive semidefinite"):
        bound_rollout(random_loop(0), as_boxes([[0.0, 0.0]], [[0.1, 0.1]]), 2, terminal_P=np.diag([1.0, -1.0]))


def test_margin_is_validated_and_applied():
    with pytest.raises(InvalidInputError, match="margin.rel"):
        Margin(rel=-1.0)
    loop = _scalar_loop(0.0, -0.5)
    wide = bound_rollout(loop, as_boxes([[1.0]], [[2.0]]), 1, margin=Margin(rel=1e-4, abs=0.0))
    # x_1 = 0.5 x_0 ∈ [0.5, 1]; widened by 1e-4·max(|lower|,|upper|) = 1e-4 (closed form)
    assert wide.states.upper[0, 1, 0].item() == pytest.approx(1.0 + 1e-4, rel=1e-9)
    assert wide.states.lower[0, 1, 0].item() == pytest.approx(0.5 - 1e-4, rel=1e-9)
