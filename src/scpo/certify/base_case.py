"""The base case of the safety induction (DESIGN §3, §6): a zero final layer makes ``φ_θ₀ ≡ 0``."""

from __future__ import annotations

import numpy as np

from ..evidence import Claim, Level

__all__ = ["zero_final_layer_claim", "BASE_CASE_STATEMENT"]

BASE_CASE_STATEMENT = (
    "The residual's final layer has weight and bias exactly 0, so φ_θ0(x) = 0·h(x) + 0 = 0 for every "
    "input x at which the hidden features h(x) are finite (always, for finite parameters, finite x and "
    "bounded activations such as tanh); hence π_θ0 = π_safe."
)


def zero_final_layer_claim(weight: np.ndarray, bias: np.ndarray, *, layer: str = "final", all_finite: bool = True) -> Claim:
    """Check, entry by entry and without tolerance, that the final layer is zero.

    Parameters
    ----------
    weight : ndarray, shape (out, hidden)
    bias : ndarray, shape (out,)
    layer : str
        Name of the layer, for the record.
    all_finite : bool
        Whether every parameter of the network is finite (the caller checks the other layers;
        a NaN or infinite hidden weight could make ``0 · h(x)`` undefined).

    Returns
    -------
    Claim
        Level ``exact``: the check is a structural identity, no floating-point estimate. ``holds``
        is False if any entry is non-zero or non-finite (NaN ≠ 0), or if ``all_finite`` is False.
    """
    weight = np.asarray(weight)
    bias = np.asarray(bias)
    nz_w = int(np.count_nonzero(weight != 0))  # NaN != 0 is True, so NaN counts as non-zero
    nz_b = int(np.count_nonzero(bias != 0))
    holds = nz_w == 0 and nz_b == 0 and bool(all_finite)
    with np.errstate(invalid="ignore"):
        max_abs = float(np.max(np.abs(np.concatenate([weight.ravel(), bias.ravel()]))) if weight.size + bias.size else 0.0)
    return Claim(
        name="base_case",
        statement=BASE_CASE_STATEMENT,
        level=Level.EXACT,
        holds=holds,
        details={
            "layer": layer,
            "weight_shape": list(weight.shape),
            "bias_shape": list(bias.shape),
            "nonzero_weight_entries": nz_w,
            "nonzero_bias_entries": nz_b,
            "max_abs_entry": max_abs,
            "all_parameters_finite": bool(all_finite),
        },
    )
