import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scpo.projector.inner import bound_coefficients, inner_bound, max_feasible_scale, required_L


def test_inner_bound_matches_design_formula_in_original_coefficients(rng):
    # (★) of DESIGN §3 written with raw coefficients c_k on offsets δ_k:
    # g + Σ c_k h_k + (L/2)(Σ|c_k| s_k + ‖Dc‖²). Normalised coefficients are c_k ‖δ_k‖.
    d, m, N = 7, 4, 5
    D = rng.normal(size=(m, d))
    g = -rng.uniform(0.1, 1.0, N)
    G = g[None, :] + rng.normal(size=(m, N))
    L = rng.uniform(0.5, 3.0, N)
    c_raw = rng.normal(size=m)
    s = np.sum(D**2, axis=1)
    step = c_raw @ D
    expected = g + (G - g).T @ c_raw + 0.5 * L * (np.abs(c_raw) @ s + step @ step)
    norms = np.sqrt(s)
    H = ((G - g[None, :]) / norms[:, None]).T
    got = inner_bound(g, H, L, norms, c_raw * norms, step @ step)
    np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_inner_bound_is_an_upper_bound_for_a_quadratic_with_known_L(rng):
    # g(θ) = ½θᵀAθ + bᵀθ has Hessian A, so it is L-smooth with L = ‖A‖₂ (closed form).
    d, m = 6, 5
    A = rng.normal(size=(d, d))
    A = A + A.T
    L = np.abs(np.linalg.eigvalsh(A)).max()
    b = rng.normal(size=d)
    gfun = lambda t: 0.5 * t @ A @ t + b @ t  # noqa: E731
    theta = rng.normal(size=d)
    D = 0.3 * rng.normal(size=(m, d))
    G = np.array([gfun(theta + dk) for dk in D])
    norms = np.linalg.norm(D, axis=1)
    H = ((G - gfun(theta)) / norms)[None, :]
    for _ in range(200):
        c = rng.normal(size=m)
        step = (c / norms) @ D
        bound = inner_bound(np.array([gfun(theta)]), H, np.array([L]), norms, c, step @ step)[0]
        assert gfun(theta + step) <= bound + 1e-12


@given(
    g=st.lists(st.floats(-5, 0), min_size=1, max_size=8),
    data=st.data(),
)
def test_max_feasible_scale_is_feasible_and_maximal(g, data):
    g = np.array(g)
    n = g.size
    a1 = np.array(data.draw(st.lists(st.floats(-5, 5), min_size=n, max_size=n)))
    a2 = np.array(data.draw(st.lists(st.floats(0, 5), min_size=n, max_size=n)))
    alpha = max_feasible_scale(g, a1, a2)
    assert 0.0 <= alpha <= 1.0
    vals = g + alpha * a1 + alpha**2 * a2
    assert np.all(vals <= 1e-12 * (1 + np.abs(g) + np.abs(a1) + a2))
    if alpha < 1.0:
        # a slightly larger scale violates some row (maximality), decided in exact rationals: in
        # floats β²·a2 underflows for a2 = 5e-324 (hypothesis found g = 0, a1 = 0, a2 = 5e-324)
        from fractions import Fraction

        beta = Fraction(alpha * (1 + 1e-6) + 1e-9)
        assert any(Fraction(gi) + beta * Fraction(b1) + beta**2 * Fraction(b2) > 0 for gi, b1, b2 in zip(g, a1, a2))


def test_max_feasible_scale_hand_example():
    # g = -1, a1 = 0, a2 = 4: -1 + 4α² ≤ 0 ⇔ α ≤ 1/2.
    assert max_feasible_scale(np.array([-1.0]), np.array([0.0]), np.array([4.0])) == pytest.approx(0.5)
    # g = -1, a1 = 2, a2 = 0: α ≤ 1/2.
    assert max_feasible_scale(np.array([-1.0]), np.array([2.0]), np.array([0.0])) == pytest.approx(0.5)
    # NaN anywhere fails closed (scale 0); a positive g fails closed.
    assert max_feasible_scale(np.array([-1.0]), np.array([np.nan]), np.array([0.0])) == 0.0
    assert max_feasible_scale(np.array([0.1]), np.array([0.0]), np.array([0.0])) == 0.0


def test_required_L_makes_the_bound_tight(rng):
    m, N = 3, 4
    g = -rng.uniform(0.1, 1, N)
    H = rng.normal(size=(N, m))
    norms = rng.uniform(0.1, 1, m)
    c = rng.normal(size=m)
    step_sq = 0.7
    G_new = g + H @ c + 1.0
    L = required_L(G_new, g, H, norms, c, step_sq)
    a1, a2 = bound_coefficients(H, L, norms, c, step_sq)
    np.testing.assert_allclose(g + a1 + a2, G_new, rtol=1e-12)
