"""Summaries of the study tables that need no torch (notebooks import them).

:func:`temperature_summary` condenses ``results/tables/temperature.csv``: Kendall's tau
between ``eta / B`` and a final quantity, and spreads of its logarithm within groups of equal
``eta / B`` (Jastrzebski et al. 2018; Smith & Le 2018). :func:`architecture_means` and
:func:`depth_trend` condense ``results/tables/architectures.csv``: per-architecture means
with t intervals over seeds, and Kendall's tau of a quantity against depth within a family.
:func:`claimed_tau` turns a rank correlation and its bootstrap interval into the verdict the
four-questions report states for a claimed sign (:func:`tau_verdict`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "architecture_means",
    "claimed_tau",
    "compare_architectures",
    "depth_trend",
    "tau_verdict",
    "temperature_summary",
]

ARCHITECTURE_KEYS = ["experiment", "family", "depth", "skip", "norm", "params"]


def t_interval(values, level: float = 0.95) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)``: the Student-t interval of the mean of the finite values.

    With one value the interval is that value's NaN-wide: ``(v, nan, nan, 1)``.

    Example:
        >>> [round(v, 3) for v in t_interval([1.0, 2.0, 3.0])[:3]]
        [2.0, -0.484, 4.484]
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(values.mean())
    if n == 1:
        return mean, math.nan, math.nan, 1
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def tau_verdict(low: float, high: float, sign: int) -> str:
    """The verdict on a claimed sign of a rank correlation, from its 95% interval.

    ``supported`` when the interval excludes zero on the claimed side, ``contradicted`` when it
    excludes zero on the other, otherwise ``not supported (interval contains 0)``; ``no
    evidence`` without an interval.

    Example:
        >>> tau_verdict(0.1, 0.5, +1), tau_verdict(0.1, 0.5, -1), tau_verdict(-0.2, 0.3, +1)
        ('supported', 'contradicted', 'not supported (interval contains 0)')
    """
    if math.isnan(low) or math.isnan(high):
        return "no evidence"
    if (low > 0 and sign > 0) or (high < 0 and sign < 0):
        return "supported"
    if (low > 0 and sign < 0) or (high < 0 and sign > 0):
        return "contradicted"
    return "not supported (interval contains 0)"


def claimed_tau(x, y, sign: int, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Kendall's tau of ``y`` against ``x``, its bootstrap interval and the claim's verdict.

    The claim is that the sign of tau is ``sign`` (:func:`tau_verdict`).

    Returns:
        ``{"tau", "low", "high", "n", "verdict"}``.
    """
    from lossgeom.correlation import tau_interval

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    tau, low, high = tau_interval(x, y, n_resamples=n_resamples, seed=seed)
    n = int((np.isfinite(x) & np.isfinite(y)).sum())
    return {"tau": tau, "low": low, "high": high, "n": n, "verdict": tau_verdict(low, high, sign)}


def architecture_means(frame: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per architecture and quantity: mean, t interval and count over seeds (NaN left out).

    Args:
        frame: rows of ``results/tables/architectures.csv``.
        level: the intervals' confidence level.

    Returns:
        Columns ``experiment, family, depth, skip, norm, params, quantity, mean, ci_low,
        ci_high, n`` (``n``: seeds with a finite value; 0 where none has one).
    """
    rows = []
    for keys, group in frame.groupby([*ARCHITECTURE_KEYS, "quantity"], sort=False):
        mean, low, high, n = t_interval(group["value"], level)
        rows.append({**dict(zip([*ARCHITECTURE_KEYS, "quantity"], keys, strict=True)),
                     "mean": mean, "ci_low": low, "ci_high": high, "n": n})  # fmt: skip
    return pd.DataFrame(rows, columns=[*ARCHITECTURE_KEYS, "quantity", "mean", "ci_low",
                                       "ci_high", "n"])  # fmt: skip


def depth_trend(frame: pd.DataFrame, quantity: str, experiments) -> dict[str, float]:
    """Kendall's tau (and its two-sided p) of ``quantity`` against depth over every seed.

    Args:
        frame: rows of ``results/tables/architectures.csv``.
        quantity: the measured quantity.
        experiments: the architectures of one family (one value of depth each).

    Returns:
        ``tau``, ``p`` and ``n`` (finite rows used); NaN for fewer than 3 rows or one depth.
    """
    rows = frame[frame["experiment"].isin(list(experiments)) & (frame["quantity"] == quantity)]
    rows = rows[np.isfinite(rows["value"])]
    if len(rows) < 3 or rows["depth"].nunique() < 2:
        return {"tau": math.nan, "p": math.nan, "n": float(len(rows))}
    tau, p = stats.kendalltau(rows["depth"], rows["value"])
    return {"tau": float(tau), "p": float(p), "n": float(len(rows))}


def compare_architectures(
    frame: pd.DataFrame, quantity: str, first: str, second: str, level: float = 0.95
) -> dict[str, float]:
    """``first`` against ``second`` on ``quantity``: both means and Welch's t test.

    Returns:
        ``mean_first``, ``mean_second``, ``ratio`` (first / second), ``p`` (two-sided Welch),
        ``n_first`` and ``n_second``; NaN where a side has fewer than 2 finite seeds.
    """
    values = [frame[(frame["experiment"] == name) & (frame["quantity"] == quantity)]["value"]
              for name in (first, second)]  # fmt: skip
    values = [v[np.isfinite(v)].to_numpy(dtype=float) for v in values]
    means = [float(v.mean()) if len(v) else math.nan for v in values]
    p = math.nan
    if min(len(v) for v in values) >= 2:
        p = float(stats.ttest_ind(values[0], values[1], equal_var=False).pvalue)
    ratio = means[0] / means[1] if means[1] not in (0.0,) and np.isfinite(means[1]) else math.nan
    return {"mean_first": means[0], "mean_second": means[1], "ratio": ratio, "p": p,
            "n_first": float(len(values[0])), "n_second": float(len(values[1]))}  # fmt: skip


def temperature_summary(frame: pd.DataFrame, quantity: str = "final_sharpness") -> dict[str, float]:
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
        within cells (seeds only: the noise floor); ``overall_spread``, that of all runs;
        ``equal_ratio_dof`` and ``seed_dof``, the pooled spreads' degrees of freedom;
        ``groups``, the ``eta / B`` groups themselves (frames of their rows);
        ``train_loss_tau``, Kendall's tau between ``eta / B`` and the final training loss, and
        ``kendall_tau_given_train_loss`` with its ``kendall_p_given_train_loss``, the tau of
        ``quantity`` once the training loss is taken out (:func:`_given_train_loss`).
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

    def pooled(groups) -> tuple[float, int]:
        squares, dof = 0.0, 0
        for _, values in groups:
            if len(values) >= 2:
                squares += float(((values - values.mean()) ** 2).sum())
                dof += len(values) - 1
        return (math.sqrt(squares / dof) if dof else math.nan), dof

    shared = [
        group["log_value"]
        for _, group in rows.groupby("ratio_key")
        if group[["lr", "batch_size"]].drop_duplicates().shape[0] >= 2
    ]
    out["equal_ratio_groups"] = float(len(shared))
    out["groups"] = [rows.loc[g.index] for g in shared]
    out["equal_ratio_spread"], out["equal_ratio_dof"] = pooled((None, g) for g in shared)
    out["seed_spread"], out["seed_dof"] = pooled(
        (key, g["log_value"]) for key, g in rows.groupby(["lr", "batch_size"])
    )
    out["overall_spread"] = float(rows["log_value"].std(ddof=1)) if len(rows) >= 2 else math.nan
    out.update(_given_train_loss(frame, rows, quantity))
    return out


def _given_train_loss(frame: pd.DataFrame, rows: pd.DataFrame, quantity: str) -> dict:
    """Kendall's tau between ``eta / B`` and ``log(quantity)`` with the training loss taken out.

    At a fixed number of epochs a smaller ``eta / B`` also trains less far, and sharpness
    falls as training proceeds; the residual of a least-squares fit of ``log(quantity)`` on
    ``log(train_loss)`` (per run) removes what the final training loss explains.
    """
    nan = {"train_loss_tau": math.nan, "kendall_tau_given_train_loss": math.nan,
           "kendall_p_given_train_loss": math.nan}  # fmt: skip
    if quantity == "train_loss":
        return nan
    loss = frame[frame["quantity"] == "train_loss"].set_index(["lr", "batch_size", "seed"])["value"]
    keyed = rows.set_index(["lr", "batch_size", "seed"])
    both = keyed.join(loss.rename("train_loss"), how="inner")
    both = both[np.isfinite(both["train_loss"]) & (both["train_loss"] > 0)]
    if len(both) < 4:
        return nan
    x, y = np.log(both["train_loss"].to_numpy()), np.log(both["value"].to_numpy())
    residual = y - np.polyval(np.polyfit(x, y, 1), x)
    tau, p = stats.kendalltau(both["ratio_key"], residual)
    loss_tau, _ = stats.kendalltau(both["ratio_key"], both["train_loss"])
    return {"train_loss_tau": float(loss_tau), "kendall_tau_given_train_loss": float(tau),
            "kendall_p_given_train_loss": float(p)}  # fmt: skip
