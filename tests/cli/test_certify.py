"""``scpo certify`` in-process: the region certificate and figure written into the run, exit codes 0 / 1 / 2.

The default cover is the task's declared region C (sound certificate over leaves clipped to C);
``--cover grid-cells`` is the legacy cover of cells around the grid states of S.

References: the run's own checkpoint hash (scpo.runs.theta_sha256), RunPaths for the file names,
the library result for the same θ (scpo.certify.certify_region), exact volumes of C.
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
    train(resolve_config("double-integrator", task_overrides=SMALL, train_overrides={"iterations": 1, "seed": 0, "certify": "grid"}), out)
    return out


def _write_strong(run, seed=0, scale=0.3):
    """Extend the chain by one accepted iterate with a strong residual (a self-consistent forgery:
    checkpoint, hash and parent all match, so the run is intact and certify must judge the θ itself).

    Returns the new iteration."""
    st = run.task.structure
    theta = strong_theta(run.task, seed, scale)
    tensors = {name: W for name, W in zip(st.parameter_names, [a for layer in st.unflatten_numpy(theta) for a in layer])}
    lines = run.paths.records.read_text().splitlines()
    last = json.loads(lines[-1])
    it = last["iteration"] + 1
    h = write_checkpoint(run.paths.checkpoint(it), tensors, run.parameter_names, iteration=it, task=run.task_name)
    rec = {**last, "iteration": it, "accepted": True, "parent_sha256": last["theta_sha256"], "theta_sha256": h,
           "checkpoint": run.paths.checkpoint(it).relative_to(run.paths.root).as_posix()}
    run.paths.records.write_text("\n".join([*lines, json.dumps(rec)]) + "\n")
    return it


def test_region_cover_certifies_the_backup_on_all_of_C_and_refuses_a_strong_residual(small_run):
    from fractions import Fraction

    res = invoke(small_run, "--iteration", 0)
    assert res.exit_code == 0, res.output
    run = load_run(small_run)
    data = json.loads(run.paths.region_certificate(0).read_text())
    assert data["kind"] == "scpo.sound_region_certificate" and data["holds"] and data["certified_fraction"] == 1.0
    assert Fraction(data["certified_volume_exact"]) == Fraction(data["region"]["volume_exact"])  # exact, all of C
    assert data["theta_sha256"] == run.theta_hash(0)
    assert run.paths.region_figure(0).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "holds" in res.stdout
    it = _write_strong(run)
    res = invoke(small_run, "--iteration", it, "--max-depth", 4)
    assert res.exit_code == 1 and "FAILS" in res.stdout, res.output
    data = json.loads(run.paths.region_certificate(it).read_text())
    assert not data["holds"] and data["failed"] and any(f["verdict"] == "violated" for f in data["failed"])
    assert "violated" in res.stdout


def test_region_cover_of_the_static_problem(tmp_path):
    out = tmp_path / "reg"
    train(resolve_config("regression", task_overrides={"hidden": [4], "n_train": 10, "n_grid": 10},
                         train_overrides={"iterations": 0, "certify": "grid"}), out)
    res = invoke(out)
    assert res.exit_code == 0 and "the whole input interval" in res.stdout, res.output


def strong_theta(task, seed=0, scale=0.3):
    """θ₀ with a random final layer: a residual that breaks some constraints between grid states."""
    th = task.theta0.copy()
    n_last = sum(int(np.prod(task.structure.parameter_shapes[n])) for n in task.structure.final_layer)
    th[-n_last:] = np.random.default_rng(seed).normal(0, scale, n_last)
    return th


def test_certify_writes_the_certificate_and_the_figure(small_run):
    res = invoke(small_run, "--cover", "grid-cells", "--min-width", 0.05)
    run = load_run(small_run)
    it = max(run.checkpoints)
    path = run.paths.gridcells_certificate(it)
    data = json.loads(path.read_text())
    assert data["kind"] == "scpo.region_certificate" and data["level"] == "sound" and data["iteration"] == it
    assert data["theta_sha256"] == run.theta_hash(it) and data["task"] == "double-integrator"
    assert data["claims"][0]["name"] == "region_reach_avoid" and data["claims"][0]["level"] == "sound"
    assert res.exit_code == (0 if data["claims"][0]["holds"] else 1), res.output
    assert data["summary"]["failed_boxes"] == len(data["failed_boxes"])
    assert data["summary"]["margin"]["relative"] == 1e-9 and data["min_width"] == 0.05
    assert (run.paths.figures / f"gridcells_iter_{it:06d}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "certified" in res.stdout and str(path) in res.stdout
    assert "round  1:" in res.stderr  # progress lines on stderr
    # a corrupt file is skipped, not half-read
    (run.paths.certificates / "gridcells_iter_000777.json").write_text("{not json")
    assert load_region_record(run.paths.certificates / "gridcells_iter_000777.json") is None
    assert load_region_record(path)["theta_sha256"] == data["theta_sha256"]
    quiet = invoke(small_run, "--cover", "grid-cells", "--min-width", 0.05, "--quiet")
    assert quiet.exit_code == res.exit_code and "round" not in quiet.stderr


def test_certify_bad_input_exits_2(small_run, tmp_path):
    gc = ("--cover", "grid-cells")
    for args, word in (((small_run, *gc, "--min-width", 0.0), "--min-width"), ((small_run, "--iteration", 999), "iteration"),
                       ((small_run, *gc, "--horizon", 0), "--horizon"), ((small_run, "--horizon", 5), "--horizon"),
                       ((small_run, "--cover", "cells"), "--cover"), ((small_run, "--max-depth", -1), "--max-depth"),
                       ((tmp_path / "missing",), "error:")):
        res = invoke(*args)
        assert res.exit_code == 2, res.output
        assert word in res.stderr and "Traceback" not in res.output


def test_grid_cell_cover_refuses_a_static_problem(tmp_path):
    out = tmp_path / "reg"
    train(resolve_config("regression", task_overrides={"hidden": [4], "n_train": 10, "n_grid": 10},
                         train_overrides={"iterations": 0, "certify": "grid"}), out)
    res = invoke(out, "--cover", "grid-cells")
    assert res.exit_code == 2 and "static" in res.stderr, res.output


def test_certify_exit_0_when_every_box_is_certified_and_1_when_one_fails(small_run, monkeypatch):
    # exit 0: cover only the cells around the origin (inside X_f)
    cover = scpo.certify.safety_region_cover

    def near_origin(problem, grid, safety):
        lo, hi, info = cover(problem, grid, safety)
        near = np.all(np.abs((lo + hi) / 2) < 0.15, axis=1)
        return lo[near], hi[near], info

    monkeypatch.setattr(scpo.certify, "safety_region_cover", near_origin)
    res = invoke(small_run, "--cover", "grid-cells", "--iteration", 0, "--min-width", 0.05, "--quiet")
    assert res.exit_code == 0, res.output
    monkeypatch.undo()
    # exit 1: a residual that violates constraints, through the full cover
    run = load_run(small_run)
    it = _write_strong(run)
    res = invoke(small_run, "--cover", "grid-cells", "--iteration", it, "--min-width", 0.05, "--quiet")
    assert res.exit_code == 1, res.output
    data = json.loads(run.paths.gridcells_certificate(it).read_text())
    assert not data["claims"][0]["holds"] and data["failed_boxes"]
    assert data["summary"]["failed_violated"] > 0 and "violated at x0" in res.stdout


def _without_times(path):
    """The certificate file without its wall-clock fields (every key that names a time), at any depth."""
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if "time" not in k and k != "created"}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    return strip(json.loads(path.read_text()))


def test_region_cover_on_two_ray_workers_writes_the_in_process_certificate(small_run):
    # Reference: the same command in this process with the same --task-leaves (the batching fixes the bits).
    from scpo.distributed import ray_available, shutdown

    if not ray_available():
        pytest.skip('Ray is not installed (optional extra: pip install -e ".[ray]"); the Ray engine is not exercised here')
    run = load_run(small_run)
    it = _write_strong(run, scale=0.1)
    path = run.paths.region_certificate(it)
    codes = []
    for extra in ((), ("--workers", 2)):
        res = invoke(small_run, "--iteration", it, "--max-depth", 3, "--task-leaves", 16, *extra)
        codes.append(res.exit_code)
        assert res.exit_code in (0, 1), res.output
        if not extra:
            here = _without_times(path)
    shutdown()
    there = _without_times(path)
    assert codes[0] == codes[1] and json.dumps(here, sort_keys=True) == json.dumps(there, sort_keys=True)


def test_distribution_flags_are_checked(small_run):
    res = invoke(small_run, "--iteration", 0, "--workers", 0)
    assert res.exit_code == 2 and "workers: expected" in res.output, res.output
    res = invoke(small_run, "--iteration", 0, "--cover", "grid-cells", "--task-leaves", 8)
    assert res.exit_code == 2 and "only the region cover" in res.output, res.output
    res = invoke(small_run, "--iteration", 0, "--cover", "grid-cells", "--max-leaves", 8)
    assert res.exit_code == 2 and "--max-leaves: only the region cover" in res.output, res.output
    res = invoke(small_run, "--iteration", 0, "--max-leaves", 0)
    assert res.exit_code == 2 and "--max-leaves" in res.output and "Traceback" not in res.output, res.output
    import torch

    if not torch.cuda.is_available():
        res = invoke(small_run, "--iteration", 0, "--device", "cuda")
        assert res.exit_code == 2 and "cuda" in res.output.lower() and "Traceback" not in res.output, res.output


def _snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_damaged_run_receives_no_certificate(small_run, tmp_path):
    # Reference: the directory's bytes before and after (nothing written), and exit 2 with one line.
    import shutil

    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    r = load_run(run)
    st = r.task.structure
    theta = strong_theta(r.task, 3, 0.1)
    tensors = {name: W for name, W in zip(st.parameter_names, [a for layer in st.unflatten_numpy(theta) for a in layer])}
    write_checkpoint(r.paths.checkpoint(90), tensors, r.parameter_names, iteration=90, task=r.task_name)  # no record
    before = _snapshot(run)
    for args in ((run, "--iteration", 0), (run, "--iteration", 0, "--cover", "grid-cells")):
        res = invoke(*args)
        assert res.exit_code == 2, res.output
        assert "has no record" in res.stderr and "nothing was written" in res.stderr and res.stderr.strip().count("\n") == 0
    res = CliRunner().invoke(app, ["verify-lipschitz", str(run), "--iteration", "0"])
    assert res.exit_code == 2 and "has no record" in res.stderr, res.output
    assert _snapshot(run) == before


def test_certify_never_overwrites_a_certificate_the_chain_names(tmp_path):
    # Reference: the sound run's own audit (the record names region_iter_000001.json by its SHA-256).
    from scpo.audit import audit_run

    out = tmp_path / "sound"
    train(resolve_config("double-integrator", task_overrides=SMALL, train_overrides={"iterations": 1, "seed": 0, "certify": "sound"}), out)
    run = load_run(out)
    named = run.paths.region_certificate(0)
    before = named.read_bytes()
    res = invoke(out, "--iteration", 0, "--quiet")
    assert res.exit_code == 0, res.output
    assert named.read_bytes() == before
    again = run.paths.region_recertificate(0)
    data = json.loads(again.read_text())
    assert data["theta_sha256"] == run.theta_hash(0) and data["holds"] and str(again) in res.stdout
    assert audit_run(out).verdict == "verified"
