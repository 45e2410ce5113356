"""Reports and figures of runs.

Public names::

    training_curves              objective, constraints, L and steps against iterations
    double_integrator_portrait   state box with S, X_f, the grid and trajectories
    regression_fit               f_θ against the target and the safe band
"""

from .figures import double_integrator_portrait, regression_fit, save, training_curves

__all__ = ["double_integrator_portrait", "regression_fit", "save", "training_curves"]
