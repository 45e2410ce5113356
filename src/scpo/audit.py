"""Independent audit of a run directory: ``scpo audit RUN`` / :func:`audit` (DESIGN §2, §6, §8).

The audit re-verifies the certificate chain from the files alone, for runs that the user did not
train and need not trust. *Independent* means here:

* **No training code path.** Nothing from :mod:`scpo.training`, the projector, the
  :class:`~scpo.runs.Run` reader or :mod:`scpo.runs.files` is used. The audit parses
  ``config.json``, ``base_certificate.json`` and ``certificates.jsonl`` itself and reads every
  checkpoint with its own safetensors parser (an 8-byte header length, a JSON header, raw
  little-endian buffers: ``json`` and ``numpy.frombuffer`` only). Nothing is ever unpickled; a
  pickle or a ``torch.save`` archive in place of a checkpoint is reported as bad input.
* **Hashes from bytes.** ``θ`` is the concatenation of the tensors named in
  ``config.json`` (``policy.parameter_names``, in that order) as little-endian float64; its
  SHA-256 is recomputed from the tensor bytes and compared with the checkpoint's metadata and
  with the record of its iteration. The chain of parent hashes is recomputed from ``θ₀``.
* **Base case from tensors.** ``θ₀``'s final layer is the pair of tensors named by
  ``policy.final_layer``; the audit checks that they are the last layer of the architecture
  rebuilt from ``task_config`` and that every entry is exactly ``0`` (no tolerance).
* **Backup certificate recomputed.** For the double integrator the system matrices ``A, B, Q,
  R`` and the constraints come from the task rebuilt from ``task_config``; ``P`` and ``K`` are
  solved afresh with :func:`scipy.linalg.solve_discrete_are` and ``γ`` from its closed form, and
  compared with the task's and with the values ``config.json`` recorded. The backup that the
  policy actually uses (the task's ``K``, ``P``, ``γ``) is then re-checked in exact rational
  arithmetic (:func:`scpo.certify.backup_certificate`), and the verdicts are compared with those
  ``base_certificate.json`` recorded. For the regression task the backup is ``π_safe ≡ 0``,
  which satisfies ``|0| ≤ bound`` by structure.
* **Constraints re-evaluated.** ``g`` (the task's constraint function, the definition of the
  safety metric) is evaluated afresh at the audited checkpoints, in batches, and its maximum
  must reproduce the recorded ``max_constraint`` within :class:`AuditTolerances` and be ``≤ 0``.
* **Reach-avoid re-derived.** For the control task the closed loop ``x⁺ = Ax + B(Kx + φ_θ(x))``
  is rolled out by the audit's own implementation (batched float64 matrix products; the MLP
  evaluated from the checkpoint tensors by name, not through the task's policy or rollout code)
  from every grid state of ``S``, and the reach-avoid claim is checked on it with no tolerance.

Audited checkpoints (the ``iterations`` argument): by default every saved checkpoint (``θ₀``,
the saved accepted iterates and the last one). A selection such as ``"0,10-20,100-1000:50,last"``
restricts the re-evaluation of ``g``, ``f`` and reach-avoid; hashes, the chain and the base case
are always checked for every file. Cost: re-evaluation dominates (regression at its default size
≈ 35 ms per checkpoint on 2 cores; the double integrator at its default size ≈ 0.2–0.35 s, two
closed-loop rollouts from every grid state of ``S``), so a sample is the way to audit very long
control runs quickly. Accepted iterates without a checkpoint (``checkpoint_every > 1``) keep
only their recorded ``max_constraint`` (evaluated at training time), which the audit checks is
``≤ 0`` and says so.

Exit codes (:attr:`AuditResult.exit_code`): 0 every check passed, 1 a check failed (each
failure names its iteration and reason), 2 bad input (missing files, an unknown schema, a
checkpoint that is not safetensors or does not hold this run's parameters).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._validate import check_int, check_nonnegative
from .errors import InvalidInputError
from .evidence import Level, _jsonable

__all__ = [
    "AuditCheck",
    "AuditResult",
    "AuditTolerances",
    "audit",
    "parse_iterations",
    "read_safetensors",
    "SUPPORTED_SCHEMA_VERSIONS",
]

logger = logging.getLogger(__name__)

SUPPORTED_SCHEMA_VERSIONS = (1,)
"""Run-directory schema versions this audit understands."""

CHECKPOINT_FORMAT = "scpo.checkpoint"
_CKPT_NAME = re.compile(r"^theta_(\d{6,})\.safetensors$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MAX_HEADER = 100_000_000
_MAX_FILE = 2**31  # a residual MLP's float64 parameters are far smaller
_RECORD_FIELDS = {"iteration": int, "accepted": bool, "theta_sha256": str, "parent_sha256": str, "max_constraint": object}

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


# ---------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True, kw_only=True)
class AuditTolerances:
    """Tolerances of the numerical comparisons (the exact checks have none).

    Attributes
    ----------
    g_atol, g_rtol : float
        Re-evaluated ``max g`` must satisfy ``|g_new − g_recorded| ≤ g_atol + g_rtol·|g_recorded|``
        (the same code in float64 reproduces it to a few ulps; the margin allows a different
        BLAS or batch size, and catches any edit of a recorded value beyond ~1e-9).
    objective_rtol : float
        Same for the recorded objective ``f`` (relative to ``max(1, |f|)``).
    lqr_rtol : float
        Relative agreement (Frobenius norm) of the fresh DARE solution ``P, K`` and of ``γ`` with
        the task's and the recorded values.
    """

    g_atol: float = 1e-9
    g_rtol: float = 1e-9
    objective_rtol: float = 1e-9
    lqr_rtol: float = 1e-8

    def __post_init__(self) -> None:
        for name in ("g_atol", "g_rtol", "objective_rtol", "lqr_rtol"):
            check_nonnegative(f"AuditTolerances.{name}", getattr(self, name))


@dataclass(frozen=True)
class AuditCheck:
    """One verified statement.

    Attributes
    ----------
    name : str
        Which check, e.g. ``"checkpoint_hash"`` or ``"constraints"``.
    iteration : int or None
        The iteration it concerns (``None``: the whole run).
    level : Level
        How it was established (``exact`` for hashes, the chain, the base case and the backup
        certificate; ``evaluated`` for re-evaluated constraints and reach-avoid on the grid).
    ok : bool
    message : str
        What was checked and, on failure, what is wrong.
    details : dict
        Numbers behind the verdict.
    """

    name: str
    iteration: int | None
    level: Level
    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "iteration": self.iteration,
            "level": self.level.value,
            "ok": bool(self.ok),
            "message": self.message,
            "details": _jsonable(self.details),
        }


@dataclass(frozen=True)
class AuditResult:
    """The outcome of :func:`audit`.

    Attributes
    ----------
    run : str
    task : str or None
    checks : tuple of AuditCheck
        Every check made, in order.
    input_errors : tuple of str
        Bad input found (missing or malformed files, unknown schema); any makes the exit code 2.
    audited_iterations : tuple of int
        Checkpoints at which ``g`` (and reach-avoid) were re-evaluated.
    tolerances : AuditTolerances
    notes : tuple of str
        What was not checked and why (e.g. accepted iterates without a checkpoint).
    scpo_version : str
    wall_time_s : float
    """

    run: str
    task: str | None
    checks: tuple[AuditCheck, ...]
    input_errors: tuple[str, ...]
    audited_iterations: tuple[int, ...]
    tolerances: AuditTolerances
    notes: tuple[str, ...] = ()
    scpo_version: str = ""
    wall_time_s: float = 0.0

    @property
    def failures(self) -> list[AuditCheck]:
        """The checks that did not pass."""
        return [c for c in self.checks if not c.ok]

    @property
    def ok(self) -> bool:
        """True when there is no bad input and every check passed."""
        return not self.input_errors and not self.failures and bool(self.checks)

    @property
    def exit_code(self) -> int:
        """0 verified, 1 a check failed, 2 bad input."""
        if self.input_errors or not self.checks:
            return EXIT_BAD_INPUT
        return EXIT_FAILED if self.failures else EXIT_OK

    def counts(self) -> dict[str, dict[str, int]]:
        """Passed and failed checks per check name."""
        out: dict[str, dict[str, int]] = {}
        for c in self.checks:
            entry = out.setdefault(c.name, {"passed": 0, "failed": 0})
            entry["passed" if c.ok else "failed"] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON form (what ``scpo audit --json`` prints)."""
        return {
            "schema_version": 1,
            "kind": "scpo.audit",
            "run": self.run,
            "task": self.task,
            "verdict": {EXIT_OK: "verified", EXIT_FAILED: "failed", EXIT_BAD_INPUT: "bad input"}[self.exit_code],
            "ok": self.ok,
            "exit_code": self.exit_code,
            "input_errors": list(self.input_errors),
            "failures": [c.to_dict() for c in self.failures],
            "counts": self.counts(),
            "audited_iterations": list(self.audited_iterations),
            "tolerances": {k: getattr(self.tolerances, k) for k in ("g_atol", "g_rtol", "objective_rtol", "lqr_rtol")},
            "notes": list(self.notes),
            "checks": [c.to_dict() for c in self.checks],
            "scpo_version": self.scpo_version,
            "wall_time_s": self.wall_time_s,
        }

    def render_text(self, *, max_failures: int = 50) -> str:
        """A readable summary: one line per check name, then each failure and input error."""
        verdict = {EXIT_OK: "VERIFIED", EXIT_FAILED: "FAILED", EXIT_BAD_INPUT: "BAD INPUT"}[self.exit_code]
        its = list(self.audited_iterations)
        shown = ", ".join(map(str, its[:8])) + (f", … ({len(its)} in all)" if len(its) > 8 else "")
        lines = [f"scpo audit {self.run}: task {self.task or '?'}; g re-evaluated at checkpoint(s) {shown or 'none'}"]
        levels: dict[str, str] = {}
        for c in self.checks:
            levels.setdefault(c.name, c.level.value)
        for name, cnt in self.counts().items():
            tag = "FAIL" if cnt["failed"] else "pass"
            lines.append(f"  {tag} [{levels[name]:>9}] {name:<28} {cnt['passed']} passed, {cnt['failed']} failed")
        for err in self.input_errors:
            lines.append(f"  BAD INPUT: {err}")
        fails = self.failures
        for c in fails[:max_failures]:
            where = f"iteration {c.iteration}" if c.iteration is not None else "run"
            lines.append(f"  FAILED {c.name} ({where}, {c.level.value}): {c.message}")
        if len(fails) > max_failures:
            lines.append(f"  … and {len(fails) - max_failures} more failures (use --json for all)")
        for note in self.notes:
            lines.append(f"  note: {note}")
        lines.append(f"verdict: {verdict} (exit {self.exit_code}); {len(self.checks)} checks in {self.wall_time_s:.1f} s")
        return "\n".join(lines)


class _BadInput(Exception):
    """A fatal input error: the audit cannot go on."""


# ---------------------------------------------------------------------------------------------
# file readers (independent of scpo.runs)


def _sniff(head: bytes) -> str:
    if head[:1] == b"\x80":
        return "it starts with the pickle protocol opcode 0x80: a Python pickle (scpo never unpickles checkpoints)"
    if head[:4] == b"PK\x03\x04":
        return "it is a zip archive (torch.save's format, which holds a pickle; scpo never unpickles checkpoints)"
    if head[:1] in (b"(", b"}", b"]") and b"." in head:
        return "it looks like a Python pickle (protocol 0-1; scpo never unpickles checkpoints)"
    return "its first 8 bytes are not a plausible safetensors header length"


def read_safetensors(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, bytes]]:
    """Parse a safetensors file with ``json`` and ``numpy.frombuffer`` only (never unpickles).

    Format: an unsigned 64-bit little-endian header length ``n``, ``n`` bytes of JSON mapping each
    tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into the byte
    buffer that follows) plus an optional ``"__metadata__"`` of strings.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    tensors : dict of name -> ndarray
        Float64 arrays (only ``F64`` tensors are accepted: scpo writes float64).
    metadata : dict of str -> str
    raw : dict of name -> bytes
        Each tensor's bytes exactly as stored (hashed by the audit).

    Raises
    ------
    InvalidInputError
        Missing file, not safetensors (e.g. a pickle, which is never loaded), a malformed
        header, a dtype other than ``F64``, or offsets outside the buffer.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: expected a safetensors checkpoint, found no file")
    size = path.stat().st_size
    if size > _MAX_FILE:
        raise InvalidInputError(f"{path}: {size} bytes, more than the {_MAX_FILE} bytes a checkpoint of this toolkit may have")
    data = path.read_bytes()
    if len(data) < 8:
        raise InvalidInputError(f"{path}: not a safetensors file: {len(data)} bytes, shorter than the 8-byte header length")
    n = int.from_bytes(data[:8], "little")
    if n < 2 or n > min(len(data) - 8, _MAX_HEADER):
        raise InvalidInputError(f"{path}: not a safetensors file: header length {n} does not fit a {len(data)}-byte file; {_sniff(data[:16])}")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path}: not a safetensors file: its header is not JSON ({exc}); {_sniff(data[:16])}") from None
    if not isinstance(header, dict):
        raise InvalidInputError(f"{path}: not a safetensors file: its header is a JSON {type(header).__name__}, expected an object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise InvalidInputError(f"{path}: malformed safetensors metadata: expected a mapping of strings")
    buf = memoryview(data)[8 + n :]
    tensors: dict[str, np.ndarray] = {}
    raw: dict[str, bytes] = {}
    spans = []
    for name, spec in header.items():
        if not isinstance(spec, dict) or not {"dtype", "shape", "data_offsets"} <= set(spec):
            raise InvalidInputError(f"{path}: malformed safetensors entry {name!r}: expected dtype, shape and data_offsets")
        if spec["dtype"] != "F64":
            raise InvalidInputError(f"{path}: tensor {name!r} has dtype {spec['dtype']!r}; scpo checkpoints hold F64 tensors only")
        shape, offs = spec["shape"], spec["data_offsets"]
        if (
            not isinstance(shape, list)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
            or not isinstance(offs, list)
            or len(offs) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
        ):
            raise InvalidInputError(f"{path}: malformed shape or data_offsets of tensor {name!r}")
        begin, end = offs
        count = math.prod(shape)
        if not 0 <= begin <= end <= len(buf) or end - begin != 8 * count:
            raise InvalidInputError(
                f"{path}: tensor {name!r}: data_offsets {offs} do not hold {count} float64 values inside the {len(buf)}-byte buffer"
            )
        spans.append((begin, end, name))
        raw[name] = bytes(buf[begin:end])
        tensors[name] = np.frombuffer(raw[name], dtype="<f8").reshape(shape).astype(np.float64)
    spans.sort()
    for (b0, e0, n0), (b1, _e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise InvalidInputError(f"{path}: tensors {n0!r} and {n1!r} overlap in the data buffer")
    return tensors, dict(meta), raw


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise _BadInput(f"{what} is missing ({path})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _BadInput(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _BadInput(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def _schema(data: dict[str, Any], what: str) -> None:
    v = data.get("schema_version")
    if v not in SUPPORTED_SCHEMA_VERSIONS:
        raise _BadInput(f"{what}: schema_version {v!r} is not one this audit knows ({list(SUPPORTED_SCHEMA_VERSIONS)})")


def _number(value: Any) -> float:
    """A recorded float: numbers as they are, the strings 'nan'/'inf'/'-inf' that strict JSON needs."""
    if isinstance(value, bool):
        return float("nan")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return float("nan")


def _read_records(path: Path, errors: list[str]) -> list[dict[str, Any]]:
    """Complete, well-formed records up to the first bad line (which is reported as bad input)."""
    if not path.is_file():
        raise _BadInput(f"certificates.jsonl is missing ({path})")
    lines = path.read_bytes().split(b"\n")
    records: list[dict[str, Any]] = []
    for i, raw in enumerate(lines, start=1):
        last = i == len(lines)
        if last:
            if raw != b"":
                errors.append(
                    f"certificates.jsonl line {i} is incomplete (the file ends mid-line without a newline: truncated?); "
                    f"{len(records)} complete record(s) before it"
                )
            break
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            errors.append(f"certificates.jsonl line {i} is not valid JSON ({exc}); the audit stops reading there")
            break
        if not isinstance(rec, dict):
            errors.append(f"certificates.jsonl line {i}: expected a JSON object, got {type(rec).__name__}")
            break
        if rec.get("schema_version") not in SUPPORTED_SCHEMA_VERSIONS:
            errors.append(
                f"certificates.jsonl line {i}: schema_version {rec.get('schema_version')!r} is not one this audit knows "
                f"({list(SUPPORTED_SCHEMA_VERSIONS)})"
            )
            break
        bad = [k for k, t in _RECORD_FIELDS.items() if k not in rec or (t is not object and not isinstance(rec[k], t))]
        if isinstance(rec.get("iteration"), bool):
            bad.append("iteration")
        for k in ("theta_sha256", "parent_sha256"):
            if isinstance(rec.get(k), str) and not _HEX64.match(rec[k]):
                bad.append(k)
        ck = rec.get("checkpoint")
        if ck is not None and not isinstance(ck, str):
            bad.append("checkpoint")
        if bad:
            errors.append(f"certificates.jsonl line {i}: missing or malformed field(s) {sorted(set(bad))}")
            break
        rec["_line"] = i
        records.append(rec)
    return records


# ---------------------------------------------------------------------------------------------
# iteration selection


def parse_iterations(spec: str | Sequence[int] | None, saved: Sequence[int]) -> list[int]:
    """The checkpoints to re-evaluate.

    Parameters
    ----------
    spec : str, sequence of int or None
        ``None`` or ``"all"``: every saved checkpoint. Otherwise a comma-separated list of
        items: an iteration ``k`` (its checkpoint must exist), an inclusive range ``a-b`` (the
        saved checkpoints in it; at least one), a range with a step ``a-b:k`` (the saved
        checkpoints among ``a, a+k, a+2k, … ≤ b``), ``last`` (the newest checkpoint).
    saved : sequence of int
        Iterations with a checkpoint.

    Returns
    -------
    list of int
        Sorted, without duplicates.

    Raises
    ------
    InvalidInputError
        Malformed ``spec``, an iteration without a checkpoint, or an empty range.
    """
    saved = sorted(set(int(s) for s in saved))
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "all"):
        return saved

    def near(k: int) -> str:
        if not saved:
            return "none are saved"
        idx = np.searchsorted(saved, k)
        around = saved[max(0, idx - 3) : idx + 3]
        return f"saved nearby: {', '.join(map(str, around))} ({len(saved)} in all)"

    items: list[Any] = list(spec) if not isinstance(spec, str) else [s.strip() for s in spec.split(",")]
    out: set[int] = set()
    for item in items:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            k = check_int("iterations", int(item), minimum=0)
            if k not in saved:
                raise InvalidInputError(f"iterations: no checkpoint saved for iteration {k}; {near(k)}")
            out.add(k)
            continue
        if not isinstance(item, str) or not item:
            raise InvalidInputError(f"iterations: expected integers, ranges a-b or a-b:k, 'last' or 'all', got {item!r} in {spec!r}")
        if item.lower() == "last":
            if not saved:
                raise InvalidInputError("iterations: 'last' requested but no checkpoint is saved")
            out.add(saved[-1])
        elif re.fullmatch(r"\d+", item):
            k = int(item)
            if k not in saved:
                raise InvalidInputError(f"iterations: no checkpoint saved for iteration {k}; {near(k)}")
            out.add(k)
        elif m := re.fullmatch(r"(\d+)-(\d+)(?::(\d+))?", item):
            a, b, step = int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)
            if a > b or step < 1:
                raise InvalidInputError(f"iterations: range {item!r} is empty (start > end or step < 1)")
            sel = [s for s in saved if a <= s <= b and (s - a) % step == 0]
            if not sel:
                raise InvalidInputError(f"iterations: no checkpoint saved in the range {item}; {near(a)}")
            out.update(sel)
        else:
            raise InvalidInputError(
                f"iterations: expected a comma-separated list of integers, ranges a-b or a-b:k, 'last' or 'all', got {item!r}"
            )
    return sorted(out)


# ---------------------------------------------------------------------------------------------
# the audit


def _short(h: Any) -> str:
    return f"{h[:12]}…" if isinstance(h, str) else repr(h)


class _Auditor:
    """Holds the files of one run while they are checked (state, hence a class)."""

    def __init__(self, root: Path, tolerances: AuditTolerances, chunk: int) -> None:
        self.root = root
        self.tol = tolerances
        self.chunk = chunk
        self.checks: list[AuditCheck] = []
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.task_name: str | None = None
        self.audited: list[int] = []

    def add(self, name: str, iteration: int | None, level: Level, ok: bool, message: str, **details: Any) -> None:
        self.checks.append(AuditCheck(name, iteration, level, bool(ok), message, details))

    # ---------------------------------------------------------------- config and layout
    def load(self) -> None:
        root = self.root
        if not root.is_dir():
            raise _BadInput(f"run {str(root)!r}: expected a run directory, found none")
        cfg = _read_json(root / "config.json", "config.json")
        _schema(cfg, "config.json")
        self.config = cfg
        task = cfg.get("task")
        from .tasks import TASKS

        if task not in TASKS:
            raise _BadInput(f"config.json: task {task!r} is not a task this audit knows ({', '.join(sorted(TASKS))})")
        self.task_name = task
        pol = cfg.get("policy")
        train = cfg.get("train")
        if not isinstance(pol, dict) or not isinstance(train, dict) or not isinstance(cfg.get("task_config"), dict):
            raise _BadInput("config.json: expected objects 'policy', 'train' and 'task_config'")
        names, shapes, final = pol.get("parameter_names"), pol.get("parameter_shapes"), pol.get("final_layer")
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            raise _BadInput("config.json: policy.parameter_names must be a non-empty list of tensor names")
        if not (isinstance(shapes, dict) and set(shapes) == set(names)):
            raise _BadInput("config.json: policy.parameter_shapes must give the shape of every name in parameter_names")
        if not (isinstance(final, list) and len(final) == 2 and final == names[-2:]):
            raise _BadInput(f"config.json: policy.final_layer {final!r} is not the last (weight, bias) pair of parameter_names {names[-2:]}")
        seed = train.get("seed")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise _BadInput(f"config.json: train.seed must be an integer, got {seed!r}")
        self.names = names
        self.shapes = {n: tuple(shapes[n]) for n in names}
        from .tasks import make_task

        try:
            self.task = make_task(task, cfg["task_config"], seed=seed)
        except InvalidInputError as exc:
            raise _BadInput(f"config.json: task_config does not build the task ({exc})") from None
        # The architecture rebuilt from task_config must be the one config.json describes, so that
        # θ's layout (names, shapes, order) is the one the constraints are evaluated with.
        built = [(n, tuple(p.shape)) for n, p in self.task.policy.residual.named_parameters()]
        described = [(n, self.shapes[n]) for n in names]
        if built != described:
            raise _BadInput(f"config.json: policy layout {described} differs from the architecture rebuilt from task_config {built}")
        self.base = _read_json(root / "base_certificate.json", "base_certificate.json")
        _schema(self.base, "base_certificate.json")
        if not isinstance(self.base.get("theta_sha256"), str) or not _HEX64.match(self.base["theta_sha256"]):
            raise _BadInput("base_certificate.json: theta_sha256 must be a 64-digit hex SHA-256")
        self.records = _read_records(root / "certificates.jsonl", self.errors)

    # ---------------------------------------------------------------- checkpoints
    def read_checkpoints(self) -> None:
        """Parse every checkpoint file and recompute its hash from the tensor bytes."""
        self.files: dict[int, Path] = {}
        ckdir = self.root / "checkpoints"
        if ckdir.is_dir():
            for p in sorted(ckdir.iterdir()):
                m = _CKPT_NAME.match(p.name)
                if m:
                    self.files[int(m.group(1))] = p
                elif not p.name.startswith("."):
                    self.notes.append(f"checkpoints/{p.name}: not named theta_NNNNNN.safetensors; ignored")
        if 0 not in self.files:
            raise _BadInput("checkpoints/theta_000000.safetensors (θ₀) is missing: the induction has no base case to check")
        self.thetas: dict[int, np.ndarray] = {}
        self.hashes: dict[int, str] = {}
        self.meta: dict[int, dict[str, str]] = {}
        self.tensors0: dict[str, np.ndarray] | None = None
        for it, p in self.files.items():
            rel = p.relative_to(self.root)
            try:
                tensors, meta, raw = read_safetensors(p)
            except InvalidInputError as exc:
                self.errors.append(str(exc).replace(str(p), str(rel)))
                continue
            if meta.get("format") != CHECKPOINT_FORMAT or meta.get("schema_version") not in {str(v) for v in SUPPORTED_SCHEMA_VERSIONS}:
                self.errors.append(
                    f"{rel}: metadata format {meta.get('format')!r}, schema_version {meta.get('schema_version')!r}: "
                    f"not an scpo checkpoint of a schema this audit knows"
                )
                continue
            layout = {n: tuple(a.shape) for n, a in tensors.items()}
            if layout != self.shapes:
                self.errors.append(f"{rel}: holds tensors {layout}, expected this run's parameters {self.shapes}")
                continue
            h = hashlib.sha256()
            for n in self.names:
                h.update(raw[n])  # the stored little-endian float64 bytes, in parameter_names order
            self.hashes[it] = h.hexdigest()
            self.thetas[it] = np.concatenate([tensors[n].ravel() for n in self.names])
            self.meta[it] = meta
            if it == 0:
                self.tensors0 = tensors

    # ---------------------------------------------------------------- chain
    def check_chain(self) -> None:
        recs = self.records
        h0 = self.base["theta_sha256"]
        by_it = {r["iteration"]: r for r in recs}
        self.by_it = by_it
        failures = 0
        # iteration numbers: 1, 2, …, n without gaps or repeats
        expected = 1
        for r in recs:
            if r["iteration"] != expected:
                failures += 1
                what = "missing" if r["iteration"] > expected else "repeated or out of order"
                self.add("chain", r["iteration"], Level.EXACT, False,
                         f"record on line {r['_line']} has iteration {r['iteration']}, expected {expected}: record(s) {what}")
            expected = r["iteration"] + 1
        # parent links
        parent = h0
        for r in recs:
            if r["parent_sha256"] != parent:
                failures += 1
                self.add("chain", r["iteration"], Level.EXACT, False,
                         f"parent_sha256 {_short(r['parent_sha256'])} does not equal the previous iterate's hash {_short(parent)} "
                         f"({'θ₀' if parent == h0 and r is recs[0] else 'previous record'}): the chain is broken here")
            if not r["accepted"] and r["theta_sha256"] != r["parent_sha256"]:
                failures += 1
                self.add("chain", r["iteration"], Level.EXACT, False,
                         f"rejected iteration changed θ: theta_sha256 {_short(r['theta_sha256'])} ≠ parent {_short(r['parent_sha256'])}")
            parent = r["theta_sha256"]
        # every record points at the checkpoint of its own iteration, or at none
        for r in recs:
            ck = r.get("checkpoint")
            want = f"checkpoints/theta_{r['iteration']:06d}.safetensors"
            if ck is None:
                continue
            if ck != want:
                failures += 1
                self.add("chain", r["iteration"], Level.EXACT, False, f"record names checkpoint {ck!r}, expected {want!r}")
            elif r["iteration"] not in self.files:
                self.errors.append(f"{want} is missing (the record of iteration {r['iteration']} names it)")
        # completeness against the other files that name the last iteration
        last_it = recs[-1]["iteration"] if recs else 0
        last_hash = recs[-1]["theta_sha256"] if recs else h0
        status = self.root / "run.json"
        if status.is_file():
            try:
                st = json.loads(status.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                st = {}
                self.notes.append("run.json is not valid JSON; the record count was not compared with it")
            done = st.get("iterations_done") if isinstance(st, dict) else None
            finished = isinstance(st, dict) and st.get("status") == "finished"
            if isinstance(st, dict) and not finished and st.get("status") is not None:
                # a crash may stop between an iteration and its record; only a finished run must agree exactly
                self.notes.append(f"run.json status {st.get('status')!r}: the record count was not compared with it")
            if finished and isinstance(done, int) and not isinstance(done, bool) and done != len(recs):
                failures += 1
                self.add("chain", None, Level.EXACT, False,
                         f"run.json says {done} iterations were done, certificates.jsonl holds {len(recs)} complete records")
        final = self.root / "certificates" / "final.json"
        if final.is_file():
            try:
                fj = json.loads(final.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                fj = None
                self.errors.append("certificates/final.json is not valid JSON")
            if isinstance(fj, dict) and "iteration" in fj:
                if fj.get("iteration") != last_it or fj.get("theta_sha256") != last_hash:
                    failures += 1
                    self.add("chain", fj.get("iteration") if isinstance(fj.get("iteration"), int) else None, Level.EXACT, False,
                             f"certificates/final.json certifies iteration {fj.get('iteration')} (θ {_short(fj.get('theta_sha256'))}), "
                             f"but the last record is iteration {last_it} (θ {_short(last_hash)})")
        for it in self.files:
            if it > 0 and it not in by_it:
                failures += 1
                self.add("chain", it, Level.EXACT, False,
                         f"checkpoints/theta_{it:06d}.safetensors has no record in certificates.jsonl (record deleted or file added)")
        if failures == 0:
            self.add("chain", None, Level.EXACT, True,
                     f"{len(recs)} records link θ₀ ({_short(h0)}) to θ_{last_it} ({_short(last_hash)}): iterations 1..{last_it} "
                     "without gaps, each parent hash equal to the previous iterate's, rejected iterations leave θ unchanged")

    def check_hashes(self) -> None:
        hash_to_its: dict[str, list[int]] = {}
        for r in self.records:
            hash_to_its.setdefault(r["theta_sha256"], []).append(r["iteration"])
        hash_to_its.setdefault(self.base["theta_sha256"], []).insert(0, 0)
        for it, h in self.hashes.items():
            rel = f"checkpoints/theta_{it:06d}.safetensors"
            if it == 0:
                want, source = self.base["theta_sha256"], "base_certificate.json"
            elif it in self.by_it:
                want, source = self.by_it[it]["theta_sha256"], f"the record of iteration {it}"
            else:
                continue  # reported by check_chain
            meta = self.meta[it]
            problems = []
            if h != want:
                elsewhere = [i for i in hash_to_its.get(h, []) if i != it]
                hint = f" — these bytes are the iterate of iteration(s) {elsewhere[:5]} (swapped or copied file?)" if elsewhere else " — the file's contents were changed"
                problems.append(f"its tensors hash to {_short(h)}, {source} says {_short(want)}{hint}")
            if meta.get("theta_sha256") != h:
                problems.append(f"its metadata says θ hash {_short(meta.get('theta_sha256'))}, the tensors hash to {_short(h)}")
            if meta.get("iteration") != str(it):
                problems.append(f"its metadata says iteration {meta.get('iteration')!r}, the file name says {it}")
            if meta.get("task") not in (None, self.task_name):
                problems.append(f"its metadata says task {meta.get('task')!r}, the run's task is {self.task_name!r}")
            ok = not problems
            self.add("checkpoint_hash", it, Level.EXACT, ok,
                     f"{rel}: SHA-256 of the tensor bytes equals {source} ({_short(h)})" if ok else f"{rel}: " + "; ".join(problems),
                     sha256=h, recorded=want)
            if not np.all(np.isfinite(self.thetas[it])):
                self.add("checkpoint_finite", it, Level.EXACT, False, f"{rel}: {int(np.sum(~np.isfinite(self.thetas[it])))} NaN/inf parameter(s)")

    # ---------------------------------------------------------------- base case and backup
    def check_base_case(self) -> None:
        if self.tensors0 is None:
            return  # θ₀ unreadable: already an input error
        wn, bn = self.names[-2], self.names[-1]
        W, b = self.tensors0[wn], self.tensors0[bn]
        nz = int(np.count_nonzero(W != 0) + np.count_nonzero(b != 0))  # NaN != 0 counts as non-zero
        finite = all(bool(np.all(np.isfinite(a))) for a in self.tensors0.values())
        ok = nz == 0 and finite
        with np.errstate(invalid="ignore"):
            mx = float(np.max(np.abs(np.concatenate([W.ravel(), b.ravel()]))))
        msg = (
            f"θ₀'s final layer ({wn} {list(W.shape)}, {bn} {list(b.shape)}) is exactly zero and every parameter is finite, "
            "so φ_θ0 ≡ 0 and π_θ0 = π_safe"
            if ok
            else f"θ₀'s final layer ({wn}, {bn}) has {nz} non-zero entr{'y' if nz == 1 else 'ies'} (max |entry| {mx:.3g})"
            + ("" if finite else " and θ₀ has NaN/inf parameters")
            + ": φ_θ0 is not identically zero, the induction has no base case"
        )
        self.add("base_case", 0, Level.EXACT, ok, msg, nonzero_entries=nz, max_abs_entry=mx, all_finite=finite)
        recorded = {c.get("name"): c for c in self.base.get("claims", []) if isinstance(c, dict)}
        rc = recorded.get("base_case")
        if rc is not None and bool(rc.get("holds")) != ok:
            self.add("base_case", 0, Level.EXACT, False,
                     f"base_certificate.json records base_case holds={rc.get('holds')}, the audit finds {ok}")

    def check_backup(self) -> None:
        from .tasks import DoubleIntegratorTask, RegressionTask

        task = self.task
        recorded = {c.get("name"): c for c in self.base.get("claims", []) if isinstance(c, dict)}
        if isinstance(task, RegressionTask):
            from .policies import ZeroBackup

            zero = isinstance(task.policy.backup, ZeroBackup)
            bound = float(task.config.bound)
            ok = zero and bound > 0
            self.add("backup_certificate", None, Level.EXACT, ok,
                     f"π_safe ≡ 0 and the constraint is |f(x)| ≤ {bound:g} with {bound:g} > 0: the backup satisfies every row by structure"
                     if ok else f"the regression backup is not π_safe ≡ 0 with a positive bound (bound {bound})")
            return
        if not isinstance(task, DoubleIntegratorTask):  # pragma: no cover - every built-in task is handled
            self.notes.append(f"task {self.task_name!r}: no backup certificate known to the audit")
            return
        import scipy.linalg

        from .certify import backup_certificate

        s = task.system
        A, B, Q, R = s.A, s.B, task.Q, task.R
        P = scipy.linalg.solve_discrete_are(A, B, Q, R)
        P = 0.5 * (P + P.T)
        K = -np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        rows = np.vstack([s.Hx, s.Hu @ K])
        bnd = np.concatenate([s.hx, s.hu])
        denom = np.einsum("pi,ip->p", rows, np.linalg.solve(P, rows.T))
        gamma = float(np.min(bnd**2 / denom)) * (1.0 - float(task.config.gamma_shrink))

        def rel(a: Any, b: Any) -> float:
            a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
            if a.shape != b.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
                return float("inf")
            return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))

        pol = self.config.get("policy", {})
        cmp = {
            "K (task vs fresh DARE)": rel(task.K, K),
            "P (task vs fresh DARE)": rel(task.P, P),
            "γ (task vs fresh closed form)": rel(task.gamma, gamma),
            "K (config.json vs fresh)": rel(pol.get("K", np.nan), K),
            "P (config.json vs fresh)": rel(pol.get("P", np.nan), P),
            "γ (config.json vs fresh)": rel(pol.get("gamma", np.nan), gamma),
        }
        bad = {k: v for k, v in cmp.items() if not v <= self.tol.lqr_rtol}
        self.add("backup_recomputed", None, Level.EVALUATED, not bad,
                 f"the backup gain K, the Lyapunov matrix P and γ agree with a fresh scipy DARE solve and the closed-form γ "
                 f"to relative {max(cmp.values()):.1e} (tolerance {self.tol.lqr_rtol:g})"
                 if not bad else "disagreement beyond relative " + f"{self.tol.lqr_rtol:g}: "
                 + ", ".join(f"{k} {v:.2e}" for k, v in bad.items()), **cmp)
        claims = backup_certificate(A, B, task.K, task.P, task.gamma, s.Hx, s.hx, s.Hu, s.hu, Q=Q, R=R)
        for c in claims:
            self.add(f"backup:{c.name}", None, Level.EXACT, c.holds,
                     f"re-checked in exact rational arithmetic: {c.statement}" + ("" if c.holds else " — DOES NOT HOLD"),
                     **{k: v for k, v in c.details.items() if k != "rows"})
            rc = recorded.get(c.name)
            if rc is not None and bool(rc.get("holds")) != c.holds:
                self.add(f"backup:{c.name}", None, Level.EXACT, False,
                         f"base_certificate.json records {c.name} holds={rc.get('holds')}, the exact re-check finds {c.holds}")
            elif rc is None:
                self.notes.append(f"base_certificate.json has no recorded {c.name} claim to compare with")

    # ---------------------------------------------------------------- records without checkpoints
    def check_recorded_constraints(self) -> None:
        bad = 0
        unaudited = 0
        for r in self.records:
            if not r["accepted"]:
                continue
            g = _number(r["max_constraint"])
            flagged = r.get("violation") is True
            if not g <= 0 or flagged:
                bad += 1
                self.add("recorded_constraint", r["iteration"], Level.EVALUATED, False,
                         f"accepted iterate with recorded max g = {g:.6g}" + (" (> 0 or NaN)" if not g <= 0 else "")
                         + (" and violation = true" if flagged else "") + ": an unsafe iterate was accepted")
            if r.get("checkpoint") is None:
                unaudited += 1
        if bad == 0:
            acc = sum(1 for r in self.records if r["accepted"])
            self.add("recorded_constraint", None, Level.EVALUATED, True,
                     f"all {acc} accepted records have a finite recorded max g ≤ 0 (as evaluated at training time)")
        if unaudited:
            self.notes.append(
                f"{unaudited} accepted iterate(s) have no checkpoint (checkpoint_every = {self.config['train'].get('checkpoint_every')}): "
                "their g is the recorded training-time evaluation, bound to the chain by hash but not re-evaluated"
            )

    # ---------------------------------------------------------------- re-evaluation
    def reevaluate(self, iterations: list[int]) -> None:
        task = self.task
        recorded_g = {0: _number(self.base.get("max_constraint"))}
        recorded_f: dict[int, float] = {}
        for r in self.records:
            recorded_g[r["iteration"]] = _number(r["max_constraint"])
            recorded_f[r["iteration"]] = _number(r.get("objective"))
        if self.records:
            recorded_f.setdefault(0, _number(self.records[0].get("objective_before")))
        its = [i for i in iterations if i in self.thetas and (i == 0 or i in self.by_it)]
        self.audited = its
        control = hasattr(task, "safety_states") and hasattr(task, "system")
        for start in range(0, len(its), self.chunk):
            block = its[start : start + self.chunk]
            thetas = np.stack([self.thetas[i] for i in block])
            g = np.asarray(task.constraints(thetas), dtype=float)
            for k, it in enumerate(block):
                self._check_g(it, g[k], recorded_g.get(it, float("nan")))
                if it in recorded_f and math.isfinite(recorded_f[it]):
                    f = float(task.objective(self.thetas[it]))
                    tol = self.tol.objective_rtol * max(1.0, abs(recorded_f[it]))
                    ok = math.isfinite(f) and abs(f - recorded_f[it]) <= tol
                    self.add("objective", it, Level.EVALUATED, ok,
                             f"re-evaluated f = {f:.10g} reproduces the recorded {recorded_f[it]:.10g}" if ok
                             else f"re-evaluated f = {f:.10g} differs from the recorded {recorded_f[it]:.10g} by {abs(f - recorded_f[it]):.3g} "
                             f"(tolerance {tol:.1g})", objective=f, recorded=recorded_f[it])
            if control:
                self._check_reach_avoid(block, thetas)

    def _check_g(self, it: int, g: np.ndarray, rec: float) -> None:
        finite = bool(np.all(np.isfinite(g))) and g.size > 0
        gmax = float(np.max(g)) if g.size else float("nan")
        tol = self.tol.g_atol + self.tol.g_rtol * abs(rec) if math.isfinite(rec) else float("nan")
        diff = abs(gmax - rec) if math.isfinite(rec) else float("inf")
        reproduced = finite and diff <= tol
        safe = finite and gmax <= 0
        src = "base_certificate.json" if it == 0 else "its record"
        if reproduced and safe:
            msg = f"re-evaluated max g = {gmax:.6g} ≤ 0 over {g.size} rows; reproduces {src} ({rec:.6g}) to {diff:.1e}"
        else:
            parts = []
            if not finite:
                parts.append(f"g has {int(np.sum(~np.isfinite(g)))} NaN/inf row(s)")
            if finite and not safe:
                parts.append(f"re-evaluated max g = {gmax:.6g} > 0: constraint row {int(np.argmax(g))} is violated")
            if not reproduced:
                parts.append(
                    f"re-evaluated max g = {gmax:.10g} differs from {src}'s max_constraint {rec:.10g} by {diff:.3g} "
                    f"(tolerance {self.tol.g_atol:g} + {self.tol.g_rtol:g}·|recorded|)"
                )
            msg = "; ".join(parts)
        self.add("constraints", it, Level.EVALUATED, reproduced and safe, msg, max_constraint=gmax, recorded=rec,
                 difference=diff, rows=int(g.size))

    def _check_reach_avoid(self, block: list[int], thetas: np.ndarray) -> None:
        from .certify.reach_avoid import reach_avoid_claim

        task = self.task
        s = task.system
        x0 = np.asarray(task.safety_states, dtype=float)
        states, inputs = _closed_loop(self, thetas, x0, int(task.config.horizon))
        for k, it in enumerate(block):
            c = reach_avoid_claim(x0, states[k], inputs[k], s.Hx, s.hx, s.Hu, s.hu, task.P, task.gamma, iteration=it)
            d = c.details
            msg = (
                f"all {d['grid_states']} grid states of S reach X_f within T = {d['horizon']} steps inside the constraints "
                f"(worst margin {d['worst_margin']:.3g}; the audit's own closed loop from the checkpoint tensors)"
                if c.holds
                else f"{d['failing_states']} of {d['grid_states']} grid states of S fail reach-avoid (worst margin "
                f"{d['worst_margin']:.3g}; e.g. x0 = {d['failing_examples'][0]['x0'] if d['failing_examples'] else '?'})"
            )
            self.add("reach_avoid", it, Level.EVALUATED, c.holds, msg, worst_margin=d["worst_margin"],
                     failing_states=d["failing_states"], grid_states=d["grid_states"])

    # ---------------------------------------------------------------- other certificate files
    def check_certificate_files(self) -> None:
        cdir = self.root / "certificates"
        if not cdir.is_dir():
            return
        chain = {0: self.base["theta_sha256"], **{r["iteration"]: r["theta_sha256"] for r in self.records}}
        for p in sorted(cdir.glob("*.json")):
            if p.name == "final.json":
                continue  # compared with the last record in check_chain
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                self.errors.append(f"certificates/{p.name} is not valid JSON ({exc})")
                continue
            if not isinstance(data, dict):
                self.errors.append(f"certificates/{p.name}: expected a JSON object")
                continue
            it, h = data.get("iteration"), data.get("theta_sha256")
            if not isinstance(it, int) or isinstance(it, bool) or not isinstance(h, str):
                self.notes.append(f"certificates/{p.name} names no iteration and θ hash; its claims are not bound to the chain")
                continue
            ok = chain.get(it) == h
            self.add("certificate_binding", it, Level.EXACT, ok,
                     f"certificates/{p.name} certifies θ {_short(h)}, the chain's iterate of iteration {it}" if ok
                     else f"certificates/{p.name} certifies θ {_short(h)} at iteration {it}, but the chain's iterate there is "
                     f"{_short(chain.get(it)) if it in chain else 'absent'}: the certificate is about another θ")


def _closed_loop(aud: _Auditor, thetas: np.ndarray, x0: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
    """Roll ``x⁺ = Ax + B(Kx + m(x)·φ_θ(x))`` out for ``B`` parameter rows from ``S`` states.

    The audit's own implementation (it does not call the task's rollout or policy code):
    ``φ_θ`` is evaluated from the flat vectors split by the shapes in ``config.json`` (``W``
    then ``b`` per layer, ``h ← σ(h Wᵀ + b)``) with the activation named in the task config, in
    float64 batched matrix products; ``m(x)`` is the switching mask ``xᵀP_s x > γ_s`` when the
    policy switches, else 1. NaN/inf propagate (and fail the reach-avoid claim).

    Returns
    -------
    states : ndarray, shape (B, S, T+1, n)
    inputs : ndarray, shape (B, S, T, m)
    """
    import torch

    task = aud.task
    f64 = torch.float64
    A = torch.tensor(np.array(task.system.A, dtype=float), dtype=f64)
    Bm = torch.tensor(np.array(task.system.B, dtype=float), dtype=f64)
    K = torch.tensor(np.array(task.K, dtype=float), dtype=f64)
    th = torch.tensor(np.array(thetas, dtype=float), dtype=f64)
    nb = th.shape[0]
    layers, k = [], 0
    for wn, bn in zip(aud.names[0::2], aud.names[1::2]):
        o, i = aud.shapes[wn]
        W = th[:, k : k + o * i].reshape(nb, o, i)
        k += o * i
        b = th[:, k : k + o]
        k += o
        layers.append((W.transpose(1, 2).contiguous(), b[:, None, :].contiguous()))
    act = {"tanh": torch.tanh, "relu": torch.relu}[task.config.activation]
    pol = task.policy
    sw = None
    if getattr(pol, "switch_P", None) is not None:
        sw = (torch.tensor(np.array(pol.switch_P.detach().cpu().numpy(), dtype=float), dtype=f64), float(pol.switch_level))
    x = torch.tensor(np.array(x0, dtype=float), dtype=f64).unsqueeze(0).expand(nb, -1, -1).contiguous()
    states = torch.empty((nb, x.shape[1], T + 1, x.shape[2]), dtype=f64)
    inputs = torch.empty((nb, x.shape[1], T, Bm.shape[1]), dtype=f64)
    states[:, :, 0] = x
    with torch.no_grad():
        for t in range(T):
            h = x
            for j, (Wt, b) in enumerate(layers):
                h = torch.baddbmm(b, h, Wt)
                if j < len(layers) - 1:
                    h = act(h)
            if sw is not None:
                h = h * (torch.einsum("bsi,ij,bsj->bs", x, sw[0], x) > sw[1]).to(f64).unsqueeze(-1)
            u = x @ K.T + h
            x = x @ A.T + u @ Bm.T
            inputs[:, :, t] = u
            states[:, :, t + 1] = x
    return states.numpy(), inputs.numpy()


def audit(
    run: str | Path,
    *,
    iterations: str | Sequence[int] | None = None,
    tolerances: AuditTolerances | None = None,
    chunk: int = 64,
) -> AuditResult:
    """Re-verify the certificate chain of the run directory ``run`` from its files alone.

    Parameters
    ----------
    run : str or Path
        A run directory written by ``scpo train`` (or by anyone: nothing in it is trusted).
    iterations : str or sequence of int, optional
        Checkpoints at which ``g`` (and, for the double integrator, reach-avoid) are re-evaluated;
        see :func:`parse_iterations`. Default: every saved checkpoint.
    tolerances : AuditTolerances, optional
    chunk : int
        Checkpoints evaluated per batch of ``task.constraints``.

    Returns
    -------
    AuditResult
        ``exit_code`` 0 when every check passed, 1 when any failed, 2 on bad input; the checks
        are listed with their level, iteration and message.

    Raises
    ------
    InvalidInputError
        Only for a malformed ``iterations`` or ``tolerances`` argument; problems of the run
        directory are reported in the result (``input_errors``), never raised.
    """
    from . import __version__

    t0 = time.perf_counter()
    tol = tolerances if tolerances is not None else AuditTolerances()
    if not isinstance(tol, AuditTolerances):
        raise InvalidInputError(f"tolerances: expected AuditTolerances, got {type(tol).__name__}")
    chunk = check_int("chunk", chunk, minimum=1)
    aud = _Auditor(Path(run), tol, chunk)
    try:
        aud.load()
        aud.read_checkpoints()
        selected = parse_iterations(iterations, sorted(aud.files))
        aud.check_chain()
        aud.check_hashes()
        aud.check_base_case()
        aud.check_backup()
        aud.check_recorded_constraints()
        aud.reevaluate(selected)
        aud.check_certificate_files()
    except _BadInput as exc:
        aud.errors.append(str(exc))
    unread = [it for it in getattr(aud, "files", {}) if it not in getattr(aud, "thetas", {})]
    if unread:
        aud.notes.append(f"checkpoint(s) {unread[:10]} could not be read and were not audited")
    return AuditResult(
        run=str(run),
        task=aud.task_name,
        checks=tuple(aud.checks),
        input_errors=tuple(dict.fromkeys(aud.errors)),
        audited_iterations=tuple(aud.audited),
        tolerances=tol,
        notes=tuple(aud.notes),
        scpo_version=__version__,
        wall_time_s=time.perf_counter() - t0,
    )
