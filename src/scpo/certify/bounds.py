"""Sound bound propagation through MLPs and unrolled linear closed loops (DESIGN §2, §6).

The graphs the toolkit builds are small and fixed: a residual MLP ``φ`` (``Linear`` layers with
``tanh`` or ``ReLU`` between them) inside the closed loop

    x_{t+1} = A x_t + B u_t,   u_t = K x_t + φ(x_t),   t = 0 … T−1,

with a box of initial states (or, for interval bound propagation, also a box of parameters around
``θ``). This module bounds every state ``x_t``, every input ``u_t``, linear functionals ``H x_t`` and
``H_u u_t`` of them, the terminal quadratic ``x_Tᵀ P x_T`` and the one-step value change
``x_1ᵀPx_1 − x_0ᵀPx_0`` over each box, for thousands of boxes at once (no Python loop over boxes).

Two methods
-----------
``"ibp"``  interval bound propagation: every quantity is an interval, affine maps use
           midpoint-radius arithmetic (``W[c ± r] ⊆ Wc ± |W| r``), monotone activations map
           endpoints to endpoints. Cheap and loose: the intervals forget correlations, so the
           closed loop's radius grows like ``|A + BK|^t``.
``"crown"`` linear relaxation based bound propagation (CROWN, Zhang et al. 2018) with the
           *parallel-chord* relaxation of every activation (:func:`activation_relaxation`):
           ``k z + β_l ≤ σ(z) ≤ k z + β_u`` on ``[l, u]`` with one slope ``k`` for both sides.
           Because the two sides share the slope, the back-substitution of any output row
           ``cᵀ y`` through the relaxed graph uses the same coefficients for the lower and the
           upper bound; it gives ``cᵀy ∈ λᵀx₀ + Σ_j a_j (β_l,j+β_u,j)/2 ± Σ_j |a_j| (β_u,j−β_l,j)/2``
           where ``a_j`` is the coefficient that reaches neuron ``j``. That is exactly what a
           forward propagation of the affine form
           ``y = c + G_0 ε_0 + Σ_j g_j η_j`` (``ε_0`` the normalised initial state, one new symbol
           ``η_j ∈ [−1, 1]`` per relaxed neuron with ``g_j = (β_u,j−β_l,j)/2``) returns, so this
           module computes the CROWN bounds in that forward form (a zonotope): every intermediate
           pre-activation bound is the concretisation of its affine form (the CROWN intermediate
           bound by back-substitution to the input box), intersected with the interval bound from
           the previous layer's bound. The symbols of step ``t`` reach every later quantity only
           through ``φ``'s output ``Σ_j e_j η_j ∈ R^m``; with one input (``m = 1``) that is a
           scalar with range exactly ``[−Σ|e_j|, Σ|e_j|]``, so they are merged into one generator
           without changing any bound (``n + T`` symbols instead of ``n + T·Σ hidden``). For
           ``m > 1`` they are kept; for two states and many symbols the sums ``Σ_k |aᵀg_k|`` are
           then taken over generators sorted by angle (see ``_Support``).

Terminal quadratic. ``x_T`` lies in the zonotope ``Z_T = {c + G ε : ε ∈ [−1,1]^N}``; the maximum
of the convex ``xᵀPx`` over ``Z_T`` is attained at a vertex. For two states the vertices are
enumerated exactly (sort the generators by angle; the ``2N`` vertices are partial sums), so the
bound is the exact maximum over ``Z_T``. For ``n > 2`` the bound is the maximum over the corners
of the interval hull of ``Z_T`` (``2^n ≤ 4096`` corners) or, beyond that, interval arithmetic.
IBP uses the interval hull. The value change ``ΔV = V(x_1) − V(x_0)`` over a box is a quadratic in
the symbols of ``(x_0, x_1)``; it is bounded by its value at the centre, plus the ``ℓ₁`` norm of its
gradient there, plus ``Σ_i max(Q_ii, 0) + Σ_{i≠j} |Q_ij|`` for its Hessian part ``Q``.

Floating point. Everything is computed in float64 with round-to-nearest (torch has no directed
rounding). Every bound this module returns, and every intermediate pre-activation bound it uses
to build a relaxation, is widened outward by ``margin.rel · max(|lower|, |upper|) + margin.abs``
(defaults ``1e-9`` and ``1e-10``). The standard error bound of a float64 dot product of length
``N`` is ``N u Σ|a_i b_i|`` with ``u = 2⁻⁵³``; the longest sums here (a few thousand terms, of the
magnitude of the bound itself because the closed loop is stable) stay below ``1e-12`` relative, so
the margin leaves more than two orders of magnitude of headroom. The margin is recorded in every
result (:class:`Margin`); a claim built from these bounds carries level ``sound``.

Optional reference backend. :func:`auto_lirpa_rollout_bounds` runs upstream auto_LiRPA (imported
lazily; it is not a requirement of scpo) on the same closed loop, for users who have it.

References
----------
H. Zhang, T.-W. Weng, P.-Y. Chen, C.-J. Hsieh, L. Daniel, "Efficient Neural Network Robustness
Certification with General Activation Functions", NeurIPS 2018 (CROWN).
G. Singh, T. Gehr, M. Mirman, M. Püschel, M. Vechev, "Fast and Effective Robustness Certification",
NeurIPS 2018 (zonotope propagation; the same parallel relaxations for ReLU).
S. M. Rump, "Fast and parallel interval arithmetic", BIT 39 (1999) (midpoint-radius products).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._validate import as_array, check_in, check_int, check_nonnegative, check_positive
from ..errors import InvalidInputError, NonFiniteError, ShapeError, UnsupportedError

__all__ = [
    "ACTIVATIONS",
    "METHODS",
    "Margin",
    "IntervalBounds",
    "LinearBounds",
    "Network",
    "ClosedLoop",
    "RolloutBounds",
    "activation_relaxation",
    "interval_affine",
    "ibp_network",
    "network_from_module",
    "closed_loop_from_policy",
    "closed_loop_from_task",
    "parameter_box",
    "as_boxes",
    "bound_rollout",
    "simulate",
    "closed_loop_module",
    "zonotope_max_quadratic",
    "box_max_quadratic",
    "auto_lirpa_rollout_bounds",
]

logger = logging.getLogger(__name__)

ACTIVATIONS = ("tanh", "relu")
METHODS = ("ibp", "crown")
_DT = torch.float64
_U = 2.0**-53  # unit roundoff of float64
_MEMORY_BUDGET = 48 * 2**20  # bytes for the largest transient tensor of one chunk of boxes
_SORT_MIN_GENERATORS = 256  # 2-D zonotopes with more generators use the sorted support function


# ----------------------------------------------------------------------------- value types
@dataclass(frozen=True, kw_only=True)
class Margin:
    """Outward widening of every bound: ``rel · max(|lower|, |upper|) + abs``.

    Attributes
    ----------
    rel : float, default 1e-9
        Relative part (covers float64 round-off of the sums, see the module docstring).
    abs : float, default 1e-10
        Absolute part (covers results near zero).
    """

    rel: float = 1e-9
    abs: float = 1e-10

    def __post_init__(self) -> None:
        check_nonnegative("margin.rel", self.rel)
        check_nonnegative("margin.abs", self.abs)
        if self.rel > 1e-3:
            raise InvalidInputError(f"margin.rel: expected a small relative margin (≤ 1e-3), got {self.rel}")

    def widen(self, lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[lower − s, upper + s]`` with ``s = rel · max(|lower|, |upper|) + abs``."""
        s = self.rel * torch.maximum(lower.abs(), upper.abs()) + self.abs
        return lower - s, upper + s

    def widen_upper(self, upper: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
        """``upper + rel · magnitude + abs`` for a one-sided bound whose terms have ``magnitude``."""
        return upper + self.rel * magnitude + self.abs

    def to_dict(self) -> dict[str, Any]:
        """The margin as recorded in claim details."""
        return {"relative": self.rel, "absolute": self.abs,
                "rule": "every bound widened outward by relative·max(|lower|,|upper|) + absolute"}


DEFAULT_MARGIN = Margin()


@dataclass(frozen=True)
class IntervalBounds:
    """Elementwise bounds ``lower ≤ y ≤ upper``.

    Attributes
    ----------
    lower, upper : Tensor, same shape (…, k), float64
    """

    lower: torch.Tensor
    upper: torch.Tensor

    def __post_init__(self) -> None:
        if self.lower.shape != self.upper.shape:
            raise ShapeError(f"IntervalBounds: lower has shape {tuple(self.lower.shape)}, upper {tuple(self.upper.shape)}")

    @property
    def center(self) -> torch.Tensor:
        """``(lower + upper) / 2``."""
        return (self.lower + self.upper) / 2

    @property
    def radius(self) -> torch.Tensor:
        """``(upper − lower) / 2``."""
        return (self.upper - self.lower) / 2

    @property
    def width(self) -> torch.Tensor:
        """``upper − lower``."""
        return self.upper - self.lower

    @property
    def shape(self) -> torch.Size:
        """Shape of either bound."""
        return self.lower.shape

    def __getitem__(self, item: Any) -> "IntervalBounds":
        return IntervalBounds(self.lower[item], self.upper[item])

    def contains(self, y: torch.Tensor) -> torch.Tensor:
        """Elementwise ``lower ≤ y ≤ upper`` (False on NaN)."""
        return (self.lower <= y) & (y <= self.upper)

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` as numpy arrays."""
        return self.lower.detach().cpu().numpy(), self.upper.detach().cpu().numpy()


@dataclass(frozen=True)
class LinearBounds:
    """Affine bounds in the initial state: ``A_l x₀ + b_l ≤ y ≤ A_u x₀ + b_u`` for every ``x₀`` in ``region``.

    Attributes
    ----------
    lower_A, upper_A : Tensor, shape (B, …, k, n)
    lower_b, upper_b : Tensor, shape (B, …, k)
    region : IntervalBounds, shape (B, n)
        The input boxes.
    """

    lower_A: torch.Tensor
    lower_b: torch.Tensor
    upper_A: torch.Tensor
    upper_b: torch.Tensor
    region: IntervalBounds

    def concretize(self) -> IntervalBounds:
        """The interval bounds implied over the region: ``min/max`` of each affine bound over the box."""
        c, r = self.region.center, self.region.radius
        extra = self.lower_A.ndim - 2 - c.ndim + 1
        shape = (c.shape[0],) + (1,) * extra + (1, c.shape[-1])
        c, r = c.reshape(shape), r.reshape(shape)
        lo = (self.lower_A * c).sum(-1) - (self.lower_A.abs() * r).sum(-1) + self.lower_b
        hi = (self.upper_A * c).sum(-1) + (self.upper_A.abs() * r).sum(-1) + self.upper_b
        return IntervalBounds(lo, hi)

    def evaluate(self, x0: torch.Tensor) -> IntervalBounds:
        """The two affine bounds evaluated at states ``x0`` of shape (B, n)."""
        extra = self.lower_A.ndim - 2 - x0.ndim + 1
        x = x0.reshape((x0.shape[0],) + (1,) * extra + (1, x0.shape[-1]))
        return IntervalBounds((self.lower_A * x).sum(-1) + self.lower_b, (self.upper_A * x).sum(-1) + self.upper_b)


@dataclass(frozen=True)
class Network:
    """A feed-forward network ``W_L σ_{L−1}(⋯ σ_1(W_1 x + b_1) ⋯) + b_L`` as float64 arrays.

    Attributes
    ----------
    weights : tuple of ndarray, shapes (out_i, in_i)
    biases : tuple of ndarray, shapes (out_i,)
    activations : tuple of str
        One of :data:`ACTIVATIONS` per hidden layer (``len(weights) − 1`` entries).
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activations: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.weights) == 0:
            raise ShapeError("weights: expected at least one layer, got none")
        if len(self.biases) != len(self.weights):
            raise ShapeError(f"biases: expected {len(self.weights)} bias vectors, got {len(self.biases)}")
        if len(self.activations) != len(self.weights) - 1:
            raise ShapeError(f"activations: expected {len(self.weights) - 1} (one per hidden layer), got {len(self.activations)}")
        ws, bs = [], []
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            W = as_array(f"weights[{i}]", W, ndim=2)
            b = as_array(f"biases[{i}]", b, shape=(W.shape[0],))
            if i > 0 and W.shape[1] != ws[-1].shape[0]:
                raise ShapeError(f"weights[{i}]: expected {ws[-1].shape[0]} columns to follow layer {i - 1}, got shape {W.shape}")
            W.flags.writeable = False
            b.flags.writeable = False
            ws.append(W)
            bs.append(b)
        for i, a in enumerate(self.activations):
            check_in(f"activations[{i}]", a, ACTIVATIONS)
        object.__setattr__(self, "weights", tuple(ws))
        object.__setattr__(self, "biases", tuple(bs))
        object.__setattr__(self, "activations", tuple(self.activations))

    @property
    def in_dim(self) -> int:
        """Input dimension."""
        return int(self.weights[0].shape[1])

    @property
    def out_dim(self) -> int:
        """Output dimension."""
        return int(self.weights[-1].shape[0])

    @property
    def hidden(self) -> tuple[int, ...]:
        """Hidden widths."""
        return tuple(int(W.shape[0]) for W in self.weights[:-1])

    @property
    def n_parameters(self) -> int:
        """Number of parameters ``d``."""
        return int(sum(W.size + b.size for W, b in zip(self.weights, self.biases)))

    def flat(self) -> np.ndarray:
        """The parameters as one vector in the order ``W_1, b_1, W_2, b_2, …`` (as :meth:`MLP.unflatten`)."""
        return np.concatenate([np.concatenate([W.ravel(), b]) for W, b in zip(self.weights, self.biases)])

    def unflatten(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Split a flat vector of this architecture into per-layer ``(W, b)``."""
        theta = as_array("theta", theta, shape=(self.n_parameters,), finite=False)
        out, k = [], 0
        for W in self.weights:
            o, i = W.shape
            out.append((theta[k : k + o * i].reshape(o, i), theta[k + o * i : k + o * i + o]))
            k += o * i + o
        return out

    def with_theta(self, theta: np.ndarray) -> "Network":
        """The same architecture with parameters ``theta`` (shape (d,))."""
        theta = as_array("theta", theta, shape=(self.n_parameters,))
        layers = self.unflatten(theta)
        return Network(tuple(W for W, _ in layers), tuple(b for _, b in layers), self.activations)


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

    def describe(self) -> dict[str, Any]:
        """Dimensions and architecture as JSON-ready data."""
        net = self.network
        return {"n": self.n, "m": self.m, "hidden": list(net.hidden), "activations": list(net.activations),
                "parameters": net.n_parameters}


@dataclass(frozen=True)
class RolloutBounds:
    """Bounds over each initial-state box along a ``T``-step closed-loop rollout.

    Attributes
    ----------
    method : str
        ``"ibp"`` or ``"crown"``.
    states : IntervalBounds, shape (B, T+1, n)
        ``x_0 … x_T``.
    inputs : IntervalBounds, shape (B, T, m)
        ``u_0 … u_{T−1}``.
    state_rows : IntervalBounds or None, shape (B, T+1, p)
        ``H x_t`` for the requested rows ``H`` (bounded jointly, tighter than from ``states``).
    input_rows : IntervalBounds or None, shape (B, T, q)
        ``H_u u_t``.
    terminal_upper : Tensor or None, shape (B,)
        Upper bound of ``x_Tᵀ P x_T``.
    value_change_upper : Tensor or None, shape (B,)
        Upper bound of ``x_1ᵀ P x_1 − x_0ᵀ P x_0`` (``"crown"`` only).
    state_linear, input_linear : LinearBounds or None
        ``"crown"``: affine bounds of ``x_t`` and ``u_t`` in ``x_0`` (shapes (B, T+1, n, n), (B, T, m, n)).
    margin : Margin
        The outward widening applied to every bound above.
    """

    method: str
    states: IntervalBounds
    inputs: IntervalBounds
    state_rows: IntervalBounds | None
    input_rows: IntervalBounds | None
    terminal_upper: torch.Tensor | None
    value_change_upper: torch.Tensor | None
    state_linear: LinearBounds | None
    input_linear: LinearBounds | None
    margin: Margin = field(default_factory=Margin)


# ----------------------------------------------------------------------------- builders
def network_from_module(module: nn.Module, theta: np.ndarray | None = None) -> Network:
    """Read a supported network: an ``scpo.policies.MLP`` or an ``nn.Sequential`` of
    ``Linear`` layers separated by ``Tanh``/``ReLU``.

    Parameters
    ----------
    module : nn.Module
    theta : ndarray, shape (d,), optional
        Flat parameters to use instead of the module's own (order of ``module.parameters()``).

    Returns
    -------
    Network

    Raises
    ------
    UnsupportedError
        For any other module or layer type; the message names the type and its position.
    """
    from ..policies.mlp import MLP

    if isinstance(module, MLP):
        linears = list(module.layers)
        acts: list[nn.Module] = [module.act] * (len(linears) - 1)
        for i, lin in enumerate(linears):
            if type(lin) is not nn.Linear:
                raise UnsupportedError(f"layer {i}: bound propagation supports nn.Linear layers in an MLP, got {type(lin).__name__}")
        if type(module.act) not in (nn.Tanh, nn.ReLU):
            raise UnsupportedError(f"activation: bound propagation supports Tanh and ReLU, got {type(module.act).__name__}")
    elif isinstance(module, nn.Sequential):
        layers = list(module)
        linears, acts = [], []
        for i, layer in enumerate(layers):
            expect_linear = i % 2 == 0
            if expect_linear and type(layer) is nn.Linear:
                linears.append(layer)
            elif not expect_linear and type(layer) in (nn.Tanh, nn.ReLU):
                acts.append(layer)
            else:
                want = "nn.Linear" if expect_linear else "nn.Tanh or nn.ReLU"
                raise UnsupportedError(
                    f"layer {i}: bound propagation supports Linear layers separated by Tanh/ReLU; expected {want} "
                    f"here, got unsupported layer type {type(layer).__name__}"
                )
        if not linears or len(acts) != len(linears) - 1:
            raise UnsupportedError("module: expected an nn.Sequential that starts and ends with nn.Linear")
    else:
        raise UnsupportedError(
            f"module: bound propagation supports scpo.policies.MLP and nn.Sequential(Linear, Tanh|ReLU, …, Linear), "
            f"got unsupported type {type(module).__name__}"
        )
    names = ["tanh" if isinstance(a, nn.Tanh) else "relu" for a in acts]
    ws, bs = [], []
    for lin in linears:
        ws.append(lin.weight.detach().cpu().to(_DT).numpy().copy())
        b = lin.bias.detach().cpu().to(_DT).numpy().copy() if lin.bias is not None else np.zeros(lin.weight.shape[0])
        bs.append(b)
    net = Network(tuple(ws), tuple(bs), tuple(names))
    if theta is not None:
        if any(lin.bias is None for lin in linears):
            raise UnsupportedError("theta: flat parameters need every Linear layer to have a bias")
        net = net.with_theta(theta)
    return net


def closed_loop_from_policy(A: np.ndarray, B: np.ndarray, policy: nn.Module, theta: np.ndarray | None = None) -> ClosedLoop:
    """The closed loop of ``x⁺ = A x + B π(x)`` for a supported policy.

    Parameters
    ----------
    A, B : ndarray
    policy : ResidualPolicy or nn.Module
        ``ResidualPolicy`` with a ``LinearBackup`` or ``ZeroBackup`` and no switching, or a bare
        supported network (then ``π = φ``, ``K = 0``).
    theta : ndarray, optional
        Flat residual parameters to use instead of the policy's own.

    Raises
    ------
    UnsupportedError
        A switching policy (the switch on ``xᵀPx ≤ γ_s`` is discontinuous), another backup type,
        or an unsupported layer (named).
    """
    from ..policies.residual import LinearBackup, ResidualPolicy, ZeroBackup

    A = as_array("A", A, ndim=2)
    B = as_array("B", B, ndim=2)
    if isinstance(policy, ResidualPolicy):
        if policy.switch_P is not None:
            raise UnsupportedError(
                "policy: a ResidualPolicy that switches the residual off inside X_s is not supported by bound "
                "propagation (the switch is discontinuous); certify a policy trained with switching=False"
            )
        if isinstance(policy.backup, LinearBackup):
            K = policy.backup.K.detach().cpu().to(_DT).numpy()
        elif isinstance(policy.backup, ZeroBackup):
            K = np.zeros((B.shape[1], A.shape[0]))
        else:
            raise UnsupportedError(f"policy.backup: expected LinearBackup or ZeroBackup, got unsupported type {type(policy.backup).__name__}")
        net = network_from_module(policy.residual, theta)
    else:
        net = network_from_module(policy, theta)
        K = np.zeros((B.shape[1], A.shape[0]))
    return ClosedLoop(A, B, K, net)


def closed_loop_from_task(task: Any, theta: np.ndarray) -> ClosedLoop:
    """The closed loop of a state-space task (e.g. the double integrator) at parameters ``theta``."""
    if not all(hasattr(task, a) for a in ("system", "policy")):
        raise UnsupportedError(
            f"task: expected a closed-loop task with a linear system and a residual policy, got {type(task).__name__} "
            f"({getattr(task, 'name', '?')!r})"
        )
    return closed_loop_from_policy(task.system.A, task.system.B, task.policy, theta)


def parameter_box(theta: np.ndarray, radius: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box ``[θ − r, θ + r]`` of parameters (``r > 0`` scalar or per coordinate).

    Returns
    -------
    lower, upper : ndarray, shape (d,)
    """
    theta = as_array("theta", theta, ndim=1)
    if np.ndim(radius) == 0:
        r = np.full_like(theta, check_positive("radius", radius))
    else:
        r = as_array("radius", radius, shape=theta.shape)
        if not np.all(r > 0):
            raise InvalidInputError(f"radius: expected positive entries, got minimum {float(r.min())}")
    return theta - r, theta + r


def as_boxes(lower: Any, upper: Any, *, n: int | None = None, name: str = "boxes") -> IntervalBounds:
    """Validate a batch of boxes ``[lower_i, upper_i]`` and return them as float64 :class:`IntervalBounds`.

    Parameters
    ----------
    lower, upper : array_like, shape (B, n)
    n : int, optional
        Required dimension.

    Raises
    ------
    ShapeError, NonFiniteError, InvalidInputError
        Mismatched shapes, NaN/inf, or a box with ``lower > upper`` (the first one is named).
    """
    lo = lower.detach().cpu().to(_DT).numpy() if isinstance(lower, torch.Tensor) else lower
    hi = upper.detach().cpu().to(_DT).numpy() if isinstance(upper, torch.Tensor) else upper
    lo = as_array(f"{name} lower", lo, shape=(None, n))
    hi = as_array(f"{name} upper", hi, shape=lo.shape)
    bad = np.argwhere(~(lo <= hi))
    if bad.size:
        i, j = bad[0]
        raise InvalidInputError(
            f"{name}: expected lower <= upper in every coordinate, got lower {lo[i, j]!r} > upper {hi[i, j]!r} "
            f"(box {i}, coordinate {j}; {len(bad)} such entr{'y' if len(bad) == 1 else 'ies'})"
        )
    return IntervalBounds(torch.as_tensor(lo, dtype=_DT), torch.as_tensor(hi, dtype=_DT))


# ----------------------------------------------------------------------------- relaxations
def activation_relaxation(name: str, lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Parallel linear bounds of an activation on intervals: ``k z + β_l ≤ σ(z) ≤ k z + β_u`` on ``[l, u]``.

    The slope ``k`` is the chord slope ``(σ(u) − σ(l))/(u − l)`` (for ``u − l ≤ 1e-9`` the
    derivative at the midpoint); the offsets are the exact extrema

        β_l = min_{z∈[l,u]} g(z),   β_u = max_{z∈[l,u]} g(z),   g(z) = σ(z) − k z,

    widened by a few units of round-off.

    Soundness. For every ``z ∈ [l, u]``, ``β_l ≤ g(z) ≤ β_u`` by definition of the minimum and the
    maximum, i.e. ``k z + β_l ≤ σ(z) ≤ k z + β_u``; nothing depends on the choice of ``k``. The
    extrema of the continuous ``g`` on the compact ``[l, u]`` are attained at an end point or at an
    interior critical point. For ``tanh``, ``g'(z) = 1 − tanh²(z) − k`` vanishes only at
    ``z = ±atanh(√(1 − k))`` when ``0 < k ≤ 1`` (and nowhere otherwise), so the candidates are
    ``{l, u, ±atanh(√(1−k))}`` clipped to ``[l, u]`` (a clipped candidate is an end point, already a
    candidate). For ``ReLU`` ``g`` is piecewise linear with its only kink at 0, so the candidates
    are ``{l, u, clip(0, l, u)}``. Round-off: ``g`` is evaluated with an error below
    ``4u (1 + |k| max(|l|,|u|))``; a critical point computed with error ``δ`` lowers the computed
    extremum by at most ``max|g''| δ² / 2 ≤ 0.4 δ²`` (``g'`` vanishes there); both are covered by the
    widening ``16u (1 + |k| max(|l|, |u|))``.

    For a fixed slope these offsets are the tightest possible; for ReLU with ``l < 0 < u`` they give
    the relaxation ``k z ≤ ReLU(z) ≤ k (z − l)``, ``k = u/(u−l)``.

    Parameters
    ----------
    name : {"tanh", "relu"}
    lower, upper : Tensor, same shape
        Pre-activation bounds with ``lower ≤ upper``.

    Returns
    -------
    slope, offset_lower, offset_upper : Tensor
        Same shape as ``lower``.
    """
    check_in("activation", name, ACTIVATIONS)
    l, u = lower, upper
    w = u - l
    mid = (l + u) / 2
    if name == "tanh":
        tl, tu = torch.tanh(l), torch.tanh(u)
        chord = (tu - tl) / torch.where(w > 0, w, torch.ones_like(w))
        k = torch.where(w > 1e-9, chord, 1.0 - torch.tanh(mid) ** 2)
        s = torch.sqrt(torch.clamp(1.0 - k, min=0.0, max=1.0))
        zc = torch.atanh(torch.clamp(s, max=1.0 - 2 * _U))  # ≥ 0; finite
        cands = torch.stack([l, u, torch.minimum(torch.maximum(zc, l), u), torch.minimum(torch.maximum(-zc, l), u)])
        g = torch.tanh(cands) - k * cands
    else:
        k = torch.where(l >= 0, torch.ones_like(l), torch.where(u <= 0, torch.zeros_like(l), u / torch.where(w > 0, w, torch.ones_like(w))))
        cands = torch.stack([l, u, torch.minimum(torch.maximum(torch.zeros_like(l), l), u)])
        g = torch.relu(cands) - k * cands
    slack = 16 * _U * (1.0 + k.abs() * torch.maximum(l.abs(), u.abs()))
    return k, g.min(dim=0).values - slack, g.max(dim=0).values + slack


def _act(name: str, z: torch.Tensor) -> torch.Tensor:
    return torch.tanh(z) if name == "tanh" else torch.relu(z)


# ----------------------------------------------------------------------------- interval arithmetic
def interval_affine(
    W_center: torch.Tensor,
    b_center: torch.Tensor,
    x: IntervalBounds,
    W_radius: torch.Tensor | None = None,
    b_radius: torch.Tensor | None = None,
) -> IntervalBounds:
    """Interval enclosure of ``W x + b`` for ``x ∈ [x]``, ``W ∈ W_c ± W_r``, ``b ∈ b_c ± b_r``.

    Midpoint-radius product (Rump 1999): with ``x = x_c ± x_r``,
    ``W x + b ∈ W_c x_c + b_c ± (|W_c| x_r + W_r (|x_c| + x_r) + b_r)``, because
    ``W x − W_c x_c = W_c (x − x_c) + (W − W_c) x``. Not widened (callers widen once per layer).

    Parameters
    ----------
    W_center : Tensor, shape (out, in) or (B, out, in)
    b_center : Tensor, shape (out,) or (B, out)
    x : IntervalBounds, shape (B, in)
    W_radius, b_radius : Tensor, optional
        Same shapes as the centres, non-negative.

    Returns
    -------
    IntervalBounds, shape (B, out)
    """
    xc, xr = x.center, x.radius
    if W_center.ndim == 2:
        c = xc @ W_center.T + b_center
        r = xr @ W_center.abs().T
        if W_radius is not None:
            r = r + (xc.abs() + xr) @ W_radius.T
    else:
        c = torch.einsum("boi,bi->bo", W_center, xc) + b_center
        r = torch.einsum("boi,bi->bo", W_center.abs(), xr)
        if W_radius is not None:
            r = r + torch.einsum("boi,bi->bo", W_radius, xc.abs() + xr)
    if b_radius is not None:
        r = r + b_radius
    return IntervalBounds(c - r, c + r)


def _layers_torch(network: Network, theta_box: tuple[np.ndarray, np.ndarray] | None):
    """Per layer ``(W_c, b_c, W_r, b_r)`` as float64 tensors (radii ``None`` for a point)."""
    if theta_box is None:
        return [(torch.tensor(W, dtype=_DT), torch.tensor(b, dtype=_DT), None, None)
                for W, b in zip(network.weights, network.biases)]
    d = network.n_parameters
    lo = as_array("theta_box lower", theta_box[0], shape=(d,))
    hi = as_array("theta_box upper", theta_box[1], shape=(d,))
    if not np.all(lo <= hi):
        i = int(np.argmax(~(lo <= hi)))
        raise InvalidInputError(f"theta_box: expected lower <= upper, got {lo[i]!r} > {hi[i]!r} at parameter {i}")
    out = []
    for (Wl, bl), (Wh, bh) in zip(network.unflatten(lo), network.unflatten(hi)):
        Wc, Wr = (Wl + Wh) / 2, (Wh - Wl) / 2
        bc, br = (bl + bh) / 2, (bh - bl) / 2
        # The rounded centre may sit off the true midpoint by an ulp: widen the radius to cover [lo, hi].
        Wr = np.maximum(Wr, np.maximum(Wh - Wc, Wc - Wl)) * (1 + 4 * _U)
        br = np.maximum(br, np.maximum(bh - bc, bc - bl)) * (1 + 4 * _U)
        out.append(tuple(torch.as_tensor(a, dtype=_DT) for a in (Wc, bc, Wr, br)))
    return out


def ibp_network(
    network: Network,
    x: IntervalBounds,
    *,
    theta_box: tuple[np.ndarray, np.ndarray] | None = None,
    margin: Margin = DEFAULT_MARGIN,
) -> IntervalBounds:
    """Interval bounds of ``φ(x)`` over input boxes, optionally over a box of parameters too.

    Parameters
    ----------
    network : Network
    x : IntervalBounds, shape (B, in_dim)
    theta_box : (ndarray, ndarray), optional
        Lower and upper flat parameters (order ``W_1, b_1, …``), shape (d,) each.
    margin : Margin

    Returns
    -------
    IntervalBounds, shape (B, out_dim)
        Widened by ``margin`` after every layer.
    """
    if not isinstance(network, Network):
        raise UnsupportedError(f"network: expected a Network (see network_from_module), got {type(network).__name__}")
    if x.shape[-1] != network.in_dim:
        raise ShapeError(f"x: expected last dimension {network.in_dim}, got shape {tuple(x.shape)}")
    return _ibp_phi(_layers_torch(network, theta_box), network.activations, x, margin)


def _ibp_phi(layers, activations, x: IntervalBounds, margin: Margin) -> IntervalBounds:
    h = x
    for j, (Wc, bc, Wr, br) in enumerate(layers):
        z = interval_affine(Wc, bc, h, Wr, br)
        lo, hi = margin.widen(z.lower, z.upper)
        if j < len(activations):
            a = activations[j]
            lo, hi = margin.widen(_act(a, lo), _act(a, hi))
        h = IntervalBounds(lo, hi)
    return h


# ----------------------------------------------------------------------------- quadratics
def box_max_quadratic(lower: torch.Tensor, upper: torch.Tensor, P: torch.Tensor, *, margin: Margin = DEFAULT_MARGIN) -> torch.Tensor:
    """Upper bound of ``max_{x ∈ [l, u]} xᵀ P x`` for a symmetric positive semidefinite ``P``.

    A convex function attains its maximum over a box at a corner; for ``n ≤ 12`` all ``2^n``
    corners are evaluated (exact up to the margin), beyond that interval arithmetic on
    ``Σ_ij P_ij x_i x_j`` is used.

    Returns
    -------
    Tensor, shape (B,)
    """
    n = lower.shape[-1]
    mag = torch.maximum(lower.abs(), upper.abs())
    scale = (mag @ P.abs() * mag).sum(-1)
    if n <= 12:
        bits = torch.as_tensor(((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(bool))
        corners = torch.where(bits[None], upper[:, None, :], lower[:, None, :])  # (B, 2^n, n)
        vals = torch.einsum("bki,ij,bkj->bk", corners, P, corners).max(dim=1).values
    else:
        prods = torch.stack([lower[:, :, None] * lower[:, None, :], lower[:, :, None] * upper[:, None, :],
                             upper[:, :, None] * lower[:, None, :], upper[:, :, None] * upper[:, None, :]])
        hi = prods.max(dim=0).values
        lo = prods.min(dim=0).values
        sq_lo = torch.where((lower <= 0) & (upper >= 0), torch.zeros_like(lower), torch.minimum(lower**2, upper**2))
        lo = lo.clone()
        lo[:, torch.arange(n), torch.arange(n)] = sq_lo
        vals = torch.where(P > 0, P * hi, P * lo).sum(dim=(-1, -2))
    return margin.widen_upper(vals, scale + (4 * n + 8) * _U * scale)


def zonotope_max_quadratic(center: torch.Tensor, generators: torch.Tensor, P: torch.Tensor, *, margin: Margin = DEFAULT_MARGIN) -> torch.Tensor:
    """Upper bound of ``max_{ε ∈ [−1,1]^N} (c + Gε)ᵀ P (c + Gε)`` for positive semidefinite ``P``.

    For ``n = 2`` the bound is the exact maximum over the zonotope's vertices: with every
    generator turned into the upper half-plane and sorted by angle, the vertices are
    ``c − Σg + 2 Σ_{j≤k} g_(j)`` (``k = 0..N``) and their reflections through ``c``; a convex
    function attains its maximum over a polytope at a vertex. Round-off in the partial sums is
    bounded by ``e = 2(N+2) u (|c| + Σ|g|)`` per coordinate and added as
    ``2 eᵀ|P|(|c| + Σ|g|) + eᵀ|P|e``. For ``n > 2`` the maximum over the interval hull's corners is
    used (:func:`box_max_quadratic`).

    Parameters
    ----------
    center : Tensor, shape (B, n)
    generators : Tensor, shape (B, n, N)
    P : Tensor, shape (n, n)

    Returns
    -------
    Tensor, shape (B,)
    """
    n = center.shape[-1]
    rad = generators.abs().sum(-1)
    if n != 2 or generators.shape[-1] == 0:
        return box_max_quadratic(center - rad, center + rad, P, margin=margin)
    g = generators.transpose(1, 2)  # (B, N, 2)
    flip = (g[..., 1] < 0) | ((g[..., 1] == 0) & (g[..., 0] < 0))
    g = torch.where(flip[..., None], -g, g)
    ang = torch.atan2(g[..., 1], g[..., 0])
    order = torch.argsort(ang, dim=1)
    gs = torch.gather(g, 1, order[..., None].expand(-1, -1, 2))
    v0 = center - gs.sum(1)
    path = torch.cat([v0[:, None, :], v0[:, None, :] + 2 * torch.cumsum(gs, dim=1)], dim=1)  # (B, N+1, 2)
    verts = torch.cat([path, 2 * center[:, None, :] - path], dim=1)
    vals = torch.einsum("bki,ij,bkj->bk", verts, P, verts).max(dim=1).values
    N = generators.shape[-1]
    s = center.abs() + rad
    e = 2 * (N + 2) * _U * s
    Pa = P.abs()
    slack = 2 * (e @ Pa * s).sum(-1) + (e @ Pa * e).sum(-1)
    scale = (s @ Pa * s).sum(-1)
    return margin.widen_upper(vals + slack, scale)


# ----------------------------------------------------------------------------- rollouts
def _rows_matrix(name: str, rows: Any, dim: int) -> torch.Tensor | None:
    if rows is None:
        return None
    return torch.as_tensor(as_array(name, rows, shape=(None, dim)).copy(), dtype=_DT)


def bound_rollout(
    loop: ClosedLoop,
    boxes: IntervalBounds,
    horizon: int,
    *,
    method: str = "crown",
    state_rows: np.ndarray | None = None,
    input_rows: np.ndarray | None = None,
    terminal_P: np.ndarray | None = None,
    value_change_P: np.ndarray | None = None,
    theta_box: tuple[np.ndarray, np.ndarray] | None = None,
    margin: Margin = DEFAULT_MARGIN,
    chunk_size: int | None = None,
) -> RolloutBounds:
    """Sound bounds along ``T`` steps of the closed loop from every box of initial states.

    Bounds, for every box ``X_i = [l_i, u_i]`` and every ``x_0 ∈ X_i``, the states ``x_t``
    (``t = 0..T``), the inputs ``u_t = K x_t + φ(x_t)`` (``t = 0..T−1``), the rows ``H x_t`` and
    ``H_u u_t``, ``x_Tᵀ P x_T`` and ``x_1ᵀ P x_1 − x_0ᵀ P x_0``.

    Parameters
    ----------
    loop : ClosedLoop
    boxes : IntervalBounds, shape (B, n)
        Initial-state boxes, e.g. from :func:`as_boxes`.
    horizon : int
        ``T ≥ 0``.
    method : {"crown", "ibp"}
    state_rows : ndarray, shape (p, n), optional
    input_rows : ndarray, shape (q, m), optional
    terminal_P : ndarray, shape (n, n), optional
        Positive semidefinite; requests ``terminal_upper``.
    value_change_P : ndarray, shape (n, n), optional
        Requests ``value_change_upper`` (``"crown"`` and ``T ≥ 1`` only).
    theta_box : (ndarray, ndarray), optional
        A box of residual parameters (``"ibp"`` only): the bounds then hold for every ``θ`` in it.
    margin : Margin
    chunk_size : int, optional
        Boxes per vectorised chunk (default: from a ~48 MB budget per transient tensor).

    Returns
    -------
    RolloutBounds

    Raises
    ------
    UnsupportedError
        A parameter box with ``method="crown"``, an unknown method, a loop that is not a ClosedLoop.
    ShapeError, InvalidInputError
        Wrongly shaped rows or boxes, an indefinite ``P``.
    """
    if not isinstance(loop, ClosedLoop):
        raise UnsupportedError(f"loop: expected a ClosedLoop (see closed_loop_from_policy), got {type(loop).__name__}")
    if method not in METHODS:
        raise UnsupportedError(f"method: expected one of {', '.join(repr(m) for m in METHODS)}, got {method!r}")
    T = check_int("horizon", horizon, minimum=0)
    if not isinstance(boxes, IntervalBounds):
        raise InvalidInputError(f"boxes: expected IntervalBounds (see as_boxes), got {type(boxes).__name__}")
    n, m = loop.n, loop.m
    if boxes.lower.ndim != 2 or boxes.shape[-1] != n:
        raise ShapeError(f"boxes: expected shape (B, {n}), got {tuple(boxes.shape)}")
    if not (torch.all(torch.isfinite(boxes.lower)) and torch.all(torch.isfinite(boxes.upper))):
        raise NonFiniteError("boxes: expected finite bounds, got NaN/inf")
    if not torch.all(boxes.lower <= boxes.upper):
        raise InvalidInputError("boxes: expected lower <= upper in every coordinate")
    if boxes.shape[0] == 0:
        raise InvalidInputError("boxes: expected at least one box, got none")
    H = _rows_matrix("state_rows", state_rows, n)
    Hu = _rows_matrix("input_rows", input_rows, m)
    Pt = _psd("terminal_P", terminal_P, n)
    Pv = _psd("value_change_P", value_change_P, n)
    if theta_box is not None and method != "ibp":
        raise UnsupportedError("theta_box: a box of parameters is supported by method='ibp' only (CROWN here perturbs the states)")
    if Pv is not None and (method != "crown" or T < 1):
        raise UnsupportedError("value_change_P: the value-change bound needs method='crown' and horizon >= 1")
    B_ = boxes.shape[0]
    if method == "ibp":
        chunk = B_ if chunk_size is None else check_int("chunk_size", chunk_size, minimum=1)
    else:
        H_tot = sum(loop.network.hidden)
        N = n + T * (min(1, H_tot) if m == 1 else H_tot)
        widest = max([*loop.network.hidden, m, n, 1])
        # per box: the generators (n × N, a few copies) and the relaxation matrices (widest²)
        per_box = 8 * (8 * n * max(N, 1) + 4 * widest * widest + (widest * max(N, 1) if n != 2 else 0))
        auto = max(1, int(_MEMORY_BUDGET // per_box))
        chunk = auto if chunk_size is None else check_int("chunk_size", chunk_size, minimum=1)
    parts = []
    for s in range(0, B_, chunk):
        sub = boxes[s : s + chunk]
        if method == "ibp":
            parts.append(_ibp_rollout(loop, sub, T, H, Hu, Pt, theta_box, margin))
        else:
            parts.append(_crown_rollout(loop, sub, T, H, Hu, Pt, Pv, margin))
    return _concat(parts, method, margin)


def _psd(name: str, P: Any, n: int) -> torch.Tensor | None:
    if P is None:
        return None
    P = as_array(name, P, shape=(n, n))
    if not np.allclose(P, P.T, rtol=0, atol=1e-12 * max(1.0, float(np.abs(P).max()))):
        raise InvalidInputError(f"{name}: expected a symmetric matrix")
    if np.linalg.eigvalsh((P + P.T) / 2).min() < -1e-12 * max(1.0, float(np.abs(P).max())):
        raise InvalidInputError(f"{name}: expected a positive semidefinite matrix (the quadratic bounds use convexity)")
    return torch.as_tensor((P + P.T) / 2, dtype=_DT)


def _cat_opt(items: list, dim: int = 0):
    if items[0] is None:
        return None
    if isinstance(items[0], IntervalBounds):
        return IntervalBounds(torch.cat([i.lower for i in items], dim), torch.cat([i.upper for i in items], dim))
    if isinstance(items[0], LinearBounds):
        return LinearBounds(
            torch.cat([i.lower_A for i in items]), torch.cat([i.lower_b for i in items]),
            torch.cat([i.upper_A for i in items]), torch.cat([i.upper_b for i in items]),
            IntervalBounds(torch.cat([i.region.lower for i in items]), torch.cat([i.region.upper for i in items])),
        )
    return torch.cat(items, dim)


def _concat(parts: list[dict], method: str, margin: Margin) -> RolloutBounds:
    keys = ("states", "inputs", "state_rows", "input_rows", "terminal_upper", "value_change_upper", "state_linear", "input_linear")
    return RolloutBounds(method=method, margin=margin, **{k: _cat_opt([p[k] for p in parts]) for k in keys})


def _ibp_rollout(loop, boxes, T, H, Hu, Pt, theta_box, margin) -> dict:
    layers = _layers_torch(loop.network, theta_box)
    Acl = torch.tensor(loop.A_cl, dtype=_DT)
    Bt = torch.tensor(loop.B, dtype=_DT)
    Kt = torch.tensor(loop.K, dtype=_DT)
    zero_m = torch.zeros(loop.m, dtype=_DT)
    x = boxes
    xs, us = [x], []
    for _ in range(T):
        phi = _ibp_phi(layers, loop.network.activations, x, margin)
        kx = interval_affine(Kt, zero_m, x)
        uc, ur = kx.center + phi.center, kx.radius + phi.radius
        us.append(IntervalBounds(*margin.widen(uc - ur, uc + ur)))
        ax = interval_affine(Acl, torch.zeros(loop.n, dtype=_DT), x)
        bp = interval_affine(Bt, torch.zeros(loop.n, dtype=_DT), phi)
        xc, xr = ax.center + bp.center, ax.radius + bp.radius
        x = IntervalBounds(*margin.widen(xc - xr, xc + xr))
        xs.append(x)
    states = IntervalBounds(torch.stack([v.lower for v in xs], 1), torch.stack([v.upper for v in xs], 1))
    b = boxes.shape[0]
    if us:
        inputs = IntervalBounds(torch.stack([v.lower for v in us], 1), torch.stack([v.upper for v in us], 1))
    else:
        inputs = IntervalBounds(torch.zeros(b, 0, loop.m, dtype=_DT), torch.zeros(b, 0, loop.m, dtype=_DT))

    def rows(M, iv):
        if M is None:
            return None
        c = iv.center @ M.T
        r = iv.radius @ M.abs().T
        return IntervalBounds(*margin.widen(c - r, c + r))

    term = box_max_quadratic(xs[-1].lower, xs[-1].upper, Pt, margin=margin) if Pt is not None else None
    return {"states": states, "inputs": inputs, "state_rows": rows(H, states), "input_rows": rows(Hu, inputs),
            "terminal_upper": term, "value_change_upper": None, "state_linear": None, "input_linear": None}


class _Support:
    """``h(a) = Σ_k |aᵀ g_k|`` for the generators ``g_k`` of one zonotope per box, many rows ``a`` at once.

    For ``n = 2`` the generators are turned into the upper half-plane and sorted by angle once;
    the sign of ``aᵀg`` is constant on either side of the angle ``β`` of ``a`` turned by 90°, so
    ``h(a) = |aᵀ(2 S(β) − S_total)|`` with the prefix sum ``S(β)`` of the generators of angle below
    ``β`` (one binary search per row instead of ``N`` products). Round-off: generators whose angle
    is within a few ulp of ``β`` may land on the wrong side, each changing the sum by at most
    ``2|a||g| sin(δ) ≤ 50u |a||g|``, and the prefix sums carry at most ``N u Σ|g|`` per coordinate;
    ``2(N + 64) u ‖a‖₁ Σ_k ‖g_k‖₁`` is added to cover both. Otherwise ``|A G|`` is summed directly.
    """

    def __init__(self, G: torch.Tensor) -> None:
        self.G = G
        b, n, N = G.shape
        self.sorted = n == 2 and N > _SORT_MIN_GENERATORS
        if self.sorted:
            g = G.transpose(1, 2)
            flip = (g[..., 1] < 0) | ((g[..., 1] == 0) & (g[..., 0] < 0))
            g = torch.where(flip[..., None], -g, g)
            th, order = torch.sort(torch.atan2(g[..., 1], g[..., 0]), dim=1)
            gs = torch.gather(g, 1, order[..., None].expand(-1, -1, 2))
            self.theta = th.contiguous()
            self.prefix = torch.cat([g.new_zeros(b, 1, 2), torch.cumsum(gs, dim=1)], dim=1)
            self.total = self.prefix[:, -1, :]
            self.size = G.abs().sum((1, 2))
            self.N = N

    def __call__(self, A: torch.Tensor) -> torch.Tensor:
        """``Σ_k |A g_k|`` for rows ``A`` of shape (b, q, n) (or (q, n), shared): shape (b, q)."""
        if A.ndim == 2:
            A = A.expand(self.G.shape[0], -1, -1)
        if not self.sorted:
            return torch.bmm(A, self.G).abs().sum(-1)
        beta = torch.atan2(A[..., 0], -A[..., 1])
        beta = torch.where(beta < 0, beta + math.pi, beta)
        idx = torch.searchsorted(self.theta, beta.contiguous())
        S = torch.gather(self.prefix, 1, idx[..., None].expand(-1, -1, 2))
        h = (A * (2 * S - self.total[:, None, :])).sum(-1).abs()
        return h + 2 * (self.N + 64) * _U * A.abs().sum(-1) * self.size[:, None]


def _crown_rollout(loop, boxes, T, H, Hu, Pt, Pv, margin) -> dict:
    """CROWN with parallel-chord relaxations, in forward (zonotope) form; see the module docstring."""
    net = loop.network
    n, m = loop.n, loop.m
    b = boxes.shape[0]
    Ws = [torch.tensor(W, dtype=_DT) for W in net.weights]
    bs = [torch.tensor(v, dtype=_DT) for v in net.biases]
    acts = net.activations
    Acl = torch.tensor(loop.A_cl, dtype=_DT)
    Bt = torch.tensor(loop.B, dtype=_DT)
    Kt = torch.tensor(loop.K, dtype=_DT)
    H_tot = sum(net.hidden)
    N = n + T * (min(1, H_tot) if m == 1 else H_tot)
    c0 = boxes.center
    # The rounded centre may miss the true midpoint by an ulp: widen the radius to cover the box.
    r0 = torch.maximum(boxes.upper - c0, c0 - boxes.lower) * (1 + 4 * _U)
    c = c0.clone()
    G = torch.zeros(b, n, N, dtype=_DT)
    G[:, torch.arange(n), torch.arange(n)] = r0
    k = n
    Lam = torch.eye(n, dtype=_DT).expand(b, n, n).clone()

    st_lo, st_hi, row_lo, row_hi, lin_x = [], [], [], [], []
    in_lo, in_hi, urow_lo, urow_hi, lin_u = [], [], [], [], []

    def record_state(sup: _Support) -> None:
        rad = G[..., :k].abs().sum(-1)
        lo, hi = margin.widen(c - rad, c + rad)
        st_lo.append(lo)
        st_hi.append(hi)
        noise = G[..., n:k].abs().sum(-1)
        off = c - torch.einsum("bij,bj->bi", Lam, c0)
        s = margin.rel * (c.abs() + rad + torch.einsum("bij,bj->bi", Lam.abs(), c0.abs())) + margin.abs
        lin_x.append((Lam.clone(), off - noise - s, off + noise + s))
        if H is not None:
            rc = c @ H.T
            a, z = margin.widen(rc - sup(H), rc + sup(H))
            row_lo.append(a)
            row_hi.append(z)

    vc_upper = None
    for t in range(T):
        sup = _Support(G[..., :k])
        record_state(sup)
        # affine form of the current layer's pre-activation: M x_t + d + Σ_i E_i η_i
        M = Ws[0].expand(b, -1, -1)
        d = bs[0].expand(b, -1)
        E: list[torch.Tensor] = []
        prev_act: IntervalBounds | None = None
        for j, a in enumerate(acts):
            zc = torch.einsum("bhi,bi->bh", M, c) + d
            zr = sup(M)
            for Ei in E:
                zr = zr + Ei.abs().sum(-1)
            lo, hi = margin.widen(zc - zr, zc + zr)
            if prev_act is not None:  # interval bound from the previous layer's bounds
                iv = interval_affine(Ws[j], bs[j], prev_act)
                il, ih = margin.widen(iv.lower, iv.upper)
                lo, hi = torch.maximum(lo, il), torch.minimum(hi, ih)
                hi = torch.maximum(hi, lo)  # both are sound; guard against crossing by round-off
            slope, bl, bu = activation_relaxation(a, lo, hi)
            prev_act = IntervalBounds(*margin.widen(_act(a, lo), _act(a, hi)))
            mu, rho = (bl + bu) / 2, (bu - bl) / 2
            W = Ws[j + 1]
            WS = W[None] * slope[:, None, :]  # (b, h_next, h_j)
            M = torch.bmm(WS, M)
            d = torch.einsum("bhj,bj->bh", WS, d) + mu @ W.T + bs[j + 1]
            E = [torch.bmm(WS, Ei) for Ei in E] + [W[None] * rho[:, None, :]]
        # φ(x_t) = M x_t + d + Σ E_i η_i  (M: (b, m, n)); u_t = (K + M) x_t + d + Σ E_i η_i
        Mu = Kt[None] + M
        uc = torch.einsum("bmi,bi->bm", Mu, c) + d
        enoise = sum((Ei.abs().sum(-1) for Ei in E), torch.zeros_like(uc))
        ur = sup(Mu) + enoise
        a_, z_ = margin.widen(uc - ur, uc + ur)
        in_lo.append(a_)
        in_hi.append(z_)
        ulam = torch.bmm(Mu, Lam)
        unoise = torch.bmm(Mu, G[..., n:k]).abs().sum(-1) + enoise  # m rows: the direct sum is cheap
        uoff = uc - torch.einsum("bmi,bi->bm", ulam, c0)
        s_u = margin.rel * (uc.abs() + ur + torch.einsum("bmi,bi->bm", ulam.abs(), c0.abs())) + margin.abs
        lin_u.append((ulam, uoff - unoise - s_u, uoff + unoise + s_u))
        if Hu is not None:
            HM = torch.einsum("qm,bmi->bqi", Hu, Mu)
            rc = uc @ Hu.T
            rr = sup(HM)
            for Ei in E:
                rr = rr + torch.einsum("qm,bmh->bqh", Hu, Ei).abs().sum(-1)
            a2, z2 = margin.widen(rc - rr, rc + rr)
            urow_lo.append(a2)
            urow_hi.append(z2)
        # x_{t+1} = (A_cl + B M) x_t + B d + Σ B E_i η_i
        Mx = Acl[None] + torch.einsum("ij,bjk->bik", Bt, M)
        c = torch.einsum("bij,bj->bi", Mx, c) + d @ Bt.T
        G[..., :k] = torch.bmm(Mx, G[..., :k])
        if m == 1:
            # Every symbol of this step reaches later quantities only through the scalar s = Σ_i E_i η_i,
            # whose range is exactly [−Σ|E|, Σ|E|]: one generator B·Σ|E| represents them without loss.
            newcols = (Bt[None] * enoise[:, None, :]) if E else G.new_zeros(b, n, 0)
        else:
            newcols = torch.cat([torch.einsum("ij,bjh->bih", Bt, Ei) for Ei in E], dim=-1) if E else G.new_zeros(b, n, 0)
        G[..., k : k + newcols.shape[-1]] = newcols
        k += newcols.shape[-1]
        Lam = torch.bmm(Mx, Lam)
        if t == 0 and Pv is not None:
            vc_upper = _value_change_upper(c0, r0, c, G[..., :k], Pv, margin)
    record_state(_Support(G[..., :k]))
    states = IntervalBounds(torch.stack(st_lo, 1), torch.stack(st_hi, 1))
    if in_lo:
        inputs = IntervalBounds(torch.stack(in_lo, 1), torch.stack(in_hi, 1))
    else:
        inputs = IntervalBounds(torch.zeros(b, 0, m, dtype=_DT), torch.zeros(b, 0, m, dtype=_DT))
    state_rows = IntervalBounds(torch.stack(row_lo, 1), torch.stack(row_hi, 1)) if H is not None else None
    if Hu is not None:
        input_rows = (IntervalBounds(torch.stack(urow_lo, 1), torch.stack(urow_hi, 1)) if urow_lo else
                      IntervalBounds(torch.zeros(b, 0, Hu.shape[0], dtype=_DT), torch.zeros(b, 0, Hu.shape[0], dtype=_DT)))
    else:
        input_rows = None
    term = zonotope_max_quadratic(c, G[..., :k], Pt, margin=margin) if Pt is not None else None
    region = IntervalBounds(boxes.lower, boxes.upper)
    Lx = torch.stack([L for L, _, _ in lin_x], 1)
    state_linear = LinearBounds(Lx, torch.stack([lo for _, lo, _ in lin_x], 1), Lx, torch.stack([hi for _, _, hi in lin_x], 1), region)
    if lin_u:
        Lu = torch.stack([L for L, _, _ in lin_u], 1)
        input_linear = LinearBounds(Lu, torch.stack([lo for _, lo, _ in lin_u], 1), Lu, torch.stack([hi for _, _, hi in lin_u], 1), region)
    else:
        input_linear = None
    return {"states": states, "inputs": inputs, "state_rows": state_rows, "input_rows": input_rows,
            "terminal_upper": term, "value_change_upper": vc_upper, "state_linear": state_linear, "input_linear": input_linear}


def _value_change_upper(c0, r0, c1, G1, P, margin: Margin) -> torch.Tensor:
    """Upper bound of ``V(x_1) − V(x_0)`` with ``x_0 = c0 + [diag(r0), 0] z``, ``x_1 = c1 + G1 z``, ``z ∈ [−1,1]^N``.

    ``ΔV(z) = ΔV(0) + 2 (G1ᵀPc1 − G0ᵀPc0)ᵀ z + zᵀ Q z`` with ``Q = G1ᵀPG1 − G0ᵀPG0``; over the unit
    box ``zᵀQz ≤ Σ_i max(Q_ii, 0) + Σ_{i≠j} |Q_ij|`` (``z_i² ∈ [0, 1]``, ``|z_i z_j| ≤ 1``).
    """
    b, n, N = G1.shape
    G0 = torch.zeros_like(G1)
    G0[:, torch.arange(n), torch.arange(n)] = r0
    V0 = torch.einsum("bi,ij,bj->b", c0, P, c0)
    V1 = torch.einsum("bi,ij,bj->b", c1, P, c1)
    lin = 2 * (torch.einsum("bin,ij,bj->bn", G1, P, c1) - torch.einsum("bin,ij,bj->bn", G0, P, c0))
    Q = torch.einsum("bin,ij,bjk->bnk", G1, P, G1) - torch.einsum("bin,ij,bjk->bnk", G0, P, G0)
    diag = torch.diagonal(Q, dim1=1, dim2=2)
    quad = diag.clamp(min=0).sum(-1) + Q.abs().sum((-1, -2)) - diag.abs().sum(-1)
    upper = V1 - V0 + lin.abs().sum(-1) + quad
    mag = V0.abs() + V1.abs() + lin.abs().sum(-1) + Q.abs().sum((-1, -2))
    return margin.widen_upper(upper, mag)


# ----------------------------------------------------------------------------- point evaluation
def simulate(loop: ClosedLoop, x0: torch.Tensor | np.ndarray, horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-loop rollouts from points (differentiable in ``x0``).

    Parameters
    ----------
    loop : ClosedLoop
    x0 : Tensor or ndarray, shape (S, n)
    horizon : int

    Returns
    -------
    states : Tensor, shape (S, T+1, n)
    inputs : Tensor, shape (S, T, m)
    """
    T = check_int("horizon", horizon, minimum=0)
    x = torch.as_tensor(x0, dtype=_DT) if not isinstance(x0, torch.Tensor) else x0.to(_DT)
    if x.ndim != 2 or x.shape[1] != loop.n:
        raise ShapeError(f"x0: expected shape (S, {loop.n}), got {tuple(x.shape)}")
    Ws = [torch.tensor(W, dtype=_DT) for W in loop.network.weights]
    bs = [torch.tensor(v, dtype=_DT) for v in loop.network.biases]
    A = torch.tensor(loop.A, dtype=_DT)
    Bm = torch.tensor(loop.B, dtype=_DT)
    K = torch.tensor(loop.K, dtype=_DT)
    xs, us = [x], []
    for _ in range(T):
        h = x
        for j, (W, bb) in enumerate(zip(Ws, bs)):
            h = h @ W.T + bb
            if j < len(loop.network.activations):
                h = _act(loop.network.activations[j], h)
        u = x @ K.T + h
        us.append(u)
        x = x @ A.T + u @ Bm.T
        xs.append(x)
    U = torch.stack(us, 1) if us else torch.zeros(x.shape[0], 0, loop.m, dtype=_DT)
    return torch.stack(xs, 1), U


class _ClosedLoopModule(nn.Module):
    """``x_0 ↦ (x_1, …, x_T, u_0, …, u_{T−1})`` flattened, for external bound-propagation libraries."""

    def __init__(self, loop: ClosedLoop, horizon: int) -> None:
        super().__init__()
        self.horizon = horizon
        self.n, self.m = loop.n, loop.m
        self.acts = list(loop.network.activations)
        self.linears = nn.ModuleList()
        for W, b in zip(loop.network.weights, loop.network.biases):
            lin = nn.Linear(W.shape[1], W.shape[0], dtype=_DT)
            with torch.no_grad():
                lin.weight.copy_(torch.tensor(W))
                lin.bias.copy_(torch.tensor(b))
            lin.requires_grad_(False)
            self.linears.append(lin)
        K = nn.Linear(loop.n, loop.m, bias=False, dtype=_DT)
        Acl = nn.Linear(loop.n, loop.n, bias=False, dtype=_DT)
        Bl = nn.Linear(loop.m, loop.n, bias=False, dtype=_DT)
        with torch.no_grad():
            K.weight.copy_(torch.tensor(loop.K))
            Acl.weight.copy_(torch.tensor(loop.A_cl))
            Bl.weight.copy_(torch.tensor(loop.B))
        for lin in (K, Acl, Bl):
            lin.requires_grad_(False)
        self.K, self.Acl, self.Bl = K, Acl, Bl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x_0`` (B, n) -> ``[x_1, …, x_T, u_0, …, u_{T−1}]`` (B, T(n+m))."""
        xs, us = [], []
        for _ in range(self.horizon):
            h = x
            for j, lin in enumerate(self.linears):
                h = lin(h)
                if j < len(self.acts):
                    h = torch.tanh(h) if self.acts[j] == "tanh" else torch.relu(h)
            us.append(self.K(x) + h)
            x = self.Acl(x) + self.Bl(h)
            xs.append(x)
        return torch.cat(xs + us, dim=-1)


def closed_loop_module(loop: ClosedLoop, horizon: int) -> nn.Module:
    """A plain ``nn.Module`` mapping ``x_0`` (B, n) to ``[x_1, …, x_T, u_0, …, u_{T−1}]`` (B, T(n+m)).

    For external bound-propagation libraries (auto_LiRPA traces it); its outputs equal
    :func:`simulate`'s.
    """
    if not isinstance(loop, ClosedLoop):
        raise UnsupportedError(f"loop: expected a ClosedLoop, got {type(loop).__name__}")
    return _ClosedLoopModule(loop, check_int("horizon", horizon, minimum=1))


def auto_lirpa_rollout_bounds(
    loop: ClosedLoop, boxes: IntervalBounds, horizon: int, *, method: str = "CROWN", margin: Margin = DEFAULT_MARGIN
) -> RolloutBounds:
    """Bounds of the states and inputs along the rollout computed by upstream auto_LiRPA (optional).

    auto_LiRPA is not a dependency of scpo; it is imported here, lazily. Its bounds are widened
    by the same ``margin`` and returned as :class:`RolloutBounds` (states with ``x_0`` = the box).

    Parameters
    ----------
    loop : ClosedLoop
    boxes : IntervalBounds, shape (B, n)
    horizon : int
        ``T ≥ 1``.
    method : str
        An auto_LiRPA method name, e.g. ``"IBP"``, ``"CROWN"``, ``"CROWN-IBP"``, ``"alpha-CROWN"``.

    Raises
    ------
    UnsupportedError
        If auto_LiRPA cannot be imported (the message says how to get it and that the built-in
        ``"crown"`` method needs nothing extra).
    """
    try:
        from auto_LiRPA import BoundedModule, BoundedTensor  # type: ignore[import-not-found]
        from auto_LiRPA.perturbations import PerturbationLpNorm  # type: ignore[import-not-found]
    except ImportError as exc:
        raise UnsupportedError(
            "backend 'auto_lirpa': the optional package auto_LiRPA is not installed (or failed to import: "
            f"{exc}); install it from https://github.com/Verified-Intelligence/auto_LiRPA, or use the built-in "
            "method='crown', which needs nothing extra"
        ) from None
    T = check_int("horizon", horizon, minimum=1)
    net = closed_loop_module(loop, T)
    lo, hi = boxes.lower, boxes.upper
    center = (lo + hi) / 2
    bounded = BoundedModule(net, torch.zeros_like(center), device="cpu")
    x = BoundedTensor(center, PerturbationLpNorm(norm=math.inf, x_L=lo, x_U=hi))
    lb, ub = bounded.compute_bounds(x=(x,), method=method)
    lb, ub = margin.widen(lb.detach().to(_DT), ub.detach().to(_DT))
    n, m, b = loop.n, loop.m, lo.shape[0]
    xs_l = lb[:, : T * n].reshape(b, T, n)
    xs_u = ub[:, : T * n].reshape(b, T, n)
    states = IntervalBounds(torch.cat([lo[:, None], xs_l], 1), torch.cat([hi[:, None], xs_u], 1))
    inputs = IntervalBounds(lb[:, T * n :].reshape(b, T, m), ub[:, T * n :].reshape(b, T, m))
    return RolloutBounds(method=f"auto_LiRPA:{method}", states=states, inputs=inputs, state_rows=None, input_rows=None,
                         terminal_upper=None, value_change_upper=None, state_linear=None, input_linear=None, margin=margin)
