"""The settings of a training run and how they are resolved from defaults, files and the command line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._validate import check_in, check_int, check_seed
from ..config import from_mapping, to_mapping
from ..errors import ConfigError, InvalidInputError
from ..projector import ProjectorConfig
from ..tasks import task_class

__all__ = ["TrainConfig", "GateSettings", "ResolvedConfig", "resolve_config", "CERTIFY_MODES", "DEFAULT_MAX_LEAVES", "default_max_leaves"]

CERTIFY_MODES = ("auto", "sound", "grid")
"""``sound``: a candidate is accepted only when the sound region certificate of the task's declared
region ``C`` holds on all of ``C`` (as well as the evaluated rows); ``grid``: the evaluated rows
alone (the method of the paper); ``auto``: ``sound`` when the task declares a region, else ``grid``."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Settings of a training run (not of the projector or the task).

    Attributes
    ----------
    iterations : int
        Total number of iterations of the run (a resumed run continues up to this number).
    seed : int
        Seeds the task (hidden-layer initialisation, sampled states).
    checkpoint_every : int
        Save ``θ`` after every accepted iteration whose number is a multiple of this
        (0: only ``θ₀`` and the last iterate, which are always saved).
    state_every : int
        Save the resumable projector state every this many iterations (1 = every iteration,
        so that a resume continues exactly; larger values trade exactness for disk traffic).
    log_every : int
        Report progress every this many iterations.
    certify : {"auto", "sound", "grid"}
        How a candidate is accepted (see :data:`CERTIFY_MODES`).
    stop_after_stall : int or None
        Stop early after this many consecutive rejected iterations (``θ`` unchanged); None: off.
        Stored in ``config.json``, so a resume keeps it.
    """

    iterations: int = 1000
    seed: int = 0
    checkpoint_every: int = 1
    state_every: int = 1
    log_every: int = 25
    certify: str = "auto"
    stop_after_stall: int | None = None

    def __post_init__(self) -> None:
        try:
            if self.stop_after_stall is not None:
                check_int("stop_after_stall", self.stop_after_stall, minimum=1)
            check_in("certify", self.certify, CERTIFY_MODES)
            check_int("iterations", self.iterations, minimum=0)
            check_seed("seed", self.seed)
            check_int("checkpoint_every", self.checkpoint_every, minimum=0)
            check_int("state_every", self.state_every, minimum=1)
            check_int("log_every", self.log_every, minimum=1)
        except InvalidInputError as exc:
            raise ConfigError(f"TrainConfig.{exc}") from None


DEFAULT_MAX_LEAVES = {1: 20_000, 2: 20_000, 3: 5_000}
"""The gate's leaf budget by dimension when ``GateSettings.max_leaves`` is None (3,000 for ``n ≥ 4``)."""


def default_max_leaves(n: int) -> int:
    """The gate's leaf budget for an ``n``-dimensional region (:data:`DEFAULT_MAX_LEAVES`).

    Parameters
    ----------
    n : int

    Returns
    -------
    int
    """
    return DEFAULT_MAX_LEAVES.get(n, 3_000)


@dataclass(frozen=True, kw_only=True)
class GateSettings:
    """Settings of the sound gate (the region certificate run on every candidate; ``certify="sound"``).

    Attributes
    ----------
    cells_per_axis : int or None
        Root cells per axis over the bounding box of ``C``; ``None``: 16 for ``n ≤ 2``, 8 for
        ``n = 3``, 4 above (a few hundred root cells in every dimension).
    max_depth : int
        Longest leaf path: a leaf open after this many bisections of its root cell fails.
    max_leaves : int or None
        Budget of live leaves per certificate (a candidate that needs more is rejected, which is
        safe); ``None``: by dimension, 20,000 for ``n ≤ 2``, 5,000 for ``n = 3``, 3,000 above, so
        that a hopeless candidate in 4-D costs tens of seconds, not minutes
        (:data:`DEFAULT_MAX_LEAVES`).
    margin_rel, margin_abs : float
        The outward margin of every bound (:class:`scpo.numerics.Margin`).
    merge_slack : float
        Sibling leaves certified with every bound ``≤ −merge_slack`` are merged back before the
        next certificate (``≤ 0`` disables merging).
    max_new_states : int
        Worst points of failed leaves added to the constraint rows per rejected candidate.
    search_steps : int
        Ascent steps of the worst-point search in a failed leaf.
    row_margin : float
        ``δ`` given to a task whose ``row_margin`` is unset: the projector keeps every evaluated row
        ``≤ −δ``, a cushion that lets the certificate prove ``≤ 0`` between the grid states.
    task_leaves : int or None
        Leaves per bounding task (:class:`scpo.certify.sound_region.GateConfig`); None: one call per
        round. Set it to bound through an engine (``scpo certify --workers``) or on a GPU in batches.
    device : str
        ``"cpu"`` or ``"cuda[:K]"``: where the leaf bounds are computed.
    """

    cells_per_axis: int | None = None
    max_depth: int = 12
    max_leaves: int | None = None
    margin_rel: float = 1e-9
    margin_abs: float = 1e-10
    merge_slack: float = 1e-3
    max_new_states: int = 8
    search_steps: int = 20
    row_margin: float = 1e-3
    task_leaves: int | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        try:
            if self.task_leaves is not None:
                check_int("task_leaves", self.task_leaves, minimum=1)
            if not isinstance(self.device, str) or not (self.device == "cpu" or self.device.startswith("cuda")):
                raise InvalidInputError(f"device: expected 'cpu', 'cuda' or 'cuda:K', got {self.device!r}")
            if self.cells_per_axis is not None:
                check_int("cells_per_axis", self.cells_per_axis, minimum=1)
            check_int("max_depth", self.max_depth, minimum=0, maximum=60)
            if self.max_leaves is not None:
                check_int("max_leaves", self.max_leaves, minimum=1)
            check_int("max_new_states", self.max_new_states, minimum=1)
            check_int("search_steps", self.search_steps, minimum=0)
            for name in ("margin_rel", "margin_abs", "merge_slack", "row_margin"):
                v = getattr(self, name)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
                    raise InvalidInputError(f"{name}: expected a number, got {v!r}")
            if self.margin_rel < 0 or self.margin_abs < 0 or not 0 <= self.row_margin < 1:
                raise InvalidInputError("margin_rel, margin_abs, row_margin: expected non-negative margins (row_margin < 1)")
        except InvalidInputError as exc:
            raise ConfigError(f"GateSettings.{exc}") from None


@dataclass(frozen=True)
class ResolvedConfig:
    """Task settings, projector settings and run settings after all defaults and overrides.

    Made by :func:`resolve_config`; :func:`train` writes it into the run's ``config.json``.

    Attributes
    ----------
    task : str
        Registered task name (:func:`scpo.tasks.task_names`).
    task_config : dict
        The task's configuration as a JSON-ready mapping (every field of its config class).
    projector : ProjectorConfig
        The projector's settings (library defaults < the task's defaults < file < overrides).
    train : TrainConfig
        The run's settings.
    gate : GateSettings
        The sound gate's settings (used with ``train.certify`` ``sound``/``auto``).
    """

    task: str
    task_config: dict[str, Any]
    projector: ProjectorConfig
    train: TrainConfig
    gate: GateSettings = GateSettings()


_FILE_SECTIONS = ("task", "task_config", "projector", "train", "gate")


def resolve_config(
    task: str,
    *,
    file_data: dict[str, Any] | None = None,
    task_overrides: dict[str, Any] | None = None,
    projector_overrides: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
    gate_overrides: dict[str, Any] | None = None,
) -> ResolvedConfig:
    """Combine library defaults < task defaults < config file < explicit overrides.

    Parameters
    ----------
    task : str
        Task name (see :func:`scpo.tasks.task_names`).
    file_data : dict, optional
        Parsed ``--config`` file with optional sections ``task_config``, ``projector``, ``train``,
        ``gate`` (and ``task``, which must then equal ``task``).
    task_overrides, projector_overrides, train_overrides, gate_overrides : dict, optional
        Values given on the command line.

    Returns
    -------
    ResolvedConfig
        Every setting of the run, validated.

    Raises
    ------
    ConfigError
        Unknown task, unknown section or key, or an invalid value.
    """
    cls = task_class(task)
    file_data = dict(file_data or {})
    unknown = sorted(set(file_data) - set(_FILE_SECTIONS))
    if unknown:
        raise ConfigError(f"config file: unknown section(s) {unknown}; valid sections are {list(_FILE_SECTIONS)}")
    if "task" in file_data and file_data["task"] != task:
        raise ConfigError(f"config file: its task is {file_data['task']!r} but {task!r} was requested")
    for section in ("task_config", "projector", "train", "gate"):
        if not isinstance(file_data.get(section, {}), dict):
            raise ConfigError(f"config file: section {section!r} must be a JSON object")
    task_cfg = from_mapping(cls.config_class, {**file_data.get("task_config", {}), **(task_overrides or {})}, where="task_config")
    proj = from_mapping(
        ProjectorConfig,
        {**cls.default_projector, **file_data.get("projector", {}), **(projector_overrides or {})},
        where="projector",
    )
    tr = from_mapping(TrainConfig, {**file_data.get("train", {}), **(train_overrides or {})}, where="train")
    gate = from_mapping(GateSettings, {**file_data.get("gate", {}), **(gate_overrides or {})}, where="gate")
    return ResolvedConfig(task=task, task_config=to_mapping(task_cfg), projector=proj, train=tr, gate=gate)


