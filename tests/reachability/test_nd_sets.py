"""n-D backward reachable sets: the fixed point, robust sets under an additive disturbance, the 3-D and
4-D tasks' sets against simulation of the backup and LP containment."""

import numpy as np
import pytest
import torch

from scpo.reachability.checks import simulation_margins
from scpo.reachability.exact import ellipsoid_in_polytope
from scpo.reachability.polytope import box, contains, equals
from scpo.reachability.sets import (
    backup_invariant_set,
    backward_reachable_sets,
    closed_loop_constraints,
    closed_loop_pre,
    robust_backup_invariant_set,
)
from scpo.reachability.targets import terminal_targets
from scpo.systems import ClosedLoopProblem, LinearSystem, dlqr, terminal_level
from scpo.tasks.cart_pole import CartPoleConfig, CartPoleTask
from scpo.tasks.chain_integrator import ChainIntegratorConfig, ChainIntegratorTask


def double_integrator():
    A = np.array([[1.0, 0.1], [0.0, 1.0]])
    B = np.array([[0.005], [0.1]])
    s = LinearSystem.with_box_constraints(A, B, [1.0, 1.0], [1.0])
    lqr = dlqr(A, B, np.eye(2), np.eye(1))
    return s, lqr.K, lqr.P, terminal_level(lqr.P, lqr.K, s.Hx, s.hx, s.Hu, s.hu) * (1 - 1e-9)


def test_the_fixed_point_ends_the_iteration_and_matches_the_full_recursion():
    s, K, P, gamma = double_integrator()
    T_in = terminal_targets(s, K, P, gamma, directions=16)[0].polytope
    fast = backward_reachable_sets(T_in, s, 80, K=K)
    assert fast.fixed_point is not None and fast.fixed_point < 80
    f = fast.fixed_point
    assert all(fast.sets[k] is fast.sets[f] for k in range(f, 81)) and all(t == 0.0 for t in fast.seconds[f + 1:])
    slow = backward_reachable_sets(T_in, s, f + 3, K=K, stop_at_fixed_point=False)
    assert slow.fixed_point is None
    for k in range(f + 4):
        assert equals(fast.sets[k], slow.sets[k])
    # the fixed point is the backup's maximal positively invariant set (T_in ⊆ O_∞ reached in finitely many steps)
    assert equals(fast.sets[f], backup_invariant_set(s, K).polytope, tol=1e-6)


def test_robust_invariant_set_is_never_left_under_sampled_disturbances():
    s, K, P, gamma = double_integrator()
    W = box([-0.01, -0.02], [0.01, 0.02])
    inv = robust_backup_invariant_set(s, K, W)
    O = inv.polytope
    assert inv.converged and inv.kind == "robust positively invariant"
    assert contains(backup_invariant_set(s, K).polytope, O)  # robust ⊆ nominal
    rng = np.random.default_rng(0)
    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    x = rng.uniform(lo, hi, (60_000, 2))
    x = x[O.contains_points(x)][:10_000]
    assert x.shape[0] == 10_000
    Acl = s.A + s.B @ K
    Xcl = closed_loop_constraints(s, K)
    corners = np.array([[-0.01, -0.02], [-0.01, 0.02], [0.01, -0.02], [0.01, 0.02]])
    for t in range(60):
        # half the sequences take random vertices of W (the worst case), half uniform points of W
        w = np.where(rng.random((x.shape[0], 1)) < 0.5, corners[rng.integers(0, 4, x.shape[0])],
                     rng.uniform([-0.01, -0.02], [0.01, 0.02], (x.shape[0], 2)))
        x = x @ Acl.T + w
        assert np.all(O.residual(x) <= 1e-9), f"a disturbed trajectory left the robust invariant set at t = {t + 1}"
        assert np.all(Xcl.residual(x) <= 1e-9)
    # the robust one-step set: every disturbance lands in the target
    T = O
    R1 = closed_loop_pre(T, s, K, disturbance=W)
    pts = rng.uniform(lo, hi, (5000, 2))
    pts = pts[R1.residual(pts) <= -1e-9]
    for wv in corners:
        assert np.all(T.residual(pts @ Acl.T + wv) <= 1e-9)


def test_the_3d_chain_inner_target_is_tight_enough_for_its_one_step_set():
    torch.set_num_threads(1)
    task = ChainIntegratorTask(ChainIntegratorConfig(horizon=3, grid=5, n_samples=8, hidden=(4,)))
    pb = task.problem
    inner, outer = terminal_targets(pb.system, pb.K, pb.P, pb.gamma, directions=32)
    assert all(c.holds for c in inner.claims + outer.claims)
    R1 = closed_loop_pre(inner.polytope, pb.system, pb.K)
    assert ellipsoid_in_polytope(pb.P, pb.gamma, R1)[0]  # X_f ⊆ R_1(T_in), exact


def _cart_pole_sets(horizon):
    torch.set_num_threads(1)
    task = CartPoleTask(CartPoleConfig(horizon=horizon, grid=3, safety_samples=0, n_samples=4, hidden=(4,)))
    pb = task.problem
    inner, _ = terminal_targets(pb.system, pb.K, pb.P, pb.gamma, directions=32)
    return pb, inner.polytope, backward_reachable_sets(inner.polytope, pb.system, horizon, K=pb.K)


def _agreement_4d(horizon, samples):
    pb, T_in, fam = _cart_pole_sets(horizon)
    for k in range(1, horizon + 1):
        assert contains(fam.sets[k], fam.sets[k - 1])  # nested (LP containment), T_in being invariant
    lo, hi = pb.system.state_box()
    x = np.random.default_rng(5).uniform(lo, hi, (samples, 4))
    R = fam.sets[horizon]
    res = R.residual(x)
    margin = simulation_margins(x, pb.system, pb.K, T_in, horizon)
    inside, outside = res <= -1e-9, res >= 1e-9
    assert inside.sum() > 100 and outside.sum() > 100
    assert np.all(margin[inside] >= 0), "a state inside the exact set is not steered into T_in by the backup"
    assert np.all(margin[outside] < 0), "a state outside the exact set is steered into T_in by the backup"


def test_4d_backup_sets_agree_with_simulation_fast():
    _agreement_4d(horizon=4, samples=20_000)


@pytest.mark.slow
def test_4d_backup_sets_agree_with_simulation_from_100000_states():
    _agreement_4d(horizon=30, samples=100_000)
