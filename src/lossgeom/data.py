"""MNIST: download (torchvision) or copy from a local mirror, verify, and load as tensors.

The four original ``.gz`` files are verified against MD5 checksums (the published ones by
default) before anything is parsed; parsing is torchvision's own. A mirror is a folder
holding the four files, for machines without internet. Verification is never skipped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lossgeom.provenance import atomic_write, save_torch

MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

MIRROR_ENVIRONMENT_VARIABLE = "LOSSGEOM_MNIST_MIRROR"


class DataError(RuntimeError):
    """A missing, truncated or corrupted data file."""


def md5sum(path: str | os.PathLike) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_mirror(configured: str | None) -> str | None:
    """The mirror folder: the environment variable wins over the configured value."""
    return os.environ.get(MIRROR_ENVIRONMENT_VARIABLE) or configured or None


def _verify(path: Path, expected: str, origin: str) -> None:
    if not path.is_file():
        raise DataError(f"MNIST file {path.name} is missing from {origin} ({path})")
    if path.stat().st_size == 0:
        raise DataError(f"MNIST file {path.name} in {origin} is empty ({path})")
    actual = md5sum(path)
    if actual != expected:
        raise DataError(
            f"MNIST file {path.name} in {origin} fails its MD5 check: expected {expected}, "
            f"got {actual} (truncated or corrupted?) ({path})"
        )


def prepare_mnist(
    root: str | os.PathLike,
    output: str | os.PathLike,
    mirror: str | os.PathLike | None = None,
    checksums: dict[str, str] | None = None,
) -> dict:
    """Fetch, verify and parse MNIST; save the uint8 tensors to ``output``.

    Args:
        root: torchvision's root folder (files land in ``root/MNIST/raw``).
        output: where the parsed tensors are saved (``torch.save`` of a dict).
        mirror: a local folder with the four ``.gz`` files; ``None`` downloads.
        checksums: MD5 per file name; default the published MNIST checksums.

    Returns:
        A summary (source, checksums, sample counts).

    Raises:
        DataError: a file is missing, empty, fails its checksum or does not parse.
    """
    import torchvision
    from torchvision.datasets.utils import extract_archive

    checksums = dict(checksums or MNIST_MD5)
    if set(checksums) != set(MNIST_MD5):
        raise DataError(
            f"data.checksums must name exactly the four MNIST files {sorted(MNIST_MD5)}, "
            f"got {sorted(checksums)}"
        )
    root = Path(root)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    if mirror is not None:
        mirror = Path(mirror)
        if not mirror.is_dir():
            raise DataError(f"the MNIST mirror folder {mirror} does not exist")
        # Verify every file before copying any, so a bad mirror fails before work is done.
        for name, expected in checksums.items():
            _verify(mirror / name, expected, f"the mirror {mirror}")
        for name in checksums:
            with open(mirror / name, "rb") as source, atomic_write(raw / name) as target:
                shutil.copyfileobj(source, target)
        source_description = f"mirror:{mirror.resolve()}"
    else:
        try:
            torchvision.datasets.MNIST(root, train=True, download=True)
            torchvision.datasets.MNIST(root, train=False, download=True)
        except RuntimeError as error:
            raise DataError(
                f"downloading MNIST failed ({error}); without internet, set data.mirror or "
                f"{MIRROR_ENVIRONMENT_VARIABLE} to a folder holding the four .gz files"
            ) from error
        source_description = "download:torchvision"
    for name, expected in checksums.items():
        _verify(raw / name, expected, str(raw))
        target = raw / name[: -len(".gz")]
        try:
            extract_archive(str(raw / name), str(raw))
        except (OSError, EOFError) as error:
            raise DataError(f"MNIST file {name} does not decompress: {error}") from error
        if not target.is_file():
            raise DataError(f"MNIST file {name} did not extract to {target}")
    splits = {}
    for split, train in (("train", True), ("test", False)):
        try:
            dataset = torchvision.datasets.MNIST(root, train=train, download=False)
        except Exception as error:  # torchvision raises assorted errors on malformed IDX files
            raise DataError(f"MNIST {split} files do not parse: {error}") from error
        images, labels = dataset.data, dataset.targets
        if images.ndim != 3 or tuple(images.shape[1:]) != (28, 28) or images.dtype != torch.uint8:
            raise DataError(f"MNIST {split} images have shape {tuple(images.shape)}, expected (N, 28, 28)")
        if labels.shape[0] != images.shape[0]:
            raise DataError(
                f"MNIST {split}: {images.shape[0]} images but {labels.shape[0]} labels"
            )
        if labels.numel() and (labels.min() < 0 or labels.max() > 9):
            raise DataError(f"MNIST {split} labels fall outside 0..9")
        splits[split] = (images.clone(), labels.clone())
    summary = {
        "source": source_description,
        "checksums": checksums,
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
    """Normalised MNIST tensors on one device."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor

    def to(self, device: torch.device | str) -> Dataset:
        return Dataset(*(t.to(device) for t in (self.train_x, self.train_y, self.test_x, self.test_y)))


def load_mnist(
    path: str | os.PathLike, mean: float, std: float, device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Dataset:
    """Load the tensors saved by :func:`prepare_mnist`, normalised as ``(x/255 - mean)/std``."""
    if std <= 0:
        raise ValueError(f"data.normalize.std must be positive, got {std}")
    blob = torch.load(path, weights_only=True)

    def normalise(images: Tensor) -> Tensor:
        return ((images.to(dtype) / 255.0 - mean) / std).unsqueeze(1)

    return Dataset(
        normalise(blob["train_images"]),
        blob["train_labels"].long(),
        normalise(blob["test_images"]),
        blob["test_labels"].long(),
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
