"""The head digest of a run's chain, and pinning it (``scpo audit --expect-head``).

A run directory alone cannot show that it is *complete*: a consistent prefix of a chain (the
last records, checkpoints and ``run.json`` removed together) is itself a valid chain. The head
digest lets a reader pin what they saw. It is a hash chain over the run's identity and every
record's bytes::

    h_0 = SHA-256("scpo-chain-1\\n" ‖ canonical JSON of config.json without train.iterations ‖ "\\n"
                  ‖ the bytes of base_certificate.json)
    h_k = SHA-256(h_{k−1} ‖ the bytes of line k of certificates.jsonl)      (k = 1 … n)

and the head is ``h_n``. ``train.iterations`` is left out because a resume may raise the target;
everything else a resume leaves untouched, so the head of iteration ``k`` never changes when a
run goes on. ``--expect-head D`` passes when ``D`` is the head (the chain is exactly the pinned
one) or the head of an earlier iteration (the pinned chain, continued); it fails when ``D`` is
no head of this chain (records rewritten, removed or reordered, the configuration or ``θ₀``'s
certificate changed).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ..errors import InvalidInputError
from ..evidence import Level
from .reader import RunFiles
from .result import Findings

__all__ = ["chain_heads", "check_expected_head", "parse_expected_head"]

_PREFIX = b"scpo-chain-1\n"
_HEX = re.compile(r"^[0-9a-f]{16,64}$")


def _identity(cfg: dict[str, Any]) -> bytes:
    ident = {k: v for k, v in cfg.items() if k != "train"}
    ident["train"] = {k: v for k, v in cfg.get("train", {}).items() if k != "iterations"}
    return json.dumps(ident, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def chain_heads(files: RunFiles) -> list[str]:
    """``[h_0, h_1, …, h_n]`` over the well-formed records (see the module docstring).

    Parameters
    ----------
    files : RunFiles
        With ``records`` read (their ``_line`` numbers are lines ``1 … n``).

    Returns
    -------
    list of str
        64 hexadecimal digits each; ``h_n`` is the head.
    """
    h = hashlib.sha256(_PREFIX + _identity(files.config) + b"\n" + files.paths.base_certificate.read_bytes()).digest()
    heads = [h.hex()]
    lines = files.paths.records.read_bytes().split(b"\n") if files.records else []
    for rec in files.records:
        h = hashlib.sha256(h + lines[rec["_line"] - 1]).digest()
        heads.append(h.hex())
    return heads


def parse_expected_head(value: str | None) -> str | None:
    """Check an ``--expect-head`` value: 16 to 64 lowercase hex digits (a prefix of the head).

    Parameters
    ----------
    value : str or None

    Returns
    -------
    str or None

    Raises
    ------
    InvalidInputError
        Anything else.
    """
    if value is None:
        return None
    v = value.strip().lower()
    if not isinstance(value, str) or not _HEX.match(v):
        raise InvalidInputError(f"expect_head: expected 16 to 64 hexadecimal digits (a head digest printed by scpo audit), got {value!r}")
    return v


def check_expected_head(heads: list[str], expected: str, findings: Findings) -> None:
    """The pinned head must be the chain's head or the head of one of its earlier iterations.

    Parameters
    ----------
    heads : list of str
        From :func:`chain_heads`.
    expected : str
        From :func:`parse_expected_head`.
    findings : Findings
        Receives one ``pinned_head`` check (``exact``).
    """
    n = len(heads) - 1
    at = [k for k, h in enumerate(heads) if h.startswith(expected)]
    if at and at[-1] == n:
        findings.add("pinned_head", n, Level.EXACT, True, f"the chain's head at iteration {n} is the pinned {expected[:16]}…")
    elif at:
        findings.add("pinned_head", at[-1], Level.EXACT, True,
                     f"the pinned head {expected[:16]}… is the head at iteration {at[-1]}; the chain continues it by {n - at[-1]} record(s)")
    else:
        findings.add("pinned_head", None, Level.EXACT, False,
                     f"the pinned head {expected[:16]}… is the head of no iteration 0…{n} of this chain: records were removed, rewritten "
                     "or reordered, or config.json or base_certificate.json changed since it was pinned")
