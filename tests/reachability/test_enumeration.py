"""Exact n-D vertex enumeration (edge-graph search) and exact volume (facet recursion), against
independent references: the complete O(pⁿ) face recursion, closed-form volumes and Qhull."""

import itertools
from fractions import Fraction

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from scpo.errors import InvalidInputError
from scpo.reachability.enumeration import exact_vertices_nd, exact_volume, integer_rows
from scpo.reachability.exact import _vertices_rec, exact_area_or_nan, exact_measure, exact_vertices, to_fractions
from scpo.reachability.polytope import Polytope, box, vertices


def random_polytope(rng, n, rows):
    H = rng.standard_normal((rows, n))
    h = 1.0 + rng.random(rows)
    return Polytope(H=np.vstack([H, np.eye(n), -np.eye(n)]), h=np.concatenate([h, 2.0 * np.ones(2 * n)]))


@pytest.mark.parametrize("n, seed", [(3, 0), (3, 1), (4, 2)])
def test_the_graph_search_finds_exactly_the_vertices_of_the_face_recursion(n, seed):
    P = random_polytope(np.random.default_rng(seed), n, 8)
    rows = [(tuple(a), b) for a, b in zip(to_fractions(P.H), to_fractions(P.h))]
    reference = _vertices_rec(rows, n)  # complete and exact, O(pⁿ)
    ev = exact_vertices_nd(P)
    assert set(ev.vertices) == reference
    # every vertex satisfies every row exactly, with at least n tight rows
    A, B = integer_rows(P)
    for v, tight in zip(ev.vertices, ev.tight):
        slack = [b - sum(Fraction(a_j) * x for a_j, x in zip(a, v)) for a, b in zip(A, B)]
        assert min(slack) >= 0 and {i for i, s in enumerate(slack) if s == 0} == set(tight) and len(tight) >= n
    assert len(ev) == len(vertices(P))  # cddlib (floating point) agrees on the count


def test_degenerate_vertices_and_the_cross_polytope():
    # the octahedron |x|+|y|+|z| ≤ 1: four facets meet at each of its six vertices
    O = Polytope(H=np.array(list(itertools.product([-1.0, 1.0], repeat=3))), h=np.ones(8))
    ev = exact_vertices_nd(O)
    assert sorted(ev.vertices) == sorted(tuple(Fraction(s) * int(i == j) for j in range(3)) for i in range(3) for s in (1, -1))
    assert all(len(t) == 4 for t in ev.tight)
    assert exact_volume(O) == Fraction(4, 3)  # 2ⁿ/n!


def test_exact_volumes_against_closed_forms():
    assert exact_volume(box([-1, -2, 0, 0], [1, 1, 3, 0.5])) == Fraction(9)
    simplex = Polytope(H=np.vstack([-np.eye(4), np.ones((1, 4))]), h=np.array([0, 0, 0, 0, 1.0]))
    assert exact_volume(simplex) == Fraction(1, 24)
    # the 4-cube sliced in half by x1 + x2 ≤ 0 keeps half its volume
    half = Polytope(H=np.vstack([np.eye(4), -np.eye(4), [[1.0, 1.0, 0, 0]]]), h=np.concatenate([np.ones(8), [0.0]]))
    assert exact_volume(half) == Fraction(8)
    # a flat polytope (empty interior) has volume 0
    flat = Polytope(H=np.vstack([np.eye(3), -np.eye(3)]), h=np.array([1.0, 1.0, 0.0, 1.0, 1.0, 0.0]))
    assert exact_volume(flat) == 0


@pytest.mark.parametrize("n, seed", [(3, 3), (4, 4)])
def test_exact_volume_agrees_with_qhull(n, seed):
    P = random_polytope(np.random.default_rng(seed), n, 10)
    assert float(exact_volume(P)) == pytest.approx(ConvexHull(vertices(P)).volume, rel=1e-9)
    assert exact_area_or_nan(P) == pytest.approx(float(exact_measure(P)), rel=0)
    assert exact_vertices(P) == exact_vertices_nd(P).vertices


def test_unbounded_and_empty_polytopes():
    with pytest.raises(InvalidInputError, match="unbounded"):
        exact_vertices_nd(Polytope(H=np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]), h=np.ones(3)))
    empty = Polytope(H=np.array([[1.0, 0, 0], [-1.0, 0, 0]] + [[0, 1.0, 0], [0, -1.0, 0], [0, 0, 1.0], [0, 0, -1.0]]),
                     h=np.array([-1.0, 0.0, 1, 1, 1, 1]))
    assert len(exact_vertices_nd(empty)) == 0 and exact_volume(empty) == 0


@pytest.mark.parametrize("n, seed", [(3, 3), (4, 4)])
def test_a_given_start_vertex_gives_the_same_vertices_and_a_non_vertex_is_refused(n, seed):
    P = random_polytope(np.random.default_rng(seed), n, 6)
    rows = [(tuple(a), b) for a, b in zip(to_fractions(P.H), to_fractions(P.h))]
    reference = _vertices_rec(rows, n)  # complete and exact, O(pⁿ)
    for v in sorted(reference)[:3]:
        assert set(exact_vertices_nd(P, start=v).vertices) == reference
    with pytest.raises(InvalidInputError, match="start: expected a vertex of P, got a point with fewer"):
        exact_vertices_nd(P, start=tuple(Fraction(0) for _ in range(n)))  # an interior point
    with pytest.raises(InvalidInputError, match="outside P"):
        exact_vertices_nd(P, start=tuple(Fraction(5) for _ in range(n)))
