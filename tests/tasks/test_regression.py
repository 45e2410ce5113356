import numpy as np
import pytest

from scpo.errors import ConfigError
from scpo.tasks import RegressionConfig, RegressionTask, make_task, regression_reference


def test_reference_losses_match_design_numbers():
    # DESIGN §5: f(θ0) ≈ 1.170 and f* ≈ 0.0731 (clipped target); also the integral
    # (2.25/6)∫_{-3}^{3} sin²(2x) dx = 0.375 (3 − sin(12)/4) ≈ 1.175 as the dense-grid limit of f(θ0).
    ref = regression_reference(RegressionConfig())
    assert ref["f0"] == pytest.approx(1.170, abs=5e-4)
    assert ref["f_star"] == pytest.approx(0.0731, abs=5e-5)
    dense = regression_reference(RegressionConfig(n_train=200_001))
    assert dense["f0"] == pytest.approx(0.375 * (3 - np.sin(12) / 4), rel=1e-4)


def test_task_at_theta0_is_the_backup():
    task = RegressionTask(seed=0)
    g = task.constraints(task.theta0[None])[0]
    assert g.shape == (800,)
    np.testing.assert_array_equal(g, -1.0)  # f ≡ 0 so every row is 0 − 1 = −1 exactly
    assert task.objective(task.theta0) == pytest.approx(task.reference["f0"], rel=1e-12)
    assert task.quality(task.theta0)["improvement_fraction"] == pytest.approx(0.0, abs=1e-12)


def test_gradient_matches_central_differences(rng):
    task = RegressionTask(RegressionConfig(hidden=(6,)), seed=1)
    theta = task.theta0 + 0.3 * rng.normal(size=task.dim)
    f, grad = task.objective_and_grad(theta)
    h = 1e-6
    for i in rng.choice(task.dim, 6, replace=False):
        e = np.zeros(task.dim)
        e[i] = h
        fd = (task.objective(theta + e) - task.objective(theta - e)) / (2 * h)
        assert grad[i] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_block_gradients_sum_to_minus_the_gradient(rng):
    task = RegressionTask(seed=2)
    theta = task.theta0 + 0.05 * rng.normal(size=task.dim)
    blocks = task.block_gradients(theta, 7)
    assert blocks.shape == (7, task.dim)
    np.testing.assert_allclose(blocks.sum(axis=0), -task.objective_and_grad(theta)[1], atol=1e-14)


def test_constraint_rows_are_interleaved_upper_then_lower(rng):
    task = RegressionTask(RegressionConfig(n_grid=5, hidden=(4,)), seed=0)
    theta = task.theta0 + rng.normal(size=task.dim)
    f = task.predict(theta[None], np.linspace(-3, 3, 5))[0]
    g = task.constraints(theta[None])[0]
    np.testing.assert_allclose(g[0::2], f - 1.0, rtol=1e-13)
    np.testing.assert_allclose(g[1::2], -f - 1.0, rtol=1e-13)
    assert task.constraint_labels()[:2] == ["x0=(-3.0000) t=0 f ≤ 1", "x0=(-3.0000) t=0 f ≥ -1"]


def test_make_task_rejects_unknown_names_and_keys():
    with pytest.raises(ConfigError, match="task: expected one of"):
        make_task("cartpole")
    with pytest.raises(ConfigError, match="unknown key"):
        make_task("regression", {"n_trian": 10})
    with pytest.raises(ConfigError, match="x_max"):
        RegressionConfig(x_min=1.0, x_max=0.0)
