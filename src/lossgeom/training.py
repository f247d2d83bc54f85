"""Checkpointed, resumable training with per-epoch metrics.

One run is one (experiment, seed). After initialisation and after every epoch a checkpoint
(model, optimiser, RNG states, epoch, configuration hash, metrics so far) is written
atomically to ``checkpoint_dir/epoch{e:03d}.pt``. A rerun resumes from the last complete
checkpoint; on the CPU the resumed run ends with weights bitwise equal to an uninterrupted
one, because the minibatch order comes from a generator whose state is checkpointed.

A run whose minibatch loss becomes NaN or infinite stops and is recorded as diverged.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from lossgeom.data import Dataset
from lossgeom.models import build_model, evaluation_mode
from lossgeom.provenance import config_hash, save_torch

OPTIMIZERS = ("sgd", "adam")
logger = logging.getLogger(__name__)


def resolve_device(requested: str) -> torch.device:
    """``auto`` gives CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} was requested but CUDA is not available")
    if requested != "cpu" and not requested.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {requested!r}")
    return torch.device(requested)


def build_optimizer(spec: dict[str, Any], parameters) -> torch.optim.Optimizer:
    spec = dict(spec)
    name = spec.pop("name", "sgd")
    if name == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=spec["lr"],
            momentum=spec.get("momentum", 0.0),
            weight_decay=spec.get("weight_decay", 0.0),
            nesterov=spec.get("nesterov", False),
        )
    if name == "adam":
        return torch.optim.Adam(parameters, lr=spec["lr"], weight_decay=spec.get("weight_decay", 0.0))
    raise ValueError(f"optimizer.name {name!r} is unknown; known: {list(OPTIMIZERS)}")


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 10_000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over ``(x, y)`` in eval mode (mode restored)."""
    total_loss, correct = 0.0, 0
    with evaluation_mode(model):
        for i in range(0, x.shape[0], batch_size):
            out = model(x[i : i + batch_size])
            target = y[i : i + batch_size]
            total_loss += float(F.cross_entropy(out, target, reduction="sum"))
            correct += int((out.argmax(1) == target).sum())
    return total_loss / x.shape[0], correct / x.shape[0]


@dataclass
class TrainResult:
    """What a run produced: the final model, per-epoch states and tidy metric rows."""

    model: nn.Module
    states: dict[int, dict[str, Tensor]]
    rows: list[dict[str, Any]]
    status: str  # "completed" or "diverged"
    diverged_epoch: int | None
    resumed_from: int | None
    seconds: float
    config_hash: str
    extra: dict[str, Any] = field(default_factory=dict)


def _checkpoint_path(directory: Path, epoch: int) -> Path:
    return directory / f"epoch{epoch:03d}.pt"


def _latest_checkpoint(directory: Path, run_hash: str) -> dict | None:
    candidates = sorted(directory.glob("epoch*.pt"))
    for path in reversed(candidates):
        try:
            checkpoint = torch.load(path, weights_only=False, map_location="cpu")
        except Exception as error:  # writes are atomic, so this is corruption or a version change
            logger.warning("checkpoint %s is unreadable (%s); trying an older one", path, error)
            continue
        if checkpoint.get("config_hash") != run_hash:
            raise RuntimeError(
                f"checkpoint {path} belongs to another configuration "
                f"({checkpoint.get('config_hash')} != {run_hash}); move it away to start afresh"
            )
        return checkpoint
    return None


def train(
    spec: dict[str, Any],
    data: Dataset,
    seed: int,
    checkpoint_dir: str | os.PathLike,
    device: torch.device | str = "cpu",
    progress: bool = True,
    after_checkpoint: Callable[[int], None] | None = None,
    identity: dict[str, Any] | None = None,
) -> TrainResult:
    """Train one run, resuming from ``checkpoint_dir`` when it holds checkpoints.

    Args:
        spec: ``{"model": {...}, "optimizer": {...}, "epochs": int, "batch_size": int}``.
        data: normalised tensors (moved to ``device`` here).
        seed: seeds the initialisation and the minibatch order.
        checkpoint_dir: folder for per-epoch checkpoints (created if missing).
        device: where to train.
        progress: show a tqdm bar per epoch.
        after_checkpoint: called with the epoch after each checkpoint is written.
        identity: what else makes the run (data normalisation and checksums, say); it enters
            the configuration hash, so checkpoints of other data are never resumed.

    Returns:
        A :class:`TrainResult`; metric rows have keys ``epoch, split, metric, value``.
    """
    start_time = time.perf_counter()
    device = torch.device(device)
    epochs, batch_size = int(spec["epochs"]), int(spec["batch_size"])
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"epochs must be >= 0 and batch_size >= 1, got {epochs} and {batch_size}")
    run_hash = config_hash(
        {"spec": spec, "seed": seed, "identity": identity, "device": torch.device(device).type}
    )
    directory = Path(checkpoint_dir)
    directory.mkdir(parents=True, exist_ok=True)
    data = data.to(device)
    n_train = data.train_x.shape[0]

    torch.manual_seed(seed)
    model = build_model(spec["model"]).to(device)
    optimizer = build_optimizer(spec["optimizer"], model.parameters())
    order = torch.Generator(device="cpu").manual_seed(seed + 1_000_003)

    checkpoint = _latest_checkpoint(directory, run_hash)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        order.set_state(checkpoint["rng"]["order"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if device.type == "cuda" and checkpoint["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(checkpoint["rng"]["cuda"], device)
        rows, states = checkpoint["rows"], checkpoint["states"]
        first_epoch, resumed_from = checkpoint["epoch"] + 1, checkpoint["epoch"]
        diverged_epoch = checkpoint["diverged_epoch"]
    else:
        rows, states, first_epoch, resumed_from, diverged_epoch = [], {}, 0, None, None

    def record(epoch: int, split: str, metric: str, value: float) -> None:
        rows.append({"epoch": epoch, "split": split, "metric": metric, "value": value})

    def save(epoch: int) -> None:
        save_torch(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": {
                    "order": order.get_state(),
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                },
                "epoch": epoch,
                "config_hash": run_hash,
                "spec": spec,
                "seed": seed,
                "rows": rows,
                "states": states,
                "diverged_epoch": diverged_epoch,
            },
            _checkpoint_path(directory, epoch),
        )
        if after_checkpoint is not None:
            after_checkpoint(epoch)

    def end_of_epoch(epoch: int) -> None:
        for split, (x, y) in (("train", (data.train_x, data.train_y)), ("test", (data.test_x, data.test_y))):
            loss, accuracy = evaluate(model, x, y)
            record(epoch, split, "loss", loss)
            record(epoch, split, "accuracy", accuracy)
        states[epoch] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        save(epoch)

    if first_epoch == 0:
        end_of_epoch(0)
        first_epoch = 1

    for epoch in range(first_epoch, epochs + 1):
        if diverged_epoch is not None:
            break
        model.train()
        permutation = torch.randperm(n_train, generator=order).to(device)
        running_loss, running_correct, seen = 0.0, 0, 0
        bar = tqdm(
            range(0, n_train, batch_size),
            desc=f"seed {seed} epoch {epoch}/{epochs}",
            disable=not progress,
            mininterval=2.0,
        )
        for start in bar:
            index = permutation[start : start + batch_size]
            inputs, targets = data.train_x[index], data.train_y[index]
            outputs = model(inputs)
            loss = F.cross_entropy(outputs, targets)
            if not math.isfinite(loss.item()):
                diverged_epoch = epoch
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running_loss += loss.item() * targets.shape[0]
            running_correct += int((outputs.argmax(1) == targets).sum())
            seen += targets.shape[0]
            bar.set_postfix(loss=f"{running_loss / seen:.4f}", refresh=False)
        bar.close()
        if diverged_epoch is not None:
            record(epoch, "train", "diverged", 1.0)
            save(epoch)
            break
        record(epoch, "train", "running_loss", running_loss / seen)
        record(epoch, "train", "running_accuracy", running_correct / seen)
        end_of_epoch(epoch)

    return TrainResult(
        model=model,
        states=states,
        rows=rows,
        status="diverged" if diverged_epoch is not None else "completed",
        diverged_epoch=diverged_epoch,
        resumed_from=resumed_from,
        seconds=time.perf_counter() - start_time,
        config_hash=run_hash,
    )
