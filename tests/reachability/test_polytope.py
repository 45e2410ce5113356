"""H-polytope functions: hand-checkable cases, property tests, independent cross-checks, bad input."""

from fractions import Fraction

import numpy as np
import pytest
import scipy.spatial
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scpo.errors import InvalidInputError, NonFiniteError, ShapeError
from scpo.reachability.exact import exact_area, exact_vertices, polytope_in_polytope
from scpo.reachability.polytope import (
    Polytope,
    area,
    bounding_box,
    box,
    chebyshev_center,
    contains,
    empty,
    equals,
    intersect,
    is_bounded,
    is_empty,
    normalize,
    preimage,
    project,
    reduce,
    support,
    vertices,
    whole_space,
)


# ----------------------------------------------------------------------------- strategies
@st.composite
def polytopes_2d(draw, max_extra=6):
    """Bounded, non-empty 2-D polytopes: a box plus random half-spaces whose offsets keep the
    disc of radius 0.1 around the origin inside (so the set is never empty)."""
    half = draw(st.tuples(st.floats(0.3, 3.0), st.floats(0.3, 3.0)))
    k = draw(st.integers(0, max_extra))
    angles = draw(st.lists(st.floats(0, 2 * np.pi), min_size=k, max_size=k))
    offs = draw(st.lists(st.floats(0.1, 3.0), min_size=k, max_size=k))
    B = box([-half[0], -half[1]], [half[0], half[1]])
    if not k:
        return B
    H = np.array([[np.cos(a), np.sin(a)] for a in angles]) * draw(st.floats(0.5, 4.0))
    h = np.array(offs) * np.linalg.norm(H, axis=1)
    return intersect(B, Polytope(H=H, h=h))


@st.composite
def nested_triples(draw):
    """P ⊆ Q ⊆ R by construction: Q adds rows to R, P adds rows to Q."""
    R = draw(polytopes_2d(max_extra=3))
    Q = intersect(R, draw(polytopes_2d(max_extra=3)))
    P = intersect(Q, draw(polytopes_2d(max_extra=3)))
    return P, Q, R


# ----------------------------------------------------------------------------- hand cases
def test_box_rows_and_membership():
    B = box([-1, -2], [1, 2])
    assert B.dim == 2 and B.n_rows == 4
    assert B.contains_points(np.array([[0.0, 0.0], [1.0, 2.0], [1.1, 0.0]])).tolist() == [True, True, False]
    # residual = signed distance to the nearest violated face for a box: (1.1, 0) is 0.1 outside
    assert B.residual(np.array([1.1, 0.0]))[0] == pytest.approx(0.1)


def test_reduce_removes_exactly_the_redundant_rows():
    # unit square; x + y ≤ 5 is redundant (max of x + y on the square is 2), x + y ≤ 1.5 cuts a corner
    sq = box([0, 0], [1, 1])
    P = intersect(sq, Polytope(H=[[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]], h=[5.0, 1.5, 3.0]))
    R = reduce(P)
    assert R.n_rows == 5
    assert equals(R, P)
    # the hexagon-less pentagon: square minus the triangle x + y > 1.5, area 1 − 0.125
    assert area(R) == pytest.approx(1 - 0.125, abs=1e-12)
    assert exact_area(R) == Fraction(7, 8)


def test_normalize_keeps_the_set_and_detects_trivial_emptiness():
    P = Polytope(H=[[2.0, 0.0], [0.0, 0.0], [-1.0, 0.0], [0.0, 3.0], [0.0, -1.0]], h=[2.0, 1.0, 1.0, 3.0, 1.0])
    N = normalize(P)
    assert N.n_rows == 4 and np.allclose(np.linalg.norm(N.H, axis=1), 1.0)
    assert equals(N, box([-1, -1], [1, 1]))
    assert is_empty(normalize(Polytope(H=[[0.0, 0.0]], h=[-1.0])))


def test_chebyshev_center_of_a_rectangle():
    c, r = chebyshev_center(box([0, 0], [2, 4]))
    assert r == pytest.approx(1.0)  # half the shorter side
    assert c[0] == pytest.approx(1.0) and 1.0 - 1e-9 <= c[1] <= 3.0 + 1e-9
    _, r_empty = chebyshev_center(Polytope(H=[[1.0], [-1.0]], h=[0.0, -1.0]))  # x ≤ 0 and x ≥ 1
    assert r_empty == pytest.approx(-0.5)  # half the gap
    assert chebyshev_center(Polytope(H=[[1.0, 0.0]], h=[0.0]))[1] == np.inf  # a half-plane


def test_emptiness_and_boundedness():
    assert is_empty(Polytope(H=[[1.0], [-1.0]], h=[0.0, -1.0]))
    assert not is_empty(Polytope(H=[[1.0], [-1.0]], h=[0.0, 0.0]))  # the single point 0
    assert is_empty(empty(3)) and not is_empty(whole_space(2))
    assert is_bounded(box([0, 0, 0], [1, 1, 1]))
    assert not is_bounded(Polytope(H=[[1.0, 0.0], [-1.0, 0.0]], h=[1.0, 1.0]))  # a strip
    assert is_bounded(empty(2))
    lo, hi = bounding_box(intersect(box([-1, -1], [1, 1]), Polytope(H=[[1.0, 1.0]], h=[0.5])))
    np.testing.assert_allclose(lo, [-1, -1], atol=1e-12)
    np.testing.assert_allclose(hi, [1, 1], atol=1e-12)


def test_support_and_containment_hand():
    T = Polytope(H=[[-1.0, 0.0], [0.0, -1.0], [1.0, 1.0]], h=[0.0, 0.0, 1.0])  # the unit simplex
    assert support(T, np.array([1.0, 2.0])) == pytest.approx(2.0)
    assert contains(box([0, 0], [1, 1]), T) and not contains(T, box([0, 0], [1, 1]))
    assert contains(T, empty(2))
    assert not contains(T, Polytope(H=[[-1.0, 0.0]], h=[0.0]))  # an unbounded half-plane is not inside


def test_vertices_and_area_of_a_triangle():
    T = Polytope(H=[[-1.0, 0.0], [0.0, -1.0], [1.0, 1.0]], h=[0.0, 0.0, 1.0])
    V = vertices(T)
    assert sorted(map(tuple, np.round(V, 12))) == [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0)]
    assert area(T) == pytest.approx(0.5)
    assert exact_area(T) == Fraction(1, 2)
    assert vertices(empty(2)).shape == (0, 2)


def test_projection_of_a_cube_with_a_cut():
    # {|x|,|y|,|z| ≤ 1, x + y + z ≤ 1} projected on (x, y): z ≥ −1 is always available, so the cut
    # becomes x + y ≤ 2, redundant on the square: the projection is the whole square.
    P = intersect(box([-1, -1, -1], [1, 1, 1]), Polytope(H=[[1.0, 1.0, 1.0]], h=[1.0]))
    Q = project(P, 2)
    assert Q.dim == 2 and Q.n_rows == 4 and equals(Q, box([-1, -1], [1, 1]))
    # a simplex in 3-D: projection onto (x, z) is the triangle x, z ≥ 0, x + z ≤ 1 (hand)
    S = Polytope(H=[[-1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0], [1.0, 1.0, 1.0]], h=[0, 0, 0, 1.0])
    assert equals(project(S, [0, 2]), Polytope(H=[[-1.0, 0.0], [0.0, -1.0], [1.0, 1.0]], h=[0.0, 0.0, 1.0]))


@settings(max_examples=10)
@given(polytopes_2d(), st.floats(-2, 2), st.floats(-2, 2), st.floats(0.2, 2.0))
def test_projection_agrees_with_the_hull_of_projected_vertices(P2, a, b, c):
    # lift a 2-D polytope to 3-D with z ∈ [−c, c] + a x + b y, project back onto (x, y): the result
    # must be P2 itself; independently, the convex hull (qhull) of the projected 3-D vertices.
    lifted = intersect(
        Polytope(H=np.hstack([P2.H, np.zeros((P2.n_rows, 1))]), h=P2.h),
        Polytope(H=[[-a, -b, 1.0], [a, b, -1.0]], h=[c, c]),
    )
    Q = project(lifted, 2)
    assert equals(Q, P2, tol=1e-7)
    V3 = vertices(lifted)
    hull = scipy.spatial.ConvexHull(V3[:, :2])
    Hq = Polytope(H=hull.equations[:, :2], h=-hull.equations[:, 2])
    assert equals(Q, Hq, tol=1e-7)


# ----------------------------------------------------------------------------- properties
@given(polytopes_2d())
def test_containment_is_reflexive(P):
    assert contains(P, P)
    assert polytope_in_polytope(P, P, 1e-9)[0]


@settings(max_examples=15)
@given(nested_triples())
def test_containment_is_transitive_on_nested_sets(triple):
    P, Q, R = triple
    assert contains(Q, P) and contains(R, Q)
    assert contains(R, P)
    assert polytope_in_polytope(P, R, 1e-9)[0]  # exact cross-check


@given(polytopes_2d(), polytopes_2d(), polytopes_2d())
def test_containment_transitivity_as_an_implication(P, Q, R):
    if contains(Q, P) and contains(R, Q):
        assert contains(R, P)


@settings(max_examples=15)
@given(polytopes_2d(max_extra=8))
def test_redundancy_removal_does_not_change_the_set(P):
    R = reduce(P)
    assert R.n_rows <= P.n_rows
    assert contains(R, P) and contains(P, R)  # LP both ways
    # exact cross-check on the stored rows
    assert polytope_in_polytope(R, P, 1e-8)[0] and polytope_in_polytope(P, R, 1e-8)[0]
    # minimality: dropping any kept row enlarges the set (its row is exceeded on the others)
    for i in range(R.n_rows):
        keep = np.arange(R.n_rows) != i
        assert support(Polytope(H=R.H[keep], h=R.h[keep]), R.H[i]) > R.h[i]


@given(st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_preimage_of_the_whole_space_is_the_whole_space(q, n, seed):
    M = np.random.default_rng(seed).normal(size=(q, n))
    pre = preimage(whole_space(q), M, np.ones(q))
    assert pre.dim == n and pre.n_rows == 0
    assert not is_bounded(pre) and chebyshev_center(pre)[1] == np.inf


@given(polytopes_2d(), st.integers(0, 2**31 - 1))
def test_preimage_membership_matches_direct_evaluation(P, seed):
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(2, 3))
    c = rng.normal(size=2) * 0.1
    pre = preimage(P, M, c)
    X = rng.normal(size=(200, 3))
    direct = P.residual(X @ M.T + c)
    keep = np.abs(direct) > 1e-9
    np.testing.assert_array_equal((pre.residual(X) <= 0)[keep], (direct <= 0)[keep])


_TILTED = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [1.0, 0.0],
                    [-6.53643621e-01, -7.56802495e-01], [1.0, 1e-8]])


@settings(max_examples=12)
@example(Polytope(H=_TILTED, h=np.array([1.5, 1.5, 2.0, 2.0, 1.0, 1.0, 1.0, 0.5])))  # cdd float: "numerical inconsistency"
@example(Polytope(H=np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [1.0, 0.0],
                              [2.83662185e-01, -9.58924275e-01], [1.61895330e-01, -9.86807936e-01], [1.0, 1e-8]]),
                  h=np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.75, 0.125, 1.0])))  # cdd float: 2 vertices
@given(polytopes_2d(max_extra=8))
def test_cdd_vertices_agree_with_exact_vertices(P):
    # The float (cdd) and exact vertex lists may differ on degenerate vertices (a row tilted by
    # 1e-258 adds an exact vertex that floats cannot see), so compare the sets they span: the
    # float vertices satisfy the rows, the exact vertices lie in the hull of the float ones
    # (qhull), and the areas agree. cddlib's floating point works to its own zero tolerance: with
    # rows tilted by 1e-8 against each other its vertices are off by up to ~1e-8, hence 1e-7 / 1e-6
    # (hypothesis found such polytopes); where it gives up, vertices() falls back to the exact
    # enumeration (the two examples).
    V = vertices(P)
    Vq = np.array([[float(x) for x in v] for v in exact_vertices(P)])
    assert P.residual(V).max() <= 1e-7
    hull = scipy.spatial.ConvexHull(V)
    assert (Vq @ hull.equations[:, :2].T + hull.equations[:, 2]).max() <= 1e-6
    assert area(P) == pytest.approx(float(exact_area(P)), rel=1e-6, abs=1e-12)


# ----------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_with_clear_errors():
    with pytest.raises(NonFiniteError, match="H: expected finite values"):
        Polytope(H=[[np.nan, 1.0]], h=[1.0])
    with pytest.raises(NonFiniteError, match="h: expected finite"):
        Polytope(H=[[1.0, 1.0]], h=[np.inf])
    with pytest.raises(ShapeError, match="h: expected shape"):
        Polytope(H=[[1.0, 0.0], [0.0, 1.0]], h=[1.0])
    with pytest.raises(ShapeError, match="at least one column"):
        Polytope(H=np.zeros((2, 0)), h=[1.0, 1.0])
    with pytest.raises(ShapeError, match="same dimension"):
        intersect(box([0], [1]), box([0, 0], [1, 1]))
    with pytest.raises(ShapeError, match="M: expected 2 rows"):
        preimage(box([0, 0], [1, 1]), np.eye(3))
    with pytest.raises(InvalidInputError, match="expected lower ≤ upper"):
        box([1, 0], [0, 1])
    with pytest.raises(InvalidInputError, match="unbounded"):
        vertices(Polytope(H=[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], h=[1.0, 1.0, 1.0]))
    with pytest.raises(InvalidInputError, match="unbounded"):
        exact_vertices(Polytope(H=[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], h=[1.0, 1.0, 1.0]))
    with pytest.raises(InvalidInputError, match="keep: expected distinct coordinates"):
        project(box([0, 0], [1, 1]), [0, 0])
    with pytest.raises(InvalidInputError, match="non-empty"):
        bounding_box(empty(2))
    with pytest.raises(InvalidInputError, match="expected a Polytope"):
        contains(box([0], [1]), np.eye(1))


def test_uniform_points_of_a_triangle_have_its_centroid_and_stay_inside():
    # reference: the centroid of a triangle is the mean of its vertices, and the first coordinate of a
    # uniform point of T = {x ≥ 0, y ≥ 0, x + y ≤ 1} has variance 1/18 (closed forms)
    from scpo.reachability.polytope import uniform_points

    T = Polytope(H=np.array([[-1.0, 0.0], [0.0, -1.0], [1.0, 1.0]]), h=np.array([0.0, 0.0, 1.0]))
    x = uniform_points(T, 40_000, np.random.default_rng(0))
    assert x.shape == (40_000, 2) and np.all(T.residual(x) <= 0)
    se = np.sqrt(1 / 18 / 40_000)
    assert np.all(np.abs(x.mean(axis=0) - 1 / 3) <= 4 * se)
    assert x[:, 0].var() == pytest.approx(1 / 18, rel=0.03)
    with pytest.raises(InvalidInputError, match="non-empty"):
        uniform_points(Polytope(H=np.array([[1.0], [-1.0]]), h=np.array([-1.0, 0.0])), 5, np.random.default_rng(0))
    with pytest.raises(InvalidInputError, match="fills too little"):
        thin = Polytope(H=np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, 0.0], [-1.0, 0.0]]), h=np.array([1e-6, 1e-6, 1.0, 1.0]))
        uniform_points(thin, 1000, np.random.default_rng(0), max_draws=100_000)



def test_uniform_points_of_an_unbounded_set_is_bad_input():
    from scpo.reachability.polytope import uniform_points

    half_plane = Polytope(H=np.array([[1.0, 0.0]]), h=np.array([1.0]))
    with pytest.raises(InvalidInputError, match="bounded"):
        uniform_points(half_plane, 5, np.random.default_rng(0))
