"""Escaping a sharp minimum under differently shaped noise (Zhu et al. 2019, section 5).

From a sharp minimum reached by full-batch gradient descent on a small training set, the run
continues with one of five dynamics, all at the same step ``eta``:

* ``gd``: full-batch gradient descent (no noise);
* ``sgd``: minibatch SGD, ``B`` samples drawn with replacement, so its gradient noise has
  covariance ``Sigma / B`` exactly, ``Sigma`` being the one-sample gradient covariance;
* ``gld_isotropic``, ``gld_diagonal``, ``gld_leading``: gradient Langevin dynamics, the
  full-batch gradient plus Gaussian noise ``N(0, C / B)`` with ``C`` the isotropic matrix
  ``Tr(Sigma)/D I``, the diagonal of ``Sigma``, or ``Sigma`` restricted to its top-``k``
  eigenspace and rescaled to the same trace. Every noisy dynamics therefore injects the same
  total variance ``Tr(Sigma) / B`` per step; only its shape differs.

``Sigma`` is measured once, at the starting minimum, from the per-sample gradients of the
whole training set (:func:`lossgeom.noise.per_sample_gradients`), as its diagonal and its
top-``k`` eigenpairs (from the ``n x n`` Gram matrix); it is not updated along the run.

A run *escaped* when its final sharpness is at most ``escape_ratio`` (default 0.5) times the
final sharpness of plain GD continued from the same start for as many steps (see
:func:`summary_table`): with the cross-entropy, curvature falls as GD alone keeps fitting the
training set, so the start itself would credit every dynamics with an escape.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats
from torch import Tensor, nn

from lossgeom import tables
from lossgeom.data import chunks
from lossgeom.eos import full_batch_gradient, sharpness
from lossgeom.models import evaluation_mode, flat_parameters
from lossgeom.noise import per_sample_gradients, sigma_eigenpairs
from lossgeom.training import evaluate

LossFn = Callable[[Tensor, Tensor], Tensor]

DYNAMICS = tuple(tables.DYNAMICS)
QUANTITIES = tuple(tables.ESCAPE_QUANTITIES)

__all__ = [
    "DYNAMICS",
    "GaussianNoise",
    "NoiseStatistics",
    "Trajectory",
    "confidence_interval",
    "continue_run",
    "escaped",
    "noise_statistics",
]


@dataclass
class NoiseStatistics:
    """What the samplers need of ``Sigma``: its trace, diagonal and top-k eigenpairs."""

    trace: float
    diagonal: Tensor
    values: Tensor  # (k,) descending
    vectors: Tensor  # (k, D) orthonormal rows


def noise_statistics(model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, k: int = 20,
                     chunk_size: int = 256) -> NoiseStatistics:  # fmt: skip
    """``Sigma`` (unbiased, over the samples ``x, y``) as trace, diagonal and top-k pairs."""
    if not 1 <= k < x.shape[0]:
        raise ValueError(f"need 1 <= k < n samples, got k={k} and n={x.shape[0]}")
    centred = per_sample_gradients(model, loss_fn, x, y, chunk_size)
    centred -= centred.mean(0)
    values, vectors = sigma_eigenpairs(centred, k)
    diagonal = (centred.double() ** 2).sum(0) / (x.shape[0] - 1)
    return NoiseStatistics(float(diagonal.sum()), diagonal, values, vectors)


class GaussianNoise:
    """Zero-mean Gaussian noise of covariance ``scale * C`` for one shape of ``C``.

    Args:
        kind: ``isotropic`` (``Tr(Sigma)/D I``), ``diagonal`` (``diag Sigma``) or ``leading``
            (``Sigma``'s top-k eigenpairs, eigenvalues rescaled so the trace is ``Tr Sigma``).
        statistics: the measured :class:`NoiseStatistics`.
        scale: multiplies the covariance (``1 / B`` to match SGD with batch ``B``).
    """

    KINDS = ("isotropic", "diagonal", "leading")

    def __init__(self, kind: str, statistics: NoiseStatistics, scale: float = 1.0) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"noise kind must be one of {self.KINDS}, got {kind!r}")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.kind = kind
        self.dim = statistics.diagonal.numel()
        self.scale = scale
        self.statistics = statistics
        if kind == "leading":
            self.values = statistics.values * (statistics.trace / float(statistics.values.sum()))

    def covariance(self) -> Tensor:
        """The dense covariance (for tests on small models)."""
        s = self.statistics
        if self.kind == "isotropic":
            dense = torch.eye(self.dim, dtype=torch.float64) * (s.trace / self.dim)
        elif self.kind == "diagonal":
            dense = torch.diag(s.diagonal.double().cpu())
        else:
            vectors = s.vectors.double().cpu()
            dense = vectors.T @ torch.diag(self.values.double().cpu()) @ vectors
        return dense * self.scale

    def sample(self, generator: torch.Generator, like: Tensor) -> Tensor:
        """One draw, with ``like``'s dtype and device (``generator`` on the CPU)."""
        s = self.statistics
        if self.kind == "leading":
            z = torch.randn(len(self.values), generator=generator, dtype=torch.float64)
            draw = (z * (self.values.cpu() * self.scale).sqrt()) @ s.vectors.double().cpu()
        else:
            z = torch.randn(self.dim, generator=generator, dtype=torch.float64)
            variance = (
                torch.full((self.dim,), s.trace / self.dim, dtype=torch.float64)
                if self.kind == "isotropic"
                else s.diagonal.double().cpu()
            )
            draw = z * (variance * self.scale).sqrt()
        return draw.to(dtype=like.dtype, device=like.device)


@dataclass
class Trajectory:
    """One continuation: ``(step, quantity, value)`` rows (quantities in :data:`QUANTITIES`)."""

    dynamics: str
    rows: list[tuple[int, str, float]] = field(default_factory=list)
    diverged_step: int | None = None
    seconds: float = 0.0

    def final(self, quantity: str) -> float:
        """The last measured value of ``quantity`` (NaN if never measured)."""
        values = [v for _, q, v in self.rows if q == quantity]
        return values[-1] if values else math.nan


def continue_run(
    model: nn.Module,
    loss_fn: LossFn,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    dynamics: str,
    lr: float,
    steps: int,
    batch_size: int,
    statistics: NoiseStatistics,
    seed: int,
    measure_every: int = 50,
    lanczos_iter: int = 20,
    tol: float = 1e-3,
    chunk_size: int = 5000,
) -> Trajectory:
    """Continue from the model's current parameters with one of :data:`DYNAMICS`.

    The model's parameters are changed in place (the caller restores the start for the next
    dynamics). Measured at step 0, every ``measure_every`` steps and at the end: full training
    loss, test accuracy, sharpness (Lanczos warm-started from the previous measurement) and
    the Euclidean distance from the start.

    Args:
        model: the network at the starting minimum.
        loss_fn: its mean loss.
        train: ``(x, y)`` of the training set (the full batch).
        test: ``(x, y)`` of the test set.
        dynamics: one of :data:`DYNAMICS`.
        lr: the step, the same for every dynamics.
        steps: updates to take.
        batch_size: SGD's batch ``B``; the Langevin noise is scaled by ``1 / B`` to match it.
        statistics: ``Sigma`` at the start (:func:`noise_statistics`).
        seed: seeds the minibatches or the noise.
        measure_every: steps between measurements.
        lanczos_iter: the Krylov cap of each warm-started sharpness measurement.
        tol: Lanczos' relative Ritz-residual tolerance.
        chunk_size: samples per forward pass of the full-batch gradient.
    """
    if dynamics not in DYNAMICS:
        raise ValueError(f"dynamics must be one of {DYNAMICS}, got {dynamics!r}")
    start_time = time.perf_counter()
    x, y = train
    n = x.shape[0]
    batches = chunks(x, y, chunk_size)
    params = [p for p in model.parameters() if p.requires_grad]
    start = flat_parameters(model).clone()
    generator = torch.Generator().manual_seed(int(seed))
    noise = (
        GaussianNoise(dynamics.removeprefix("gld_"), statistics, scale=1.0 / batch_size)
        if dynamics.startswith("gld_")
        else None
    )
    trajectory = Trajectory(dynamics)
    vector = statistics.vectors[0].to(start)  # Sigma's top direction: a warm start as good as any
    with evaluation_mode(model):
        for step in range(steps + 1):
            if step % measure_every == 0 or step == steps:
                loss, _ = evaluate_loss(model, loss_fn, batches)
                if not math.isfinite(loss):
                    trajectory.diverged_step = step
                    trajectory.rows.append((step, "train_loss", loss))
                    break
                value, vector, _ = sharpness(model, loss_fn, batches, start=vector,
                                             max_iter=lanczos_iter, tol=tol, seed=seed)  # fmt: skip
                accuracy = evaluate(model, *test)[1]
                distance = float(torch.linalg.vector_norm(flat_parameters(model) - start))
                trajectory.rows += [(step, "train_loss", loss), (step, "test_accuracy", accuracy),
                                    (step, "sharpness", value), (step, "distance", distance)]  # fmt: skip
            if step == steps:
                break
            if dynamics == "sgd":  # B samples drawn with replacement: noise covariance Sigma / B
                index = torch.randint(n, (batch_size,), generator=generator).to(x.device)
                _update(model, loss_fn, [(x[index], y[index])], params, lr, None, generator)
            else:
                _update(model, loss_fn, batches, params, lr, noise, generator)
        for p in params:
            p.grad = None
    trajectory.seconds = time.perf_counter() - start_time
    return trajectory


def _update(model, loss_fn, batches, params, lr, noise, generator) -> None:
    """One step ``theta <- theta - lr (gradient + noise)`` in place (no noise for GD and SGD).

    The noise is drawn in float64 on the CPU from ``generator`` and then cast, so a seed gives
    the same draws on every device.
    """
    full_batch_gradient(model, loss_fn, batches, params)
    with torch.no_grad():
        draw = noise.sample(generator, params[0]) if noise is not None else None
        offset = 0
        for p in params:
            step = p.grad
            if draw is not None:
                step = step + draw[offset : offset + p.numel()].view_as(p)
                offset += p.numel()
            p.sub_(lr * step)


@torch.no_grad()
def evaluate_loss(model: nn.Module, loss_fn: LossFn, batches) -> tuple[float, int]:
    """The mean loss over ``batches`` (weighted by size) and the sample count."""
    total, count = 0.0, 0
    for x, y in batches:
        total += float(loss_fn(model(x), y)) * x.shape[0]
        count += x.shape[0]
    return total / count, count


def escaped(final_sharpness: float, reference_sharpness: float, ratio: float = 0.5) -> bool:
    """Whether a run ended at most ``ratio`` times as sharp as the reference (plain GD's end)."""
    return bool(math.isfinite(final_sharpness) and final_sharpness <= ratio * reference_sharpness)


def confidence_interval(
    values, level: float = 0.95, proportion: bool = False
) -> tuple[float, float, float]:
    """Mean and two-sided interval: Student's t for means, Wilson's score for proportions."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = values.size
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if proportion:
        z = float(stats.norm.ppf(0.5 + level / 2))
        centre = (mean + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return mean, max(0.0, centre - half), min(1.0, centre + half)
    if n == 1:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * float(values.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def _final_values(run) -> dict[str, float]:
    """The last measured value of each quantity of one trajectory (NaN where missing)."""
    last = run["step"].max()
    out = {}
    for quantity in ("test_accuracy", "sharpness", "distance"):
        value = run.loc[(run["quantity"] == quantity) & (run["step"] == last), "value"]
        out[quantity] = float(value.iloc[0]) if len(value) else math.nan
    return out


def summary_table(frame, escape_ratio: float = 0.5, level: float = 0.95):
    """``results/tables/escape_summary.csv`` from ``results/tables/escape.csv``.

    Per dynamics, over its seeds: the mean final test accuracy, sharpness and distance with
    Student-t intervals, and the fraction of seeds that escaped with Wilson's interval. A seed
    escaped when its final sharpness is at most ``escape_ratio`` times that of plain GD run
    from the same start for as many steps (:func:`escaped`): the cross-entropy's curvature
    also falls as GD alone keeps fitting, so the start is not the reference. A run that
    diverged counts as not escaped and has NaN finals (left out of the means).

    Raises:
        ValueError: the table has no ``gd`` trajectory to compare with.
    """
    import pandas as pd

    from lossgeom.tables import columns

    finals = {
        key: _final_values(run) for key, run in frame.groupby(["experiment", "seed", "dynamics"])
    }
    reference = {(e, s): v["sharpness"] for (e, s, d), v in finals.items() if d == "gd"}
    if not reference and finals:
        raise ValueError("escape fractions are judged against plain GD: include 'gd'")
    rows = []
    for dynamics in DYNAMICS:
        runs = {(e, s): v for (e, s, d), v in finals.items() if d == dynamics}
        if not runs:
            continue
        escapes = [
            float(escaped(v["sharpness"], reference[key], escape_ratio))
            if key in reference
            else math.nan
            for key, v in runs.items()
        ]
        for quantity, values, proportion in (
            ("final_test_accuracy", [v["test_accuracy"] for v in runs.values()], False),
            ("final_sharpness", [v["sharpness"] for v in runs.values()], False),
            ("final_distance", [v["distance"] for v in runs.values()], False),
            ("escaped_fraction", escapes, True),
        ):
            mean, low, high = confidence_interval(values, level, proportion=proportion)
            rows.append({"dynamics": dynamics, "n_seeds": len(runs), "quantity": quantity,
                         "mean": mean, "ci_low": low, "ci_high": high})  # fmt: skip
    return pd.DataFrame(rows, columns=columns("escape_summary"))
