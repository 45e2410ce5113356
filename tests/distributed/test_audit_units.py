"""The audit's expensive checks as units: in this process and on 2 local Ray workers (issue 16).

Reference for every Ray result: the same audit in this process (same run, same ``chunk``), whose
result dictionary must be equal key for key (only the wall time differs).
"""

import hashlib
import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from scpo.audit import audit_run
from scpo.audit.iterations import parse_iterations
from scpo.audit.reader import read_checkpoints, read_records, read_run_files
from scpo.audit.reevaluate import BlockUnit, plan_blocks
from scpo.audit.region import RegionUnit, plan_region_checks
from scpo.audit.result import AuditTolerances, Findings
from scpo.audit.units import AuditShared, run_unit, run_units
from scpo.distributed import Execution, map_tasks
from scpo.runs import task_from_config
from scpo.training import resolve_config, train

DI = {"grid": 12, "n_samples": 32, "hidden": [8]}


@pytest.fixture(scope="module")
def sound_di(tmp_path_factory):
    """A short sound run of the double integrator in which the gate added states (the rows of g grow)."""
    out = tmp_path_factory.mktemp("audit-units") / "di"
    train(resolve_config("double-integrator", task_overrides=DI, train_overrides={"iterations": 4, "certify": "sound"}), out)
    records = [json.loads(line) for line in (out / "certificates.jsonl").read_text().splitlines()]
    assert any(r.get("added_states") for r in records), "the fixture must exercise the added-states path"
    return out


def _result(run, **kw):
    d = audit_run(run, **kw).to_dict()
    d.pop("wall_time_s")
    return json.dumps(d, sort_keys=True)


def _units(run: Path, chunk: int):
    files = read_run_files(run)
    task = task_from_config(files.config)
    findings = Findings()
    files.records = read_records(files.paths.records, findings, crashed=False)
    ckpts = read_checkpoints(files, findings)
    selected = parse_iterations(None, sorted(ckpts.files))
    plan = plan_region_checks(files, ckpts, task, selected, findings)
    units = [u for _, u in plan if u is not None] + plan_blocks(files, ckpts, task, selected, AuditTolerances(), chunk)
    return files.config, task, units


def _checks(findings_list):
    return [(c.name, c.iteration, c.level, c.ok, c.message) for f in findings_list for c in f.checks]


def test_units_cover_every_audited_checkpoint_and_region(sound_di):
    config, task, units = _units(sound_di, chunk=2)
    blocks = [u for u in units if isinstance(u, BlockUnit)]
    regions = [u for u in units if isinstance(u, RegionUnit)]
    saved = sorted(int(p.stem.split("_")[1]) for p in (sound_di / "checkpoints").glob("theta_*.safetensors"))
    assert [it for b in blocks for it in b.iterations] == saved  # every checkpoint once, in order
    assert all(len(b.iterations) <= 2 for b in blocks)
    assert [u.iteration for u in regions] == saved  # every accepted iterate of a sound run has its certificate
    # the states the gate added before a block's first iteration travel with it (the task is never modified)
    records = [json.loads(line) for line in (sound_di / "certificates.jsonl").read_text().splitlines()]
    for b in blocks:
        expect = sum(len(r.get("added_states") or []) for r in records if r["iteration"] <= b.iterations[0])
        assert len(b.added_x0) == expect
    n_states = len(task.constraint_states)
    out = run_units(config, task, units, Execution())
    assert len(task.constraint_states) == n_states
    assert all(c.ok for f in out for c in f.checks)


def test_the_chunk_changes_the_units_not_the_verdicts(sound_di):
    # Reference: the audit with one checkpoint per unit; the checks (name, iteration, level, verdict) agree.
    a = audit_run(sound_di, chunk=1)
    b = audit_run(sound_di, chunk=64)
    assert a.verdict == b.verdict == "verified"
    assert [(c.name, c.iteration, c.level, c.ok) for c in a.checks] == [(c.name, c.iteration, c.level, c.ok) for c in b.checks]
    ga = [c.details["max_constraint"] for c in a.checks if c.name == "constraints"]
    gb = [c.details["max_constraint"] for c in b.checks if c.name == "constraints"]
    assert max(abs(x - y) for x, y in zip(ga, gb)) <= 1e-12


def test_audit_on_two_ray_workers_is_identical(sound_di, ray_workers):
    assert _result(sound_di, chunk=2, execution=Execution(workers=ray_workers)) == _result(sound_di, chunk=2)


def test_a_forged_run_fails_identically_on_ray(sound_di, tmp_path, ray_workers):
    # A forger removes a leaf from a region certificate and rewrites the record's hash to match:
    # the tiling (a unit's check) and the chain (the driver's) must fail, the same way on Ray.
    run = tmp_path / "run"
    shutil.copytree(sound_di, run)
    lines = (run / "certificates.jsonl").read_text().splitlines()
    k = max(i for i, line in enumerate(lines) if json.loads(line).get("region_certificate"))
    rec = json.loads(lines[k])
    path = run / rec["region_certificate"]
    data = json.loads(path.read_text())
    for key in ("roots", "paths"):
        data["partition"][key] = data["partition"][key][:-1]
    data["leaf_status"] = data["leaf_status"][:-1]
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(raw)
    rec["region_certificate_sha256"] = hashlib.sha256(raw).hexdigest()
    (run / "certificates.jsonl").write_text("\n".join([*lines[:k], json.dumps(rec, separators=(",", ":")), *lines[k + 1:]]) + "\n")
    here = audit_run(run, chunk=2)
    assert here.verdict == "failed"
    assert any(c.name == "region_tiling" and not c.ok for c in here.checks)
    assert _result(run, chunk=2, execution=Execution(workers=ray_workers)) == _result(run, chunk=2)


def unit_or_die(shared, unit):
    """``run_unit``, but the worker running the first region unit is killed (SIGKILL) the first time."""
    audit_shared, marker = shared
    if isinstance(unit, RegionUnit) and not os.path.exists(marker):
        with open(marker, "w") as fh:
            fh.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return run_unit(audit_shared, unit)


def test_a_worker_killed_during_the_audit_gives_the_identical_findings(sound_di, ray_workers, tmp_path):
    config, task, units = _units(sound_di, chunk=2)
    marker = str(tmp_path / "killed")
    got = map_tasks(unit_or_die, units, shared=(AuditShared(config=config), marker), workers=ray_workers)
    assert os.path.exists(marker)
    assert _checks(got) == _checks(run_units(config, task, units, Execution()))
