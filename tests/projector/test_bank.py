import numpy as np
import pytest

from scpo.errors import InvalidInputError, NonFiniteError, ShapeError
from scpo.projector.bank import Bank


def test_bank_evicts_oldest_and_recentres(rng):
    bank = Bank(3, 4, 2)
    offs = [rng.normal(size=4) for _ in range(4)]
    for k, o in enumerate(offs):
        bank.add(o, np.full(2, -float(k)))
    assert len(bank) == 3
    np.testing.assert_array_equal(bank.offsets, np.stack(offs[1:]))
    step = rng.normal(size=4)
    bank.recentre(step)
    np.testing.assert_allclose(bank.offsets, np.stack(offs[1:]) - step)


def test_recentring_onto_a_probe_drops_it():
    bank = Bank(3, 2, 1)
    bank.add(np.array([1.0, 0.0]), np.array([-1.0]))
    bank.add(np.array([0.0, 1.0]), np.array([-1.0]))
    bank.recentre(np.array([0.0, 1.0]))  # the step lands exactly on the second probe
    assert len(bank) == 1
    np.testing.assert_array_equal(bank.offsets[0], [1.0, -1.0])


def test_parallel_entry_replaces_older_one():
    bank = Bank(4, 2, 1)
    bank.add(np.array([1.0, 0.0]), np.array([-1.0]))
    bank.add(np.array([0.0, 1.0]), np.array([-2.0]))
    bank.add(np.array([-3.0, 0.0]), np.array([-3.0]))  # anti-parallel to the first: replaces it
    assert len(bank) == 2
    np.testing.assert_array_equal(bank.values[:, 0], [-2.0, -3.0])


def test_geometry_and_step_are_consistent(rng):
    bank = Bank(5, 7, 3)
    raw = rng.normal(size=7)
    for _ in range(4):
        bank.add(rng.normal(size=7), rng.normal(size=3))
    norms, gram, q = bank.geometry(raw)
    c = rng.normal(size=len(bank))
    step = bank.step(c)
    assert step @ step == pytest.approx(c @ gram @ c, rel=1e-12)
    np.testing.assert_allclose(norms, np.linalg.norm(bank.offsets, axis=1))


def test_bad_entries_are_rejected():
    bank = Bank(2, 3, 2)
    with pytest.raises(InvalidInputError, match="non-zero offset"):
        bank.add(np.zeros(3), np.zeros(2))
    with pytest.raises(ShapeError, match=r"offset: expected shape \(3,\)"):
        bank.add(np.ones(4), np.zeros(2))
    with pytest.raises(NonFiniteError, match="values"):
        bank.add(np.ones(3), np.array([0.0, np.nan]))
    with pytest.raises(InvalidInputError, match="bank size >= 1"):
        Bank(0, 3, 2)


def _reference_bank(capacity, ops):
    """The bank's contract written as plain lists (reference for the buffered implementation):
    drop entries (anti)parallel to a new one, keep the newest ``capacity``, recentre by steps."""
    offs, vals = [], []
    for kind, a, b in ops:
        if kind == "add":
            u = a / np.linalg.norm(a)
            kept = [(o, v) for o, v in zip(offs, vals) if abs(o @ u / np.linalg.norm(o)) < 1.0 - 1e-8]
            offs, vals = [o for o, _ in kept] + [a], [v for _, v in kept] + [b]
            offs, vals = offs[-capacity:], vals[-capacity:]
        else:
            offs = [o - a for o in offs]
    return np.array(offs), np.array(vals)


def test_long_sequences_match_the_list_reference(rng):
    # Many more appends than capacity + spare rows, with parallel entries and recentring mixed
    # in, so that eviction, compaction of the buffer and dropping all happen.
    capacity, d, n = 4, 6, 3
    bank = Bank(capacity, d, n)
    ops = []
    for k in range(60):
        if k % 7 == 3 and ops:
            o = -2.5 * ops[-1][1] if ops[-1][0] == "add" else rng.normal(size=d)  # parallel to the last entry
        else:
            o = rng.normal(size=d)
        ops.append(("add", o, rng.normal(size=n)))
        bank.add(o, ops[-1][2])
        if k % 5 == 4:
            s = 0.1 * rng.normal(size=d)
            ops.append(("step", s, None))
            bank.recentre(s)
        ref_o, ref_v = _reference_bank(capacity, ops)
        np.testing.assert_allclose(bank.offsets, ref_o, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(bank.values, ref_v)
        norms, _, _ = bank.geometry(np.ones(d))
        np.testing.assert_allclose(norms, np.linalg.norm(ref_o, axis=1), rtol=1e-15)
    state = bank.state()
    other = Bank(capacity, d, n)
    other.load_state(state)
    np.testing.assert_array_equal(other.offsets, bank.offsets)
    np.testing.assert_array_equal(other.values, bank.values)
