"""The learned closed loop's grid set against the exact sets (a zero residual is the backup)."""

import numpy as np
import pytest
import torch

from scpo.errors import InvalidInputError, NonFiniteError, ShapeError
from scpo.reachability.exact import exact_area
from scpo.reachability.learned import (
    cell_centres,
    grid_area,
    grid_containment_claim,
    grid_set,
    learned_grid_set,
    policy_rows,
    residual_policy_map,
    state_box,
)
from scpo.reachability.polytope import box
from scpo.reachability.sets import backward_reachable_sets
from scpo.reachability.targets import terminal_targets
from scpo.systems import ClosedLoopProblem, LinearSystem, linear_policy
from scpo.tasks.double_integrator import DoubleIntegratorConfig, DoubleIntegratorTask

T = 8


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    task = DoubleIntegratorTask(DoubleIntegratorConfig(horizon=T, grid=20, n_samples=32, hidden=(8,)))
    problem = task.problem
    inner, outer = terminal_targets(problem.system, problem.K, problem.P, problem.gamma, directions=16)
    return {
        "task": task,
        "problem": problem,
        "b_in": backward_reachable_sets(inner.polytope, problem.system, T, K=problem.K).sets[T],
        "b_out": backward_reachable_sets(outer.polytope, problem.system, T, K=problem.K).sets[T],
        "c_out": backward_reachable_sets(outer.polytope, problem.system, T).sets[T],
    }


def test_cell_centres():
    c, vol = cell_centres(np.array([-1.0, -2.0]), np.array([1.0, 2.0]), 4)
    assert c.shape == (16, 2) and vol == pytest.approx(0.5)
    np.testing.assert_allclose(np.unique(c[:, 0]), [-0.75, -0.25, 0.25, 0.75])
    # the grid estimator on a box aligned with the cells is exact: [0, 1] × [0, 2] covers 4 cells
    assert grid_area(box([0, 0], [1, 2]), c, vol) == pytest.approx(2.0)


def test_state_box_is_the_bounding_box_of_the_state_polytope():
    # |p| ≤ 1, |v| ≤ 2 and the diagonal row p + v ≤ 1.5, which cuts the corner (1, 2) but not the
    # bounding box: p = 1 is reached at v ≤ 0.5 and v = 2 at p ≤ −0.5 (hand)
    s = LinearSystem(A=np.eye(2), B=[[0.0], [1.0]], Hx=[[1, 0], [-1, 0], [0, 1], [0, -1], [1, 1]], hx=[1, 1, 2, 2, 1.5],
                     Hu=[[1.0], [-1.0]], hu=[1.0, 1.0])
    lo, hi = state_box(ClosedLoopProblem(system=s, K=[[-0.5, -1.0]], horizon=2))
    np.testing.assert_allclose(lo, [-1, -2], atol=1e-12)
    np.testing.assert_allclose(hi, [1, 2], atol=1e-12)
    unbounded = LinearSystem(A=[[1.0]], B=[[1.0]], Hx=[[1.0]], hx=[1.0], Hu=[[1.0], [-1.0]], hu=[1.0, 1.0])
    with pytest.raises(InvalidInputError, match="bounded state constraint set"):
        state_box(ClosedLoopProblem(system=unbounded, K=[[-0.5]], horizon=2))


def test_zero_residual_grid_set_matches_the_exact_backup_set(setup):
    task, problem = setup["task"], setup["problem"]
    G = learned_grid_set(problem, residual_policy_map(task.policy, task.theta0), grid=40)
    assert G.level.value == "evaluated" and G.states.shape == (1600, 2)
    # θ₀ has a zero final layer, so π_θ₀ = Kx: rollouts agree with the exact sets away from the boundary
    strictly_in = setup["b_in"].residual(G.states) < -1e-6
    strictly_out = setup["b_out"].residual(G.states) > 1e-6
    assert np.all(G.inside[strictly_in]) and not np.any(G.inside[strictly_out])
    assert strictly_in.sum() > 500 and strictly_out.sum() > 300  # both sides exercised
    # the area estimate is within the grid error of the exact area (one row of cells along the boundary)
    assert abs(G.area - float(exact_area(setup["b_in"]))) < 0.1
    # the same set from the backup's own policy map and from a rows function
    B = learned_grid_set(problem, linear_policy(problem.K), grid=40)
    np.testing.assert_array_equal(B.inside, G.inside)
    R = grid_set(policy_rows(problem, linear_policy(problem.K)), *state_box(problem), grid=40, chunk=7)
    np.testing.assert_array_equal(R.inside, G.inside)
    np.testing.assert_allclose(R.worst_row, G.worst_row, rtol=0, atol=1e-12)


def test_the_grid_set_of_a_policy_is_that_of_the_tasks_rollout_rows(setup):
    # the rows come from scpo.systems.rollout + constraint_rows, exactly the task's rollout rows
    task, problem = setup["task"], setup["problem"]
    theta = np.random.default_rng(5).normal(scale=0.3, size=task.dim)
    states = task.grid_states[:50]
    ours = policy_rows(problem, residual_policy_map(task.policy, theta))(states)
    with torch.no_grad():
        theirs = task.rollout_rows(task.rollout(theta[None], states))[0].numpy()
    np.testing.assert_array_equal(ours, theirs)


def test_any_policy_stays_inside_the_controllable_set(setup):
    # The T-step set of any policy is inside the T-step controllable set of X_f ⊆ that of T_out (theorem);
    # a random residual (non-zero final layer) is checked on the grid.
    task, problem = setup["task"], setup["problem"]
    theta = np.random.default_rng(3).normal(scale=0.4, size=task.dim)
    G = learned_grid_set(problem, residual_policy_map(task.policy, theta), grid=30)
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


def test_non_finite_rows_count_as_violated():
    rows = lambda x: np.where(x[:, :1] > 0, np.nan, -1.0) * np.ones((1, 3))  # noqa: E731
    G = grid_set(rows, np.array([-1.0, -1.0]), np.array([1.0, 1.0]), grid=4)
    assert G.inside.sum() == 8 and np.all(np.isinf(G.worst_row[~G.inside]))


def test_bad_theta_shape(setup):
    with pytest.raises(ShapeError, match="theta: expected shape"):
        residual_policy_map(setup["task"].policy, np.zeros(3))
