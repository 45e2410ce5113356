"""The zeroth-order Jacobian estimate (ZO) and the direction samplers."""

import numpy as np
import pytest

from scpo.baselines.common import sample_directions, two_point_jacobian
from scpo.errors import InvalidInputError, ShapeError


@pytest.mark.parametrize("kind", ["sphere", "orthogonal"])
def test_directions_have_unit_norm(kind, rng):
    U = sample_directions(rng, 5, 7, kind)
    assert U.shape == (5, 7)
    np.testing.assert_allclose(np.linalg.norm(U, axis=1), 1.0, rtol=1e-12)


def test_orthogonal_directions_are_orthonormal(rng):
    U = sample_directions(rng, 6, 6, "orthogonal")
    np.testing.assert_allclose(U @ U.T, np.eye(6), atol=1e-12)


def test_orthogonal_needs_n_at_most_d(rng):
    with pytest.raises(ShapeError, match="n <= d"):
        sample_directions(rng, 4, 3, "orthogonal")
    with pytest.raises(InvalidInputError, match="'sphere', 'orthogonal'"):
        sample_directions(rng, 2, 3, "gauss")


def test_full_orthonormal_basis_recovers_a_linear_jacobian_exactly(rng):
    # For g(x) = W x + c the forward differences are exact, and (d/n) Σ_j (W U_j) U_jᵀ = W Uᵀ U = W
    # when the U_j are an orthonormal basis (n = d): the estimate must equal W to round-off.
    d, N = 5, 3
    W, c = rng.normal(size=(N, d)), rng.normal(size=N)
    g = lambda X: X @ W.T + c  # noqa: E731
    x = rng.normal(size=d)
    jac, G = two_point_jacobian(g, x, g(x[None])[0], sample_directions(rng, d, d, "orthogonal"), 1e-3)
    assert G.shape == (d, N)
    np.testing.assert_allclose(jac.dense(), W, atol=1e-9)
    w, u = rng.normal(size=N), rng.normal(size=d)
    np.testing.assert_allclose(jac.vjp(w), W.T @ w, atol=1e-9)
    np.testing.assert_allclose(jac.jvp(u), W @ u, atol=1e-9)


def test_sphere_estimate_is_unbiased_for_a_linear_function(rng):
    # E[d (aᵀU) U] = d E[UUᵀ] a = a for U uniform on the sphere. With K independent one-direction
    # estimates the mean's error per coordinate has standard deviation ≤ ‖a‖ sqrt(d / K): the
    # tolerance is 5 such standard deviations.
    d, K = 4, 20000
    a = np.array([1.0, -2.0, 0.5, 3.0])
    g = lambda X: (X @ a)[:, None]  # noqa: E731
    x = np.zeros(d)
    jac, _ = two_point_jacobian(g, x, g(x[None])[0], sample_directions(rng, K, d, "sphere"), 1e-2)
    # the factored estimate with n = K directions is exactly the mean of the K one-direction estimates
    est = jac.dense()[0]
    assert np.max(np.abs(est - a)) < 5 * np.linalg.norm(a) * np.sqrt(d / K)


def test_shape_of_constraint_output_is_checked(rng):
    g = lambda X: np.zeros((X.shape[0] + 1, 2))  # noqa: E731
    with pytest.raises(ShapeError, match="constraints"):
        two_point_jacobian(g, np.zeros(3), np.zeros(2), sample_directions(rng, 2, 3), 1e-3)
