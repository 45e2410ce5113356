"""The closed-loop problem: one validated value that a task produces and every layer consumes.

A :class:`ClosedLoopProblem` describes

    x_{t+1} = A x_t + B u_t,   u_t = π(x_t) = K x_t + φ(x_t),   t = 0 … T−1,

with state constraints ``Hx x ≤ hx``, input constraints ``Hu u ≤ hu``, the backup gain ``K``, an
optional terminal set ``X_f = {x : xᵀPx ≤ γ}`` and the horizon ``T``. Its :class:`RowLayout` fixes
the order of the constraint rows of one rollout, which training, the region certificate, the
smoothness certificates, reachability checks, reports and the audit all use:

    state rows  Hx x_t − hx   for t = 1 … T  (t-major, then the rows of Hx),
    input rows  Hu u_t − hu   for t = 0 … T−1 (t-major, then the rows of Hu),
    terminal    x_Tᵀ P x_T − γ (when X_f is given).

``t = 0`` has no state rows: ``x_0`` does not depend on the policy, so whether the initial states
lie in ``X`` is a property of the region they are drawn from (checked once by the region
certificate), not a row of ``g``. A row is safe when ``≤ 0``.

A static problem (``A = 0``, ``B = 0``, ``T = 1``, no state rows) describes constraints on the
policy's output at given inputs, e.g. ``|f_θ(x)| ≤ 1``: its only rows are input rows at ``t = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .._validate import as_array, check_finite_scalar, check_int
from ..errors import InvalidInputError, ShapeError
from .linear import LinearSystem

__all__ = ["ClosedLoopProblem", "RowLayout", "RowRef", "ROW_KINDS"]

ROW_KINDS = ("state", "input", "terminal")


class RowRef(NamedTuple):
    """Where a row of the layout sits: ``kind`` ∈ :data:`ROW_KINDS`, time step ``t`` and the row of ``Hx``/``Hu``."""

    kind: str
    t: int
    row: int


@dataclass(frozen=True)
class RowLayout:
    """The order of the constraint rows of one rollout (see the module docstring).

    Attributes
    ----------
    horizon : int
        ``T ≥ 1``.
    state_rows : int
        ``p``, rows of ``Hx``.
    input_rows : int
        ``q``, rows of ``Hu``.
    terminal : bool
        Whether the terminal row ``x_TᵀPx_T − γ`` is present.
    """

    horizon: int
    state_rows: int
    input_rows: int
    terminal: bool

    @property
    def n_rows(self) -> int:
        """Rows per initial state: ``T p + T q (+ 1)``."""
        return self.horizon * (self.state_rows + self.input_rows) + int(self.terminal)

    def state_index(self, t: int, row: int) -> int:
        """Index of ``(Hx x_t − hx)_row``, ``t = 1 … T``.

        Parameters
        ----------
        t : int
        row : int

        Returns
        -------
        int
        """
        if not 1 <= t <= self.horizon or not 0 <= row < self.state_rows:
            raise InvalidInputError(f"t, row: expected 1 ≤ t ≤ {self.horizon} and 0 ≤ row < {self.state_rows}, got ({t}, {row})")
        return (t - 1) * self.state_rows + row

    def input_index(self, t: int, row: int) -> int:
        """Index of ``(Hu u_t − hu)_row``, ``t = 0 … T−1``.

        Parameters
        ----------
        t : int
        row : int

        Returns
        -------
        int
        """
        if not 0 <= t < self.horizon or not 0 <= row < self.input_rows:
            raise InvalidInputError(f"t, row: expected 0 ≤ t < {self.horizon} and 0 ≤ row < {self.input_rows}, got ({t}, {row})")
        return self.horizon * self.state_rows + t * self.input_rows + row

    @property
    def terminal_index(self) -> int:
        """Index of the terminal row (raises when there is none)."""
        if not self.terminal:
            raise InvalidInputError("terminal: this layout has no terminal row (the problem has no X_f)")
        return self.horizon * (self.state_rows + self.input_rows)

    def locate(self, j: int) -> RowRef:
        """The inverse of the index functions: which row ``j`` is.

        Parameters
        ----------
        j : int
            ``0 ≤ j < n_rows``.

        Returns
        -------
        RowRef
            ``t`` is the time step of the state or input; ``T`` for the terminal row.
        """
        j = check_int("j", int(j), minimum=0, maximum=self.n_rows - 1)
        T, p, q = self.horizon, self.state_rows, self.input_rows
        if j < T * p:
            return RowRef("state", j // p + 1, j % p)
        j -= T * p
        if j < T * q:
            return RowRef("input", j // q, j % q)
        return RowRef("terminal", T, 0)


def _names(name: str, values: Any, count: int, default: str) -> tuple[str, ...]:
    if not values:
        return tuple(f"{default}{i}" if count > 1 else default for i in range(count))
    out = tuple(str(v) for v in values)
    if len(out) != count:
        raise ShapeError(f"{name}: expected {count} names, got {len(out)}")
    return out


@dataclass(frozen=True, kw_only=True)
class ClosedLoopProblem:
    """A linear closed-loop safety problem, validated on construction (see the module docstring).

    Attributes
    ----------
    system : LinearSystem
        ``A, B`` and the polytopic constraints ``Hx x ≤ hx``, ``Hu u ≤ hu``.
    K : ndarray, shape (m, n)
        Backup gain, ``π_safe(x) = K x``.
    horizon : int
        ``T ≥ 1``.
    P : ndarray, shape (n, n), optional
        Symmetric positive definite; with ``gamma`` defines ``X_f = {xᵀPx ≤ γ}``.
    gamma : float, optional
        ``γ > 0``.
    state_names, input_names : tuple of str
        Default ``x0, x1, …`` and ``u0, …`` (``x``/``u`` in one dimension).
    name : str
        A human-readable name (reports), never used to switch behaviour.

    Raises
    ------
    ShapeError
        ``K`` of the wrong shape; names of the wrong count.
    InvalidInputError
        ``P`` without ``gamma`` (or the reverse), ``P`` not symmetric positive definite,
        ``γ ≤ 0``, ``T < 1``.
    """

    system: LinearSystem
    K: np.ndarray
    horizon: int
    P: np.ndarray | None = None
    gamma: float | None = None
    state_names: tuple[str, ...] = ()
    input_names: tuple[str, ...] = ()
    name: str = "closed loop"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.system, LinearSystem):
            raise InvalidInputError(f"system: expected a LinearSystem, got {type(self.system).__name__}")
        n, m = self.system.n, self.system.m
        K = as_array("K", self.K, shape=(m, n)).copy()
        K.flags.writeable = False
        object.__setattr__(self, "K", K)
        check_int("horizon", self.horizon, minimum=1)
        if (self.P is None) != (self.gamma is None):
            raise InvalidInputError("P, gamma: expected both (a terminal set X_f = {xᵀPx ≤ γ}) or neither")
        if self.P is not None:
            P = as_array("P", self.P, shape=(n, n)).copy()
            if not np.allclose(P, P.T, rtol=0, atol=1e-12 * max(1.0, float(np.abs(P).max()))):
                raise InvalidInputError("P: expected a symmetric matrix")
            if np.linalg.eigvalsh((P + P.T) / 2).min() <= 0:
                raise InvalidInputError("P: expected a positive definite matrix (X_f = {xᵀPx ≤ γ} must be bounded)")
            P.flags.writeable = False
            object.__setattr__(self, "P", P)
            gamma = check_finite_scalar("gamma", self.gamma)
            if not gamma > 0:
                raise InvalidInputError(f"gamma: expected a positive level, got {gamma}")
            object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "state_names", _names("state_names", self.state_names, n, "x"))
        object.__setattr__(self, "input_names", _names("input_names", self.input_names, m, "u"))

    # ---------------------------------------------------------------- shorthands
    @property
    def A(self) -> np.ndarray:
        """``A``, shape (n, n)."""
        return self.system.A

    @property
    def B(self) -> np.ndarray:
        """``B``, shape (n, m)."""
        return self.system.B

    @property
    def Hx(self) -> np.ndarray:
        """State constraint rows, shape (p, n)."""
        return self.system.Hx

    @property
    def hx(self) -> np.ndarray:
        """State constraint bounds, shape (p,)."""
        return self.system.hx

    @property
    def Hu(self) -> np.ndarray:
        """Input constraint rows, shape (q, m)."""
        return self.system.Hu

    @property
    def hu(self) -> np.ndarray:
        """Input constraint bounds, shape (q,)."""
        return self.system.hu

    @property
    def n(self) -> int:
        """State dimension."""
        return self.system.n

    @property
    def m(self) -> int:
        """Input dimension."""
        return self.system.m

    @property
    def A_cl(self) -> np.ndarray:
        """``A + B K``, the backup's closed loop."""
        return self.system.A + self.system.B @ self.K

    @property
    def has_terminal(self) -> bool:
        """Whether ``X_f`` is given."""
        return self.P is not None

    @property
    def is_static(self) -> bool:
        """``A = 0``, ``B = 0`` and ``T = 1``: constraints on the policy's output at given inputs."""
        return self.horizon == 1 and not np.any(self.system.A) and not np.any(self.system.B)

    @property
    def layout(self) -> RowLayout:
        """The row layout of one rollout."""
        return RowLayout(self.horizon, self.system.Hx.shape[0], self.system.Hu.shape[0], self.has_terminal)

    def with_horizon(self, horizon: int) -> "ClosedLoopProblem":
        """The same problem with another horizon ``T``.

        Parameters
        ----------
        horizon : int

        Returns
        -------
        ClosedLoopProblem
        """
        return ClosedLoopProblem(system=self.system, K=self.K, horizon=horizon, P=self.P, gamma=self.gamma,
                                 state_names=self.state_names, input_names=self.input_names, name=self.name)

    # ---------------------------------------------------------------- labels
    def row_label(self, kind: str, row: int = 0) -> str:
        """A readable label of one constraint row: ``"p ≤ 1"`` for a unit row, ``"Hx[3]·x ≤ 0.5"``
        otherwise, ``"x_TᵀPx_T ≤ γ = …"`` for the terminal row.

        Parameters
        ----------
        kind : {"state", "input", "terminal"}
        row : int
            Row of ``Hx`` or ``Hu``.

        Returns
        -------
        str
        """
        if kind == "terminal":
            return f"x_TᵀPx_T ≤ γ = {self.gamma:.6g}"
        if kind not in ("state", "input"):
            raise InvalidInputError(f"kind: expected one of {', '.join(map(repr, ROW_KINDS))}, got {kind!r}")
        H, h, names = (self.Hx, self.hx, self.state_names) if kind == "state" else (self.Hu, self.hu, self.input_names)
        a = H[row]
        nz = np.flatnonzero(a)
        if nz.size == 1 and abs(a[nz[0]]) == 1.0:
            name = names[nz[0]]
            return f"{name} ≤ {h[row]:.6g}" if a[nz[0]] > 0 else f"{name} ≥ {-h[row]:.6g}"
        return f"{'Hx' if kind == 'state' else 'Hu'}[{row}]·{'x' if kind == 'state' else 'u'} ≤ {h[row]:.6g}"

    def label(self, j: int) -> str:
        """``"t=3 p ≤ 1"``: the time step and the row label of row ``j`` of the layout.

        Parameters
        ----------
        j : int

        Returns
        -------
        str
        """
        ref = self.layout.locate(j)
        if ref.kind == "terminal":
            return f"t={ref.t} {self.row_label('terminal')}"
        return f"t={ref.t} {self.row_label(ref.kind, ref.row)}"

    def labels(self) -> list[str]:
        """Labels of every row of one rollout, in layout order."""
        return [self.label(j) for j in range(self.layout.n_rows)]

    # ---------------------------------------------------------------- tensors and data
    def tensors(self, device: Any = None, dtype: Any = None) -> dict[str, Any]:
        """The matrices as torch tensors on ``device`` (cached per device and dtype).

        Parameters
        ----------
        device : torch.device or str, optional
            Default CPU.
        dtype : torch.dtype, optional
            Default float64.

        Returns
        -------
        dict
            ``A, B, K, Hx, hx, Hu, hu`` and, with a terminal set, ``P``.
        """
        import torch

        dtype = torch.float64 if dtype is None else dtype
        key = (str(torch.device("cpu") if device is None else torch.device(device)), str(dtype))
        cached = self._cache.get(key)
        if cached is None:
            arrays = {"A": self.A, "B": self.B, "K": self.K, "Hx": self.Hx, "hx": self.hx, "Hu": self.Hu, "hu": self.hu}
            if self.P is not None:
                arrays["P"] = self.P
            cached = {k: torch.as_tensor(np.array(v, dtype=np.float64), device=device).to(dtype) for k, v in arrays.items()}
            self._cache[key] = cached
        return cached

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (enough to rebuild the problem with :meth:`from_dict`)."""
        return {
            "name": self.name,
            "A": self.A.tolist(), "B": self.B.tolist(),
            "Hx": self.Hx.tolist(), "hx": self.hx.tolist(), "Hu": self.Hu.tolist(), "hu": self.hu.tolist(),
            "K": self.K.tolist(), "horizon": self.horizon,
            "P": None if self.P is None else self.P.tolist(), "gamma": self.gamma,
            "state_names": list(self.state_names), "input_names": list(self.input_names),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ClosedLoopProblem":
        """Inverse of :meth:`to_dict` (validated like any construction).

        Parameters
        ----------
        data : dict

        Returns
        -------
        ClosedLoopProblem
        """
        system = LinearSystem(A=data["A"], B=data["B"], Hx=np.reshape(data["Hx"], (-1, len(data["A"]))), hx=data["hx"],
                              Hu=np.reshape(data["Hu"], (-1, np.shape(data["B"])[1])), hu=data["hu"],
                              name=str(data.get("name", "linear system")))
        return cls(system=system, K=data["K"], horizon=int(data["horizon"]), P=data.get("P"), gamma=data.get("gamma"),
                   state_names=tuple(data.get("state_names", ())), input_names=tuple(data.get("input_names", ())),
                   name=str(data.get("name", "closed loop")))
