"""Run directories written by training: the chain, resume after Ctrl-C or a crash, bad input."""

import json

import numpy as np
import pytest
import torch

from scpo import load_run
from scpo.errors import ConfigError, InvalidInputError, NonFiniteError, RunDirectoryError
from scpo.runs.files import read_checkpoint, theta_sha256
from scpo.training import resolve_config, resume, train

SMALL = {"hidden": [8], "n_train": 40, "n_grid": 60}
REQUIRED = {
    "schema_version", "iteration", "accepted", "theta_sha256", "parent_sha256", "objective", "max_constraint",
    "predicted_max_constraint", "step_norm", "alpha", "rejected_tries", "L_min", "L_max", "solver",
    "solver_status", "solve_time_s", "evaluation_time_s",
}


def small_config(iterations=6, **proj):
    return resolve_config("regression", task_overrides=SMALL, projector_overrides={"lr": 0.05, **proj},
                          train_overrides={"iterations": iterations, "log_every": 1})


def test_run_directory_contract(tmp_path):
    out = tmp_path / "run"
    res = train(small_config(6), out)
    run = load_run(out)
    assert res.status == "finished" and res.violations == 0 and len(run.records) == 6
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["task"] == "regression" and cfg["task_config"]["hidden"] == [8] and cfg["projector"]["lr"] == 0.05
    base = json.loads((out / "base_certificate.json").read_text())
    assert base["holds"] and {c["name"]: c["level"] for c in base["claims"]} == {"base_case": "exact", "backup_feasible": "evaluated", "region_reach_avoid": "sound"}  # regression trains sound by default (--certify auto)
    parent = base["theta_sha256"]
    for rec in run.records:
        assert REQUIRED <= set(rec)
        assert rec["parent_sha256"] == parent
        assert rec["accepted"] or rec["theta_sha256"] == rec["parent_sha256"]
        assert not rec["accepted"] or rec["max_constraint"] <= 0
        parent = rec["theta_sha256"]
    # every accepted iterate has a checkpoint whose hash is the record's
    for rec in run.accepted_records():
        tensors, meta = read_checkpoint(out / rec["checkpoint"])
        assert meta["theta_sha256"] == rec["theta_sha256"] == run.theta_hash(rec["iteration"])
    assert (out / "run.json").is_file() and run.status["status"] == "finished"


def test_policy_rebuilt_from_the_run_matches_the_task(tmp_path):
    out = tmp_path / "run"
    train(small_config(4), out)
    run = load_run(out)
    it = max(run.checkpoints)
    pol = run.policy(it)
    assert isinstance(pol, torch.nn.Module)
    x = np.linspace(-3, 3, 11)
    with torch.no_grad():
        y = pol(torch.as_tensor(x).reshape(-1, 1))[:, 0].numpy()
    np.testing.assert_allclose(y, run.task.predict(run.theta(it)[None], x)[0], rtol=1e-12)
    with pytest.raises(RunDirectoryError, match="no checkpoint saved for iteration 999"):
        run.policy(999)


def test_resume_after_ctrl_c_continues_the_chain(tmp_path):
    straight = tmp_path / "straight"
    train(small_config(6), straight)

    out = tmp_path / "interrupted"

    def stop_at_3(info):
        if info["iteration"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(small_config(6), out, progress=stop_at_3)
    run = load_run(out)
    assert len(run.records) == 3 and run.status["status"] == "interrupted"
    res = resume(out)
    run = load_run(out)
    assert res.status == "finished" and [r["iteration"] for r in run.records] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(run.records[:-1], run.records[1:]):
        assert b["parent_sha256"] == a["theta_sha256"]
    # with the projector state restored, the resumed run follows the uninterrupted one
    np.testing.assert_allclose(load_run(out).theta(), load_run(straight).theta(), rtol=1e-9, atol=1e-12)
    assert [e["event"] for e in run.status["events"]] == ["start", "interrupted", "resume", "finished"]
    assert run.status["events"][2]["projector_state"] == "restored"


def test_resume_cuts_a_truncated_record_and_survives_a_lost_state(tmp_path):
    out = tmp_path / "run"
    train(small_config(4), out)
    with open(out / "certificates.jsonl", "ab") as fh:
        fh.write(b'{"schema_version": 1, "iteration": 5, "acc')  # crash mid-write
    for f in (out / "state").iterdir():
        f.unlink()  # and the projector state is gone
    resume(out, iterations=6)
    run = load_run(out)
    assert [r["iteration"] for r in run.records] == [1, 2, 3, 4, 5, 6]
    assert "reset" in run.status["events"][-2]["projector_state"]
    assert run.records[4]["parent_sha256"] == run.records[3]["theta_sha256"]
    assert json.loads((out / "config.json").read_text())["train"]["iterations"] == 6


def test_checkpoint_every_zero_keeps_first_and_last(tmp_path):
    out = tmp_path / "run"
    cfg = resolve_config("regression", task_overrides=SMALL, projector_overrides={"lr": 0.05},
                         train_overrides={"iterations": 5, "checkpoint_every": 0})
    train(cfg, out)
    run = load_run(out)
    last_accepted = max(r["iteration"] for r in run.accepted_records())
    assert sorted(run.checkpoints) == [0, last_accepted]
    assert run.theta_hash() == run.records[-1]["theta_sha256"]
    # The last iteration of this seeded run is accepted: its checkpoint is written in the loop and
    # its record names the file (a rejected last iteration leaves the earlier record's null).
    assert run.records[-1]["accepted"] and last_accepted == 5
    assert run.records[-1]["checkpoint"] == "checkpoints/theta_000005.safetensors"


def test_unprojected_baseline_records_its_violations(tmp_path):
    out = tmp_path / "run"
    res = train(small_config(25, projection=False, lr=0.1), out)
    assert res.violations > 0
    first = next(r for r in load_run(out).records if r["violation"])
    assert first["max_constraint"] > 0 and first["iteration"] <= 25


def test_bad_input_writes_nothing(tmp_path, monkeypatch):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="unknown key"):
        resolve_config("regression", projector_overrides={"bank_sise": 3})
    with pytest.raises(ConfigError, match="bank_size"):
        resolve_config("regression", projector_overrides={"bank_size": 0})
    with pytest.raises(ConfigError, match="L_init"):
        resolve_config("regression", projector_overrides={"L_init": -2.0})
    from scpo.tasks.regression import RegressionTask

    monkeypatch.setattr(RegressionTask, "constraints", lambda self, th: np.full((np.atleast_2d(th).shape[0], 4), np.nan))
    with pytest.raises(NonFiniteError):
        train(small_config(3), out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_existing_directory_is_never_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(RunDirectoryError, match="already exists"):
        train(small_config(2), out)


def test_theta_hash_is_reproducible_from_checkpoint_bytes(tmp_path):
    out = tmp_path / "run"
    train(small_config(2), out)
    run = load_run(out)
    tensors, _ = read_checkpoint(run.checkpoints[0])
    flat = np.concatenate([tensors[n].ravel() for n in run.parameter_names])
    assert theta_sha256(flat) == run.base_certificate["theta_sha256"]


def test_double_integrator_run_writes_certificates_and_figures(tmp_path):
    out = tmp_path / "di"
    cfg = resolve_config("double-integrator", task_overrides={"grid": 12, "n_samples": 32, "hidden": [8]},
                         train_overrides={"iterations": 4})
    res = train(cfg, out)
    run = load_run(out)
    assert res.violations == 0
    base = {c["name"]: c for c in run.base_certificate["claims"]}
    assert all(base[n]["holds"] and base[n]["level"] == "exact" for n in
               ("base_case", "P_positive_definite", "lyapunov_decrease", "terminal_set_in_state_constraints", "terminal_set_input_feasible"))
    final = json.loads((out / "certificates" / "final.json").read_text())
    claims = {c["name"]: c for c in final["claims"]}
    assert claims["reach_avoid"]["level"] == "evaluated" and claims["reach_avoid"]["holds"]
    assert final["theta_sha256"] == run.records[-1]["theta_sha256"]
    assert {p.name for p in (out / "figures").iterdir()} == {"training_curves.png", "state_box.png"}
    assert res.quality_final["imitation_loss"] <= res.quality_initial["imitation_loss"]


def test_zero_iterations_is_a_valid_run(tmp_path):
    out = tmp_path / "run"
    res = train(small_config(0), out)
    run = load_run(out)
    assert res.status == "finished" and run.records == [] and sorted(run.checkpoints) == [0]
    assert (out / "figures" / "training_curves.png").is_file()


def test_certified_L_run_rejects_nothing_and_verifies(tmp_path):
    # L_i from scpo.certify.certified_L over the ball of radius 0.05; every point (★) uses stays in
    # that ball, so (★) is a sound bound: no prediction can fail and no step is rejected for safety.
    from typer.testing import CliRunner

    from scpo.cli import app

    out = tmp_path / "cert"
    cfg = resolve_config("regression", task_overrides={"hidden": [8], "n_train": 40, "n_grid": 40},
                         projector_overrides={"L_mode": "certified", "certified_radius": 0.05, "lr": 0.05},
                         train_overrides={"iterations": 6})
    train(cfg, out)
    run = load_run(out)
    assert sum(r["prediction_failures"] for r in run.records) == 0
    assert all(r["accepted"] for r in run.records)
    assert max(r["step_norm"] for r in run.records) <= 0.05 * (1 + 1e-12)
    res = CliRunner().invoke(app, ["verify-lipschitz", str(out), "--json"])
    assert res.exit_code == 0, res.output  # every row certified
    with pytest.raises(ConfigError, match="certified_radius"):
        resolve_config("regression", projector_overrides={"L_mode": "certified"})


def test_benchmarks_import_only_public_names_of_scpo():
    # issue 11: what the benchmarks need is public (they used the private training._build_projector)
    import re
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    private = []
    for script in sorted(bench.glob("*.py")):
        for line in script.read_text(encoding="utf-8").splitlines():
            m = re.match(r"\s*from (scpo[\w.]*) import (.*)", line)
            if m and any(name.strip().startswith("_") for name in m.group(2).split(",")):
                private.append(f"{script.name}: {line.strip()}")
    assert not private, private


def test_run_reader_raises_on_a_bad_middle_line_and_names_a_wrong_iteration_type(tmp_path):
    out = tmp_path / "run"
    train(small_config(4), out)
    run = load_run(out)
    assert sorted(run.checkpoints)[:2] == [0, 1]
    with pytest.raises(InvalidInputError, match="iteration: expected an integer, got '1' \\(str\\)"):
        run.policy("1")
    lines = (out / "certificates.jsonl").read_bytes().split(b"\n")
    lines[1] = lines[1][:-5] + b"\xfe" + lines[1][-4:]
    (out / "certificates.jsonl").write_bytes(b"\n".join(lines))
    with pytest.raises(RunDirectoryError, match="line 2 of 4: not UTF-8"):
        load_run(out).records


def test_resume_says_running_repairs_a_torn_last_line_and_removes_crash_residue(tmp_path):
    import shutil

    out = tmp_path / "run"
    train(small_config(4), out)
    with open(out / "certificates.jsonl", "ab") as fh:
        fh.write(b'{"schema_version": 1, "iteration": 5, "acc')  # a crash mid-append ...
    shutil.copyfile(out / "checkpoints" / "theta_000004.safetensors", out / "checkpoints" / "theta_000005.safetensors")  # ... after its checkpoint
    seen = []

    def progress(info):
        seen.append(json.loads((out / "run.json").read_text())["status"])

    resume(out, iterations=6, progress=progress)
    run = load_run(out)
    assert seen and set(seen) == {"running"}  # run.json says running while the resume trains
    event = [e for e in run.status["events"] if e["event"] == "resume"][-1]
    assert any("torn last line 5" in r for r in event["repaired"]) and any("theta_000005" in r for r in event["repaired"])
    assert [r["iteration"] for r in run.records] == [1, 2, 3, 4, 5, 6] and run.status["status"] == "finished"
    from scpo.audit import audit_run

    assert audit_run(out).verdict == "verified"


def test_a_stalled_run_is_announced_and_stops_by_the_documented_rule(tmp_path, caplog):
    """Grid-mode regression at this size stops improving after ~190 iterations: every later step is
    rejected for no_decrease. The notice comes after 25 such iterations; --stop-after-stall N ends the
    run after N of them, as a finished run that audits clean."""
    import logging

    from scpo.audit import audit_run
    from scpo.training.run import STALL_NOTICE

    out = tmp_path / "run"
    cfg = resolve_config("regression", task_overrides=SMALL, projector_overrides={"lr": 0.05},
                         train_overrides={"iterations": 400, "certify": "grid"})
    with caplog.at_level(logging.WARNING, logger="scpo.training.run"):
        res = train(cfg, out, stall_limit=30)
    run = load_run(out)
    recs = run.records
    tail = recs[-30:]
    assert all(not r["accepted"] for r in tail) and recs[-31]["accepted"]  # stopped exactly at the 30th rejection
    assert len(recs) < 400 and res.status == "finished" and run.status["status"] == "finished"
    assert run.status["stopped_early"]["iteration"] == recs[-1]["iteration"]
    notices = [m for m in caplog.messages if "training has stalled" in m]
    assert len(notices) == 1 and f"were all rejected (no_decrease ×{STALL_NOTICE})" in notices[0]
    assert audit_run(out, iterations="0,last").verdict == "verified"


def test_the_stall_rule_is_stored_and_a_resume_keeps_it(tmp_path):
    # Reference: the previous test's run (stalls after ~190 iterations); here the rule comes from
    # config.json, set at the first call, and must still stop the resumed run.
    out = tmp_path / "run"
    cfg = resolve_config("regression", task_overrides=SMALL, projector_overrides={"lr": 0.05},
                         train_overrides={"iterations": 20, "certify": "grid", "stop_after_stall": 30})
    train(cfg, out)
    assert json.loads((out / "config.json").read_text())["train"]["stop_after_stall"] == 30
    assert load_run(out).status.get("stopped_early") is None
    res = resume(out, iterations=400)
    recs = load_run(out).records
    assert all(not r["accepted"] for r in recs[-30:]) and recs[-31]["accepted"] and len(recs) < 400
    assert res.status == "finished" and load_run(out).status["stopped_early"]["iteration"] == recs[-1]["iteration"]
    with pytest.raises(ConfigError, match="stop_after_stall"):
        resolve_config("regression", train_overrides={"stop_after_stall": 0})


def test_every_file_of_a_run_is_readable_by_others_under_umask_022(tmp_path):
    """issue 15, item 10: checkpoints and state were written 0600 (safetensors' own mode); another user
    must be able to audit a shared run."""
    import os

    old = os.umask(0o022)
    try:
        train(small_config(2), tmp_path / "run")
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777 for p in (tmp_path / "run").rglob("*")}
    assert {k: oct(m) for k, m in modes.items() if m != (0o755 if (tmp_path / k).is_dir() else 0o644)} == {}
    assert any(k.startswith("run/checkpoints/") for k in modes) and any(k.startswith("run/state/") for k in modes)
