"""SGD's temperature: the learning rate over the batch size (Jastrzebski et al. 2018; Smith & Le 2018).

In the SDE picture of SGD the noise scale is ``eta / B``; the claim tested here is that a
larger ``eta / B`` ends training at lower sharpness, and that runs with equal ``eta / B`` land
at similar sharpness whatever ``eta`` and ``B`` are separately. :func:`train_cell` trains one
grid point with the report's recipe (through :func:`lossgeom.training.train`, so a cell
resumes from its checkpoints) and measures its final sharpness, trace and accuracy;
:func:`summarise` condenses the grid into Kendall's tau between ``eta / B`` and the final
sharpness and the spreads of log sharpness within groups of equal ``eta / B``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from lossgeom import hessian
from lossgeom.data import Dataset, chunks
from lossgeom.summaries import temperature_summary
from lossgeom.tables import TEMPERATURE_QUANTITIES
from lossgeom.training import TrainingCheck, evaluate, train

QUANTITIES = tuple(TEMPERATURE_QUANTITIES)

__all__ = ["QUANTITIES", "summarise", "train_cell"]

summarise = temperature_summary  # the grid's statistics live in the torch-free summaries


def train_cell(
    spec: dict[str, Any],
    data: Dataset,
    seed: int,
    checkpoint_dir: str | os.PathLike,
    curvature_size: int,
    trace_matvecs: int = 30,
    tol: float = 1e-3,
    chunk_size: int = 1000,
    device: torch.device | str = "cpu",
    identity: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[tuple[str, float]], str]:
    """Train one grid point and measure it.

    Args:
        spec: the run's ``model``, ``optimizer``, ``epochs`` and ``batch_size``.
        data: the training set (a subset, for the CPU default) and the test set.
        seed: the run's seed.
        checkpoint_dir: the cell's checkpoint folder (keyed inside by every setting).
        curvature_size: the first this-many training samples define the Hessian.
        trace_matvecs: Hutch++ products for the trace.
        tol: Lanczos' relative Ritz-residual tolerance.
        chunk_size: samples per Hessian-vector-product chunk.
        device: where to train and measure.
        identity: what else makes the run (enters the checkpoint key), as in
            :func:`lossgeom.training.train`.
        log: receives one progress line.

    Returns:
        ``(quantity, value)`` rows (NaN when the run did not complete) and the run's status.
    """
    result = train(spec, data, seed, checkpoint_dir, device=device, progress=False,
                   identity=identity, check=TrainingCheck())  # fmt: skip
    if result.status != "completed":
        log(f"seed {seed}: {result.status} ({result.reason}); writing NaN")
        return [(q, math.nan) for q in QUANTITIES], result.status
    model = result.model
    x, y = data.train_x.to(device), data.train_y.to(device)
    batches = chunks(x[:curvature_size], y[:curvature_size], chunk_size)
    eig = hessian.top_eigenvalues(model, F.cross_entropy, batches, k=1, tol=tol, seed=seed)
    trace = hessian.trace(model, F.cross_entropy, batches, n_matvecs=trace_matvecs, seed=seed)
    train_loss = evaluate(model, x, y)[0]
    test_accuracy = evaluate(model, data.test_x.to(device), data.test_y.to(device))[1]
    log(f"seed {seed}: sharpness {float(eig.values[0]):.4g}, trace {trace.estimate:.4g}, "
        f"test accuracy {test_accuracy:.4f} ({result.seconds:.1f}s training)")  # fmt: skip
    rows = [
        ("final_sharpness", float(eig.values[0])),
        ("final_trace", trace.estimate),
        ("test_accuracy", test_accuracy),
        ("train_loss", train_loss),
    ]
    return rows, result.status
