"""The dataset registry: torchvision parsing, checksums (published or content), mirrors."""

from __future__ import annotations

import dataclasses
import gzip
import shutil

import pytest
import torch

from lossgeom.data import (
    DATASETS,
    DataError,
    get_dataset,
    load_dataset,
    md5sum,
    prepare_dataset,
    resolve_mirror,
    subset_indices,
)
from lossgeom.provenance import IntegrityError
from tests.conftest import (
    FASHION_MIRROR,
    REAL_MIRROR,
    flip_stored_byte,
    require_real_mirror,
    synthetic_digits,
    write_synthetic_mirror,
)

MNIST_MD5 = get_dataset("mnist").published_md5


def prepare_mnist(root, output, mirror=None, checksums=None):
    return prepare_dataset("mnist", root, output, mirror=mirror, checksums=checksums)


def test_synthetic_mirror_parses_through_torchvision(tmp_path, synthetic_mirror):
    folder, checksums = synthetic_mirror
    summary = prepare_mnist(tmp_path, tmp_path / "mnist.pt", mirror=folder, checksums=checksums)
    assert summary["n_train"] == 600 and summary["n_test"] == 200
    blob = torch.load(tmp_path / "mnist.pt", weights_only=True)
    images, labels = synthetic_digits(600, 0)
    assert torch.equal(blob["train_images"], torch.from_numpy(images))
    assert torch.equal(blob["train_labels"], torch.from_numpy(labels).long())
    data = load_dataset(tmp_path / "mnist.pt")
    assert data.train_x.shape == (600, 1, 28, 28) and data.name == "mnist"
    expected = (torch.from_numpy(images[0]).float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(data.train_x[0, 0], expected)
    with pytest.raises(DataError, match="holds 'mnist', not the requested dataset 'fashion_mnist'"):
        load_dataset(tmp_path / "mnist.pt", expect="fashion_mnist")


@pytest.mark.parametrize("entry", ["data/0", "data/1", "data/2"])
def test_a_flipped_byte_in_the_prepared_data_is_an_error_naming_the_file(
    tmp_path, synthetic_mirror, entry
):
    folder, checksums = synthetic_mirror
    prepare_mnist(tmp_path, tmp_path / "mnist.pt", mirror=folder, checksums=checksums)
    flip_stored_byte(tmp_path / "mnist.pt", entry, offset=17)
    with pytest.raises(IntegrityError, match="mnist.pt: content checksum mismatch"):
        load_dataset(tmp_path / "mnist.pt")


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
        prepare_mnist(tmp_path / "root", tmp_path / "out.pt", mirror=tmp_path / "nowhere")
    assert not (tmp_path / "root").exists()  # nothing written, not even an empty folder


def test_environment_variable_wins(monkeypatch):
    monkeypatch.delenv("LOSSGEOM_MNIST_MIRROR", raising=False)
    assert resolve_mirror("/configured") == "/configured"
    assert resolve_mirror(None) is None
    monkeypatch.setenv("LOSSGEOM_MNIST_MIRROR", "/from/env")
    assert resolve_mirror("/configured") == "/from/env"
    monkeypatch.delenv("LOSSGEOM_FASHION_MNIST_MIRROR", raising=False)
    assert resolve_mirror("/configured", "fashion_mnist") == "/configured"  # each dataset its own
    monkeypatch.setenv("LOSSGEOM_FASHION_MNIST_MIRROR", "/fashion")
    assert resolve_mirror(None, "fashion_mnist") == "/fashion"


def test_unknown_dataset_is_named(tmp_path):
    with pytest.raises(
        DataError, match="dataset 'cifar10' is unknown; known: \\['fashion_mnist', 'mnist'\\]"
    ):
        prepare_dataset("cifar10", tmp_path, tmp_path / "out.pt")


def _recompress(source, target, level):
    target.mkdir()
    for path in source.glob("*.gz"):
        (target / path.name).write_bytes(
            gzip.compress(gzip.decompress(path.read_bytes()), level, mtime=123)
        )


def test_recompressed_mirror_passes_by_its_content_checksum(tmp_path, monkeypatch):
    """Published .gz MD5s fail on recompressed files; the decompressed content's MD5 decides."""
    source = tmp_path / "original"
    published = write_synthetic_mirror(source)
    content = {name: md5sum(source / name, gzipped=True) for name in published}
    entry = dataclasses.replace(
        DATASETS["mnist"],
        name="synthetic",
        files={name: (published[name], content[name]) for name in published},
    )
    monkeypatch.setitem(DATASETS, "synthetic", entry)
    recompressed = tmp_path / "recompressed"
    _recompress(source, recompressed, level=1)
    assert all(md5sum(recompressed / name) != md5 for name, md5 in published.items())
    summary = prepare_dataset(
        "synthetic", tmp_path / "root", tmp_path / "a.pt", mirror=recompressed
    )
    assert set(summary["verified_by"].values()) == {"content"}
    assert prepare_dataset("synthetic", tmp_path / "root2", tmp_path / "b.pt", mirror=source)[
        "verified_by"
    ] == dict.fromkeys(published, "published")
    # A recompressed file whose content changed fails, naming both content checksums.
    corrupt = tmp_path / "corrupt"
    shutil.copytree(recompressed, corrupt)
    images = gzip.decompress((corrupt / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (corrupt / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(images[:-1] + b"\x09", mtime=0)
    )
    with pytest.raises(
        DataError,
        match="t10k-labels-idx1-ubyte.gz .*decompressed content's MD5 is "
        "[0-9a-f]{32}, not " + content["t10k-labels-idx1-ubyte.gz"],
    ):
        prepare_dataset("synthetic", tmp_path / "root3", tmp_path / "c.pt", mirror=corrupt)
    assert not (tmp_path / "c.pt").exists()


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
    assert summary["verified_by"] == dict.fromkeys(MNIST_MD5, "published")
    data = load_dataset(tmp_path / "mnist.pt")
    # The registry's normalisation statistics are the training set's own (to 4 decimals).
    pixels = data.train_x * get_dataset("mnist").std + get_dataset("mnist").mean
    assert abs(float(pixels.mean()) - 0.1307) < 5e-5 and abs(float(pixels.std()) - 0.3081) < 5e-5


@pytest.mark.mnist
def test_fashion_mnist_recompressed_mirror_verifies_by_content(tmp_path):
    require_real_mirror(FASHION_MIRROR)
    info = get_dataset("fashion_mnist")
    assert all(md5sum(FASHION_MIRROR / name) != md5 for name, md5 in info.published_md5.items())
    summary = prepare_dataset(
        "fashion_mnist", tmp_path, tmp_path / "fashion.pt", mirror=FASHION_MIRROR
    )
    assert summary["n_train"] == 60000 and summary["n_test"] == 10000
    assert summary["verified_by"] == dict.fromkeys(info.files, "content")
    data = load_dataset(tmp_path / "fashion.pt", expect="fashion_mnist")
    assert (
        data.train_x.shape == (60000, *info.input_shape)
        and int(data.train_y.max()) == info.num_classes - 1
    )
    pixels = data.train_x * info.std + info.mean
    assert (
        abs(float(pixels.mean()) - info.mean) < 5e-5 and abs(float(pixels.std()) - info.std) < 5e-5
    )
