"""Summaries of the dynamics tables that need no torch (notebooks import them).

:func:`temperature_summary` condenses ``results/tables/temperature.csv``: Kendall's tau
between ``eta / B`` and a final quantity, and spreads of its logarithm within groups of equal
``eta / B`` (Jastrzebski et al. 2018; Smith & Le 2018).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["temperature_summary"]


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
