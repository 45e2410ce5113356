"""The reachability report of a closed-loop problem: the same numbers as before the redesign, its
structure, and bad input."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from scpo.errors import InvalidInputError, ShapeError
from scpo.reachability import ReachReport, linear_reach, report_data, residual_policy_map, resolve_sets
from scpo.reachability.claims import FAMILY_NAMES
from scpo.systems import ClosedLoopProblem
from scpo.tasks.double_integrator import DoubleIntegratorConfig, DoubleIntegratorTask

REFERENCE = Path(__file__).parent / "data" / "report_T3_N2_before_redesign.json"


@pytest.fixture(scope="module")
def small():
    torch.set_num_threads(1)
    task = DoubleIntegratorTask(DoubleIntegratorConfig(horizon=3, grid=15, n_samples=16, hidden=(4,)))
    theta = np.random.default_rng(7).normal(scale=0.3, size=task.dim)
    report = linear_reach(
        task.problem, 2, grid_states=task.grid_states, in_S=task.in_safety_region, learned=residual_policy_map(task.policy, theta),
        name=task.name, directions=12, samples=5, grid=20,
    )
    return task, report


# keys added by issue 14 (the fixed point, k₀ of X_f ⊆ R_k, whether S was restricted to a declared region)
ADDED_SINCE = ("fixed_point", "fixed_point_statement", "from_k", "restricted_to_domain")
ADDED_AT_TOP = ("sets", "sets_statement")  # top-level keys added by issue 14 (which families were computed)


def _strip(x):
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in ("seconds", "scpo_version") + ADDED_SINCE}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def _assert_same(ref, new, path="report"):
    assert type(ref) is type(new) or (isinstance(ref, (int, float)) and isinstance(new, (int, float))), path
    if isinstance(ref, dict):
        assert list(ref) == list(new), f"{path}: keys {set(ref) ^ set(new)}"
        for k in ref:
            _assert_same(ref[k], new[k], f"{path}/{k}")
    elif isinstance(ref, list):
        assert len(ref) == len(new), path
        for i, (a, b) in enumerate(zip(ref, new)):
            _assert_same(a, b, f"{path}[{i}]")
    elif isinstance(ref, float):
        assert new == pytest.approx(ref, rel=1e-9, abs=1e-12) or (math.isnan(ref) and math.isnan(new)), path
    else:
        assert new == ref, path


def test_the_report_has_the_numbers_and_keys_of_before_the_redesign(small):
    # Reference: the JSON written by the pre-redesign linear_task_reach(task, ...) for the same task,
    # horizon, targets, samples, grid and θ (see the file's "source"); only timings are left out.
    _, report = small
    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))["report"]
    new = {k: v for k, v in report.data.items() if k not in ADDED_AT_TOP}
    _assert_same(ref, _strip(json.loads(json.dumps(new, default=str))))


def test_the_report_is_a_result_type_with_the_stored_sets(small):
    task, report = small
    assert isinstance(report, ReachReport) and report.ok and report.horizon == 2 and report.task_horizon == 3
    assert report.name == "double-integrator" and report.problem is task.problem
    assert set(report.families) == set(FAMILY_NAMES) and all(f.horizon == 3 for f in report.families.values())
    np.testing.assert_array_equal(report.safety_states, task.grid_states[task.in_safety_region])
    assert report.learned is not None and report.learned.states.shape == (400, 2)
    names = [c.name for c in report.claims]
    assert names[:3] == ["inner_target_inside_Xf", "inner_target_invariant", "outer_target_contains_Xf"]
    assert names[-3:] == ["safety_region_inside_outer_set", "inner_set_grid_states_in_safety_region", "learned_set_inside_controllable_set"]
    assert report_data(report) == report.data and report.data["all_claims_hold"]
    assert {"targets", "mpi", "control_invariant", "exact_claims", "independent_check", "learned", "total"} <= set(report.seconds)


def test_bad_input_is_refused_before_any_set_is_computed(small):
    task, _ = small
    p, G, S = task.problem, task.grid_states, task.in_safety_region
    no_terminal = ClosedLoopProblem(system=p.system, K=p.K, horizon=3, name="no X_f")
    with pytest.raises(InvalidInputError, match="terminal set"):
        linear_reach(no_terminal, 2, grid_states=G, in_S=S)
    with pytest.raises(InvalidInputError, match="problem: expected a scpo.systems.ClosedLoopProblem"):
        linear_reach(task, 2, grid_states=G, in_S=S)
    with pytest.raises(ShapeError, match="in_S: expected shape"):
        linear_reach(p, 2, grid_states=G, in_S=S[:-1])
    with pytest.raises(InvalidInputError, match="in_S: expected a boolean mask"):
        linear_reach(p, 2, grid_states=G, in_S=S.astype(int))
    with pytest.raises(ShapeError, match="grid_states: expected shape"):
        linear_reach(p, 2, grid_states=G[:, :1], in_S=S)
    with pytest.raises(InvalidInputError, match="horizon: expected an integer >= 1"):
        linear_reach(p, 0, grid_states=G, in_S=S)
    with pytest.raises(InvalidInputError, match="safety_domain: expected a Polytope in R\\^2"):
        linear_reach(p, 2, grid_states=G, in_S=S, safety_domain=np.zeros(2))
    with pytest.raises(InvalidInputError, match="sets: expected one of auto, all, backup, got 'some'"):
        linear_reach(p, 2, grid_states=G, in_S=S, sets="some")
    with pytest.raises(InvalidInputError, match="sets: the learned policy's set is compared with the controllable sets"):
        linear_reach(p, 2, grid_states=G, in_S=S, sets="backup", learned=residual_policy_map(task.policy, np.zeros(task.dim)))


def test_auto_leaves_out_the_controllable_sets_from_four_states_on():
    assert [resolve_sets("auto", n) for n in (1, 2, 3, 4, 6)] == ["all", "all", "all", "backup", "backup"]
    assert resolve_sets("all", 4) == "all" and resolve_sets("backup", 2) == "backup"


def test_a_backup_only_report_has_the_backup_sets_and_claims_of_the_full_one(small):
    # Reference: the full report of the same problem (fixture `small`), whose backup families, O_∞ and
    # the claims about them do not depend on the controllable sets: the same rows and verdicts
    task, full = small
    report = linear_reach(
        task.problem, 2, grid_states=task.grid_states, in_S=task.in_safety_region, name=task.name, directions=12, samples=5,
        sets="backup",
    )
    assert report.sets == "backup" and full.sets == "all" and report.control_invariant is None
    assert set(report.families) == {"backup_inner", "backup_outer"}
    for name, fam in report.families.items():
        for P, Q in zip(fam.sets, full.families[name].sets, strict=True):
            np.testing.assert_array_equal(P.H, Q.H)
            np.testing.assert_array_equal(P.h, Q.h)
    np.testing.assert_array_equal(report.mpi.polytope.H, full.mpi.polytope.H)
    left_out = {"backup_inside_controllable", "controllable_sets_nested", "inside_control_invariant",
                "learned_set_inside_controllable_set"} | {c.name for c in full.claims if c.name.startswith("independent_check_controlled")}
    expected = [(c.name, c.holds) for c in full.claims if c.name not in left_out]
    assert [(c.name, c.holds) for c in report.claims] == expected and report.ok
    d = json.loads(json.dumps(report.data, default=str))
    assert d["sets"] == "backup" and d["maximal_control_invariant"] is None and "not computed" in d["sets_statement"]
    assert set(d["families"]) == {"backup_inner", "backup_outer"} and "control_invariant" not in report.seconds


def test_the_coverage_claim_of_a_restricted_safety_region_is_about_its_domain(small):
    # S = grid states strictly inside R_T(T_in) and inside the box |x| ≤ 0.3 (a stand-in for the
    # declared region C): without the domain the coverage claim fails (states of R_T(T_in) outside
    # the box are not in S), with it it holds; the reference is the definition of S itself
    from scpo.reachability.comparisons import safety_region_comparison
    from scpo.reachability.polytope import box

    task, report = small
    T, G = report.task_horizon, task.grid_states
    R = report.families["backup_inner"].sets[T]
    dom = box([-0.3, -0.3], [0.3, 0.3])
    in_S = (R.residual(G) <= 0) & (dom.residual(G) <= 0)
    assert in_S.any() and ((R.residual(G) < -1e-6) & ~in_S).any()
    plain = safety_region_comparison(report.families, T, G, in_S)
    restricted = safety_region_comparison(report.families, T, G, in_S, domain=dom)
    cover = {c.name: c for c in plain.claims}["inner_set_grid_states_in_safety_region"]
    assert not cover.holds and cover.details["not_in_S"] > 0
    cover = {c.name: c for c in restricted.claims}["inner_set_grid_states_in_safety_region"]
    assert cover.holds and "declared region C" in cover.statement and restricted.data["restricted_to_domain"]
