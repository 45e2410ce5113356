"""Integrity of a run directory before anything is written into it (resume) or read from it.

:func:`check_config` checks the shape of ``config.json`` (the sections every reader needs, their
types, a 64-bit seed); :func:`verify_resumable` checks everything a resume rests on and returns
where it continues: the chain of records (contiguous iterations from 1, each parent hash the
previous iterate's, rejected iterations leaving ``θ`` unchanged), the task named by the caller,
``base_certificate.json`` and ``θ₀``'s checkpoint, every checkpoint a record names (its layout
and its hash), and checkpoints without a record. It writes nothing; the only damage it lets
through is the one a crash can cause (a torn last line of ``certificates.jsonl``, the
checkpoint of the iteration after the last record), which it reports for the resume to repair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._validate import SEED_MAX, read_json_object
from ..errors import CheckpointFormatError, RunDirectoryError
from .files import SCHEMA_VERSION, flatten_tensors, read_checkpoint, read_records, theta_sha256

__all__ = ["CONFIG_KEYS", "ResumePoint", "check_config", "verify_intact", "verify_resumable"]

CONFIG_KEYS = ("schema_version", "scpo_version", "created", "command", "task", "task_config", "projector", "train", "gate", "policy")
"""The top-level keys of ``config.json`` (``scpo train`` writes all; ``gate`` may be absent)."""

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TMP = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")
"""The temporary files of :func:`scpo._io.atomic_write_bytes_via` (``.NAME.<uuid4 hex>.tmp``)."""


def check_config(cfg: Any, where: str = "config.json") -> dict[str, Any]:
    """Check the shape of a run's ``config.json`` content (not the settings' values).

    Parameters
    ----------
    cfg : any
        The parsed JSON.
    where : str
        How messages name it.

    Returns
    -------
    dict
        ``cfg``.

    Raises
    ------
    RunDirectoryError
        Not an object; an unknown schema; an unknown top-level key; a missing or mistyped
        ``task``, ``task_config``, ``projector``, ``train``, ``gate`` or ``policy``; a
        ``train.seed`` that is not an integer in ``[0, 2**64 − 1]``.
    """
    if not isinstance(cfg, dict):
        raise RunDirectoryError(f"{where}: expected a JSON object, got a JSON {type(cfg).__name__}")
    version = cfg.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RunDirectoryError(f"{where}: schema_version {version!r}; this scpo reads {SCHEMA_VERSION}")
    unknown = sorted(set(cfg) - set(CONFIG_KEYS))
    if unknown:
        raise RunDirectoryError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys are {', '.join(CONFIG_KEYS)}")
    if not isinstance(cfg.get("task"), str):
        raise RunDirectoryError(f"{where}: 'task' must be a task name, got {cfg.get('task')!r}")
    for key in ("task_config", "projector", "train", "policy"):
        if not isinstance(cfg.get(key), dict):
            got = "nothing" if key not in cfg else f"a JSON {type(cfg[key]).__name__}"
            raise RunDirectoryError(f"{where}: section '{key}' must be a JSON object, got {got}")
    if "gate" in cfg and not isinstance(cfg["gate"], dict):
        raise RunDirectoryError(f"{where}: section 'gate' must be a JSON object, got a JSON {type(cfg['gate']).__name__}")
    seed = cfg["train"].get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise RunDirectoryError(f"{where}: train.seed must be an integer in [0, 2**64 - 1], got {seed!r}")
    pol = cfg["policy"]
    names, shapes = pol.get("parameter_names"), pol.get("parameter_shapes")
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise RunDirectoryError(f"{where}: policy.parameter_names must be a non-empty list of tensor names")
    if not (isinstance(shapes, dict) and set(shapes) == set(names)
            and all(isinstance(v, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v)
                    for v in shapes.values())):
        raise RunDirectoryError(f"{where}: policy.parameter_shapes must give a list of sizes for every name in parameter_names")
    return cfg


@dataclass(frozen=True)
class ResumePoint:
    """Where a verified run continues.

    Attributes
    ----------
    records : list of dict
        The complete records.
    last_iteration : int
        Iteration of the last record (0: none yet).
    last_hash : str
        SHA-256 of the last recorded iterate (``θ₀``'s when there is no record).
    torn_line : int or None
        1-based number of a torn last line of ``certificates.jsonl`` to cut off.
    torn_bytes : int
        Its length in bytes.
    residue : list of Path
        Files a crash leaves behind that the resume removes: temporary files of interrupted
        atomic writes, and the checkpoint and certificate files of iteration
        ``last_iteration + 1`` written before its record.
    """

    records: list[dict[str, Any]]
    last_iteration: int
    last_hash: str
    torn_line: int | None = None
    torn_bytes: int = 0
    residue: list[Path] = field(default_factory=list)


def _damage(root: Path, what: str) -> RunDirectoryError:
    return RunDirectoryError(
        f"run {str(root)!r}: {what}; nothing was written. Audit it (scpo audit {root}) and restore the file from a backup, "
        "or start a new run"
    )


def _check_checkpoint(root: Path, path: Path, names: list[str], shapes: dict[str, list[int]], want: str, who: str) -> None:
    rel = path.relative_to(root).as_posix()
    try:
        tensors, meta = read_checkpoint(path)
    except CheckpointFormatError as exc:
        raise _damage(root, f"{rel} ({who}) is not a readable checkpoint: {str(exc).split(': ', 1)[-1]}") from None
    layout = {n: list(a.shape) for n, a in tensors.items()}
    if layout != {n: list(shapes[n]) for n in names}:
        raise _damage(root, f"{rel} ({who}) holds tensors {layout}, expected this run's parameters "
                      f"{ {n: list(shapes[n]) for n in names} }")
    got = theta_sha256(flatten_tensors(tensors, names))
    if got != want or meta.get("theta_sha256") != got:
        raise _damage(root, f"{rel} ({who}): its tensors hash to {got[:12]}…, the chain says {want[:12]}… "
                      f"(metadata {str(meta.get('theta_sha256'))[:12]}…)")


def _check_record_fields(root: Path, i: int, rec: dict[str, Any]) -> None:
    bad = []
    if rec.get("schema_version") != SCHEMA_VERSION:
        bad.append("schema_version")
    if isinstance(rec.get("iteration"), bool) or not isinstance(rec.get("iteration"), int):
        bad.append("iteration")
    if not isinstance(rec.get("accepted"), bool):
        bad.append("accepted")
    for k in ("theta_sha256", "parent_sha256"):
        if not (isinstance(rec.get(k), str) and _HEX64.match(rec[k])):
            bad.append(k)
    if rec.get("checkpoint") is not None and not isinstance(rec.get("checkpoint"), str):
        bad.append("checkpoint")
    if bad:
        raise _damage(root, f"certificates.jsonl line {i}: missing or malformed field(s) {bad}")


def verify_resumable(root: str | Path, cfg: dict[str, Any], *, task: str | None = None) -> ResumePoint:
    """Verify a run directory before resuming it (see the module docstring); writes nothing.

    Parameters
    ----------
    root : str or Path
        The run directory.
    cfg : dict
        Its ``config.json``, already checked by :func:`check_config`.
    task : str, optional
        The task the caller means (``scpo train TASK --resume RUN``); must be the run's.

    Returns
    -------
    ResumePoint

    Raises
    ------
    RunDirectoryError
        What is wrong and how to recover: another task, a missing or malformed
        ``base_certificate.json`` or ``certificates.jsonl``, a bad line other than a torn last
        one, a break in the chain, a checkpoint that is missing, unreadable, of another layout
        or another hash than its record, or a checkpoint without a record.
    """
    from .run import RunPaths

    paths = RunPaths(root)
    root = paths.root
    if task is not None and task != cfg["task"]:
        raise RunDirectoryError(f"task: the run {str(root)!r} was trained on task {cfg['task']!r}, got {task!r}; a run keeps its task "
                                f"(resume it with: scpo train --resume {root})")
    names = list(cfg["policy"]["parameter_names"])
    shapes = cfg["policy"]["parameter_shapes"]
    base = read_json_object(paths.base_certificate, "base_certificate.json", RunDirectoryError)
    h0 = base.get("theta_sha256")
    if not (isinstance(h0, str) and _HEX64.match(h0)) or base.get("schema_version") != SCHEMA_VERSION:
        raise _damage(root, "base_certificate.json has no valid theta_sha256 or schema_version")
    if base.get("task") not in (None, cfg["task"]):
        raise _damage(root, f"base_certificate.json is about task {base.get('task')!r}, config.json about {cfg['task']!r}")
    _check_checkpoint(root, paths.checkpoint(0), names, shapes, h0, "θ₀, the base case")
    try:
        records, torn = read_records(paths.records)
    except RunDirectoryError as exc:
        raise _damage(root, str(exc)) from None
    parent = h0
    for i, rec in enumerate(records, start=1):
        _check_record_fields(root, i, rec)
        if rec["iteration"] != i:
            raise _damage(root, f"certificates.jsonl line {i} holds iteration {rec['iteration']}, expected {i} (records missing, "
                          "repeated or out of order)")
        if rec["parent_sha256"] != parent:
            raise _damage(root, f"iteration {i}: parent_sha256 {rec['parent_sha256'][:12]}… is not the previous iterate's "
                          f"{parent[:12]}…: the chain is broken")
        if not rec["accepted"] and rec["theta_sha256"] != parent:
            raise _damage(root, f"iteration {i} was rejected but changed θ")
        ck = rec.get("checkpoint")
        if ck is not None:
            want = paths.checkpoint(i).relative_to(root).as_posix()
            if ck != want:
                raise _damage(root, f"iteration {i} names the checkpoint {ck!r}, expected {want!r}")
            if not paths.checkpoint(i).is_file():
                raise _damage(root, f"{want} is missing (the record of iteration {i} names it)")
            _check_checkpoint(root, paths.checkpoint(i), names, shapes, rec["theta_sha256"], f"the record of iteration {i}")
        parent = rec["theta_sha256"]
    last = len(records)
    residue = sorted(p for folder in (root, paths.checkpoints, paths.state, paths.certificates, paths.figures) if folder.is_dir()
                     for p in folder.iterdir() if _TMP.match(p.name) and p.is_file())  # atomic writes a crash interrupted
    residue += sorted(paths.certificates.glob(f"*_iter_{last + 1:06d}.json")) if paths.certificates.is_dir() else []
    for it, p in paths.checkpoint_files().items():
        if it == last + 1:
            residue.append(p)  # written just before a record the crash did not append
        elif it > last:
            raise _damage(root, f"{p.relative_to(root).as_posix()} has no record (the last record is iteration {last})")
        elif it > 0 and records[it - 1].get("checkpoint") is None:  # the last iterate, saved when the run ended
            _check_checkpoint(root, p, names, shapes, records[it - 1]["theta_sha256"], f"the iterate of iteration {it}")
    torn_bytes = len(paths.records.read_bytes().rsplit(b"\n", 1)[-1]) if torn is not None else 0
    return ResumePoint(records=records, last_iteration=last, last_hash=parent, torn_line=torn, torn_bytes=torn_bytes,
                       residue=residue)


def verify_intact(root: str | Path) -> ResumePoint:
    """Check a run before a command writes a derived certificate into it (``scpo certify``, ``verify-lipschitz``).

    The same checks as :func:`verify_resumable` on the run's own ``config.json``: a command that
    adds files to a run must not add them to a damaged one, where they would look like evidence
    about a chain that no longer holds. Crash residue (a torn last line, the files of the
    iteration after the last record) is let through, as for a resume; it writes nothing.

    Parameters
    ----------
    root : str or Path
        The run directory.

    Returns
    -------
    ResumePoint

    Raises
    ------
    RunDirectoryError
        ``config.json`` missing or malformed, or any damage :func:`verify_resumable` refuses.
    """
    from .run import RunPaths

    paths = RunPaths(root)
    cfg = check_config(read_json_object(paths.config, "config.json", RunDirectoryError))
    return verify_resumable(paths.root, cfg)
