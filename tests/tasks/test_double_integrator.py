import numpy as np
import pytest
import scipy.linalg
import torch

from scpo.errors import ConfigError
from scpo.tasks import DoubleIntegratorConfig, DoubleIntegratorTask, make_task

SMALL = DoubleIntegratorConfig(grid=12, horizon=30, n_samples=32, hidden=(8,), rows="max")


@pytest.fixture(scope="module")
def task():
    return DoubleIntegratorTask(SMALL, seed=0)


def test_design_numbers(task):
    dt = 0.1
    A = np.array([[1.0, dt], [0.0, 1.0]])
    B = np.array([[dt * dt / 2], [dt]])
    np.testing.assert_array_equal(task.system.A, A)
    np.testing.assert_array_equal(task.system.B, B)
    P = scipy.linalg.solve_discrete_are(A, B, np.eye(2), np.eye(1))
    np.testing.assert_allclose(task.P, P, rtol=1e-12)
    # γ = min_i b_i² / (a_iᵀ P⁻¹ a_i) over |p| ≤ 1, |v| ≤ 1, |Kx| ≤ 1 (DESIGN §5)
    rows = np.vstack([np.eye(2), task.K])
    gamma = min(1.0 / (a @ np.linalg.solve(P, a)) for a in rows)
    assert task.gamma_closed_form == pytest.approx(gamma, rel=1e-12)
    assert task.gamma < task.gamma_closed_form
    assert all(c.holds for c in task.base_claims(task.theta0, task.constraints(task.theta0[None])[0]))


def test_safety_region_is_what_the_backup_certifies(task):
    # independent check with a plain loop: every state kept satisfies every row, every state dropped fails one
    A, B, K, P = task.system.A, task.system.B, task.K, task.P
    for x0, keep in zip(task.grid_states, task.in_safety_region):
        x, ok = x0.copy(), True
        for _ in range(task.config.horizon):
            u = K @ x
            ok &= bool(np.all(np.abs(u) <= 1))
            x = A @ x + B @ u
            ok &= bool(np.all(np.abs(x) <= 1))
        ok &= bool(x @ P @ x <= task.gamma)
        assert ok == keep, x0
    assert 0 < task.safety_states.shape[0] < task.grid_states.shape[0]


def test_theta0_satisfies_every_row_and_equals_the_backup(task):
    g = task.constraints(task.theta0[None])[0]
    assert g.shape == (task.safety_states.shape[0],) and np.all(g <= 0)
    pol = task.policy_at(task.theta0)
    x = torch.as_tensor(task.sample_states)
    with torch.no_grad():
        assert torch.count_nonzero(pol.residual(x)) == 0  # φ_θ0 ≡ 0 exactly
        np.testing.assert_allclose(pol(x).numpy(), task.sample_states @ task.K.T, rtol=1e-15, atol=1e-16)


def test_the_expert_really_violates(task):
    ro = task.expert_rollout(task.safety_states)
    rows = task.rollout_rows(ro)[0].numpy()
    assert np.all(rows.max(axis=-1) > 0)  # from every state of S, the expert breaks a constraint
    assert np.max(ro.states[0, :, :, 0].numpy()) > 1.0  # it leaves |p| ≤ 1


def test_row_modes_layout_and_ordering(task, rng):
    theta = task.theta0 + 0.05 * rng.normal(size=task.dim)
    per = DoubleIntegratorTask(DoubleIntegratorConfig(**{**SMALL.__dict__, "rows": "per-row"}), seed=0)
    lse = DoubleIntegratorTask(DoubleIntegratorConfig(**{**SMALL.__dict__, "rows": "lse"}), seed=0)
    S, T = task.safety_states.shape[0], task.config.horizon
    g_per = per.constraints(theta[None])[0]
    assert g_per.shape == (S * (T * 6 + 1),) and len(per.constraint_labels()) == g_per.size
    g_max = task.constraints(theta[None])[0]
    np.testing.assert_allclose(g_per.reshape(S, -1).max(axis=1), g_max, rtol=1e-14)
    # log-sum-exp is an upper bound of the maximum (the safe direction), on its own grid
    full = task.rollout_rows(task.rollout(theta[None], lse.constraint_states))[0]
    lse_vals = lse.constraints(theta[None])[0]
    assert np.all(lse_vals >= full.max(-1).values.numpy() - 1e-15)


def test_rollout_matches_a_python_loop(task, rng):
    theta = task.theta0 + 0.3 * rng.normal(size=task.dim)
    pol = task.policy_at(theta)
    x0 = task.safety_states[:3]
    ro = task.rollout(theta[None], x0)
    A, B = task.system.A, task.system.B
    for s in range(3):
        x = x0[s].copy()
        for t in range(task.config.horizon):
            with torch.no_grad():
                u = pol(torch.as_tensor(x[None]))[0].numpy()
            np.testing.assert_allclose(ro.inputs[0, s, t].numpy(), u, rtol=1e-12, atol=1e-14)
            x = A @ x + B @ u
            np.testing.assert_allclose(ro.states[0, s, t + 1].numpy(), x, rtol=1e-12, atol=1e-14)


def test_objective_gradient_and_blocks(task, rng):
    theta = task.theta0 + 0.1 * rng.normal(size=task.dim)
    f, grad = task.objective_and_grad(theta)
    u = task.policy_at(theta)(torch.as_tensor(task.sample_states)).detach().numpy()
    assert f == pytest.approx(np.mean((u - task.expert(task.sample_states)) ** 2), rel=1e-12)
    np.testing.assert_allclose(task.block_gradients(theta, 4).sum(0), -grad, atol=1e-14)
    i = int(np.argmax(np.abs(grad)))
    e = np.zeros(task.dim)
    e[i] = 1e-6
    assert grad[i] == pytest.approx((task.objective(theta + e) - task.objective(theta - e)) / 2e-6, rel=1e-6)


def test_final_claims_hold_for_the_backup(task):
    ra, vd = task.final_claims(task.theta0)
    assert ra.holds and ra.details["failing_states"] == 0
    assert vd.level.value == "evaluated"


def test_bad_config():
    with pytest.raises(ConfigError, match="rows: expected one of 'per-row', 'max', 'lse'"):
        DoubleIntegratorConfig(rows="sum")
    with pytest.raises(ConfigError, match="horizon"):
        DoubleIntegratorConfig(horizon=0)
    with pytest.raises(ConfigError, match="unknown key"):
        make_task("double-integrator", {"horizn": 3})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine; the CUDA rollout path is exercised only where a GPU exists")
def test_cuda_rollouts_match_cpu(rng):
    cpu = DoubleIntegratorTask(SMALL, seed=0)
    gpu = DoubleIntegratorTask(DoubleIntegratorConfig(**{**SMALL.__dict__, "device": "cuda"}), seed=0)
    theta = cpu.theta0 + 0.1 * rng.normal(size=cpu.dim)
    np.testing.assert_allclose(gpu.constraints(theta[None]), cpu.constraints(theta[None]), rtol=1e-10, atol=1e-12)


def test_cuda_request_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the missing-GPU error cannot occur")
    with pytest.raises(ConfigError, match="device: 'cuda' requested but torch.cuda.is_available"):
        DoubleIntegratorConfig(device="cuda")


def test_the_safety_grid_domain_is_the_declared_region_s_was_restricted_to(task):
    # S = grid states of the backup's safety region inside C (rows_in_region, what sound training
    # sets): the domain `scpo reach` checks S's coverage in is C itself; unrestricted, there is none
    import dataclasses

    assert not task.config.rows_in_region and task.safety_grid_domain() is None
    inside = DoubleIntegratorTask(dataclasses.replace(SMALL, rows_in_region=True), seed=0)
    dom = inside.safety_grid_domain()
    assert dom is inside.declared_region().polytope
    assert np.all(dom.residual(inside.safety_states) <= 0)
    assert inside.safety_states.shape[0] < task.safety_states.shape[0]  # the margin ε = 0.01 drops boundary states
