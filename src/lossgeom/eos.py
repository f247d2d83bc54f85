"""Full-batch gradient descent at the edge of stability (Cohen et al. 2021).

Gradient descent with step ``eta`` on a quadratic is stable only while the top Hessian
eigenvalue (the *sharpness*) stays below ``2 / eta``; with heavy-ball momentum ``beta``
(``v <- beta v + g``, ``theta <- theta - eta v``, PyTorch's SGD) the bound is
``2 (1 + beta) / eta``. Cohen et al. observe that full-batch GD on neural networks first
sharpens progressively until the sharpness reaches that threshold and then hovers at or just
above it while the loss keeps falling, non-monotonically.

This module runs that experiment: :func:`gradient_descent` trains on a fixed set with the
full-batch gradient (in chunks, weighted by their sizes, so it is exact) and measures the
sharpness every few steps by Lanczos warm-started from the previous top eigenvector (a few
Hessian-vector products per measurement). :func:`learning_rate` picks ``eta`` from the
measured initial sharpness ``lambda0`` so that every run starts stable, and :func:`summarise`
condenses a run into how long and how closely it stayed at the edge.

Losses (:data:`LOSSES`): ``mse`` is Cohen et al.'s main loss, half the squared error
against one-hot targets summed over classes and averaged over samples; ``cross_entropy`` the
usual one. The model is kept in eval mode (the networks here have no dropout or BatchNorm).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lossgeom.data import chunks
from lossgeom.estimators import lanczos_top_eigenpairs
from lossgeom.hessian import HessianOperator
from lossgeom.models import evaluation_mode

LossFn = Callable[[Tensor, Tensor], Tensor]

__all__ = [
    "LOSSES",
    "EdgeSummary",
    "GDRun",
    "gradient_descent",
    "learning_rate",
    "mse_onehot",
    "sharpness",
    "stability_threshold",
    "summarise",
]


def mse_onehot(outputs: Tensor, targets: Tensor) -> Tensor:
    """Half the squared error against one-hot targets, summed over classes, mean over samples."""
    onehot = F.one_hot(targets, outputs.shape[1]).to(outputs.dtype)
    return 0.5 * (outputs - onehot).pow(2).sum(1).mean()


LOSSES: dict[str, LossFn] = {"mse": mse_onehot, "cross_entropy": F.cross_entropy}


def stability_threshold(lr: float, momentum: float = 0.0) -> float:
    """``2 (1 + beta) / eta``: the largest sharpness GD (heavy ball ``beta``) is stable at."""
    if not (lr > 0 and 0 <= momentum < 1):
        raise ValueError(f"need lr > 0 and 0 <= momentum < 1, got {lr} and {momentum}")
    return 2.0 * (1.0 + momentum) / lr


def learning_rate(lambda0: float, factor: float, momentum: float = 0.0) -> float:
    """The step whose threshold is ``factor`` times the initial sharpness ``lambda0``.

    ``eta = 2 (1 + beta) / (factor lambda0)``, which is ``2 / (c lambda0)`` without momentum:
    with ``factor > 1`` the run starts stable and sharpening has room to rise to the edge.
    """
    if not factor > 1:
        raise ValueError(f"the factor c must be > 1 for the run to start stable, got {factor}")
    if not (math.isfinite(lambda0) and lambda0 > 0):
        raise ValueError(f"the initial sharpness must be positive and finite, got {lambda0}")
    return stability_threshold(1.0, momentum) / (factor * lambda0)


def sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    batches,
    start: Tensor | None = None,
    max_iter: int = 100,
    tol: float = 1e-4,
    seed: int = 0,
) -> tuple[float, Tensor, int]:
    """The top Hessian eigenvalue, its eigenvector and the products taken.

    Lanczos from ``start`` (a warm start) or from a seeded Gaussian vector.
    """
    with HessianOperator(model, loss_fn, batches) as operator:
        like = torch.empty(0, dtype=operator.dtype, device=operator.device)
        result = lanczos_top_eigenpairs(
            operator.matvec, operator.dim, k=1, tol=tol, max_iter=max_iter, seed=seed,
            like=like, start=start,
        )  # fmt: skip
    return float(result.values[0]), result.vectors[0].detach(), result.n_hvp


@dataclass
class GDRun:
    """One gradient-descent run.

    Attributes:
        rows: ``(step, quantity, value)`` with quantity ``train_loss``, ``train_accuracy``
            (every step, before that step's update) and ``sharpness`` (every
            ``measure_every`` steps and at the last one).
        lr, momentum, threshold: the step, heavy-ball coefficient and ``2 (1 + beta) / eta``.
        diverged_step: the step whose loss was not finite or exceeded the divergence limit.
        n_hvp, seconds: Hessian-vector products and wall time.
    """

    lr: float
    momentum: float
    threshold: float
    rows: list[tuple[int, str, float]] = field(default_factory=list)
    diverged_step: int | None = None
    n_hvp: int = 0
    seconds: float = 0.0


def full_batch_gradient(
    model: nn.Module, loss_fn: LossFn, batches, params: list[Tensor]
) -> tuple[float, float]:
    """Full-batch mean loss and accuracy; the exact full-batch gradient left in ``.grad``."""
    total = sum(x.shape[0] for x, _ in batches)
    for p in params:
        p.grad = None
    loss_sum, correct = 0.0, 0
    for x, y in batches:
        out = model(x)
        loss = loss_fn(out, y)
        (loss * (x.shape[0] / total)).backward()
        loss_sum += float(loss.detach()) * x.shape[0]
        correct += int((out.detach().argmax(1) == y).sum())
    return loss_sum / total, correct / total


def _measure(run: GDRun, step, model, loss_fn, batches, vector, lanczos_iter, tol, seed, known):
    """Record the sharpness at ``step`` (warm-started from ``vector``, or ``known`` when given)."""
    if known is not None:
        run.rows.append((step, "sharpness", known))
        return known, vector
    value, vector, n = sharpness(
        model, loss_fn, batches, start=vector,
        max_iter=lanczos_iter if vector is not None else max(100, lanczos_iter), tol=tol, seed=seed,
    )  # fmt: skip
    run.n_hvp += n
    run.rows.append((step, "sharpness", value))
    return value, vector


def gradient_descent(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    lr: float,
    steps: int,
    momentum: float = 0.0,
    measure_every: int = 20,
    lanczos_iter: int = 20,
    tol: float = 1e-3,
    chunk_size: int = 5000,
    divergence_factor: float = 1e3,
    seed: int = 0,
    start_vector: Tensor | None = None,
    lambda0: float | None = None,
    on_measure: Callable[[int, float, float], None] | None = None,
    stop_after_edge: int | None = None,
    edge: float = 0.95,
) -> GDRun:
    """Full-batch gradient descent (heavy ball with ``momentum``) with tracked sharpness.

    Args:
        model: trained in place (eval mode throughout; modes restored).
        loss_fn: the mean loss, e.g. from :data:`LOSSES`.
        x: the whole training set's inputs (one full-batch gradient per step, in chunks).
        y: its targets.
        lr: the step.
        momentum: the heavy-ball coefficient (PyTorch's SGD).
        steps: updates to take.
        measure_every: steps between sharpness measurements.
        lanczos_iter: the Krylov cap of a warm-started measurement (a cold one: 100).
        tol: Lanczos' relative Ritz-residual tolerance.
        chunk_size: samples per forward pass.
        divergence_factor: stop when the loss is not finite or exceeds this x the initial.
        seed: seeds the first Lanczos start.
        start_vector: a warm start for the first measurement (``lambda0``'s eigenvector).
        lambda0: the sharpness measured at the start, recorded at step 0 (with a start vector).
        on_measure: called with ``(step, loss, sharpness)`` after each measurement.
        stop_after_edge: stop this many steps after the sharpness first reached ``edge`` x
            the threshold (None: run every step).
        edge: the fraction of the threshold that counts as reaching the edge.

    Returns:
        A :class:`GDRun`.
    """
    if steps < 1 or measure_every < 1:
        raise ValueError(f"need steps >= 1 and measure_every >= 1, got {steps} and {measure_every}")
    start_time = time.perf_counter()
    run = GDRun(lr=lr, momentum=momentum, threshold=stability_threshold(lr, momentum))
    batches = chunks(x, y, chunk_size)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum)
    vector, initial, reached = start_vector, math.nan, None
    with evaluation_mode(model):
        for step in range(steps + 1):
            loss, accuracy = full_batch_gradient(model, loss_fn, batches, params)
            initial = loss if step == 0 else initial
            run.rows.append((step, "train_loss", loss))
            if not math.isfinite(loss) or loss > divergence_factor * max(initial, 1e-12):
                run.diverged_step = step
                break
            run.rows.append((step, "train_accuracy", accuracy))
            if step % measure_every == 0 or step == steps:
                # The gradient stays in .grad: the operator differentiates its own graph.
                known = lambda0 if step == 0 and start_vector is not None else None
                value, vector = _measure(run, step, model, loss_fn, batches, vector,
                                         lanczos_iter, tol, seed, known)  # fmt: skip
                if on_measure is not None:
                    on_measure(step, loss, value)
                reached = step if reached is None and value >= edge * run.threshold else reached
                if None not in (stop_after_edge, reached) and step - reached >= stop_after_edge:
                    break
            if step < steps:
                optimizer.step()
        for p in params:
            p.grad = None
    run.seconds = time.perf_counter() - start_time
    return run


@dataclass(frozen=True)
class EdgeSummary:
    """How a run met the edge of stability (all but ``lambda0`` NaN/None if it never did).

    Attributes:
        first_step_at_threshold: the first measured step with sharpness >= ``edge`` times the
            threshold.
        median_ratio, ratio_q10, ratio_q90: quantiles of sharpness / threshold over the
            measurements from that step on.
        steps_at_edge: the steps from that step to the last measurement.
    """

    first_step_at_threshold: int | None
    median_ratio: float
    ratio_q10: float
    ratio_q90: float
    steps_at_edge: int


def summarise(steps, values, threshold: float, edge: float = 0.95) -> EdgeSummary:
    """Summarise measured sharpness ``values`` at ``steps`` against ``threshold``."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    order = np.argsort(steps)
    steps, values = steps[order], values[order]
    reached = np.flatnonzero(np.isfinite(values) & (values >= edge * threshold))
    if reached.size == 0:
        return EdgeSummary(None, math.nan, math.nan, math.nan, 0)
    first = reached[0]
    ratio = values[first:] / threshold
    ratio = ratio[np.isfinite(ratio)]
    return EdgeSummary(
        first_step_at_threshold=int(steps[first]),
        median_ratio=float(np.median(ratio)),
        ratio_q10=float(np.quantile(ratio, 0.1)),
        ratio_q90=float(np.quantile(ratio, 0.9)),
        steps_at_edge=int(steps[-1] - steps[first]),
    )


def summary_table(frame, edge: float = 0.95):
    """``results/tables/eos_summary.csv`` from ``results/tables/eos.csv``: one row per run.

    ``lambda0`` is the sharpness measured at step 0; ``steps`` the last step with a recorded
    loss; ``diverged_step`` is set when the run stopped early (that step's loss is the last
    row, without accuracy or sharpness). The edge columns follow :func:`summarise`.
    """
    import pandas as pd

    from lossgeom.tables import columns

    keys = ["experiment", "run", "loss", "lr", "momentum", "threshold"]
    rows = []
    for key, group in frame.groupby(keys, sort=False):
        sharp = group[group["quantity"] == "sharpness"].sort_values("step")
        losses = group[group["quantity"] == "train_loss"].sort_values("step")
        accuracy_steps = set(group.loc[group["quantity"] == "train_accuracy", "step"])
        last = int(losses["step"].max()) if len(losses) else 0
        diverged = None if last in accuracy_steps else last
        lambda0 = sharp.loc[sharp["step"] == 0, "value"]
        summary = summarise(sharp["step"], sharp["value"], float(key[-1]), edge)
        rows.append({
            **dict(zip(keys, key, strict=True)),
            "lambda0": float(lambda0.iloc[0]) if len(lambda0) else math.nan,
            "first_step_at_threshold": summary.first_step_at_threshold,
            "median_ratio": summary.median_ratio,
            "ratio_q10": summary.ratio_q10,
            "ratio_q90": summary.ratio_q90,
            "steps_at_edge": summary.steps_at_edge if summary.first_step_at_threshold is not None else None,
            "steps": last,
            "diverged_step": diverged,
        })  # fmt: skip
    out = pd.DataFrame(rows, columns=columns("eos_summary"))
    for column in ("first_step_at_threshold", "steps_at_edge", "diverged_step"):
        out[column] = out[column].astype("Int64")
    return out
