"""The one rollout and the one row layout (scpo.systems.rollout / problem)."""

import numpy as np
import pytest
import torch

from scpo.errors import InvalidInputError, ShapeError
from scpo.systems import ClosedLoopProblem, LinearSystem, Rollout, aggregate_rows, constraint_rows, linear_policy, rollout

A = np.array([[1.0, 0.1], [0.0, 1.0]])
B = np.array([[0.005], [0.1]])
K = np.array([[-0.9, -1.6]])
P = np.array([[3.0, 0.5], [0.5, 2.0]])


def _problem(T=7, terminal=True):
    system = LinearSystem.with_box_constraints(A, B, [1.0, 2.0], [1.5], name="toy")
    kw = {"P": P, "gamma": 0.7} if terminal else {}
    return ClosedLoopProblem(system=system, K=K, horizon=T, state_names=("p", "v"), input_names=("u",), **kw)


def test_batched_rollout_matches_a_python_loop(rng):
    W = rng.normal(size=(3, 1, 2)) * 0.3  # three different linear "policies" u = Kx + W_b x

    def pol(x):  # x: (P, S, 2)
        return x @ torch.as_tensor(K).T + torch.einsum("psi,poi->pso", x, torch.as_tensor(W))

    x0 = torch.as_tensor(rng.uniform(-1, 1, size=(4, 2)))
    ro = rollout(_problem(), pol, x0.unsqueeze(0).expand(3, -1, -1), 7)
    assert ro.states.shape == (3, 4, 8, 2) and ro.inputs.shape == (3, 4, 7, 1)
    for p in range(3):
        for s in range(4):
            x = x0[s].numpy()
            for t in range(7):  # reference: the recursion x_{t+1} = A x_t + B u_t written out in numpy
                u = K @ x + W[p] @ x
                np.testing.assert_allclose(ro.inputs[p, s, t].numpy(), u, rtol=1e-13, atol=1e-15)
                x = A @ x + B @ u
                np.testing.assert_allclose(ro.states[p, s, t + 1].numpy(), x, rtol=1e-13, atol=1e-15)
    with pytest.raises(ShapeError, match="x0"):
        rollout(_problem(), pol, torch.zeros(2, 3, dtype=torch.float64), 3)


def test_shared_initial_states_broadcast_to_every_policy(rng):
    x0 = torch.as_tensor(rng.uniform(-1, 1, size=(5, 2)))
    W = torch.as_tensor(rng.normal(size=(2, 1, 2)))

    def pol(x):
        return torch.einsum("...i,poi->p...o", x, W) if x.ndim == 2 else torch.einsum("psi,poi->pso", x, W)

    shared = rollout(_problem(), pol, x0, 4)
    own = rollout(_problem(), pol, x0.unsqueeze(0).expand(2, -1, -1), 4)
    assert shared.states.shape == own.states.shape == (2, 5, 5, 2)
    torch.testing.assert_close(shared.states, own.states, rtol=1e-15, atol=1e-15)


def test_rows_follow_the_layout_and_the_closed_forms(rng):
    prob = _problem()
    x0 = torch.as_tensor(rng.uniform(-0.5, 0.5, size=(3, 2)))
    ro = rollout(prob, linear_policy(K), x0[None], prob.horizon)
    rows = constraint_rows(prob, ro)[0].numpy()
    lay = prob.layout
    assert rows.shape == (3, lay.n_rows) == (3, 7 * 4 + 7 * 2 + 1)
    X, U = ro.states[0].numpy(), ro.inputs[0].numpy()
    for s in range(3):  # reference: each row written from its definition
        for t in range(1, 8):
            for r in range(4):
                j = lay.state_index(t, r)
                assert lay.locate(j) == ("state", t, r)
                assert rows[s, j] == pytest.approx(prob.Hx[r] @ X[s, t] - prob.hx[r], abs=1e-15)
        for t in range(7):
            for r in range(2):
                j = lay.input_index(t, r)
                assert lay.locate(j) == ("input", t, r)
                assert rows[s, j] == pytest.approx(prob.Hu[r] @ U[s, t] - prob.hu[r], abs=1e-15)
        assert lay.locate(lay.terminal_index) == ("terminal", 7, 0)
        assert rows[s, -1] == pytest.approx(X[s, -1] @ P @ X[s, -1] - 0.7, abs=1e-15)
    labels = prob.labels()
    assert labels[lay.state_index(1, 0)] == "t=1 p ≤ 1" and labels[lay.state_index(2, 3)] == "t=2 v ≥ -2"
    assert labels[lay.input_index(0, 1)] == "t=0 u ≥ -1.5" and labels[-1].startswith("t=7 x_TᵀPx_T ≤ γ")


def test_aggregations_are_max_and_a_smooth_upper_bound_of_it(rng):
    rows = torch.as_tensor(rng.normal(size=(2, 6, 9)))
    per = aggregate_rows(rows, "per-row")
    assert per.shape == (2, 54) and torch.equal(per.reshape(2, 6, 9), rows)
    mx = aggregate_rows(rows, "max")
    torch.testing.assert_close(mx, rows.max(-1).values)
    lse = aggregate_rows(rows, "lse", 0.05)
    # τ log Σ exp(r/τ) lies in [max r, max r + τ log R]
    assert torch.all(lse >= mx) and torch.all(lse <= mx + 0.05 * np.log(9) + 1e-12)


def test_static_problem_rows_are_the_output_band():
    system = LinearSystem(A=np.zeros((1, 1)), B=np.zeros((1, 1)), Hx=np.zeros((0, 1)), hx=np.zeros(0),
                          Hu=np.array([[1.0], [-1.0]]), hu=np.array([1.0, 1.0]))
    prob = ClosedLoopProblem(system=system, K=np.zeros((1, 1)), horizon=1, input_names=("f",))
    assert prob.is_static and not prob.has_terminal and prob.layout.n_rows == 2
    f = torch.tensor([[[0.3], [-1.2]]], dtype=torch.float64)
    ro = rollout(prob, lambda x: f, torch.zeros(2, 1, dtype=torch.float64), 1)
    np.testing.assert_array_equal(constraint_rows(prob, ro)[0].numpy(), [[0.3 - 1, -0.3 - 1], [-1.2 - 1, 1.2 - 1]])
    assert prob.labels() == ["t=0 f ≤ 1", "t=0 f ≥ -1"]


def test_problem_validation_names_the_argument():
    system = LinearSystem.with_box_constraints(A, B, [1.0, 1.0], [1.0])
    with pytest.raises(ShapeError, match="K"):
        ClosedLoopProblem(system=system, K=np.zeros((2, 2)), horizon=3)
    with pytest.raises(InvalidInputError, match="P, gamma"):
        ClosedLoopProblem(system=system, K=K, horizon=3, P=P)
    with pytest.raises(InvalidInputError, match="positive definite"):
        ClosedLoopProblem(system=system, K=K, horizon=3, P=-P, gamma=1.0)
    with pytest.raises(InvalidInputError, match="gamma"):
        ClosedLoopProblem(system=system, K=K, horizon=3, P=P, gamma=0.0)
    with pytest.raises(InvalidInputError, match="horizon"):
        ClosedLoopProblem(system=system, K=K, horizon=0)
    with pytest.raises(ShapeError, match="state_names"):
        ClosedLoopProblem(system=system, K=K, horizon=3, state_names=("a",))


def test_problem_round_trips_through_json():
    prob = _problem()
    again = ClosedLoopProblem.from_dict(prob.to_dict())
    assert again.to_dict() == prob.to_dict() and again.layout == prob.layout
    assert isinstance(rollout(again, linear_policy(K), torch.zeros(1, 1, 2, dtype=torch.float64), 2), Rollout)
