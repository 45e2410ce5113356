"""``L_mode="subspace"``: L set every iteration to the curvature restricted to the bank's span, on
quadratic constraints whose restricted Hessian ‖QᵀA_iQ‖₂ is known in closed form."""

import numpy as np
import pytest

from scpo.certify.smoothness import subspace_basis
from scpo.errors import ConfigError, InvalidInputError
from scpo.projector import Projector, ProjectorConfig


class QuadraticConstraints:
    """g_i(θ) = ½θᵀA_iθ + b_iᵀθ − c_i with indefinite A_i (constant Hessian: the restricted one is QᵀA_iQ)."""

    def __init__(self, rng, d, N, margin=0.05):
        X = rng.normal(size=(N, d, d)) / d
        self.A = X + X.transpose(0, 2, 1)
        self.b = rng.normal(size=(N, d)) / np.sqrt(d)
        self.c = np.full(N, margin)  # g(0) = −margin: feasible, close to the boundary

    def __call__(self, thetas):
        return 0.5 * np.einsum("bi,nij,bj->bn", thetas, self.A, thetas) + thetas @ self.b.T - self.c

    def restricted_norms(self, offsets):
        Q, _ = subspace_basis(offsets)
        H = np.einsum("im,nij,jk->nmk", Q, self.A, Q)
        return np.abs(np.linalg.eigvalsh(H)).max(axis=1)


def quadratic(target):
    return (lambda th: float(np.sum((th - target) ** 2))), (lambda th: (float(np.sum((th - target) ** 2)), 2 * (th - target)))


def run(seed, *, scale=1.0, iterations=25, radius=0.3, d=12, N=40):
    rng = np.random.default_rng(seed)
    g = QuadraticConstraints(rng, d, N)
    f, fg = quadratic(3.0 * rng.normal(size=d))
    calls = []

    def provider(theta, offsets, r, first_row):
        calls.append((np.linalg.norm(offsets, axis=1).max(), r, np.linalg.matrix_rank(offsets)))
        return scale * g.restricted_norms(offsets)[first_row:] * (1 + 1e-9) + 1e-300, f"toy-{len(calls)}"

    cfg = ProjectorConfig(bank_size=8, lr=0.2, direction="sgd", L_mode="subspace", certified_radius=radius, solver="clarabel",
                          probe_radius=0.05, block_probes=3)
    p = Projector(theta0=np.zeros(d), objective=f, objective_and_grad=fg, constraints=g, config=cfg, subspace_provider=provider,
                  directions=lambda th, k: rng.normal(size=(k, d)))  # random extra probes: the bank spans more than the gradient
    recs, thetas = [], [p.theta]
    for _ in range(iterations):
        recs.append(p.step())
        thetas.append(p.theta)
    return p, g, f, recs, np.array(thetas), calls


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_certified_subspace_L_never_rejects_for_safety_and_every_offset_stays_in_the_ball(seed):
    p, g, f, recs, thetas, calls = run(seed)
    assert sum(r.accepted for r in recs) >= 20
    assert np.max(g(thetas[1:])) > -0.01  # the iterates reach the boundary: (★) is what limits the steps
    for r in recs:
        assert r.L_mode == "subspace" and r.safety_rejections == 0 and r.prediction_failures == 0, r
        assert r.L_certificates and all(c.startswith("toy-") for c in r.L_certificates)
        assert r.step_norm <= r.L_radius
    for far, r, rank in calls:
        assert far <= r and r >= 0.3 and rank >= 1  # the ball holds every bank offset
    assert np.all(g(thetas) <= 0)  # independent re-evaluation of every iterate
    assert np.all(np.diff([f(t) for t in thetas]) <= 0) and f(thetas[-1]) < f(thetas[0])


def test_an_underestimated_L_is_caught_and_counted_by_the_evaluated_test():
    """Control: the same runs with L/1000 (not a bound) produce failed predictions, counted, none accepted unsafe."""
    fails = unsafe = 0
    for seed in range(4):
        p, g, f, recs, thetas, _ = run(seed, scale=1e-3)
        fails += sum(r.prediction_failures for r in recs)
        unsafe += sum(r.safety_rejections for r in recs)
        assert np.all(g(thetas) <= 0)
    assert fails > 0 and unsafe > 0


def test_subspace_mode_needs_a_provider_and_a_radius():
    with pytest.raises(ConfigError, match="certified_radius: expected a positive radius with L_mode='subspace'"):
        ProjectorConfig(L_mode="subspace")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="certified_radius"):
            ProjectorConfig(L_mode="subspace", certified_radius=bad)
    with pytest.raises(ConfigError, match="needs projection=true"):
        ProjectorConfig(L_mode="subspace", certified_radius=0.1, projection=False)
    with pytest.raises(ConfigError, match="L_mode: expected one of"):
        ProjectorConfig(L_mode="sideways")
    with pytest.raises(InvalidInputError, match="subspace_provider"):
        Projector(theta0=np.zeros(3), objective=lambda t: 0.0, objective_and_grad=lambda t: (0.0, np.zeros(3)),
                  constraints=lambda th: -np.ones((th.shape[0], 2)), config=ProjectorConfig(L_mode="subspace", certified_radius=0.1))


def test_a_provider_returning_a_nonpositive_L_is_refused():
    cfg = ProjectorConfig(L_mode="subspace", certified_radius=0.1, direction="sgd")
    p = Projector(theta0=np.zeros(3), objective=lambda t: float(t @ t - 2 * t[0]), objective_and_grad=lambda t: (float(t @ t - 2 * t[0]), 2 * t - [2, 0, 0]),
                  constraints=lambda th: -np.ones((th.shape[0], 2)), config=cfg,
                  subspace_provider=lambda th, off, r, k: (np.zeros(2), "zero"))
    with pytest.raises(InvalidInputError, match="expected positive constants"):
        p.step()
