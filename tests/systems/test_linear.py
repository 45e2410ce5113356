import numpy as np
import pytest

from scpo.errors import InvalidInputError, NonFiniteError, ShapeError
from scpo.systems import LinearSystem, box_constraints, is_stabilisable

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
