"""The residual MLP's flat parameter layout and the activation table — one of each in scpo.

The flat vector ``θ ∈ R^d`` is part of the checkpoint contract: ``(W_1, b_1, W_2, b_2, …, W_L, b_L)``
with every ``W_l`` of shape ``(out_l, in_l)`` stored row-major, named ``layers.{l−1}.weight`` and
``layers.{l−1}.bias`` (the names of :class:`scpo.policies.MLP`'s parameters). Training, bound
propagation, the smoothness and Lipschitz certificates, the audit's own reader and the checkpoint
files all use this layout; :class:`MLPStructure` is the only code that defines it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._validate import check_in, check_int
from ..errors import ShapeError, UnsupportedError

__all__ = ["Activation", "ACTIVATIONS", "MLPStructure", "activation"]


@dataclass(frozen=True)
class Activation:
    """One activation function with what bounds and certificates need of it.

    Attributes
    ----------
    name : str
    fn : callable
        ``σ`` on tensors.
    d1 : callable or None
        ``σ'`` on tensors (``None`` where it does not exist everywhere).
    d2 : callable or None
        ``σ''`` on tensors (``None`` for a non-smooth activation).
    module : type
        The ``torch.nn`` module class.
    smooth : bool
        Twice continuously differentiable (needed for a finite smoothness constant ``L`` in ``θ``).
    d1_max, d2_max : float
        ``sup |σ'|`` and ``sup |σ''|`` (``inf`` where unbounded or undefined).
    monotone : bool
        Non-decreasing (interval bounds map end points to end points).
    """

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    d1: Callable[[torch.Tensor], torch.Tensor] | None
    d2: Callable[[torch.Tensor], torch.Tensor] | None
    module: type
    smooth: bool
    d1_max: float
    d2_max: float
    monotone: bool = True


def _tanh_d1(z: torch.Tensor) -> torch.Tensor:
    return 1.0 - torch.tanh(z) ** 2


def _tanh_d2(z: torch.Tensor) -> torch.Tensor:
    t = torch.tanh(z)
    return -2.0 * t * (1.0 - t * t)


ACTIVATIONS: dict[str, Activation] = {
    # sup |tanh''| = 4/(3√3), attained at tanh(z) = ±1/√3
    "tanh": Activation("tanh", torch.tanh, _tanh_d1, _tanh_d2, torch.nn.Tanh, True, 1.0, 4.0 / (3.0 * math.sqrt(3.0))),
    "relu": Activation("relu", torch.relu, None, None, torch.nn.ReLU, False, 1.0, math.inf),
}
"""Activation name -> :class:`Activation` (the only dispatch on activation names in scpo)."""


def activation(name: str) -> Activation:
    """The :class:`Activation` called ``name``; the error lists the valid names.

    Parameters
    ----------
    name : str

    Returns
    -------
    Activation
    """
    return ACTIVATIONS[check_in("activation", name, tuple(ACTIVATIONS))]


@dataclass(frozen=True)
class MLPStructure:
    """Architecture of ``φ(x) = W_L σ(⋯ σ(W_1 x + b_1) ⋯) + b_L`` and its flat parameter layout.

    Attributes
    ----------
    in_dim : int
    hidden : tuple of int
        Hidden widths (may be empty: one affine map).
    out_dim : int
    activation : str
        A key of :data:`ACTIVATIONS`.
    """

    in_dim: int
    hidden: tuple[int, ...]
    out_dim: int
    activation: str = "tanh"

    def __post_init__(self) -> None:
        check_int("in_dim", self.in_dim, minimum=1)
        check_int("out_dim", self.out_dim, minimum=1)
        hidden = tuple(self.hidden)
        for i, h in enumerate(hidden):
            check_int(f"hidden[{i}]", h, minimum=1)
        object.__setattr__(self, "hidden", tuple(int(h) for h in hidden))
        object.__setattr__(self, "in_dim", int(self.in_dim))
        object.__setattr__(self, "out_dim", int(self.out_dim))
        check_in("activation", self.activation, tuple(ACTIVATIONS))

    # ---------------------------------------------------------------- layout
    @property
    def act(self) -> Activation:
        """The :class:`Activation` of the hidden layers."""
        return ACTIVATIONS[self.activation]

    @property
    def widths(self) -> list[int]:
        """``[n_0, n_1, …, n_L]`` (input, hidden, output)."""
        return [self.in_dim, *self.hidden, self.out_dim]

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        """``(out_l, in_l)`` of every weight matrix."""
        w = self.widths
        return tuple((b, a) for a, b in zip(w[:-1], w[1:]))

    @property
    def n_layers(self) -> int:
        """Number of affine layers ``L``."""
        return len(self.hidden) + 1

    @property
    def dim(self) -> int:
        """Number of parameters ``d``."""
        return sum(o * i + o for o, i in self.shapes)

    @property
    def parameter_names(self) -> list[str]:
        """``["layers.0.weight", "layers.0.bias", …]`` in flat order (the checkpoint's tensor names)."""
        return [f"layers.{l}.{kind}" for l in range(self.n_layers) for kind in ("weight", "bias")]

    @property
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Tensor name -> shape, in flat order."""
        out: dict[str, tuple[int, ...]] = {}
        for l, (o, i) in enumerate(self.shapes):
            out[f"layers.{l}.weight"] = (o, i)
            out[f"layers.{l}.bias"] = (o,)
        return out

    @property
    def final_layer(self) -> tuple[str, str]:
        """Names of the last layer's weight and bias (zero at ``θ₀``)."""
        return f"layers.{self.n_layers - 1}.weight", f"layers.{self.n_layers - 1}.bias"

    def offsets(self) -> list[tuple[int, int]]:
        """Start index of ``W_l`` and of ``b_l`` in the flat vector, per layer."""
        out, k = [], 0
        for o, i in self.shapes:
            out.append((k, k + o * i))
            k += o * i + o
        return out

    def require_smooth(self) -> None:
        """Raise :class:`UnsupportedError` unless the activation is smooth (finite ``L`` exists)."""
        if not self.act.smooth:
            raise UnsupportedError(
                f"activation {self.activation!r}: a smoothness constant L in θ needs a smooth activation (tanh); "
                "with ReLU the gradient in θ jumps where a neuron switches, so no finite L exists and (★) is not "
                "justified by any L. The region certificate (scpo.certify.region) does not need L and still applies."
            )

    def describe(self) -> dict[str, Any]:
        """JSON-ready architecture (enough to rebuild the structure)."""
        return {"in_dim": self.in_dim, "hidden": list(self.hidden), "out_dim": self.out_dim,
                "activation": self.activation, "parameters": self.dim}

    @classmethod
    def from_shapes(cls, shapes: Sequence[Sequence[int]], activation: str) -> "MLPStructure":
        """The structure whose weight matrices have ``shapes`` ``[(out_1, in_1), …]``.

        Parameters
        ----------
        shapes : sequence of (out, in)
        activation : str

        Returns
        -------
        MLPStructure

        Raises
        ------
        ShapeError
            If the widths do not chain.
        """
        shapes = [tuple(int(v) for v in s) for s in shapes]
        if not shapes or any(len(s) != 2 for s in shapes):
            raise ShapeError(f"shapes: expected a non-empty list of (out, in) pairs, got {shapes}")
        for a, b in zip(shapes, shapes[1:]):
            if b[1] != a[0]:
                raise ShapeError(f"shapes: layer widths do not chain ({a} then {b})")
        return cls(shapes[0][1], tuple(o for o, _ in shapes[:-1]), shapes[-1][0], activation)

    @classmethod
    def from_module(cls, module: torch.nn.Module) -> "MLPStructure":
        """Read the structure of an :class:`scpo.policies.MLP` or an ``nn.Sequential`` of ``Linear``
        layers (with bias) separated by one kind of activation from :data:`ACTIVATIONS`.

        Parameters
        ----------
        module : nn.Module

        Returns
        -------
        MLPStructure

        Raises
        ------
        UnsupportedError
            For any other module or layer type (named, with its position), mixed activations or a
            ``Linear`` without bias.
        """
        structure = getattr(module, "structure", None)
        if isinstance(structure, MLPStructure):
            return structure
        if not isinstance(module, torch.nn.Sequential):
            raise UnsupportedError(
                f"module: supported are scpo.policies.MLP and nn.Sequential(Linear, activation, …, Linear); "
                f"got unsupported type {type(module).__name__}"
            )
        by_class = {a.module: a.name for a in ACTIVATIONS.values()}
        linears, acts = [], []
        for i, layer in enumerate(module):
            if i % 2 == 0:
                if type(layer) is not torch.nn.Linear:
                    raise UnsupportedError(f"module[{i}]: expected nn.Linear here, got unsupported layer type {type(layer).__name__}")
                if layer.bias is None:
                    raise UnsupportedError(f"module[{i}]: nn.Linear without bias is not supported")
                linears.append(layer)
            else:
                if type(layer) not in by_class:
                    raise UnsupportedError(
                        f"module[{i}]: expected an activation ({', '.join(a.module.__name__ for a in ACTIVATIONS.values())}), "
                        f"got unsupported layer type {type(layer).__name__}"
                    )
                acts.append(by_class[type(layer)])
        if not linears or len(acts) != len(linears) - 1:
            raise UnsupportedError("module: expected an nn.Sequential that starts and ends with nn.Linear")
        if len(set(acts)) > 1:
            raise UnsupportedError(f"module: mixed activations {sorted(set(acts))} are not supported")
        return cls.from_shapes([tuple(lin.weight.shape) for lin in linears], acts[0] if acts else "tanh")

    # ---------------------------------------------------------------- flat vectors
    def _check_flat(self, name: str, n: int) -> None:
        if n != self.dim:
            raise ShapeError(f"{name}: expected {self.dim} parameters per row for {self.describe()}, got {n}")

    def unflatten(self, thetas: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Split a batch of flat vectors into per-layer ``(W, b)`` views (no arithmetic).

        Parameters
        ----------
        thetas : Tensor, shape (B, d)

        Returns
        -------
        list of (W, b)
            ``W`` of shape (B, out, in), ``b`` of shape (B, out), one pair per layer.
        """
        if thetas.ndim != 2:
            raise ShapeError(f"thetas: expected shape (B, d), got {tuple(thetas.shape)}")
        self._check_flat("thetas", thetas.shape[1])
        out, k = [], 0
        B = thetas.shape[0]
        for o, i in self.shapes:
            W = thetas[:, k : k + o * i].reshape(B, o, i)
            k += o * i
            b = thetas[:, k : k + o]
            k += o
            out.append((W, b))
        return out

    def unflatten_numpy(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Split one flat vector (d,) into per-layer ``(W (out, in), b (out,))`` numpy views.

        Parameters
        ----------
        theta : ndarray, shape (d,)

        Returns
        -------
        list of (W, b)
        """
        theta = np.asarray(theta)
        if theta.ndim != 1:
            raise ShapeError(f"theta: expected shape ({self.dim},), got {theta.shape}")
        self._check_flat("theta", theta.shape[0])
        out, k = [], 0
        for o, i in self.shapes:
            out.append((theta[k : k + o * i].reshape(o, i), theta[k + o * i : k + o * i + o]))
            k += o * i + o
        return out

    def flatten(self, layers: Sequence[tuple[Any, Any]]) -> np.ndarray:
        """Inverse of :meth:`unflatten_numpy`: ``[(W_1, b_1), …]`` -> θ (d,) float64.

        Parameters
        ----------
        layers : sequence of (W, b)

        Returns
        -------
        ndarray, shape (d,)
        """
        if len(layers) != self.n_layers:
            raise ShapeError(f"layers: expected {self.n_layers} (W, b) pairs, got {len(layers)}")
        parts = []
        for l, ((W, b), (o, i)) in enumerate(zip(layers, self.shapes)):
            W = np.asarray(W, dtype=np.float64)
            b = np.asarray(b, dtype=np.float64)
            if W.shape != (o, i) or b.shape != (o,):
                raise ShapeError(f"layers[{l}]: expected W {(o, i)} and b {(o,)}, got {W.shape} and {b.shape}")
            parts += [W.ravel(), b]
        return np.concatenate(parts)

    # ---------------------------------------------------------------- evaluation
    def forward_batched(self, params: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
        """Evaluate ``B`` networks with different parameters at once.

        Parameters
        ----------
        params : list of (W, b)
            From :meth:`unflatten`: ``W`` (B, out, in), ``b`` (B, out).
        x : Tensor, shape (B, S, in_dim) or (S, in_dim)
            Inputs; a 2-D tensor is shared by all ``B`` networks.

        Returns
        -------
        Tensor, shape (B, S, out_dim)
        """
        if x.shape[-1] != self.in_dim:
            raise ShapeError(f"x: expected last dimension {self.in_dim}, got shape {tuple(x.shape)}")
        act = self.act.fn
        h = x
        last = len(params) - 1
        for j, (W, b) in enumerate(params):
            if h.ndim == 2:
                h = torch.einsum("ni,boi->bno", h, W) + b[:, None, :]
            else:
                h = torch.baddbmm(b[:, None, :], h, W.transpose(1, 2))
            if j < last:
                h = act(h)
        return h

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``φ_θ(x)`` for one flat ``theta`` (d,) and inputs ``x`` (…, in_dim): shape (…, out_dim).

        Plain tensor operations, so that ``torch.func`` can differentiate and ``vmap`` it.

        Parameters
        ----------
        theta : Tensor, shape (d,)
        x : Tensor, shape (…, in_dim)

        Returns
        -------
        Tensor, shape (…, out_dim)
        """
        act = self.act.fn
        h, k, last = x, 0, self.n_layers - 1
        for j, (o, i) in enumerate(self.shapes):
            W = theta[k : k + o * i].reshape(o, i)
            k += o * i
            b = theta[k : k + o]
            k += o
            h = h @ W.T + b
            if j < last:
                h = act(h)
        return h
