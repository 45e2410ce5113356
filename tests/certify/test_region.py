"""The region certificate (scpo.certify.region, scpo.certify.region_cover, scpo.certify.region_file).

References: evaluation at the box corners for the linear closed loop of the backup (every row is
then affine or convex in x_0, so its maximum over a box is at a corner), dense sampling with the
task's own rollout and projected-gradient search for soundness, area arithmetic for the
fraction, the exact backup certificate for the value decrease of the backup.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scpo.certify.bounds import closed_loop, require_unswitched
from scpo.certify.region import (
    RegionConfig,
    certify_boxes,
    certify_region,
    initial_state_rows_upper,
    search_counterexamples,
    search_row_ref,
    search_rows,
)
from scpo.certify.region_cover import safety_region_cover, state_box
from scpo.certify.region_file import REGION_FILE_KIND, load_region_record, region_figure, region_record
from scpo.errors import InvalidInputError, NonFiniteError, UnsupportedError
from scpo.evidence import Level
from scpo.numerics import Margin
from scpo.tasks import DoubleIntegratorConfig, DoubleIntegratorTask, RegressionTask

SMALL = {"grid": 16, "horizon": 12, "hidden": (8, 8), "n_samples": 32}


@pytest.fixture(scope="module")
def task():
    return DoubleIntegratorTask(DoubleIntegratorConfig(**SMALL))


def strong_theta(task, seed=0, scale=0.3):
    """θ₀ with a random final layer: a residual that breaks some constraints between grid states."""
    th = task.theta0.copy()
    n_last = task.policy.residual.final_layer.weight.numel() + task.policy.residual.final_layer.bias.numel()
    th[-n_last:] = np.random.default_rng(seed).normal(0, scale, n_last)
    return th


def task_rows(task, theta, x0):
    """Every reach-avoid row from the task's own rollout (reference): the t = 0 state rows, then the layout's rows, (S, p + R)."""
    x0 = np.asarray(x0, dtype=float)
    ro = task.rollout(theta[None], x0)
    initial = x0 @ task.problem.Hx.T - task.problem.hx
    return np.concatenate([initial, task.rollout_rows(ro)[0].numpy()], axis=1)


def cover(task):
    return safety_region_cover(task.problem, task.grid_states, task.safety_states)


def certify(task, theta, cfg=None, **kw):
    lo, hi, info = cover(task)
    return certify_region(task.problem, task.structure, theta, lo, hi, cfg, region_info=info, **kw)


def test_cover_tiles_the_cells_of_S(task):
    lo, hi, info = cover(task)
    h = 2.0 / (SMALL["grid"] - 1)
    assert info["spacing"] == pytest.approx([h, h], rel=1e-12)
    assert np.all(lo >= -1.0) and np.all(hi <= 1.0)
    # area arithmetic: |S| full cells minus the clipped halves on the boundary of X
    widths = np.minimum(task.safety_states + h / 2, 1.0) - np.maximum(task.safety_states - h / 2, -1.0)
    assert info["area"] == pytest.approx(float(np.prod(widths, axis=1).sum()), rel=1e-12)
    assert lo.shape[0] == task.safety_states.shape[0]
    assert np.all(np.isclose((lo + hi) / 2, task.safety_states) | np.isclose(np.abs(task.safety_states), 1.0))


def test_backup_verdicts_match_the_corner_check(task):
    # θ₀: the residual is exactly zero, the loop is linear and every row's maximum over a box is
    # at a corner. No splitting (min_width larger than the cells): each cell is certified iff
    # all its corners satisfy every row (with a 1e-7 band around 0 left out).
    theta = task.theta0
    lo, hi, _ = cover(task)
    res = certify_boxes(closed_loop(task.problem, task.structure, theta), task.problem, lo, hi, RegionConfig(min_width=1.0, search_steps=0))
    corners = np.stack([np.stack([np.where(b0, hi[:, 0], lo[:, 0]), np.where(b1, hi[:, 1], lo[:, 1])], -1)
                        for b0 in (0, 1) for b1 in (0, 1)], 1)
    worst = task_rows(task, theta, corners.reshape(-1, 2)).max(1).reshape(len(lo), 4).max(1)
    cert = {tuple(np.round(a, 12)) for a in res.certified_lower}
    is_cert = np.array([tuple(np.round(a, 12)) in cert for a in lo])
    assert np.all(is_cert[worst < -1e-7])
    assert not np.any(is_cert[worst > 1e-7])
    failed = {tuple(np.round(f["lower"], 12)): f for f in res.failed}
    for i in np.flatnonzero(worst > 1e-7):
        assert failed[tuple(np.round(lo[i], 12))]["verdict"] == "violated"
    assert 0 < res.certified_fraction < 1


def test_certified_boxes_are_safe_and_violations_are_real(task):
    theta = strong_theta(task)
    res = certify(task, theta, RegionConfig(min_width=0.02, search_steps=20))
    s = res.summary
    # area arithmetic: certified + failed = R
    assert s["area_certified"] + s["area_failed"] == pytest.approx(s["area_total"], rel=1e-12)
    assert s["certified_fraction"] == pytest.approx(s["area_certified"] / s["area_total"], rel=1e-15)
    assert 0.3 < s["certified_fraction"] < 1.0 and s["failed_violated"] > 0
    # soundness: dense samples in every certified box (task's rollout) and a gradient search
    lo, hi = res.certified_lower, res.certified_upper
    rng = np.random.default_rng(0)
    pts = lo[:, None, :] + rng.random((len(lo), 24, 2)) * (hi - lo)[:, None, :]
    rows = task_rows(task, theta, pts.reshape(-1, 2))
    assert rows.max() <= 0.0
    loop = closed_loop(task.problem, task.structure, theta)
    _, v, _ = search_counterexamples(loop, task.problem, lo, hi, steps=20, seed=1)
    assert v.max() <= 0.0
    # every "violated" failed box holds a point that really violates a row (task's rollout)
    viol = [f for f in res.failed if f["verdict"] == "violated"]
    x0 = np.array([f["search"]["x0"] for f in viol])
    assert np.all(task_rows(task, theta, x0).max(1) > 0)
    assert np.all((x0 >= np.array([f["lower"] for f in viol])) & (x0 <= np.array([f["upper"] for f in viol])))
    # and the reason names the row and the time step
    assert all(("at t = " in f["reason"]) and (f["worst_bound"]["label"] in f["reason"]) for f in res.failed)


def test_claims_are_sound_level_with_the_margin_recorded(task):
    res = certify(task, task.theta0, RegionConfig(min_width=0.05, margin=Margin(rel=2e-9, abs=3e-10)))
    ra, vd = res.claims
    assert (ra.name, vd.name) == ("region_reach_avoid", "region_value_decrease")
    assert ra.level is Level.SOUND and vd.level is Level.SOUND
    assert ra.details["margin"]["relative"] == 2e-9 and ra.details["margin"]["absolute"] == 3e-10
    assert ra.holds == (res.summary["failed_boxes"] == 0)
    assert ra.details["certified_fraction"] == res.certified_fraction
    json.dumps(ra.to_dict(), allow_nan=False)
    # The backup decreases V = xᵀPx everywhere (exact Lyapunov certificate, scpo.certify.backup),
    # so every box that provably lies outside X_f gets a certified decrease.
    assert vd.holds and vd.details["boxes_outside_Xf"] > 0
    assert vd.details["fraction_decrease_certified"] == pytest.approx(1.0)


def test_relu_policy_region_is_sound():
    task = DoubleIntegratorTask(DoubleIntegratorConfig(**{**SMALL, "activation": "relu"}))
    theta = strong_theta(task, seed=3, scale=0.2)
    res = certify(task, theta, RegionConfig(min_width=0.05, search_steps=5))
    lo, hi = res.certified_lower, res.certified_upper
    assert len(lo) > 0
    pts = lo[:, None, :] + np.random.default_rng(1).random((len(lo), 16, 2)) * (hi - lo)[:, None, :]
    assert task_rows(task, theta, pts.reshape(-1, 2)).max() <= 0.0


def test_progress_is_reported_every_round(task):
    seen = []
    certify(task, strong_theta(task), RegionConfig(min_width=0.05, search_steps=0), progress=seen.append)
    assert [d["round"] for d in seen] == list(range(1, len(seen) + 1))
    assert seen[-1]["pending"] == 0 and 0 <= seen[-1]["certified_fraction"] <= 1


def test_bad_input_is_rejected(task):
    spec = task.problem
    loop = closed_loop(task.problem, task.structure, task.theta0)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(InvalidInputError, match="min_width"):
            RegionConfig(min_width=bad)
    with pytest.raises(InvalidInputError, match="horizon"):
        RegionConfig(horizon=0)
    with pytest.raises(InvalidInputError, match="lower <= upper"):
        certify_boxes(loop, spec, [[0.1, 0.0]], [[0.0, 0.1]])
    with pytest.raises(NonFiniteError):
        certify_boxes(loop, spec, [[np.nan, 0.0]], [[0.1, 0.1]])
    with pytest.raises(InvalidInputError, match="positive width"):
        certify_boxes(loop, spec, [[0.0, 0.0]], [[0.0, 0.1]])
    reg = RegressionTask()
    x = reg.constraint_states
    with pytest.raises(UnsupportedError, match="regression.*static"):
        certify_region(reg.problem, reg.structure, reg.theta0, x - 0.01, x + 0.01)
    switching = DoubleIntegratorTask(DoubleIntegratorConfig(**{**SMALL, "switching": True}))
    with pytest.raises(UnsupportedError, match="switch"):
        require_unswitched(switching.policy)
    require_unswitched(task.policy)  # no switching: accepted


def test_initial_state_rows_are_checked_on_the_box_itself(task):
    # Boxes clipped to X: the t = 0 rows of a box on the boundary are exactly 0 (closed form), not failed
    # by the margin; a box reaching past X has a positive t = 0 row (reference: the corner values).
    P = task.problem
    lo = np.array([[0.9, 0.0], [0.95, -0.1]])
    hi = np.array([[1.0, 0.1], [1.05, 0.0]])
    up = initial_state_rows_upper(P, lo, hi, Margin())
    ref = np.maximum(lo[:, None, :] * P.Hx[None], hi[:, None, :] * P.Hx[None]).sum(-1) - P.hx
    np.testing.assert_array_equal(up, ref)
    assert up[0].max() == 0.0 and up[1].max() > 0


def test_search_rows_are_the_initial_rows_then_the_layout(task):
    theta = strong_theta(task)
    loop = closed_loop(task.problem, task.structure, theta)
    x0 = task.safety_states[:7]
    from scpo.systems import rollout

    ro = rollout(loop, loop.policy(), torch.as_tensor(x0), task.problem.horizon)
    rows = search_rows(task.problem, torch.as_tensor(x0), ro.states, ro.inputs).numpy()
    np.testing.assert_allclose(rows, task_rows(task, theta, x0), rtol=0, atol=1e-13)
    lay = task.problem.layout
    p = lay.state_rows
    assert search_row_ref(task.problem, 1) == ("state", 0, 1)
    assert search_row_ref(task.problem, p + lay.state_index(3, 2)) == ("state", 3, 2)
    assert search_row_ref(task.problem, p + lay.input_index(0, 1)) == ("input", 0, 1)
    assert search_row_ref(task.problem, p + lay.terminal_index) == ("terminal", None, 0)


def test_region_record_round_trips_and_foreign_files_are_skipped(task, tmp_path):
    res = certify(task, task.theta0, RegionConfig(min_width=0.2, search_steps=0))
    rec = region_record(res, schema_version=1, run="RUN", task="double-integrator", iteration=3, theta_sha256="ab" * 32, min_width=0.2)
    assert rec["kind"] == REGION_FILE_KIND and rec["iteration"] == 3 and rec["level"] == "sound"
    assert rec["claims"][0]["name"] == "region_reach_avoid" and rec["summary"]["horizon"] == task.problem.horizon
    from scpo._io import atomic_write_json

    good, bad, other = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    atomic_write_json(good, rec)
    bad.write_text("{not json")
    other.write_text(json.dumps({"kind": "something else"}))
    assert load_region_record(good)["theta_sha256"] == "ab" * 32
    assert load_region_record(bad) is None and load_region_record(other) is None
    fig = region_figure(task.problem, res)
    assert fig.axes[0].get_xlabel() == "p"


def test_state_box_of_the_problem(task):
    lo, hi = state_box(task.problem)
    np.testing.assert_array_equal(lo, [-1.0, -1.0])
    np.testing.assert_array_equal(hi, [1.0, 1.0])
    with pytest.raises(UnsupportedError, match="bounded"):
        state_box(RegressionTask().problem)


def test_three_states_are_certified_soundly():
    # A chain of three integrators (the shape of a user-defined linear task): the cover, the bounds and
    # the search work in n = 3; every certified box is safe at dense samples (reference: scpo.systems.rollout).
    from scpo.policies import MLPStructure
    from scpo.systems import ClosedLoopProblem, LinearSystem, dlqr, rollout, terminal_level

    dt = 0.2
    A = np.array([[1.0, dt, dt * dt / 2], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
    B = np.array([[dt**3 / 6], [dt * dt / 2], [dt]])
    system = LinearSystem(A=A, B=B, Hx=np.vstack([np.eye(3), -np.eye(3)]), hx=np.ones(6), Hu=np.array([[1.0], [-1.0]]), hu=np.ones(2))
    lqr = dlqr(A, B, np.eye(3), np.eye(1))
    gamma = terminal_level(lqr.P, lqr.K, system.Hx, system.hx, system.Hu, system.hu) * (1 - 1e-9)
    problem = ClosedLoopProblem(system=system, K=lqr.K, horizon=6, P=lqr.P, gamma=gamma)
    structure = MLPStructure(3, (6,), 1, "tanh")
    theta = np.random.default_rng(0).normal(0, 0.2, structure.dim)
    g = np.linspace(-0.3, 0.3, 4)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    lo, hi, info = safety_region_cover(problem, grid, grid)
    res = certify_region(problem, structure, theta, lo, hi, RegionConfig(min_width=0.1, search_steps=3), region_info=info)
    assert res.summary["cells"] == 64 and 0 < res.certified_fraction <= 1
    loop = closed_loop(problem, structure, theta)
    cl, cu = res.certified_lower, res.certified_upper
    pts = cl[:, None, :] + np.random.default_rng(1).random((len(cl), 8, 3)) * (cu - cl)[:, None, :]
    x0 = torch.as_tensor(pts.reshape(-1, 3))
    ro = rollout(loop, loop.policy(), x0, problem.horizon)
    assert search_rows(problem, x0, ro.states, ro.inputs).max() <= 0
    with pytest.raises(UnsupportedError, match="two states"):
        region_figure(problem, res)
