"""``scpo.distributed``: the in-process engine, the errors, and the Ray engine on a local instance.

References: the in-process results are the list comprehension ``[fn(x) for x in items]``; the
Ray results must equal them element for element and in item order, also when a worker process
is killed in the middle of a task (the task is re-run).
"""

import os
import signal
import sys
import time

import numpy as np
import pytest

from scpo.distributed import (
    DEFAULT_RETRIES,
    RAY_EXTRA,
    Execution,
    ExecutionError,
    check_device,
    map_tasks,
    ray_available,
    require_ray,
)
from scpo.errors import InvalidInputError, ShapeError


def square(x):
    return x * x


def affine(shared, x):
    a, b = shared
    return a * x + b


def slow_when_even(x):
    # Even items finish last: completion order differs from item order on two workers.
    time.sleep(0.3 if x % 2 == 0 else 0.0)
    return -x


def raise_on_three(x):
    if x == 3:
        raise ShapeError(f"x: expected anything but 3, got {x}")
    return x


def die_once(marker_dir, x):
    """Kill this worker process (SIGKILL, as the OOM killer would) the first time item 2 runs."""
    marker = os.path.join(marker_dir, f"died-{x}")
    if x == 2 and not os.path.exists(marker):
        with open(marker, "w") as fh:
            fh.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return (x, float(np.sqrt(x)))


def always_die(x):
    os.kill(os.getpid(), signal.SIGKILL)


# ----------------------------------------------------------------------------- in-process
def test_in_process_is_the_list_comprehension_in_item_order():
    items = [3, -1, 4, 1, 5]
    assert map_tasks(square, items) == [square(x) for x in items]
    assert map_tasks(affine, items, shared=(2, 1)) == [2 * x + 1 for x in items]
    assert map_tasks(square, []) == []


def test_in_process_progress_and_results_are_reported_per_item():
    seen, results = [], []
    out = map_tasks(square, [1, 2, 3], progress=seen.append, on_result=lambda i, r: results.append((i, r)), weights=[10, 20, 30])
    assert out == [1, 4, 9]
    assert results == [(0, 1), (1, 4), (2, 9)]
    assert [(p["done"], p["total"], p["weight_done"], p["weight_total"], p["index"]) for p in seen] == [
        (1, 3, 10.0, 60.0, 0), (2, 3, 30.0, 60.0, 1), (3, 3, 60.0, 60.0, 2)]
    assert {p["engine"] for p in seen} == {"in-process"}


def test_in_process_passes_the_function_s_exception_unchanged():
    with pytest.raises(ShapeError, match="anything but 3"):
        map_tasks(raise_on_three, range(5))


def test_settings_are_validated():
    with pytest.raises(InvalidInputError, match="workers"):
        Execution(workers=0)
    with pytest.raises(InvalidInputError, match="ray_address"):
        Execution(ray_address="  ")
    with pytest.raises(InvalidInputError, match="retries"):
        map_tasks(square, [1], retries=-1)
    with pytest.raises(InvalidInputError, match="weights: expected one weight per item"):
        map_tasks(square, [1, 2], weights=[1])
    with pytest.raises(InvalidInputError, match="fn: expected a callable"):
        map_tasks(3, [1])
    assert Execution().engine == "in-process" and Execution(workers=2).engine == "ray"
    assert Execution(ray_address="auto").to_dict() == {"engine": "ray", "workers": None, "ray_address": "auto", "retries": DEFAULT_RETRIES}


def test_asking_for_ray_without_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if it were not installed
    assert not ray_available()
    with pytest.raises(InvalidInputError, match=r'pip install -e "\.\[ray\]"'):
        map_tasks(square, [1, 2], workers=2)
    with pytest.raises(InvalidInputError, match="not installed"):
        require_ray("--workers", load=False)
    assert RAY_EXTRA == 'pip install -e ".[ray]"'
    assert map_tasks(square, [1, 2]) == [1, 4]  # in-process never needs Ray


def test_check_device():
    import torch

    assert check_device("cpu") == "cpu"
    with pytest.raises(InvalidInputError, match="expected 'cpu', 'cuda' or 'cuda:K', got 'gpu'"):
        check_device("gpu")
    if torch.cuda.is_available():
        assert check_device("cuda") == "cuda"
    else:
        with pytest.raises(InvalidInputError, match="torch.cuda.is_available\\(\\) is False"):
            check_device("cuda")


# ----------------------------------------------------------------------------- Ray
def test_ray_results_are_in_item_order_and_equal_the_in_process_ones(ray_workers):
    items = list(range(8))
    finished = []
    out = map_tasks(slow_when_even, items, workers=ray_workers, on_result=lambda i, r: finished.append(i))
    assert out == map_tasks(slow_when_even, items) == [-x for x in items]
    assert sorted(finished) == items and finished != items  # they completed out of order, the list is in order
    arrays = [np.arange(5.0) + k for k in range(4)]
    got = map_tasks(affine, arrays, shared=(np.float64(0.1), np.float64(3.0)), workers=ray_workers)
    for g, x in zip(got, arrays):
        assert np.array_equal(g, 0.1 * x + 3.0)


def test_ray_progress_is_aggregated_over_the_workers(ray_workers):
    seen = []
    map_tasks(square, range(6), workers=ray_workers, progress=seen.append, weights=[1, 2, 3, 4, 5, 6])
    assert [p["done"] for p in seen] == [1, 2, 3, 4, 5, 6]
    assert seen[-1]["weight_done"] == seen[-1]["weight_total"] == 21.0
    assert {p["engine"] for p in seen} == {"ray"} and {p["workers"] for p in seen} == {2}
    assert sorted(p["index"] for p in seen) == list(range(6))


def test_ray_instance_listens_on_loopback_only(ray_workers):
    import ray

    assert [n["NodeManagerAddress"] for n in ray.nodes()] == ["127.0.0.1"]
    assert ray.cluster_resources().get("CPU") == 2.0


def test_ray_passes_the_function_s_exception_unchanged(ray_workers):
    with pytest.raises(ShapeError, match="anything but 3"):
        map_tasks(raise_on_three, range(6), workers=ray_workers)


def test_a_killed_worker_has_its_task_rerun_and_the_result_is_identical(ray_workers, tmp_path):
    items = list(range(6))
    got = map_tasks(die_once, items, shared=str(tmp_path), workers=ray_workers)
    assert (tmp_path / "died-2").exists()  # a worker really died in item 2's first attempt
    assert got == map_tasks(die_once, items, shared=str(tmp_path))


def test_a_worker_that_keeps_dying_is_an_execution_error(ray_workers):
    with pytest.raises(ExecutionError, match=r"item 0 could not be computed \(WorkerCrashedError\) after 1 retries"):
        map_tasks(always_die, [0], workers=ray_workers, retries=1)
    assert map_tasks(square, [5], workers=ray_workers) == [25]  # the instance survives
