"""What a built-in task provides to the training loop."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..evidence import Claim, Level
from ..policies import ResidualPolicy, flatten_parameters, load_flat_parameters

__all__ = ["Task"]


class Task(abc.ABC):
    """A policy-learning problem: a residual policy, an objective ``f`` and constraints ``g``.

    Subclasses set :attr:`name` and :attr:`config_class` and implement the abstract methods.
    The task owns tensors (data sets, grids), hence a class; its maths lives in functions.

    Parameters
    ----------
    config : dataclass instance of :attr:`config_class`
    seed : int
        Seeds the hidden-layer initialisation and any sampling the task does.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    default_projector: ClassVar[dict[str, Any]] = {}
    """Projector settings that suit this task, applied over the library defaults."""

    def __init__(self, config: Any, *, seed: int = 0) -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(f"config: expected {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        self.seed = int(seed)
        self.policy: ResidualPolicy = self.build_policy()
        self._theta0 = flatten_parameters(self.policy.residual)

    # ---------------------------------------------------------------- to implement
    @abc.abstractmethod
    def build_policy(self) -> ResidualPolicy:
        """The residual policy at ``θ₀`` (zero final layer)."""

    @abc.abstractmethod
    def objective_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """``(f(θ), ∇f(θ))`` with ``∇f`` of shape (d,)."""

    @abc.abstractmethod
    def constraints(self, thetas: np.ndarray) -> np.ndarray:
        """``g`` at a batch of parameter vectors: (B, d) -> (B, N); safe means ``≤ 0``."""

    @abc.abstractmethod
    def constraint_labels(self) -> list[str]:
        """A short description of each of the ``N`` rows."""

    @abc.abstractmethod
    def quality(self, theta: np.ndarray) -> dict[str, float]:
        """The task's quality figures at ``θ`` (e.g. the improvement fraction)."""

    # ---------------------------------------------------------------- provided
    def objective(self, theta: np.ndarray) -> float:
        """``f(θ)``."""
        return self.objective_and_grad(theta)[0]

    @property
    def theta0(self) -> np.ndarray:
        """The initial parameters, shape (d,)."""
        return self._theta0.copy()

    @property
    def dim(self) -> int:
        """Number of trainable parameters ``d``."""
        return self._theta0.size

    def policy_at(self, theta: np.ndarray) -> ResidualPolicy:
        """A copy of the policy with parameters ``θ`` (a ``torch.nn.Module``)."""
        import copy

        pol = copy.deepcopy(self.policy).cpu()
        load_flat_parameters(pol.residual, theta)
        return pol

    def _theta_tensor(self, theta: np.ndarray, *, requires_grad: bool = False) -> torch.Tensor:
        device = getattr(self, "device", None)
        t = torch.as_tensor(np.asarray(theta, dtype=np.float64), device=device).reshape(1, -1).clone()
        return t.requires_grad_(requires_grad)

    def base_claims(self, theta0: np.ndarray, g0: np.ndarray) -> list[Claim]:
        """Claims about ``θ₀`` beyond the zero final layer: by default, that the backup satisfies every row.

        Parameters
        ----------
        theta0 : ndarray, shape (d,)
        g0 : ndarray, shape (N,)
            ``g(θ₀)``.
        """
        worst = float(np.max(g0)) if g0.size else float("nan")
        return [
            Claim(
                name="backup_feasible",
                statement="The backup policy π_safe = π_θ0 satisfies every constraint row: max_i g_i(θ0) ≤ 0.",
                level=Level.EVALUATED,
                holds=bool(np.all(g0 <= 0)),
                details={"max_constraint": worst, "rows": int(g0.size)},
            )
        ]

    def final_claims(self, theta: np.ndarray, *, iteration: int | None = None) -> list[Claim]:
        """Certificates to write for a trained iterate (none by default)."""
        return []

    def figures(self, records: list[dict[str, Any]], thetas: dict[str, np.ndarray], out_dir: Path) -> list[Path]:
        """Write the task's figures for a run into ``out_dir``; returns the files written.

        Parameters
        ----------
        records : list of dict
            The run's certificate records.
        thetas : dict of label -> ndarray
            Parameter vectors to show (at least ``"θ0"`` and ``"final"``).
        out_dir : Path
        """
        from ..reports.figures import save, training_curves

        return [save(training_curves(records, title=f"{self.name}: SCPO training"), out_dir / "training_curves.png")]

    def describe(self) -> dict[str, Any]:
        """Task name, policy architecture and sizes, JSON-ready."""
        return {
            "task": self.name,
            "parameters": self.dim,
            "constraints": len(self.constraint_labels()),
            "residual": self.policy.residual.describe(),
            "seed": self.seed,
        }
