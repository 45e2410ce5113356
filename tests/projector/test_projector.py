"""The SCPO loop on small problems whose smoothness constants are known in closed form."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scpo.errors import ConfigError, InvalidInputError, NonFiniteError, ShapeError, UnsafeStartError
from scpo.projector import Projector, ProjectorConfig, batched


class SineConstraints:
    """g_i(θ) = a_i sin(w_iᵀθ + φ_i) + b_i, whose Hessian a_i sin(·) w_i w_iᵀ gives L_i = |a_i| ‖w_i‖² (closed form)."""

    def __init__(self, rng, d, N, margin=0.05):
        self.W = rng.normal(size=(N, d)) / np.sqrt(d)
        self.a = rng.uniform(0.2, 1.0, N)
        self.phi = rng.uniform(-np.pi, np.pi, N)
        # g_i(0) = a_i sin φ_i + b_i = −margin: the start is feasible but close to the boundary
        self.b = -self.a * np.sin(self.phi) - margin
        self.L = self.a * np.sum(self.W**2, axis=1)

    def __call__(self, thetas):
        return self.a * np.sin(thetas @ self.W.T + self.phi) + self.b


def quadratic(target):
    def f(theta):
        return float(np.sum((theta - target) ** 2))

    def fg(theta):
        return f(theta), 2 * (theta - target)

    return f, fg


def make(rng, cfg, d=5, N=30, L0=None, target_scale=3.0):
    g = SineConstraints(rng, d, N)
    f, fg = quadratic(target_scale * rng.normal(size=d))
    p = Projector(theta0=np.zeros(d), objective=f, objective_and_grad=fg, constraints=g, config=cfg, L0=L0)
    return p, g, f


@settings(max_examples=15)
@given(seed=st.integers(0, 10_000), direction=st.sampled_from(["sgd", "adam"]))
def test_with_the_true_L_no_prediction_fails_and_no_iterate_violates(seed, direction):
    rng = np.random.default_rng(seed)
    cfg = ProjectorConfig(bank_size=6, lr=0.05, direction=direction, L_fixed=True, solver="clarabel")
    d, N = 5, 30
    g = SineConstraints(rng, d, N)
    f, fg = quadratic(3.0 * rng.normal(size=d))
    p = Projector(theta0=np.zeros(d), objective=f, objective_and_grad=fg, constraints=g, config=cfg, L0=g.L)
    for _ in range(25):
        rec = p.step()
        # (★) with the true L_i is a valid upper bound, so the evaluated g never exceeds it
        assert rec.prediction_failures == 0
        if rec.accepted:
            assert np.max(g(p.theta[None, :])[0]) <= 0  # independent re-evaluation
            assert rec.predicted_max_constraint <= 0


def test_sgd_projection_decreases_the_objective_monotonically(rng):
    # DESIGN §3: with Δ_raw = −η∇f the projected step is a descent direction, and with the Armijo
    # test every accepted step lowers f.
    p, g, f = make(rng, ProjectorConfig(bank_size=6, lr=0.05, direction="sgd", solver="clarabel"))
    values = [p.objective_value]
    for _ in range(40):
        rec = p.step()
        if rec.accepted:
            assert rec.objective < values[-1]
            values.append(rec.objective)
    assert values[-1] < values[0]


def test_adaptive_L_recovers_from_an_L_100x_too_small_without_accepting_a_violation(rng):
    d, N = 5, 30
    g = SineConstraints(rng, d, N, margin=0.02)
    f, fg = quadratic(4.0 * rng.normal(size=d))
    cfg = ProjectorConfig(bank_size=6, lr=0.1, direction="sgd", solver="clarabel")
    p = Projector(theta0=np.zeros(d), objective=f, objective_and_grad=fg, constraints=g, config=cfg, L0=g.L / 100)
    failures = []
    f0 = p.objective_value
    for _ in range(80):
        rec = p.step()
        failures.append(rec.prediction_failures)
        if rec.accepted:
            assert np.max(g(p.theta[None, :])[0]) <= 0
    assert sum(failures) > 0, "an L 100x too small must be caught by at least one prediction failure"
    assert np.max(p.L / (g.L / 100)) >= 2.0  # some rows were raised
    assert sum(failures[-20:]) < sum(failures[:20])  # the failures die out as L adapts
    assert p.objective_value < f0


def test_raw_step_inside_is_taken_unchanged(rng):
    d = 4
    f, fg = quadratic(np.full(d, 0.1))
    cons = lambda th: np.sum(th**2, axis=1, keepdims=True) - 100.0  # noqa: E731  (far away)
    p = Projector(theta0=np.zeros(d), objective=f, objective_and_grad=fg, constraints=cons,
                  config=ProjectorConfig(lr=0.1, direction="sgd"))
    rec = p.step()
    assert rec.accepted and rec.solver == "none" and rec.solver_status == "unconstrained_feasible"
    np.testing.assert_allclose(p.theta, -0.1 * fg(np.zeros(d))[1], rtol=1e-12)
    assert rec.evaluations == 1  # the raw probe was the candidate: evaluated once


def test_unprojected_baseline_violates_where_scpo_does_not(rng):
    cfg = dict(bank_size=6, lr=0.2, direction="sgd")
    p, g, _ = make(np.random.default_rng(7), ProjectorConfig(**cfg))
    b, gb, _ = make(np.random.default_rng(7), ProjectorConfig(**cfg, projection=False))
    first_violation = None
    for it in range(30):
        rp, rb = p.step(), b.step()
        assert not (rp.accepted and rp.max_constraint > 0)
        if first_violation is None and rb.max_constraint > 0:
            first_violation = it + 1
    assert first_violation is not None and first_violation <= 10


def test_state_dict_round_trip_continues_identically(rng):
    cfg = ProjectorConfig(bank_size=5, lr=0.05, direction="adam")
    p, g, f = make(np.random.default_rng(3), cfg)
    for _ in range(6):
        p.step()
    state = p.state_dict()
    q, _, _ = make(np.random.default_rng(3), cfg)
    q.load_state_dict(state)
    for _ in range(4):
        a, b = p.step(), q.step()
        assert a.accepted == b.accepted
        # a freshly compiled cvxpy problem may differ from a re-used one in the last bits
        np.testing.assert_allclose(p.theta, q.theta, rtol=1e-10, atol=1e-12)


def test_bad_input_is_rejected_with_clear_messages(rng):
    d = 3
    f, fg = quadratic(np.ones(d))
    ok = lambda th: np.full((th.shape[0], 2), -1.0)  # noqa: E731
    cfg = ProjectorConfig()
    with pytest.raises(NonFiniteError, match=r"g\(theta0\): expected finite values"):
        Projector(theta0=np.zeros(d), objective=f, objective_and_grad=fg, constraints=lambda th: np.full((1, 2), np.nan), config=cfg)
    with pytest.raises(UnsafeStartError, match="violates 1 constraint row"):
        Projector(theta0=np.zeros(d), objective=f, objective_and_grad=fg, constraints=lambda th: np.array([[-1.0, 0.5]]), config=cfg)
    with pytest.raises(ShapeError, match="theta0"):
        Projector(theta0=np.zeros((2, 2)), objective=f, objective_and_grad=fg, constraints=ok, config=cfg)
    with pytest.raises(NonFiniteError, match="theta0"):
        Projector(theta0=np.array([0.0, np.inf, 0.0]), objective=f, objective_and_grad=fg, constraints=ok, config=cfg)
    with pytest.raises(InvalidInputError, match="L0: expected positive"):
        Projector(theta0=np.zeros(d), objective=f, objective_and_grad=fg, constraints=ok, config=cfg, L0=np.array([1.0, -1.0]))
    p = Projector(theta0=np.zeros(d), objective=f, objective_and_grad=fg,
                  constraints=lambda th: np.full((th.shape[0], 3), -1.0) if th.shape[0] > 0 and np.any(th) else np.full((th.shape[0], 2), -1.0),
                  config=ProjectorConfig(lr=0.1, direction="sgd"))
    with pytest.raises(ShapeError, match=r"constraints: expected an array of shape \(1, 2\)"):
        p.step()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bank_size": 0}, "bank_size: expected an integer >= 1, got 0"),
        ({"L_init": -1.0}, "L_init: expected a positive number"),
        ({"solver": "cplex"}, "solver: expected one of"),
        ({"direction": "lbfgs"}, "direction: expected one of 'adam', 'sgd'"),
        ({"lr": float("nan")}, "lr: expected a finite number"),
        ({"L_growth": 1.0}, "L_growth: expected a number > 1"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ProjectorConfig(**kwargs)


def test_nan_at_a_candidate_is_never_accepted(rng):
    # g becomes NaN away from the start: the iterate must stay put (NaN fails every check).
    d = 3
    f, fg = quadratic(np.full(d, 5.0))
    cons = lambda th: np.where(np.linalg.norm(th, axis=1, keepdims=True) > 0.05, np.nan, -1.0) * np.ones((1, 2))  # noqa: E731
    p = Projector(theta0=np.zeros(d), objective=f, objective_and_grad=fg, constraints=cons,
                  config=ProjectorConfig(lr=1.0, direction="sgd", max_tries=3))
    for _ in range(5):
        rec = p.step()
        assert np.all(np.isfinite(p.g))
    assert np.linalg.norm(p.theta) <= 0.05


def test_batched_wrapper(rng):
    fn = lambda t: np.array([t.sum(), -t.sum()])  # noqa: E731
    out = batched(fn)(rng.normal(size=(4, 3)))
    assert out.shape == (4, 2)


def test_an_older_bank_is_restored_as_the_same_absolute_points(rng):
    cfg = ProjectorConfig(bank_size=5, lr=0.05, direction="adam")
    p, g, f = make(np.random.default_rng(4), cfg)
    for _ in range(3):
        p.step()
    old_bank = p.bank_state()
    for _ in range(3):
        p.step()
    q, _, _ = make(np.random.default_rng(4), cfg)
    q.load_state_dict(p.state_dict(include_bank=False), bank=old_bank)
    absolute_old = old_bank["bank_offsets"] + old_bank["bank_theta_ref"]
    np.testing.assert_allclose(q.bank.offsets + q.theta, absolute_old, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(q.bank.values, old_bank["bank_values"])
    # the restored values are still g at those absolute points
    np.testing.assert_allclose(q.bank.values, g(q.bank.offsets + q.theta), atol=1e-12)
