"""The one flat θ layout (MLPStructure) against the torch module it describes."""

import numpy as np
import pytest
import torch
from torch import nn

from scpo.errors import ShapeError, UnsupportedError
from scpo.policies import ACTIVATIONS, MLP, MLPStructure, flatten_parameters


def test_layout_is_the_module_parameter_order():
    mlp = MLP(2, (5, 3), 1, "tanh", seed=1)
    s = mlp.structure
    named = list(mlp.named_parameters())
    assert s.parameter_names == [n for n, _ in named]
    assert s.parameter_shapes == {n: tuple(p.shape) for n, p in named}
    assert s.dim == sum(p.numel() for _, p in named) == 2 * 5 + 5 + 5 * 3 + 3 + 3 + 1
    assert s.final_layer == ("layers.2.weight", "layers.2.bias")
    theta = flatten_parameters(mlp)
    layers = s.unflatten_numpy(theta)
    # reference: torch's own parameters_to_vector order, tensor by tensor
    for (W, b), lin in zip(layers, mlp.layers):
        np.testing.assert_array_equal(W, lin.weight.detach().numpy())
        np.testing.assert_array_equal(b, lin.bias.detach().numpy())
    np.testing.assert_array_equal(s.flatten(layers), theta)


def test_batched_and_single_forward_agree_with_the_module(rng):
    mlp = MLP(2, (6, 4), 2, "tanh", seed=0)
    thetas = rng.normal(size=(3, mlp.structure.dim))
    x = torch.as_tensor(rng.normal(size=(7, 2)))
    s = mlp.structure
    out = s.forward_batched(s.unflatten(torch.as_tensor(thetas)), x)
    for b in range(3):
        ref = nn.Sequential(*[m for lin in mlp.layers for m in (lin, nn.Tanh())][:-1]).double()
        torch.nn.utils.vector_to_parameters(torch.as_tensor(thetas[b]), ref.parameters())
        with torch.no_grad():
            torch.testing.assert_close(out[b], ref(x), rtol=1e-13, atol=1e-14)
            torch.testing.assert_close(s.forward(torch.as_tensor(thetas[b]), x), ref(x), rtol=1e-13, atol=1e-14)


def test_structure_from_a_sequential_and_its_refusals():
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    s = MLPStructure.from_module(seq)
    assert (s.in_dim, s.hidden, s.out_dim, s.activation) == (3, (4,), 2, "relu")
    with pytest.raises(UnsupportedError, match="Sigmoid"):
        MLPStructure.from_module(nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2)))
    with pytest.raises(UnsupportedError, match="mixed"):
        MLPStructure.from_module(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1)))
    with pytest.raises(UnsupportedError, match="smooth"):
        s.require_smooth()
    with pytest.raises(ShapeError, match="parameters"):
        s.unflatten(torch.zeros(1, s.dim + 1, dtype=torch.float64))


def test_activation_table_derivatives(rng):
    z = torch.as_tensor(rng.normal(size=50) * 3, dtype=torch.float64).requires_grad_(True)
    act = ACTIVATIONS["tanh"]
    (d1,) = torch.autograd.grad(act.fn(z).sum(), z, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), z)
    # reference: autograd of torch.tanh
    torch.testing.assert_close(act.d1(z).detach(), d1.detach(), rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(act.d2(z).detach(), d2, rtol=1e-12, atol=1e-14)
    # sup |tanh''| = 4/(3√3) at tanh z = ±1/√3 (closed form)
    zs = torch.linspace(-4, 4, 200001, dtype=torch.float64)
    assert float(act.d2(zs).abs().max()) == pytest.approx(act.d2_max, rel=1e-9)
    assert not ACTIVATIONS["relu"].smooth and act.smooth
