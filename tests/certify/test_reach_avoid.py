"""Reach-avoid and value decrease evaluated on given rollouts (rows of scpo.systems.constraint_rows)."""

import numpy as np

from scpo.certify.reach_avoid import reach_avoid_claim, value_decrease_claim
from scpo.systems import ClosedLoopProblem, LinearSystem

Hx = np.array([[1.0, 0], [-1, 0], [0, 1], [0, -1]])
hx = np.ones(4)
Hu = np.array([[1.0], [-1.0]])
hu = np.ones(2)
P = np.eye(2)


def problem(T=10, gamma=0.01):
    """|x_i| ≤ 1, |u| ≤ 1, X_f = {‖x‖² ≤ γ}; the dynamics do not matter (the rollouts are given)."""
    system = LinearSystem(A=0.7 * np.eye(2), B=np.zeros((2, 1)), Hx=Hx, hx=hx, Hu=Hu, hu=hu)
    return ClosedLoopProblem(system=system, K=np.zeros((1, 2)), horizon=T, P=P, gamma=gamma)


def contracting(x0, T=10, rate=0.7):
    states = np.stack([x0 * rate**t for t in range(T + 1)], axis=1)
    inputs = np.zeros((x0.shape[0], T, 1))
    return states, inputs


def test_holds_for_a_contraction_into_the_terminal_ball():
    x0 = np.array([[0.9, 0.0], [0.0, -0.9], [0.5, 0.5]])
    X, U = contracting(x0)
    c = reach_avoid_claim(problem(X.shape[1] - 1), x0, X, U)
    assert c.holds and c.details["failing_states"] == 0 and c.level.value == "evaluated"
    assert value_decrease_claim(x0, X, P, 0.01).holds


def test_a_single_violation_or_nan_fails_and_is_named():
    x0 = np.array([[0.9, 0.0], [0.5, 0.5]])
    X, U = contracting(x0)
    X[1, 3, 0] = 1.2  # leaves the box at t = 3
    c = reach_avoid_claim(problem(X.shape[1] - 1), x0, X, U)
    assert not c.holds and c.details["failing_states"] == 1
    assert c.details["failing_examples"][0]["x0"] == [0.5, 0.5]
    assert c.details["failing_examples"][0]["state_rows"] > 0.19
    X, U = contracting(x0)
    U[0, 2, 0] = np.nan
    assert not reach_avoid_claim(problem(X.shape[1] - 1), x0, X, U).holds


def test_not_reaching_the_terminal_set_fails():
    x0 = np.array([[0.9, 0.0]])
    X, U = contracting(x0, T=3)  # 0.9·0.7³ = 0.31 > 0.1 = sqrt(γ)
    assert not reach_avoid_claim(problem(X.shape[1] - 1), x0, X, U).holds


def test_value_increase_is_reported_with_its_location():
    x0 = np.array([[0.5, 0.0], [0.2, 0.2]])
    X, _ = contracting(x0)
    X[0, 2] = X[0, 1] * 1.1  # V increases at t = 1 → 2 for the first state
    c = value_decrease_claim(x0, X, P, 1e-6)
    assert not c.holds and c.details["states_with_an_increase"] == 1 and c.details["examples"] == [[0.5, 0.0]]
    assert c.details["worst_increase"] > 0
