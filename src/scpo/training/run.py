"""Training runs: the projector on a built-in task, written as a run directory (DESIGN §8).

Write order per iteration (so that a crash or Ctrl-C loses nothing already acknowledged):

1. the checkpoint of ``θ_{t+1}`` if this iteration is one the user asked for;
2. the projector state (``θ``, bank, ``L``, Adam moments) for iteration ``t+1``, atomically,
   keeping the previous one;
3. the certificate record of iteration ``t+1``, appended and fsynced.

On resume the last complete record is the truth: the state file whose iteration and ``θ`` hash
match it is loaded; if none matches (a crash between 2 and 3 cannot cause this, a deleted file
can), ``θ`` is taken from a checkpoint with that hash and the bank/Adam state restarts empty,
which the run's ``run.json`` records.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_bytes, check_output_dir, staging_dir
from .._validate import check_int, check_seed
from .._version import __version__
from ..certify.base_case import zero_final_layer_claim
from ..config import from_mapping, to_mapping
from ..distributed import Execution
from ..errors import CheckpointFormatError, ConfigError, InvalidInputError, RunDirectoryError, UnsafeStartError
from ..projector import Projector, ProjectorConfig, StepRecord
from ..runs.files import (
    SCHEMA_VERSION,
    append_jsonl,
    atomic_write_json,
    flatten_tensors,
    read_checkpoint,
    read_jsonl,
    read_tensors,
    theta_sha256,
    write_checkpoint,
    write_tensors,
)
from ..runs.lock import RunLock
from ..runs.run import Run, RunPaths
from ..tasks import Task, make_task
from .config import GateSettings, ResolvedConfig, TrainConfig
from .gate import SoundGate, restore_added_states, write_region_certificate
from .smoothness import L_providers

__all__ = ["train", "resume", "TrainResult", "build_projector", "setup_task"]

logger = logging.getLogger(__name__)

ProgressFn = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TrainResult:
    """Summary of a finished (or interrupted) training call.

    Attributes
    ----------
    run : Run
        The run directory, for reading its records, checkpoints and certificates.
    status : str
        ``"finished"`` (``"interrupted"`` and ``"crashed"`` are written to ``run.json``, and the
        exception propagates instead of a result).
    iterations : int
        Records in the run (all calls together, for a resumed run).
    accepted, rejected : int
        How many of them moved ``θ`` and how many did not.
    violations : int
        Accepted iterates with ``max g > 0`` (0 with projection on; the unprojected baseline counts them).
    objective_initial, objective_final : float
        ``f(θ₀)`` and ``f`` at the last iterate.
    quality_initial, quality_final : dict of str to float
        The task's quality measures (:meth:`scpo.tasks.Task.quality`) at ``θ₀`` and at the last iterate.
    wall_time_s : float
        Seconds this call took.
    """

    run: Run
    status: str
    iterations: int
    accepted: int
    rejected: int
    violations: int
    objective_initial: float
    objective_final: float
    quality_initial: dict[str, float]
    quality_final: dict[str, float]
    wall_time_s: float


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def build_projector(task: Task, cfg: ProjectorConfig, theta: np.ndarray, g: np.ndarray | None = None, *,
                    gate: Any = None) -> Projector:
    """The SCPO projector of ``task`` at ``θ`` with the settings ``cfg``.

    The projector minimises ``task.objective`` subject to ``task.constraints(θ) ≤ 0`` (the rows of
    the task's problem on its constraint states). With ``cfg.L_mode == "certified"`` its ``L``
    comes from :func:`scpo.certify.smoothness.certified_L` over the ball of radius
    ``cfg.certified_radius`` around each iterate (norm-chain bound); with ``"subspace"`` from
    :func:`scpo.certify.smoothness.subspace_certified_L` on the bank's span, every iteration
    (:func:`scpo.training.smoothness.L_providers`).

    Parameters
    ----------
    task : Task
        The task (objective, constraints, problem, MLP structure, constraint states).
    cfg : ProjectorConfig
        The projector's settings.
    theta : ndarray, shape (d,)
        Start of the projector (``θ₀`` or a resumed iterate).
    g : ndarray, shape (N,), optional
        ``g(θ)`` if already evaluated.
    gate : callable, optional
        The sound gate (:class:`scpo.training.gate.SoundGate`), asked about every candidate that
        passes the evaluated test.

    Returns
    -------
    Projector
        At ``θ`` with an empty bank and fresh Adam moments.

    Raises
    ------
    ConfigError
        ``block_probes > 0`` for a task without block gradients.
    """
    directions = task.block_gradients if cfg.block_probes else None
    if cfg.block_probes and directions is None:
        raise ConfigError(f"projector.block_probes: task {task.name!r} provides no block gradients; set block_probes to 0")
    provider, subspace = L_providers(task, cfg)
    return Projector(
        theta0=theta,
        objective=task.objective,
        objective_and_grad=task.objective_and_grad,
        constraints=task.constraints,
        config=cfg,
        g0=g,
        directions=directions,
        L_provider=provider,
        gate=gate,
        subspace_provider=subspace,
    )


def _parameter_tensors(task: Task, theta: np.ndarray) -> tuple[dict[str, np.ndarray], list[str]]:
    pol = task.policy_at(theta)
    named = list(pol.residual.named_parameters())
    return {n: p.detach().cpu().numpy().astype(np.float64) for n, p in named}, [n for n, _ in named]


# The bank is rewritten with every state file while it is small; above this size only every
# _BANK_EVERY_LARGE iterations (an older bank is still exact information, see Projector.bank_state).
_BANK_BYTES_EVERY_ITERATION = 8 * 2**20
_BANK_EVERY_LARGE = 20


def _write_state(paths: RunPaths, projector: Projector, *, force_bank: bool = False) -> None:
    state = projector.state_dict(include_bank=False)
    it = projector.iteration
    meta = {"iteration": str(it), "theta_sha256": theta_sha256(state["theta"])}
    write_tensors(paths.state_file(it), state, meta)
    bank_bytes = 8 * len(projector.bank) * (projector.dim + projector.n_constraints)
    if force_bank or bank_bytes <= _BANK_BYTES_EVERY_ITERATION or it % _BANK_EVERY_LARGE == 0:
        write_tensors(paths.bank, projector.bank_state(), {"iteration": str(it)})
    # keep this state and the previous one
    files = list(paths.state_files().values())
    for old in files[:-2]:
        old.unlink(missing_ok=True)


def _status(paths: RunPaths, **update: Any) -> None:
    try:
        import json

        current = json.loads(paths.status.read_text()) if paths.status.is_file() else {}
    except Exception:
        current = {}
    events = current.get("events", [])
    event = update.pop("event", None)
    if event:
        events.append({"time": _now(), **event})
    current.update(update)
    current["events"] = events
    atomic_write_json(paths.status, current)


def _record(rec: StepRecord, parent: str, child: str, checkpoint: str | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {"schema_version": SCHEMA_VERSION, "iteration": rec.iteration, "accepted": rec.accepted}
    out["theta_sha256"] = child
    out["parent_sha256"] = parent
    out["checkpoint"] = checkpoint
    out["violation"] = bool(rec.accepted and not rec.max_constraint <= 0)
    out.update({k: v for k, v in rec.to_dict().items() if k not in out})
    out.update(extra or {})
    out["time"] = _now()
    return out


def _gate_fields(paths: RunPaths, projector: Projector, gate: SoundGate | None, rec: StepRecord, theta: np.ndarray) -> dict[str, Any]:
    """The record fields of the sound gate: the certificate of an accepted iterate, the rows added."""
    if gate is None:
        return {}
    out: dict[str, Any] = {"certify": "sound", "added_states": gate.drain_added(), "constraint_states": int(len(gate.task.constraint_states))}
    if rec.accepted:
        cert = projector.last_certificate
        if cert is None or not cert.holds:
            raise UnsafeStartError(f"iteration {rec.iteration}: an accepted iterate has no holding region certificate")
        out.update(write_region_certificate(paths, rec.iteration, theta, cert, gate.region_dict))
    return out


STALL_NOTICE = 25
"""After this many consecutive rejected iterations (``θ`` unchanged) training says that it has stalled."""


class _Stall:
    """Consecutive rejected iterations: the notice at :data:`STALL_NOTICE`, the early stop at ``limit``.

    The early-stop rule (off unless ``limit`` is given, ``scpo train --stop-after-stall N``): stop
    after ``N`` consecutive rejected iterations, i.e. when ``θ`` has not moved for ``N``
    iterations; the run ends as finished with fewer iterations than its target, and ``run.json``
    records ``stopped_early`` (a resume continues it).
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.streak = 0
        self.reasons: dict[str, int] = {}

    def update(self, rec: StepRecord) -> bool:
        """Count ``rec``; True when the run should stop."""
        if rec.accepted:
            self.streak, self.reasons = 0, {}
            return False
        self.streak += 1
        self.reasons[rec.reason] = self.reasons.get(rec.reason, 0) + 1
        if self.streak == STALL_NOTICE:
            why = ", ".join(f"{r} ×{n}" for r, n in sorted(self.reasons.items(), key=lambda kv: -kv[1]))
            logger.warning(
                "iterations %d–%d were all rejected (%s): θ has not moved, training has stalled; "
                "more iterations will likely not help (stop early with --stop-after-stall N, or try a smaller learning rate)",
                rec.iteration - STALL_NOTICE + 1, rec.iteration, why)
        return self.limit is not None and self.streak >= self.limit


def _loop(
    paths: RunPaths,
    task: Task,
    projector: Projector,
    cfg: TrainConfig,
    names: list[str],
    progress: ProgressFn | None,
    gate: SoundGate | None = None,
    stall_limit: int | None = None,
) -> str:
    parent = theta_sha256(projector.theta)
    t_loop = time.perf_counter()
    counts = {"accepted": 0, "rejected": 0, "violations": 0}
    start = projector.iteration
    status = "running"
    stall_limit = stall_limit if stall_limit is not None else cfg.stop_after_stall
    stall = _Stall(stall_limit)
    try:
        while projector.iteration < cfg.iterations:
            rec = projector.step()
            theta = projector.theta
            child = theta_sha256(theta)
            ckpt = None
            last = projector.iteration >= cfg.iterations
            if rec.accepted and (last or (cfg.checkpoint_every and rec.iteration % cfg.checkpoint_every == 0)):
                tensors, _ = _parameter_tensors(task, theta)
                write_checkpoint(paths.checkpoint(rec.iteration), tensors, names, iteration=rec.iteration, task=task.name)
                ckpt = str(paths.checkpoint(rec.iteration).relative_to(paths.root))
            if rec.iteration % cfg.state_every == 0 or projector.iteration >= cfg.iterations:
                _write_state(paths, projector, force_bank=projector.iteration >= cfg.iterations)
            record = _record(rec, parent, child, ckpt, _gate_fields(paths, projector, gate, rec, theta))
            append_jsonl(paths.records, record)
            parent = child
            counts["accepted" if rec.accepted else "rejected"] += 1
            counts["violations"] += int(record["violation"])
            done = rec.iteration - start
            stop = stall.update(rec)
            if progress and (rec.iteration % cfg.log_every == 0 or projector.iteration >= cfg.iterations):
                elapsed = time.perf_counter() - t_loop
                progress(
                    {
                        "iteration": rec.iteration,
                        "total": cfg.iterations,
                        "objective": rec.objective,
                        "max_constraint": rec.max_constraint,
                        "L_max": rec.L_max,
                        "seconds_per_iteration": elapsed / max(done, 1),
                        "stalled": stall.streak,
                        **counts,
                    }
                )
            if stop:
                _status(paths, stopped_early={"iteration": rec.iteration, "rule": f"{stall.streak} consecutive rejected iterations "
                                              f"(--stop-after-stall {stall_limit})", "reasons": dict(stall.reasons)})
                logger.warning("stopped early after iteration %d: %d consecutive rejected iterations (--stop-after-stall %d)",
                               rec.iteration, stall.streak, stall_limit)
                break
        status = "finished"
        _write_final(paths, task, projector, names)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except BaseException as exc:
        status = "crashed"
        _status(paths, error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        _finalise(paths, task, projector, names)
        _status(paths, status=status, iterations_done=projector.iteration, iterations_target=cfg.iterations,
                event={"event": status, "iteration": projector.iteration})
    return status


def _write_final(paths: RunPaths, task: Task, projector: Projector, names: list[str]) -> None:
    """Certificates and figures of the finished run (the last iterate)."""
    records, _ = read_jsonl(paths.records)
    theta = projector.theta
    claims = task.final_claims(theta, iteration=projector.iteration)
    if claims:
        atomic_write_json(
            paths.final_certificate,
            {
                "schema_version": SCHEMA_VERSION,
                "iteration": projector.iteration,
                "theta_sha256": theta_sha256(theta),
                "claims": [c.to_dict() for c in claims],
            },
        )
    tensors = read_checkpoint(paths.checkpoint(0))[0]
    task.figures(records, {"θ0": flatten_tensors(tensors, names), "final": theta}, paths.figures)


def _finalise(paths: RunPaths, task: Task, projector: Projector, names: list[str]) -> None:
    """Make sure the last iterate is saved as a checkpoint (it always is, whatever the interval)."""
    records, _ = read_jsonl(paths.records) if paths.records.is_file() else ([], None)
    accepted = [r for r in records if r.get("accepted")]
    if not accepted:
        return  # the last iterate is θ₀, saved at creation
    last = accepted[-1]
    theta = projector.theta
    if theta_sha256(theta) != last["theta_sha256"]:
        return  # the in-memory iterate is not the recorded one (crash mid-iteration): nothing to add
    target = paths.checkpoint(int(last["iteration"]))
    if not target.is_file():
        tensors, _ = _parameter_tensors(task, theta)
        write_checkpoint(target, tensors, names, iteration=int(last["iteration"]), task=task.name)


def _summary(run: Run, task: Task, status: str, t0: float) -> TrainResult:
    records = run.records
    acc = sum(1 for r in records if r["accepted"])
    theta0 = run.theta(0)
    theta_last = run.theta()
    f0 = task.objective(theta0)
    f1 = task.objective(theta_last)
    return TrainResult(
        run=run,
        status=status,
        iterations=len(records),
        accepted=acc,
        rejected=len(records) - acc,
        violations=sum(1 for r in records if r.get("violation")),
        objective_initial=f0,
        objective_final=f1,
        quality_initial=task.quality(theta0),
        quality_final=task.quality(theta_last),
        wall_time_s=time.perf_counter() - t0,
    )


def train(config: ResolvedConfig, out: str | Path, *, progress: ProgressFn | None = None,
          stall_limit: int | None = None, execution: Execution | None = None) -> TrainResult:
    """Train from ``θ₀`` and write the run directory ``out``.

    Runs ``config.train.iterations`` iterations of the projector on the task, each accepted only
    with ``g(θ_{t+1}) ≤ 0`` evaluated (DESIGN §3). Everything that can be checked before training
    (configuration, the task, ``g(θ₀)`` finite and ``≤ 0``, the base case) is checked before
    ``out`` is created; ``out`` appears atomically with ``config.json``, ``θ₀``'s checkpoint and
    ``base_certificate.json`` in it. Then every iteration appends its record to
    ``certificates.jsonl`` (see the module docstring for the write order).

    Parameters
    ----------
    config : ResolvedConfig
        From :func:`resolve_config`.
    out : str or Path
        The run directory to create; must not exist.
    progress : callable, optional
        Called with a dict (``iteration, total, objective, max_constraint, L_max,
        seconds_per_iteration, accepted, rejected, violations``) every ``log_every`` iterations
        and after the last one (plus ``stalled``: the current run of consecutive rejected
        iterations). An exception it raises (e.g. ``KeyboardInterrupt``) stops the run with
        everything written so far kept, resumable with :func:`resume`.
    stall_limit : int, optional
        The early-stop rule: stop after this many consecutive rejected iterations (``θ``
        unchanged); ``run.json`` records ``stopped_early``. Default: the configuration's
        ``train.stop_after_stall`` (stored in ``config.json``, so a resume keeps it; off unless
        set; a warning after :data:`STALL_NOTICE` such iterations either way).
    execution : Execution, optional
        Where the sound gate bounds its leaves (:mod:`scpo.distributed`; only with
        ``certify="sound"``): default in this process. The gate's ``task_leaves`` (stored in
        ``config.json``), not the engine, fixes the certificates' bits, so the run is the same
        on any engine.

    Returns
    -------
    TrainResult
        The summary of the run.

    Raises
    ------
    RunDirectoryError
        If ``out`` already exists (runs are never overwritten; use :func:`resume`).
    ConfigError, InvalidInputError, UnsafeStartError
        Bad input; nothing is written.
    KeyboardInterrupt
        Propagated from training after ``run.json`` says ``"interrupted"``.
    """
    t0 = time.perf_counter()
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise RunDirectoryError(f"out: {str(out)!r} already exists; choose a new directory or resume it with --resume")
    check_output_dir(out, "out")
    check_seed("train.seed", config.train.seed)
    if stall_limit is not None:
        check_int("stall_limit", stall_limit, minimum=1)
    task = make_task(config.task, config.task_config, seed=config.train.seed)
    config, task, gate = setup_task(config, task, execution)
    theta0 = task.theta0
    g0 = np.asarray(task.constraints(theta0[None, :]), dtype=float)[0]
    cert0 = None
    if gate is not None:
        cert0 = gate.certify(theta0)
        if not cert0.holds:
            raise UnsafeStartError(
                f"theta0: the backup does not certify on all of the declared region C ({100 * cert0.certified_fraction:.4f}% "
                f"by volume, {len(cert0.failed)} failed leaves): the sound induction has no base case; "
                "declare a smaller region (e.g. a larger region_margin) or train with --certify grid"
            )
    projector = build_projector(task, config.projector, theta0, g0, gate=gate)
    tensors, names = _parameter_tensors(task, theta0)
    final_name = names[-2] if len(names) >= 2 else names[-1]
    base_claim = zero_final_layer_claim(
        tensors[names[-2]], tensors[names[-1]], layer=final_name.rsplit(".", 1)[0],
        all_finite=all(np.all(np.isfinite(v)) for v in tensors.values()),
    )
    claims = [base_claim, *task.base_claims(theta0, g0)]
    if gate is not None:
        claims += [*gate.region.claims, cert0.claim(gate.region)]
    if not base_claim.holds:
        raise InvalidInputError("theta0: the residual's final layer is not exactly zero, so the induction has no base case")

    tmp = staging_dir(out, "partial")  # also removes those a killed run left
    paths = RunPaths(tmp)
    paths.checkpoints.mkdir(parents=True)
    paths.state.mkdir()
    lock = RunLock(paths.lock).acquire()  # a new directory: never contended; held until the run ends
    try:
        return _create_and_loop(config, task, gate, projector, paths, out, tensors, names, claims, cert0, g0, progress, t0,
                                stall_limit)
    except BaseException:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        lock.release()


def _create_and_loop(config: ResolvedConfig, task: Task, gate: SoundGate | None, projector: Projector, paths: RunPaths, out: Path,
                     tensors: dict[str, np.ndarray], names: list[str], claims: list, cert0: Any, g0: np.ndarray,
                     progress: ProgressFn | None, t0: float, stall_limit: int | None) -> TrainResult:
    """The writing half of :func:`train`: the new directory appears atomically, then the loop runs in it."""
    tmp = paths.root
    theta0 = task.theta0
    h0 = write_checkpoint(paths.checkpoint(0), tensors, names, iteration=0, task=task.name)
    atomic_write_json(paths.config, _config_json(config, task, names, tensors))
    base = {
        "schema_version": SCHEMA_VERSION,
        "task": task.name,
        "theta_sha256": h0,
        "checkpoint": str(paths.checkpoint(0).relative_to(paths.root)),
        "max_constraint": float(np.max(g0)),
        "certify": config.train.certify,
        "claims": [c.to_dict() for c in claims],
        "holds": all(c.holds for c in claims),
    }
    if gate is not None:
        base.update(write_region_certificate(paths, 0, theta0, cert0, gate.region_dict))
    atomic_write_json(paths.base_certificate, base)
    paths.records.touch()
    _write_state(paths, projector)
    atomic_write_json(paths.status, {"status": "running", "iterations_done": 0, "iterations_target": config.train.iterations,
                                     "events": [{"time": _now(), "event": "start"}]})
    try:
        os.replace(tmp, out)
    except OSError as exc:  # another process created ``out`` meanwhile
        raise RunDirectoryError(f"out: {str(out)!r} appeared while this run was being set up ({exc.strerror}); "
                                "choose a new directory") from None
    paths = RunPaths(out)
    status = _loop(paths, task, projector, config.train, names, progress, gate, stall_limit)
    return _summary(Run(out), task, status, t0)


def setup_task(config: ResolvedConfig, task: Task | None = None,
               execution: Execution | None = None) -> tuple[ResolvedConfig, Task, SoundGate | None]:
    """Resolve ``certify="auto"`` (``sound`` when the task declares a region, else ``grid``) and the
    task settings left to training (``row_margin``, ``rows_in_region``: the gate's cushion and the
    rows inside ``C`` for ``sound``, none of either for ``grid``); rebuild the task when they change it.

    Parameters
    ----------
    config : ResolvedConfig
    task : Task, optional
        The task built from ``config`` (built here when not given).
    execution : Execution, optional
        The sound gate's engine (see :func:`train`).

    Returns
    -------
    config : ResolvedConfig
        With ``train.certify`` and those task settings resolved.
    task : Task
    gate : SoundGate or None
        The sound gate for ``certify="sound"``.
    """
    if task is None:
        task = make_task(config.task, config.task_config, seed=config.train.seed)
    mode = config.train.certify
    if mode == "auto":
        mode = "sound" if config.projector.projection and task.declared_region() is not None else "grid"
    if mode == "sound" and not config.projector.projection:
        raise ConfigError("train.certify: 'sound' needs the projector (projection=true); the unprojected baseline is "
                          "trained with --certify grid")
    tc = dict(config.task_config)
    defaults = {"row_margin": config.gate.row_margin if mode == "sound" else 0.0, "rows_in_region": mode == "sound"}
    changed = False
    for key, value in defaults.items():
        if key in tc and tc[key] is None:
            tc[key] = value
            changed = changed or bool(value)
    if changed:
        task = make_task(config.task, tc, seed=config.train.seed)
    config = dataclasses.replace(config, task_config=tc, train=dataclasses.replace(config.train, certify=mode))
    _check_engine(execution, mode)
    return config, task, (SoundGate(task, config.gate, _engine(execution)) if mode == "sound" else None)


def _check_engine(execution: Execution | None, mode: str) -> None:
    if execution is not None and not isinstance(execution, Execution):
        raise InvalidInputError(f"execution: expected a scpo.distributed.Execution, got {type(execution).__name__}")
    if execution is not None and execution.engine == "ray" and mode != "sound":
        raise InvalidInputError(f"execution: only the sound gate distributes its work (certify = sound); this run certifies {mode!r}")


def _engine(execution: Execution | None) -> Execution | None:
    """The gate's engine: None (the gate's own in-process path) unless Ray is asked for."""
    return execution if execution is not None and execution.engine == "ray" else None


def _config_json(config: ResolvedConfig, task: Task, names: list[str], tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "scpo_version": __version__,
        "created": _now(),
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv)),
        "task": config.task,
        "task_config": config.task_config,
        "projector": to_mapping(config.projector),
        "train": to_mapping(config.train),
        "gate": to_mapping(config.gate),
        "policy": {
            **task.describe(),
            "parameter_names": names,
            "parameter_shapes": {n: list(tensors[n].shape) for n in names},
            "final_layer": [names[-2], names[-1]],
        },
    }


def resume(run_dir: str | Path, *, iterations: int | None = None, progress: ProgressFn | None = None,
           task: str | None = None, stall_limit: int | None = None, execution: Execution | None = None) -> TrainResult:
    """Continue the run ``run_dir`` from its last recorded iterate up to ``iterations`` in total.

    Verifies before it writes, under the run's lock (:class:`scpo.runs.lock.RunLock`: one writer
    per run; a second gets :class:`~scpo.errors.RunLockedError`): ``config.json`` and the task,
    ``base_certificate.json`` and ``θ₀``, the chain of records (contiguous iterations, parent
    hashes), every checkpoint a record names (layout and hash) and the iterate it resumes from
    (:func:`scpo.runs.integrity.verify_resumable`). Any inconsistency raises before anything
    is written. Only what a crash can leave is repaired, and ``run.json`` says so: a torn last
    line of ``certificates.jsonl`` is cut off, the checkpoint written for the iteration after the
    last record is removed. The projector state (bank, ``L``, Adam moments) whose iteration and
    ``θ`` hash match the last record is restored; if there is none, ``θ`` comes from the
    checkpoint with that hash and the state restarts empty (recorded in ``run.json``). ``run.json``
    says ``"running"`` from the start of the resume.

    Parameters
    ----------
    run_dir : str or Path
        A run directory written by :func:`train`.
    iterations : int, optional
        New total number of iterations (written to ``config.json``); default: the run's own.
    progress : callable, optional
        As for :func:`train`.
    task : str, optional
        The task the caller means; must be the run's (``scpo train TASK --resume RUN``).
    stall_limit : int, optional
        As for :func:`train`, for this resume only; default: the run's stored
        ``train.stop_after_stall``.
    execution : Execution, optional
        As for :func:`train`, for this resume only.

    Returns
    -------
    TrainResult
        The summary of the whole run (every call together).

    Raises
    ------
    RunLockedError
        Another process is writing to the run.
    RunDirectoryError
        ``run_dir`` is not a run directory, or it is damaged (the message says what and how to
        recover); nothing is written.
    ConfigError
        Its ``config.json`` holds invalid settings.
    """
    t0 = time.perf_counter()
    paths = RunPaths(run_dir)
    if not paths.root.is_dir():
        raise RunDirectoryError(f"run {str(paths.root)!r}: expected a run directory, found none")
    if not paths.config.is_file():
        raise RunDirectoryError(f"run {str(paths.root)!r}: config.json is missing (not an scpo run directory?)")
    if stall_limit is not None:
        check_int("stall_limit", stall_limit, minimum=1)
    lock = RunLock(paths.lock).acquire()
    verified = False
    try:
        prepared = _prepare_resume(paths, iterations, task, execution)
        verified = True
        return _continue(paths, lock, prepared, iterations, progress, t0, stall_limit)
    finally:
        lock.release(restore=not verified)


@dataclass
class _Resume:
    """What :func:`_prepare_resume` verified and built, before anything is written."""

    run: Run
    task: Task
    train_cfg: TrainConfig
    names: list[str]
    point: Any
    projector: Projector
    gate: SoundGate | None
    state_note: str


def _prepare_resume(paths: RunPaths, iterations: int | None, task_name: str | None,
                    execution: Execution | None = None) -> _Resume:
    """Verify the run and build the projector where it stopped; writes nothing."""
    from ..runs.integrity import verify_resumable

    run = Run(paths.root)
    cfg = run.config
    point = verify_resumable(paths.root, cfg, task=task_name)
    proj_cfg = from_mapping(ProjectorConfig, cfg["projector"], where="config.json projector")
    train_data = dict(cfg["train"])
    if iterations is not None:
        train_data["iterations"] = iterations
    train_cfg = from_mapping(TrainConfig, train_data, where="config.json train" if iterations is None else "--iterations")
    gate_cfg = from_mapping(GateSettings, cfg.get("gate", {}), where="config.json gate")
    task = run.task
    names = run.parameter_names
    records = point.records
    last_iter, last_hash = point.last_iteration, point.last_hash
    gate = None
    _check_engine(execution, train_cfg.certify)
    if train_cfg.certify == "sound":
        restore_added_states(task, records)
        gate = SoundGate(task, gate_cfg, _engine(execution))

    projector = None
    state_note = "restored"
    for sf in reversed(list(paths.state_files().values())):
        try:
            state = read_tensors(sf)
        except CheckpointFormatError:
            continue
        counters = state.get("counters")
        if counters is None or int(counters[0]) != last_iter or theta_sha256(state["theta"]) != last_hash:
            continue
        projector = build_projector(task, proj_cfg, state["theta"], state["g"], gate=gate)
        bank = None
        if paths.bank.is_file():
            try:
                bank = read_tensors(paths.bank)
            except CheckpointFormatError:
                bank = None
        projector.load_state_dict(state, bank=bank)
        break
    if projector is None:
        theta = None
        for _it, p in sorted(run.checkpoints.items(), reverse=True):
            if p in point.residue:
                continue
            tensors, _meta = read_checkpoint(p)
            cand = flatten_tensors(tensors, names)
            if theta_sha256(cand) == last_hash:
                theta = cand
                break
        if theta is None:
            raise RunDirectoryError(
                f"run {str(paths.root)!r}: no projector state or checkpoint holds the last recorded iterate "
                f"(iteration {last_iter}, sha256 {last_hash[:12]}…); cannot resume; nothing was written"
            )
        projector = build_projector(task, proj_cfg, theta, gate=gate)
        projector.iteration = last_iter
        state_note = "reset (no matching projector state; bank, L and Adam moments restart)"
    return _Resume(run=run, task=task, train_cfg=train_cfg, names=names, point=point, projector=projector, gate=gate,
                   state_note=state_note)


def _continue(paths: RunPaths, lock: RunLock, r: _Resume, iterations: int | None, progress: ProgressFn | None,
              t0: float, stall_limit: int | None) -> TrainResult:
    """The writing half of :func:`resume`: repair crash residue, say so, record the resume, train on."""
    point = r.point
    event: dict[str, Any] = {"event": "resume", "from_iteration": point.last_iteration, "projector_state": r.state_note}
    repairs = []
    if point.torn_line is not None:
        data = paths.records.read_bytes()
        atomic_write_bytes(paths.records, data[: len(data) - point.torn_bytes])
        repairs.append(f"cut off the torn last line {point.torn_line} of certificates.jsonl ({point.torn_bytes} bytes, a crash mid-append)")
    for p in point.residue:
        p.unlink(missing_ok=True)
        what = "an interrupted atomic write" if p.name.endswith(".tmp") else "written before the crash could append its record"
        repairs.append(f"removed {p.relative_to(paths.root).as_posix()} ({what})")
    for text in repairs:
        logger.warning("resume: %s", text)
    if r.state_note != "restored":
        logger.warning("resume: %s", r.state_note)
    if repairs:
        event["repaired"] = repairs
    note = lock.stale_note()
    if note:
        event["lock"] = note
        logger.warning("resume: %s", note)
    cfg = r.run.config
    if iterations is not None and iterations != cfg["train"]["iterations"]:
        cfg["train"]["iterations"] = iterations
        atomic_write_json(paths.config, cfg)
    _status(paths, status="running", iterations_done=point.last_iteration, iterations_target=r.train_cfg.iterations,
            stopped_early=None, event=event)
    status = _loop(paths, r.task, r.projector, r.train_cfg, r.names, progress, r.gate, stall_limit)
    return _summary(Run(paths.root), r.task, status, t0)
