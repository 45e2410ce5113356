"""Bad input to every command: exit 2, one line naming the argument, no traceback, nothing written.

Each case runs a command in-process on a copy of a small trained run (or on nothing) and compares
the SHA-256 of every file under the test's folder before and after (hidden files and the run's
``.lock`` included): a command refused as bad input must not have written, renamed or removed
anything. The cases include every one the issue lists (non-UTF-8, array-valued and ``train``-less
``config.json`` in ``report`` and ``--resume``; a non-UTF-8 ``--config``; a 24-digit seed on the
command line and in a config file; output locations under a regular file or in ``/proc`` for
``train``, ``demo``, ``report`` and ``reach``; the resume damages of items 1 and 3).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scpo.cli import app

HUGE = "100000000000000000000000"
SETTINGS = {"task_config": {"hidden": [8], "n_train": 40, "n_grid": 60}, "projector": {"lr": 0.05}}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad-input")
    settings = folder / "settings.json"
    settings.write_text(json.dumps(SETTINGS))
    res = CliRunner().invoke(app, ["train", "regression", "--iterations", "4", "--out", str(folder / "reg"), "--config", str(settings),
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    return folder / "reg"


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


# ------------------------------------------------------------------------------- damages of a run


def _records(run: Path) -> list[bytes]:
    return (run / "certificates.jsonl").read_bytes().split(b"\n")


def _set_records(run: Path, lines: list[bytes]) -> None:
    (run / "certificates.jsonl").write_bytes(b"\n".join(lines))


def non_utf8_middle_line(run: Path) -> None:
    lines = _records(run)
    lines[1] = lines[1].replace(b'"accepted"', b'"acc\xffepted"')
    _set_records(run, lines)


def duplicated_record(run: Path) -> None:
    lines = _records(run)
    _set_records(run, lines[:2] + [lines[1]] + lines[2:])


def broken_parent(run: Path) -> None:
    lines = _records(run)
    rec = json.loads(lines[2])
    rec["parent_sha256"] = "0" * 64
    lines[2] = json.dumps(rec).encode()
    _set_records(run, lines)


def record_missing_field(run: Path) -> None:
    lines = _records(run)
    rec = json.loads(lines[1])
    del rec["theta_sha256"]
    lines[1] = json.dumps(rec).encode()
    _set_records(run, lines)


def edit_config(fn: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        cfg = json.loads((run / "config.json").read_text())
        new = fn(cfg)
        (run / "config.json").write_text(json.dumps(cfg if new is None else new))

    return damage


def non_utf8_config(run: Path) -> None:
    (run / "config.json").write_bytes((run / "config.json").read_bytes().replace(b'"task"', b'"t\xe9sk"', 1))


def pickle_theta0(run: Path) -> None:
    (run / "checkpoints" / "theta_000000.safetensors").write_bytes(pickle.dumps({"w": [0.0] * 10}, protocol=4))


def wrong_shape_last_checkpoint(run: Path) -> None:
    from scpo.runs.files import write_checkpoint

    last = max(int(p.stem.split("_")[1]) for p in (run / "checkpoints").iterdir())
    import numpy as np

    write_checkpoint(run / "checkpoints" / f"theta_{last:06d}.safetensors", {"w": np.zeros((3, 3))}, ["w"], iteration=last,
                     task="regression")


def flipped_middle_checkpoint(run: Path) -> None:
    p = run / "checkpoints" / "theta_000002.safetensors"
    data = bytearray(p.read_bytes())
    data[-3] ^= 0x40
    p.write_bytes(bytes(data))


def orphan_checkpoint(run: Path) -> None:
    shutil.copyfile(run / "checkpoints" / "theta_000001.safetensors", run / "checkpoints" / "theta_000009.safetensors")


def edited_base_hash(run: Path) -> None:
    base = json.loads((run / "base_certificate.json").read_text())
    base["theta_sha256"] = "ab" * 32
    (run / "base_certificate.json").write_text(json.dumps(base))


def rm(name: str) -> Callable[[Path], None]:
    return lambda run: (run / name).unlink()


def set_seed(value: object) -> Callable[[Path], None]:
    def fn(cfg: dict) -> None:
        cfg["train"]["seed"] = value

    return edit_config(fn)


def drop_train(cfg: dict) -> None:
    del cfg["train"]


def add_unknown_key(cfg: dict) -> None:
    cfg["notes"] = "added by hand"


RESUME_DAMAGES = {
    "non-UTF-8 byte in a middle record": (non_utf8_middle_line, "line 2 of 4: not UTF-8"),
    "certificates.jsonl deleted": (rm("certificates.jsonl"), "certificates.jsonl (the run's certificate records): expected a file, found none"),
    "a pickle in place of θ_0": (pickle_theta0, "theta_000000.safetensors (θ₀, the base case) is not a readable checkpoint"),
    "base_certificate.json missing": (rm("base_certificate.json"), "base_certificate.json: expected a file, found none"),
    "wrong-shape last checkpoint": (wrong_shape_last_checkpoint, "holds tensors {'w': [3, 3]}, expected this run's parameters"),
    "a repeated record": (duplicated_record, "holds iteration 2, expected 3"),
    "a broken parent hash": (broken_parent, "iteration 3: parent_sha256 000000000000… is not the previous iterate's"),
    "a record without theta_sha256": (record_missing_field, "line 2: missing or malformed field(s) ['theta_sha256']"),
    "a changed byte in a middle checkpoint": (flipped_middle_checkpoint, "theta_000002.safetensors (the record of iteration 2): its tensors hash"),
    "a checkpoint with no record": (orphan_checkpoint, "theta_000009.safetensors has no record"),
    "θ_0's hash edited in base_certificate.json": (edited_base_hash, "the chain says ababababab"),
    "config.json not UTF-8": (non_utf8_config, "config.json: expected UTF-8 JSON, got the byte 0xe9"),
    "config.json an array": (edit_config(lambda cfg: [cfg]), "config.json: expected a JSON object, got a JSON list"),
    "config.json without train": (edit_config(drop_train), "section 'train' must be a JSON object, got nothing"),
    "config.json with an unknown key": (edit_config(add_unknown_key), "unknown key(s) 'notes'"),
    "config.json with a 24-digit seed": (set_seed(int(HUGE)), "train.seed must be an integer in [0, 2**64 - 1]"),
    "config.json with a negative seed": (set_seed(-1), "train.seed must be an integer in [0, 2**64 - 1], got -1"),
}


def check_refused(res, before: dict[str, str], after: dict[str, str], expected: str) -> None:
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output
    assert expected in lines[0], lines[0]
    assert after == before, {k for k in set(before) | set(after) if before.get(k) != after.get(k)}


REPORT_DAMAGES = ("non-UTF-8 byte in a middle record", "config.json not UTF-8", "config.json an array", "config.json without train",
                  "config.json with a 24-digit seed")
RESUME_DAMAGES["θ_0 missing"] = (rm("checkpoints/theta_000000.safetensors"), "theta_000000.safetensors (θ₀, the base case)")
DAMAGE_CASES = [("resume", c, RESUME_DAMAGES[c][1]) for c in RESUME_DAMAGES]
DAMAGE_CASES += [("report", c, RESUME_DAMAGES[c][1]) for c in REPORT_DAMAGES]
DAMAGE_CASES.append(("report", "θ_0 missing", "the audit finds it damaged"))  # the audit's verdict: nothing written into the run


@pytest.mark.parametrize("command, case, expected", DAMAGE_CASES, ids=[f"{a}: {b}" for a, b, _ in DAMAGE_CASES])
def test_a_damaged_run_is_refused_and_left_as_it_is(base_run, tmp_path, command, case, expected):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    RESUME_DAMAGES[case][0](run)
    before = snapshot(tmp_path)
    args = ["train", "--resume", str(run), "--iterations", "6"] if command == "resume" else ["report", str(run)]
    res = CliRunner().invoke(app, args)
    check_refused(res, before, snapshot(tmp_path), expected)


def test_resume_with_another_task_named_exits_2(base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    before = snapshot(tmp_path)
    res = CliRunner().invoke(app, ["train", "double-integrator", "--resume", str(run)])
    check_refused(res, before, snapshot(tmp_path), "task: the run")
    assert "was trained on task 'regression', got 'double-integrator'" in res.output


# ------------------------------------------------------------------------------- arguments and outputs


def _file(tmp_path: Path) -> Path:
    f = tmp_path / "plain-file"
    f.write_text("not a directory\n")
    return f


def _settings(tmp_path: Path, data: object = None, raw: bytes | None = None) -> Path:
    p = tmp_path / "settings.json"
    p.write_bytes(raw if raw is not None else json.dumps(SETTINGS if data is None else data).encode())
    return p


ARGUMENT_CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "train --config not UTF-8": (lambda t: ["train", "regression", "--out", str(t / "r"), "--config",
                                            str(_settings(t, raw=b'{"train": {"seed": 1}, "x": "\xff"}'))],
                                 "--config"),
    "train --config an array": (lambda t: ["train", "regression", "--out", str(t / "r"), "--config", str(_settings(t, [1, 2]))],
                                "expected a JSON object, got a JSON list"),
    "train --config missing": (lambda t: ["train", "regression", "--out", str(t / "r"), "--config", str(t / "none.json")],
                               "expected a file, found none"),
    "train --seed with 24 digits": (lambda t: ["train", "regression", "--out", str(t / "r"), "--seed", HUGE],
                                    "seed: expected an integer in [0, 2**64 - 1]"),
    "train --seed negative": (lambda t: ["train", "regression", "--out", str(t / "r"), "--seed", "-1"], "seed"),
    "train seed with 24 digits in --config": (lambda t: ["train", "regression", "--out", str(t / "r"), "--config",
                                                         str(_settings(t, {**SETTINGS, "train": {"seed": int(HUGE)}}))],
                                              "seed: expected an integer in [0, 2**64 - 1]"),
    "train --out under a regular file": (lambda t: ["train", "regression", "--out", str(_file(t) / "run")],
                                         "is under"),
    "train --out in /proc": (lambda t: ["train", "regression", "--out", "/proc/scpo-run"], "--out: cannot write to '/proc'"),
    "train --out exists": (lambda t: ["train", "regression", "--out", str(t)], "already exists"),
    "train --out and --resume": (lambda t: ["train", "regression", "--out", str(t / "a"), "--resume", str(t / "b")],
                                 "--out and --resume"),
    "train --resume of a regular file": (lambda t: ["train", "--resume", str(_file(t))], "expected a run directory"),
    "train --resume with --seed": (lambda t: ["train", "--resume", str(t), "--seed", "3"], "only --iterations may change"),
    "train --iterations negative": (lambda t: ["train", "regression", "--out", str(t / "r"), "--iterations", "-3"], "iterations"),
    "demo --out under a regular file": (lambda t: ["demo", "--out", str(_file(t) / "sub" / "demo")], "is under"),
    "demo --out in /proc": (lambda t: ["demo", "--out", "/proc/scpo-demo"], "--out: cannot write to '/proc'"),
    "demo --seed with 24 digits": (lambda t: ["demo", "--out", str(t / "d"), "--seed", HUGE], "seed"),
    "report of a regular file": (lambda t: ["report", str(_file(t))], "expected a run directory"),
    "reach --out under a regular file": (lambda t: ["reach", "double-integrator", "--horizon", "2", "--out", str(_file(t) / "x.json")],
                                         "--out: "),
    "reach --out in /proc": (lambda t: ["reach", "double-integrator", "--horizon", "2", "--out", "/proc/x.json"],
                             "--out: cannot write to '/proc'"),
    "reach --plot under a regular file": (lambda t: ["reach", "double-integrator", "--horizon", "2", "--plot", str(_file(t) / "p.png")],
                                          "--plot: "),
    "audit --iterations malformed": (lambda t: ["audit", str(t), "--iterations", "3-x"], "iterations"),
}


@pytest.mark.parametrize("case", list(ARGUMENT_CASES))
def test_bad_arguments_exit_2_and_write_nothing(base_run, tmp_path, case, monkeypatch):
    make_args, expected = ARGUMENT_CASES[case]
    monkeypatch.chdir(tmp_path)
    if "audit" in case or "--resume with" in case:
        shutil.copytree(base_run, tmp_path / "run")
        args = make_args(tmp_path / "run")
    else:
        args = make_args(tmp_path)
    before = snapshot(tmp_path)
    res = CliRunner().invoke(app, args)
    check_refused(res, before, snapshot(tmp_path), expected)


def test_report_output_is_checked_before_the_audit(base_run, tmp_path, monkeypatch):
    """A report whose folder cannot be created is refused before the audit runs."""
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    (run / "report").unlink(missing_ok=True) if (run / "report").is_file() else shutil.rmtree(run / "report", ignore_errors=True)
    import scpo.audit

    called = []
    monkeypatch.setattr(scpo.audit, "audit_run", lambda *a, **k: called.append(1))
    from scpo.reports import build_report

    with pytest.raises(Exception, match="report folder: .* is under .* a regular file"):
        build_report(run, out=_file(tmp_path) / "rep")
    assert not called


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories; run as a normal user")
@pytest.mark.parametrize("command", ["train --out", "demo --out", "train --resume", "report"])
def test_read_only_locations_exit_2_and_write_nothing(base_run, tmp_path, command):
    ro = tmp_path / "ro"
    ro.mkdir()
    run = ro / "run"
    shutil.copytree(base_run, run)
    args = {"train --out": ["train", "regression", "--out", str(ro / "new")], "demo --out": ["demo", "--out", str(ro / "demo")],
            "train --resume": ["train", "--resume", str(run), "--iterations", "6"], "report": ["report", str(run)]}[command]
    for d in [run, *[p for p in run.rglob("*") if p.is_dir()], ro]:
        d.chmod(0o555)
    try:
        before = snapshot(tmp_path)
        res = CliRunner().invoke(app, args)
        check_refused(res, before, snapshot(tmp_path), "")
    finally:
        for d in [ro, run, *[p for p in run.rglob("*") if p.is_dir()]]:
            d.chmod(0o755)
