"""``scpo.bench``: locating the benchmark scripts, the command lines it runs, what it returns;
``scpo bench``: the exit codes the CLI makes of it."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scpo.bench import BENCHMARKS, find_benchmarks_dir, run_benchmarks
from scpo.cli import app
from scpo.errors import InvalidInputError

# A stand-in script that records its arguments (the real ones run for minutes to hours).
RECORDER = """
import json, sys
from pathlib import Path
args = sys.argv[1:]
out = Path(args[args.index("--out") + 1])
with open(out / "calls.jsonl", "a") as fh:
    fh.write(json.dumps({"script": Path(sys.argv[0]).name, "args": args}) + "\\n")
print("ran", Path(sys.argv[0]).name)
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
    assert folder == Path(__file__).resolve().parents[2] / "benchmarks"
    assert all((folder / s).is_file() for s in BENCHMARKS.values())


def test_passes_quick_seeds_and_out(fake_benchmarks, tmp_path):
    out = tmp_path / "out"
    started, lines = [], []
    res = run_benchmarks("methods", True, out, [3, 4], benchmarks_dir=fake_benchmarks,
                         on_start=lambda name, cmd: started.append(name), on_line=lines.append)
    assert res.ok and res.failed == [] and res.out == out.resolve()
    (run,) = res.runs
    assert run.name == "methods" and run.returncode == 0 and run.output == "ran bench_methods.py\n"
    assert run.command[1:] == [str(fake_benchmarks / "bench_methods.py"), "--out", str(out.resolve()), "--quick", "--seeds", "3", "4"]
    assert started == ["methods"] and lines == ["ran bench_methods.py"]
    (c,) = calls(out)
    assert c["script"] == "bench_methods.py"
    assert c["args"] == ["--out", str(out.resolve()), "--quick", "--seeds", "3", "4"]


def test_all_runs_every_script_and_defaults_are_left_to_the_scripts(fake_benchmarks, tmp_path):
    out = tmp_path / "out"
    res = run_benchmarks("all", False, out, None, benchmarks_dir=fake_benchmarks)
    assert res.ok and [r.name for r in res.runs] == list(BENCHMARKS)
    cs = calls(out)
    assert [c["script"] for c in cs] == list(BENCHMARKS.values())
    assert all(c["args"] == ["--out", str(out.resolve())] for c in cs)


def test_a_failing_script_is_reported_and_the_others_still_run(fake_benchmarks, tmp_path):
    (fake_benchmarks / "bench_ablations.code").write_text("3")
    out = tmp_path / "out"
    res = run_benchmarks("all", True, out, None, benchmarks_dir=fake_benchmarks)
    assert not res.ok and res.failed == ["ablations (exit 3)"]
    assert [r.returncode for r in res.runs] == [0, 3, 0]
    assert len(calls(out)) == len(BENCHMARKS)


def test_the_cli_exit_code_is_1_when_a_script_fails_and_0_otherwise(fake_benchmarks, tmp_path, monkeypatch):
    monkeypatch.setenv("SCPO_BENCHMARKS_DIR", str(fake_benchmarks))
    runner = CliRunner()
    res = runner.invoke(app, ["bench", "methods", "--quick", "--out", str(tmp_path / "a"), "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert "== scpo bench methods:" in res.output and "ran bench_methods.py" in res.output
    (fake_benchmarks / "bench_scaling.code").write_text("2")
    res = runner.invoke(app, ["bench", "all", "--out", str(tmp_path / "b")])
    assert res.exit_code == 1 and "failed: scaling (exit 2)" in res.output, res.output
    res = runner.invoke(app, ["bench", "speed", "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "which: expected one of" in res.output, res.output


def test_installed_without_the_repository_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.delenv("SCPO_BENCHMARKS_DIR", raising=False)
    with pytest.raises(InvalidInputError, match="not in the installed package"):
        run_benchmarks("methods", True, tmp_path / "out", None, benchmarks_dir=tmp_path / "nowhere")


def test_environment_variable_points_at_the_scripts(fake_benchmarks, tmp_path, monkeypatch):
    monkeypatch.setenv("SCPO_BENCHMARKS_DIR", str(fake_benchmarks))
    assert find_benchmarks_dir() == fake_benchmarks


def test_bad_arguments_are_rejected(fake_benchmarks, tmp_path):
    with pytest.raises(InvalidInputError, match="'methods', 'ablations', 'scaling', 'all'"):
        run_benchmarks("speed", True, tmp_path, None, benchmarks_dir=fake_benchmarks)
    with pytest.raises(InvalidInputError, match="seeds"):
        run_benchmarks("methods", True, tmp_path, [-1], benchmarks_dir=fake_benchmarks)


@pytest.mark.slow
def test_quick_methods_benchmark_end_to_end(tmp_path):
    # The real script with its quick settings on the regression task: SCPO's iterates never
    # violate on the training grid, unconstrained training does (the task is not too easy).
    import csv

    res = run_benchmarks("methods", True, tmp_path, [0], extra_args=["--tasks", "regression"])
    assert res.ok, res.runs[0].output[-2000:]
    rows = {r["method"]: r for r in csv.DictReader(open(tmp_path / "methods_runs.csv"))}
    assert set(rows) == {"scpo", "scpo-sound", "scpo-certified-L", "plain-bank", "unconstrained", "penalty", "penalty-autograd", "lbsgd"}
    assert int(rows["scpo-certified-L"]["safety_rejections"]) == 0  # its L is certified: no try fails the safety test
    assert int(rows["scpo"]["violating_iterates_train"]) == 0
    assert int(rows["plain-bank"]["violating_iterates_train"]) == 0
    assert int(rows["unconstrained"]["violating_iterates_train"]) > 0
    assert (tmp_path / "methods.png").stat().st_size > 0


# ----------------------------------------------------------------------------- scale-out (Ray)
def test_workers_and_address_reach_only_the_parallel_scripts(fake_benchmarks, tmp_path, monkeypatch):
    import scpo.distributed

    from scpo.bench import PARALLEL_BENCHMARKS

    monkeypatch.setattr(scpo.distributed, "ray_available", lambda: True)  # the fake scripts never start Ray
    out = tmp_path / "out"
    res = run_benchmarks("all", True, out, [0, 1], benchmarks_dir=fake_benchmarks, workers=2, ray_address="auto")
    assert PARALLEL_BENCHMARKS == ("methods",)
    assert [(r.name, r.engine) for r in res.runs] == [("methods", "ray"), ("ablations", "in-process"), ("scaling", "in-process")]
    args = {c["script"]: c["args"] for c in calls(out)}
    assert args["bench_methods.py"][-4:] == ["--workers", "2", "--ray-address", "auto"]
    assert "--workers" not in args["bench_ablations.py"] and "--workers" not in args["bench_scaling.py"]


def test_asking_for_ray_without_ray_fails_before_any_script_runs(fake_benchmarks, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    out = tmp_path / "out"
    with pytest.raises(InvalidInputError, match=r'pip install -e "\.\[ray\]"'):
        run_benchmarks("methods", True, out, None, benchmarks_dir=fake_benchmarks, workers=2)
    assert not (out / "calls.jsonl").exists()
    monkeypatch.setenv("SCPO_BENCHMARKS_DIR", str(fake_benchmarks))
    res = CliRunner().invoke(app, ["bench", "methods", "--out", str(out), "--workers", "2"])
    assert res.exit_code == 2 and 'pip install -e ".[ray]"' in res.output, res.output
    res = CliRunner().invoke(app, ["bench", "methods", "--out", str(out), "--workers", "0"])
    assert res.exit_code == 2 and "workers: expected" in res.output, res.output


TIMINGS = {"wall_s", "evaluation_s", "gradient_s", "projection_s", "wall_s_to_90pct", "gate_s", "ms_per_iteration"}


@pytest.mark.slow
def test_methods_benchmark_on_two_ray_workers_gives_the_in_process_numbers(tmp_path):
    # Four units (2 methods × 2 seeds, quick budgets, fine-grid check on) in this process and as
    # Ray tasks on a local 2-CPU instance: every column but the wall times must be the same text.
    import csv

    from scpo.distributed import ray_available

    if not ray_available():
        pytest.skip('Ray is not installed (optional extra: pip install -e ".[ray]")')
    extra = ["--tasks", "regression", "--methods", "scpo", "penalty"]
    here = run_benchmarks("methods", True, tmp_path / "here", [0, 1], extra_args=extra)
    there = run_benchmarks("methods", True, tmp_path / "ray", [0, 1], extra_args=extra, workers=2)
    assert here.ok and there.ok, (here.runs[0].output[-2000:], there.runs[0].output[-2000:])
    assert there.runs[0].engine == "ray" and "--workers" in there.runs[0].command
    a = list(csv.DictReader(open(tmp_path / "here" / "methods_runs.csv")))
    b = list(csv.DictReader(open(tmp_path / "ray" / "methods_runs.csv")))
    assert [(r["method"], r["seed"]) for r in a] == [("scpo", "0"), ("scpo", "1"), ("penalty", "0"), ("penalty", "1")]
    assert [{k: v for k, v in r.items() if k not in TIMINGS} for r in a] == [{k: v for k, v in r.items() if k not in TIMINGS} for r in b]
    assert int(a[0]["violating_iterates_train"]) == 0 and int(a[2]["violating_iterates_train"]) > 0
