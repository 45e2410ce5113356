"""LB-SGD on a problem with a closed-form answer.

min ½‖x − a‖² subject to g(x) = ‖x‖² − 1 ≤ 0, with ‖a‖ > 1. The constrained optimum is
x* = a/‖a‖. The log barrier B_η = ½‖x − a‖² − η log(1 − ‖x‖²) is symmetric about the ray of
a, so its minimiser is x_η = r_η a/‖a‖ with r_η the root in (0, 1) of
dB/dr = (r − ‖a‖) + 2ηr/(1 − r²) = 0 (computed with scipy's brentq). On the unit ball g has
smoothness M = 2 (its Hessian is 2I) and Lipschitz constant L = 2 (‖∇g‖ = 2‖x‖ ≤ 2);
the objective has M₀ = 1.
"""

import numpy as np
import pytest
from scipy.optimize import brentq

from scpo.baselines import LBSGD, LBSGDConfig, lbsgd_step_size
from scpo.errors import ConfigError, UnsafeStartError

A_VEC = np.array([2.0, 0.5, -0.3])
A_NORM = float(np.linalg.norm(A_VEC))


def objective(x):
    return 0.5 * float((x - A_VEC) @ (x - A_VEC))


def objective_and_grad(x):
    return objective(x), x - A_VEC


def ball(X):
    return (np.sum(X**2, axis=1) - 1.0)[:, None]


def barrier_minimiser(eta):
    r = brentq(lambda r: (r - A_NORM) + 2 * eta * r / (1 - r * r), 0.0, 1.0 - 1e-15, xtol=1e-15)
    return r * A_VEC / A_NORM


def make(**kw):
    base = dict(eta=0.05, eta_decay=1.0, stage_iterations=10**6, M0=1.0, M=2.0, lipschitz=2.0,
                directional_bound="estimate", n_directions=3, nu=1e-7, directions="orthogonal", seed=3)
    base.update(kw)
    return LBSGD(theta0=np.zeros(3), objective=objective, objective_and_grad=objective_and_grad,
                 constraints=ball, config=LBSGDConfig(**base))


@pytest.mark.parametrize("bound", ["estimate", "lipschitz"])
def test_fixed_eta_converges_to_the_barrier_minimiser_and_keeps_half_the_slack(bound):
    opt = make(directional_bound=bound)
    ratios = []
    for _ in range(2500):
        before = opt.g[0]
        rec = opt.step()
        assert rec.accepted and rec.max_constraint < 0
        ratios.append(opt.g[0] / before)
    # the step size (S) guarantees g(x_{t+1}) ≤ g(x_t)/2, i.e. the ratio of negatives is ≥ 1/2
    assert min(ratios) >= 0.5
    np.testing.assert_allclose(opt.theta, barrier_minimiser(0.05), atol=1e-5)
    # n = 3 probes plus the new iterate per iteration, plus g(θ₀)
    assert opt.evaluations == 1 + 4 * 2500


def test_decreasing_eta_approaches_the_constrained_optimum():
    opt = make(eta=0.1, eta_decay=0.5, stage_iterations=400)
    dists = []
    for _ in range(6):
        for _ in range(400):
            opt.step()
        dists.append(float(np.linalg.norm(opt.theta - A_VEC / A_NORM)))
    assert opt.stopped is None and np.all(opt.g < 0)
    assert all(b < a for a, b in zip(dists, dists[1:]))
    # x_η is within O(η) of x*; after the last stage η = 0.1/2⁵
    assert dists[-1] < 1.05 * np.linalg.norm(barrier_minimiser(0.1 / 32) - A_VEC / A_NORM) + 1e-4
    assert dists[-1] < 5e-3


def test_lipschitz_bound_stays_safe_with_noisy_sphere_estimates():
    # θ̂ = L bounds every directional derivative, so safety does not depend on the estimate.
    opt = make(directional_bound="lipschitz", directions="sphere", n_directions=2, nu=1e-3, seed=11)
    for _ in range(1500):
        before = opt.g[0]
        opt.step()
        assert opt.g[0] / before >= 0.5
    assert opt.stopped is None


def test_step_size_formula_by_hand():
    # One row: α = 0.5, θ = 1, M = 2, M₀ = 1, η = 0.1, ‖g‖ = 2:
    # safe = 0.5 / (2 + sqrt(1)) / 2 = 1/12; M₂ = 1 + 2·0.1·2/0.5 + 4·0.1·1/0.25 = 1 + 0.8 + 1.6 = 3.4
    gamma, safe, smooth = lbsgd_step_size(np.array([0.5]), np.array([1.0]), np.array([2.0]), 1.0, 0.1, 2.0)
    assert safe == pytest.approx(1 / 12)
    assert smooth == pytest.approx(1 / 3.4)
    assert gamma == pytest.approx(1 / 12)


def test_infeasible_start_and_bad_config_are_rejected():
    with pytest.raises(UnsafeStartError, match="strictly feasible"):
        LBSGD(theta0=np.array([1.0, 0.0, 0.0]), objective=objective, objective_and_grad=objective_and_grad,
              constraints=ball, config=LBSGDConfig(lipschitz=2.0))
    with pytest.raises(ConfigError, match="lipschitz"):
        LBSGDConfig(directional_bound="estimate")
    with pytest.raises(ConfigError, match="eta_decay"):
        LBSGDConfig(eta_decay=2.0, directional_bound="plug-in")


def test_a_violating_iterate_stops_the_run():
    # A wrong smoothness constant (M far too small for g(x) = 100‖x‖² − 1) lets the step leave the set:
    # the iterate is recorded as taken and violating, and the run stops there.
    def steep(X):
        return (100.0 * np.sum(X**2, axis=1) - 1.0)[:, None]

    opt = LBSGD(theta0=np.zeros(3), objective=objective, objective_and_grad=objective_and_grad, constraints=steep,
                config=LBSGDConfig(eta=1e-3, M0=1e-3, M=1e-6, directional_bound="plug-in", n_directions=3,
                                   directions="orthogonal", nu=1e-7))
    recs = [opt.step() for _ in range(50)]
    bad = [r for r in recs if r.max_constraint > 0]
    assert bad and bad[0].accepted and bad[0].reason == "infeasible_iterate"
    assert opt.stopped == "infeasible_iterate"
    assert not recs[-1].accepted and recs[-1].evaluations == 0
