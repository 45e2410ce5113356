"""The reachability figure: equal sets are labelled as equal, and without a learned set the legend sits inside the axes.

Reference: hand-made boxes whose equality is known by construction (the same rows), and one box
strictly inside another.
"""

import numpy as np

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
