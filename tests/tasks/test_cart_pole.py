"""The linearised cart-pole: the model against the nonlinear equations it linearises, and the task."""

import numpy as np
import pytest
import scipy.linalg
import torch

from scpo.tasks.cart_pole import CartPoleConfig, CartPoleTask, cart_pole_continuous


def gym_cartpole_rhs(s, F, M=1.0, m=0.1, l=0.5, g=9.8):
    # the equations of Gymnasium's CartPole-v1 (gymnasium/envs/classic_control/cartpole.py)
    x, xd, th, thd = s
    total = M + m
    temp = (F + m * l * thd**2 * np.sin(th)) / total
    thacc = (g * np.sin(th) - np.cos(th) * temp) / (l * (4.0 / 3.0 - m * np.cos(th) ** 2 / total))
    xacc = temp - m * l * thacc * np.cos(th) / total
    return np.array([xd, xacc, thd, thacc])


def test_the_linearisation_is_the_jacobian_of_the_gymnasium_equations_at_upright():
    A, B = cart_pole_continuous()
    h = 1e-6
    J = np.column_stack([(gym_cartpole_rhs(h * e, 0.0) - gym_cartpole_rhs(-h * e, 0.0)) / (2 * h) for e in np.eye(4)])
    Jb = (gym_cartpole_rhs(np.zeros(4), h) - gym_cartpole_rhs(np.zeros(4), -h)) / (2 * h)
    np.testing.assert_allclose(A, J, atol=1e-7)
    np.testing.assert_allclose(B[:, 0], Jb, atol=1e-7)
    assert max(np.linalg.eigvals(A).real) == pytest.approx(np.sqrt(9.8 / (0.5 * (4 / 3 - 0.1 / 1.1))), rel=1e-12)


def test_the_task_discretises_by_zoh_and_its_expert_leaves_the_constraints():
    torch.set_num_threads(1)
    task = CartPoleTask(CartPoleConfig(safety_samples=64, horizon=20, n_samples=32, hidden=(4,)))
    A, B = cart_pole_continuous()
    E = scipy.linalg.expm(np.block([[A, B], [np.zeros((1, 5))]]) * 0.05)  # ZOH by the block exponential
    np.testing.assert_allclose(task.system.A, E[:4, :4], atol=1e-12)
    np.testing.assert_allclose(task.system.B, E[:4, 4:], atol=1e-12)
    assert task.lqr.spectral_radius < 1 and task.safety_states.shape[0] > 0
    X = task.expert_rollout(task.safety_states).states[0].numpy()
    box = np.array([2.4, 2.0, 0.2094, 2.0])
    assert np.mean(np.any(np.abs(X) > box, axis=(1, 2))) > 0.5  # the expert leaves X from most states of S
    assert np.all(task.constraints(task.theta0[None]) <= 0)  # the backup does not
    # S is drawn from the exact 4-D polytope C (the declared region): 64 states inside it, each one
    # kept by the backup's rollouts; reference: a plain numpy loop of u = Kx, the box and X_f
    C = task.declared_region().polytope
    assert task.grid_states.shape == (64, 4) and np.all(C.residual(task.grid_states) <= 0)
    assert task.safety_states.shape == (64, 4) and "exact backward reachable polytope C" in task.report_paragraphs()[0]
    Ad, Bd, K = task.system.A, task.system.B, task.K
    for x in task.safety_states:
        for _ in range(20):
            u = K @ x
            assert abs(u[0]) <= 10.0
            x = Ad @ x + Bd @ u
            assert np.all(np.abs(x) <= box)
        assert x @ task.P @ x <= task.gamma


def test_a_run_written_before_safety_samples_existed_is_rebuilt_with_its_grid():
    # config.json stores every task setting; one without `safety_samples` was written when S was the
    # grid⁴ grid, and rebuilding it must give that grid again (reference: the same settings with
    # safety_samples = 0 given explicitly)
    from scpo.runs.tasks import task_from_config

    torch.set_num_threads(1)
    settings = {"grid": 3, "horizon": 5, "n_samples": 8, "hidden": [4], "region": "grid-cells"}
    old = task_from_config({"task": "cart-pole", "task_config": settings, "train": {"seed": 0}})
    explicit = CartPoleTask(CartPoleConfig(grid=3, horizon=5, n_samples=8, hidden=(4,), region="grid-cells", safety_samples=0))
    np.testing.assert_array_equal(old.grid_states, explicit.grid_states)
    assert old.config.safety_samples == 0 and old.grid_states.shape == (3**4, 4)
