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

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats

from lossgeom import hessian
from lossgeom.data import Dataset, chunks
from lossgeom.tables import TEMPERATURE_QUANTITIES
from lossgeom.training import TrainingCheck, evaluate, train

QUANTITIES = tuple(TEMPERATURE_QUANTITIES)

__all__ = ["QUANTITIES", "summarise", "train_cell"]


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


def summarise(frame: pd.DataFrame, quantity: str = "final_sharpness") -> dict[str, float]:
    """Kendall's tau between ``eta / B`` and ``quantity``, and spreads of its logarithm.

    Args:
        frame: rows of ``results/tables/temperature.csv`` (``lr, batch_size, seed, quantity,
            value``); NaN values (runs that did not complete) are left out.
        quantity: the measured quantity compared.

    Returns:
        ``n_runs``; ``kendall_tau`` and its two-sided ``kendall_p`` over every run;
        ``equal_ratio_groups``, the number of ``eta / B`` values shared by at least two
        distinct ``(eta, B)`` cells; ``equal_ratio_spread``, the pooled standard deviation of
        ``log10(quantity)`` within those groups; ``seed_spread``, the pooled standard deviation
        within cells (seeds only: the noise floor); ``overall_spread``, that of all runs.
    """
    rows = frame[(frame["quantity"] == quantity) & np.isfinite(frame["value"])].copy()
    rows = rows[rows["value"] > 0]
    rows["ratio"] = rows["lr"] / rows["batch_size"]
    rows["log_value"] = np.log10(rows["value"])
    rows["ratio_key"] = np.round(np.log(rows["ratio"]), 9)
    out: dict[str, float] = {"n_runs": float(len(rows))}
    if len(rows) >= 3:
        tau, p = stats.kendalltau(rows["ratio_key"], rows["value"])  # ties exact
        out["kendall_tau"], out["kendall_p"] = float(tau), float(p)
    else:
        out["kendall_tau"] = out["kendall_p"] = math.nan

    def pooled(groups) -> float:
        squares, dof = 0.0, 0
        for _, values in groups:
            if len(values) >= 2:
                squares += float(((values - values.mean()) ** 2).sum())
                dof += len(values) - 1
        return math.sqrt(squares / dof) if dof else math.nan

    shared = [
        group["log_value"]
        for _, group in rows.groupby("ratio_key")
        if group[["lr", "batch_size"]].drop_duplicates().shape[0] >= 2
    ]
    out["equal_ratio_groups"] = float(len(shared))
    out["equal_ratio_spread"] = pooled((None, g) for g in shared)
    out["seed_spread"] = pooled(
        (key, g["log_value"]) for key, g in rows.groupby(["lr", "batch_size"])
    )
    out["overall_spread"] = float(rows["log_value"].std(ddof=1)) if len(rows) >= 2 else math.nan
    return out
