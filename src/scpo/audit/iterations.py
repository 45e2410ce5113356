"""Which checkpoints an audit re-evaluates: ``"0,10-20,100-1000:50,last"`` and the like."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validate import check_int
from ..errors import InvalidInputError

__all__ = ["parse_iterations"]


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
