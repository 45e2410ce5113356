"""The audit's own safetensors parser against the ``safetensors`` library's reader."""

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from scpo.audit import read_safetensors
from scpo.errors import InvalidInputError
from scpo.runs.files import read_checkpoint


def test_reader_matches_the_safetensors_library(reg_run):
    path = reg_run / "checkpoints" / "theta_000002.safetensors"
    tensors, meta, raw = read_safetensors(path)
    ref = load_file(str(path))
    assert set(tensors) == set(ref)
    for k in ref:
        np.testing.assert_array_equal(tensors[k], ref[k])
        assert raw[k] == ref[k].astype("<f8").tobytes()
    assert meta == read_checkpoint(path)[1]


def test_reader_refuses_other_dtypes_and_bad_headers(tmp_path):
    p = tmp_path / "f32.safetensors"
    save_file({"w": np.zeros((2, 2), dtype=np.float32)}, str(p))
    with pytest.raises(InvalidInputError, match="dtype 'F32'"):
        read_safetensors(p)
    q = tmp_path / "short.safetensors"
    q.write_bytes(b"\x01\x02")
    with pytest.raises(InvalidInputError, match="shorter than the 8-byte header length"):
        read_safetensors(q)
    r = tmp_path / "huge_header.safetensors"
    r.write_bytes((2**60).to_bytes(8, "little") + b"{}")
    with pytest.raises(InvalidInputError, match="header length"):
        read_safetensors(r)
    with pytest.raises(InvalidInputError, match="found no file"):
        read_safetensors(tmp_path / "missing.safetensors")
