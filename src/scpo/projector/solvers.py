"""Solver selection for the projection SOCP: MOSEK when licensed, Clarabel by default, SCS last."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import cvxpy as cp

from .._validate import check_in
from .config import SOLVERS

__all__ = ["SolverAttempt", "SolverStage", "mosek_status", "solver_chain", "SOLVER_OPTIONS"]

logger = logging.getLogger(__name__)

# Tolerances: the projector re-checks every row of (★) in numpy and rescales the step, so the
# solver's own feasibility tolerance never decides safety; these keep the answer accurate.
SOLVER_OPTIONS: dict[str, dict] = {
    cp.CLARABEL: {},
    cp.SCS: {"eps_abs": 1e-7, "eps_rel": 1e-7, "max_iters": 20_000},
    cp.MOSEK: {},
}
# Near a stall (optimum close to c = 0 inside a thin cone of active rows) Clarabel's defaults
# occasionally end "AlmostSolved"; without Ruiz equilibration and with a shorter step it
# solved every such instance we collected, so it is tried before falling back to SCS.
_CLARABEL_ROBUST = {"equilibrate_enable": False, "max_step_fraction": 0.9}


@dataclass(frozen=True)
class SolverStage:
    """One entry of the fallback chain: a cvxpy solver with its options.

    :func:`solver_chain` returns the stages in the order they are tried.

    Attributes
    ----------
    solver : str
        cvxpy solver name.
    options : dict
        Keyword options passed to ``problem.solve``.
    label : str
        Name recorded in :class:`SolverAttempt` (e.g. ``"CLARABEL-robust"``).
    """

    solver: str
    options: dict
    label: str


@dataclass(frozen=True)
class SolverAttempt:
    """One solver call.

    Attributes
    ----------
    solver : str
        Label of the stage (:class:`SolverStage`).
    status : str
        cvxpy status, or the failure message.
    time_s : float
        Wall time of the call in seconds.
    """

    solver: str
    status: str
    time_s: float

    def to_dict(self) -> dict:
        return {"solver": self.solver, "status": self.status, "time_s": self.time_s}


@functools.lru_cache(maxsize=1)
def mosek_status() -> tuple[bool, str]:
    """Whether MOSEK can solve here, and why not.

    Returns
    -------
    (available, reason)
        ``available`` is True only if the ``mosek`` package imports, cvxpy lists it, and a
        licence can be checked out. ``reason`` explains a False.
    """
    try:
        import mosek  # noqa: F401
    except ImportError:
        return False, "the mosek package is not installed (pip install 'scpo[mosek]')"
    if cp.MOSEK not in cp.installed_solvers():
        return False, "cvxpy does not list MOSEK as installed"
    try:
        with mosek.Env() as env:
            env.checkoutlicense(mosek.feature.pts)
    except Exception as exc:  # mosek.Error and licence-server failures alike
        return False, f"no MOSEK licence could be checked out ({exc})"
    return True, "licence found"


def solver_chain(name: str) -> tuple[list[SolverStage], list[str]]:
    """The ordered solver stages to try for the user's choice ``name``.

    Parameters
    ----------
    name : {"auto", "clarabel", "mosek", "scs"}

    Returns
    -------
    chain : list of SolverStage
        First to last resort; Clarabel appears twice (default, then robust settings).
    notes : list of str
        Why a requested solver was skipped (e.g. MOSEK without a licence).
    """
    check_in("solver", name, SOLVERS)
    installed = set(cp.installed_solvers())
    notes: list[str] = []
    mosek_ok, why = mosek_status()
    if name == "auto":
        chain = ([cp.MOSEK] if mosek_ok else []) + [cp.CLARABEL, cp.SCS]
    elif name == "mosek":
        chain = [cp.MOSEK, cp.CLARABEL, cp.SCS]
        if not mosek_ok:
            chain = chain[1:]
            notes.append(f"MOSEK requested but unavailable: {why}; falling back to Clarabel")
            logger.warning(notes[-1])
    elif name == "clarabel":
        chain = [cp.CLARABEL, cp.SCS]
    else:
        chain = [cp.SCS, cp.CLARABEL]
    for s in chain:
        if s not in installed:
            notes.append(f"{s} is not installed; skipped")
    stages: list[SolverStage] = []
    for s in chain:
        if s not in installed:
            continue
        stages.append(SolverStage(s, SOLVER_OPTIONS.get(s, {}), s))
        if s == cp.CLARABEL:
            stages.append(SolverStage(s, _CLARABEL_ROBUST, "CLARABEL(robust)"))
    return stages, notes
