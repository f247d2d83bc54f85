"""Datasets: a registry, download (torchvision) or a local mirror, verification, tensors.

Each registry entry (:data:`DATASETS`) names the dataset's files with their published MD5s
and the MD5s of their decompressed content, its normalisation statistics, input shape and
class count; nothing downstream assumes a particular dataset. The original ``.gz`` files are
verified before anything is parsed: a file passes when its MD5 is the published one, or when
its decompressed IDX content has the known MD5 (a mirror whose files were recompressed, such
as Debian's Fashion-MNIST package). Parsing is torchvision's own. A mirror is a folder
holding the four files, for machines without internet. Verification is never skipped.

Example:
    >>> info = get_dataset("fashion_mnist")
    >>> info.input_shape, info.input_dim, info.num_classes
    ((1, 28, 28), 784, 10)
    >>> info.mirror_variable
    'LOSSGEOM_FASHION_MNIST_MIRROR'
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lossgeom.provenance import atomic_write, load_torch, save_torch


@dataclass(frozen=True)
class DatasetInfo:
    """One registry entry: where a dataset comes from and what its tensors look like.

    Attributes:
        name: the registry name, used in the configuration (``experiments.<name>.dataset``).
        torchvision_name: the ``torchvision.datasets`` class that downloads and parses it.
        files: per ``.gz`` file, its published MD5 and the MD5 of its decompressed content.
        mean: mean pixel intensity of the training images, on the [0, 1] scale.
        std: standard deviation of the training pixels, on the [0, 1] scale.
        input_shape: the shape of one image as the models see it (channels, height, width).
        class_names: one name per class, in label order.
        train_size: the number of training examples of the published dataset.
        test_size: the number of test examples of the published dataset.
    """

    name: str
    torchvision_name: str
    files: dict[str, tuple[str, str]]
    mean: float
    std: float
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    train_size: int
    test_size: int

    @property
    def input_dim(self) -> int:
        """The number of input features of a flattened image."""
        return int(math.prod(self.input_shape))

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return len(self.class_names)

    @property
    def mirror_variable(self) -> str:
        """The environment variable that names a local mirror (it wins over the config)."""
        return f"LOSSGEOM_{self.name.upper()}_MIRROR"

    @property
    def published_md5(self) -> dict[str, str]:
        """The published MD5 of each ``.gz`` file."""
        return {name: md5s[0] for name, md5s in self.files.items()}


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        torchvision_name="MNIST",
        files={
            "train-images-idx3-ubyte.gz": (
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "6bbc9ace898e44ae57da46a324031adb",
            ),
            "train-labels-idx1-ubyte.gz": (
                "d53e105ee54ea40749a09fcbcd1e9432",
                "a25bea736e30d166cdddb491f175f624",
            ),
            "t10k-images-idx3-ubyte.gz": (
                "9fb629c4189551a2d022fa330f9573f3",
                "2646ac647ad5339dbf082846283269ea",
            ),
            "t10k-labels-idx1-ubyte.gz": (
                "ec29112dd5afa0611ce80d1b7f02629c",
                "27ae3e4e09519cfbb04c329615203637",
            ),
        },
        mean=0.1307,
        std=0.3081,
        input_shape=(1, 28, 28),
        class_names=tuple(str(digit) for digit in range(10)),
        train_size=60000,
        test_size=10000,
    ),
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist",
        torchvision_name="FashionMNIST",
        files={
            "train-images-idx3-ubyte.gz": (
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            ),
            "train-labels-idx1-ubyte.gz": (
                "25c81989df183df01b3e8a0aad5dffbe",
                "9018921c3c673c538a1fc5bad174d6f9",
            ),
            "t10k-images-idx3-ubyte.gz": (
                "bef4ecab320f06d8554ea6380940ec79",
                "8181f5470baa50b63fa0f6fddb340f0a",
            ),
            "t10k-labels-idx1-ubyte.gz": (
                "bb300cfdad3c16e7a12a480ee83cd310",
                "15d484375f8d13e6eb1aabb0c3f46965",
            ),
        },
        mean=0.2860,
        std=0.3530,
        input_shape=(1, 28, 28),
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        train_size=60000,
        test_size=10000,
    ),
}


class DataError(RuntimeError):
    """A missing, truncated or corrupted data file, or an unknown dataset."""


def get_dataset(name: str) -> DatasetInfo:
    """The registry entry called ``name``.

    Raises:
        DataError: for a name the registry does not hold.
    """
    if name not in DATASETS:
        raise DataError(f"dataset {name!r} is unknown; known: {sorted(DATASETS)}")
    return DATASETS[name]


def md5sum(path: str | os.PathLike, gzipped: bool = False) -> str:
    """The MD5 of a file, or of its decompressed content with ``gzipped=True``."""
    digest = hashlib.md5()
    with gzip.open(path, "rb") if gzipped else open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_mirror(configured: str | None, dataset: str = "mnist") -> str | None:
    """The mirror folder: the dataset's environment variable wins over the configured value."""
    return os.environ.get(get_dataset(dataset).mirror_variable) or configured or None


def _verify(path: Path, expected: str, content: str | None, origin: str) -> str:
    """Check one ``.gz`` file; returns how it passed (``published`` or ``content``)."""
    if not path.is_file():
        raise DataError(f"data file {path.name} is missing from {origin} ({path})")
    if path.stat().st_size == 0:
        raise DataError(f"data file {path.name} in {origin} is empty ({path})")
    actual = md5sum(path)
    if actual == expected:
        return "published"
    detail = f"fails its MD5 check: expected {expected}, got {actual}"
    if content is not None:
        try:
            actual_content = md5sum(path, gzipped=True)
        except (OSError, EOFError) as error:
            raise DataError(
                f"data file {path.name} in {origin} {detail}, and it does not "
                f"decompress ({error}) ({path})"
            ) from error
        if actual_content == content:
            return "content"
        detail += f"; its decompressed content's MD5 is {actual_content}, not {content}"
    raise DataError(
        f"data file {path.name} in {origin} {detail} (truncated or corrupted?) ({path})"
    )


def _expected_checksums(
    info: DatasetInfo, checksums: dict[str, str] | None
) -> dict[str, tuple[str, str | None]]:
    """Per file: the ``.gz`` MD5 to accept and the content MD5 (``None`` for given checksums)."""
    if checksums is None:
        return dict(info.files)
    if set(checksums) != set(info.files):
        raise DataError(
            f"data.checksums.{info.name} must name exactly the four {info.name} files "
            f"{sorted(info.files)}, got {sorted(checksums)}"
        )
    return {name: (md5, None) for name, md5 in checksums.items()}


def _fetch(
    info: DatasetInfo,
    root: Path,
    raw: Path,
    mirror: Path | None,
    expected: dict[str, tuple[str, str | None]],
) -> str:
    """Copy the files from ``mirror`` (each verified first) or let torchvision download them."""
    if mirror is None:
        import torchvision

        dataset_class = getattr(torchvision.datasets, info.torchvision_name)
        try:
            dataset_class(root, train=True, download=True)
            dataset_class(root, train=False, download=True)
        except RuntimeError as error:
            raise DataError(
                f"downloading {info.name} failed ({error}); without internet, set "
                f"data.mirrors.{info.name} or {info.mirror_variable} to a folder holding the "
                f"four .gz files"
            ) from error
        return "download:torchvision"
    if not mirror.is_dir():
        raise DataError(f"the {info.name} mirror folder {mirror} does not exist")
    # Verify every file before copying any, so a bad mirror fails before work is done.
    for name, (md5, content) in expected.items():
        _verify(mirror / name, md5, content, f"the mirror {mirror}")
    for name in expected:  # atomic_write creates the folder, only now that all files passed
        with open(mirror / name, "rb") as source, atomic_write(raw / name) as target:
            shutil.copyfileobj(source, target)
    return f"mirror:{mirror.resolve()}"


def _parse(info: DatasetInfo, root: Path, split: str) -> tuple[Tensor, Tensor]:
    """Torchvision's parse of one split, checked against the registry's shape and classes."""
    import torchvision

    dataset_class = getattr(torchvision.datasets, info.torchvision_name)
    try:
        dataset = dataset_class(root, train=split == "train", download=False)
    except Exception as error:  # noqa: BLE001 - torchvision raises assorted errors on bad IDX files
        raise DataError(f"{info.name} {split} files do not parse: {error}") from error
    images, labels = dataset.data, dataset.targets
    if (
        images.ndim != 3
        or tuple(images.shape[1:]) != info.input_shape[1:]
        or images.dtype != torch.uint8
    ):
        raise DataError(
            f"{info.name} {split} images have shape {tuple(images.shape)}, expected "
            f"(N, {info.input_shape[1]}, {info.input_shape[2]})"
        )
    if labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{info.name} {split}: {images.shape[0]} images but {labels.shape[0]} labels"
        )
    if labels.numel() and (labels.min() < 0 or labels.max() >= info.num_classes):
        raise DataError(f"{info.name} {split} labels fall outside 0..{info.num_classes - 1}")
    return images.clone(), labels.clone()


def prepare_dataset(
    name: str,
    root: str | os.PathLike,
    output: str | os.PathLike,
    mirror: str | os.PathLike | None = None,
    checksums: dict[str, str] | None = None,
) -> dict:
    """Fetch, verify and parse a registry dataset; save the uint8 tensors to ``output``.

    Args:
        name: the registry name (``mnist``, ``fashion_mnist``).
        root: torchvision's root folder (files land in ``root/<torchvision name>/raw``).
        output: where the parsed tensors are saved (``torch.save`` of a dict).
        mirror: a local folder with the four ``.gz`` files; ``None`` downloads.
        checksums: MD5 per ``.gz`` file name, replacing the registry's (published ``.gz`` or
            decompressed content); the files must then match these exactly.

    Returns:
        A summary (dataset, source, how each file was verified, sample counts).

    Raises:
        DataError: an unknown dataset, or a file that is missing, empty, fails its checksum
            or does not parse.
    """
    from torchvision.datasets.utils import extract_archive

    info = get_dataset(name)
    expected = _expected_checksums(info, checksums)
    root = Path(root)
    raw = root / info.torchvision_name / "raw"
    source = _fetch(info, root, raw, Path(mirror) if mirror is not None else None, expected)
    verified = {}
    for file, (md5, content) in expected.items():
        verified[file] = _verify(raw / file, md5, content, str(raw))
        try:
            extract_archive(str(raw / file), str(raw))
        except (OSError, EOFError) as error:
            raise DataError(f"{info.name} file {file} does not decompress: {error}") from error
        if not (raw / file[: -len(".gz")]).is_file():
            raise DataError(
                f"{info.name} file {file} did not extract to {raw / file[: -len('.gz')]}"
            )
    splits = {split: _parse(info, root, split) for split in ("train", "test")}
    summary = {
        "dataset": info.name,
        "source": source,
        "checksums": {file: md5 for file, (md5, _) in expected.items()},
        "verified_by": verified,
        "n_train": int(splits["train"][0].shape[0]),
        "n_test": int(splits["test"][0].shape[0]),
    }
    save_torch(
        {
            "train_images": splits["train"][0],
            "train_labels": splits["train"][1],
            "test_images": splits["test"][0],
            "test_labels": splits["test"][1],
            "summary": summary,
        },
        output,
    )
    return summary


@dataclass
class Dataset:
    """Normalised image tensors of one dataset, on one device."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    name: str = "mnist"

    def to(self, device: torch.device | str) -> Dataset:
        """The same tensors on ``device``."""
        tensors = (self.train_x, self.train_y, self.test_x, self.test_y)
        return Dataset(*(t.to(device) for t in tensors), name=self.name)


def load_dataset(
    path: str | os.PathLike,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    expect: str | None = None,
) -> Dataset:
    """Load the tensors saved by :func:`prepare_dataset`, normalised with the registry's statistics.

    Images become ``(x / 255 - mean) / std`` with the mean and standard deviation of the
    dataset the file says it holds, shaped ``(N, *input_shape)``.

    Args:
        path: a file written by :func:`prepare_dataset`.
        device: where the tensors go.
        dtype: the image dtype.
        expect: the dataset the caller wants; a file holding another one is an error.

    Raises:
        DataError: the file names another dataset than ``expect``.
        IntegrityError: the file's content does not match the checksum written with it.
    """
    blob = load_torch(path)
    name = blob["summary"].get("dataset", "mnist")
    if expect is not None and name != expect:
        raise DataError(f"{path} holds {name!r}, not the requested dataset {expect!r}")
    info = get_dataset(name)

    def normalise(images: Tensor) -> Tensor:
        scaled = (images.to(dtype) / 255.0 - info.mean) / info.std
        return scaled.reshape(images.shape[0], *info.input_shape)

    return Dataset(
        normalise(blob["train_images"]),
        blob["train_labels"].long(),
        normalise(blob["test_images"]),
        blob["test_labels"].long(),
        name=name,
    ).to(device)


def subset_indices(n_total: int, size: int, seed: int) -> Tensor:
    """A fixed, seeded subset of ``range(n_total)`` (sorted); the whole set if size >= n_total."""
    if size <= 0:
        raise ValueError(f"subset size must be positive, got {size}")
    if size >= n_total:
        return torch.arange(n_total)
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n_total, generator=generator)[:size].sort().values


def chunks(x: Tensor, y: Tensor, size: int) -> list[tuple[Tensor, Tensor]]:
    """Split ``(x, y)`` into consecutive batches of at most ``size`` samples."""
    if size <= 0:
        raise ValueError(f"chunk size must be positive, got {size}")
    return [(x[i : i + size], y[i : i + size]) for i in range(0, x.shape[0], size)]
