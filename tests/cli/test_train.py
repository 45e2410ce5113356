"""The CLI, run in-process."""

import json

from typer.testing import CliRunner

from scpo import load_run
from scpo.cli import app

runner = CliRunner()


def _config(tmp_path):
    p = tmp_path / "cfg.json"
    p.write_text(json.dumps({"task_config": {"hidden": [8], "n_train": 40, "n_grid": 60}, "projector": {"lr": 0.05}}))
    return p


def test_train_and_resume(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "regression", "--out", str(out), "--iterations", "3", "--config", str(_config(tmp_path)), "--seed", "2"])
    assert res.exit_code == 0, res.output
    assert "accepted iterates violating a constraint   0" in res.output and "achievable improvement closed" in res.output
    assert load_run(out).config["train"]["seed"] == 2
    res = runner.invoke(app, ["train", "regression", "--resume", str(out), "--iterations", "5"])
    assert res.exit_code == 0, res.output
    assert len(load_run(out).records) == 5


def test_bad_input_exit_code_2(tmp_path):
    res = runner.invoke(app, ["train", "regression", "--out", str(tmp_path / "r"), "--solver", "gurobi"])
    assert res.exit_code == 2 and "solver: expected one of" in res.output, res.output
    res = runner.invoke(app, ["train", "regression", "--out", str(tmp_path / "r"), "--bank-size", "0"])
    assert res.exit_code == 2 and "bank_size" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"projector": {"lr": 0.1, "momentum": 0.9}}')
    res = runner.invoke(app, ["train", "regression", "--out", str(tmp_path / "r"), "--config", str(bad)])
    assert res.exit_code == 2 and "unknown key(s) 'momentum'" in res.output and "valid keys are" in res.output
    res = runner.invoke(app, ["train", "pendulum", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "task: expected one of" in res.output
    res = runner.invoke(app, ["train", "regression"])
    assert res.exit_code == 2 and "--out" in res.output
    res = runner.invoke(app, ["train", "regression", "--resume", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "expected a run directory" in res.output
    assert not (tmp_path / "r").exists()


def test_demo_runs_and_reports(tmp_path):
    out = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "--out", str(out), "--iterations", "2"])
    assert res.exit_code == 0, res.output
    assert str(out) in res.output and "objective" in res.output and "accepted" in res.output


def test_help_shows_flags_as_flags_and_the_library_defaults():
    from scpo.projector import ProjectorConfig
    from scpo.training.config import TrainConfig

    for cmd in ("train", "demo", "audit", "reach", "report", "bench"):
        res = runner.invoke(app, [cmd, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0 and "<bool>" not in res.output, (cmd, res.output)
    text = " ".join(runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output.split())
    t, p = TrainConfig(), ProjectorConfig()
    for flag, value in (("--iterations", t.iterations), ("--seed", t.seed), ("--bank-size", p.bank_size), ("--solver", p.solver),
                        ("--direction", p.direction), ("--checkpoint-every", t.checkpoint_every), ("--certify", t.certify)):
        after = text.split(f" {flag} ", 1)[1].split(" --", 1)[0]
        assert f"Default: {value}." in after, (flag, after)
    assert "a multiple of K" in text  # what the code does (rec.iteration % checkpoint_every == 0)


def test_thread_policy_one_thread_unless_the_user_chose():
    import os
    import subprocess
    import sys

    import pytest

    from scpo.cli._common import apply_thread_policy
    from scpo.errors import InvalidInputError

    env: dict[str, str] = {}
    assert apply_thread_policy(env) == 1 and env == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    env = {"OMP_NUM_THREADS": "2"}
    assert apply_thread_policy(env) == 2 and env["MKL_NUM_THREADS"] == "2"  # check_theta_sequence's choice is kept
    env = {"OMP_NUM_THREADS": "2", "SCPO_NUM_THREADS": "3"}
    assert apply_thread_policy(env) == 3 and env["OMP_NUM_THREADS"] == "3"
    with pytest.raises(InvalidInputError, match="SCPO_NUM_THREADS: expected a positive integer, got 'many'"):
        apply_thread_policy({"SCPO_NUM_THREADS": "many"})
    # applied before torch is imported, torch starts with one intra-op thread
    code = "from scpo.cli._common import apply_thread_policy; apply_thread_policy(); import torch; print(torch.get_num_threads())"
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean, timeout=300)
    assert out.stdout.strip() == "1", out.stderr


def test_unprojected_run_with_violating_iterates_exits_1_like_the_demo(tmp_path):
    out = tmp_path / "free"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"task_config": {"hidden": [8], "n_train": 40, "n_grid": 60}, "projector": {"lr": 0.1}}))
    res = runner.invoke(app, ["train", "regression", "--out", str(out), "--iterations", "25", "--config", str(cfg), "--no-projection",
                              "--quiet"])
    violations = sum(1 for r in load_run(out).records if r["violation"])
    assert violations > 0 and res.exit_code == 1, res.output
    assert f"accepted iterates violating a constraint   {violations}" in res.output


def test_sound_gate_on_two_ray_workers_trains_the_in_process_run(tmp_path):
    # Reference: the same run in this process with the gate's task_leaves = 64 (what --workers records):
    # the θ hashes and the region certificates' bytes of every iteration must be the same.
    import pytest

    from scpo.distributed import ray_available, shutdown

    if not ray_available():
        pytest.skip('Ray is not installed (optional extra: pip install -e ".[ray]"); the Ray engine is not exercised here')
    cfg = tmp_path / "cfg.json"
    base = {"task_config": {"hidden": [8], "n_train": 40, "n_grid": 60}, "projector": {"lr": 0.05}}
    cfg.write_text(json.dumps({**base, "gate": {"task_leaves": 64}}))
    here, there = tmp_path / "here", tmp_path / "there"
    args = ["train", "regression", "--iterations", "3", "--certify", "sound", "--quiet"]
    res = runner.invoke(app, [*args, "--out", str(here), "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    cfg2 = tmp_path / "cfg2.json"
    cfg2.write_text(json.dumps(base))
    try:
        res = runner.invoke(app, [*args, "--out", str(there), "--config", str(cfg2), "--workers", "2"])
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["train", "--resume", str(there), "--iterations", "5", "--workers", "2", "--quiet"])
        assert res.exit_code == 0, res.output
        assert "scpo train regression: finished" in res.output  # the run's task names it when TASK is left out
    finally:
        shutdown()
    res = runner.invoke(app, ["train", "--resume", str(here), "--iterations", "5", "--quiet"])
    assert res.exit_code == 0, res.output
    assert load_run(there).config["gate"]["task_leaves"] == 64
    a, b = load_run(here).records, load_run(there).records
    assert [r["theta_sha256"] for r in a] == [r["theta_sha256"] for r in b] and len(a) == 5

    def strip(v):  # the certificates without their wall-clock fields
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if "time" not in k}
        return [strip(x) for x in v] if isinstance(v, list) else v

    def certs(root, recs):
        return [strip(json.loads((root / r["region_certificate"]).read_text())) for r in recs if r.get("region_certificate")]

    assert len(certs(here, a)) >= 3 and certs(here, a) == certs(there, b)


def test_engine_flags_of_train_are_checked(tmp_path):
    from scpo.distributed import ray_available

    res = runner.invoke(app, ["train", "regression", "--out", str(tmp_path / "r"), "--certify", "grid", "--workers", "2"])
    # with Ray installed the engine is refused for a grid run; without it, the missing extra is named first
    why = "only the sound gate distributes" if ray_available() else 'pip install -e ".[ray]"'
    assert res.exit_code == 2 and why in res.output and not (tmp_path / "r").exists(), res.output
    res = runner.invoke(app, ["train", "regression", "--out", str(tmp_path / "r"), "--workers", "0"])
    assert res.exit_code == 2 and "workers: expected" in res.output, res.output
