"""Checkpointed, resumable training with per-epoch metrics.

One run is one (experiment, seed). After initialisation and after every epoch a checkpoint
(model, optimiser, RNG states, epoch, configuration hash, metrics so far) is written
atomically to ``checkpoint_dir/<key>/epoch{e:03d}.pt`` (:mod:`lossgeom.checkpoints`; the key
hashes every setting of the run). A rerun resumes from the last complete
checkpoint; on the CPU the resumed run ends with weights bitwise equal to an uninterrupted
one, because the minibatch order comes from a generator whose state is checkpointed.

A run whose minibatch loss becomes NaN or infinite stops and is recorded as ``diverged``. A
run that stays finite but does not learn (its final training loss a large multiple of its
initial one, or its final test accuracy at chance) is recorded as ``failed_to_train``
(:class:`TrainingCheck`); downstream stages skip both kinds with the reason stated.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from lossgeom.checkpoints import CheckpointStore, capture_rng, restore_rng
from lossgeom.data import Dataset
from lossgeom.models import build_model, evaluation_mode

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
    """A torch optimiser from ``{"name": "sgd" | "adam", "lr": ..., ...}`` over ``parameters``."""
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
        return torch.optim.Adam(
            parameters, lr=spec["lr"], weight_decay=spec.get("weight_decay", 0.0)
        )
    raise ValueError(f"optimizer.name {name!r} is unknown; known: {list(OPTIMIZERS)}")


@torch.no_grad()
def evaluate(
    model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 10_000
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over ``(x, y)`` in eval mode (mode restored)."""
    total_loss, correct = 0.0, 0
    with evaluation_mode(model):
        for i in range(0, x.shape[0], batch_size):
            out = model(x[i : i + batch_size])
            target = y[i : i + batch_size]
            total_loss += float(F.cross_entropy(out, target, reduction="sum"))
            correct += int((out.argmax(1) == target).sum())
    return total_loss / x.shape[0], correct / x.shape[0]


STATUSES = ("completed", "diverged", "failed_to_train")


@dataclass(frozen=True)
class TrainingCheck:
    """When a run that stayed finite still failed to train.

    Attributes:
        max_loss_ratio: the run failed when its final full training loss exceeds this
            multiple of its initial (epoch 0) training loss.
        chance_margin: the run failed when its final test accuracy is at most chance (the
            frequency of the test set's most common class) plus this margin.
    """

    max_loss_ratio: float = 10.0
    chance_margin: float = 0.05

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_loss_ratio) and self.max_loss_ratio > 1):
            raise ValueError(f"max_loss_ratio must be finite and > 1, got {self.max_loss_ratio}")
        if not (0 <= self.chance_margin < 1):
            raise ValueError(f"chance_margin must be in [0, 1), got {self.chance_margin}")


@dataclass(frozen=True)
class AccuracyTarget:
    """A trainability milestone: steps until the moving minibatch accuracy reaches a target.

    The milestone is the first optimiser step at which the mean accuracy of the last
    ``window`` minibatches (each measured on the forward pass before its update) reaches
    ``accuracy``. It costs nothing beyond training itself; it lags the training accuracy of
    the current parameters by about half a window.
    """

    accuracy: float = 0.95
    window: int = 20

    def __post_init__(self) -> None:
        if not 0 < self.accuracy <= 1:
            raise ValueError(f"accuracy must be in (0, 1], got {self.accuracy}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")


def chance_accuracy(labels: Tensor) -> float:
    """The accuracy of always predicting the most common label.

    Example:
        >>> chance_accuracy(torch.tensor([0, 1, 1, 2]))
        0.5
    """
    return float(torch.bincount(labels).max()) / labels.numel()


def _final(rows: list[dict[str, Any]], epoch: int, split: str, metric: str) -> float:
    return next(
        r["value"] for r in rows if (r["epoch"], r["split"], r["metric"]) == (epoch, split, metric)
    )


def assess_run(
    rows: list[dict[str, Any]], epochs: int, chance: float, check: TrainingCheck
) -> tuple[str, str]:
    """``("completed", "")`` or ``("failed_to_train", reason)`` for a run that stayed finite.

    Args:
        rows: the run's metric rows (epoch 0 and ``epochs`` evaluated on both splits).
        epochs: the final epoch.
        chance: the test set's chance accuracy (:func:`chance_accuracy`).
        check: the thresholds.
    """
    initial = _final(rows, 0, "train", "loss")
    final = _final(rows, epochs, "train", "loss")
    accuracy = _final(rows, epochs, "test", "accuracy")
    reasons = []
    if final > check.max_loss_ratio * initial:
        reasons.append(
            f"final training loss {final:.3g} exceeds {check.max_loss_ratio:g} x the initial "
            f"{initial:.3g}"
        )
    if accuracy <= chance + check.chance_margin:
        reasons.append(
            f"final test accuracy {accuracy:.4f} is at chance ({chance:.4f} + margin "
            f"{check.chance_margin:g})"
        )
    return ("failed_to_train", "; ".join(reasons)) if reasons else ("completed", "")


@dataclass
class TrainResult:
    """What a run produced: the final model, per-epoch states and tidy metric rows."""

    model: nn.Module
    states: dict[int, dict[str, Tensor]]
    rows: list[dict[str, Any]]
    status: str  # one of STATUSES
    diverged_epoch: int | None
    resumed_from: int | None
    seconds: float
    config_hash: str
    reason: str = ""  # why a run is not "completed"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _RunState:
    """The mutable state of one run: what a checkpoint saves and a resume restores."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    order: torch.Generator
    rows: list[dict[str, Any]] = field(default_factory=list)
    states: dict[int, dict[str, Tensor]] = field(default_factory=dict)
    diverged_epoch: int | None = None
    steps: int | None = 0  # optimiser steps so far (None: resumed from a run that did not count)
    recent: list[float] = field(default_factory=list)  # the last minibatch accuracies
    reached_step: int | None = None  # first step whose moving accuracy met the target

    def record(self, epoch: int, split: str, metric: str, value: float) -> None:
        self.rows.append({"epoch": epoch, "split": split, "metric": metric, "value": value})

    def checkpoint(self, device: torch.device) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": capture_rng(device, order=self.order),
            "rows": self.rows,
            "states": self.states,
            "diverged_epoch": self.diverged_epoch,
            "steps": self.steps,
            "recent": self.recent,
            "reached_step": self.reached_step,
        }

    def restore(self, checkpoint: dict[str, Any], device: torch.device) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        restore_rng(checkpoint["rng"], device, order=self.order)
        self.rows, self.states = checkpoint["rows"], checkpoint["states"]
        self.diverged_epoch = checkpoint["diverged_epoch"]
        self.steps = checkpoint.get("steps")  # absent: written before steps were counted
        self.recent = checkpoint.get("recent", [])
        self.reached_step = checkpoint.get("reached_step")

    def count_step(self, accuracy: float, target: AccuracyTarget | None) -> None:
        """Count one optimiser step and follow the moving minibatch accuracy to ``target``."""
        if self.steps is None:
            return
        self.steps += 1
        if target is None or self.reached_step is not None:
            return
        self.recent = (
            [*self.recent[-(target.window - 1) :], accuracy] if target.window > 1 else [accuracy]
        )
        if (
            len(self.recent) == target.window
            and sum(self.recent) / target.window >= target.accuracy
        ):
            self.reached_step = self.steps


def _evaluate_epoch(run: _RunState, data: Dataset, epoch: int) -> None:
    """Full-set loss and accuracy on both splits, and the weights, at the end of ``epoch``."""
    for split, (x, y) in (
        ("train", (data.train_x, data.train_y)),
        ("test", (data.test_x, data.test_y)),
    ):
        loss, accuracy = evaluate(run.model, x, y)
        run.record(epoch, split, "loss", loss)
        run.record(epoch, split, "accuracy", accuracy)
    run.states[epoch] = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}


def _train_epoch(
    run: _RunState,
    data: Dataset,
    epoch: int,
    batch_size: int,
    bar_label: str,
    progress: bool,
    target: AccuracyTarget | None = None,
) -> bool:
    """One pass over the shuffled training set; False when the loss became NaN or infinite."""
    n_train = data.train_x.shape[0]
    run.model.train()
    permutation = torch.randperm(n_train, generator=run.order).to(data.train_x.device)
    running_loss, running_correct, seen = 0.0, 0, 0
    bar = tqdm(range(0, n_train, batch_size), desc=bar_label, disable=not progress, mininterval=2.0)
    for start in bar:
        index = permutation[start : start + batch_size]
        inputs, targets = data.train_x[index], data.train_y[index]
        outputs = run.model(inputs)
        loss = F.cross_entropy(outputs, targets)
        if not math.isfinite(loss.item()):
            bar.close()
            return False
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        correct = int((outputs.argmax(1) == targets).sum())
        running_loss += loss.item() * targets.shape[0]
        running_correct += correct
        seen += targets.shape[0]
        run.count_step(correct / targets.shape[0], target)
        bar.set_postfix(loss=f"{running_loss / seen:.4f}", refresh=False)
    bar.close()
    run.record(epoch, "train", "running_loss", running_loss / seen)
    run.record(epoch, "train", "running_accuracy", running_correct / seen)
    return True


def _resume_or_start(
    run: _RunState,
    store: CheckpointStore,
    data: Dataset,
    device: torch.device,
    save: Callable[[int], None],
) -> int | None:
    """Restore the newest checkpoint (its epoch is returned), or evaluate and save epoch 0."""
    checkpoint = store.latest()
    if checkpoint is not None:
        run.restore(checkpoint, device)
        return checkpoint["epoch"]
    _evaluate_epoch(run, data, 0)
    save(0)
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
    check: TrainingCheck | None = None,
    target: AccuracyTarget | None = None,
) -> TrainResult:
    """Train one run, resuming from ``checkpoint_dir`` when it holds checkpoints of it.

    Args:
        spec: ``{"model": {...}, "optimizer": {...}, "epochs": int, "batch_size": int}``.
        data: normalised tensors (moved to ``device`` here).
        seed: seeds the initialisation and the minibatch order.
        checkpoint_dir: the run's checkpoint folder; a :class:`~lossgeom.checkpoints.CheckpointStore`
            keyed by the hash of ``spec``, ``seed``, ``identity`` and the device type lives
            inside it, so checkpoints of another configuration are never resumed.
        device: where to train.
        progress: show a tqdm bar per epoch.
        after_checkpoint: called with the epoch after each checkpoint is written.
        identity: what else makes the run (data normalisation and checksums, say); it enters
            the key, so checkpoints of other data are never resumed.
        check: when a finite run counts as ``failed_to_train`` (default :class:`TrainingCheck`);
            it judges the result only, so it is not part of the checkpoint key.
        target: a milestone to follow (:class:`AccuracyTarget`; observes only, so not in the
            key); ``extra["steps_to_target"]`` is None if not reached (or not counted).

    Returns:
        A :class:`TrainResult`; metric rows have keys ``epoch, split, metric, value``.
    """
    start_time = time.perf_counter()
    device = torch.device(device)
    epochs, batch_size = int(spec["epochs"]), int(spec["batch_size"])
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"epochs must be >= 0 and batch_size >= 1, got {epochs} and {batch_size}")
    store = CheckpointStore(
        checkpoint_dir, {"spec": spec, "seed": seed, "identity": identity, "device": device.type}
    )
    data = data.to(device)
    torch.manual_seed(seed)
    model = build_model(spec["model"]).to(device)
    run = _RunState(
        model,
        build_optimizer(spec["optimizer"], model.parameters()),
        torch.Generator(device="cpu").manual_seed(seed + 1_000_003),
    )

    def save(epoch: int) -> None:
        store.save(epoch, run.checkpoint(device))
        if after_checkpoint is not None:
            after_checkpoint(epoch)

    resumed_from = _resume_or_start(run, store, data, device, save)
    for epoch in range(1 if resumed_from is None else resumed_from + 1, epochs + 1):
        if run.diverged_epoch is not None:
            break
        if not _train_epoch(
            run, data, epoch, batch_size, f"seed {seed} epoch {epoch}/{epochs}", progress, target
        ):
            run.diverged_epoch = epoch
            run.record(epoch, "train", "diverged", 1.0)
            save(epoch)
            break
        _evaluate_epoch(run, data, epoch)
        save(epoch)

    status, reason = _judge(run, epochs, chance_accuracy(data.test_y), check or TrainingCheck())
    return TrainResult(
        model=run.model, states=run.states, rows=run.rows, status=status, reason=reason,
        diverged_epoch=run.diverged_epoch, resumed_from=resumed_from,
        seconds=time.perf_counter() - start_time, config_hash=store.key,
        extra={"steps": run.steps, "steps_to_target": run.reached_step},
    )  # fmt: skip


def _judge(run: _RunState, epochs: int, chance: float, check: TrainingCheck) -> tuple[str, str]:
    """The run's status and the reason when it is not ``completed``."""
    if run.diverged_epoch is not None:
        return (
            "diverged",
            f"the minibatch loss became NaN or infinite in epoch {run.diverged_epoch}",
        )
    return assess_run(run.rows, epochs, chance, check)
