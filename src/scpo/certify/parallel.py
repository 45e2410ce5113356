"""Batches of boxes of the region certificate as pure, picklable tasks (DESIGN §11).

The region certificate spends its time bounding boxes (:func:`scpo.certify.region.box_rows_upper`:
IBP, then CROWN on what IBP leaves open). Boxes are independent, so a call on ``B`` boxes can be
cut into batches ``[0, b), [b, 2b), …`` (:func:`split_batches`) that run anywhere
(:func:`scpo.distributed.map_tasks`) and whose results, concatenated in batch order
(:func:`merge_batches`), bound the same rows as one call on all ``B`` boxes.

Identity. *The partition fixes the bits, the engine does not*: the same batches give the same
arrays, bit for bit, in this process and on any number of Ray workers (the tests check both), so a
refinement loop that keeps its own order and only delegates the bounding writes the same
certificate bytes on every engine, given the same ``task_boxes``. A *different* partition may
change the last bits: torch's CPU kernels pick their vectorisation by the batch shape, so a box
bounded in a batch of another size can differ from the same box bounded in one call over all
boxes by up to ``4e-14 (1 + |bound|)`` (IBP; ``5e-16`` for CROWN; measured on the double integrator
over batch sizes 1 … 40 and 299) — four orders of magnitude inside the margin's ``1e-9`` relative
widening, so soundness does not depend on it, but a certificate's bytes do. ``task_boxes`` is
therefore a setting of the certificate, to be recorded with it.

Threads. Each batch runs with ``threads`` torch threads (default 1: one CPU per Ray task) and
restores the setting afterwards; in-process and on Ray the arithmetic is then the same.

Device. With ``device="cuda"`` a batch runs under ``torch.device("cuda")``, so every tensor the
bound propagation creates (``torch.tensor``, ``as_tensor``, ``zeros``, ``eye`` …) is placed on the
GPU; :func:`scpo.certify.bound_rollout` runs there unchanged. The rows must come back to the CPU
before numpy sees them: ``box_rows_upper`` still calls ``.numpy()`` on its tensors, which fails for
CUDA tensors until it calls ``.cpu().numpy()`` (a no-op on the CPU). The margin needs nothing more:
float64 additions and multiplications are IEEE round-to-nearest on the GPU as on the CPU (with
fused multiply-adds, which only lower the error), and the margin's rule (relative ``1e-9`` of every
bound) covers any summation order. Unmeasured until a GPU runs ``benchmarks/bench_gpu.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from .._validate import as_array, check_in, check_int
from ..distributed import Execution, check_device
from ..errors import InvalidInputError, UnsupportedError
from ..numerics import DEFAULT_MARGIN, Margin
from ..systems import ClosedLoopProblem
from .bounds import METHODS, ClosedLoop

__all__ = [
    "DEFAULT_TASK_BOXES",
    "BoxBoundJob",
    "placement",
    "bound_box_batch",
    "split_batches",
    "merge_batches",
    "parallel_box_rows",
    "rows_bounder",
    "LeafBoundJob",
    "bound_leaf_batch",
    "parallel_leaf_bounds",
]

DEFAULT_TASK_BOXES: Mapping[str, int] = MappingProxyType({"ibp": 2048, "crown": 128})
"""Boxes per task, per method. Measured on the double integrator (T = 30, 2-32-32-1, one thread):
an IBP call costs tens of milliseconds whatever its size (the 30-step loop of small tensor
operations) plus about 0.1 ms per box, so IBP batches must be large; CROWN costs about 2 ms per box and runs
fastest in batches of about 128 (cache-sized), which also lets a round of a few hundred open
boxes feed several workers. Ray's own cost per task is about a millisecond."""


@dataclass(frozen=True)
class BoxBoundJob:
    """What every batch of one bounding call shares: the closed loop, the problem and the method.

    Attributes
    ----------
    loop : ClosedLoop
        ``x⁺ = A x + B (K x + φ_θ(x))`` (numpy arrays and the flat ``θ``: picklable as they are).
    problem : ClosedLoopProblem
        Rows, terminal set and horizon; stored as a fresh copy without the problem's tensor cache
        (a cache of CUDA tensors must not travel to a CPU-only worker).
    method : {"ibp", "crown"}
    margin : Margin
    threads : int or None, default 1
        torch threads while a batch runs (restored afterwards); None leaves the setting alone.
    device : str, default "cpu"
        ``"cpu"`` or ``"cuda[:K]"`` (:func:`scpo.distributed.check_device` is applied where the
        batch runs, so a CPU-only worker fails clearly).
    """

    loop: ClosedLoop
    problem: ClosedLoopProblem
    method: str
    margin: Margin = DEFAULT_MARGIN
    threads: int | None = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not isinstance(self.loop, ClosedLoop):
            raise UnsupportedError(f"loop: expected a ClosedLoop (see closed_loop), got {type(self.loop).__name__}")
        if not isinstance(self.problem, ClosedLoopProblem):
            raise UnsupportedError(f"problem: expected a ClosedLoopProblem, got {type(self.problem).__name__}")
        check_in("method", self.method, METHODS)
        if not isinstance(self.margin, Margin):
            raise InvalidInputError(f"margin: expected a scpo.numerics.Margin, got {type(self.margin).__name__}")
        if self.threads is not None:
            check_int("threads", self.threads, minimum=1)
        if not isinstance(self.device, str):
            raise InvalidInputError(f"device: expected 'cpu', 'cuda' or 'cuda:K', got {self.device!r}")
        object.__setattr__(self, "problem", dataclasses.replace(self.problem))  # same values, empty tensor cache


@contextlib.contextmanager
def placement(threads: int | None, device: str) -> Iterator[str]:
    """Run a block with ``threads`` torch threads (restored afterwards) and every new tensor on ``device``.

    Parameters
    ----------
    threads : int or None
        None leaves the thread setting alone.
    device : str
        ``"cpu"`` or ``"cuda[:K]"`` (checked here: the error is raised where the batch runs).

    Yields
    ------
    str
        The device.
    """
    device = check_device(device)
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        if device == "cpu":
            yield device
        else:
            with torch.device(device):
                yield device
    finally:
        torch.set_num_threads(old)


def _rows_function() -> Callable[..., dict[str, np.ndarray]]:
    """:func:`scpo.certify.region.box_rows_upper` itself, also while a :func:`rows_bounder` stands in its place."""
    from . import region

    return inspect.unwrap(region.box_rows_upper)


def bound_box_batch(job: BoxBoundJob, boxes: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """Upper bounds of every reach-avoid row over each box of one batch (the task function).

    Pure: the result depends on ``job`` and ``boxes`` only, so a re-run (a retried task) gives the
    same arrays.

    Parameters
    ----------
    job : BoxBoundJob
    boxes : (ndarray, ndarray)
        ``lower``, ``upper``, shape (b, n) each.

    Returns
    -------
    dict of ndarray
        :func:`scpo.certify.region.box_rows_upper` of the batch: ``initial`` (b, p), ``state``
        (b, T, p), ``input`` (b, T, q), ``terminal`` (b,), ``worst`` (b,), float64 on the CPU.
    """
    lower, upper = boxes
    with placement(job.threads, job.device):
        return _rows_function()(job.loop, job.problem, lower, upper, method=job.method, margin=job.margin)


def split_batches(*per_box: Any, size: int | None) -> list[tuple[Any, ...]]:
    """Cut per-box data into consecutive batches of ``size`` boxes (the last one shorter).

    Parameters
    ----------
    *per_box : ndarray or list
        Equally long along the first axis (e.g. ``lower``, ``upper``, and a list of each box's vertices).
    size : int or None
        Boxes per batch, ``≥ 1``; None: one batch of all.

    Returns
    -------
    list of tuple
        ``(a[s:s+size] for a in per_box)`` for ``s = 0, size, 2·size, …``; no batch when there are
        no boxes.
    """
    if not per_box:
        raise InvalidInputError("per_box: expected at least one per-box array")
    count = len(per_box[0])
    for i, a in enumerate(per_box):
        if len(a) != count:
            raise InvalidInputError(f"per_box[{i}]: expected {count} entries (one per box), got {len(a)}")
    size = count if size is None else check_int("size", size, minimum=1)
    return [tuple(a[s : s + size] for a in per_box) for s in range(0, count, max(size, 1))]


def merge_batches(parts: list[Any]) -> Any:
    """Concatenate the results of consecutive batches (in batch order) along the box axis.

    Parameters
    ----------
    parts : list
        Results of one batch function, in the order of the batches: each a dict of arrays, a
        dataclass whose fields are arrays (e.g. ``LeafBounds``), or an array.

    Returns
    -------
    same type as the parts
        With the boxes of every part, in order.
    """
    if not parts:
        raise InvalidInputError("parts: expected the result of at least one batch, got none")
    first = parts[0]
    if isinstance(first, dict):
        keys = list(first)
        for i, p in enumerate(parts):
            if not isinstance(p, dict) or list(p) != keys:
                raise InvalidInputError(f"parts[{i}]: expected a dict with the keys {keys}")
        return {k: np.concatenate([p[k] for p in parts], axis=0) for k in keys}
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        names = [f.name for f in dataclasses.fields(first) if f.init]
        return dataclasses.replace(first, **{k: np.concatenate([getattr(p, k) for p in parts], axis=0) for k in names})
    if isinstance(first, np.ndarray):
        return np.concatenate(parts, axis=0)
    raise UnsupportedError(f"parts: expected dicts of arrays, dataclasses of arrays or arrays, got {type(first).__name__}")


def parallel_box_rows(
    loop: ClosedLoop,
    problem: ClosedLoopProblem,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    method: str,
    margin: Margin = DEFAULT_MARGIN,
    execution: Execution | None = None,
    task_boxes: int | Mapping[str, int] | None = DEFAULT_TASK_BOXES,
    threads: int | None = 1,
    device: str = "cpu",
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, np.ndarray]:
    """:func:`scpo.certify.region.box_rows_upper` over batches of ``task_boxes`` boxes, on any engine.

    Parameters
    ----------
    loop : ClosedLoop
    problem : ClosedLoopProblem
    lower, upper : ndarray, shape (B, n)
    method : {"ibp", "crown"}
    margin : Margin
    execution : Execution, optional
        Where the batches run (default: in this process).
    task_boxes : int, mapping or None
        Boxes per task, or per method (:data:`DEFAULT_TASK_BOXES`); None: one task. The
        partition, not the engine, fixes the bits: the same ``task_boxes`` gives the same arrays
        in this process and on any number of workers.
    threads : int or None
        torch threads per batch (:class:`BoxBoundJob`).
    device : str
        ``"cpu"`` or ``"cuda[:K]"``.
    progress : callable, optional
        :func:`scpo.distributed.map_tasks`'s progress (weights: boxes per batch).

    Returns
    -------
    dict of ndarray
        As :func:`bound_box_batch` for all ``B`` boxes, in their order.
    """
    execution = execution if execution is not None else Execution()
    if not isinstance(execution, Execution):
        raise InvalidInputError(f"execution: expected a scpo.distributed.Execution, got {type(execution).__name__}")
    job = BoxBoundJob(loop, problem, method, margin, threads, device)
    lo = as_array("lower", lower, ndim=2)
    hi = as_array("upper", upper, shape=lo.shape)
    size = task_boxes.get(method) if isinstance(task_boxes, Mapping) else task_boxes
    batches = split_batches(lo, hi, size=size)
    parts = execution.map(bound_box_batch, batches, shared=job, progress=progress, weights=[len(b[0]) for b in batches])
    return merge_batches(parts)


def rows_bounder(
    execution: Execution | None = None,
    task_boxes: int | Mapping[str, int] | None = DEFAULT_TASK_BOXES,
    *,
    threads: int | None = 1,
    device: str = "cpu",
) -> Callable[..., dict[str, np.ndarray]]:
    """A stand-in for :func:`scpo.certify.region.box_rows_upper` that bounds through the engine.

    What a refinement loop calls instead of ``box_rows_upper`` to run its bounding on
    ``execution`` (same signature, same arrays for the same ``task_boxes``). It declares the
    function it wraps (``__wrapped__``), so it may even be installed in ``box_rows_upper``'s place:
    the batches still call the real function.

    Parameters
    ----------
    execution : Execution, optional
        Where the batches run (default: in this process).
    task_boxes : int, mapping or None
        See :func:`parallel_box_rows`.
    threads : int or None
        torch threads per batch.
    device : str
        ``"cpu"`` or ``"cuda[:K]"``.

    Returns
    -------
    callable
        ``(loop, problem, lower, upper, *, method, margin) -> dict of ndarray``.
    """

    @functools.wraps(_rows_function())
    def rows(loop: ClosedLoop, problem: ClosedLoopProblem, lower: np.ndarray, upper: np.ndarray, *, method: str,
             margin: Margin = DEFAULT_MARGIN) -> dict[str, np.ndarray]:
        return parallel_box_rows(loop, problem, lower, upper, method=method, margin=margin, execution=execution,
                                 task_boxes=task_boxes, threads=threads, device=device)

    return rows


@dataclass(frozen=True)
class LeafBoundJob:
    """What every batch of leaves of one region-certificate round shares (:mod:`scpo.certify.sound_region`).

    Attributes
    ----------
    loop : ClosedLoop
        ``x⁺ = A x + B (K x + φ_θ(x))``.
    problem : ClosedLoopProblem
        Stored without its tensor cache, as in :class:`BoxBoundJob`.
    method : {"ibp", "crown"}
    target : Polytope or None
        ``T_in ⊆ X_f`` of the linear terminal check (:func:`scpo.certify.leaf_bounds.leaf_bounds`).
    margin : Margin
    threads : int or None, default 1
        torch threads while a batch runs (restored afterwards).
    device : str, default "cpu"
        ``"cpu"`` or ``"cuda[:K]"``.
    """

    loop: ClosedLoop
    problem: ClosedLoopProblem
    method: str
    target: Any = None
    margin: Margin = DEFAULT_MARGIN
    threads: int | None = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        BoxBoundJob(self.loop, self.problem, self.method, self.margin, self.threads, self.device)  # the same checks
        object.__setattr__(self, "problem", dataclasses.replace(self.problem))


def bound_leaf_batch(job: LeafBoundJob, batch: tuple[np.ndarray, np.ndarray, list[np.ndarray]]):
    """:func:`scpo.certify.leaf_bounds.leaf_bounds` of one batch of leaves (the task function; pure).

    Parameters
    ----------
    job : LeafBoundJob
    batch : (ndarray, ndarray, list of ndarray)
        ``lower``, ``upper`` (b, n) and the vertices of each ``box ∩ C``.

    Returns
    -------
    LeafBounds
        float64 arrays on the CPU, one entry per leaf of the batch.
    """
    from .leaf_bounds import leaf_bounds

    lower, upper, vertices = batch
    with placement(job.threads, job.device):
        return leaf_bounds(job.loop, job.problem, lower, upper, list(vertices), method=job.method, target=job.target,
                           margin=job.margin)


def parallel_leaf_bounds(
    loop: ClosedLoop,
    problem: ClosedLoopProblem,
    lower: np.ndarray,
    upper: np.ndarray,
    vertices: list[np.ndarray],
    *,
    method: str,
    target: Any = None,
    margin: Margin = DEFAULT_MARGIN,
    execution: Execution | None = None,
    task_leaves: int | None = None,
    threads: int | None = 1,
    device: str = "cpu",
    progress: Callable[[dict[str, Any]], None] | None = None,
):
    """:func:`scpo.certify.leaf_bounds.leaf_bounds` over batches of ``task_leaves`` leaves, on any engine.

    As for boxes, the partition into batches fixes the bits: the same ``task_leaves`` gives the
    same arrays in this process and on any number of workers, so the region certificate's bytes
    depend on ``task_leaves`` (recorded in its summary), not on the engine.

    Parameters
    ----------
    loop : ClosedLoop
    problem : ClosedLoopProblem
    lower, upper : ndarray, shape (B, n)
    vertices : list of ndarray
        One per leaf.
    method : {"ibp", "crown"}
    target : Polytope, optional
    margin : Margin
    execution : Execution, optional
        Default: in this process.
    task_leaves : int or None
        Leaves per task; None: one task.
    threads : int or None
    device : str
    progress : callable, optional
        Called after every finished batch with :func:`scpo.distributed.map_tasks`' counts over all
        workers (``weight_done`` / ``weight_total``: leaves).

    Returns
    -------
    LeafBounds
        For all ``B`` leaves, in their order.
    """
    execution = execution if execution is not None else Execution()
    if not isinstance(execution, Execution):
        raise InvalidInputError(f"execution: expected a scpo.distributed.Execution, got {type(execution).__name__}")
    job = LeafBoundJob(loop, problem, method, target, margin, threads, device)
    lo = as_array("lower", lower, ndim=2)
    hi = as_array("upper", upper, shape=lo.shape)
    batches = split_batches(lo, hi, list(vertices), size=task_leaves)
    parts = execution.map(bound_leaf_batch, batches, shared=job, weights=[len(b[0]) for b in batches], progress=progress)
    return merge_batches(parts)
