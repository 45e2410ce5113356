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


def test_checkpoint_reader_reads_only_the_header_of_a_huge_sparse_file(tmp_path):
    """A 3 GiB sparse file is refused from its size and header alone (no 3 GiB read)."""
    import resource

    p = tmp_path / "theta_000001.safetensors"
    with open(p, "wb") as fh:
        fh.seek(3 * 2**30)
        fh.write(b"\0")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointFormatError, match="more than the 2147483648"):
        read_checkpoint(p)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: far below 3 GiB


def test_checkpoint_padded_past_its_header_is_refused(tmp_path, rng):
    p = tmp_path / "c.safetensors"
    write_checkpoint(p, {"w": rng.normal(size=4)}, ["w"], iteration=1, task="t")
    with open(p, "ab") as fh:
        fh.write(b"\0" * 1000)
    with pytest.raises(CheckpointFormatError, match="the file has"):
        read_checkpoint(p)


def test_strict_record_reader_stops_only_at_a_torn_last_line(tmp_path):
    from scpo.errors import RunDirectoryError
    from scpo.runs.files import read_records

    p = tmp_path / "certificates.jsonl"
    for i in (1, 2, 3):
        append_jsonl(p, {"iteration": i})
    with open(p, "ab") as fh:
        fh.write(b'{"iteration": 4, "acc')
    records, torn = read_records(p)
    assert [r["iteration"] for r in records] == [1, 2, 3] and torn == 4
    lines = p.read_bytes().split(b"\n")
    lines[1] = b'{"iteration": 2, "\xff"}'
    p.write_bytes(b"\n".join(lines))
    with pytest.raises(RunDirectoryError, match="line 2 of 3: not UTF-8 \\(byte 0xff at column 19\\)"):
        read_records(p)


def test_files_written_through_safetensors_get_the_umask_mode(tmp_path, rng):
    import os

    old = os.umask(0o022)
    try:
        write_checkpoint(tmp_path / "c.safetensors", {"w": rng.normal(size=2)}, ["w"], iteration=0, task="t")
        atomic_write_json(tmp_path / "a.json", {"v": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "c.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
