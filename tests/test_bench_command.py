"""``bench_command``: locating the benchmark scripts, the command lines it runs, exit codes."""

import json
from pathlib import Path

import pytest

from scpo.bench_command import BENCHMARKS, bench_command, find_benchmarks_dir
from scpo.errors import InvalidInputError

# A stand-in script that records its arguments (the real ones run for minutes to hours).
RECORDER = """
import json, sys
from pathlib import Path
args = sys.argv[1:]
out = Path(args[args.index("--out") + 1])
with open(out / "calls.jsonl", "a") as fh:
    fh.write(json.dumps({"script": Path(sys.argv[0]).name, "args": args}) + "\\n")
sys.exit(int(Path(sys.argv[0]).with_suffix(".code").read_text()) if Path(sys.argv[0]).with_suffix(".code").exists() else 0)
"""


@pytest.fixture
def fake_benchmarks(tmp_path):
    folder = tmp_path / "repo" / "benchmarks"
    folder.mkdir(parents=True)
    for script in BENCHMARKS.values():
        (folder / script).write_text(RECORDER)
    return folder


def calls(out: Path):
    return [json.loads(line) for line in (out / "calls.jsonl").read_text().splitlines()]


def test_the_repository_checkout_has_the_scripts():
    # This test suite runs from a checkout (editable install): the scripts sit at the repository root.
    folder = find_benchmarks_dir()
    assert folder == Path(__file__).resolve().parents[1] / "benchmarks"
    assert all((folder / s).is_file() for s in BENCHMARKS.values())


def test_passes_quick_seeds_and_out(fake_benchmarks, tmp_path):
    out = tmp_path / "out"
    assert bench_command("methods", True, out, [3, 4], benchmarks_dir=fake_benchmarks) == 0
    (c,) = calls(out)
    assert c["script"] == "bench_methods.py"
    assert c["args"] == ["--out", str(out.resolve()), "--quick", "--seeds", "3", "4"]


def test_all_runs_every_script_and_defaults_are_left_to_the_scripts(fake_benchmarks, tmp_path):
    out = tmp_path / "out"
    assert bench_command("all", False, out, None, benchmarks_dir=fake_benchmarks) == 0
    cs = calls(out)
    assert [c["script"] for c in cs] == list(BENCHMARKS.values())
    assert all(c["args"] == ["--out", str(out.resolve())] for c in cs)


def test_a_failing_script_gives_exit_code_1_and_the_others_still_run(fake_benchmarks, tmp_path):
    (fake_benchmarks / "bench_ablations.code").write_text("3")
    out = tmp_path / "out"
    assert bench_command("all", True, out, None, benchmarks_dir=fake_benchmarks) == 1
    assert len(calls(out)) == len(BENCHMARKS)


def test_installed_without_the_repository_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.delenv("SCPO_BENCHMARKS_DIR", raising=False)
    with pytest.raises(InvalidInputError, match="not in the installed package"):
        bench_command("methods", True, tmp_path / "out", None, benchmarks_dir=tmp_path / "nowhere")


def test_environment_variable_points_at_the_scripts(fake_benchmarks, tmp_path, monkeypatch):
    monkeypatch.setenv("SCPO_BENCHMARKS_DIR", str(fake_benchmarks))
    assert find_benchmarks_dir() == fake_benchmarks


def test_bad_arguments_are_rejected(fake_benchmarks, tmp_path):
    with pytest.raises(InvalidInputError, match="'methods', 'ablations', 'scaling', 'all'"):
        bench_command("speed", True, tmp_path, None, benchmarks_dir=fake_benchmarks)
    with pytest.raises(InvalidInputError, match="seeds"):
        bench_command("methods", True, tmp_path, [-1], benchmarks_dir=fake_benchmarks)


@pytest.mark.slow
def test_quick_methods_benchmark_end_to_end(tmp_path):
    # The real script with its quick settings on the regression task: SCPO's iterates never
    # violate on the training grid, unconstrained training does (the task is not too easy).
    import csv

    code = bench_command("methods", True, tmp_path, [0], extra_args=["--tasks", "regression"])
    assert code == 0
    rows = {r["method"]: r for r in csv.DictReader(open(tmp_path / "methods_runs.csv"))}
    assert set(rows) == {"scpo", "plain-bank", "unconstrained", "penalty", "penalty-autograd", "lbsgd"}
    assert int(rows["scpo"]["violating_iterates_train"]) == 0
    assert int(rows["plain-bank"]["violating_iterates_train"]) == 0
    assert int(rows["unconstrained"]["violating_iterates_train"]) > 0
    assert (tmp_path / "methods.png").stat().st_size > 0
