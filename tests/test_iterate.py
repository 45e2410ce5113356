"""The evaluation path the projector and both baselines share (scpo._iterate.IterateState)."""

import numpy as np
import pytest

from scpo.baselines import LBSGD, LBSGDConfig, Penalty, PenaltyConfig
from scpo.errors import ShapeError
from scpo.projector import Projector, ProjectorConfig

A = np.array([2.0, 0.5, -0.3])


def objective(x):
    return 0.5 * float((x - A) @ (x - A))


def objective_and_grad(x):
    return objective(x), x - A


def grows_a_row(thetas):
    """Two rows at θ₀ = 0, three anywhere else: a constraint function whose shape changes."""
    n = 3 if np.any(thetas) else 2
    return np.full((thetas.shape[0], n), -1.0)


def build(kind, constraints):
    common = dict(theta0=np.zeros(3), objective=objective, objective_and_grad=objective_and_grad, constraints=constraints)
    if kind == "projector":
        return Projector(**common, config=ProjectorConfig(lr=0.1, direction="sgd"))
    if kind == "penalty":
        return Penalty(**common, config=PenaltyConfig(gradient="zeroth-order", n_directions=2))
    return LBSGD(**common, config=LBSGDConfig(M0=1.0, M=2.0, lipschitz=2.0, n_directions=2))


@pytest.mark.parametrize("kind", ["projector", "penalty", "lbsgd"])
def test_a_changing_row_count_is_bad_input_and_every_call_is_counted(kind):
    opt = build(kind, grows_a_row)
    assert opt.n_constraints == 2 and opt.evaluations == 1  # g(θ₀), one parameter vector
    np.testing.assert_array_equal(opt.g, [-1.0, -1.0])
    with pytest.raises(ShapeError, match=r"constraints: expected an array of shape \(\d+, 2\)"):
        opt.step()


@pytest.mark.parametrize("kind", ["projector", "penalty", "lbsgd"])
def test_a_constraint_function_that_drops_the_batch_axis_is_rejected_at_theta0(kind):
    with pytest.raises(ShapeError, match=r"constraints: expected an array of shape \(1, N\)"):
        build(kind, lambda thetas: np.full(2, -1.0))
