"""``scpo verify-lipschitz`` in-process on small trained regression runs: verdicts, JSON, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from scpo.certify import record_region_radius
from scpo.cli import app
from scpo.training import resolve_config, train

TINY = {"hidden": [8], "n_grid": 60, "n_train": 40}


def invoke(*args):
    return CliRunner().invoke(app, ["verify-lipschitz", *map(str, args)])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("lip")
    adaptive = train(resolve_config("regression", task_overrides=TINY, train_overrides={"iterations": 10}), root / "adaptive").run
    fixed = train(resolve_config("regression", task_overrides=TINY, projector_overrides={"L_fixed": True, "L_init": 50.0},
                                 train_overrides={"iterations": 10}), root / "fixed").run
    return adaptive, fixed


def _json(path):
    return json.loads(Path(path).read_text())


def test_adaptive_run_is_not_certified_and_says_which_rows(runs):
    run = runs[0]
    res = invoke(run.path)
    assert res.exit_code == 1, res.output
    cert = _json(run.paths.certificates / "lipschitz_iter_000010.json")
    assert cert["rows"] == 120 and not cert["all_certified"] and cert["row_mode"] == "mlp-output"
    pr = cert["per_row"]
    L, sound, lower = (np.array(pr[k], dtype=float) for k in ("L_used_min", "sound", "lower"))
    verdict = np.array(pr["verdict"])
    # verdicts follow their definitions row by row
    assert np.all((verdict == "certified") == (L >= sound))
    assert np.all((verdict == "violated") == (L < lower))
    assert cert["counts"]["certified"] + cert["counts"]["plausible"] + cert["counts"]["violated"] == 120
    assert np.all(lower <= sound)
    assert "verdicts" in res.stdout and "plausible" in res.stdout
    claims = {c["name"]: c for c in cert["claims"]}
    assert claims["smoothness_certified"]["level"] == "sound" and not claims["smoothness_certified"]["holds"]
    assert cert["margin"]["relative"] == 1e-9 and cert["margin"]["absolute"] == 0.0


def test_run_with_L_above_the_certified_bound_is_certified_with_zero_rejections(runs):
    run = runs[1]
    assert all(r["rejected_tries"] == 0 and r["prediction_failures"] == 0 for r in run.records)
    res = invoke(run.path, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["all_certified"] and out["counts"]["certified"] == 120
    assert max(out["per_row"]["sound"]) <= 50.0


def test_an_iteration_without_state_uses_the_recorded_L_range_and_record_radius(runs):
    run = runs[0]
    res = invoke(run.path, "--iteration", 5, "--json")
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    assert "L_min" in out["L_used_source"]
    R, how = record_region_radius(run.records, 5, bank_size=16, probe_radius=1e-3)
    assert out["region"]["radius"] == pytest.approx(R)
    # the record bound covers at least the distance between consecutive iterates
    assert R >= np.linalg.norm(run.theta(5) - run.theta(4))
    assert R >= np.linalg.norm(run.theta(6) - run.theta(5))


def test_bad_input_exits_2(runs, tmp_path):
    run = runs[0]
    for args, word in (((run.path, "--radius", 0.0), "radius"), ((run.path, "--radius", "nan"), "radius"),
                       ((tmp_path / "missing",), "error:"), ((run.path, "--iteration", 999), "999")):
        res = invoke(*args)
        assert res.exit_code == 2, res.output
        assert word in res.stderr and "Traceback" not in res.output


def test_relu_run_is_refused(tmp_path):
    tc = {**TINY, "activation": "relu"}
    run = train(resolve_config("regression", task_overrides=tc, train_overrides={"iterations": 2}), tmp_path / "relu").run
    res = invoke(run.path, "--radius", 0.01)
    assert res.exit_code == 2 and "ReLU" in res.stderr, res.output
