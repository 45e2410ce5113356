import numpy as np
import pytest
import torch

from scpo.errors import InvalidInputError, ShapeError
from scpo.policies import MLP, LinearBackup, ResidualPolicy, ZeroBackup, flatten_parameters, load_flat_parameters


def test_final_layer_is_exactly_zero_and_hidden_layers_are_not():
    mlp = MLP(2, (8, 8), 1, seed=3)
    assert torch.count_nonzero(mlp.final_layer.weight) == 0 and torch.count_nonzero(mlp.final_layer.bias) == 0
    assert torch.count_nonzero(mlp.layers[0].weight) == mlp.layers[0].weight.numel()
    x = torch.randn(50, 2, dtype=torch.float64)
    assert torch.equal(mlp(x), torch.zeros(50, 1, dtype=torch.float64))


def test_initialisation_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    a = flatten_parameters(MLP(3, (5,), 2, seed=11))
    after = torch.rand(1)
    b = flatten_parameters(MLP(3, (5,), 2, seed=11))
    np.testing.assert_array_equal(a, b)
    assert torch.equal(before, after)  # building a policy did not consume global random numbers
    assert not np.array_equal(a, flatten_parameters(MLP(3, (5,), 2, seed=12)))


def test_forward_batched_equals_per_theta_forward(rng):
    mlp = MLP(2, (7, 5), 3, seed=1)
    d = sum(p.numel() for p in mlp.parameters())
    thetas = rng.normal(size=(4, d))
    x = torch.as_tensor(rng.normal(size=(9, 2)))
    batched = mlp.forward_batched(mlp.unflatten(torch.as_tensor(thetas)), x)
    x3 = x.unsqueeze(0).expand(4, -1, -1).contiguous()
    batched3 = mlp.forward_batched(mlp.unflatten(torch.as_tensor(thetas)), x3)
    for b in range(4):
        load_flat_parameters(mlp, thetas[b])
        with torch.no_grad():
            ref = mlp(x)
        torch.testing.assert_close(batched[b], ref, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(batched3[b], ref, rtol=1e-13, atol=1e-13)


def test_flatten_load_round_trip(rng):
    mlp = MLP(1, (4,), 1, seed=0)
    theta = rng.normal(size=flatten_parameters(mlp).size)
    load_flat_parameters(mlp, theta)
    np.testing.assert_array_equal(flatten_parameters(mlp), theta)
    with pytest.raises(ShapeError):
        load_flat_parameters(mlp, theta[:-1])


def test_residual_policy_adds_backup_and_switches_inside_Xs(rng):
    K = np.array([[-1.0, -2.0]])
    mlp = MLP(2, (4,), 1, seed=0)
    theta = rng.normal(size=flatten_parameters(mlp).size)
    load_flat_parameters(mlp, theta)
    pol = ResidualPolicy(LinearBackup(K), mlp, switch_P=np.eye(2), switch_level=0.25)
    x = torch.tensor([[0.1, 0.1], [1.0, 0.5]], dtype=torch.float64)
    with torch.no_grad():
        u = pol(x)
        r = mlp(x)
    np.testing.assert_allclose(u[0].numpy(), x[0].numpy() @ K.T)  # inside X_s: backup only
    np.testing.assert_allclose(u[1].numpy(), x[1].numpy() @ K.T + r[1].numpy())
    ub = pol.forward_batched(torch.as_tensor(theta)[None], x)
    torch.testing.assert_close(ub[0], u)


def test_bad_arguments():
    with pytest.raises(InvalidInputError, match="activation: expected one of 'tanh', 'relu', got 'gelu'"):
        MLP(2, (4,), 1, activation="gelu")
    with pytest.raises(InvalidInputError, match=r"hidden\[1\]: expected an integer >= 1, got 0"):
        MLP(2, (4, 0), 1)
    with pytest.raises(ShapeError, match="last dimension 2"):
        MLP(2, (4,), 1)(torch.zeros(3, 5, dtype=torch.float64))
    with pytest.raises(ShapeError, match="output dimension"):
        ResidualPolicy(ZeroBackup(2, 2), MLP(2, (4,), 1))
