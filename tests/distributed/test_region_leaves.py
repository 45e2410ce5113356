"""The sound region certificate (``RegionCertifier``) with its leaves bounded through the engine.

Reference: the same certifier in this process with the same ``task_leaves`` (the batching fixes
the bits, the engine does not), and :func:`scpo.certify.leaf_bounds.leaf_bounds` called once on
all leaves (another batching may move the last bits only, far inside the 1e-9 margin). A certificate
is compared through its canonical JSON without the wall-clock fields.
"""

import json
import os
import signal

import numpy as np
import pytest

from scpo.certify import closed_loop
from scpo.certify.leaf_bounds import leaf_bounds
from scpo.certify.parallel import LeafBoundJob, bound_leaf_batch, merge_batches, parallel_leaf_bounds, split_batches
from scpo.certify.sound_region import GateConfig, RegionCertifier
from scpo.distributed import Execution, map_tasks
from scpo.errors import InvalidInputError
from scpo.tasks import make_task


@pytest.fixture(scope="module")
def setup():
    """The double integrator's declared region C, a coarse root grid and a perturbed θ (some leaves split and fail)."""
    task = make_task("double-integrator", {"grid": 16})
    region = task.declared_region()
    theta = task.theta0 + 0.05 * np.random.default_rng(0).standard_normal(task.dim)
    return task, region, theta


def _cert_bytes(cert) -> str:
    d = cert.to_dict()
    d["summary"] = {k: v for k, v in d["summary"].items() if not k.startswith("time")}
    return json.dumps(d, sort_keys=True)


def _certify(setup, execution, task_leaves):
    task, region, theta = setup
    cfg = GateConfig(cells_per_axis=8, max_depth=3, task_leaves=task_leaves, search_steps=3)
    return RegionCertifier(task.problem, task.structure, region, cfg, execution).certify(theta)


def _leaves(setup):
    task, region, theta = setup
    cert = _certify(setup, None, None)
    part = cert.partition
    live = [i for i, s in enumerate(cert.status) if s != "outside"]
    lo, hi = part.lower[live], part.upper[live]
    V = [part.clips[i].vertices for i in live]
    return task, region, closed_loop(task.problem, task.structure, theta), lo, hi, V


def test_batched_leaf_bounds_agree_with_one_call_inside_the_margin(setup):
    task, region, loop, lo, hi, V = _leaves(setup)
    one = leaf_bounds(loop, task.problem, lo, hi, V, method="crown", target=region.terminal_target)
    for size in (1, 7, None):
        got = parallel_leaf_bounds(loop, task.problem, lo, hi, V, method="crown", target=region.terminal_target, task_leaves=size)
        # different batch shapes may move the last bits (parallel.py's docstring); 1e-12 is 1,000× inside the margin
        assert np.allclose(got.worst, one.worst, rtol=0, atol=1e-12 * (1 + np.max(np.abs(one.worst))))
        # the worst row can only change where two rows' bounds tie within those last bits
        close = np.abs(got.worst - one.worst) <= 1e-12 * (1 + np.abs(one.worst))
        assert np.all(close) and np.mean(got.worst_row == one.worst_row) > 0.99


def test_settings_are_checked(setup):
    with pytest.raises(InvalidInputError, match="task_leaves"):
        GateConfig(task_leaves=0)
    task, region, _ = setup
    with pytest.raises(InvalidInputError, match="execution"):
        RegionCertifier(task.problem, task.structure, region, GateConfig(), execution="ray")


# ----------------------------------------------------------------------------- Ray
def test_region_certificate_on_ray_is_identical_to_in_process(setup, ray_workers):
    here = _certify(setup, None, 16)
    there = _certify(setup, Execution(workers=ray_workers), 16)
    assert here.summary["splits"] > 0 and not here.holds  # refinement and failures are exercised
    assert _cert_bytes(here) == _cert_bytes(there)


def bound_or_die(shared, item):
    """``bound_leaf_batch``, but the worker running batch 1 is killed (SIGKILL) the first time."""
    job, marker = shared
    k, batch = item
    if k == 1 and not os.path.exists(marker):
        with open(marker, "w") as fh:
            fh.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return bound_leaf_batch(job, batch)


def test_a_worker_killed_while_bounding_leaves_gives_the_identical_bounds(setup, ray_workers, tmp_path):
    task, region, loop, lo, hi, V = _leaves(setup)
    job = LeafBoundJob(loop, task.problem, "crown", region.terminal_target)
    items = list(enumerate(split_batches(lo, hi, V, size=16)))
    marker = str(tmp_path / "killed")
    got = merge_batches(map_tasks(bound_or_die, items, shared=(job, marker), workers=ray_workers))
    assert os.path.exists(marker)
    ref = parallel_leaf_bounds(loop, task.problem, lo, hi, V, method="crown", target=region.terminal_target, task_leaves=16)
    assert all(np.array_equal(getattr(got, k), getattr(ref, k)) for k in ("rows", "terminal", "worst", "worst_row"))
