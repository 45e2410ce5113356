"""Where batches of independent work run: in this process (the default) or as Ray tasks (DESIGN §11).

Certification (batches of boxes), audits (blocks of checkpoints) and benchmarks (seeds) are
embarrassingly parallel. :func:`map_tasks` runs a top-level function over a list of items and
returns the results **in item order**, whatever order they finished in, so a caller that merges
them in that order produces the same bytes as the in-process run given the same items:

* ``workers=None`` and ``ray_address=None`` (the embedded default): a plain loop in this process;
  nothing is pickled and Ray is never imported.
* ``workers=N``: a local Ray instance with ``N`` CPUs on the loopback interface only, without the
  dashboard and with Ray's usage statistics off; it is started on first use and kept for the rest
  of the process (:func:`shutdown` stops it). On Linux Ray advertises the host's address and
  listens on every interface unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is set before Ray is
  imported (it turns multi-node clustering off); when :func:`map_tasks` is the first to import Ray
  for a local instance it sets that (and ``RAY_USAGE_STATS_ENABLED=0``), so every Ray socket
  listens on ``127.0.0.1``. The setting stays for the process: connect to a cluster from a
  process that has not started a local instance.
* ``ray_address=ADDRESS``: connect to a running Ray cluster (``"auto"``, ``"host:6379"`` or
  ``"ray://host:10001"``); ``workers``, when given too, caps the tasks in flight. Every node needs
  the same scpo, torch and numpy as the driver.
* Ray initialised by the caller (``ray.init`` before the first call): that instance is used as it
  is, whatever ``workers`` says.

Each item is one Ray task with one CPU. A task whose worker process dies (killed, out of memory,
node lost) is re-run up to ``retries`` times (Ray's ``max_retries``); an exception raised by the
function itself is not retried (it is a bug or bad input, and would fail again) and reaches the
caller as the exception the function raised. When a task fails for good, the tasks still pending
are cancelled and :class:`ExecutionError` is raised. The engine only returns values: writing
files stays with the caller, so nothing half-computed ever reaches a run directory.

Progress is aggregated in the driver: ``progress`` is called after every finished item with the
counts over all workers. Asking for Ray without Ray installed is an :class:`InvalidInputError`
naming the optional extra (:data:`RAY_EXTRA`).

This module imports neither torch nor Ray at import time.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._validate import check_int
from .errors import ExecutionError, InvalidInputError

__all__ = [
    "ENGINES",
    "RAY_EXTRA",
    "DEFAULT_RETRIES",
    "ExecutionError",
    "Execution",
    "map_tasks",
    "ray_available",
    "require_ray",
    "shutdown",
    "check_device",
]

logger = logging.getLogger(__name__)

ENGINES = ("in-process", "ray")
"""The execution engines: the embedded default and Ray."""

RAY_EXTRA = 'pip install -e ".[ray]"'
"""How to install the optional Ray extra (named in the error when Ray is asked for but missing)."""

DEFAULT_RETRIES = 3
"""Re-runs of a task whose worker process died (Ray's ``max_retries``)."""

_NO_SHARED = object()
_started: dict[str, Any] = {"key": None}  # what this module connected Ray to: ("local", N) or ("address", A)


@dataclass(frozen=True, kw_only=True)
class Execution:
    """Where :func:`map_tasks` runs: validated settings a caller can keep in its own config.

    Attributes
    ----------
    workers : int or None
        ``N ≥ 1``: a local Ray instance with ``N`` CPUs (or, with ``ray_address``, at most ``N``
        tasks in flight). ``None`` with no address: in this process.
    ray_address : str or None
        Address of a running Ray cluster.
    retries : int, default 3
        Re-runs of a task whose worker died (``≥ 0``).
    """

    workers: int | None = None
    ray_address: str | None = None
    retries: int = DEFAULT_RETRIES

    def __post_init__(self) -> None:
        if self.workers is not None:
            object.__setattr__(self, "workers", check_int("workers", self.workers, minimum=1))
        if self.ray_address is not None and (not isinstance(self.ray_address, str) or not self.ray_address.strip()):
            raise InvalidInputError(f"ray_address: expected a Ray cluster address such as 'auto' or 'host:6379', got {self.ray_address!r}")
        object.__setattr__(self, "retries", check_int("retries", self.retries, minimum=0))

    @property
    def engine(self) -> str:
        """``"ray"`` when workers or an address are given, else ``"in-process"``."""
        in_process, ray = ENGINES
        return ray if self.workers is not None or self.ray_address is not None else in_process

    def to_dict(self) -> dict[str, Any]:
        """The settings as recorded in summaries (the engine, workers, address, retries)."""
        return {"engine": self.engine, "workers": self.workers, "ray_address": self.ray_address, "retries": self.retries}

    def map(self, fn: Callable[..., Any], items: Sequence[Any], *, shared: Any = _NO_SHARED,
            progress: Callable[[dict[str, Any]], None] | None = None,
            on_result: Callable[[int, Any], None] | None = None, weights: Sequence[float] | None = None) -> list[Any]:
        """:func:`map_tasks` with these settings.

        Parameters
        ----------
        fn : callable
            See :func:`map_tasks`.
        items : sequence
            See :func:`map_tasks`.
        shared : object, optional
            See :func:`map_tasks`.
        progress : callable, optional
            See :func:`map_tasks`.
        on_result : callable, optional
            See :func:`map_tasks`.
        weights : sequence of float, optional
            See :func:`map_tasks`.

        Returns
        -------
        list
            One result per item, in item order.
        """
        return map_tasks(fn, items, shared=shared, workers=self.workers, ray_address=self.ray_address, retries=self.retries,
                         progress=progress, on_result=on_result, weights=weights)


def ray_available() -> bool:
    """Whether Ray is installed here (looked up without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


def require_ray(why: str = "workers / ray_address", *, load: bool = True) -> Any:
    """The ``ray`` module, or a clear error naming the optional extra.

    Parameters
    ----------
    why : str
        What asked for Ray (named in the message).
    load : bool, default True
        Import Ray; with False only check that it is installed (and return None).

    Returns
    -------
    module or None
        ``ray`` (None when ``load`` is False).

    Raises
    ------
    InvalidInputError
        Ray is not installed (bad input: the request cannot be honoured here).
    """
    hint = (f"{why}: running on Ray needs the optional extra, which is not installed here; install it with {RAY_EXTRA} "
            "(or pip install 'ray>=2.9'), or leave out --workers/--ray-address to run in-process")
    if not load:
        if not ray_available():
            raise InvalidInputError(hint)
        return None
    try:
        import ray
    except ImportError as exc:
        raise InvalidInputError(f"{hint} ({exc})") from None
    return ray


def _prepare_local() -> None:
    """Before Ray's first import for a local instance: loopback only, no usage statistics (module docstring)."""
    if "ray" not in sys.modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def shutdown() -> None:
    """Stop the Ray instance (or disconnect from the cluster) that :func:`map_tasks` started; a no-op otherwise."""
    if _started["key"] is None:
        return
    import ray

    if ray.is_initialized():
        ray.shutdown()
    _started["key"] = None


def _connect(ray: Any, workers: int | None, address: str | None) -> None:
    key = ("address", address) if address is not None else ("local", workers)
    if ray.is_initialized():
        if _started["key"] == key:
            return
        if _started["key"] is None:
            # Ray was initialised by the caller (e.g. ray.init in a notebook): use it as it is.
            logger.info("using the Ray instance initialised outside scpo (asked for %s)", key)
            return
        ray.shutdown()
        _started["key"] = None
    t0 = time.perf_counter()
    try:
        if address is not None:
            ray.init(address=address, namespace="scpo", logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1", namespace="scpo",
                     logging_level=logging.WARNING, log_to_driver=False)
    except ConnectionError as exc:
        raise InvalidInputError(f"ray_address: could not connect to the Ray cluster at {address!r} ({exc})") from None
    _started["key"] = key
    logger.info("Ray %s started in %.1f s", key, time.perf_counter() - t0)


def _report(progress, done: int, total: int, weight_done: float, weight_total: float, engine: str, workers, t0: float, index: int) -> None:
    if progress is not None:
        progress({"done": done, "total": total, "weight_done": weight_done, "weight_total": weight_total, "index": index,
                  "engine": engine, "workers": workers, "elapsed_s": time.perf_counter() - t0})


def map_tasks(
    fn: Callable[..., Any],
    items: Sequence[Any],
    *,
    shared: Any = _NO_SHARED,
    workers: int | None = None,
    ray_address: str | None = None,
    retries: int = DEFAULT_RETRIES,
    progress: Callable[[dict[str, Any]], None] | None = None,
    on_result: Callable[[int, Any], None] | None = None,
    weights: Sequence[float] | None = None,
) -> list[Any]:
    """``[fn(item) for item in items]`` (or ``fn(shared, item)``), in this process or as Ray tasks.

    Parameters
    ----------
    fn : callable
        A top-level (picklable) function of one item, or of ``(shared, item)`` when ``shared`` is
        given. It should be pure: its result may be computed more than once (retries).
    items : sequence
        The work, e.g. batches of boxes; each item is one task.
    shared : object, optional
        A value every call receives first (problem, policy parameters): sent to the cluster once
        (``ray.put``), not once per item.
    workers : int, optional
        Local Ray instance with this many CPUs (see the module docstring).
    ray_address : str, optional
        A running Ray cluster.
    retries : int, default 3
        Re-runs of a task whose worker died.
    progress : callable, optional
        Called in this process after every finished item with ``done``, ``total``,
        ``weight_done``, ``weight_total`` (sums of ``weights``), ``index`` (the item just
        finished), ``engine``, ``workers`` and ``elapsed_s``.
    on_result : callable, optional
        ``(index, result)``, called in this process as each result arrives (completion order).
    weights : sequence of float, optional
        Per item (e.g. boxes in a batch), for ``progress``; default 1 each.

    Returns
    -------
    list
        ``result[i] = fn(items[i])`` (or ``fn(shared, items[i])``), in item order.

    Raises
    ------
    InvalidInputError
        Bad settings, Ray asked for but not installed, or an unreachable cluster address.
    ExecutionError
        A task's worker died more than ``retries`` times, or the cluster failed.
    Exception
        Whatever ``fn`` raised for an item (the first failing item in completion order).
    """
    execution = Execution(workers=workers, ray_address=ray_address, retries=retries)
    if not callable(fn):
        raise InvalidInputError(f"fn: expected a callable, got {type(fn).__name__}")
    items = list(items)
    w = [1.0] * len(items) if weights is None else [float(x) for x in weights]
    if len(w) != len(items):
        raise InvalidInputError(f"weights: expected one weight per item ({len(items)}), got {len(w)}")
    has_shared = shared is not _NO_SHARED
    t0 = time.perf_counter()
    total_w = float(sum(w))
    if execution.engine == "in-process":
        out, done_w = [], 0.0
        for i, item in enumerate(items):
            value = fn(shared, item) if has_shared else fn(item)
            out.append(value)
            done_w += w[i]
            if on_result is not None:
                on_result(i, value)
            _report(progress, i + 1, len(items), done_w, total_w, "in-process", None, t0, i)
        return out
    return _map_ray(fn, items, shared if has_shared else _NO_SHARED, execution, progress, on_result, w, t0)


def _apply(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``: the Ray task that runs a callable which is not a plain function."""
    return fn(*args)


def _map_ray(fn, items, shared, execution: Execution, progress, on_result, w, t0) -> list[Any]:
    if execution.ray_address is None:
        _prepare_local()
    ray = require_ray()
    _connect(ray, execution.workers, execution.ray_address)
    if not items:
        return []
    from ray.exceptions import RayError, RayTaskError

    args: tuple = () if shared is _NO_SHARED else (ray.put(shared),)
    if not inspect.isfunction(fn):  # a builtin, a functools.partial, a callable object: Ray remotes functions only
        fn, args = _apply, (fn, *args)
    remote = ray.remote(fn).options(num_cpus=1, max_retries=execution.retries, retry_exceptions=False)
    limit = execution.workers if execution.ray_address is not None and execution.workers is not None else len(items)
    results: list[Any] = [None] * len(items)
    pending: dict[Any, int] = {}
    queued = iter(range(len(items)))
    done, done_w, total_w = 0, 0.0, float(sum(w))

    def submit() -> None:
        while len(pending) < limit:
            i = next(queued, None)
            if i is None:
                return
            pending[remote.remote(*args, items[i])] = i

    try:
        submit()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    results[i] = ray.get(ref)
                except RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, BaseException):
                        raise cause from exc
                    raise ExecutionError(f"map_tasks: item {i} failed in its Ray task: {exc}") from exc
                except RayError as exc:
                    raise ExecutionError(
                        f"map_tasks: item {i} could not be computed ({type(exc).__name__}) after {execution.retries} "
                        f"retries of its task: {exc}"
                    ) from exc
                done += 1
                done_w += w[i]
                if on_result is not None:
                    on_result(i, results[i])
                _report(progress, done, len(items), done_w, total_w, "ray", execution.workers, t0, i)
            submit()
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    return results


def check_device(device: str) -> str:
    """Validate a torch device name for the device paths: ``"cpu"`` or ``"cuda"`` / ``"cuda:K"``.

    Parameters
    ----------
    device : str

    Returns
    -------
    str
        ``device`` unchanged.

    Raises
    ------
    InvalidInputError
        Another name, or CUDA asked for where ``torch.cuda.is_available()`` is False (or the
        index is out of range).
    """
    if not isinstance(device, str) or not (device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise InvalidInputError(f"device: expected 'cpu', 'cuda' or 'cuda:K', got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InvalidInputError(f"device: {device!r} requested but torch.cuda.is_available() is False on this machine "
                                    "(no CUDA GPU, or a CPU-only torch build); use --device cpu")
        index = int(device[5:]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise InvalidInputError(f"device: {device!r} requested but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device
