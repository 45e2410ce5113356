"""Box batches of the region certificate (``scpo.certify.parallel``) on every engine.

Reference: :func:`scpo.certify.region.box_rows_upper` called once, in this process, with the
current certify API on the current grid-cell cover (:func:`safety_region_cover`). The same
partition must give the same arrays bit for bit on the in-process engine and on Ray workers
(also when a worker is killed mid-batch); another partition may move the last bits only, far
inside the margin.
"""

import os
import signal

import numpy as np
import pytest

from scpo.certify import RegionConfig, certify_boxes, closed_loop, region_record, safety_region_cover
from scpo.certify import region
from scpo.certify.parallel import (
    BoxBoundJob,
    bound_box_batch,
    merge_batches,
    parallel_box_rows,
    rows_bounder,
    split_batches,
)
from scpo.distributed import Execution, map_tasks
from scpo.errors import InvalidInputError
from scpo.numerics import DEFAULT_MARGIN
from scpo.tasks import make_task

KEYS = ("initial", "state", "input", "terminal", "worst")


@pytest.fixture(scope="module")
def setup():
    """A small double integrator (16×16 grid, T = 30), its cover and a perturbed θ (some boxes fail and split)."""
    task = make_task("double-integrator", {"grid": 16})
    grid, _ = task.safety_grid()
    lo, hi, info = safety_region_cover(task.problem, grid, task.safety_states)
    theta = task.theta0 + 0.05 * np.random.default_rng(0).standard_normal(task.dim)
    return task, closed_loop(task.problem, task.structure, theta), lo, hi, info


def identical(a, b):
    return list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_split_and_merge_are_inverse():
    lo = np.arange(14.0).reshape(7, 2)
    hi = lo + 1
    vertices = [np.full((3, 2), k) for k in range(7)]
    parts = split_batches(lo, hi, vertices, size=3)
    assert [len(p[0]) for p in parts] == [3, 3, 1] and parts[2][2][0][0, 0] == 6
    assert split_batches(lo, hi, size=None)[0][0] is not None and len(split_batches(lo, hi, size=None)) == 1
    merged = merge_batches([{"a": p[0], "b": p[1][:, 0]} for p in parts])
    assert np.array_equal(merged["a"], lo) and np.array_equal(merged["b"], hi[:, 0])
    with pytest.raises(InvalidInputError, match="per_box\\[1\\]: expected 7 entries"):
        split_batches(lo, hi[:5], size=2)
    with pytest.raises(InvalidInputError, match="at least one batch"):
        merge_batches([])


@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_batches_in_process_match_one_call(setup, method):
    task, loop, lo, hi, _ = setup
    one = region.box_rows_upper(loop, task.problem, lo, hi, method=method, margin=DEFAULT_MARGIN)
    assert identical(parallel_box_rows(loop, task.problem, lo, hi, method=method, task_boxes=None), one)
    # Each batch is exactly box_rows_upper of its boxes, concatenated in order.
    by_hand = merge_batches([region.box_rows_upper(loop, task.problem, a, b, method=method) for a, b in split_batches(lo, hi, size=40)])
    assert identical(parallel_box_rows(loop, task.problem, lo, hi, method=method, task_boxes=40), by_hand)
    # Another partition moves the last bits at most (measured ≤ 4e-14 (1 + |bound|)), 10⁴ × inside the margin.
    few = region.box_rows_upper(loop, task.problem, lo[:14], hi[:14], method=method)
    for size in (1, 3, 7):
        got = parallel_box_rows(loop, task.problem, lo[:14], hi[:14], method=method, task_boxes=size)
        for k in KEYS:
            np.testing.assert_allclose(got[k], few[k], rtol=1e-12, atol=1e-13, err_msg=f"{k}, task_boxes={size}")


def test_rows_bounder_is_a_drop_in_for_box_rows_upper(setup, monkeypatch):
    import inspect

    task, loop, lo, hi, _ = setup
    original = region.box_rows_upper
    bounder = rows_bounder(task_boxes=40)
    own = inspect.signature(bounder, follow_wrapped=False).parameters
    assert [(p.name, p.kind) for p in own.values()] == [(p.name, p.kind) for p in inspect.signature(original).parameters.values()]
    assert inspect.unwrap(bounder) is original
    want = parallel_box_rows(loop, task.problem, lo, hi, method="ibp", task_boxes=40)
    assert identical(bounder(loop, task.problem, lo, hi, method="ibp", margin=DEFAULT_MARGIN), want)
    # Installed in box_rows_upper's place (as the tests below wire the current refinement loop), the batches still
    # call the real function: no recursion.
    monkeypatch.setattr(region, "box_rows_upper", bounder)
    assert identical(region.box_rows_upper(loop, task.problem, lo, hi, method="ibp", margin=DEFAULT_MARGIN), want)


def test_the_job_drops_the_problem_s_tensor_cache(setup):
    task, loop, *_ = setup
    task.problem.tensors()  # fill the cache
    job = BoxBoundJob(loop, task.problem, "ibp")
    assert job.problem._cache == {} and job.problem.to_dict() == task.problem.to_dict()
    with pytest.raises(InvalidInputError, match="method: expected one of"):
        BoxBoundJob(loop, task.problem, "lp")


def test_cuda_asked_for_without_cuda_is_a_clear_error(setup):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the missing-CUDA error cannot occur (the CUDA path is checked by benchmarks/bench_gpu.py)")
    task, loop, lo, hi, _ = setup
    with pytest.raises(InvalidInputError, match="device: 'cuda' requested but torch.cuda.is_available"):
        parallel_box_rows(loop, task.problem, lo, hi, method="ibp", device="cuda")


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device on this machine (benchmarks/bench_gpu.py runs this check where one exists)")
@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_cuda_batches_agree_with_the_cpu(setup, method):
    task, loop, lo, hi, _ = setup
    cpu = parallel_box_rows(loop, task.problem, lo, hi, method=method)
    gpu = parallel_box_rows(loop, task.problem, lo, hi, method=method, device="cuda")
    for k in KEYS:
        np.testing.assert_allclose(gpu[k], cpu[k], rtol=1e-12, atol=1e-13, err_msg=k)


# ----------------------------------------------------------------------------- Ray
@pytest.mark.parametrize("method", [pytest.param("ibp", marks=pytest.mark.slow), "crown"])
def test_ray_batches_are_identical_to_in_process(setup, ray_workers, method):
    task, loop, lo, hi, _ = setup
    for size in (40, None):
        here = parallel_box_rows(loop, task.problem, lo, hi, method=method, task_boxes=size)
        seen = []
        there = parallel_box_rows(loop, task.problem, lo, hi, method=method, task_boxes=size, execution=Execution(workers=ray_workers),
                                  progress=seen.append)
        assert identical(there, here), f"task_boxes={size}"
        assert seen[-1]["weight_done"] == len(lo)


def bound_or_die(shared, item):
    """``bound_box_batch``, but the worker running batch 1 is killed (SIGKILL) the first time."""
    job, marker = shared
    k, boxes = item
    if k == 1 and not os.path.exists(marker):
        with open(marker, "w") as fh:
            fh.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return bound_box_batch(job, boxes)


def test_a_worker_killed_while_bounding_gives_the_identical_rows(setup, ray_workers, tmp_path):
    task, loop, lo, hi, _ = setup
    job = BoxBoundJob(loop, task.problem, "crown")
    items = list(enumerate(split_batches(lo, hi, size=40)))
    marker = str(tmp_path / "killed")
    got = merge_batches(map_tasks(bound_or_die, items, shared=(job, marker), workers=ray_workers))
    assert os.path.exists(marker)
    assert identical(got, parallel_box_rows(loop, task.problem, lo, hi, method="crown", task_boxes=40))


def _record(setup, result):
    task, *_, info = setup
    rec = region_record(result, schema_version=1, run="-", task="double-integrator", iteration=0, theta_sha256="-", min_width=0.02)
    # the creation time and the wall times differ between runs; everything else must be the same bytes
    del rec["created"]
    rec["summary"] = {k: v for k, v in rec["summary"].items() if not k.startswith("time")}
    for c in rec["claims"]:
        c["details"] = {k: v for k, v in c["details"].items() if k != "time_s"}
    return rec


@pytest.mark.slow
def test_region_certificate_with_ray_batches_is_identical_to_in_process(setup, ray_workers, monkeypatch):
    import json

    task, loop, lo, hi, info = setup
    cfg = RegionConfig(min_width=0.02, search_steps=5)
    results = {}
    for name, execution in (("in-process", Execution()), ("ray", Execution(workers=ray_workers))):
        # What the lead's wiring does: the refinement loop bounds each call's boxes through the engine.
        monkeypatch.setattr(region, "box_rows_upper", rows_bounder(execution, 32))
        results[name] = certify_boxes(loop, task.problem, lo, hi, cfg, region_info=info)
        monkeypatch.undo()
    here, there = results["in-process"], results["ray"]
    assert here.summary["failed_boxes"] > 0 and here.summary["rounds"] > 1  # refinement and failures are exercised
    assert np.array_equal(here.certified_lower, there.certified_lower) and np.array_equal(here.failed_upper, there.failed_upper)
    assert json.dumps(_record(setup, here), sort_keys=True) == json.dumps(_record(setup, there), sort_keys=True)
