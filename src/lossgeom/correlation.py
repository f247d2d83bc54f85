"""How well a measure ranks a population of trained models (Jiang et al. 2020).

A generalisation measure is judged by how it orders models, not by its scale: Kendall's rank
correlation tau between the measure and the generalisation gap (or the test error) over all
models, with a bootstrap interval, and Jiang et al.'s granulated coefficient Psi, which
averages tau over the models that differ in one hyperparameter only, so that a measure
cannot score by tracking one axis that happens to move the gap.

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"lr": [0.1, 0.1, 0.01, 0.01], "width": [64, 128, 64, 128],
    ...                       "measure": [1.0, 2.0, 3.0, 4.0], "gap": [0.1, 0.2, 0.3, 0.4]})
    >>> kendall_tau(frame.measure, frame.gap)
    1.0
    >>> granulated_tau(frame, "measure", "gap", ["lr", "width"]).psi
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats


def _finite_pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D and of one length, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def kendall_tau(x, y) -> float:
    """Kendall's tau-b between ``x`` and ``y`` over the entries where both are finite.

    NaN when fewer than two such entries remain or one side is constant (no pair is ordered).
    """
    x, y = _finite_pairs(x, y)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    return float(stats.kendalltau(x, y, variant="b").statistic)


def tau_interval(
    x, y, level: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Kendall's tau with a paired percentile-bootstrap interval (models resampled).

    Returns:
        ``(tau, low, high)``; the interval is NaN where fewer than three models are finite.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    x, y = _finite_pairs(x, y)
    tau = kendall_tau(x, y)
    if len(x) < 3 or math.isnan(tau):
        return tau, math.nan, math.nan

    result = stats.bootstrap(
        (x, y), _vectorised_tau, paired=True, vectorized=True, n_resamples=n_resamples,
        batch=max(1, 4_000_000 // (len(x) * len(x))), confidence_level=level,
        method="percentile", rng=np.random.default_rng(seed),
    )  # fmt: skip
    interval = result.confidence_interval
    return tau, float(interval.low), float(interval.high)


def _vectorised_tau(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """tau-b of every resample (the rows of ``x`` and ``y``).

    A resample with no ordered pair (all of one side equal) counts as 0, so that it neither
    widens nor breaks the interval.
    """
    x, y = np.moveaxis(np.atleast_2d(x), axis, -1), np.moveaxis(np.atleast_2d(y), axis, -1)
    dx = np.sign(x[..., :, None] - x[..., None, :])
    dy = np.sign(y[..., :, None] - y[..., None, :])
    concordance = (dx * dy).sum(axis=(-1, -2))
    norm = np.sqrt((dx != 0).sum(axis=(-1, -2)) * (dy != 0).sum(axis=(-1, -2)).astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(norm > 0, concordance / np.where(norm > 0, norm, 1.0), 0.0)
    return tau


@dataclass
class GranulatedTau:
    """Jiang et al.'s Psi and its per-axis parts.

    Attributes:
        psi: the mean over axes of ``axes[axis]["tau"]`` (axes without a comparable group are
            left out; NaN when none has one).
        axes: per axis, ``{"tau": mean over groups, "n_groups": groups with a defined tau,
            "n_pairs": ordered pairs compared in them}``.
    """

    psi: float
    axes: dict[str, dict[str, float]] = field(default_factory=dict)


def granulated_tau(
    frame: pd.DataFrame,
    measure: str,
    target: str,
    axes: Sequence[str],
    fixed: Sequence[str] = (),
) -> GranulatedTau:
    """Jiang et al. (2020, eq. 4)'s granulated Kendall coefficient Psi.

    For every axis, tau within each group of models that agree on every other axis (and on
    the ``fixed`` columns), averaged over the groups; Psi is the mean of those over the axes.
    A group whose target is constant orders nothing and is left out; a measure constant over
    a group whose target varies scores 0 there (it cannot tell those models apart), so a
    measure that moves along one axis only is not credited on the others.

    Args:
        frame: one row per model, with the ``measure``, ``target``, ``axes`` and ``fixed``
            columns.
        measure: the column ranked against ``target``.
        target: the generalisation gap or the test error, say.
        axes: the hyperparameter columns that vary.
        fixed: columns every group holds fixed but Psi does not average over (the seed: a
            group then compares models that differ in one hyperparameter and nothing else).
    """
    missing = [c for c in (measure, target, *axes, *fixed) if c not in frame.columns]
    if missing:
        raise KeyError(f"the frame has no column(s) {missing}")
    out = GranulatedTau(psi=math.nan)
    for axis in axes:
        others = [a for a in axes if a != axis] + [c for c in fixed if c != axis]
        groups = frame.groupby(others, dropna=False) if others else [((), frame)]
        taus, pairs = [], 0
        for _, group in groups:
            x, y = _finite_pairs(group[measure], group[target])
            if len(x) < 2 or np.all(y == y[0]):
                continue  # no pair of models to order
            # A measure constant over models whose target differs orders none of them: 0.
            taus.append(0.0 if np.all(x == x[0]) else kendall_tau(x, y))
            pairs += len(x) * (len(x) - 1) // 2
        out.axes[axis] = {
            "tau": float(np.mean(taus)) if taus else math.nan,
            "n_groups": len(taus),
            "n_pairs": pairs,
        }
    defined = [v["tau"] for v in out.axes.values() if not math.isnan(v["tau"])]
    out.psi = float(np.mean(defined)) if defined else math.nan
    return out


def measure_correlations(
    frame: pd.DataFrame,
    measures: Sequence[str],
    targets: Sequence[str],
    axes: Sequence[str],
    fixed: Sequence[str] = (),
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every measure against every target: tau with its interval, Psi, and tau per axis.

    Args:
        frame: one row per model (the population to rank; filter it first).
        measures: the measure columns.
        targets: the target columns (``gap``, ``test_error``).
        axes: the varied hyperparameters (Psi's axes).
        fixed: columns every Psi group holds fixed (the seed).
        n_resamples: bootstrap resamples of the models for the interval.
        seed: seeds the bootstrap.
        level: the interval's confidence.

    Returns:
        ``(overall, by_axis)``: columns ``measure, target, tau, tau_ci_low, tau_ci_high, psi,
        n_models`` and ``measure, target, axis, tau, n_pairs``.
    """
    overall, by_axis = [], []
    for measure in measures:
        for target in targets:
            x, _ = _finite_pairs(frame[measure], frame[target])
            tau, low, high = tau_interval(frame[measure], frame[target], level, n_resamples,
                                          seed)  # fmt: skip
            granulated = granulated_tau(frame, measure, target, axes, fixed)
            overall.append({"measure": measure, "target": target, "tau": tau,
                            "tau_ci_low": low, "tau_ci_high": high, "psi": granulated.psi,
                            "n_models": len(x)})  # fmt: skip
            by_axis += [{"measure": measure, "target": target, "axis": axis,
                         "tau": part["tau"], "n_pairs": int(part["n_pairs"])}
                        for axis, part in granulated.axes.items()]  # fmt: skip
    return (
        pd.DataFrame(overall, columns=["measure", "target", "tau", "tau_ci_low", "tau_ci_high",
                                       "psi", "n_models"]),
        pd.DataFrame(by_axis, columns=["measure", "target", "axis", "tau", "n_pairs"]),
    )  # fmt: skip


__all__ = ["GranulatedTau", "granulated_tau", "kendall_tau", "measure_correlations", "tau_interval"]
