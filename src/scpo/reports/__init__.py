"""Reports and figures of runs.

Public names::

    training_curves              objective, constraints, L and steps against iterations
    double_integrator_portrait   state box with S, X_f, the grid and trajectories
    regression_fit               f_θ against the target and the safe band
    build_report                 RUN/report/: HTML, Markdown, summary.json, CSV, figures
"""

from .figures import double_integrator_portrait, regression_fit, save, training_curves
from .report import ReportResult, RunReport, build_report

__all__ = ["ReportResult", "RunReport", "build_report", "double_integrator_portrait", "regression_fit", "save", "training_curves"]
