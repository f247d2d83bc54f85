"""Atomic writes: all or nothing, with ordinary permissions."""

import os
import stat

import pytest
import torch

from lossgeom.provenance import IntegrityError, atomic_write, config_hash, load_torch, save_torch
from tests.conftest import flip_stored_byte


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target, "w") as handle:
        handle.write("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["table.csv"]


def test_atomic_write_uses_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "f", "w") as handle:
            handle.write("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644


def test_config_hash_is_stable_and_order_free():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_a_flipped_byte_in_a_saved_tensor_is_named_on_load(tmp_path):
    path = tmp_path / "weights.pt"
    save_torch({"w": torch.arange(8, dtype=torch.float32), "epoch": 3}, path)
    assert load_torch(path)["epoch"] == 3
    flip_stored_byte(path, "data/0", offset=5)
    assert torch.load(path, weights_only=True)["epoch"] == 3  # torch alone does not notice
    with pytest.raises(IntegrityError, match=f"{path}: content checksum mismatch"):
        load_torch(path)


def test_a_file_without_a_checksum_is_refused(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(IntegrityError, match="has no content checksum"):
        load_torch(path)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(IntegrityError, match="junk.pt: unreadable"):
        load_torch(tmp_path / "junk.pt")
    with pytest.raises(IntegrityError, match="gone.pt: no such file"):
        load_torch(tmp_path / "gone.pt")
