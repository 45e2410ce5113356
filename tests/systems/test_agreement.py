"""Every implementation of the closed loop agrees with the one rollout of scpo.systems.

The implementations: the task's rollout (scpo.systems.rollout through ResidualPolicy.batched), the
audit's deliberately independent rollout from checkpoint tensors, the bound-propagation graph
(IBP and CROWN) evaluated on zero-width boxes, the nn.Module handed to external bound-propagation
libraries, and the region certificate's point rows (scpo.systems.constraint_rows). Reference: a
plain Python loop over x_{t+1} = A x_t + B (K x_t + φ_θ(x_t)) written here in numpy.
"""

import numpy as np
import pytest
import torch

from scpo.audit.rollout import closed_loop as audit_closed_loop
from scpo.certify.bounds import as_boxes, bound_rollout, closed_loop, closed_loop_module
from scpo.systems import constraint_rows
from scpo.tasks import make_task

TASKS = {
    "double-integrator": {"grid": 8, "n_samples": 16, "hidden": [6, 5], "horizon": 9},
    "chain-integrator": {"grid": 5, "n_samples": 16, "hidden": [6], "horizon": 7},
}


def _reference(task, theta, x0):
    """States (S, T+1, n) and inputs (S, T, m) by a loop over states and time in numpy."""
    prob, s = task.problem, task.structure
    layers = s.unflatten_numpy(theta)
    X, U = [], []
    for x in x0:
        xs, us = [x], []
        for _ in range(prob.horizon):
            h = x
            for j, (W, b) in enumerate(layers):
                h = W @ h + b
                if j < len(layers) - 1:
                    h = np.tanh(h)
            u = prob.K @ x + h
            x = prob.A @ x + prob.B @ u
            xs.append(x)
            us.append(u)
        X.append(xs)
        U.append(us)
    return np.array(X), np.array(U)


def _implementations(task, theta, x0):
    prob = task.problem
    with torch.no_grad():
        ro = task.rollout(theta[None], x0)
    yield "systems.rollout", ro.states[0].numpy(), ro.inputs[0].numpy()
    layers = [(W[None], b[None]) for W, b in task.structure.unflatten_numpy(theta)]
    X, U = audit_closed_loop(prob, layers, x0, activation=task.structure.activation)
    yield "audit", X[0], U[0]
    loop = closed_loop(prob, task.structure, theta)
    boxes = as_boxes(x0, x0, n=prob.n)
    for method in ("ibp", "crown"):
        rb = bound_rollout(loop, boxes, prob.horizon, method=method)
        for part, iv in (("lower", 0), ("upper", 1)):
            st = (rb.states.lower if iv == 0 else rb.states.upper).numpy()
            inp = (rb.inputs.lower if iv == 0 else rb.inputs.upper).numpy()
            yield f"bounds:{method}:{part}", st, inp
    with torch.no_grad():
        out = closed_loop_module(loop, prob.horizon)(torch.as_tensor(x0)).numpy()
    T, n, m = prob.horizon, prob.n, prob.m
    X = np.concatenate([x0[:, None, :], out[:, : T * n].reshape(-1, T, n)], axis=1)
    yield "closed_loop_module", X, out[:, T * n :].reshape(-1, T, m)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_rollout_implementation_agrees(name, rng):
    task = make_task(name, TASKS[name], seed=1)
    theta = task.theta0 + rng.normal(size=task.dim) * 0.3
    x0 = task.safety_states[rng.choice(len(task.safety_states), size=6, replace=False)]
    X_ref, U_ref = _reference(task, theta, x0)
    seen = []
    for label, X, U in _implementations(task, theta, x0):
        seen.append(label)
        if label.startswith("bounds"):
            # zero-width boxes: sound bounds enclose the trajectory (with the reference's round-off,
            # far below the 1e-9 relative margin that is applied at every layer and step) and are
            # tight up to that compounded margin
            side = 1.0 if label.endswith("upper") else -1.0
            for got, ref in ((X, X_ref), (U, U_ref)):
                assert np.all(side * (got - ref) >= -1e-13), label
                np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7, err_msg=label)
        else:
            np.testing.assert_allclose(X, X_ref, rtol=1e-12, atol=1e-12, err_msg=label)
            np.testing.assert_allclose(U, U_ref, rtol=1e-12, atol=1e-12, err_msg=label)
    assert len(seen) == 7
    # the bounds enclose the point rollout
    with torch.no_grad():
        ro = task.rollout(theta[None], x0)
        rows = constraint_rows(task.problem, ro)[0].numpy()
    lay = task.problem.layout
    ref_rows = np.concatenate([(X_ref[:, 1:] @ task.problem.Hx.T - task.problem.hx).reshape(6, -1),
                               (U_ref @ task.problem.Hu.T - task.problem.hu).reshape(6, -1),
                               (np.einsum("si,ij,sj->s", X_ref[:, -1], task.problem.P, X_ref[:, -1]) - task.problem.gamma)[:, None]], axis=1)
    assert rows.shape == (6, lay.n_rows)
    np.testing.assert_allclose(rows, ref_rows, rtol=1e-12, atol=1e-12)
