"""Training with certified L on the bank's subspace (issue 13, part 3): records, providers, report claim, bad input."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from scpo.certify.smoothness import subspace_certified_L
from scpo.cli import app
from scpo.errors import InvalidInputError, UnsupportedError
from scpo.reports.claims import smoothness_chain_claim
from scpo.reports.collect import collect_run
from scpo.training import resolve_config, train
from scpo.training.run import build_projector, setup_task
from scpo.training.smoothness import L_providers

REG = {"hidden": [8], "n_train": 40, "n_grid": 60}
TINY_DI = {"horizon": 5, "grid": 8, "n_samples": 64, "hidden": [6, 6]}
SUB = {"L_mode": "subspace", "certified_radius": 0.05}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize("certify", ["grid", "sound"])
def test_subspace_L_run_records_a_certificate_per_iteration_and_never_rejects_for_safety(tmp_path, certify):
    out = tmp_path / "reg"
    res = train(resolve_config("regression", task_overrides=REG, projector_overrides={**SUB, "lr": 0.05},
                               train_overrides={"iterations": 6, "certify": certify}), out)
    recs = [json.loads(line) for line in (out / "certificates.jsonl").read_text().splitlines()]
    assert sum(r["accepted"] for r in recs) >= 5 and res.violations == 0
    for r in recs:
        assert r["L_mode"] == "subspace" and r["safety_rejections"] == 0 and r["prediction_failures"] == 0
        assert len(r["L_certificates"]) >= 1 and all(len(d) == 64 for d in r["L_certificates"])
        assert r["L_radius"] >= 0.05 and r["step_norm"] <= r["L_radius"]
    claim = smoothness_chain_claim(collect_run(out))
    assert claim["level"] == "sound" and claim["holds"] and claim["details"]["required"] is False


def test_adaptive_runs_have_no_per_iteration_smoothness_claim(tmp_path):
    out = tmp_path / "reg"
    train(resolve_config("regression", task_overrides=REG, train_overrides={"iterations": 2, "certify": "grid"}), out)
    assert smoothness_chain_claim(collect_run(out)) is None
    rec = json.loads((out / "certificates.jsonl").read_text().splitlines()[0])
    assert rec["L_mode"] == "adaptive" and rec["L_certificates"] == [] and rec["safety_rejections"] == 0


def test_the_subspace_provider_is_subspace_certified_L_on_the_task_rows_and_slices_by_state():
    cfg = resolve_config("double-integrator", task_overrides=TINY_DI, projector_overrides=SUB, train_overrides={"certify": "grid"})
    cfg, task, _ = setup_task(cfg)
    _, provider = L_providers(task, cfg.projector)
    rng = np.random.default_rng(0)
    theta = task.theta0 + 0.05 * rng.normal(size=task.dim)  # a non-zero last layer: curvature in every direction
    D = rng.normal(size=(5, task.dim))
    D *= 0.04 / np.linalg.norm(D, axis=1, keepdims=True)
    L, digest = provider(theta, D, 0.05, 0)
    ref, cert = subspace_certified_L(task.problem, task.structure, theta, task.constraint_states, D, 0.05)
    assert digest == cert.digest and np.array_equal(L, ref) and L.size == task.constraints(theta[None]).shape[1]
    R = task.problem.layout.n_rows
    L3, _ = provider(theta, D, 0.05, 3 * R)  # rows of the states from the 4th on (a gate appends states at the end)
    np.testing.assert_array_equal(L3, ref[3 * R:])
    with pytest.raises(Exception, match="first_row"):
        provider(theta, D, 0.05, 1)
    with pytest.raises(InvalidInputError, match="non-zero direction"):
        provider(theta, np.zeros((3, task.dim)), 0.05, 0)


def test_relu_and_switched_policies_are_refused_before_training():
    cfg = resolve_config("regression", task_overrides={**REG, "activation": "relu"}, projector_overrides=SUB, train_overrides={"certify": "grid"})
    cfg, task, _ = setup_task(cfg)
    with pytest.raises(UnsupportedError, match="ReLU"):
        build_projector(task, cfg.projector, task.theta0)
    cfg = resolve_config("double-integrator", task_overrides={**TINY_DI, "switching": True}, projector_overrides=SUB,
                         train_overrides={"certify": "grid"})
    cfg, task, _ = setup_task(cfg)
    with pytest.raises(UnsupportedError, match="switch"):
        build_projector(task, cfg.projector, task.theta0)
    cfg = resolve_config("double-integrator", task_overrides={**TINY_DI, "rows": "max"}, projector_overrides=SUB,
                         train_overrides={"certify": "grid"})
    cfg, task, _ = setup_task(cfg)
    with pytest.raises(UnsupportedError, match="rows 'max'"):
        build_projector(task, cfg.projector, task.theta0)


def _train_cli(tmp_path, *args):
    return CliRunner().invoke(app, ["train", "regression", "--out", str(tmp_path / "run"), "--iterations", "1", *map(str, args)])


def test_cli_bad_input_for_the_subspace_mode_exits_2(tmp_path):
    cfg_file = tmp_path / "relu.json"
    cfg_file.write_text(json.dumps({"task_config": {**REG, "activation": "relu"}}))
    cases = [
        (("--L-mode", "subspace"), "certified_radius"),
        (("--L-mode", "subspace", "--certified-radius", 0), "certified_radius"),
        (("--L-mode", "subspace", "--certified-radius", -1), "certified_radius"),
        (("--L-mode", "subspace", "--certified-radius", "nan"), "certified_radius"),
        (("--L-mode", "sideways", "--certified-radius", 0.1), "L_mode"),
        (("--L-mode", "subspace", "--certified-radius", 0.1, "--config", cfg_file, "--certify", "grid"), "ReLU"),
    ]
    for args, word in cases:
        res = _train_cli(tmp_path, *args)
        assert res.exit_code == 2, (args, res.output)
        assert word in res.stderr and "Traceback" not in res.output, (args, res.stderr)
        assert not (tmp_path / "run" / "certificates.jsonl").exists()
