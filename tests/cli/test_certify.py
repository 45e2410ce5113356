"""``scpo certify`` in-process: the region certificate and figure written into the run, exit codes 0 / 1 / 2.

References: the run's own checkpoint hash (scpo.runs.theta_sha256), RunPaths for the file names,
the library result for the same θ (scpo.certify.certify_region).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import scpo.certify
from scpo.certify import load_region_record
from scpo.cli import app
from scpo.runs import load_run
from scpo.runs.files import write_checkpoint
from scpo.training import resolve_config, train

SMALL = {"grid": 16, "horizon": 12, "hidden": [8, 8], "n_samples": 32}


def invoke(*args):
    return CliRunner().invoke(app, ["certify", *map(str, args)])


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("certify") / "run"
    train(resolve_config("double-integrator", task_overrides=SMALL, train_overrides={"iterations": 1, "seed": 0}), out)
    return out


def strong_theta(task, seed=0, scale=0.3):
    """θ₀ with a random final layer: a residual that breaks some constraints between grid states."""
    th = task.theta0.copy()
    n_last = sum(int(np.prod(task.structure.parameter_shapes[n])) for n in task.structure.final_layer)
    th[-n_last:] = np.random.default_rng(seed).normal(0, scale, n_last)
    return th


def test_certify_writes_the_certificate_and_the_figure(small_run):
    res = invoke(small_run, "--min-width", 0.05)
    run = load_run(small_run)
    it = max(run.checkpoints)
    path = run.paths.region_certificate(it)
    data = json.loads(path.read_text())
    assert data["kind"] == "scpo.region_certificate" and data["level"] == "sound" and data["iteration"] == it
    assert data["theta_sha256"] == run.theta_hash(it) and data["task"] == "double-integrator"
    assert data["claims"][0]["name"] == "region_reach_avoid" and data["claims"][0]["level"] == "sound"
    assert res.exit_code == (0 if data["claims"][0]["holds"] else 1), res.output
    assert data["summary"]["failed_boxes"] == len(data["failed_boxes"])
    assert data["summary"]["margin"]["relative"] == 1e-9 and data["min_width"] == 0.05
    assert run.paths.region_figure(it).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "certified" in res.stdout and str(path) in res.stdout
    assert "round  1:" in res.stderr  # progress lines on stderr
    # readers of the run (report, audit) find it by iteration; a corrupt file is skipped, not half-read
    (run.paths.certificates / "region_iter_000777.json").write_text("{not json")
    found = {i: rec for i, p in run.paths.region_certificates().items() if (rec := load_region_record(p)) is not None}
    assert found[it]["theta_sha256"] == data["theta_sha256"] and 777 not in found
    quiet = invoke(small_run, "--min-width", 0.05, "--quiet")
    assert quiet.exit_code == res.exit_code and "round" not in quiet.stderr


def test_certify_bad_input_exits_2(small_run, tmp_path):
    for args, word in (((small_run, "--min-width", 0.0), "--min-width"), ((small_run, "--iteration", 999, "--min-width", 0.05), "iteration"),
                       ((small_run, "--horizon", 0), "--horizon"), ((tmp_path / "missing",), "error:")):
        res = invoke(*args)
        assert res.exit_code == 2, res.output
        assert word in res.stderr and "Traceback" not in res.output


def test_certify_refuses_a_static_problem(tmp_path):
    out = tmp_path / "reg"
    train(resolve_config("regression", task_overrides={"hidden": [4], "n_train": 10, "n_grid": 10}, train_overrides={"iterations": 0}), out)
    res = invoke(out)
    assert res.exit_code == 2 and "static" in res.stderr, res.output


def test_certify_exit_0_when_every_box_is_certified_and_1_when_one_fails(small_run, monkeypatch):
    # exit 0: cover only the cells around the origin (inside X_f)
    cover = scpo.certify.safety_region_cover

    def near_origin(problem, grid, safety):
        lo, hi, info = cover(problem, grid, safety)
        near = np.all(np.abs((lo + hi) / 2) < 0.15, axis=1)
        return lo[near], hi[near], info

    monkeypatch.setattr(scpo.certify, "safety_region_cover", near_origin)
    res = invoke(small_run, "--iteration", 0, "--min-width", 0.05, "--quiet")
    assert res.exit_code == 0, res.output
    monkeypatch.undo()
    # exit 1: a residual that violates constraints, through the full cover
    run = load_run(small_run)
    st = run.task.structure
    theta = strong_theta(run.task)
    tensors = {name: W for name, W in zip(st.parameter_names, [a for layer in st.unflatten_numpy(theta) for a in layer])}
    write_checkpoint(run.paths.checkpoint(50), tensors, run.parameter_names, iteration=50, task=run.task_name)
    res = invoke(small_run, "--iteration", 50, "--min-width", 0.05, "--quiet")
    assert res.exit_code == 1, res.output
    data = json.loads(run.paths.region_certificate(50).read_text())
    assert not data["claims"][0]["holds"] and data["failed_boxes"]
    assert data["summary"]["failed_violated"] > 0 and "violated at x0" in res.stdout
