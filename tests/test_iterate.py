"""One contract suite over every optimiser of scpo (the projector, unconstrained training, the
penalty method and LB-SGD), all built on scpo._iterate.IterateState (STYLE.md, optax's contract
suite): an iterate whose g is not finite is never accepted, every evaluation of g is counted, and
the state round-trips."""

import numpy as np
import pytest

from scpo._iterate import IterateState, StepClock, restore_rng, rng_state
from scpo.baselines import LBSGD, LBSGDConfig, Penalty, PenaltyConfig
from scpo.errors import ShapeError, UnsupportedError
from scpo.projector import Projector, ProjectorConfig

A = np.array([2.0, 0.5, -0.3])
KINDS = ["projector", "unconstrained", "penalty", "lbsgd"]


def objective(x):
    return 0.5 * float((x - A) @ (x - A))


def objective_and_grad(x):
    return objective(x), x - A


def smooth_rows(thetas):
    """Two smooth rows, strictly feasible at 0: cᵀθ − 0.4 ≤ 0 and ‖θ‖² − 4 ≤ 0."""
    c = np.array([1.0, 1.0, 0.5])
    return np.stack([thetas @ c - 0.4, np.sum(thetas**2, axis=1) - 4.0], axis=1)


def grows_a_row(thetas):
    """Two rows at θ₀ = 0, three anywhere else: a constraint function whose shape changes."""
    n = 3 if np.any(thetas) else 2
    return np.full((thetas.shape[0], n), -1.0)


def nan_outside(thetas):
    """−1 within ‖θ‖ ≤ 0.05, NaN beyond."""
    return np.where(np.linalg.norm(thetas, axis=1, keepdims=True) > 0.05, np.nan, -1.0) * np.ones((1, 2))


def build(kind, constraints, **cfg):
    common = dict(theta0=np.zeros(3), objective=objective, objective_and_grad=objective_and_grad, constraints=constraints)
    if kind == "projector":
        return Projector(**common, config=ProjectorConfig(**{"lr": 0.1, "direction": "sgd", **cfg}))
    if kind == "unconstrained":
        return Projector(**common, config=ProjectorConfig(**{"lr": 0.1, "direction": "sgd", "projection": False, **cfg}))
    if kind == "penalty":
        return Penalty(**common, config=PenaltyConfig(**{"gradient": "zeroth-order", "n_directions": 2, **cfg}))
    return LBSGD(**common, config=LBSGDConfig(**{"M0": 1.0, "M": 2.0, "lipschitz": 2.0, "n_directions": 2, **cfg}))


class Counting:
    """Wraps a constraint function and counts the parameter vectors it is called with."""

    def __init__(self, fn):
        self.fn = fn
        self.count = 0

    def __call__(self, thetas):
        self.count += thetas.shape[0]
        return self.fn(thetas)


@pytest.mark.parametrize("kind", KINDS)
def test_every_optimiser_implements_the_protocol(kind):
    opt = build(kind, smooth_rows)
    assert isinstance(opt, IterateState)
    assert opt.iteration == 0 and opt.theta.shape == (3,) and opt.g.shape == (2,)
    assert opt.objective_value == pytest.approx(objective(np.zeros(3)))


@pytest.mark.parametrize("kind", KINDS)
def test_nan_is_never_accepted(kind):
    # Large steps from θ₀ land where g is NaN: the iterate must stay where g is finite.
    cfg = {"lr": 1.0} if kind in ("projector", "unconstrained") else {"lr": 0.1} if kind == "penalty" else {"eta": 1.0}
    opt = build(kind, nan_outside, **cfg)
    for _ in range(6):
        rec = opt.step()
        assert np.all(np.isfinite(opt.g))
        assert not rec.accepted or np.isfinite(rec.max_constraint)
        assert np.linalg.norm(opt.theta) <= 0.05


@pytest.mark.parametrize("kind", KINDS)
def test_every_evaluation_is_counted(kind):
    g = Counting(smooth_rows)
    opt = build(kind, g)
    assert opt.evaluations == g.count == 1  # g(θ₀)
    for _ in range(6):
        before = g.count
        rec = opt.step()
        assert rec.evaluations == g.count - before
    assert opt.evaluations == g.count


@pytest.mark.parametrize("kind", KINDS)
def test_the_state_round_trips(kind):
    a = build(kind, smooth_rows)
    for _ in range(4):
        a.step()
    b = build(kind, smooth_rows)
    b.load_state_dict(a.state_dict())
    assert (b.iteration, b.evaluations) == (a.iteration, a.evaluations)
    for _ in range(3):
        ra, rb = a.step(), b.step()
        assert (ra.accepted, ra.reason, ra.evaluations) == (rb.accepted, rb.reason, rb.evaluations)
        if kind == "projector":
            # a freshly compiled cvxpy problem may differ from a re-used one in the solver's last
            # digits (the step here ends on an active row, where that shows most)
            np.testing.assert_allclose(b.theta, a.theta, rtol=1e-8, atol=1e-10)
        else:
            np.testing.assert_array_equal(b.theta, a.theta)
    assert b.objective_value == pytest.approx(a.objective_value, rel=1e-8)


@pytest.mark.parametrize("kind", KINDS)
def test_a_changing_row_count_is_bad_input_and_every_call_is_counted(kind):
    opt = build(kind, grows_a_row)
    assert opt.n_constraints == 2 and opt.evaluations == 1  # g(θ₀), one parameter vector
    np.testing.assert_array_equal(opt.g, [-1.0, -1.0])
    with pytest.raises(ShapeError, match=r"constraints: expected an array of shape \(\d+, 2\)"):
        opt.step()


@pytest.mark.parametrize("kind", KINDS)
def test_a_constraint_function_that_drops_the_batch_axis_is_rejected_at_theta0(kind):
    with pytest.raises(ShapeError, match=r"constraints: expected an array of shape \(1, N\)"):
        build(kind, lambda thetas: np.full(2, -1.0))


@pytest.mark.parametrize("cls", [Projector, Penalty, LBSGD])
def test_a_config_of_the_wrong_type_is_unsupported(cls):
    with pytest.raises(UnsupportedError, match="config: expected a"):
        cls(theta0=np.zeros(3), objective=objective, objective_and_grad=objective_and_grad, constraints=smooth_rows,
            config={"lr": 0.1})
    assert issubclass(UnsupportedError, TypeError)


def test_rng_state_round_trip():
    rng = np.random.default_rng(5)
    rng.standard_normal(3)
    state = rng_state(rng)
    expected = rng.standard_normal(4)
    other = np.random.default_rng(0)
    restore_rng(other, state)
    np.testing.assert_array_equal(other.standard_normal(4), expected)
    with pytest.raises(ShapeError, match=r"rng: expected a state of shape \(6,\)"):
        restore_rng(other, state[:3])


def test_step_clock_counts_the_evaluations_of_one_iteration():
    opt = build("penalty", smooth_rows)
    clock = StepClock(opt)
    opt._evaluate(np.zeros((3, 3)))
    core = clock.core()
    assert core["evaluations"] == 3 and core["iteration"] == 0 and core["wall_time_s"] >= 0
