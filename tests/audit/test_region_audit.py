"""The audit re-verifies the region certificates of a sound run and catches their tampering (issue 12)."""

import hashlib
import json
import shutil

import pytest

from scpo.audit import audit_run
from scpo.runs import load_run
from scpo.training import resolve_config, train

REG = {"hidden": [8], "n_train": 40, "n_grid": 60}


@pytest.fixture(scope="module")
def sound_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sound") / "reg"
    cfg = resolve_config("regression", task_overrides=REG, projector_overrides={"lr": 0.05},
                         train_overrides={"iterations": 6, "certify": "sound"})
    train(cfg, out)
    return out


def _copy(run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def _accepted_certificate(run):
    rec = next(r for r in load_run(run).records if r["accepted"])
    return rec, run / rec["region_certificate"]


def test_untouched_sound_run_verifies(sound_run):
    res = audit_run(sound_run)
    assert res.verdict == "verified", res.render_text()
    counts = res.counts()
    assert counts["region_bounds"]["failed"] == 0 and counts["region_bounds"]["passed"] >= 2
    assert counts["region_tiling"]["passed"] == counts["region_bounds"]["passed"]


def _rewrite(path, edit, *, rehash_record=None):
    data = json.loads(path.read_text())
    edit(data)
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(raw)
    if rehash_record is not None:  # a forger who also rewrites the record's hash
        run, it = rehash_record
        lines = (run / "certificates.jsonl").read_text().splitlines()
        out = []
        for line in lines:
            r = json.loads(line)
            if r["iteration"] == it:
                r["region_certificate_sha256"] = hashlib.sha256(raw).hexdigest()
            out.append(json.dumps(r, separators=(",", ":")))
        (run / "certificates.jsonl").write_text("\n".join(out) + "\n")


def _remove_leaf(d):
    for key in ("roots", "paths", "status", "volume"):
        d["partition"][key] = d["partition"][key][1:]
    d["leaf_status"], d["leaf_worst"], d["leaf_worst_row"] = d["leaf_status"][1:], d["leaf_worst"][1:], d["leaf_worst_row"][1:]


def _lower_bound(d):
    d["leaf_worst"][0] = -1.0


def _shrink_leaf(d):
    d["partition"]["paths"][0] = d["partition"]["paths"][0] + "0"  # the leaf becomes its lower half: a gap


@pytest.mark.parametrize("edit", [_remove_leaf, _lower_bound, _shrink_leaf], ids=["leaf removed", "bound lowered", "leaf shrunk"])
def test_an_edited_region_certificate_fails_the_audit(sound_run, tmp_path, edit):
    run = _copy(sound_run, tmp_path)
    rec, path = _accepted_certificate(run)
    _rewrite(path, edit)
    res = audit_run(run)
    assert res.verdict == "failed"
    assert any(c.name == "region_certificate" and c.iteration == rec["iteration"] and not c.ok for c in res.checks)


@pytest.mark.parametrize("edit,check", [(_remove_leaf, "region_tiling"), (_shrink_leaf, "region_tiling")])
def test_a_forged_certificate_with_a_matching_hash_is_still_caught(sound_run, tmp_path, edit, check):
    run = _copy(sound_run, tmp_path)
    rec, path = _accepted_certificate(run)
    _rewrite(path, edit, rehash_record=(run, rec["iteration"]))
    res = audit_run(run)
    assert res.verdict == "failed"
    assert any(c.name == check and c.iteration == rec["iteration"] and not c.ok for c in res.checks), res.render_text()
