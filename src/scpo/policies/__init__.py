"""Policies: the residual MLP, backup controllers and the residual policy (DESIGN §4).

Public names::

    MLPStructure         the flat θ layout of the residual MLP (part of the checkpoint contract)
    ACTIVATIONS          activation name -> Activation (σ, σ', σ'', smoothness facts)
    MLP                  residual network with an exactly zero final layer at initialisation
    ResidualPolicy       π_θ(x) = π_safe(x) + φ_θ(x), optional switching inside X_s
    ZeroBackup           π_safe ≡ 0
    LinearBackup         π_safe(x) = K x
    flatten_parameters   module parameters -> flat float64 vector θ
    load_flat_parameters flat θ -> module parameters
"""

from .mlp import MLP
from .residual import LinearBackup, ResidualPolicy, ZeroBackup, flatten_parameters, load_flat_parameters
from .structure import ACTIVATIONS, Activation, MLPStructure, activation

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "LinearBackup",
    "MLP",
    "MLPStructure",
    "ResidualPolicy",
    "ZeroBackup",
    "activation",
    "flatten_parameters",
    "load_flat_parameters",
]
