"""The residual policy ``π_θ(x) = π_safe(x) + φ_θ(x)`` and backup controllers (DESIGN §4)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._validate import as_array, check_nonnegative
from ..errors import ShapeError
from .mlp import MLP

__all__ = ["ZeroBackup", "LinearBackup", "ResidualPolicy", "flatten_parameters", "load_flat_parameters"]


class ZeroBackup(nn.Module):
    """``π_safe(x) = 0`` (the regression task's backup).

    Parameters
    ----------
    in_dim, out_dim : int
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``0`` of shape (…, out_dim).
        Parameters
        ----------
        x : Tensor, shape (…, in_dim)

        Returns
        -------
        Tensor, shape (…, out_dim)
        """
        return torch.zeros(*x.shape[:-1], self.out_dim, dtype=x.dtype, device=x.device)


class LinearBackup(nn.Module):
    """Linear state feedback ``π_safe(x) = K x``.

    Parameters
    ----------
    K : array_like, shape (nu, nx)
    dtype : torch.dtype, default float64
    """

    def __init__(self, K: np.ndarray, *, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        K = as_array("K", K, ndim=2)
        self.register_buffer("K", torch.as_tensor(K, dtype=dtype))
        self.out_dim, self.in_dim = K.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``K x``.
        Parameters
        ----------
        x : Tensor, shape (…, nx)

        Returns
        -------
        Tensor, shape (…, nu)
        """
        return x @ self.K.T


class ResidualPolicy(nn.Module):
    """``π_θ(x) = π_safe(x) + φ_θ(x)``, optionally ``π_safe(x)`` alone inside ``X_s``.

    Parameters
    ----------
    backup : nn.Module
        ``π_safe`` (no trainable parameters).
    residual : MLP
        ``φ_θ`` with a zero final layer at ``θ₀``.
    switch_P : array_like, shape (nx, nx), optional
        With ``switch_level``: inside ``X_s = {x : xᵀ P x ≤ γ_s}`` the residual is switched off.
    switch_level : float, optional
        ``γ_s``.
    """

    def __init__(
        self,
        backup: nn.Module,
        residual: MLP,
        *,
        switch_P: np.ndarray | None = None,
        switch_level: float | None = None,
    ) -> None:
        super().__init__()
        if any(p.requires_grad for p in backup.parameters()):
            raise ShapeError("backup: expected a backup without trainable parameters")
        if getattr(backup, "out_dim", residual.out_dim) != residual.out_dim:
            raise ShapeError(f"backup: output dimension {backup.out_dim} differs from the residual's {residual.out_dim}")
        self.backup = backup
        self.residual = residual
        if (switch_P is None) != (switch_level is None):
            raise ShapeError("switch_P, switch_level: expected both or neither")
        if switch_P is not None:
            P = as_array("switch_P", switch_P, shape=(residual.in_dim, residual.in_dim))
            self.register_buffer("switch_P", torch.as_tensor(P, dtype=torch.float64))
            self.switch_level = check_nonnegative("switch_level", switch_level)
        else:
            self.switch_P = None
            self.switch_level = None

    @property
    def dim(self) -> int:
        """Number of trainable parameters ``d``."""
        return sum(p.numel() for p in self.residual.parameters())

    @property
    def switches(self) -> bool:
        """Whether the residual is switched off inside ``X_s``."""
        return self.switch_P is not None

    def switch_mask(self, x: torch.Tensor) -> torch.Tensor | None:
        """``1`` where the residual acts (``xᵀP_s x > γ_s``), ``0`` inside ``X_s``; ``None`` without switching.

        Parameters
        ----------
        x : Tensor, shape (…, nx)

        Returns
        -------
        Tensor of shape (…, 1), or None
        """
        if self.switch_P is None:
            return None
        v = torch.einsum("...i,ij,...j->...", x, self.switch_P.to(x.dtype), x)
        return (v > self.switch_level).to(x.dtype).unsqueeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``π_θ(x)`` with the module's own residual parameters.
        Parameters
        ----------
        x : Tensor, shape (…, nx)

        Returns
        -------
        Tensor, shape (…, nu)
        """
        r = self.residual(x)
        mask = self.switch_mask(x)
        return self.backup(x) + (r if mask is None else mask * r)

    def batched(self, thetas: torch.Tensor):
        """The closed-loop input map of ``B`` policies, for :func:`scpo.systems.rollout`.

        Parameters
        ----------
        thetas : Tensor, shape (B, d)
            Flat residual parameters (split once here, not at every time step).

        Returns
        -------
        callable
            ``x`` (B, S, nx) or (S, nx) -> ``π_θ(x)`` (B, S, nu) for every row of ``thetas``.
        """
        params = self.residual.unflatten(thetas)

        def policy(x: torch.Tensor) -> torch.Tensor:
            r = self.residual.forward_batched(params, x)
            mask = self.switch_mask(x)
            base = self.backup(x)
            if base.ndim == 2:
                base = base.unsqueeze(0)
            return base + (r if mask is None else (mask if mask.ndim == 3 else mask.unsqueeze(0)) * r)

        return policy

    def forward_batched(self, thetas: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Actions of ``B`` policies with parameter rows ``thetas`` (B, d) at ``x`` (B, n, nx) or (n, nx).

        Parameters
        ----------
        thetas : Tensor, shape (B, d)
        x : Tensor, shape (B, n, nx) or (n, nx)

        Returns
        -------
        Tensor, shape (B, n, nu)
        """
        return self.batched(thetas)(x)


def flatten_parameters(module: nn.Module) -> np.ndarray:
    """All parameters of ``module`` concatenated in :meth:`parameters` order.

    Parameters
    ----------
    module : nn.Module

    Returns
    -------
    ndarray, shape (d,), float64
    """
    return torch.nn.utils.parameters_to_vector(module.parameters()).detach().cpu().to(torch.float64).numpy().copy()


def load_flat_parameters(module: nn.Module, theta: np.ndarray) -> None:
    """Write the flat vector ``theta`` into the parameters of ``module`` in place.

    Parameters
    ----------
    module : nn.Module
    theta : ndarray, shape (d,)
    """
    d = sum(p.numel() for p in module.parameters())
    theta = as_array("theta", theta, shape=(d,))
    ref = next(module.parameters())
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(torch.as_tensor(theta, dtype=ref.dtype, device=ref.device), module.parameters())
