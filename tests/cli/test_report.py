"""``scpo report`` in-process: what it prints and its exit codes 0 / 1 / 2."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from scpo.cli import app


@pytest.fixture(scope="module")
def reg_run(tmp_path_factory):
    """A small regression run trained through ``scpo train`` itself."""
    folder = tmp_path_factory.mktemp("cli-report")
    settings = folder / "settings.json"
    settings.write_text(json.dumps({"task_config": {"hidden": [8], "n_train": 40, "n_grid": 60}, "projector": {"lr": 0.05}}))
    res = CliRunner().invoke(app, ["train", "regression", "--iterations", "6", "--out", str(folder / "reg"), "--config", str(settings), "--quiet"])
    assert res.exit_code == 0, res.output
    return folder / "reg"


def invoke(*args):
    return CliRunner().invoke(app, ["report", *map(str, args)])


def test_report_of_a_clean_run_exits_0(reg_run):
    res = invoke(reg_run)
    assert res.exit_code == 0, res.output
    assert f"scpo report {reg_run}" in res.stdout and "audit                verified (exit 0)" in res.stdout
    assert (reg_run / "report" / "index.html").is_file()


def test_report_of_a_run_with_an_unsafe_accepted_iterate_exits_1(reg_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reg_run, run)
    lines = (run / "certificates.jsonl").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if json.loads(line)["accepted"])
    lines[first] = json.dumps({**json.loads(lines[first]), "max_constraint": 0.05, "violation": True})
    (run / "certificates.jsonl").write_text("\n".join(lines) + "\n")
    res = invoke(run)
    assert res.exit_code == 1, res.output  # the report is written and says what fails
    assert "FAILS [evaluated] steps" in res.stdout and "audit                failed (exit 1)" in res.stdout
    assert (run / "report" / "summary.json").is_file()


def test_report_of_a_missing_directory_exits_2(tmp_path):
    res = invoke(tmp_path / "missing")
    assert res.exit_code == 2
    assert "expected a run directory" in res.stderr and not (tmp_path / "missing").exists()
