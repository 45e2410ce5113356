"""Reading a run directory (DESIGN §8): ``scpo.load_run(RUN)``."""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from .._validate import check_int, read_json_object
from ..errors import RunDirectoryError
from .files import flatten_tensors, read_checkpoint, read_records, theta_sha256
from .integrity import check_config

__all__ = ["Run", "load_run", "RunPaths"]


class RunPaths:
    """Where each file of a run directory lives: the only place that spells their names.

    Parameters
    ----------
    root : str or Path
        The run directory.
    """

    CHECKPOINT_PATTERN = re.compile(r"^theta_(\d{6,})\.safetensors$")
    STATE_PATTERN = re.compile(r"^projector_(\d{6,})\.safetensors$")
    REGION_PATTERN = re.compile(r"^region_iter_(\d{6,})\.json$")

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.config = self.root / "config.json"
        self.status = self.root / "run.json"
        self.records = self.root / "certificates.jsonl"
        self.base_certificate = self.root / "base_certificate.json"
        self.checkpoints = self.root / "checkpoints"
        self.state = self.root / "state"
        self.bank = self.state / "bank.safetensors"
        self.figures = self.root / "figures"
        self.certificates = self.root / "certificates"
        self.final_certificate = self.certificates / "final.json"
        self.report = self.root / "report"
        self.lock = self.root / ".lock"

    def checkpoint(self, iteration: int) -> Path:
        """``checkpoints/theta_NNNNNN.safetensors``.

        Parameters
        ----------
        iteration : int

        Returns
        -------
        Path
        """
        return self.checkpoints / f"theta_{iteration:06d}.safetensors"

    def state_file(self, iteration: int) -> Path:
        """``state/projector_NNNNNN.safetensors`` (the resumable projector state after ``iteration``).

        Parameters
        ----------
        iteration : int

        Returns
        -------
        Path
        """
        return self.state / f"projector_{iteration:06d}.safetensors"

    def state_files(self) -> dict[int, Path]:
        """Saved projector states by iteration, oldest first."""
        return self._numbered(self.state, self.STATE_PATTERN)

    def region_certificate(self, iteration: int) -> Path:
        """``certificates/region_iter_NNNNNN.json`` (the sound region certificate of ``θ_iteration``).

        Parameters
        ----------
        iteration : int

        Returns
        -------
        Path
        """
        return self.certificates / f"region_iter_{iteration:06d}.json"

    def region_recertificate(self, iteration: int) -> Path:
        """``certificates/region_iter_NNNNNN.recertified.json``: ``scpo certify``'s certificate of an iterate
        whose chain already names ``region_iter_NNNNNN.json`` (that file is evidence of the chain and is
        never overwritten).

        Parameters
        ----------
        iteration : int

        Returns
        -------
        Path
        """
        return self.certificates / f"region_iter_{iteration:06d}.recertified.json"

    def region_certificates(self) -> dict[int, Path]:
        """Saved region certificates by iteration."""
        return self._numbered(self.certificates, self.REGION_PATTERN)

    def gridcells_certificate(self, iteration: int) -> Path:
        """``certificates/gridcells_iter_NNNNNN.json`` (the legacy grid-cell cover of ``scpo certify --cover grid-cells``).

        Parameters
        ----------
        iteration : int

        Returns
        -------
        Path
        """
        return self.certificates / f"gridcells_iter_{iteration:06d}.json"

    def lipschitz_certificate(self, iteration: int) -> Path:
        """``certificates/lipschitz_iter_NNNNNN.json`` (the smoothness verdicts at ``θ_iteration``).

        Parameters
        ----------
        iteration : int

        Returns
        -------
        Path
        """
        return self.certificates / f"lipschitz_iter_{iteration:06d}.json"

    def region_figure(self, iteration: int) -> Path:
        """``figures/region_iter_NNNNNN.png``.

        Parameters
        ----------
        iteration : int

        Returns
        -------
        Path
        """
        return self.figures / f"region_iter_{iteration:06d}.png"

    def checkpoint_files(self) -> dict[int, Path]:
        """Saved checkpoints by iteration."""
        return self._numbered(self.checkpoints, self.CHECKPOINT_PATTERN)

    @staticmethod
    def _numbered(folder: Path, pattern: re.Pattern) -> dict[int, Path]:
        out: dict[int, Path] = {}
        if folder.is_dir():
            for p in folder.iterdir():
                m = pattern.match(p.name)
                if m:
                    out[int(m.group(1))] = p
        return dict(sorted(out.items()))


class Run:
    """A training run on disk.

    Attributes
    ----------
    path : Path
    config : dict
        The resolved configuration (``config.json``).
    records : list of dict
        The per-iteration certificate records (``certificates.jsonl``), complete lines only.
    """

    def __init__(self, path: str | Path) -> None:
        self.paths = RunPaths(path)
        self.path = self.paths.root
        if not self.path.is_dir():
            raise RunDirectoryError(f"run {str(self.path)!r}: expected a run directory, found none")
        if not self.paths.config.is_file():
            raise RunDirectoryError(f"run {str(self.path)!r}: config.json is missing (not an scpo run directory?)")
        where = f"run {str(self.path)!r}: config.json"
        self.config: dict[str, Any] = check_config(read_json_object(self.paths.config, where, RunDirectoryError), where)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, task={self.task_name!r}, iterations={len(self.records)})"

    @property
    def task_name(self) -> str:
        return str(self.config["task"])

    @cached_property
    def records(self) -> list[dict[str, Any]]:
        """The complete records; a torn last line (a crash mid-append) is left out.

        Raises
        ------
        RunDirectoryError
            A complete line that is not a UTF-8 JSON object (damage, not a crash).
        """
        if not self.paths.records.is_file():
            return []
        records, _torn = read_records(self.paths.records)
        return records

    @property
    def status(self) -> dict[str, Any]:
        """``run.json``: whether the run finished, was interrupted or crashed, and resume events."""
        try:
            status = json.loads(self.paths.status.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # missing, not UTF-8, not JSON
            return {}
        return status if isinstance(status, dict) else {}

    @cached_property
    def base_certificate(self) -> dict[str, Any]:
        return read_json_object(self.paths.base_certificate, f"run {str(self.path)!r}: base_certificate.json", RunDirectoryError)

    @property
    def checkpoints(self) -> dict[int, Path]:
        """Saved checkpoints by iteration."""
        return self.paths.checkpoint_files()

    @property
    def parameter_names(self) -> list[str]:
        return list(self.config["policy"]["parameter_names"])

    def theta(self, iteration: int | None = None) -> np.ndarray:
        """The flat parameters saved at ``iteration`` (default: the last checkpoint), shape (d,).

        Parameters
        ----------
        iteration : int, optional

        Raises
        ------
        RunDirectoryError
            If no checkpoint exists for ``iteration`` (the message lists the saved ones).
        """
        ckpts = self.checkpoints
        if not ckpts:
            raise RunDirectoryError(f"run {str(self.path)!r}: no checkpoints saved")
        if iteration is None:
            iteration = max(ckpts)
        iteration = check_int("iteration", iteration, minimum=0)
        if iteration not in ckpts:
            saved = sorted(ckpts)
            shown = ", ".join(map(str, saved[:10])) + (" …" if len(saved) > 10 else "")
            raise RunDirectoryError(f"iteration: no checkpoint saved for iteration {iteration}; saved: {shown}")
        tensors, _meta = read_checkpoint(ckpts[iteration])
        return flatten_tensors(tensors, self.parameter_names)

    def theta_hash(self, iteration: int | None = None) -> str:
        """SHA-256 of the parameters saved at ``iteration`` (see :func:`scpo.runs.files.theta_sha256`).

        Parameters
        ----------
        iteration : int, optional
            Default: the last checkpoint.

        Returns
        -------
        str
        """
        return theta_sha256(self.theta(iteration))

    @cached_property
    def task(self):
        """The task rebuilt from ``config.json`` (same seed, so the same ``θ₀`` architecture)."""
        from .tasks import task_from_config

        return task_from_config(self.config)

    def policy(self, iteration: int | None = None) -> nn.Module:
        """The policy at a saved ``iteration`` as a ``torch.nn.Module``.

        Parameters
        ----------
        iteration : int, optional
            Default: the last checkpoint.

        Returns
        -------
        nn.Module
        """
        return self.task.policy_at(self.theta(iteration))

    def accepted_records(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("accepted")]


def load_run(path: str | Path) -> Run:
    """Open the run directory ``path`` written by ``scpo train``.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Run
    """
    return Run(path)
