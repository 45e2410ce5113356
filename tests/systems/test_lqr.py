import numpy as np
import pytest
import scipy.linalg

from scpo.errors import InvalidInputError, ShapeError
from scpo.systems import dare_residual, dlqr, ellipsoid_support, terminal_level

dt = 0.1
A = np.array([[1.0, dt], [0.0, 1.0]])
B = np.array([[dt * dt / 2], [dt]])


def test_matches_scipy_dare():
    res = dlqr(A, B, np.eye(2), np.eye(1))
    P = scipy.linalg.solve_discrete_are(A, B, np.eye(2), np.eye(1))
    K = -np.linalg.solve(np.eye(1) + B.T @ P @ B, B.T @ P @ A)
    np.testing.assert_allclose(res.P, P, rtol=1e-12)
    np.testing.assert_allclose(res.K, K, rtol=1e-12)
    assert res.residual < 1e-12 and res.spectral_radius < 1
    assert dare_residual(A, B, np.eye(2), np.eye(1), res.P) == pytest.approx(res.residual)


@pytest.mark.parametrize(("a", "b", "q", "r"), [(1.2, 0.5, 1.0, 2.0), (0.9, 1.0, 3.0, 0.1), (-1.5, 2.0, 0.5, 1.0)])
def test_scalar_closed_form(a, b, q, r):
    # scalar DARE: b² p² + (r − a² r − q b²) p − q r = 0, positive root; K = −a b p / (r + b² p)
    c1 = r - a * a * r - q * b * b
    p = (-c1 + np.sqrt(c1 * c1 + 4 * b * b * q * r)) / (2 * b * b)
    k = -a * b * p / (r + b * b * p)
    res = dlqr([[a]], [[b]], [[q]], [[r]])
    assert res.P[0, 0] == pytest.approx(p, rel=1e-10)
    assert res.K[0, 0] == pytest.approx(k, rel=1e-10)
    assert abs(a + b * k) < 1


def test_terminal_level_against_brute_force_on_the_ellipse_boundary():
    res = dlqr(A, B, np.eye(2), np.eye(1))
    Hx = np.array([[1.0, 0], [-1, 0], [0, 1], [0, -1]])
    hx = np.ones(4)
    Hu = np.array([[1.0], [-1.0]])
    hu = np.ones(2)
    gamma = terminal_level(res.P, res.K, Hx, hx, Hu, hu)
    # boundary points x = sqrt(γ) L^{-T} [cos φ, sin φ] with P = L Lᵀ, dense in φ
    L = np.linalg.cholesky(res.P)
    phi = np.linspace(0, 2 * np.pi, 200_001)
    pts = np.sqrt(gamma) * np.linalg.solve(L.T, np.stack([np.cos(phi), np.sin(phi)]))
    worst = max(np.max(Hx @ pts - hx[:, None]), np.max(Hu @ (res.K @ pts) - hu[:, None]))
    assert -1e-9 < worst <= 1e-12  # touches a constraint (γ is the largest) without crossing it
    # slightly larger ellipse crosses
    pts2 = pts * np.sqrt(1 + 1e-6)
    assert max(np.max(Hx @ pts2 - hx[:, None]), np.max(Hu @ (res.K @ pts2) - hu[:, None])) > 0
    assert ellipsoid_support(res.P, gamma, np.array([1.0, 0.0])) <= 1 + 1e-12


def test_bad_input():
    with pytest.raises(InvalidInputError, match="not stabilisable"):
        dlqr(np.diag([0.5, 1.5]), np.array([[1.0], [0.0]]), np.eye(2), np.eye(1))
    with pytest.raises(ShapeError, match="A: expected a square matrix"):
        dlqr(np.ones((2, 3)), B, np.eye(2), np.eye(1))
    with pytest.raises(InvalidInputError, match="R: expected a symmetric positive definite"):
        dlqr(A, B, np.eye(2), np.zeros((1, 1)))
    with pytest.raises(InvalidInputError, match="Q: expected a symmetric positive semidefinite"):
        dlqr(A, B, -np.eye(2), np.eye(1))
    with pytest.raises(InvalidInputError, match="origin strictly inside"):
        terminal_level(np.eye(2), np.zeros((1, 2)), np.eye(2), np.array([1.0, 0.0]), np.eye(1), np.ones(1))
