"""The independent audit: untouched runs verify, real tampering is caught ("failed") or reported
as bad input.

References: hashes against ``scpo.runs.files.theta_sha256`` (the training-side definition);
re-evaluated ``g`` against the values the training recorded; the fresh DARE solve against the
task's backup. The run fixtures are in ``conftest.py``; the reader, the rollout and the iteration
selection have their own modules.
"""

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from scpo.audit import AuditTolerances, audit_run
from scpo.errors import InvalidInputError
from scpo.runs import load_run, task_from_config
from scpo.runs.files import read_checkpoint, theta_sha256, write_checkpoint


def copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "certificates.jsonl").read_text().splitlines()]


def write_records(run: Path, recs: list[dict]) -> None:
    (run / "certificates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def failures(res) -> list[tuple[str, int | None, str]]:
    return [(c.name, c.iteration, c.message) for c in res.failures]


def accepted_with_checkpoint(run: Path) -> list[int]:
    return [r["iteration"] for r in records(run) if r["accepted"] and r["checkpoint"]]


# ------------------------------------------------------------------------------- untouched runs


def test_untouched_regression_run_verifies(reg_run):
    res = audit_run(reg_run)
    assert res.verdict == "verified" and res.ok, res.render_text()
    run = load_run(reg_run)
    saved = sorted(run.checkpoints)
    assert list(res.audited_iterations) == saved  # default: every checkpoint
    counts = res.counts()
    assert counts["checkpoint_hash"] == {"passed": len(saved), "failed": 0}
    assert counts["constraints"] == {"passed": len(saved), "failed": 0}
    assert counts["base_case"]["passed"] == 1 and counts["chain"]["passed"] == 1
    # the audit's hashes (from raw tensor bytes) equal the training-side definition of the θ hash
    by_it = {c.iteration: c for c in res.checks if c.name == "checkpoint_hash"}
    for it in saved:
        assert by_it[it].details["sha256"] == theta_sha256(run.theta(it))
    # re-evaluated max g reproduces the recorded value (the training evaluated it with the same g)
    recorded = {r["iteration"]: r["max_constraint"] for r in run.records}
    for c in res.checks:
        if c.name == "constraints" and c.iteration > 0:
            assert abs(c.details["max_constraint"] - recorded[c.iteration]) <= 1e-12
            assert c.details["max_constraint"] <= 0
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["verdict"] == "verified" and d["ok"] is True and "exit_code" not in d  # the CLI adds the exit code


def test_untouched_double_integrator_run_verifies(di_run):
    res = audit_run(di_run)
    assert res.verdict == "verified", res.render_text()
    names = {c.name for c in res.checks}
    assert {"backup:P_positive_definite", "backup:lyapunov_decrease", "backup:terminal_set_in_state_constraints",
            "backup:terminal_set_input_feasible", "backup_recomputed", "reach_avoid"} <= names
    assert all(c.level.value == "exact" for c in res.checks if c.name.startswith("backup:"))
    assert all(c.level.value == "evaluated" for c in res.checks if c.name in ("reach_avoid", "constraints"))
    # scipy's DARE solved afresh agrees with what the run recorded (relative error, tolerance 1e-8)
    rec = next(c for c in res.checks if c.name == "backup_recomputed")
    assert max(rec.details.values()) <= 1e-8


# ------------------------------------------------------------------------------- tampering: verdict failed


def test_flipped_byte_in_a_checkpoint_is_caught(reg_run, tmp_path):
    run = copy(reg_run, tmp_path)
    it = accepted_with_checkpoint(run)[1]
    p = run / "checkpoints" / f"theta_{it:06d}.safetensors"
    data = bytearray(p.read_bytes())
    data[-3] ^= 0x01  # a byte inside the last tensor's float64 data
    p.write_bytes(bytes(data))
    res = audit_run(run)
    assert res.verdict == "failed"
    hash_fail = [m for n, i, m in failures(res) if n == "checkpoint_hash" and i == it]
    assert hash_fail and "contents were changed" in hash_fail[0] and f"theta_{it:06d}" in hash_fail[0]


def test_deleted_record_breaks_the_chain(reg_run, tmp_path):
    run = copy(reg_run, tmp_path)
    recs = records(run)
    k = accepted_with_checkpoint(run)[2]
    write_records(run, [r for r in recs if r["iteration"] != k])
    res = audit_run(run)
    assert res.verdict == "failed"
    fails = failures(res)
    assert any(n == "chain" and i == k + 1 and "record(s) missing" in m for n, i, m in fails), fails
    assert any(n == "chain" and i == k + 1 and "chain is broken" in m for n, i, m in fails)
    assert any(n == "chain" and i == k and "has no record" in m for n, i, m in fails)


def test_deleted_last_record_is_caught(reg_run, tmp_path):
    run = copy(reg_run, tmp_path)
    write_records(run, records(run)[:-1])
    res = audit_run(run)
    assert res.verdict == "failed"
    msgs = " ".join(m for n, _, m in failures(res) if n == "chain")
    assert "run.json says 6 iterations" in msgs


def test_edited_max_constraint_is_caught(reg_run, tmp_path):
    run = copy(reg_run, tmp_path)
    recs = records(run)
    k = accepted_with_checkpoint(run)[1]
    true_value = next(r["max_constraint"] for r in recs if r["iteration"] == k)
    for r in recs:
        if r["iteration"] == k:
            r["max_constraint"] = true_value - 0.25  # a prettier safety margin than the truth
    write_records(run, recs)
    res = audit_run(run)
    assert res.verdict == "failed"
    fail = [m for n, i, m in failures(res) if n == "constraints" and i == k]
    assert fail and "differs from its record's max_constraint" in fail[0]
    # the stated tolerance is the one applied: widened beyond the edit, the record is "reproduced"
    assert audit_run(run, iterations=str(k), tolerances=AuditTolerances(g_atol=0.3)).verdict == "verified"
    with pytest.raises(InvalidInputError, match="g_atol"):
        AuditTolerances(g_atol=-1.0)


def test_recorded_positive_max_constraint_is_caught_without_a_checkpoint(reg_run, tmp_path):
    run = copy(reg_run, tmp_path)
    recs = records(run)
    k = accepted_with_checkpoint(run)[0]
    (run / "checkpoints" / f"theta_{k:06d}.safetensors").unlink()
    for r in recs:
        if r["iteration"] == k:
            r["max_constraint"], r["checkpoint"] = 0.3, None
    write_records(run, recs)
    res = audit_run(run)
    assert res.verdict == "failed"
    assert any(n == "recorded_constraint" and i == k and "unsafe iterate was accepted" in m for n, i, m in failures(res))
    assert any("not re-evaluated" in note for note in res.notes)


def _theta0_with_nonzero_final_layer(run: Path) -> str:
    cfg = json.loads((run / "config.json").read_text())
    names = cfg["policy"]["parameter_names"]
    tensors, _ = read_checkpoint(run / "checkpoints" / "theta_000000.safetensors")
    tensors[names[-1]] = tensors[names[-1]] + 1e-3  # final bias: no longer exactly zero
    return write_checkpoint(run / "checkpoints" / "theta_000000.safetensors", tensors, names, iteration=0, task=cfg["task"])


def test_theta0_with_nonzero_final_layer_is_caught(reg_run, tmp_path):
    run = copy(reg_run, tmp_path)
    _theta0_with_nonzero_final_layer(run)
    res = audit_run(run)
    assert res.verdict == "failed"
    fails = failures(res)
    assert any(n == "base_case" and i == 0 and "non-zero" in m and "no base case" in m for n, i, m in fails), fails
    assert any(n == "checkpoint_hash" and i == 0 for n, i, m in fails)


def test_theta0_forgery_with_consistent_hashes_is_still_caught(reg_run, tmp_path):
    """A forger who also rewrites every hash reference: only the base-case check can object."""
    run = copy(reg_run, tmp_path)
    old = json.loads((run / "base_certificate.json").read_text())["theta_sha256"]
    new = _theta0_with_nonzero_final_layer(run)
    for f in ("base_certificate.json", "certificates.jsonl"):
        (run / f).write_text((run / f).read_text().replace(old, new))
    res = audit_run(run)
    assert res.verdict == "failed"
    fails = failures(res)
    assert not [f for f in fails if f[0] in ("checkpoint_hash", "chain")], fails
    assert any(n == "base_case" and "non-zero entr" in m for n, i, m in fails)


def test_swapped_checkpoints_are_caught(reg_run, tmp_path):
    run = copy(reg_run, tmp_path)
    a, b = accepted_with_checkpoint(run)[1:3]
    pa, pb = (run / "checkpoints" / f"theta_{i:06d}.safetensors" for i in (a, b))
    da, db = pa.read_bytes(), pb.read_bytes()
    pa.write_bytes(db)
    pb.write_bytes(da)
    res = audit_run(run)
    assert res.verdict == "failed"
    fails = {i: m for n, i, m in failures(res) if n == "checkpoint_hash"}
    assert set(fails) == {a, b}
    assert f"iterate of iteration(s) [{b}]" in fails[a] and "swapped" in fails[a]
    assert f"metadata says iteration '{b}'" in fails[a]


def test_certificate_bound_to_another_theta_is_caught(reg_run, tmp_path):
    run = copy(reg_run, tmp_path)
    recs = records(run)
    (run / "certificates").mkdir(exist_ok=True)
    (run / "certificates" / "region_iter_000002.json").write_text(json.dumps(
        {"schema_version": 1, "iteration": 2, "theta_sha256": recs[0]["parent_sha256"], "claims": []}))
    res = audit_run(run)
    assert res.verdict == "failed"
    assert any(n == "certificate_binding" and i == 2 and "another θ" in m for n, i, m in failures(res))


def test_forged_unsafe_iterate_fails_reach_avoid(di_run, tmp_path):
    """Replace the last iterate by one that pushes hard and rewrite every hash reference to it:
    the chain is consistent, so only the re-evaluation of g and the audit's reach-avoid object."""
    run = copy(di_run, tmp_path)
    cfg = json.loads((run / "config.json").read_text())
    names = cfg["policy"]["parameter_names"]
    last = max(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("theta_*.safetensors"))
    path = run / "checkpoints" / f"theta_{last:06d}.safetensors"
    tensors, meta = read_checkpoint(path)
    tensors[names[-1]] = tensors[names[-1]] + 3.0  # residual adds u = +3: |u| ≤ 1 violated at t = 0
    new = write_checkpoint(path, tensors, names, iteration=last, task=cfg["task"])
    for f in ("certificates.jsonl", "certificates/final.json"):
        (run / f).write_text((run / f).read_text().replace(meta["theta_sha256"], new))
    res = audit_run(run)
    assert res.verdict == "failed"
    fails = failures(res)
    assert not [f for f in fails if f[0] in ("checkpoint_hash", "chain")], fails
    ra = [m for n, i, m in fails if n == "reach_avoid" and i == last]
    assert ra and "fail reach-avoid" in ra[0]
    assert any(n == "constraints" and i == last and "> 0" in m for n, i, m in fails)


def _scale_gain(cfg: dict) -> str:
    cfg["policy"]["K"][0][0] *= 1.01
    return "K (config.json vs fresh)"


def _scale_recorded_level(cfg: dict) -> str:
    cfg["policy"]["problem"]["gamma"] *= 1.001
    return "γ (config.json problem vs fresh)"


@pytest.mark.parametrize("edit", [_scale_gain, _scale_recorded_level])
def test_edited_backup_in_config_is_caught(di_run, tmp_path, edit):
    run = copy(di_run, tmp_path)
    cfg = json.loads((run / "config.json").read_text())
    what = edit(cfg)
    (run / "config.json").write_text(json.dumps(cfg))
    res = audit_run(run, iterations="0")
    assert res.verdict == "failed"
    assert any(n == "backup_recomputed" and what in m for n, i, m in failures(res))


# ------------------------------------------------------------------------------- bad input: verdict bad input


def test_truncated_records_file_is_bad_input(reg_run, tmp_path):
    run = copy(reg_run, tmp_path)
    text = (run / "certificates.jsonl").read_bytes()
    lines = text.split(b"\n")
    cut = len(b"\n".join(lines[:3])) + 1 + len(lines[3]) // 2  # the middle of line 4
    (run / "certificates.jsonl").write_bytes(text[:cut])
    res = audit_run(run)
    assert res.verdict == "bad input"
    assert any("line 4 is incomplete" in e and "truncated" in e for e in res.input_errors), res.input_errors


class _Payload:
    """Would create a file if anyone unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_in_place_of_a_checkpoint_is_bad_input_and_never_loaded(reg_run, tmp_path):
    run = copy(reg_run, tmp_path)
    marker = tmp_path / "unpickled"
    it = accepted_with_checkpoint(run)[1]
    (run / "checkpoints" / f"theta_{it:06d}.safetensors").write_bytes(pickle.dumps({"w": _Payload(marker)}, protocol=4))
    res = audit_run(run)
    assert res.verdict == "bad input"
    assert any(f"theta_{it:06d}" in e and "pickle" in e for e in res.input_errors), res.input_errors
    assert not marker.exists()


def test_torch_save_archive_is_bad_input(reg_run, tmp_path):
    run = copy(reg_run, tmp_path)
    it = accepted_with_checkpoint(run)[0]
    torch.save({"w": torch.zeros(3)}, run / "checkpoints" / f"theta_{it:06d}.safetensors")
    res = audit_run(run)
    assert res.verdict == "bad input" and any("zip archive" in e for e in res.input_errors), res.input_errors


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda r: (r / "config.json").unlink(), "config.json is missing"),
        (lambda r: (r / "base_certificate.json").unlink(), "base_certificate.json is missing"),
        (lambda r: (r / "checkpoints" / "theta_000000.safetensors").unlink(), "θ₀) is missing"),
        (lambda r: (r / "config.json").write_text((r / "config.json").read_text().replace('"schema_version": 1', '"schema_version": 7')),
         "schema_version 7 is not one this audit knows"),
        (lambda r: (r / "certificates.jsonl").write_text((r / "certificates.jsonl").read_text().replace('"schema_version":1', '"schema_version":2', 1)),
         "line 1: schema_version 2"),
    ],
)
def test_bad_input(reg_run, tmp_path, damage, expected):
    run = copy(reg_run, tmp_path)
    damage(run)
    res = audit_run(run)
    assert res.verdict == "bad input"
    assert any(expected in e for e in res.input_errors), res.input_errors


def test_missing_run_directory(tmp_path):
    res = audit_run(tmp_path / "nothing")
    assert res.verdict == "bad input" and "expected a run directory" in res.input_errors[0]


# ------------------------------------------------------------------------------- what the problem decides


def test_static_problem_backup_is_checked_by_structure(reg_run):
    """The regression task is a static problem with K = 0: no DARE, no reach-avoid, the backup by structure."""
    res = audit_run(reg_run, iterations="0")
    names = {c.name for c in res.checks}
    assert "backup_certificate" in names and not {"backup_recomputed", "reach_avoid"} & names
    c = next(c for c in res.checks if c.name == "backup_certificate")
    assert c.ok and c.level.value == "exact" and "K = 0" in c.message


def test_without_an_lqr_design_the_fresh_dare_is_skipped_with_a_note(di_run, monkeypatch):
    from scpo.tasks.double_integrator import DoubleIntegratorTask

    monkeypatch.setattr(DoubleIntegratorTask, "backup_design", lambda self: None)
    res = audit_run(di_run, iterations="0")
    assert res.verdict == "verified", res.render_text()
    names = {c.name for c in res.checks}
    assert "backup_recomputed" not in names and "backup:lyapunov_decrease" in names
    assert any("no LQR design" in n for n in res.notes)


def test_unknown_task_in_config_is_bad_input(reg_run, tmp_path):
    run = copy(reg_run, tmp_path)
    cfg = json.loads((run / "config.json").read_text())
    cfg["task"] = "no-such-task"
    (run / "config.json").write_text(json.dumps(cfg))
    res = audit_run(run)
    assert res.verdict == "bad input" and res.task == "no-such-task"
    assert any("does not build the task 'no-such-task'" in e for e in res.input_errors), res.input_errors


def test_render_text_shows_the_exit_code_only_when_given(reg_run):
    res = audit_run(reg_run, iterations="0")
    assert res.render_text().splitlines()[-1].startswith("verdict: VERIFIED; ")
    assert res.render_text(exit_code=0).splitlines()[-1].startswith("verdict: VERIFIED (exit 0); ")


# ------------------------------------------------------------------------------- issue 15, item 5
# The last record forged with no checkpoint; a self-consistent safe forgery of a middle iterate
# (hashes, g and f all rewritten) exposed by its recorded step length; checkpoint and config.json
# symlinked out of the run; unknown keys in config.json and its sections; a widened constraint band
# (visible in the printed specification); a consistently truncated chain (verifies on its own, fails
# against the pinned head).


def failed_at(res) -> set[tuple[str, int | None]]:
    return {(c.name, c.iteration) for c in res.failures}


def test_honest_step_lengths_agree_to_rounding(reg_run):
    res = audit_run(reg_run)
    check = next(c for c in res.checks if c.name == "step_norm")
    assert check.ok and "largest difference" in check.message
    assert float(check.message.rsplit("difference ", 1)[1].rstrip(")")) < 1e-14  # a few ulps, not bit-equal in general


def test_last_record_forged_without_a_checkpoint_is_caught(reg_run, tmp_path):
    run = copy(reg_run, tmp_path)
    recs = records(run)
    last = recs[-1]
    assert last["accepted"] and last["checkpoint"]
    (run / last["checkpoint"]).unlink()
    last["theta_sha256"] = "f" * 64
    last["checkpoint"] = None
    write_records(run, recs)
    res = audit_run(run)
    assert res.verdict == "failed"
    assert ("checkpoint_coverage", last["iteration"]) in failed_at(res), res.render_text()


def test_finished_run_whose_last_iterate_has_no_checkpoint_fails_even_with_checkpoint_every_0(reg_run, tmp_path):
    run = copy(reg_run, tmp_path)
    cfg = json.loads((run / "config.json").read_text())
    cfg["train"]["checkpoint_every"] = 0
    (run / "config.json").write_text(json.dumps(cfg))
    recs = records(run)
    last = recs[-1]
    (run / last["checkpoint"]).unlink()
    last["checkpoint"] = None
    write_records(run, recs)
    res = audit_run(run)
    assert ("checkpoint_coverage", last["iteration"]) in failed_at(res), res.render_text()


def test_self_consistent_safe_forgery_is_exposed_by_its_step_length(reg_run, tmp_path):
    run = copy(reg_run, tmp_path)
    cfg = json.loads((run / "config.json").read_text())
    task = task_from_config(cfg)
    recs = records(run)
    k = next(r["iteration"] for r in recs[2:] if r["accepted"] and r["checkpoint"])
    names = cfg["policy"]["parameter_names"]
    tensors, _ = read_checkpoint(run / recs[k - 1]["checkpoint"])
    tensors = {n: np.asarray(v) for n, v in tensors.items()}
    tensors[names[-1]] = tensors[names[-1]] * 0.5  # a smaller final bias: still safe
    theta = np.concatenate([tensors[n].ravel() for n in names])
    g = np.asarray(task.constraints(theta[None]))[0]
    assert g.max() <= 0
    h = write_checkpoint(run / recs[k - 1]["checkpoint"], tensors, names, iteration=k, task=cfg["task"])
    assert h == theta_sha256(theta)
    recs[k - 1].update(theta_sha256=h, max_constraint=float(g.max()), objective=float(task.objective(theta)))
    if k < len(recs):
        recs[k]["parent_sha256"] = h
        recs[k]["objective_before"] = float(task.objective(theta))
    for cert in (run / "certificates").glob(f"region_iter_{k:06d}.json"):
        cert.unlink()  # the forger drops the region certificate rather than leave one bound to another θ
    write_records(run, recs)
    res = audit_run(run, iterations=str(k))
    by = {(c.name, c.iteration): c for c in res.checks}
    assert by[("constraints", k)].ok and by[("objective", k)].ok and by[("checkpoint_hash", k)].ok  # self-consistent
    assert ("step_norm", k) in failed_at(res) or ("step_norm", k + 1) in failed_at(res), res.render_text()


@pytest.mark.parametrize("target", ["checkpoint", "config.json"])
def test_files_symlinked_out_of_the_run_are_refused(reg_run, tmp_path, target):
    run = copy(reg_run, tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    if target == "checkpoint":
        rel = records(run)[0]["checkpoint"]
    else:
        rel = "config.json"
    shutil.move(run / rel, outside / Path(rel).name)
    (run / rel).symlink_to(outside / Path(rel).name)
    res = audit_run(run)
    assert res.verdict == "bad input"
    assert any("leads outside the run directory" in e and str(outside) in e for e in res.input_errors), res.input_errors


@pytest.mark.parametrize("where", [None, "projector", "train"])
def test_unknown_keys_in_config_are_bad_input(reg_run, tmp_path, where):
    run = copy(reg_run, tmp_path)
    cfg = json.loads((run / "config.json").read_text())
    (cfg if where is None else cfg[where])["claimed_safe"] = True
    (run / "config.json").write_text(json.dumps(cfg))
    res = audit_run(run)
    assert res.verdict == "bad input"
    assert any("unknown key(s) 'claimed_safe'" in e for e in res.input_errors), res.input_errors


def test_a_widened_band_shows_in_the_printed_specification(reg_run, tmp_path):
    honest = audit_run(reg_run, iterations="0")
    assert any("input rows (t = 0…0): f ≤ 1, f ≥ -1" in s for s in honest.specification), honest.specification
    run = copy(reg_run, tmp_path)
    cfg = json.loads((run / "config.json").read_text())
    cfg["task_config"]["bound"] = 2.5
    (run / "config.json").write_text(json.dumps(cfg))
    res = audit_run(run, iterations="0")
    text = res.render_text()
    assert "f ≤ 2.5, f ≥ -2.5" in text
    digest = [s for s in res.specification if "specification sha256" in s]
    assert digest and digest != [s for s in honest.specification if "specification sha256" in s]


def test_a_consistently_truncated_chain_verifies_alone_but_fails_its_pinned_head(reg_run, tmp_path):
    pinned = audit_run(reg_run, iterations="0")
    assert pinned.head is not None and len(pinned.head) == 64 and pinned.head_iteration == len(records(reg_run))
    run = copy(reg_run, tmp_path)
    recs = records(run)
    keep = recs[:-2]
    for r in recs[-2:]:
        if r["checkpoint"]:
            (run / r["checkpoint"]).unlink()
        for f in (run / "certificates").glob(f"*_iter_{r['iteration']:06d}.json"):
            f.unlink()
    while keep and not keep[-1]["checkpoint"]:
        keep.pop()
    lines = (run / "certificates.jsonl").read_bytes().split(b"\n")
    (run / "certificates.jsonl").write_bytes(b"\n".join(lines[: len(keep)]) + b"\n")  # the kept lines byte for byte
    status = json.loads((run / "run.json").read_text())
    status["iterations_done"] = len(keep)
    (run / "run.json").write_text(json.dumps(status))
    final = run / "certificates" / "final.json"
    if final.is_file():
        final.unlink()
    alone = audit_run(run, iterations="0")
    assert alone.verdict == "verified", alone.render_text()  # undetectable from the directory alone
    res = audit_run(run, iterations="0", expect_head=pinned.head)
    assert res.verdict == "failed" and ("pinned_head", None) in failed_at(res)
    # the other way round: a head pinned at the shorter chain is continued by the longer one
    again = audit_run(reg_run, iterations="0", expect_head=alone.head[:20])
    pin = next(c for c in again.checks if c.name == "pinned_head")
    assert pin.ok and pin.iteration == len(keep) and "continues it" in pin.message


def test_expect_head_must_be_hex(reg_run):
    with pytest.raises(InvalidInputError, match="expect_head: expected 16 to 64 hexadecimal digits"):
        audit_run(reg_run, expect_head="not-a-digest")


def test_a_run_naming_user_code_is_not_imported_without_permission(reg_run, tmp_path):
    # Reference: sys.modules (the module must not have been imported) and the verdict words.
    import sys

    run = copy(reg_run, tmp_path)
    cfg = json.loads((run / "config.json").read_text())
    cfg["task"] = "scpo_audit_probe_module:Factory"
    (run / "config.json").write_text(json.dumps(cfg))
    res = audit_run(run)
    assert res.verdict == "bad input" and "--allow-task-code" in res.input_errors[0]
    assert "scpo_audit_probe_module" not in sys.modules
    res = audit_run(run, allow_task_code=True)  # asked: it tries to import it (and here fails: no such module)
    assert res.verdict == "bad input" and "cannot import module 'scpo_audit_probe_module'" in " ".join(res.input_errors)
