"""The residual network ``φ_θ``: an MLP whose final layer starts exactly at zero (DESIGN §4)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ShapeError
from .structure import ACTIVATIONS, MLPStructure

__all__ = ["MLP"]


class MLP(nn.Module):
    """``φ(x) = W_L σ(⋯ σ(W_1 x + b_1) ⋯) + b_L`` with ``W_L = 0, b_L = 0`` at initialisation.

    Hidden layers use PyTorch's default ``nn.Linear`` initialisation law,
    ``U(−1/√fan_in, 1/√fan_in)``, drawn from a private generator so that building a policy
    never touches the global random state.

    Parameters
    ----------
    in_dim, out_dim : int
    hidden : sequence of int
        Hidden widths (may be empty: then ``φ`` is one zero-initialised affine map).
    activation : {"tanh", "relu"}
        ``tanh`` is smooth, so the constraint functions have a finite ``L``; ``relu`` is allowed,
        but ``L``-smoothness in ``θ`` is then not assured.
    seed : int
    dtype : torch.dtype, default float64
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        activation: str = "tanh",
        *,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.structure = MLPStructure(in_dim, tuple(hidden), out_dim, activation)
        self.activation_name = self.structure.activation
        self.in_dim, self.out_dim, self.hidden = self.structure.in_dim, self.structure.out_dim, self.structure.hidden
        widths = self.structure.widths
        gen = torch.Generator().manual_seed(int(seed))
        self.layers = nn.ModuleList()
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            lin = torch.nn.utils.skip_init(nn.Linear, a, b, dtype=dtype)  # no draw from the global RNG
            with torch.no_grad():
                if i == len(widths) - 2:
                    lin.weight.zero_()
                    lin.bias.zero_()
                else:
                    bound = 1.0 / math.sqrt(a)
                    lin.weight.copy_(torch.rand(b, a, generator=gen, dtype=dtype) * 2 * bound - bound)
                    lin.bias.copy_(torch.rand(b, generator=gen, dtype=dtype) * 2 * bound - bound)
            self.layers.append(lin)
        self.act = ACTIVATIONS[self.activation_name].module()

    @property
    def final_layer(self) -> nn.Linear:
        """The output layer whose zero initialisation gives the base case of the induction."""
        return self.layers[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``φ(x)`` with this module's own parameters.

        Parameters
        ----------
        x : Tensor, shape (…, in_dim)

        Returns
        -------
        Tensor, shape (…, out_dim)
        """
        if x.shape[-1] != self.in_dim:
            raise ShapeError(f"x: expected last dimension {self.in_dim}, got shape {tuple(x.shape)}")
        h = x
        for lin in self.layers[:-1]:
            h = self.act(lin(h))
        return self.layers[-1](h)

    def unflatten(self, thetas: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Split a batch of flat parameter vectors into per-layer ``(W, b)`` (see :class:`MLPStructure`).

        Parameters
        ----------
        thetas : Tensor, shape (B, d)

        Returns
        -------
        list of (W, b)
            ``W`` has shape (B, out, in), ``b`` has shape (B, out).
        """
        return self.structure.unflatten(thetas)

    def forward_batched(self, params: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
        """Evaluate ``B`` networks with different parameters at once (see :meth:`MLPStructure.forward_batched`).

        Parameters
        ----------
        params : list of (W, b)
            From :meth:`unflatten`.
        x : Tensor, shape (B, n, in_dim) or (n, in_dim)

        Returns
        -------
        Tensor, shape (B, n, out_dim)
        """
        return self.structure.forward_batched(params, x)

    def describe(self) -> dict:
        """Architecture as JSON-ready data (enough to rebuild the module)."""
        return self.structure.describe()


