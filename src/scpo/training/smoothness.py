"""The certified-``L`` providers a training run hands to its projector (``L_mode`` ``certified`` / ``subspace``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ShapeError, UnsupportedError
from ..projector import ProjectorConfig, SubspaceProvider

__all__ = ["L_providers"]


def L_providers(task: Any, cfg: ProjectorConfig) -> tuple[Callable[[np.ndarray], np.ndarray] | None, SubspaceProvider | None]:
    """The projector's ``L_provider`` (``L_mode="certified"``) and ``subspace_provider`` (``"subspace"``) for ``task``.

    Both bound the rows of ``task.constraints`` — the rollout rows of ``task.problem`` from
    ``task.constraint_states``, aggregated by ``task.rows`` (a constant row margin does not change
    a Hessian). The subspace provider reads the constraint states when called, so rows a sound
    gate appends (new states at the end) get their own constants through ``first_row``.

    Parameters
    ----------
    task : Task
        A task with a smooth, unswitched residual policy.
    cfg : ProjectorConfig
        The projector's settings (``L_mode``, ``certified_radius``).

    Returns
    -------
    L_provider : callable or None
        ``θ -> L (N,)``: the full-space norm-chain bound over the ball of radius ``certified_radius``.
    subspace_provider : callable or None
        ``(θ, offsets, r, first_row) -> (L, digest)``: :func:`scpo.certify.smoothness.subspace_certified_L`
        on the span of the bank's offsets over the ball of radius ``r``.

    Raises
    ------
    UnsupportedError
        A switched policy (discontinuous in θ), a ReLU residual (no finite curvature), or ``L_mode="subspace"``
        with ``rows="max"`` (a max row's bound holds only for steps in a cone, see ``SUBSPACE_STATEMENT``).
    """
    if cfg.L_mode == "adaptive":
        return None, None
    from ..certify.bounds import require_unswitched

    require_unswitched(task.policy)  # the switch on xᵀPx ≤ γ_s is discontinuous: no finite L
    task.structure.require_smooth()  # ReLU: no finite curvature, refused before the first iteration
    if cfg.L_mode == "certified":
        from ..certify.smoothness import certified_L

        radius = float(cfg.certified_radius)

        def provider(th: np.ndarray) -> np.ndarray:
            return certified_L(task.problem, task.structure, th, task.constraint_states, radius,
                               aggregation=task.rows, temperature=task.lse_temperature, methods=("norm-chain",))

        return provider, None
    from ..certify.smoothness import SUBSPACE_STATEMENT, subspace_certified_L

    if task.rows == "max":  # the bound of a max row justifies (★) only on a cone of steps the projector does not keep to
        raise UnsupportedError(f"task rows 'max': {SUBSPACE_STATEMENT['max']}; the projector's steps are not restricted so, "
                               "train L_mode='subspace' with rows 'per-row' or 'lse'")
    per_state = task.problem.layout.n_rows if task.rows == "per-row" else 1

    def subspace(th: np.ndarray, offsets: np.ndarray, radius: float, first_row: int) -> tuple[np.ndarray, str]:
        if first_row % per_state:
            raise ShapeError(f"first_row: expected a multiple of the {per_state} rows per constraint state, got {first_row}")
        L, cert = subspace_certified_L(task.problem, task.structure, th, task.constraint_states[first_row // per_state:], offsets, radius,
                                       aggregation=task.rows, temperature=task.lse_temperature)
        return L, cert.digest

    return None, subspace
