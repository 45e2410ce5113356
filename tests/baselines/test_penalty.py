"""Quadratic penalty and augmented Lagrangian on a problem with a closed-form answer.

min ½‖x − a‖² subject to cᵀx − b ≤ 0, with s = cᵀa − b > 0 (the unconstrained minimiser a is
infeasible). Constrained optimum (projection onto the half-space): x* = a − (s/‖c‖²) c with
multiplier λ* = s/‖c‖² (KKT: x* − a + λ* c = 0, λ* > 0, cᵀx* = b). The quadratic penalty
½‖x − a‖² + (ρ/2) max(0, cᵀx − b)² has minimiser x(ρ) = a − ρs/(1 + ρ‖c‖²) c, at distance
s / (‖c‖ (1 + ρ‖c‖²)) from x*: it approaches x* as ρ grows, from the infeasible side.
"""

import numpy as np
import pytest
import torch

from scpo.baselines import Penalty, PenaltyConfig, augmented_lagrangian
from scpo.errors import ConfigError, InvalidInputError

A_VEC = np.array([2.0, 0.5, -0.3])
C_VEC = np.array([1.0, 1.0, 0.5])
B = 0.5
S = float(C_VEC @ A_VEC - B)
CC = float(C_VEC @ C_VEC)
X_STAR = A_VEC - S / CC * C_VEC


def objective(x):
    return 0.5 * float((x - A_VEC) @ (x - A_VEC))


def objective_and_grad(x):
    return objective(x), x - A_VEC


def halfspace(X):
    return (X @ C_VEC - B)[:, None]


def halfspace_torch(t):
    return (t @ torch.as_tensor(C_VEC) - B).reshape(1)


def run(iterations, theta0=None, **kw):
    p = Penalty(theta0=np.zeros(3) if theta0 is None else theta0, objective=objective, objective_and_grad=objective_and_grad, constraints=halfspace,
                config=PenaltyConfig(**kw), differentiable_constraints=halfspace_torch)
    recs = [p.step() for _ in range(iterations)]
    return p, recs


@pytest.mark.parametrize("gradient", ["autograd", "zeroth-order"])
def test_quadratic_penalty_minimiser_matches_closed_form_and_approaches_the_optimum(gradient):
    # Zeroth-order with a full orthonormal basis of directions is exact for a linear constraint
    # (see test_common), so both gradient sources must reach x(ρ) to solver precision. The start
    # a + 0.3c lies on the line through x(ρ) along c, where the penalised objective has curvature
    # 1 + ρ‖c‖²: SGD with half the inverse curvature contracts the error by 1/2 per step.
    dists = []
    for rho in (1.0, 10.0, 100.0):
        lr = 0.5 / (1.0 + rho * CC)
        p, recs = run(80, theta0=A_VEC + 0.3 * C_VEC, method="quadratic", rho=rho, rho_growth=1.0, gradient=gradient,
                      direction="sgd", lr=lr, n_directions=3, directions="orthogonal", nu=1e-6)
        x_rho = A_VEC - rho * S / (1.0 + rho * CC) * C_VEC
        np.testing.assert_allclose(p.theta, x_rho, atol=1e-7)
        assert p.g[0] > 0  # the penalty minimiser is infeasible: this is why penalty training violates
        dists.append(float(np.linalg.norm(p.theta - X_STAR)))
        assert dists[-1] == pytest.approx(S / (np.sqrt(CC) * (1.0 + rho * CC)), rel=1e-5)
    assert dists[0] > dists[1] > dists[2]


def test_augmented_lagrangian_satisfies_kkt_at_fixed_rho():
    p, _ = run(1200, method="augmented-lagrangian", rho=1.0, rho_growth=1.0, gradient="autograd", direction="sgd",
               lr=1.0 / (1.0 + CC), update_every=30)
    np.testing.assert_allclose(p.theta, X_STAR, atol=1e-9)
    np.testing.assert_allclose(p.multipliers, [S / CC], rtol=1e-9)
    # stationarity of the Lagrangian and complementary slackness
    np.testing.assert_allclose(p.theta - A_VEC + p.multipliers[0] * C_VEC, 0.0, atol=1e-9)
    assert abs(p.g[0]) < 1e-9


def test_feasible_iterates_spend_no_probes():
    # Start inside the half-space far from it: w = max(0, λ + ρg) = 0, so an iteration costs one
    # evaluation (the new iterate), exactly like unconstrained training.
    p = Penalty(theta0=np.array([-5.0, -5.0, 0.0]), objective=objective, objective_and_grad=objective_and_grad,
                constraints=halfspace, config=PenaltyConfig(gradient="zeroth-order", n_directions=8))
    rec = p.step()
    assert rec.evaluations == 1 and rec.details["active_rows"] == 0


def test_zeroth_order_iterations_cost_n_plus_one_evaluations_when_active():
    p2 = Penalty(theta0=A_VEC.copy(), objective=objective, objective_and_grad=objective_and_grad,
                 constraints=halfspace, config=PenaltyConfig(gradient="zeroth-order", n_directions=5))
    rec = p2.step()
    assert rec.evaluations == 6 and rec.details["active_rows"] == 1


def test_value_and_weights_by_hand():
    # f = 1, g = (0.5, −2), λ = (0, 1), ρ = 2: w = (max(0, 1), max(0, 1 − 4)) = (1, 0);
    # Φ = 1 + ((1 + 0) − (0 + 1)) / 4 = 1
    value, w = augmented_lagrangian(1.0, np.array([0.5, -2.0]), np.array([0.0, 1.0]), 2.0)
    np.testing.assert_array_equal(w, [1.0, 0.0])
    assert value == pytest.approx(1.0)


def test_bad_settings_are_rejected():
    with pytest.raises(ConfigError, match="method"):
        PenaltyConfig(method="barrier")
    with pytest.raises(ConfigError, match="rho_growth"):
        PenaltyConfig(rho_growth=0.5)
    with pytest.raises(InvalidInputError, match="differentiable_constraints"):
        Penalty(theta0=np.zeros(3), objective=objective, objective_and_grad=objective_and_grad, constraints=halfspace,
                config=PenaltyConfig(gradient="autograd"))


def test_rho_schedules():
    # Quadratic: ρ multiplies by rho_growth at every outer update, capped by rho_max.
    p, _ = run(7, theta0=A_VEC.copy(), method="quadratic", rho=1.0, rho_growth=3.0, rho_max=20.0, update_every=2,
               gradient="autograd", direction="sgd", lr=1e-3)
    assert p.rho == 20.0  # 1 → 3 → 9 → 27 capped at 20 after iterations 2, 4, 6
    # Augmented Lagrangian: from a strictly feasible start that stays feasible the violation is 0,
    # never above a fraction of its previous value, so ρ stays put and λ stays 0.
    p, _ = run(6, theta0=np.array([-5.0, -5.0, 0.0]), method="augmented-lagrangian", rho=1.0, rho_growth=3.0,
               update_every=2, gradient="autograd", direction="sgd", lr=1e-3)
    assert p.rho == 1.0 and np.all(p.multipliers == 0)
    # ... while an iterate that stays infeasible (tiny steps from a) makes ρ grow at each update.
    p, _ = run(4, theta0=A_VEC.copy(), method="augmented-lagrangian", rho=1.0, rho_growth=3.0, update_every=2,
               gradient="autograd", direction="sgd", lr=1e-6)
    assert p.rho == 9.0 and p.multipliers[0] > 0
