import numpy as np
import pytest
import torch

from scpo.errors import InvalidInputError, NonFiniteError, ShapeError
from scpo.systems import LinearSystem, box_constraints, is_stabilisable, rollout

A = np.array([[1.0, 0.1], [0.0, 1.0]])
B = np.array([[0.005], [0.1]])


def test_box_constraints_layout():
    H, h = box_constraints(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(H, [[1, 0], [-1, 0], [0, 1], [0, -1]])
    np.testing.assert_array_equal(h, [1, 1, 2, 2])


def test_bad_systems_are_rejected_with_clear_errors():
    with pytest.raises(ShapeError, match=r"A: expected a square matrix, got shape \(2, 3\)"):
        LinearSystem.with_box_constraints(np.ones((2, 3)), B, [1, 1], [1])
    with pytest.raises(ShapeError, match=r"B: expected 2 rows"):
        LinearSystem.with_box_constraints(A, np.ones((3, 1)), [1, 1], [1])
    with pytest.raises(NonFiniteError, match="A: expected finite values"):
        LinearSystem.with_box_constraints(np.array([[1.0, np.nan], [0, 1]]), B, [1, 1], [1])
    Hx, hx = box_constraints(np.array([1.0, 1.0]))
    with pytest.raises(InvalidInputError, match="state constraint set .* is empty"):
        LinearSystem(A=A, B=B, Hx=np.vstack([Hx, [[1.0, 0.0]]]), hx=np.concatenate([hx, [-2.0]]), Hu=np.array([[1.0], [-1.0]]), hu=np.ones(2))
    with pytest.raises(InvalidInputError, match="input constraint set .* is empty"):
        LinearSystem(A=A, B=B, Hx=Hx, hx=hx, Hu=np.array([[1.0], [-1.0]]), hu=np.array([-1.0, -1.0]))
    with pytest.raises(ShapeError, match="hx"):
        LinearSystem(A=A, B=B, Hx=Hx, hx=hx[:3], Hu=np.array([[1.0]]), hu=np.ones(1))


def test_stabilisability_by_pbh():
    assert is_stabilisable(A, B)
    # the second state is unstable (eigenvalue 1.5) and B does not reach it
    assert not is_stabilisable(np.diag([0.5, 1.5]), np.array([[1.0], [0.0]]))
    # an unreachable but stable mode is fine
    assert is_stabilisable(np.diag([1.5, 0.5]), np.array([[1.0], [0.0]]))
    sys = LinearSystem.with_box_constraints(np.diag([0.5, 1.5]), np.array([[1.0], [0.0]]), [1, 1], [1])
    with pytest.raises(InvalidInputError, match="not stabilisable"):
        sys.check_stabilisable()


def test_batched_rollout_matches_a_python_loop(rng):
    K = np.array([[-0.9, -1.6]])
    W = rng.normal(size=(3, 1, 2)) * 0.3  # three different linear "policies" u = Kx + W_b x

    def pol(x):  # x: (P, S, 2)
        return x @ torch.as_tensor(K).T + torch.einsum("psi,poi->pso", x, torch.as_tensor(W))

    x0 = torch.as_tensor(rng.uniform(-1, 1, size=(4, 2)))
    ro = rollout(A, B, pol, x0.unsqueeze(0).expand(3, -1, -1), 7)
    assert ro.states.shape == (3, 4, 8, 2) and ro.inputs.shape == (3, 4, 7, 1)
    for p in range(3):
        for s in range(4):
            x = x0[s].numpy()
            for t in range(7):
                u = K @ x + W[p] @ x
                np.testing.assert_allclose(ro.inputs[p, s, t].numpy(), u, rtol=1e-13, atol=1e-15)
                x = A @ x + B @ u
                np.testing.assert_allclose(ro.states[p, s, t + 1].numpy(), x, rtol=1e-13, atol=1e-15)
    with pytest.raises(ShapeError, match="x0"):
        rollout(A, B, pol, torch.zeros(2, 3, dtype=torch.float64), 3)
