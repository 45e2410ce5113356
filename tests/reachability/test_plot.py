"""The reachability figure: equal sets are labelled as equal, and without a learned set the legend sits inside the axes.

Reference: hand-made boxes whose equality is known by construction (the same rows), and one box
strictly inside another.
"""

import numpy as np
import pytest

from scpo.reachability.plot import reach_figure
from scpo.reachability.polytope import box


def _labels(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_equal_sets_are_labelled_equal_and_the_legend_is_inside():
    R = [box([-0.2, -0.2], [0.2, 0.2]), box([-0.5, -0.5], [0.5, 0.5])]
    C = [box([-0.2, -0.2], [0.2, 0.2]), box([-0.8, -0.8], [0.8, 0.8])]
    fig = reach_figure(backup_sets=R, controllable_sets=C, state_box=box([-1, -1], [1, 1]), P=np.eye(2), gamma=0.01,
                       mpi=box([-0.5, -0.5], [0.5, 0.5]),          # the same set as R_1
                       control_invariant=box([-0.7, -0.7], [0.7, 0.7]))  # strictly inside C_1
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    left, right = fig.axes[:2]
    assert "O_∞ = R_1 (equal sets)" in _labels(left)
    assert "C_∞ (maximal control invariant)" in _labels(right) and not any("equal sets" in t for t in _labels(right))
    for ax in (left, right):
        leg = ax.get_legend().get_window_extent(renderer)
        frame = ax.get_window_extent(renderer)
        assert frame.x0 <= leg.x0 and leg.x1 <= frame.x1 and frame.y0 <= leg.y0 and leg.y1 <= frame.y1


def test_projections_and_sections_of_a_3d_simplex():
    # Reference (closed forms): the simplex Δ = {x ≥ 0, x₁ + x₂ + x₃ ≤ 1} projects onto every
    # coordinate pair as the triangle {y ≥ 0, y₁ + y₂ ≤ 1} (area 1/2); its section through
    # x_k = 0.5 is the triangle {y ≥ 0, y₁ + y₂ ≤ 0.5} (area 1/8)
    from scpo.reachability.exact import exact_area
    from scpo.reachability.plot import coordinate_pairs, projections_figure
    from scpo.reachability.polytope import Polytope, is_empty, project, slice_at

    D = Polytope(H=np.vstack([-np.eye(3), np.ones((1, 3))]), h=np.array([0.0, 0.0, 0.0, 1.0]))
    assert coordinate_pairs(3) == [(0, 1), (0, 2), (1, 2)] and len(coordinate_pairs(4)) == 6 and len(coordinate_pairs(6)) == 5
    for i, j in coordinate_pairs(3):
        assert float(exact_area(project(D, [i, j]))) == pytest.approx(0.5, abs=1e-12)
        assert float(exact_area(slice_at(D, [i, j], np.full(3, 0.5)))) == pytest.approx(0.125, abs=1e-12)
    assert is_empty(slice_at(D, [0, 1], np.array([0.0, 0.0, 2.0])))  # x₃ = 2 misses Δ
    fig = projections_figure([("Δ", D)], state_box=box([-1, -1, -1], [1, 1, 1]), points=np.full((2, 3), 0.2), at=np.full(3, 0.5))
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3 and [ax.get_xlabel() for ax in axes] == ["x0", "x0", "x1"]
    # per panel: the box outline, the projection and the section of Δ
    assert all(len(ax.patches) == 3 for ax in axes)



def test_projections_figure_bad_input():
    from scpo.errors import InvalidInputError, ShapeError
    from scpo.reachability.plot import coordinate_pairs, projections_figure

    X = box([-1, -1, -1], [1, 1, 1])
    with pytest.raises(InvalidInputError, match="sets: expected at least one polytope"):
        projections_figure([], state_box=X)
    with pytest.raises(ShapeError, match="'two' has dimension 2, expected 3"):
        projections_figure([("two", box([-1, -1], [1, 1]))], state_box=X)
    with pytest.raises(ShapeError, match="at"):
        projections_figure([("X", X)], state_box=X, at=np.zeros(2))
    with pytest.raises(InvalidInputError, match="n: expected at least 2"):
        coordinate_pairs(1)
