"""Training with the sound gate: every accepted iterate names a region certificate that holds (issue 12)."""

import hashlib
import json

import numpy as np
import pytest

from scpo.runs import load_run
from scpo.training import resolve_config, resume, train

REG = {"hidden": [8], "n_train": 40, "n_grid": 60}


def test_sound_run_records_a_certificate_per_accepted_iterate(tmp_path):
    out = tmp_path / "reg"
    res = train(resolve_config("regression", task_overrides=REG, projector_overrides={"lr": 0.05},
                               train_overrides={"iterations": 8}), out)  # certify "auto": the task declares [−3, 3]
    run = load_run(out)
    assert run.config["train"]["certify"] == "sound" and run.config["task_config"]["row_margin"] == 1e-3
    base = run.base_certificate
    assert {c["name"] for c in base["claims"]} >= {"base_case", "region_reach_avoid"}
    for rec in [base, *[r for r in run.records if r["accepted"]]]:
        raw = (out / rec["region_certificate"]).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == rec["region_certificate_sha256"] and rec["region_holds"]
        data = json.loads(raw)
        assert data["holds"] and data["certified_fraction"] == 1.0 and data["theta_sha256"] == rec["theta_sha256"]
    # the margin: every evaluated row is ≤ −δ, so the evaluated g (with δ added) stays ≤ 0
    assert all(r["max_constraint"] <= 0 for r in run.records if r["accepted"])
    x = np.linspace(-3, 3, 20001)
    for it in run.checkpoints:  # reference: dense sampling of |f| on [−3, 3]
        assert np.abs(run.task.predict(run.theta(it)[None], x)).max() <= 1.0
    assert res.violations == 0


def test_grid_mode_keeps_the_legacy_rows(tmp_path):
    out = tmp_path / "reg"
    train(resolve_config("regression", task_overrides=REG, train_overrides={"iterations": 2, "certify": "grid"}), out)
    run = load_run(out)
    assert run.config["train"]["certify"] == "grid" and run.config["task_config"]["row_margin"] == 0.0
    assert "region_certificate" not in run.base_certificate and not list(run.paths.region_certificates())


def test_resume_of_a_sound_run_restores_the_added_states(tmp_path):
    out = tmp_path / "reg"
    cfg = resolve_config("regression", task_overrides=REG, projector_overrides={"lr": 0.05},
                         train_overrides={"iterations": 4, "certify": "sound"})
    train(cfg, out)
    run = load_run(out)
    added = [s for r in run.records for s in (r.get("added_states") or [])]
    res = resume(out, iterations=7)
    run = load_run(out)
    assert [r["iteration"] for r in run.records] == list(range(1, 8))
    later = run.records[-1]["constraint_states"]
    assert later >= 60 + len(added)
    assert res.violations == 0


@pytest.mark.parametrize("bad", [{"certify": "certain"}])
def test_a_bad_certify_mode_is_bad_input(bad):
    from scpo.errors import ConfigError

    with pytest.raises(ConfigError, match="certify"):
        resolve_config("regression", train_overrides=bad)
