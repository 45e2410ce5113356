"""The audit's deliberately independent closed loop against the task's rollout (training code)."""

import numpy as np
import pytest
import torch

from scpo.audit.rollout import closed_loop, layers_from_tensors, policy_switch

DI = {"grid": 12, "n_samples": 32, "hidden": [8]}


@pytest.mark.parametrize("switching, activation", [(False, "tanh"), (True, "tanh"), (False, "relu")])
def test_audit_closed_loop_matches_the_task_rollout(switching, activation):
    """Reference: the task's torch rollout from the same grid states, at random θ with a non-zero
    final layer (so the residual and the switching mask matter)."""
    from scpo.tasks import make_task

    task = make_task("double-integrator", {**DI, "switching": switching, "activation": activation}, seed=1)
    structure = task.structure
    thetas = task.theta0[None] + 0.3 * np.random.default_rng(0).normal(size=(3, task.dim))
    tensors = [dict(zip(structure.parameter_names, (a for layer in structure.unflatten_numpy(th) for a in layer))) for th in thetas]
    x0 = task.safety_states
    switch = policy_switch(task.policy)
    assert (switch is not None) == switching
    states, inputs = closed_loop(task.problem, layers_from_tensors(tensors, structure.parameter_names), x0,
                                 activation=structure.activation, switch=switch)
    with torch.no_grad():
        ro = task.rollout(thetas, x0)
    assert np.abs(inputs[:, :, 0] - x0 @ task.problem.K.T).max() > 1e-3  # the residual is active
    np.testing.assert_allclose(states, ro.states.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(inputs, ro.inputs.numpy(), rtol=0, atol=1e-12)


def test_closed_loop_checks_shapes():
    from scpo.errors import ShapeError
    from scpo.tasks import make_task

    task = make_task("double-integrator", DI, seed=0)
    names = task.structure.parameter_names
    tensors = [dict(zip(names, (a for layer in task.structure.unflatten_numpy(task.theta0) for a in layer)))]
    with pytest.raises(ShapeError, match="x0"):
        closed_loop(task.problem, layers_from_tensors(tensors, names), np.zeros((3, 5)), activation="tanh")
    with pytest.raises(ShapeError, match="pairs"):
        layers_from_tensors(tensors, names[:-1])
