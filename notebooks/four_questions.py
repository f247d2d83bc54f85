# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The report's four questions, answered from this pipeline's tables
#
# The report ("Loss Landscape Geometry & Optimization Dynamics") asks four questions and
# answers them mostly in words. For each, this notebook quotes the report's answer, shows what
# the stages measured and states a verdict: **supported**, **not supported** or **mixed**,
# with the uncertainty behind it. The verdicts follow written rules (each cell states its
# rule): a rank correlation supports a claim when its 95% interval excludes zero on the
# claimed side, and contradicts it when the interval excludes zero on the other side.
# Every number comes from a table that `snakemake all` wrote; a stage that is switched off
# leaves its question's evidence marked as missing.

# %% tags=["parameters"]
sweep_table = "results/tables/sweep.csv"
measure_correlations_table = "results/tables/measure_correlations.csv"
prediction_table = "results/tables/prediction.csv"
reparametrisation_table = "results/tables/reparametrisation.csv"
architectures_table = None
escape_summary_table = None
temperature_table = None
eos_summary_table = None
barriers_table = None
figure_png = "results/figures/four_questions.png"
figure_pdf = "results/figures/four_questions.pdf"

# %%

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from lossgeom.figures import notebook_setup, save_figure
from lossgeom.summaries import claimed_tau, tau_verdict
from lossgeom.tables import read_table

notebook_setup()


def load(path, name):
    """The table, or None where its stage is off or left nothing to read (no finite value)."""
    if path in (None, "", "None"):
        return None
    frame = read_table(path, name)
    numbers = frame.select_dtypes("number")
    return None if frame.empty or not numbers.notna().to_numpy().any() else frame


sweep = load(sweep_table, "sweep")
correlations = load(measure_correlations_table, "measure_correlations")
prediction = load(prediction_table, "prediction")
reparam = load(reparametrisation_table, "reparametrisation")
architectures = load(architectures_table, "architectures")
escape = load(escape_summary_table, "escape_summary")
temperature = load(temperature_table, "temperature")
eos = load(eos_summary_table, "eos_summary")
barriers = load(barriers_table, "barriers")
verdicts = []


def show(lines):
    display(Markdown("\n".join(lines)))


# %% [markdown]
# ## Question 1: why does SGD find minima that generalise?
#
# > The report: SGD's gradient noise is larger along sharp directions, so SGD "is naturally
# > repelled from very sharp minima"; flat minima generalise (PAC-Bayes ties curvature to
# > generalisation).
#
# Evidence: the escape experiment (does SGD leave a sharp minimum that GD keeps?), the
# temperature grid (does a larger eta/B end flatter?), the edge of stability (where does
# training sit?) and, from the sweep, whether flatter models generalise better (tau of
# lambda_max against the gap). Rule: supported only if SGD escapes more often than GD with
# non-overlapping intervals *and* flatter models have smaller gaps.

# %%
lines, parts = [], {}
if escape is not None and {"sgd", "gd"} <= set(escape.dynamics):
    esc = escape[escape.quantity == "escaped_fraction"].set_index("dynamics")
    sharp = escape[escape.quantity == "final_sharpness"].set_index("dynamics")
    separated = esc.loc["sgd", "ci_low"] > esc.loc["gd", "ci_high"]
    parts["escape"] = separated
    lines.append(
        f"* Escape: SGD escaped in {esc.loc['sgd', 'mean']:.0%} of "
        f"{esc.loc['sgd', 'n_seeds']} seeds (95% interval {esc.loc['sgd', 'ci_low']:.2f} to "
        f"{esc.loc['sgd', 'ci_high']:.2f}) against GD's {esc.loc['gd', 'mean']:.0%}; final "
        f"sharpness {sharp.loc['sgd', 'mean']:.2f} ({sharp.loc['sgd', 'ci_low']:.2f} to "
        f"{sharp.loc['sgd', 'ci_high']:.2f}) against {sharp.loc['gd', 'mean']:.2f}: "
        f"{'separated' if separated else 'the intervals overlap'}."
    )
if (
    temperature is not None
    and temperature[temperature.quantity == "final_sharpness"].value.notna().sum() > 2
):
    t = temperature.pivot_table(
        index=["lr", "batch_size", "seed"], columns="quantity", values="value"
    ).reset_index()
    t["eta_over_b"] = t.lr / t.batch_size
    c = claimed_tau(t.eta_over_b, t.final_sharpness, -1)
    tau, low, high, parts["temperature"] = c["tau"], c["low"], c["high"], c["verdict"]
    lines.append(
        f"* Temperature: Kendall tau between eta/B and the final sharpness {tau:+.2f} "
        f"(95% interval {low:+.2f} to {high:+.2f}, {len(t)} runs): "
        f"a larger eta/B ending flatter is {parts['temperature']}."
    )
if eos is not None:
    edge = eos.dropna(subset=["median_ratio"])
    lines.append(
        f"* Edge of stability: {len(edge)} of {len(eos)} full-batch runs reach the threshold "
        f"2 (1 + beta) / eta and sit at a median {edge.median_ratio.median():.3f} of it."
    )
if correlations is not None:
    row = correlations[(correlations.measure == "eig1") & (correlations.target == "gap")].iloc[0]
    parts["flat_generalise"] = tau_verdict(row.tau_ci_low, row.tau_ci_high, +1)
    lines.append(
        f"* Sweep: lambda_max against the gap over {row.n_models} models, tau "
        f"{row.tau:+.2f} ({row.tau_ci_low:+.2f} to {row.tau_ci_high:+.2f}), Psi {row.psi:+.2f}: "
        f"'flatter generalises better' is {parts['flat_generalise']}."
    )
if not parts:
    verdict = "no evidence (the stages are switched off)"
elif parts.get("escape") and parts.get("flat_generalise") == "supported":
    verdict = "supported"
elif not parts.get("escape", False) and parts.get("flat_generalise") != "supported":
    verdict = "not supported" if parts.get("temperature") != "supported" else "mixed"
else:
    verdict = "mixed"
verdicts.append(("1. Why does SGD find minima that generalise?", verdict))
show(lines + [f"\n**Verdict: {verdict}.**"])

# %% [markdown]
# ## Question 2: how does architecture change the landscape?
#
# > The report: deep plain networks have poorly conditioned Hessians as depth grows; skip
# > connections and normalisation smooth the landscape and improve trainability.
#
# Rule: per claim, tau of depth against the quantity over the plain MLPs' runs, and the
# deepest plain MLP against the deepest residual one (Welch's t-test on log lambda_max).

# %%
lines = []
if architectures is None or architectures[architectures.quantity == "eig1"].value.notna().sum() < 3:
    verdict = "no evidence (the architecture stage is switched off)"
else:
    wide = architectures.pivot_table(
        index=["experiment", "family", "depth", "skip", "norm", "seed"],
        columns="quantity",
        values="value",
    ).reset_index()
    # Plain MLPs: no skips, no normalisation (a one-layer "residual" MLP has no skip to add and
    # duplicates the plain one: left out).
    plain = wide[(wide.family == "mlp") & (wide.skip == 0) & (wide.norm == "none")
                 & ~wide.experiment.str.contains("residual")]  # fmt: skip
    s_, c_ = (
        claimed_tau(plain.depth, plain.eig1, +1),
        claimed_tau(plain.depth, plain.conditioning, +1),
    )
    tau_s, low_s, high_s, sharpening = s_["tau"], s_["low"], s_["high"], s_["verdict"]
    tau_c, low_c, high_c, conditioning = c_["tau"], c_["low"], c_["high"], c_["verdict"]
    lines.append(
        f"* Depth against lambda_max (plain MLPs, {len(plain)} runs): tau {tau_s:+.2f} "
        f"({low_s:+.2f} to {high_s:+.2f}), {sharpening}."
    )
    lines.append(
        f"* Depth against the conditioning lambda_max / mean|lambda|: tau {tau_c:+.2f} "
        f"({low_c:+.2f} to {high_c:+.2f}), {conditioning}."
    )
    deepest = plain.depth.max()
    residual = wide[
        (wide.family == "mlp") & (wide.skip == 1) & (wide.norm == "none") & (wide.depth == deepest)
    ]
    deep_plain = plain[plain.depth == deepest]
    smoothing = "no evidence"
    if len(residual) > 1 and len(deep_plain) > 1:
        from scipy import stats

        test = stats.ttest_ind(np.log(deep_plain.eig1), np.log(residual.eig1), equal_var=False)
        ratio = float(np.exp(np.log(deep_plain.eig1).mean() - np.log(residual.eig1).mean()))
        smoothing = "supported" if test.pvalue < 0.05 and ratio > 1 else "not supported"
        lines.append(
            f"* Skips at depth {deepest}: lambda_max plain / residual = {ratio:.1f}x "
            f"(Welch p = {test.pvalue:.3f}), {smoothing}."
        )
    resnets = wide[wide.family == "resnet"].groupby("skip").eig1.mean()
    if len(resnets) == 2:
        lines.append(
            f"* The ResNet with skips against without: lambda_max {resnets.get(1, np.nan):.3g} "
            f"against {resnets.get(0, np.nan):.3g} (the README's table has the rest)."
        )
    verdict = (
        "mixed"
        if {sharpening, smoothing} & {"supported"} and conditioning != "supported"
        else "supported"
        if conditioning == "supported" and smoothing == "supported"
        else "not supported"
    )
verdicts.append(("2. How does architecture change the landscape?", verdict))
show(lines + [f"\n**Verdict: {verdict}.**"])

# %% [markdown]
# ## Question 3: which geometric properties predict trainability and generalisation?
#
# > The report: lower lambda_max along training correlates with stable optimisation and better
# > generalisation; its proxy ||w||^2 Tr(H) stands in for the PAC-Bayes term.
#
# Rule: the claim holds if lambda_max, the trace and the proxy rank the gap with tau's
# interval above zero, over all models and (lambda_max) within each dataset, and if
# lambda_max beats the baselines that know nothing of geometry (the parameter count, the
# training loss). Dinh et al.'s check says which measures survive a
# function-preserving rescaling.

# %%
lines = []
if correlations is None:
    verdict = "no evidence (the sweep is switched off)"
else:
    gap = correlations[correlations.target == "gap"].set_index("measure")
    display(
        gap[["tau", "tau_ci_low", "tau_ci_high", "psi", "n_models"]]
        .sort_values("tau", key=np.abs, ascending=False)
        .round(3)
    )
    claims = {
        m: tau_verdict(gap.loc[m, "tau_ci_low"], gap.loc[m, "tau_ci_high"], +1)
        for m in ("eig1", "trace", "proxy")
    }
    baseline = gap.loc[["params", "final_train_loss"], "tau"].abs().max()
    geometric = gap.drop(index=["params", "final_train_loss"])
    best = geometric.tau.abs().idxmax() if geometric.tau.notna().any() else None
    lines += [
        f"* {m}: tau {gap.loc[m, 'tau']:+.2f} ({gap.loc[m, 'tau_ci_low']:+.2f} to "
        f"{gap.loc[m, 'tau_ci_high']:+.2f}), Psi {gap.loc[m, 'psi']:+.2f}: {v}."
        for m, v in claims.items()
    ]
    lines.append(
        "* No measure has a tau: too few models reached the criterion."
        if best is None
        else f"* The best-ranking measure is {best} (tau {gap.loc[best, 'tau']:+.2f}, Psi "
        f"{gap.loc[best, 'psi']:+.2f}); the best baseline reaches |tau| {baseline:.2f}."
    )
    if reparam is not None:
        wide = reparam.pivot(index="alpha", columns="quantity", values="value")
        spread = wide.max() / wide.min()
        moved = [q for q in ("eig1", "trace", "proxy", "frobenius_sq") if spread.get(q, 1) > 1.01]
        still = [
            q for q in ("path_norm", "margin", "test_error") if abs(spread.get(q, 1) - 1) < 0.01
        ]
        lines.append(
            f"* Rescaling (alpha from {wide.index.min():g} to {wide.index.max():g}, test error "
            f"fixed): {', '.join(moved)} move by up to {spread[moved].max():.0f}x; "
            f"{', '.join(still)} stay within 1%."
        )
    # Across datasets the gap and the curvature both move with the dataset: the claim must also
    # hold among models of one dataset.
    within = {}
    if sweep is not None:
        reached = sweep[sweep.status == "reached"]
        for dataset, group in reached.groupby("dataset"):
            c = claimed_tau(group.eig1, group.gap, +1)
            tau, low, high, within[dataset] = c["tau"], c["low"], c["high"], c["verdict"]
            lines.append(
                f"* lambda_max against the gap within {dataset} ({len(group)} models): tau "
                f"{tau:+.2f} ({low:+.2f} to {high:+.2f}), {within[dataset]}."
            )
    supported = [m for m, v in claims.items() if v == "supported"]
    verdict = (
        "supported"
        if len(supported) == 3
        and abs(gap.loc["eig1", "tau"]) > baseline
        and all(v == "supported" for v in within.values())
        else "mixed"
        if supported
        else "not supported"
    )
verdicts.append(("3. Which geometric properties predict trainability and generalisation?", verdict))
show(lines + [f"\n**Verdict: {verdict}.**"])

# %% [markdown]
# ## Question 4: can optimisation difficulty be predicted from geometry?
#
# > The report: early curvature estimates predict whether a configuration will be easy or
# > hard to optimise.
#
# Rule: supported if the held-out score with curvature ("both") exceeds the loss-only score
# by more than the loss-only interval's upper end; not supported if it stays within it.

# %%
lines = []
if prediction is None:
    verdict = "no evidence (the sweep is switched off)"
else:
    display(prediction.round(3))
    results = []
    for task, part in prediction.groupby("task", sort=False):
        p = part.set_index("features")
        loss, both = p.loc["early_loss"], p.loc["both"]
        adds = both.value > loss.ci_high
        results.append(adds)
        curvature, rate, none = (p.loc[k] for k in ("early_curvature", "learning_rate", "none"))
        lines.append(
            f"* {task} ({p.metric.iloc[0]}, {int(p.n_models.iloc[0])} models): loss alone "
            f"{loss.value:.2f} ({loss.ci_low:.2f} to {loss.ci_high:.2f}), curvature alone "
            f"{curvature.value:.2f} ({curvature.ci_low:.2f} to {curvature.ci_high:.2f}), both "
            f"{both.value:.2f} ({both.ci_low:.2f} to {both.ci_high:.2f}); the learning rate "
            f"alone {rate.value:.2f} and an intercept only {none.value:.2f} (the held-out "
            f"level of no information): curvature {'adds' if adds else 'does not add'} "
            f"information beyond the loss, and "
            f"{'beats' if curvature.ci_low > rate.value else 'does not beat'} the learning "
            f"rate it carries."
        )
    verdict = "supported" if all(results) else "mixed" if any(results) else "not supported"
verdicts.append(("4. Can optimisation difficulty be predicted from geometry?", verdict))
show(lines + [f"\n**Verdict: {verdict}.**"])

# %% [markdown]
# ## Summary

# %%
summary = pd.DataFrame(verdicts, columns=["question", "verdict"])
display(summary)
fig, axes = plt.subplots(1, 2, figsize=(15, 5.5))
if correlations is not None:
    gap = correlations[correlations.target == "gap"].sort_values("tau")
    axes[0].errorbar(
        gap.tau,
        gap.measure,
        xerr=[gap.tau - gap.tau_ci_low, gap.tau_ci_high - gap.tau],
        fmt="o",
        capsize=3,
    )
    axes[0].axvline(0, color="grey", ls="--")
    axes[0].set(
        xlabel="Kendall tau against the generalisation gap (95% interval)",
        ylabel="measure",
        title="Question 3: how each measure ranks the sweep's models",
    )
if prediction is not None:
    for offset, (task, part) in zip(
        (-0.1, 0.1), prediction.groupby("task", sort=False), strict=False
    ):
        x = np.arange(len(part)) + offset
        axes[1].errorbar(
            x,
            part.value,
            yerr=[part.value - part.ci_low, part.ci_high - part.value],
            fmt="o",
            capsize=4,
            label=f"{task} ({part.metric.iloc[0]})",
        )
    axes[1].set_xticks(range(prediction.features.nunique()), list(prediction.features.unique()))
    axes[1].axhline(0.5, color="grey", ls=":", label="AUROC chance")
    axes[1].axhline(0.0, color="grey", ls="--", label="rho chance")
    axes[1].set(
        xlabel="early features",
        ylabel="held-out score",
        title="Question 4: predicting difficulty early",
    )
    axes[1].legend()
fig.tight_layout()
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Left: every measure's Kendall tau against the generalisation gap over the
# sweep's models that reached the stopping criterion, with 95% bootstrap intervals (an
# interval across the dashed line is no evidence of a ranking). Right: held-out AUROC for
# predicting failure and Spearman rho for predicting the steps to the criterion from the
# early loss, early curvature, both, the learning rate alone, and an intercept only ("none":
# the level an uninformative fit reaches on held-out groups, below chance because holding a
# group out shifts the training labels' mean away from it; dotted: AUROC at chance; dashed:
# rho at chance).
