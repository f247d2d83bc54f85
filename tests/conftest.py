"""Shared fixtures: a tiny synthetic MNIST in the original IDX/gzip format, and repo paths."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
REAL_MIRROR = Path(
    os.environ.get("LOSSGEOM_TEST_REAL_MIRROR", REPO.parent / "shared" / "data" / "mnist" / "raw")
)
FASHION_MIRROR = Path(
    os.environ.get(
        "LOSSGEOM_TEST_FASHION_MIRROR", REPO.parent / "shared" / "data" / "fashion-mnist" / "raw"
    )
)

torch.set_default_dtype(torch.float32)


def require_real_mirror(folder: Path = REAL_MIRROR) -> None:
    """Skip without a real mirror (MNIST by default), except in CI, where it must be beside the clone."""
    if folder.is_dir():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but the real mirror {folder} is missing")
    pytest.skip(f"the real mirror {folder} is not present")


def _idx_images(images: np.ndarray) -> bytes:
    n, rows, cols = images.shape
    return struct.pack(">IIII", 0x00000803, n, rows, cols) + images.astype(np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 0x00000801, labels.shape[0]) + labels.astype(np.uint8).tobytes()


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable fake digits: each class lights a different 7x7 block, plus noise.

    Blocks are faint against strong noise so that a small MLP needs a few epochs and the
    loss (and so the Hessian) stays away from zero.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 160, (n, 28, 28))
    for i, label in enumerate(labels):
        r, c = divmod(int(label), 4)
        images[i, 7 * r : 7 * r + 7, 7 * c : 7 * c + 7] += 40
    return np.clip(images, 0, 255).astype(np.uint8), labels


def write_synthetic_mirror(folder: Path, n_train: int = 600, n_test: int = 200) -> dict[str, str]:
    """Write the four MNIST .gz files with synthetic content; return their MD5s."""
    folder.mkdir(parents=True, exist_ok=True)
    train = synthetic_digits(n_train, 0)
    test = synthetic_digits(n_test, 1)
    payloads = {
        "train-images-idx3-ubyte.gz": _idx_images(train[0]),
        "train-labels-idx1-ubyte.gz": _idx_labels(train[1]),
        "t10k-images-idx3-ubyte.gz": _idx_images(test[0]),
        "t10k-labels-idx1-ubyte.gz": _idx_labels(test[1]),
    }
    checksums = {}
    for name, payload in payloads.items():
        blob = gzip.compress(payload, mtime=0)
        (folder / name).write_bytes(blob)
        checksums[name] = hashlib.md5(blob).hexdigest()
    return checksums


@pytest.fixture(scope="session")
def synthetic_mirror(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("mirror")
    return folder, write_synthetic_mirror(folder)


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory, synthetic_mirror):
    """The synthetic mirror prepared through the real pipeline path and loaded."""
    from lossgeom.data import load_dataset, prepare_dataset

    folder, checksums = synthetic_mirror
    root = tmp_path_factory.mktemp("prepared")
    prepare_dataset("mnist", root, root / "mnist.pt", mirror=folder, checksums=checksums)
    return load_dataset(root / "mnist.pt")


def flip_stored_byte(path: Path, entry: str, offset: int = 0) -> None:
    """Flip one byte inside a stored tensor of a ``torch.save`` zip file, as disk damage would.

    ``entry`` is the suffix of the zip member (e.g. ``"data/0"``, the first tensor's bytes).
    PyTorch's loader does not check the zip CRC, so without a content checksum the damaged
    file loads silently.
    """
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(entry))
    blob = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack(
        "<HH", blob[info.header_offset + 26 : info.header_offset + 30]
    )
    start = info.header_offset + 30 + name_length + extra_length
    blob[start + offset] ^= 0x40
    path.write_bytes(bytes(blob))


SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(
    workdir: Path, *args: str, check: bool = True, config: str = "test.yaml", **variables: str
) -> subprocess.CompletedProcess:
    env = {**os.environ}
    for variable in [
        name for name in env if name.startswith("LOSSGEOM_") and name.endswith("_MIRROR")
    ]:
        env.pop(variable)
    env.update(variables)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        [
            *SNAKEMAKE,
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(REPO / "config" / "presets" / "smoke.yaml"),
            str(workdir / config),
            "--cores",
            "2",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
    )
    if check and result.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()[-3000:]}" for p in (workdir / "logs").rglob("*.log")
        )
        raise AssertionError(
            f"snakemake failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}\n{logs}"
        )
    return result


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, synthetic_mirror):
    folder, checksums = synthetic_mirror
    workdir = tmp_path_factory.mktemp("workflow")
    # Seed 2 blows up (lr 100) but stays finite: it must be marked failed_to_train and left
    # out, with its reason, by every later stage and notebook while the others finish.
    (workdir / "test.yaml").write_text(
        yaml.safe_dump(
            {
                "data": {"mirrors": {"mnist": str(folder)}, "checksums": {"mnist": checksums}},
                "seeds": [0, 1, 2],
                "experiments": {
                    "report_mlp": {"seed_overrides": [{"seed": 2, "optimizer": {"lr": 100.0}}]}
                },
            }
        )
    )
    dry = snakemake(workdir, "-n", "all")
    snakemake(workdir, "all")
    return workdir, dry.stdout + dry.stderr
