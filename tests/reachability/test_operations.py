"""n-D set operations (affine image, Minkowski sum, Pontryagin difference, hull, support) and the
hull-based projection, checked against their definitions by LP containment and sampling."""

import numpy as np
import pytest

from scpo.reachability.operations import affine_image, convex_hull, minkowski_sum, pontryagin_difference, support_values
from scpo.reachability.polytope import Polytope, box, equals, project, support, vertices


def test_convex_hull_drops_interior_points_and_recovers_the_box():
    rng = np.random.default_rng(0)
    corners = np.array(np.meshgrid(*[[-1.0, 2.0]] * 3)).reshape(3, -1).T
    P = convex_hull(np.vstack([corners, rng.uniform(-1, 2, (50, 3))]))
    assert P.n_rows == 6 and equals(P, box([-1, -1, -1], [2, 2, 2]))


def test_affine_image_invertible_and_singular():
    P = box([-1, -1, -1], [1, 2, 3])
    M = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 0.5], [1.0, 0.0, 1.0]])
    c = np.array([0.5, -1.0, 2.0])
    img = affine_image(P, M, c)
    assert equals(img, convex_hull(vertices(P) @ M.T + c))
    # a singular map onto a line: the interval [min, max] of the images of the vertices
    line = affine_image(P, np.array([[1.0, 1.0, 1.0]]))
    assert line.dim == 1 and equals(line, box([-3.0], [6.0]))


def test_minkowski_sum_support_is_additive():
    rng = np.random.default_rng(1)
    P = convex_hull(rng.standard_normal((12, 3)))
    Q = convex_hull(0.3 * rng.standard_normal((8, 3)))
    S = minkowski_sum(P, Q)
    for d in rng.standard_normal((20, 3)):
        assert support(S, d) == pytest.approx(support(P, d) + support(Q, d), abs=1e-8)


def test_pontryagin_difference_is_the_set_of_translates_inside():
    rng = np.random.default_rng(2)
    P = convex_hull(rng.standard_normal((20, 3)) * 2)
    W = box([-0.1, -0.2, -0.05], [0.1, 0.2, 0.05])
    D = pontryagin_difference(P, W)
    VW = vertices(W)
    x = rng.uniform(-2, 2, (4000, 3))
    inside = D.contains_points(x, tol=-1e-9)
    # x ∈ P ⊖ W  ⇔  x + w ∈ P for every vertex w of W
    shifted_ok = np.all([P.contains_points(x + w, tol=1e-9) for w in VW], axis=0)
    assert inside.any() and np.all(shifted_ok[inside])
    outside = D.residual(x) > 1e-9
    shifted_strict = np.all([P.contains_points(x + w, tol=-1e-9) for w in VW], axis=0)
    assert not np.any(shifted_strict & outside)
    # (D ⊕ W) ⊆ P and the box case is exact: (B ⊕ W) ⊖ W = B
    B = box([-1, -1, -1], [1, 1, 1])
    assert equals(pontryagin_difference(minkowski_sum(B, W), W), B)
    assert support_values(W, np.eye(3)).tolist() == pytest.approx([0.1, 0.2, 0.05])


def test_hull_projection_equals_block_elimination():
    rng = np.random.default_rng(3)
    H = rng.standard_normal((30, 5))
    P = Polytope(H=np.vstack([H, np.eye(5), -np.eye(5)]), h=np.concatenate([np.ones(30), 2 * np.ones(10)]))
    a = project(P, [0, 2, 3], method="elimination")
    b = project(P, [0, 2, 3], method="hull")
    assert equals(a, b) and a.n_rows == b.n_rows


def test_hull_projection_of_a_nearly_degenerate_4d_set_retries_qhull(caplog):
    # the (x, u) polytope of the cart-pole's 6th controlled Pre step (its 5-step controllable set of
    # T_in lifted, 797 rows in R^5, saved by the session that found it): Qhull's half-space
    # intersection refuses it with its default merging ("wide merge … dupridge"), the retry with Q12
    # succeeds. Reference: cddlib's own vertex enumeration of the same rows, projected.
    from pathlib import Path

    data = np.load(Path(__file__).parent / "data" / "cartpole_lifted_R5.npz")
    P = Polytope(H=data["H"], h=data["h"])
    with caplog.at_level("DEBUG", logger="scpo.reachability.polytope"):
        Q = project(P, 4, method="hull")
    assert "failed with options None" in caplog.text and "Q12" not in caplog.text.split("failed with options None")[1]
    # reference: HiGHS LPs on P itself, h_proj(d) = max{(d, 0)·z : z ∈ P}. Every facet of the result
    # supports the projection (on this path the offsets are set to those LPs), and in random directions
    # the result reaches no further than the projection (no facet missing, up to 1e-7)
    lifted = lambda d: support(P, np.concatenate([d, [0.0]]))  # noqa: E731
    assert max(abs(lifted(a) - b) for a, b in zip(Q.H, Q.h)) <= 1e-8
    rng = np.random.default_rng(0)
    for d in rng.standard_normal((50, 4)):
        assert support(Q, d) == pytest.approx(lifted(d), abs=1e-7 * np.linalg.norm(d))


def test_hull_projection_falls_back_to_cddlib_when_qhull_refuses(monkeypatch):
    # Qhull's half-space intersection made to fail every time: the vertices then come from cddlib
    # and every offset from a HiGHS support LP. Reference: cddlib's block elimination of the same P.
    import scipy.spatial

    def refuse(*args, **kwargs):
        raise scipy.spatial.QhullError("refused for the test")

    rng = np.random.default_rng(4)
    H = rng.standard_normal((20, 4))
    P = Polytope(H=np.vstack([H, np.eye(4), -np.eye(4)]), h=np.concatenate([np.ones(20), 2 * np.ones(8)]))
    ref = project(P, [0, 1, 3], method="elimination")
    import scpo.reachability.polytope as poly

    calls = []
    real_support = poly.support
    monkeypatch.setattr(scipy.spatial, "HalfspaceIntersection", refuse)
    monkeypatch.setattr(poly, "support", lambda P_, d: calls.append(1) or real_support(P_, d))
    Q = project(P, [0, 1, 3], method="hull")
    assert equals(Q, ref) and len(calls) == Q.n_rows  # the hull path with one LP per facet, not elimination
