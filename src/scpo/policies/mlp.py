"""The residual network ``φ_θ``: an MLP whose final layer starts exactly at zero (DESIGN §4)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .._validate import check_in, check_int
from ..errors import InvalidInputError, ShapeError

__all__ = ["MLP", "ACTIVATIONS"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


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
        check_int("in_dim", in_dim, minimum=1)
        check_int("out_dim", out_dim, minimum=1)
        for i, h in enumerate(hidden):
            check_int(f"hidden[{i}]", h, minimum=1)
        self.activation_name = check_in("activation", activation, tuple(ACTIVATIONS))
        self.in_dim, self.out_dim, self.hidden = int(in_dim), int(out_dim), tuple(int(h) for h in hidden)
        widths = [self.in_dim, *self.hidden, self.out_dim]
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
        self.act = ACTIVATIONS[self.activation_name]()

    @property
    def final_layer(self) -> nn.Linear:
        """The output layer whose zero initialisation gives the base case of the induction."""
        return self.layers[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_dim:
            raise ShapeError(f"x: expected last dimension {self.in_dim}, got shape {tuple(x.shape)}")
        h = x
        for lin in self.layers[:-1]:
            h = self.act(lin(h))
        return self.layers[-1](h)

    def unflatten(self, thetas: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Split a batch of flat parameter vectors into per-layer ``(W, b)``.

        Parameters
        ----------
        thetas : Tensor, shape (B, d)
            Flat vectors in the order of :meth:`parameters` (``W_1, b_1, W_2, b_2, …``).

        Returns
        -------
        list of (W, b)
            ``W`` has shape (B, out, in), ``b`` has shape (B, out).
        """
        if thetas.ndim != 2:
            raise ShapeError(f"thetas: expected shape (B, d), got {tuple(thetas.shape)}")
        d = sum(p.numel() for p in self.parameters())
        if thetas.shape[1] != d:
            raise ShapeError(f"thetas: expected {d} parameters per row, got {thetas.shape[1]}")
        out, k = [], 0
        B = thetas.shape[0]
        for lin in self.layers:
            o, i = lin.weight.shape
            W = thetas[:, k : k + o * i].reshape(B, o, i)
            k += o * i
            b = thetas[:, k : k + o]
            k += o
            out.append((W, b))
        return out

    def forward_batched(self, params: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
        """Evaluate ``B`` networks with different parameters at once.

        Parameters
        ----------
        params : list of (W, b)
            From :meth:`unflatten`: ``W`` (B, out, in), ``b`` (B, out).
        x : Tensor, shape (B, n, in_dim) or (n, in_dim)
            Inputs; a 2-D tensor is shared by all ``B`` networks.

        Returns
        -------
        Tensor, shape (B, n, out_dim)
        """
        if x.shape[-1] != self.in_dim:
            raise ShapeError(f"x: expected last dimension {self.in_dim}, got shape {tuple(x.shape)}")
        h = x
        last = len(params) - 1
        for j, (W, b) in enumerate(params):
            if h.ndim == 2:
                h = torch.einsum("ni,boi->bno", h, W) + b[:, None, :]
            else:
                h = torch.baddbmm(b[:, None, :], h, W.transpose(1, 2))
            if j < last:
                h = self.act(h)
        return h

    def describe(self) -> dict:
        """Architecture as JSON-ready data (enough to rebuild the module)."""
        return {
            "in_dim": self.in_dim,
            "hidden": list(self.hidden),
            "out_dim": self.out_dim,
            "activation": self.activation_name,
            "parameters": sum(p.numel() for p in self.parameters()),
        }


