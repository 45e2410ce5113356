import pickle

import numpy as np
import pytest

from scpo.errors import CheckpointFormatError
from scpo.runs.files import append_jsonl, atomic_write_json, read_checkpoint, read_jsonl, theta_sha256, write_checkpoint


def test_checkpoint_round_trip_and_hash(tmp_path, rng):
    tensors = {"a.weight": rng.normal(size=(3, 2)), "a.bias": rng.normal(size=3)}
    names = ["a.weight", "a.bias"]
    h = write_checkpoint(tmp_path / "c.safetensors", tensors, names, iteration=4, task="regression")
    back, meta = read_checkpoint(tmp_path / "c.safetensors")
    np.testing.assert_array_equal(back["a.weight"], tensors["a.weight"])
    assert meta["iteration"] == "4" and meta["theta_sha256"] == h
    flat = np.concatenate([tensors["a.weight"].ravel(), tensors["a.bias"]])
    assert h == theta_sha256(flat)
    # the hash is over little-endian float64 bytes: a one-ulp change changes it
    flat2 = flat.copy()
    flat2[0] = np.nextafter(flat2[0], np.inf)
    assert theta_sha256(flat2) != h


def test_pickle_is_rejected_without_being_loaded(tmp_path):
    class Boom:
        def __reduce__(self):  # would run on unpickling
            return (exec, ("raise SystemExit('unpickled!')",))

    p = tmp_path / "theta_000001.safetensors"
    p.write_bytes(pickle.dumps({"w": Boom()}))
    with pytest.raises(CheckpointFormatError, match="not a safetensors file"):
        read_checkpoint(p)


def test_missing_and_foreign_safetensors(tmp_path):
    from safetensors.numpy import save_file

    with pytest.raises(CheckpointFormatError, match="found nothing"):
        read_checkpoint(tmp_path / "nope.safetensors")
    save_file({"w": np.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointFormatError, match="metadata format"):
        read_checkpoint(tmp_path / "foreign.safetensors")


def test_jsonl_reader_stops_at_a_truncated_line(tmp_path):
    p = tmp_path / "r.jsonl"
    append_jsonl(p, {"iteration": 1, "x": float("nan")})
    append_jsonl(p, {"iteration": 2})
    with open(p, "ab") as fh:
        fh.write(b'{"iteration": 3, "acc')
    records, bad = read_jsonl(p)
    assert [r["iteration"] for r in records] == [1, 2] and bad == 3
    assert records[0]["x"] == "nan"  # strict JSON: non-finite floats are strings


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"v": 1})
    atomic_write_json(tmp_path / "a.json", {"v": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    assert (tmp_path / "a.json").stat().st_mode & 0o044  # readable by others, like any written file
