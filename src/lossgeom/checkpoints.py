"""Resumable per-epoch checkpoints for every trained object of the pipeline.

Training runs, the Bezier bends of mode connectivity and the bounds stage's prior networks
all save their state through one :class:`CheckpointStore`. A store lives in a folder named by
the hash of every setting that shapes the result (the *key*), so a changed setting starts
afresh in a new folder instead of resuming state trained under the old one. Each checkpoint is
one plain dict (the nanoGPT discipline: model, optimiser, RNG states, epoch, whatever else
the trainer needs), written atomically and loaded with ``torch.load(..., weights_only=True)``:
checkpoints hold tensors, numbers, strings, lists and dicts only, never pickled objects.

Example:
    >>> import tempfile
    >>> import torch
    >>> store = CheckpointStore(tempfile.mkdtemp(), {"lr": 0.1, "seed": 0})
    >>> store.save(1, {"weights": torch.zeros(2)})
    >>> store.latest()["epoch"]
    1
    >>> CheckpointStore(store.root, {"lr": 0.2, "seed": 0}).latest() is None
    True
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import torch

from lossgeom.provenance import IntegrityError, config_hash, load_torch, save_torch

logger = logging.getLogger(__name__)


def tensor_digest(*tensors: torch.Tensor) -> str:
    """A short SHA-256 digest of the tensors' shapes, dtypes and values (for checkpoint keys).

    Example:
        >>> tensor_digest(torch.zeros(3)) == tensor_digest(torch.zeros(3))
        True
        >>> tensor_digest(torch.zeros(3)) == tensor_digest(torch.ones(3))
        False
    """
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()[:16]


def capture_rng(
    device: torch.device | str = "cpu", **generators: torch.Generator
) -> dict[str, Any]:
    """The global torch RNG states (CPU, and CUDA on a CUDA device) and named generators.

    Args:
        device: the device whose CUDA RNG state is captured too (if it is a CUDA device).
        **generators: generators whose states are saved under their names.

    Returns:
        A dict of byte tensors (``None`` for an absent CUDA state), loadable with
        ``weights_only=True``.
    """
    device = torch.device(device)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }
    state.update({name: generator.get_state() for name, generator in generators.items()})
    return state


def restore_rng(
    state: dict[str, Any], device: torch.device | str = "cpu", **generators: torch.Generator
) -> None:
    """Give the global RNGs and the named generators back the states of :func:`capture_rng`."""
    device = torch.device(device)
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    for name, generator in generators.items():
        generator.set_state(state[name])


class CheckpointStore:
    """Per-epoch checkpoints of one trained object, keyed by the hash of its settings.

    Args:
        root: the object's folder (for example ``results/checkpoints/<experiment>/seed0``);
            checkpoints go to ``root/<key>/epoch<e>.pt``.
        settings: every setting that shapes the result (JSON-serialisable); its hash is the
            key, so different settings never share checkpoints.
    """

    def __init__(self, root: str | os.PathLike, settings: dict[str, Any]) -> None:
        self.root = Path(root)
        self.settings = settings
        self.key = config_hash(settings)
        self.directory = self.root / self.key

    def path(self, epoch: int) -> Path:
        """Where the checkpoint of ``epoch`` is written."""
        return self.directory / f"epoch{epoch:03d}.pt"

    def save(self, epoch: int, state: dict[str, Any]) -> None:
        """Write ``state`` (plus the epoch and the key) atomically as epoch ``epoch``."""
        save_torch({**state, "epoch": epoch, "key": self.key}, self.path(epoch))

    def clean_temporaries(self) -> list[Path]:
        """Remove temporary files left by writes that were killed; returns what was removed."""
        if not self.directory.is_dir():
            return []
        stale = sorted(self.directory.glob(".epoch*.pt.*.tmp"))
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def latest(self, map_location: torch.device | str = "cpu") -> dict[str, Any] | None:
        """The newest readable checkpoint of this key, or ``None`` when there is none.

        An unreadable or corrupted file (its content checksum does not match; writes are
        atomic, so this is damage on disk or a format change) is skipped with a warning
        naming it, and the one before it is used.
        """
        self.clean_temporaries()
        for path in sorted(self.directory.glob("epoch*.pt"), reverse=True):
            try:
                state = load_torch(path, map_location=map_location)
            except IntegrityError as error:
                logger.warning("%s; trying an older checkpoint", error)
                continue
            if state.get("key") != self.key:
                logger.warning(
                    "checkpoint %s carries key %s, not %s; ignored",
                    path,
                    state.get("key"),
                    self.key,
                )
                continue
            return state
        return None
