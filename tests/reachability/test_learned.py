"""The learned closed loop's grid set against the exact sets (a zero residual is the backup)."""

import numpy as np
import pytest
import torch

from scpo.errors import NonFiniteError, ShapeError
from scpo.reachability.learned import cell_centres, grid_area, grid_containment_claim, learned_grid_set
from scpo.reachability.polytope import box
from scpo.reachability.sets import backward_reachable_sets
from scpo.reachability.targets import terminal_targets
from scpo.tasks.double_integrator import DoubleIntegratorConfig, DoubleIntegratorTask

T = 8


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    task = DoubleIntegratorTask(DoubleIntegratorConfig(horizon=T, grid=20, n_samples=32, hidden=(8,)))
    inner, outer = terminal_targets(task.system, task.K, task.P, task.gamma, directions=16)
    return {
        "task": task,
        "b_in": backward_reachable_sets(inner.polytope, task.system, T, K=task.K).sets[T],
        "b_out": backward_reachable_sets(outer.polytope, task.system, T, K=task.K).sets[T],
        "c_out": backward_reachable_sets(outer.polytope, task.system, T).sets[T],
    }


def test_cell_centres():
    c, vol = cell_centres(np.array([-1.0, -2.0]), np.array([1.0, 2.0]), 4)
    assert c.shape == (16, 2) and vol == pytest.approx(0.5)
    np.testing.assert_allclose(np.unique(c[:, 0]), [-0.75, -0.25, 0.25, 0.75])
    # the grid estimator on a box aligned with the cells is exact: [0, 1] × [0, 2] covers 4 cells
    assert grid_area(box([0, 0], [1, 2]), c, vol) == pytest.approx(2.0)


def test_zero_residual_grid_set_matches_the_exact_backup_set(setup):
    task = setup["task"]
    G = learned_grid_set(task, task.theta0, grid=40)
    assert G.level.value == "evaluated" and G.states.shape == (1600, 2)
    # θ₀ has a zero final layer, so π_θ₀ = Kx: rollouts agree with the exact sets away from the boundary
    strictly_in = setup["b_in"].residual(G.states) < -1e-6
    strictly_out = setup["b_out"].residual(G.states) > 1e-6
    assert np.all(G.inside[strictly_in]) and not np.any(G.inside[strictly_out])
    assert strictly_in.sum() > 500 and strictly_out.sum() > 300  # both sides exercised
    # the area estimate is within the grid error of the exact area (one row of cells along the boundary)
    from scpo.reachability.exact import exact_area

    assert abs(G.area - float(exact_area(setup["b_in"]))) < 0.1


def test_any_policy_stays_inside_the_controllable_set(setup):
    # The T-step set of any policy is inside the T-step controllable set of X_f ⊆ that of T_out (theorem);
    # a random residual (non-zero final layer) is checked on the grid.
    task = setup["task"]
    theta = np.random.default_rng(3).normal(scale=0.4, size=task.dim)
    G = learned_grid_set(task, theta, grid=30)
    assert 0 < G.inside.sum() < G.states.shape[0]
    claim = grid_containment_claim("c", "learned ⊆ controllable", G.states, G.inside, setup["c_out"])
    assert claim.holds and claim.details["outside"] == 0, claim.details
    # and it differs from the backup's set (the residual changed the policy)
    assert np.any(G.inside != (setup["b_in"].residual(G.states) <= 0))


def test_grid_containment_claim_reports_states_outside():
    P = box([-1, -1], [1, 1])
    states = np.array([[0.0, 0.0], [2.0, 0.0], [np.nan, 0.0]])
    c = grid_containment_claim("x", "s", states[:2], np.array([True, True]), P)
    assert not c.holds and c.details["outside"] == 1 and c.details["examples_outside"] == [[2.0, 0.0]]
    with pytest.raises(NonFiniteError):
        grid_containment_claim("x", "s", states, np.array([True, True, True]), P)  # NaN state refused


def test_bad_theta_shape(setup):
    with pytest.raises(ShapeError, match="theta: expected shape"):
        learned_grid_set(setup["task"], np.zeros(3))
