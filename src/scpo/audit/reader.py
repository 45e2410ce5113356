"""The audit's own readers of a run directory: safetensors, ``config.json``, the records.

Independent of :mod:`scpo.runs.files` and of the :class:`~scpo.runs.Run` reader (only the file
*names* come from :class:`~scpo.runs.RunPaths`). A checkpoint is parsed with ``json`` and
``numpy.frombuffer`` only: an unsigned 64-bit little-endian header length ``n``, ``n`` bytes of
JSON, then the raw little-endian buffers. Nothing is ever unpickled; a pickle or a ``torch.save``
archive in place of a checkpoint is reported as bad input.

A problem the audit cannot go past (a missing ``config.json``, an unknown schema) is raised as
:class:`~scpo.errors.RunDirectoryError` and ends the audit with that input error; anything
else is appended to the findings and the audit goes on.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError, RunDirectoryError
from ..runs import RunPaths
from .result import Findings

__all__ = [
    "CHECKPOINT_FORMAT",
    "SUPPORTED_SCHEMA_VERSIONS",
    "Checkpoints",
    "RunFiles",
    "read_checkpoints",
    "read_records",
    "read_run_files",
    "read_safetensors",
    "recorded_number",
    "short_hash",
    "outside_run",
    "check_inside",
    "run_status",
]

SUPPORTED_SCHEMA_VERSIONS = (1,)
"""Run-directory schema versions this audit understands."""

CHECKPOINT_FORMAT = "scpo.checkpoint"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MAX_HEADER = 100_000_000
_MAX_FILE = 2**31  # a residual MLP's float64 parameters are far smaller
_RECORD_FIELDS = {"iteration": int, "accepted": bool, "theta_sha256": str, "parent_sha256": str, "max_constraint": object}


# ---------------------------------------------------------------------------------------------
# small helpers


def short_hash(h: Any) -> str:
    """The first 12 hex digits of a hash and an ellipsis (``repr`` of anything that is not a string).

    Parameters
    ----------
    h : str or any
    """
    return f"{h[:12]}…" if isinstance(h, str) else repr(h)


def recorded_number(value: Any) -> float:
    """A recorded float: numbers as they are, the strings ``'nan'``/``'inf'``/``'-inf'`` that strict
    JSON needs, NaN for anything else (a bool, a missing value).

    Parameters
    ----------
    value : any
        A value read from JSON.

    Returns
    -------
    float
    """
    if isinstance(value, bool):
        return float("nan")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return float("nan")


def _sniff(head: bytes) -> str:
    if head[:1] == b"\x80":
        return "it starts with the pickle protocol opcode 0x80: a Python pickle (scpo never unpickles checkpoints)"
    if head[:4] == b"PK\x03\x04":
        return "it is a zip archive (torch.save's format, which holds a pickle; scpo never unpickles checkpoints)"
    if head[:1] in (b"(", b"}", b"]") and b"." in head:
        return "it looks like a Python pickle (protocol 0-1; scpo never unpickles checkpoints)"
    return "its first 8 bytes are not a plausible safetensors header length"


# ---------------------------------------------------------------------------------------------
# safetensors


def _safetensors_header(path: Path, data: bytes) -> tuple[dict[str, Any], dict[str, str], int]:
    """The tensor entries, the metadata and the header length of a safetensors file's bytes."""
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
    return header, dict(meta), n


def _tensor_span(path: Path, name: str, spec: Any, size: int) -> tuple[list[int], int, int]:
    """Shape and byte span of one F64 tensor entry, validated against a buffer of ``size`` bytes."""
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
    if not 0 <= begin <= end <= size or end - begin != 8 * count:
        raise InvalidInputError(f"{path}: tensor {name!r}: data_offsets {offs} do not hold {count} float64 values inside the {size}-byte buffer")
    return shape, begin, end


def read_safetensors(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, bytes]]:
    """Parse a safetensors file with ``json`` and ``numpy.frombuffer`` only (never unpickles).

    Format: an unsigned 64-bit little-endian header length ``n``, ``n`` bytes of JSON mapping each
    tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into the byte
    buffer that follows) plus an optional ``"__metadata__"`` of strings.

    Parameters
    ----------
    path : str or Path
        The file (at most 2 GiB; a larger one is refused before it is read).

    Returns
    -------
    tensors : dict of name -> ndarray
        Float64 arrays of the stored shapes (only ``F64`` tensors are accepted: scpo writes float64).
    metadata : dict of str -> str
    raw : dict of name -> bytes
        Each tensor's bytes exactly as stored (hashed by the audit).

    Raises
    ------
    InvalidInputError
        Missing file, not safetensors (e.g. a pickle, which is never loaded), a malformed
        header, a dtype other than ``F64``, or offsets outside the buffer or overlapping.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: expected a safetensors checkpoint, found no file")
    size = path.stat().st_size
    if size > _MAX_FILE:
        raise InvalidInputError(f"{path}: {size} bytes, more than the {_MAX_FILE} bytes a checkpoint of this toolkit may have")
    data = path.read_bytes()
    header, meta, n = _safetensors_header(path, data)
    buf = memoryview(data)[8 + n :]
    tensors: dict[str, np.ndarray] = {}
    raw: dict[str, bytes] = {}
    spans = []
    for name, spec in header.items():
        shape, begin, end = _tensor_span(path, name, spec, len(buf))
        spans.append((begin, end, name))
        raw[name] = bytes(buf[begin:end])
        tensors[name] = np.frombuffer(raw[name], dtype="<f8").reshape(shape).astype(np.float64)
    spans.sort()
    for (_b0, e0, n0), (b1, _e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise InvalidInputError(f"{path}: tensors {n0!r} and {n1!r} overlap in the data buffer")
    return tensors, meta, raw


# ---------------------------------------------------------------------------------------------
# JSON files and records


def outside_run(root: Path, path: Path) -> str | None:
    """Where ``path`` really leads when that is outside the run directory ``root`` (a symbolic
    link out of the run, or through a linked folder), else None.

    Parameters
    ----------
    root : Path
        The run directory.
    path : Path
        A file of the run.

    Returns
    -------
    str or None
    """
    try:
        target = path.resolve()
        target.relative_to(root.resolve())
    except ValueError:
        return str(target)
    except OSError:  # a symlink loop
        return f"{path} (a symbolic link loop)"
    return None


def check_inside(root: Path, path: Path, what: str) -> None:
    """Refuse a file of the run that leads outside it (the audit reads only the run's own files).

    Parameters
    ----------
    root : Path
    path : Path
    what : str
        The file's name for the message.

    Raises
    ------
    RunDirectoryError
        ``path`` leads outside ``root``.
    """
    target = outside_run(root, path)
    if target is not None:
        raise RunDirectoryError(f"{what} leads outside the run directory (to {target!r}, a symbolic link?); the audit reads "
                                "only files inside the run, so a run cannot borrow files it does not contain")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise RunDirectoryError(f"{what} is missing ({path})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirectoryError(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RunDirectoryError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def _check_schema(data: dict[str, Any], what: str) -> None:
    v = data.get("schema_version")
    if v not in SUPPORTED_SCHEMA_VERSIONS:
        raise RunDirectoryError(f"{what}: schema_version {v!r} is not one this audit knows ({list(SUPPORTED_SCHEMA_VERSIONS)})")


def _record_problem(i: int, rec: Any) -> str | None:
    """Why line ``i`` is not a well-formed record (None when it is one)."""
    if not isinstance(rec, dict):
        return f"certificates.jsonl line {i}: expected a JSON object, got {type(rec).__name__}"
    if rec.get("schema_version") not in SUPPORTED_SCHEMA_VERSIONS:
        return (f"certificates.jsonl line {i}: schema_version {rec.get('schema_version')!r} is not one this audit knows "
                f"({list(SUPPORTED_SCHEMA_VERSIONS)})")
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
        return f"certificates.jsonl line {i}: missing or malformed field(s) {sorted(set(bad))}"
    return None


def run_status(paths: RunPaths) -> str | None:
    """The ``status`` word of ``run.json`` (``None`` when missing or unreadable).

    Parameters
    ----------
    paths : RunPaths
    """
    try:
        st = json.loads(paths.status.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return st.get("status") if isinstance(st, dict) and isinstance(st.get("status"), str) else None


def read_records(path: Path, findings: Findings, *, crashed: bool = False) -> list[dict[str, Any]]:
    """Complete, well-formed records of ``certificates.jsonl`` up to the first bad line.

    Parameters
    ----------
    path : Path
        ``certificates.jsonl``.
    findings : Findings
        The first bad line (incomplete, not JSON, an unknown schema, a malformed field) is
        recorded there as bad input.
    crashed : bool
        The run did not finish (``run.json`` is not ``"finished"``): an incomplete *last* line is
        what a crash mid-append leaves, noted instead of bad input (a resume cuts it off).

    Returns
    -------
    list of dict
        The records in file order, each with its 1-based line number under ``"_line"``.

    Raises
    ------
    RunDirectoryError
        The file is missing.
    """
    if not path.is_file():
        raise RunDirectoryError(f"certificates.jsonl is missing ({path})")
    lines = path.read_bytes().split(b"\n")
    records: list[dict[str, Any]] = []
    for i, raw in enumerate(lines, start=1):
        if i == len(lines):
            if raw != b"" and crashed:
                findings.note(f"certificates.jsonl line {i} is incomplete ({len(raw)} bytes without a newline): what a crash "
                              "mid-append leaves in an unfinished run; not audited (a resume cuts it off)")
            elif raw != b"":
                findings.error(
                    f"certificates.jsonl line {i} is incomplete (the file ends mid-line without a newline: truncated?); "
                    f"{len(records)} complete record(s) before it"
                )
            break
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            findings.error(f"certificates.jsonl line {i} is not valid JSON ({exc}); the audit stops reading there")
            break
        problem = _record_problem(i, rec)
        if problem is not None:
            findings.error(problem)
            break
        rec["_line"] = i
        records.append(rec)
    return records


# ---------------------------------------------------------------------------------------------
# the run's files


@dataclass
class RunFiles:
    """The files of a run as the audit read them (before any checkpoint).

    Attributes
    ----------
    paths : RunPaths
        Where the files are.
    config : dict
        ``config.json``.
    names : list of str
        ``policy.parameter_names``: the tensors that make ``θ``, in order.
    shapes : dict of str -> tuple of int
        ``policy.parameter_shapes``.
    base : dict
        ``base_certificate.json``.
    records : list of dict
        The complete, well-formed records (see :func:`read_records`).
    """

    paths: RunPaths
    config: dict[str, Any]
    names: list[str]
    shapes: dict[str, tuple[int, ...]]
    base: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def root(self) -> Path:
        """The run directory."""
        return self.paths.root

    @property
    def task_name(self) -> str:
        """The task named in ``config.json``."""
        return str(self.config.get("task"))

    def relative(self, path: Path) -> str:
        """``path`` relative to the run directory, with ``/`` separators.

        Parameters
        ----------
        path : Path
        """
        return path.relative_to(self.root).as_posix()

    def recorded_claims(self) -> dict[str, dict[str, Any]]:
        """The claims of ``base_certificate.json`` by name."""
        return {c.get("name"): c for c in self.base.get("claims", []) if isinstance(c, dict)}


def _policy_layout(cfg: dict[str, Any]) -> tuple[list[str], dict[str, tuple[int, ...]]]:
    pol, train = cfg.get("policy"), cfg.get("train")
    if not isinstance(pol, dict) or not isinstance(train, dict) or not isinstance(cfg.get("task_config"), dict):
        raise RunDirectoryError("config.json: expected objects 'policy', 'train' and 'task_config'")
    names, shapes, final = pol.get("parameter_names"), pol.get("parameter_shapes"), pol.get("final_layer")
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise RunDirectoryError("config.json: policy.parameter_names must be a non-empty list of tensor names")
    if not (isinstance(shapes, dict) and set(shapes) == set(names)):
        raise RunDirectoryError("config.json: policy.parameter_shapes must give the shape of every name in parameter_names")
    if not (isinstance(final, list) and len(final) == 2 and final == names[-2:]):
        raise RunDirectoryError(f"config.json: policy.final_layer {final!r} is not the last (weight, bias) pair of parameter_names {names[-2:]}")
    seed = train.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RunDirectoryError(f"config.json: train.seed must be an integer, got {seed!r}")
    return names, {n: tuple(shapes[n]) for n in names}


def _unknown_keys(cfg: dict[str, Any]) -> None:
    """Every key of ``config.json`` and of its settings sections is one ``scpo train`` writes.

    A key nobody reads could carry a claim the audit never checks; it is refused. The known keys
    are the fields of the settings' own dataclasses (a schema; no training code runs).
    """
    import dataclasses

    from ..projector import ProjectorConfig
    from ..runs.integrity import CONFIG_KEYS
    from ..training.config import GateSettings, TrainConfig

    unknown = sorted(set(cfg) - set(CONFIG_KEYS))
    if unknown:
        raise RunDirectoryError(f"config.json: unknown key(s) {', '.join(map(repr, unknown))}; scpo writes only {', '.join(CONFIG_KEYS)}")
    for section, cls in (("projector", ProjectorConfig), ("train", TrainConfig), ("gate", GateSettings)):
        data = cfg.get(section, {})
        if not isinstance(data, dict):
            raise RunDirectoryError(f"config.json: section {section!r} must be a JSON object, got a JSON {type(data).__name__}")
        extra = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if extra:
            raise RunDirectoryError(f"config.json: unknown key(s) {', '.join(map(repr, extra))} in section {section!r} "
                                    f"(not a setting of {cls.__name__})")


def read_run_files(root: Path) -> RunFiles:
    """Read and check ``config.json`` (without building the task) and ``base_certificate.json``.

    Parameters
    ----------
    root : Path
        The run directory.

    Returns
    -------
    RunFiles
        With ``records`` still empty (see :func:`read_records`).

    Raises
    ------
    RunDirectoryError
        No directory, a missing or malformed ``config.json`` or ``base_certificate.json``, an
        unknown schema, a policy layout that is not a list of (weight, bias) pairs.
    """
    paths = RunPaths(root)
    if not paths.root.is_dir():
        raise RunDirectoryError(f"run {str(paths.root)!r}: expected a run directory, found none")
    for p, what in ((paths.config, "config.json"), (paths.base_certificate, "base_certificate.json"),
                    (paths.records, "certificates.jsonl"), (paths.status, "run.json")):
        if p.exists() or p.is_symlink():
            check_inside(paths.root, p, what)
    cfg = _read_json(paths.config, "config.json")
    _check_schema(cfg, "config.json")
    if not isinstance(cfg.get("task"), str):
        raise RunDirectoryError(f"config.json: expected a task name, got {cfg.get('task')!r}")
    _unknown_keys(cfg)
    names, shapes = _policy_layout(cfg)
    base = _read_json(paths.base_certificate, "base_certificate.json")
    _check_schema(base, "base_certificate.json")
    if not isinstance(base.get("theta_sha256"), str) or not _HEX64.match(base["theta_sha256"]):
        raise RunDirectoryError("base_certificate.json: theta_sha256 must be a 64-digit hex SHA-256")
    return RunFiles(paths=paths, config=cfg, names=names, shapes=shapes, base=base)


# ---------------------------------------------------------------------------------------------
# checkpoints


@dataclass
class Checkpoints:
    """Every readable checkpoint of the run, with the hash recomputed from its tensor bytes.

    Attributes
    ----------
    names : list of str
        Tensor order of the flat ``θ``.
    files : dict of int -> Path
        Every file named ``theta_NNNNNN.safetensors``, readable or not.
    tensors : dict of int -> dict of str -> ndarray
        The tensors of each readable checkpoint of this run's layout.
    hashes : dict of int -> str
        SHA-256 of the stored little-endian float64 bytes of the tensors in ``names`` order.
    meta : dict of int -> dict of str -> str
        The safetensors metadata of each readable checkpoint.
    """

    names: list[str]
    files: dict[int, Path] = field(default_factory=dict)
    tensors: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    hashes: dict[int, str] = field(default_factory=dict)
    meta: dict[int, dict[str, str]] = field(default_factory=dict)

    def theta(self, iteration: int) -> np.ndarray:
        """The flat parameters of a read checkpoint: the tensors in ``names`` order, shape (d,).

        Parameters
        ----------
        iteration : int
        """
        t = self.tensors[iteration]
        return np.concatenate([t[n].ravel() for n in self.names])

    def unread(self) -> list[int]:
        """Iterations whose file exists but could not be read as a checkpoint of this run."""
        return [it for it in self.files if it not in self.tensors]


def _checkpoint_files(files: RunFiles, findings: Findings) -> dict[int, Path]:
    out: dict[int, Path] = {}
    folder = files.paths.checkpoints
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            m = RunPaths.CHECKPOINT_PATTERN.match(p.name)
            if m:
                out[int(m.group(1))] = p
            elif not p.name.startswith("."):
                findings.note(f"{files.relative(p)}: not named theta_NNNNNN.safetensors; ignored")
    return out


def read_checkpoints(files: RunFiles, findings: Findings) -> Checkpoints:
    """Parse every checkpoint file and recompute its hash from the tensor bytes.

    Parameters
    ----------
    files : RunFiles
        The run (its ``names`` and ``shapes`` say which tensors a checkpoint must hold).
    findings : Findings
        Unreadable files, foreign metadata and other layouts are recorded as bad input; files
        in ``checkpoints/`` with other names as notes.

    Returns
    -------
    Checkpoints

    Raises
    ------
    RunDirectoryError
        ``θ₀``'s checkpoint is missing (the induction has no base case to check).
    """
    out = Checkpoints(names=files.names, files=_checkpoint_files(files, findings))
    if 0 not in out.files:
        raise RunDirectoryError(f"{files.relative(files.paths.checkpoint(0))} (θ₀) is missing: the induction has no base case to check")
    known = {str(v) for v in SUPPORTED_SCHEMA_VERSIONS}
    for it, p in out.files.items():
        rel = files.relative(p)
        target = outside_run(files.root, p)
        if target is not None:
            findings.error(f"{rel} leads outside the run directory (to {target!r}); not read")
            continue
        try:
            tensors, meta, raw = read_safetensors(p)
        except InvalidInputError as exc:
            findings.error(str(exc).replace(str(p), rel))
            continue
        if meta.get("format") != CHECKPOINT_FORMAT or meta.get("schema_version") not in known:
            findings.error(f"{rel}: metadata format {meta.get('format')!r}, schema_version {meta.get('schema_version')!r}: "
                           f"not an scpo checkpoint of a schema this audit knows")
            continue
        layout = {n: tuple(a.shape) for n, a in tensors.items()}
        if layout != files.shapes:
            findings.error(f"{rel}: holds tensors {layout}, expected this run's parameters {files.shapes}")
            continue
        h = hashlib.sha256()
        for n in files.names:
            h.update(raw[n])  # the stored little-endian float64 bytes, in parameter_names order
        out.hashes[it] = h.hexdigest()
        out.tensors[it] = tensors
        out.meta[it] = meta
    return out
