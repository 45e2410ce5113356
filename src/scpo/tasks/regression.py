"""Regression with harmful supervision (DESIGN §5).

Inputs ``x ∈ [−3, 3]`` (200 evenly spaced training points), target ``y = 1.5 sin(2x)``,
constraint ``|f_θ(x_j)| ≤ 1`` on 400 evenly spaced grid points (``N = 800`` rows, the upper
row ``f − 1`` then the lower row ``−f − 1`` for each grid point), backup ``π_safe ≡ 0``.
The target leaves the safe band wherever ``|sin 2x| > 2/3``, so the supervision itself is
harmful.

As a :class:`~scpo.systems.ClosedLoopProblem` the task is *static*: ``x_0 = x`` is the input,
``u_0 = π_θ(x) = f_θ(x)`` the output, ``A = 0``, ``B = 0``, ``T = 1``, no state rows, and the input
rows ``±u ≤ bound`` are the two constraint rows of each grid point. The best feasible loss is that of the clipped target, ``f* ≈ 0.0731``; the start is
``f(θ₀) ≈ 1.170``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from .._validate import check_in, check_int, check_positive
from ..errors import ConfigError, InvalidInputError
from ..plotting import save
from ..policies import ACTIVATIONS, MLP, ResidualPolicy, ZeroBackup
from ..systems import ClosedLoopProblem, LinearSystem
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
    row_margin : float or None
        ``δ``: the rows of ``g`` are ``row + δ`` (see :class:`scpo.tasks.linear.LinearTaskSettings`);
        ``None``: chosen by training.
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
    row_margin: float | None = None

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
            if self.row_margin is not None and (isinstance(self.row_margin, bool) or not isinstance(self.row_margin, (int, float))
                                                or not 0 <= self.row_margin < 1):
                raise InvalidInputError(f"row_margin: expected a number in [0, 1) or None, got {self.row_margin!r}")
        except InvalidInputError as exc:
            raise ConfigError(f"RegressionConfig.{exc}") from None


def regression_reference(config: RegressionConfig) -> dict[str, float]:
    """Closed-form reference losses of the task.

    Parameters
    ----------
    config : RegressionConfig

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
    """The regression task of DESIGN §5 (see the module docstring).

    Parameters
    ----------
    config : RegressionConfig, optional
    seed : int
    """

    name = "regression"
    config_class = RegressionConfig
    expand_initial_states = False
    default_projector = {"lr": 0.01, "probe_radius": 1e-3, "block_probes": 7, "bank_size": 16}

    def __init__(self, config: RegressionConfig | None = None, *, seed: int = 0) -> None:
        cfg = config or RegressionConfig()
        self._x_train = torch.linspace(cfg.x_min, cfg.x_max, cfg.n_train, dtype=torch.float64).unsqueeze(-1)
        self._y_train = cfg.amplitude * torch.sin(cfg.frequency * self._x_train)
        grid = torch.linspace(cfg.x_min, cfg.x_max, cfg.n_grid, dtype=torch.float64).unsqueeze(-1)
        system = LinearSystem(A=np.zeros((1, 1)), B=np.zeros((1, 1)), Hx=np.zeros((0, 1)), hx=np.zeros(0),
                              Hu=np.array([[1.0], [-1.0]]), hu=np.array([cfg.bound, cfg.bound]), name="regression output")
        self.problem = ClosedLoopProblem(system=system, K=np.zeros((1, 1)), horizon=1, state_names=("x",),
                                         input_names=("f",), name="regression with harmful supervision")
        self.constraint_states = grid.numpy().copy()
        self.safety_states = self.constraint_states
        super().__init__(cfg, seed=seed)
        self.reference = regression_reference(cfg)

    def build_policy(self) -> ResidualPolicy:
        """``f_θ = 0 + φ_θ`` (the backup is ``π_safe ≡ 0``)."""
        cfg = self.config
        mlp = MLP(1, cfg.hidden, 1, cfg.activation, seed=self.seed)
        return ResidualPolicy(ZeroBackup(1, 1), mlp)

    def predict(self, thetas: np.ndarray, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """``f_θ(x)`` for parameter rows ``thetas`` at inputs ``x``.

        Parameters
        ----------
        thetas : ndarray, shape (B, d)
        x : ndarray or Tensor, shape (n,)

        Returns
        -------
        ndarray, shape (B, n)
        """
        xt = torch.as_tensor(np.asarray(x, dtype=np.float64)).reshape(-1, 1)
        with torch.no_grad():
            out = self.policy.forward_batched(torch.as_tensor(np.atleast_2d(thetas)), xt)
        return out[..., 0].numpy()

    def objective_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean squared error on the training points and its gradient.

        Parameters
        ----------
        theta : ndarray, shape (d,)

        Returns
        -------
        (float, ndarray of shape (d,))
        """
        t = self._theta_tensor(theta, requires_grad=True)
        pred = self.policy.forward_batched(t, self._x_train)[0]
        loss = torch.mean((pred - self._y_train) ** 2)
        (grad,) = torch.autograd.grad(loss, t)
        return float(loss.detach()), grad[0].numpy().copy()

    def block_gradients(self, theta: np.ndarray, k: int) -> np.ndarray:
        """Negative gradients of the loss restricted to ``k`` contiguous blocks of training points.

        Their sum is ``−∇f``; each moves ``f_θ`` mainly near its own block of inputs.

        Parameters
        ----------
        theta : ndarray, shape (d,)
        k : int

        Returns
        -------
        ndarray, shape (k, d)
        """
        t = self._theta_tensor(theta, requires_grad=True)
        pred = self.policy.forward_batched(t, self._x_train)[0]
        sq = (pred - self._y_train)[:, 0] ** 2 / self.config.n_train
        return self._block_gradients(t, sq, torch.arange(self.config.n_train), k)

    def objective(self, theta: np.ndarray) -> float:
        with torch.no_grad():
            pred = self.policy.forward_batched(self._theta_tensor(theta), self._x_train)[0]
            return float(torch.mean((pred - self._y_train) ** 2))

    def fit_figure(self, thetas: dict[str, np.ndarray], *, title: str = "") -> Figure:
        """``f_θ(x)`` for the given parameter vectors against the target and the band ``|f| ≤ bound``.

        Parameters
        ----------
        thetas : dict of label -> ndarray, shape (d,)
        title : str

        Returns
        -------
        Figure
        """
        cfg = self.config
        x = np.linspace(cfg.x_min, cfg.x_max, 800)
        fig = Figure(figsize=(8, 4))
        ax = fig.subplots()
        ax.plot(x, cfg.amplitude * np.sin(cfg.frequency * x), "k--", lw=1, label="target (harmful outside the band)")
        ax.axhspan(-cfg.bound, cfg.bound, color="tab:green", alpha=0.08, label="safe band |f| ≤ bound")
        for label, th in thetas.items():
            ax.plot(x, self.predict(th[None], x)[0], lw=1.8, label=label)
        ax.set_xlabel("x")
        ax.set_ylabel("f_θ(x)")
        ax.set_title(title or "regression with harmful supervision")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        return fig

    def figures(self, records: list[dict[str, Any]], thetas: dict[str, np.ndarray], out_dir: Path) -> list[Path]:
        """Training curves and the fit of ``θ₀`` and the final policy against the band.

        Parameters
        ----------
        records : list of dict
        thetas : dict of label -> ndarray
            At least ``"θ0"`` and ``"final"``.
        out_dir : Path

        Returns
        -------
        list of Path
        """
        paths = super().figures(records, thetas, out_dir)
        fig = self.fit_figure({"θ0 (backup, f ≡ 0)": thetas["θ0"], "final policy": thetas["final"]})
        return paths + [save(fig, Path(out_dir) / "regression_fit.png")]

    def declared_region(self) -> Any:
        """``C = [x_min, x_max]``, the whole input interval."""
        from ..certify.declared import box_region

        c = self.config
        return box_region([c.x_min], [c.x_max], description=f"the whole input interval [{c.x_min:g}, {c.x_max:g}]")

    def figure_captions(self) -> dict[str, str]:
        """Captions of the training curves and the fit figure."""
        return {**super().figure_captions(),
                "regression_fit.png": "f_θ at θ_0 (the backup, f ≡ 0) and at the final iterate, with the target and the safe band."}

    def quality_summary(self, initial: dict[str, float], final: dict[str, float]) -> list[str]:
        """``achievable improvement closed  …% (f* = …, f(θ0) = …)``.

        Parameters
        ----------
        initial, final : dict
            :meth:`quality` at ``θ₀`` and at the last iterate.

        Returns
        -------
        list of str
        """
        return [f"achievable improvement closed   {final['improvement_fraction'] * 100:.1f}% "
                f"(f* = {final['f_star']:.4f}, f(θ0) = {final['f0']:.4f})"]

    def report_paragraphs(self) -> list[str]:
        """The regression task in words."""
        c = self.config
        return [
            f"Regression with harmful supervision: fit y = {c.amplitude}·sin({c.frequency}x) on "
            f"{c.n_train} evenly spaced points of [{c.x_min}, {c.x_max}] while keeping "
            f"|f_θ(x_j)| ≤ {c.bound} at {c.n_grid} evenly spaced grid points "
            f"(N = {2 * c.n_grid} constraint rows g ≤ 0). The backup is π_safe ≡ 0; the target leaves "
            "the safe band, so plain fitting is unsafe."
        ]

    def meaning_of_g(self) -> str:
        """What ``g ≤ 0`` means here: ``|f_θ| ≤ bound`` at the grid points."""
        return f"i.e. |f_θt(x_j)| ≤ {self.config.bound} at each of the {self.config.n_grid} grid points x_j"

    def quality(self, theta: np.ndarray) -> dict[str, float]:
        """Loss, the reference losses and the improvement fraction ``(f₀ − f)/(f₀ − f*)``.

        Parameters
        ----------
        theta : ndarray, shape (d,)

        Returns
        -------
        dict
            ``loss``, ``f0``, ``f_star``, ``improvement_fraction``.
        """
        f = self.objective(theta)
        f0, fs = self.reference["f0"], self.reference["f_star"]
        return {"loss": f, "f0": f0, "f_star": fs, "improvement_fraction": (f0 - f) / (f0 - fs)}
