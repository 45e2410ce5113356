"""The graphs bound propagation works on: a residual MLP at fixed parameters and its linear closed loop.

A :class:`Network` is an :class:`~scpo.policies.MLPStructure` (the one flat θ layout of scpo and
the one activation table) together with one parameter vector ``θ``; a :class:`ClosedLoop` is

    x_{t+1} = A x_t + B u_t,   u_t = K x_t + φ_θ(x_t).

Point evaluation goes through the one rollout of scpo: :meth:`ClosedLoop.policy` is the
closed-loop input map for :func:`scpo.systems.rollout`, and :func:`closed_loop_module` wraps the
same rollout into an ``nn.Module`` for external bound-propagation libraries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..._validate import as_array, check_int
from ...errors import ShapeError, UnsupportedError
from ...policies import Activation, LinearBackup, MLPStructure, ResidualPolicy, ZeroBackup
from ...systems import ClosedLoopProblem, rollout
from .types import DT

__all__ = [
    "Network",
    "ClosedLoop",
    "network_from_module",
    "closed_loop",
    "closed_loop_from_policy",
    "require_unswitched",
    "closed_loop_module",
    "feedback_policy",
]


@dataclass(frozen=True)
class Network:
    """A feed-forward network ``φ_θ(x) = W_L σ(⋯ σ(W_1 x + b_1) ⋯) + b_L`` at fixed parameters.

    Attributes
    ----------
    structure : MLPStructure
        Architecture, flat layout and activation.
    theta : ndarray, shape (d,)
        The flat parameters (float64, finite; stored read-only).
    """

    structure: MLPStructure
    theta: np.ndarray
    _layers: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.structure, MLPStructure):
            raise UnsupportedError(f"structure: expected an MLPStructure, got {type(self.structure).__name__}")
        theta = as_array("theta", self.theta, shape=(self.structure.dim,)).copy()
        theta.flags.writeable = False
        object.__setattr__(self, "theta", theta)
        object.__setattr__(self, "_layers", tuple(self.structure.unflatten_numpy(theta)))

    @classmethod
    def from_layers(cls, weights: Any, biases: Any, activation: str = "tanh") -> "Network":
        """The network with weight matrices ``weights`` and bias vectors ``biases``.

        Parameters
        ----------
        weights : sequence of ndarray, shapes (out_l, in_l)
        biases : sequence of ndarray, shapes (out_l,)
        activation : str
            A key of :data:`scpo.policies.ACTIVATIONS` (all hidden layers).

        Returns
        -------
        Network

        Raises
        ------
        ShapeError
            Widths that do not chain, or a bias of the wrong length.
        """
        weights = [as_array(f"weights[{i}]", W, ndim=2) for i, W in enumerate(weights)]
        if len(biases) != len(weights) or not weights:
            raise ShapeError(f"biases: expected {len(weights)} bias vectors (one per weight matrix, at least one), got {len(biases)}")
        structure = MLPStructure.from_shapes([W.shape for W in weights], activation)
        return cls(structure, structure.flatten(list(zip(weights, biases))))

    @property
    def weights(self) -> tuple[np.ndarray, ...]:
        """``W_1 … W_L``, shapes (out_l, in_l) (read-only views of :attr:`theta`)."""
        return tuple(W for W, _ in self._layers)

    @property
    def biases(self) -> tuple[np.ndarray, ...]:
        """``b_1 … b_L``, shapes (out_l,)."""
        return tuple(b for _, b in self._layers)

    @property
    def activation(self) -> Activation:
        """The :class:`~scpo.policies.Activation` of the hidden layers."""
        return self.structure.act

    @property
    def in_dim(self) -> int:
        """Input dimension."""
        return self.structure.in_dim

    @property
    def out_dim(self) -> int:
        """Output dimension."""
        return self.structure.out_dim

    @property
    def hidden(self) -> tuple[int, ...]:
        """Hidden widths."""
        return self.structure.hidden

    @property
    def n_parameters(self) -> int:
        """Number of parameters ``d``."""
        return self.structure.dim

    def flat(self) -> np.ndarray:
        """A writable copy of :attr:`theta`, shape (d,)."""
        return self.theta.copy()

    def with_theta(self, theta: np.ndarray) -> "Network":
        """The same architecture with parameters ``theta``.

        Parameters
        ----------
        theta : ndarray, shape (d,)

        Returns
        -------
        Network
        """
        return Network(self.structure, theta)


@dataclass(frozen=True)
class ClosedLoop:
    """``x⁺ = A x + B (K x + φ(x))`` with the residual network ``φ``.

    Attributes
    ----------
    A : ndarray, shape (n, n)
    B : ndarray, shape (n, m)
    K : ndarray, shape (m, n)
    network : Network
        ``φ : R^n → R^m``.
    """

    A: np.ndarray
    B: np.ndarray
    K: np.ndarray
    network: Network

    def __post_init__(self) -> None:
        A = as_array("A", self.A, ndim=2)
        if A.shape[0] != A.shape[1]:
            raise ShapeError(f"A: expected a square matrix, got shape {A.shape}")
        n = A.shape[0]
        B = as_array("B", self.B, shape=(n, None))
        m = B.shape[1]
        K = as_array("K", self.K, shape=(m, n))
        if not isinstance(self.network, Network):
            raise UnsupportedError(f"network: expected a scpo.certify.bounds.Network, got {type(self.network).__name__}")
        if self.network.in_dim != n or self.network.out_dim != m:
            raise ShapeError(f"network: expected a map R^{n} -> R^{m}, got R^{self.network.in_dim} -> R^{self.network.out_dim}")
        for name, val in (("A", A), ("B", B), ("K", K)):
            val.flags.writeable = False
            object.__setattr__(self, name, val)

    @property
    def n(self) -> int:
        """State dimension."""
        return int(self.A.shape[0])

    @property
    def m(self) -> int:
        """Input dimension."""
        return int(self.B.shape[1])

    @property
    def A_cl(self) -> np.ndarray:
        """``A + B K``."""
        return self.A + self.B @ self.K

    def policy(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The closed-loop input map ``x ↦ K x + φ_θ(x)`` for :func:`scpo.systems.rollout`.

        Returns
        -------
        callable
            States (P, S, n) or (S, n) -> inputs (P, S, m) (``P = 1`` for a 2-D argument); plain
            tensor code, differentiable in the states.
        """
        K = torch.as_tensor(np.array(self.K), dtype=DT)
        theta = torch.as_tensor(np.array(self.network.theta), dtype=DT)
        return feedback_policy(self.network.structure, theta, K)

    def describe(self) -> dict[str, Any]:
        """Dimensions and architecture as JSON-ready data."""
        net = self.network
        return {"n": self.n, "m": self.m, "hidden": list(net.hidden), "activations": [net.structure.activation] * len(net.hidden),
                "parameters": net.n_parameters}


def feedback_policy(structure: MLPStructure, theta: torch.Tensor, K: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x ↦ K x + φ_θ(x)`` as a rollout policy, for one flat ``θ`` given as a tensor (``torch.func``-friendly).

    Parameters
    ----------
    structure : MLPStructure
        The residual ``φ``.
    theta : Tensor, shape (d,)
        Flat parameters (may be a ``torch.func`` transformed tensor).
    K : Tensor, shape (m, n)
        The backup gain.

    Returns
    -------
    callable
        States (P, S, n) or (S, n) -> inputs (P, S, m) (``P = 1`` for a 2-D argument).
    """

    def pi(x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:
            x = x.unsqueeze(0)
        return x @ K.T + structure.forward(theta, x)

    return pi


def network_from_module(module: nn.Module, theta: np.ndarray | None = None) -> Network:
    """Read a supported network: an :class:`scpo.policies.MLP` or an ``nn.Sequential`` of ``Linear``
    layers (with bias) separated by one activation of :data:`scpo.policies.ACTIVATIONS`.

    Parameters
    ----------
    module : nn.Module
    theta : ndarray, shape (d,), optional
        Flat parameters to use instead of the module's own (the layout of
        :class:`~scpo.policies.MLPStructure`, which is the order of ``module.parameters()``).

    Returns
    -------
    Network

    Raises
    ------
    UnsupportedError
        For any other module or layer type; the message names the type and its position.
    """
    structure = MLPStructure.from_module(module)
    if theta is None:
        theta = torch.nn.utils.parameters_to_vector(module.parameters()).detach().cpu().to(DT).numpy().copy()
    return Network(structure, theta)


def require_unswitched(policy: ResidualPolicy) -> None:
    """Refuse a policy that switches its residual off inside ``X_s`` (discontinuous in the state).

    Parameters
    ----------
    policy : ResidualPolicy

    Raises
    ------
    UnsupportedError
        If ``policy.switches``: neither bound propagation nor a smoothness constant in θ applies
        across the switching surface.
    """
    if isinstance(policy, ResidualPolicy) and policy.switches:
        raise UnsupportedError(
            "policy: a ResidualPolicy that switches the residual off inside X_s is not supported (the switch is "
            "discontinuous in the state, so neither bound propagation nor a smoothness constant in θ applies across it); "
            "certify a policy trained with switching=False"
        )


def closed_loop(problem: ClosedLoopProblem, structure: MLPStructure, theta: np.ndarray) -> ClosedLoop:
    """The closed loop ``x⁺ = A x + B (K x + φ_θ(x))`` of a problem and residual parameters.

    Parameters
    ----------
    problem : ClosedLoopProblem
        ``A``, ``B`` and the backup ``K``.
    structure : MLPStructure
        The residual ``φ : R^n → R^m``.
    theta : ndarray, shape (d,)

    Returns
    -------
    ClosedLoop
    """
    if not isinstance(problem, ClosedLoopProblem):
        raise UnsupportedError(f"problem: expected a ClosedLoopProblem, got {type(problem).__name__}")
    return ClosedLoop(problem.A, problem.B, problem.K, Network(structure, theta))


def closed_loop_from_policy(problem: ClosedLoopProblem, policy: ResidualPolicy, theta: np.ndarray | None = None) -> ClosedLoop:
    """The closed loop of a problem under a supported residual policy.

    Parameters
    ----------
    problem : ClosedLoopProblem
        ``A`` and ``B``.
    policy : ResidualPolicy
        With a :class:`~scpo.policies.LinearBackup` or :class:`~scpo.policies.ZeroBackup` and no
        switching.
    theta : ndarray, shape (d,), optional
        Flat residual parameters to use instead of the policy's own.

    Returns
    -------
    ClosedLoop

    Raises
    ------
    UnsupportedError
        A switching policy, another backup or policy type, or an unsupported layer (named).
    """
    if not isinstance(policy, ResidualPolicy):
        raise UnsupportedError(f"policy: expected a ResidualPolicy, got unsupported type {type(policy).__name__}")
    require_unswitched(policy)
    if isinstance(policy.backup, LinearBackup):
        K = policy.backup.K.detach().cpu().to(DT).numpy()
    elif isinstance(policy.backup, ZeroBackup):
        K = np.zeros((problem.m, problem.n))
    else:
        raise UnsupportedError(f"policy.backup: expected LinearBackup or ZeroBackup, got unsupported type {type(policy.backup).__name__}")
    return ClosedLoop(problem.A, problem.B, K, network_from_module(policy.residual, theta))


class _ClosedLoopModule(nn.Module):
    """``x_0 ↦ (x_1, …, x_T, u_0, …, u_{T−1})`` flattened: :func:`scpo.systems.rollout` with ``nn`` layers."""

    def __init__(self, loop: ClosedLoop, horizon: int) -> None:
        super().__init__()
        self.horizon = horizon
        self.A = torch.as_tensor(np.array(loop.A), dtype=DT)
        self.B = torch.as_tensor(np.array(loop.B), dtype=DT)
        self.linears = nn.ModuleList()
        for W, b in zip(loop.network.weights, loop.network.biases):
            lin = nn.Linear(W.shape[1], W.shape[0], dtype=DT)
            with torch.no_grad():
                lin.weight.copy_(torch.tensor(W))
                lin.bias.copy_(torch.tensor(b))
            lin.requires_grad_(False)
            self.linears.append(lin)
        self.act = loop.network.activation.module()
        self.K = nn.Linear(loop.n, loop.m, bias=False, dtype=DT)
        with torch.no_grad():
            self.K.weight.copy_(torch.tensor(np.array(loop.K)))
        self.K.requires_grad_(False)

    def policy(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for j, lin in enumerate(self.linears):
            h = lin(h)
            if j < len(self.linears) - 1:
                h = self.act(h)
        return self.K(x) + h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x_0`` (B, n) -> ``[x_1, …, x_T, u_0, …, u_{T−1}]`` (B, T(n+m))."""
        ro = rollout(self, self.policy, x.unsqueeze(0), self.horizon)
        b = x.shape[0]
        return torch.cat([ro.states[0, :, 1:].reshape(b, -1), ro.inputs[0].reshape(b, -1)], dim=-1)


def closed_loop_module(loop: ClosedLoop, horizon: int) -> nn.Module:
    """A plain ``nn.Module`` mapping ``x_0`` (B, n) to ``[x_1, …, x_T, u_0, …, u_{T−1}]`` (B, T(n+m)).

    For external bound-propagation libraries (auto_LiRPA traces it). Its forward pass is
    :func:`scpo.systems.rollout` with the network written as ``nn.Linear`` and activation layers.

    Parameters
    ----------
    loop : ClosedLoop
    horizon : int
        ``T ≥ 1``.

    Returns
    -------
    nn.Module
    """
    if not isinstance(loop, ClosedLoop):
        raise UnsupportedError(f"loop: expected a ClosedLoop, got {type(loop).__name__}")
    return _ClosedLoopModule(loop, check_int("horizon", horizon, minimum=1))
