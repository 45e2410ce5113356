"""The region certificate (scpo.certify.region) and ``scpo certify`` (scpo.certify.certify_command).

References: evaluation at the box corners for the linear closed loop of the backup (every row is
then affine or convex in x_0, so its maximum over a box is at a corner), dense sampling with the
task's own rollout and projected-gradient search for soundness, area arithmetic for the
fraction, the exact backup certificate for the value decrease of the backup.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from scpo.certify import region as region_mod
from scpo.certify.bounds import Margin, closed_loop_from_task
from scpo.certify.certify_command import certify_command, read_region_certificates, region_certificate_path
from scpo.certify.region import (
    RegionConfig,
    certify_boxes,
    certify_region,
    reach_avoid_spec,
    rollout_rows,
    safety_region_cover,
    search_counterexamples,
)
from scpo.errors import InvalidInputError, NonFiniteError, UnsupportedError
from scpo.evidence import Level
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


def task_rows(task, theta, x0, spec):
    """All reach-avoid rows from the task's own rollout (reference implementation): shape (S, R)."""
    ro = task.rollout(theta[None], x0, horizon=spec.horizon)
    return rollout_rows(spec, ro.states[0], ro.inputs[0]).numpy()


def test_cover_tiles_the_cells_of_S(task):
    lo, hi, info = safety_region_cover(task)
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
    spec = reach_avoid_spec(task)
    lo, hi, _ = safety_region_cover(task)
    res = certify_boxes(closed_loop_from_task(task, theta), spec, lo, hi, RegionConfig(min_width=1.0, search_steps=0))
    corners = np.stack([np.stack([np.where(b0, hi[:, 0], lo[:, 0]), np.where(b1, hi[:, 1], lo[:, 1])], -1)
                        for b0 in (0, 1) for b1 in (0, 1)], 1)
    worst = task_rows(task, theta, corners.reshape(-1, 2), spec).max(1).reshape(len(lo), 4).max(1)
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
    res = certify_region(task, theta, RegionConfig(min_width=0.02, search_steps=20))
    spec = reach_avoid_spec(task)
    s = res.summary
    # area arithmetic: certified + failed = R
    assert s["area_certified"] + s["area_failed"] == pytest.approx(s["area_total"], rel=1e-12)
    assert s["certified_fraction"] == pytest.approx(s["area_certified"] / s["area_total"], rel=1e-15)
    assert 0.3 < s["certified_fraction"] < 1.0 and s["failed_violated"] > 0
    # soundness: dense samples in every certified box (task's rollout) and a gradient search
    lo, hi = res.certified_lower, res.certified_upper
    rng = np.random.default_rng(0)
    pts = lo[:, None, :] + rng.random((len(lo), 24, 2)) * (hi - lo)[:, None, :]
    rows = task_rows(task, theta, pts.reshape(-1, 2), spec)
    assert rows.max() <= 0.0
    loop = closed_loop_from_task(task, theta)
    _, v, _ = search_counterexamples(loop, spec, lo, hi, steps=20, seed=1)
    assert v.max() <= 0.0
    # every "violated" failed box holds a point that really violates a row (task's rollout)
    viol = [f for f in res.failed if f["verdict"] == "violated"]
    x0 = np.array([f["search"]["x0"] for f in viol])
    assert np.all(task_rows(task, theta, x0, spec).max(1) > 0)
    assert np.all((x0 >= np.array([f["lower"] for f in viol])) & (x0 <= np.array([f["upper"] for f in viol])))
    # and the reason names the row and the time step
    assert all(("at t = " in f["reason"]) and (f["worst_bound"]["label"] in f["reason"]) for f in res.failed)


def test_claims_are_sound_level_with_the_margin_recorded(task):
    res = certify_region(task, task.theta0, RegionConfig(min_width=0.05, margin=Margin(rel=2e-9, abs=3e-10)))
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
    res = certify_region(task, theta, RegionConfig(min_width=0.05, search_steps=5))
    spec = reach_avoid_spec(task)
    lo, hi = res.certified_lower, res.certified_upper
    assert len(lo) > 0
    pts = lo[:, None, :] + np.random.default_rng(1).random((len(lo), 16, 2)) * (hi - lo)[:, None, :]
    assert task_rows(task, theta, pts.reshape(-1, 2), spec).max() <= 0.0


def test_progress_is_reported_every_round(task):
    seen = []
    certify_region(task, strong_theta(task), RegionConfig(min_width=0.05, search_steps=0), progress=seen.append)
    assert [d["round"] for d in seen] == list(range(1, len(seen) + 1))
    assert seen[-1]["pending"] == 0 and 0 <= seen[-1]["certified_fraction"] <= 1


def test_bad_input_is_rejected(task):
    spec = reach_avoid_spec(task)
    loop = closed_loop_from_task(task, task.theta0)
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
    with pytest.raises(UnsupportedError, match="regression"):
        certify_region(RegressionTask(), RegressionTask().theta0)
    switching = DoubleIntegratorTask(DoubleIntegratorConfig(**{**SMALL, "switching": True}))
    with pytest.raises(UnsupportedError, match="switch"):
        certify_region(switching, switching.theta0)


# ----------------------------------------------------------------------------- scpo certify
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    from scpo.training import resolve_config, train

    out = tmp_path_factory.mktemp("certify") / "run"
    cfg = resolve_config("double-integrator", task_overrides=dict(SMALL, hidden=[8, 8]), train_overrides={"iterations": 1, "seed": 0})
    train(cfg, out)
    return out


def test_certify_command_writes_the_certificate_and_figure(small_run, capsys):
    from scpo.runs import load_run

    seen = []
    rc = certify_command(small_run, None, None, 0.05, progress=seen.append)
    out = capsys.readouterr().out
    run = load_run(small_run)
    it = max(run.checkpoints)
    path = region_certificate_path(small_run, it)
    data = json.loads(path.read_text())
    assert data["level"] == "sound" and data["iteration"] == it
    assert data["theta_sha256"] == run.theta_hash(it)
    assert data["claims"][0]["level"] == "sound"
    assert rc == (0 if data["claims"][0]["holds"] else 1), out
    assert data["summary"]["failed_boxes"] == len(data["failed_boxes"])
    assert data["summary"]["margin"]["relative"] == 1e-9
    fig = small_run / "figures" / f"region_iter_{it:06d}.png"
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "certified" in out and str(path) in out and seen
    # readers of the run (report, audit) find it by iteration; a corrupt file is skipped, not half-read
    (small_run / "certificates" / "region_iter_000777.json").write_text("{not json")
    found = read_region_certificates(small_run)
    assert found[it]["theta_sha256"] == data["theta_sha256"] and 777 not in found


def test_certify_command_exit_codes(small_run, capsys, monkeypatch):
    assert certify_command(small_run, None, None, 0.0) == 2
    assert "--min-width" in capsys.readouterr().err
    assert certify_command(small_run, 999, None, 0.05) == 2
    assert "iteration" in capsys.readouterr().err
    assert certify_command(small_run, None, 0, 0.05) == 2
    assert "--horizon" in capsys.readouterr().err
    assert certify_command(small_run.parent / "missing", None, None, 0.05) == 2
    assert "error:" in capsys.readouterr().err
    # exit 0 when every box is certified: cover only cells around the origin (inside X_f)
    task = DoubleIntegratorTask(DoubleIntegratorConfig(**SMALL))
    lo, hi, info = safety_region_cover(task)
    near = np.all(np.abs((lo + hi) / 2) < 0.15, axis=1)
    monkeypatch.setattr(region_mod, "safety_region_cover", lambda _task: (lo[near], hi[near], info))
    assert certify_command(small_run, 0, None, 0.05) == 0, capsys.readouterr()
    # exit 1 when a box fails: a residual that violates constraints, through the full cover
    monkeypatch.undo()
    from scpo.runs import load_run
    from scpo.runs.files import write_checkpoint

    run = load_run(small_run)
    names = run.parameter_names
    theta = strong_theta(run.task)
    tensors, k = {}, 0
    for name, p in zip(names, run.task.policy.residual.parameters()):
        tensors[name] = theta[k : k + p.numel()].reshape(tuple(p.shape))
        k += p.numel()
    write_checkpoint(run.paths.checkpoint(50), tensors, names, iteration=50, task=run.task_name)
    assert certify_command(small_run, 50, None, 0.05) == 1
    data = json.loads(region_certificate_path(small_run, 50).read_text())
    assert not data["claims"][0]["holds"] and data["failed_boxes"]
