"""Exact rational checks: vertices, areas, inclusions, against hand-computed values."""

from fractions import Fraction

import numpy as np
import pytest

from scpo.errors import InvalidInputError
from scpo.reachability.exact import (
    ellipsoid_in_polytope,
    exact_area,
    exact_closed_loop,
    exact_vertices,
    polytope_in_ellipsoid,
    polytope_in_polytope,
    solve_exact,
)
from scpo.reachability.polytope import Polytope, box, empty, intersect


def test_vertices_of_a_dyadic_triangle_are_exact():
    # x ≥ 0, y ≥ 0, x + 2y ≤ 0.375 (0.375 = 3/8 is a float exactly): vertices (0,0), (3/8,0), (0,3/16)
    T = Polytope(H=[[-1.0, 0.0], [0.0, -1.0], [1.0, 2.0]], h=[0.0, 0.0, 0.375])
    assert set(exact_vertices(T)) == {(0, 0), (Fraction(3, 8), 0), (0, Fraction(3, 16))}
    assert exact_area(T) == Fraction(3, 8) * Fraction(3, 16) / 2


def test_cube_and_cut_cube_in_3d():
    C = box([-1, -1, -1], [1, 1, 1])
    assert len(exact_vertices(C)) == 8
    # cutting the corner (1,1,1) by x + y + z ≤ 2 replaces it by the three points (1,1,0), (1,0,1), (0,1,1)
    cut = intersect(C, Polytope(H=[[1.0, 1.0, 1.0]], h=[2.0]))
    vs = set(exact_vertices(cut))
    assert len(vs) == 10 and (1, 1, 1) not in vs and {(1, 1, 0), (1, 0, 1), (0, 1, 1)} <= vs


def test_one_dimensional_and_empty_and_unbounded():
    assert exact_vertices(Polytope(H=[[2.0], [-1.0]], h=[1.0, 0.25])) == [(Fraction(-1, 4),), (Fraction(1, 2),)]
    assert exact_vertices(empty(2)) == []
    assert exact_vertices(Polytope(H=[[1.0], [-1.0]], h=[0.0, -1.0])) == []  # x ≤ 0 and x ≥ 1
    with pytest.raises(InvalidInputError, match="unbounded"):
        exact_vertices(Polytope(H=[[1.0, 0.0]], h=[1.0]))


def test_polytope_in_polytope_with_a_linear_map():
    sq = box([-1, -1], [1, 1])
    half = box([-0.5, -0.5], [0.5, 0.5])
    assert polytope_in_polytope(half, sq)[0] and not polytope_in_polytope(sq, half)[0]
    # the rotation by 90° maps the square onto itself; scaling by 1.5 does not
    R = np.array([[0.0, -1.0], [1.0, 0.0]])
    assert polytope_in_polytope(sq, sq, M=R)[0]
    ok, worst = polytope_in_polytope(sq, sq, M=1.5 * np.eye(2))
    assert not ok and worst == pytest.approx(0.5)
    # exact_closed_loop: A + BK in rationals, e.g. the deadbeat double integrator [[1,1],[-1,-1]]
    Acl = exact_closed_loop(np.array([[1.0, 1.0], [0.0, 1.0]]), np.array([[0.0], [1.0]]), np.array([[-1.0, -2.0]]))
    assert Acl == [[1, 1], [-1, -1]]


def test_ellipsoid_inclusions_against_the_unit_disc():
    I = np.eye(2)
    # the unit disc touches the square [−1, 1]² (support = 1 = offset): included, with equality
    ok, worst = ellipsoid_in_polytope(I, 1.0, box([-1, -1], [1, 1]))
    assert ok and worst == pytest.approx(0.0, abs=1e-15)
    assert not ellipsoid_in_polytope(I, 1.0, box([-0.99, -1], [1, 1]))[0]
    # the square [−a, a]² is inside the disc iff 2a² ≤ 1; a = 0.7 → 0.98 ≤ 1, a = 0.71 → 1.0082 > 1
    assert polytope_in_ellipsoid(box([-0.7, -0.7], [0.7, 0.7]), I, 1.0) == (True, pytest.approx(0.98))
    assert not polytope_in_ellipsoid(box([-0.71, -0.71], [0.71, 0.71]), I, 1.0)[0]


def test_solve_exact():
    M = [[Fraction(2), Fraction(1)], [Fraction(1), Fraction(3)]]
    assert solve_exact(M, [Fraction(3), Fraction(5)]) == [Fraction(4, 5), Fraction(7, 5)]
    with pytest.raises(InvalidInputError, match="singular"):
        solve_exact([[Fraction(1), Fraction(2)], [Fraction(2), Fraction(4)]], [Fraction(1), Fraction(1)])
