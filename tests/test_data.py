"""MNIST preparation: the real torchvision parsing path, checksums, mirror precedence."""

from __future__ import annotations

import gzip
import shutil

import pytest
import torch

from lossgeom.data import (
    MNIST_MD5,
    DataError,
    load_mnist,
    prepare_mnist,
    resolve_mirror,
    subset_indices,
)
from tests.conftest import REAL_MIRROR, require_real_mirror, synthetic_digits


def test_synthetic_mirror_parses_through_torchvision(tmp_path, synthetic_mirror):
    folder, checksums = synthetic_mirror
    summary = prepare_mnist(tmp_path, tmp_path / "mnist.pt", mirror=folder, checksums=checksums)
    assert summary["n_train"] == 600 and summary["n_test"] == 200
    blob = torch.load(tmp_path / "mnist.pt", weights_only=True)
    images, labels = synthetic_digits(600, 0)
    assert torch.equal(blob["train_images"], torch.from_numpy(images))
    assert torch.equal(blob["train_labels"], torch.from_numpy(labels).long())
    data = load_mnist(tmp_path / "mnist.pt", mean=0.5, std=0.25)
    assert data.train_x.shape == (600, 1, 28, 28)
    expected = (torch.from_numpy(images[0]).float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(data.train_x[0, 0], expected)


def _copy_mirror(source, target):
    shutil.copytree(source, target)
    return target


def test_missing_file_is_named_and_nothing_is_written(tmp_path, synthetic_mirror):
    folder, checksums = synthetic_mirror
    mirror = _copy_mirror(folder, tmp_path / "m")
    (mirror / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is missing"):
        prepare_mnist(tmp_path / "root", tmp_path / "out.pt", mirror=mirror, checksums=checksums)
    assert not (tmp_path / "out.pt").exists()
    assert not list((tmp_path / "root").rglob("*.gz"))  # verified before anything was copied


def test_truncated_file_fails_its_checksum(tmp_path, synthetic_mirror):
    folder, checksums = synthetic_mirror
    mirror = _copy_mirror(folder, tmp_path / "m")
    path = mirror / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz .*MD5"):
        prepare_mnist(tmp_path / "root", tmp_path / "out.pt", mirror=mirror, checksums=checksums)
    assert not (tmp_path / "out.pt").exists()


def test_published_checksums_are_the_default(tmp_path, synthetic_mirror):
    folder, _ = synthetic_mirror
    with pytest.raises(DataError, match="MD5.*expected " + MNIST_MD5["train-images-idx3-ubyte.gz"]):
        prepare_mnist(tmp_path / "root", tmp_path / "out.pt", mirror=folder)


def test_checksums_must_cover_the_four_files(tmp_path, synthetic_mirror):
    folder, checksums = synthetic_mirror
    partial = dict(list(checksums.items())[:3])
    with pytest.raises(DataError, match="exactly the four"):
        prepare_mnist(tmp_path / "root", tmp_path / "out.pt", mirror=folder, checksums=partial)


def test_checksum_matching_but_malformed_file_fails_to_parse(tmp_path, synthetic_mirror):
    import hashlib

    folder, checksums = synthetic_mirror
    mirror = _copy_mirror(folder, tmp_path / "m")
    bad = gzip.compress(b"\x00\x00\x08\x03garbage", mtime=0)
    (mirror / "t10k-images-idx3-ubyte.gz").write_bytes(bad)
    checksums = {**checksums, "t10k-images-idx3-ubyte.gz": hashlib.md5(bad).hexdigest()}
    with pytest.raises(DataError, match="test files do not parse|test images"):
        prepare_mnist(tmp_path / "root", tmp_path / "out.pt", mirror=mirror, checksums=checksums)
    assert not (tmp_path / "out.pt").exists()


def test_missing_mirror_folder(tmp_path):
    with pytest.raises(DataError, match="mirror folder .* does not exist"):
        prepare_mnist(tmp_path, tmp_path / "out.pt", mirror=tmp_path / "nowhere")


def test_environment_variable_wins(monkeypatch):
    monkeypatch.delenv("LOSSGEOM_MNIST_MIRROR", raising=False)
    assert resolve_mirror("/configured") == "/configured"
    assert resolve_mirror(None) is None
    monkeypatch.setenv("LOSSGEOM_MNIST_MIRROR", "/from/env")
    assert resolve_mirror("/configured") == "/from/env"


def test_subset_is_fixed_and_seeded():
    a = subset_indices(1000, 100, seed=1)
    assert torch.equal(a, subset_indices(1000, 100, seed=1))
    assert not torch.equal(a, subset_indices(1000, 100, seed=2))
    assert len(set(a.tolist())) == 100 and torch.all(a[1:] > a[:-1])
    assert torch.equal(subset_indices(50, 100, seed=0), torch.arange(50))


@pytest.mark.mnist
def test_real_mirror_verifies_with_published_checksums(tmp_path):
    require_real_mirror()
    summary = prepare_mnist(tmp_path, tmp_path / "mnist.pt", mirror=REAL_MIRROR)
    assert summary["n_train"] == 60000 and summary["n_test"] == 10000
    assert summary["checksums"] == MNIST_MD5
