"""The rolling bank of evaluated perturbations (DESIGN §3)."""

from __future__ import annotations

import numpy as np

from .._validate import as_array
from ..errors import InvalidInputError, ShapeError

__all__ = ["Bank"]

# An offset shorter than this fraction of the longest one carries no direction information
# (it appears when a step lands exactly on a probe, whose offset then recentres to zero).
_DEGENERATE_RTOL = 1e-9
# A new entry whose direction is this close to an older one replaces it: two almost parallel
# columns add no information but make the SOCP ill-conditioned.
_PARALLEL_COS = 1.0 - 1e-8
# Spare buffer rows beyond the capacity (one data move per this many appends once full).
_SPARE_ROWS = 8


class Bank:
    """Offsets ``δ_k`` relative to the current ``θ`` and their evaluated ``G_k = g(θ + δ_k)``.

    Holds at most ``capacity`` entries; the oldest leaves first. All offsets are kept relative
    to the current iterate, so an accepted step ``Δ`` recentres them (``δ_k ← δ_k − Δ``).

    Parameters
    ----------
    capacity : int
        Maximal number of entries ``m``.
    dim : int
        Parameter dimension ``d``.
    n_constraints : int
        Number of constraint rows ``N``.
    """

    def __init__(self, capacity: int, dim: int, n_constraints: int) -> None:
        if capacity < 1:
            raise InvalidInputError(f"capacity: expected a bank size >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.dim = int(dim)
        self.n_constraints = int(n_constraints)
        # Entries live in rows [lo, hi) of preallocated buffers, oldest first, with a few spare
        # rows so that appending and evicting move no data until the spare rows run out: at
        # d = 10⁶ a copy of the bank costs more than the SOCP. Norms are cached per entry.
        rows = self.capacity + _SPARE_ROWS
        self._off = np.zeros((rows, self.dim))
        self._val = np.zeros((rows, self.n_constraints))
        self._nrm = np.zeros(rows)
        self._lo = self._hi = 0

    @property
    def _offsets(self) -> np.ndarray:
        return self._off[self._lo : self._hi]

    @property
    def _values(self) -> np.ndarray:
        return self._val[self._lo : self._hi]

    @property
    def _norms(self) -> np.ndarray:
        return self._nrm[self._lo : self._hi]

    def _set(self, offsets: np.ndarray, values: np.ndarray, norms: np.ndarray | None = None) -> None:
        """Replace the entries by ``offsets`` (k, d) and ``values`` (k, N), stored from row 0."""
        k = offsets.shape[0]
        self._off[:k] = offsets
        self._val[:k] = values
        self._nrm[:k] = np.linalg.norm(offsets, axis=1) if norms is None else norms
        self._lo, self._hi = 0, k

    def __len__(self) -> int:
        return self._hi - self._lo

    @property
    def offsets(self) -> np.ndarray:
        """ndarray, shape (size, d): the offsets ``δ_k`` (read-only view; later changes of the
        bank may overwrite it, copy it to keep it)."""
        v = self._offsets.view()
        v.flags.writeable = False
        return v

    @property
    def values(self) -> np.ndarray:
        """ndarray, shape (size, N): the evaluated ``g(θ + δ_k)`` (read-only view, as ``offsets``)."""
        v = self._values.view()
        v.flags.writeable = False
        return v

    def add(self, offset: np.ndarray, values: np.ndarray) -> None:
        """Append one entry, evicting the oldest when full.

        Parameters
        ----------
        offset : ndarray, shape (d,)
            Non-zero, finite offset from the current ``θ``.
        values : ndarray, shape (N,)
            Finite ``g(θ + offset)``.
        """
        offset = as_array("offset", offset, shape=(self.dim,))
        values = as_array("values", values, shape=(self.n_constraints,))
        if not np.any(offset):
            raise InvalidInputError("offset: expected a non-zero offset, got the zero vector")
        if len(self):
            unit = offset / np.linalg.norm(offset)
            cos = (self._offsets @ unit) / self._norms
            keep = np.abs(cos) < _PARALLEL_COS
            if not keep.all():
                self._set(self._offsets[keep], self._values[keep], self._norms[keep])
        if self._hi == self._off.shape[0]:
            self._set(self._offsets, self._values, self._norms)  # overlapping copy: numpy buffers it
        self._off[self._hi] = offset
        self._val[self._hi] = values
        self._nrm[self._hi] = np.linalg.norm(offset[None, :], axis=1)[0]
        self._hi += 1
        if len(self) > self.capacity:
            self._lo += 1

    def recentre(self, step: np.ndarray, *, max_norm: float | None = None) -> None:
        """Express every offset relative to ``θ + step``; drop entries that became zero or, when
        ``max_norm`` is given, longer than it (outside a trust region).

        Parameters
        ----------
        step : ndarray, shape (d,)
            The accepted step ``Δ``: ``δ_k ← δ_k − Δ``.
        max_norm : float, optional
            Drop entries with ``‖δ_k‖ > max_norm`` after recentring.
        """
        if not len(self):
            return
        offsets = self._offsets
        offsets -= step[None, :]
        norms = np.linalg.norm(offsets, axis=1)
        self._nrm[self._lo : self._hi] = norms
        keep = norms > _DEGENERATE_RTOL * max(float(norms.max()), 1e-300)
        if max_norm is not None:
            keep &= norms <= max_norm
        if not keep.all():
            self._set(offsets[keep], self._values[keep], norms[keep])

    def replace(self, index: int, offset: np.ndarray, values: np.ndarray) -> None:
        """Overwrite entry ``index`` (used when re-probing a direction at the current ``θ``).

        Parameters
        ----------
        index : int
            Entry to overwrite (negative counts from the newest).
        offset : ndarray, shape (d,)
            The new offset.
        values : ndarray, shape (N,)
            ``g(θ + offset)``.
        """
        if not -len(self) <= index < len(self):
            raise InvalidInputError(f"index: expected an entry index in [{-len(self)}, {len(self)}), got {index}")
        row = self._lo + (index % len(self))
        self._off[row] = as_array("offset", offset, shape=(self.dim,))
        self._val[row] = as_array("values", values, shape=(self.n_constraints,))
        self._nrm[row] = np.linalg.norm(self._off[row][None, :], axis=1)[0]

    def geometry(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Quantities the SOCP needs in the normalised coordinates of :mod:`scpo.projector.inner`.

        Parameters
        ----------
        raw : ndarray, shape (d,)
            The raw step ``Δ_raw``.

        Returns
        -------
        norms : ndarray, shape (m,)
            ``n_k = ‖δ_k‖``.
        gram : ndarray, shape (m, m)
            ``⟨δ_j/n_j, δ_k/n_k⟩``.
        q : ndarray, shape (m,)
            ``⟨δ_k/n_k, Δ_raw⟩``.
        """
        norms = self._norms.copy()
        unit = self._offsets / norms[:, None]
        return norms, unit @ unit.T, unit @ raw

    def difference_quotients(self, g: np.ndarray) -> np.ndarray:
        """The difference quotients ``H_ik = (G_ki − g_i) / n_k`` of (★).

        Parameters
        ----------
        g : ndarray, shape (N,)
            ``g(θ)`` at the current iterate.

        Returns
        -------
        ndarray, shape (N, m)
        """
        return ((self._values - g[None, :]) / self._norms[:, None]).T

    def step(self, coef: np.ndarray) -> np.ndarray:
        """The parameter step ``Δ = Σ_k c_k δ_k / n_k`` for normalised coefficients.

        Parameters
        ----------
        coef : ndarray, shape (m,)
            Normalised coefficients ``c``.

        Returns
        -------
        ndarray, shape (d,)
        """
        return (coef / self._norms) @ self._offsets

    def extend_rows(self, values: np.ndarray) -> None:
        """Append constraint rows: ``values`` (len(bank), k) are the new rows evaluated at every entry.

        Parameters
        ----------
        values : ndarray, shape (len(self), k)
            ``g_new(θ + δ_j)`` for the entries in their order (oldest first).
        """
        values = np.asarray(values, dtype=float)
        if values.ndim != 2 or values.shape[0] != len(self):
            raise ShapeError(f"values: expected shape ({len(self)}, k) for the {len(self)} bank entries, got {values.shape}")
        k = values.shape[1]
        grown = np.zeros((self._val.shape[0], self.n_constraints + k))
        grown[:, : self.n_constraints] = self._val
        grown[self._lo : self._hi, self.n_constraints :] = values
        self._val = grown
        self.n_constraints += k

    def state(self) -> dict[str, np.ndarray]:
        """Arrays that reproduce this bank (for resuming a run).

        Returns
        -------
        dict of str to ndarray
            ``bank_offsets`` (m, d) and ``bank_values`` (m, N).
        """
        return {"bank_offsets": self._offsets.copy(), "bank_values": self._values.copy()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`state`; shapes are checked.

        Parameters
        ----------
        state : dict of str to ndarray
            From :meth:`state`, with at most ``capacity`` entries.
        """
        offsets = as_array("bank_offsets", state["bank_offsets"], shape=(None, self.dim))
        values = as_array("bank_values", state["bank_values"], shape=(offsets.shape[0], self.n_constraints))
        if offsets.shape[0] > self.capacity:
            raise InvalidInputError(f"bank_offsets: expected at most {self.capacity} entries, got {offsets.shape[0]}")
        self._set(offsets, values)
