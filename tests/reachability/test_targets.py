"""Polytopic stand-ins for X_f: inner and outer, proved exactly, checked against closed forms."""

import math

import numpy as np
import pytest

from scpo.errors import InvalidInputError, ShapeError
from scpo.reachability.exact import exact_area
from scpo.reachability.polytope import area
from scpo.reachability.targets import ellipsoid_inner_polytope, ellipsoid_outer_polytope, terminal_targets
from scpo.tasks.double_integrator import DoubleIntegratorTask


@pytest.mark.parametrize("M", [8, 32])
def test_tangent_polygons_of_an_ellipse_have_the_closed_form_areas(M):
    # For the ellipse {xᵀPx ≤ γ} (area πγ/√det P) the circumscribed regular M-gon in whitened
    # coordinates has area M tan(π/M) γ/√det P and the inscribed one (scaled by cos(π/M)) has
    # M sin(π/M) cos(π/M) γ/√det P (closed forms for regular polygons around the unit circle).
    P = np.array([[2.0, 0.5], [0.5, 1.0]])
    g = 0.7
    scale = g / math.sqrt(np.linalg.det(P))
    outer = ellipsoid_outer_polytope(P, g, M)
    inner = ellipsoid_inner_polytope(P, g, M)
    assert float(exact_area(outer)) == pytest.approx(M * math.tan(math.pi / M) * scale, rel=1e-9)
    # the inner polygon is shrunk by a further relative 1e-9 (area: 2e-9)
    assert float(exact_area(inner)) == pytest.approx(M * math.sin(math.pi / M) * math.cos(math.pi / M) * scale, rel=1e-8)
    assert area(inner) < math.pi * scale < area(outer)


def test_double_integrator_targets_bracket_Xf():
    problem = DoubleIntegratorTask().problem
    inner, outer = terminal_targets(problem.system, problem.K, problem.P, problem.gamma, directions=16)
    assert inner.relation == "inner" and outer.relation == "outer"
    names = {c.name: c for c in inner.claims + outer.claims}
    assert set(names) == {"inner_target_inside_Xf", "inner_target_invariant", "outer_target_contains_Xf"}
    assert all(c.holds and c.level.value == "exact" for c in names.values()), [c.to_dict() for c in names.values()]
    xf_area = math.pi * problem.gamma / math.sqrt(np.linalg.det(problem.P))
    assert float(exact_area(inner.polytope)) < xf_area < float(exact_area(outer.polytope))
    # points on the ellipse boundary: outside (or on) T_in, inside T_out
    L = np.linalg.cholesky(problem.P)
    th = np.linspace(0, 2 * np.pi, 200)
    pts = (math.sqrt(problem.gamma) * np.linalg.solve(L.T, np.stack([np.cos(th), np.sin(th)]))).T
    assert np.all(outer.polytope.residual(pts) <= 1e-12)
    assert np.all(inner.polytope.residual(pts) >= -1e-12)
    d = inner.to_dict()
    assert d["relation"] == "inner" and "inner approximations" in d["meaning"] and len(d["H"]) == d["facets"]


def test_bad_ellipsoids_are_refused():
    with pytest.raises(InvalidInputError, match="positive definite"):
        ellipsoid_outer_polytope(np.diag([1.0, -1.0]), 1.0)
    with pytest.raises(InvalidInputError, match="symmetric"):
        ellipsoid_outer_polytope(np.array([[1.0, 0.5], [0.0, 1.0]]), 1.0)
    with pytest.raises(InvalidInputError, match="gamma: expected a positive number"):
        ellipsoid_inner_polytope(np.eye(2), 0.0)
    with pytest.raises(ShapeError, match="P: expected a square matrix"):
        ellipsoid_inner_polytope(np.ones((2, 3)), 1.0)
    problem = DoubleIntegratorTask().problem
    with pytest.raises(ShapeError, match="P: expected shape \\(2, 2\\)"):
        terminal_targets(problem.system, problem.K, np.eye(3), 1.0)
