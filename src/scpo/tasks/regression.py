"""Regression with harmful supervision (DESIGN §5).

Inputs ``x ∈ [−3, 3]`` (200 evenly spaced training points), target ``y = 1.5 sin(2x)``,
constraint ``|f_θ(x_j)| ≤ 1`` on 400 evenly spaced grid points (``N = 800`` rows, the upper
row ``f − 1`` then the lower row ``−f − 1`` for each grid point), backup ``π_safe ≡ 0``.
The target leaves the safe band wherever ``|sin 2x| > 2/3``, so the supervision itself is
harmful. The best feasible loss is that of the clipped target, ``f* ≈ 0.0731``; the start is
``f(θ₀) ≈ 1.170``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._validate import check_in, check_int, check_positive
from ..errors import ConfigError, InvalidInputError
from ..policies import ACTIVATIONS, MLP, ResidualPolicy, ZeroBackup
from .base import Task

__all__ = ["RegressionConfig", "RegressionTask", "regression_reference"]


@dataclass(frozen=True, kw_only=True)
class RegressionConfig:
    """Settings of the regression task; the defaults are DESIGN §5's numbers.

    Attributes
    ----------
    n_train : int
        Evenly spaced training inputs on ``[x_min, x_max]``.
    n_grid : int
        Evenly spaced constraint grid points (``N = 2 n_grid`` rows).
    x_min, x_max : float
    amplitude, frequency : float
        Target ``y = amplitude · sin(frequency · x)``.
    bound : float
        The constraint ``|f_θ(x)| ≤ bound``.
    hidden : tuple of int
        Hidden widths of the residual MLP.
    activation : {"tanh", "relu"}
    """

    n_train: int = 200
    n_grid: int = 400
    x_min: float = -3.0
    x_max: float = 3.0
    amplitude: float = 1.5
    frequency: float = 2.0
    bound: float = 1.0
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"

    def __post_init__(self) -> None:
        try:
            check_int("n_train", self.n_train, minimum=1)
            check_int("n_grid", self.n_grid, minimum=1)
            if not float(self.x_max) > float(self.x_min):
                raise InvalidInputError(f"x_max: expected a number > x_min = {self.x_min}, got {self.x_max}")
            check_positive("bound", self.bound)
            check_positive("frequency", self.frequency)
            for i, h in enumerate(self.hidden):
                check_int(f"hidden[{i}]", h, minimum=1)
            check_in("activation", self.activation, tuple(ACTIVATIONS))
        except InvalidInputError as exc:
            raise ConfigError(f"RegressionConfig.{exc}") from None


def regression_reference(config: RegressionConfig) -> dict[str, float]:
    """Closed-form reference losses of the task.

    Returns
    -------
    dict
        ``f0``: loss of ``f ≡ 0`` (the backup, ``θ₀``); ``f_star``: loss of the target clipped to
        ``[−bound, bound]`` (the best feasible loss of DESIGN §5).
    """
    x = np.linspace(config.x_min, config.x_max, config.n_train)
    y = config.amplitude * np.sin(config.frequency * x)
    return {
        "f0": float(np.mean(y**2)),
        "f_star": float(np.mean((np.clip(y, -config.bound, config.bound) - y) ** 2)),
    }


class RegressionTask(Task):
    """The regression task of DESIGN §5 (see the module docstring)."""

    name = "regression"
    config_class = RegressionConfig
    default_projector = {"lr": 0.01, "probe_radius": 1e-3, "block_probes": 7, "bank_size": 16}

    def __init__(self, config: RegressionConfig | None = None, *, seed: int = 0) -> None:
        cfg = config or RegressionConfig()
        self._x_train = torch.linspace(cfg.x_min, cfg.x_max, cfg.n_train, dtype=torch.float64).unsqueeze(-1)
        self._y_train = cfg.amplitude * torch.sin(cfg.frequency * self._x_train)
        self._x_grid = torch.linspace(cfg.x_min, cfg.x_max, cfg.n_grid, dtype=torch.float64).unsqueeze(-1)
        super().__init__(cfg, seed=seed)
        self.reference = regression_reference(cfg)

    def build_policy(self) -> ResidualPolicy:
        cfg = self.config
        mlp = MLP(1, cfg.hidden, 1, cfg.activation, seed=self.seed)
        return ResidualPolicy(ZeroBackup(1, 1), mlp)

    def predict(self, thetas: np.ndarray, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """``f_θ(x)`` for parameter rows ``thetas`` (B, d) at inputs ``x`` (n,): shape (B, n)."""
        xt = torch.as_tensor(np.asarray(x, dtype=np.float64)).reshape(-1, 1)
        with torch.no_grad():
            out = self.policy.forward_batched(torch.as_tensor(np.atleast_2d(thetas)), xt)
        return out[..., 0].numpy()

    def objective_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean squared error on the training points and its gradient."""
        t = self._theta_tensor(theta, requires_grad=True)
        pred = self.policy.forward_batched(t, self._x_train)[0]
        loss = torch.mean((pred - self._y_train) ** 2)
        (grad,) = torch.autograd.grad(loss, t)
        return float(loss.detach()), grad[0].numpy().copy()

    def block_gradients(self, theta: np.ndarray, k: int) -> np.ndarray:
        """Negative gradients of the loss restricted to ``k`` contiguous blocks of training points.

        Their sum is ``−∇f``; each moves ``f_θ`` mainly near its own block of inputs.

        Returns
        -------
        ndarray, shape (k, d)
        """
        t = self._theta_tensor(theta, requires_grad=True)
        pred = self.policy.forward_batched(t, self._x_train)[0]
        sq = (pred - self._y_train)[:, 0] ** 2 / self.config.n_train
        blocks = torch.tensor_split(torch.arange(self.config.n_train), k)
        block_loss = torch.stack([sq[idx].sum() for idx in blocks])
        (g,) = torch.autograd.grad(block_loss, t, grad_outputs=torch.eye(k, dtype=block_loss.dtype), is_grads_batched=True)
        return -g[:, 0, :].numpy().copy()

    def objective(self, theta: np.ndarray) -> float:
        with torch.no_grad():
            pred = self.policy.forward_batched(self._theta_tensor(theta), self._x_train)[0]
            return float(torch.mean((pred - self._y_train) ** 2))

    def constraints(self, thetas: np.ndarray) -> np.ndarray:
        """Rows ``f_θ(x_j) − bound`` and ``−f_θ(x_j) − bound`` per grid point, interleaved: (B, 2 n_grid)."""
        with torch.no_grad():
            f = self.policy.forward_batched(torch.as_tensor(np.atleast_2d(np.asarray(thetas, dtype=np.float64))), self._x_grid)[..., 0]
        b = self.config.bound
        return torch.stack([f - b, -f - b], dim=-1).reshape(f.shape[0], -1).numpy()

    def constraint_labels(self) -> list[str]:
        xs = self._x_grid[:, 0].tolist()
        return [lab for x in xs for lab in (f"f({x:+.4f}) <= {self.config.bound}", f"f({x:+.4f}) >= {-self.config.bound}")]

    def figures(self, records, thetas, out_dir):
        from ..reports.figures import regression_fit, save

        paths = super().figures(records, thetas, out_dir)
        fig = regression_fit(self, {"θ0 (backup, f ≡ 0)": thetas["θ0"], "final policy": thetas["final"]})
        return paths + [save(fig, out_dir / "regression_fit.png")]

    def quality(self, theta: np.ndarray) -> dict[str, float]:
        """Loss, the reference losses and the improvement fraction ``(f₀ − f)/(f₀ − f*)``."""
        f = self.objective(theta)
        f0, fs = self.reference["f0"], self.reference["f_star"]
        return {"loss": f, "f0": f0, "f_star": fs, "improvement_fraction": (f0 - f) / (f0 - fs)}
