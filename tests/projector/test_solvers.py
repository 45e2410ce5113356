"""Solver chain: MOSEK only with a licence, inaccurate or failed solves never accepted."""

import cvxpy as cp
import numpy as np
import pytest

from scpo.errors import ConfigError, InvalidInputError, SolverError
from scpo.projector import ProjectorConfig
from scpo.projector import solvers as solvers_mod
from scpo.projector.bank import Bank
from scpo.projector.socp import ProjectionSOCP


def _instance(rng):
    d, N = 6, 20
    W = rng.normal(size=(N, d))
    gfun = lambda t: np.sin(W @ t) - 0.1  # noqa: E731
    raw = rng.normal(size=d)
    bank = Bank(4, d, N)
    for p in (0.01 * rng.normal(size=d), 0.01 * rng.normal(size=d), raw):
        bank.add(p, gfun(p))
    g = gfun(np.zeros(d))
    norms, gram, q = bank.geometry(raw)
    return gram, q, norms, g, bank.difference_quotients(g), np.sum(W**2, axis=1)


def test_mosek_is_not_available_here_and_auto_uses_clarabel():
    available, reason = solvers_mod.mosek_status()
    if available:  # pragma: no cover - only on a licensed machine
        pytest.skip("a MOSEK licence is present on this machine")
    assert "mosek" in reason.lower()
    chain, notes = solvers_mod.solver_chain("auto")
    assert [s.solver for s in chain] == [cp.CLARABEL, cp.CLARABEL, cp.SCS]
    assert notes == []


def test_requesting_mosek_without_licence_falls_back_and_says_so(rng, monkeypatch):
    monkeypatch.setattr(solvers_mod, "mosek_status", lambda: (False, "no MOSEK licence could be checked out (test)"))
    chain, notes = solvers_mod.solver_chain("mosek")
    assert chain[0].solver == cp.CLARABEL
    assert any("MOSEK requested but unavailable" in n and "licence" in n for n in notes)
    res = ProjectionSOCP("mosek").solve(*_instance(rng))
    assert res.solver.startswith("CLARABEL") or res.solver == "none"
    assert any("MOSEK" in n for n in res.notes)


def test_auto_prefers_mosek_when_a_licence_is_found(monkeypatch):
    monkeypatch.setattr(solvers_mod, "mosek_status", lambda: (True, "licence found"))
    monkeypatch.setattr(cp, "installed_solvers", lambda: [cp.MOSEK, cp.CLARABEL, cp.SCS])
    chain, _ = solvers_mod.solver_chain("auto")
    assert chain[0].solver == cp.MOSEK


def test_a_licensed_mosek_that_fails_falls_back_to_clarabel(rng, monkeypatch):
    # MOSEK "licensed" but its solve raises (as a licence-server outage would): the next stage answers.
    monkeypatch.setattr(solvers_mod, "mosek_status", lambda: (True, "licence found"))
    monkeypatch.setattr(cp, "installed_solvers", lambda: [cp.MOSEK, cp.CLARABEL, cp.SCS])
    original = cp.Problem.solve

    def solve(self, *args, solver=None, **kwargs):
        if solver == cp.MOSEK:
            raise cp.error.SolverError("MOSEK: licence checkout failed (simulated)")
        return original(self, *args, solver=solver, **kwargs)

    monkeypatch.setattr(cp.Problem, "solve", solve)
    res = ProjectionSOCP("auto").solve(*_instance(rng))
    if res.solver != "none":
        assert res.attempts[0].solver == cp.MOSEK and res.attempts[0].status.startswith("error")
        assert res.solver == cp.CLARABEL and res.status == "optimal"


def test_inaccurate_solve_is_never_accepted(rng, monkeypatch, caplog):
    original = cp.Problem.solve

    def solve(self, *args, solver=None, **kwargs):
        out = original(self, *args, solver=solver, **kwargs)
        if solver == cp.CLARABEL and not kwargs:
            self._status = cp.OPTIMAL_INACCURATE  # the default stage "returns" optimal_inaccurate
        return out

    monkeypatch.setattr(cp.Problem, "solve", solve)
    with caplog.at_level("INFO", logger="scpo.projector.socp"):
        res = ProjectionSOCP("clarabel").solve(*_instance(rng))
    assert res.solver != "none", "instance should need a solve"
    assert [a.status for a in res.attempts][:1] == [cp.OPTIMAL_INACCURATE]
    assert res.solver == "CLARABEL(robust)" and res.status == "optimal"
    # a routine fallback is recorded and logged at INFO, never as a WARNING in the user's output
    levels = {r.levelname for r in caplog.records if "trying the next solver" in r.getMessage()}
    assert levels == {"INFO"} and not [r for r in caplog.records if r.levelname == "WARNING"]


def test_all_solvers_failing_raises_solver_error(rng, monkeypatch, caplog):
    def solve(self, *args, solver=None, **kwargs):
        raise cp.error.SolverError(f"{solver} broke (simulated)")

    monkeypatch.setattr(cp.Problem, "solve", solve)
    with pytest.raises(SolverError, match="no solver returned an optimal solution"):
        ProjectionSOCP("clarabel").solve(*_instance(rng))
    assert any(r.levelname == "WARNING" and "no solver returned" in r.getMessage() for r in caplog.records)


def test_unknown_solver_name_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="solver: expected one of 'auto', 'clarabel', 'mosek', 'scs', got 'gurobi'"):
        solvers_mod.solver_chain("gurobi")
    with pytest.raises(ConfigError, match="solver"):
        ProjectorConfig(solver="gurobi")
