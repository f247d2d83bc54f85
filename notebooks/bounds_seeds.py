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
# # Does curvature bound generalisation? Proxies, sharpness measures and PAC-Bayes certificates
#
# The report ties curvature to generalisation with sqrt(||theta||^2 Tr(H) / (n eps^2)). That
# formula is a scaling heuristic with an unknown constant, so it is reported here as the
# **proxy**, never as a bound. Next to it, for every seed's final weights:
#
# * the sharpness-based PAC-Bayes **measures** of Jiang et al. (2019): sigma is the largest
#   isotropic (or magnitude-aware) weight-noise scale that costs at most a fixed drop in
#   training accuracy, and the measure is ||w - w0||^2 / (4 sigma^2) + ln(n / sigma) + 10
#   (magnitude-aware variant analogous). They rank models; they bound nothing;
# * two **PAC-Bayes-kl certificates** of the 0-1 risk of a Gaussian stochastic classifier Q:
#   the *centred* posterior N(w, s^2 I) against the prior N(w0, s^2 I), and the *optimised*
#   posterior learned by PAC-Bayes with backprop (Perez-Ortiz et al. 2021), by default against
#   a data-dependent prior trained on a held-out half of the training set, so that certificate
#   uses only the other half. Each chains the sample-convergence bound on the Monte-Carlo
#   estimate of Q's training error (m passes over the n samples, every example of every pass
#   scored under its own draw of Q: n m independent trials; confidence 1 - delta'), the
#   PAC-Bayes-kl bound with a union bound over the grid of prior scales (confidence 1 - delta),
#   and the inverse of the binary kl. A certificate holds with probability at least 1 - delta - delta' over the
#   sample and the draws. It bounds Q's error, so it is compared with Q's test error (the
#   `stochastic_test_error_*` rows) as well as with the deterministic network's.
#
# A certificate at or above 0.9, the error of guessing uniformly among ten classes, is
# **vacuous**: it says nothing. Values are never clipped.

# %% tags=["parameters"]
runs_table = "results/tables/runs.csv"
bounds_table = "results/tables/bounds.csv"
bound_terms_table = "results/tables/bound_terms.csv"
figure_png = "results/figures/bounds_seeds.png"
figure_pdf = "results/figures/bounds_seeds.pdf"

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from IPython.display import display
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

from lossgeom.figures import notebook_runs, placeholder_figure, save_figure
from lossgeom.tables import completed_only, read_table

VACUOUS = 0.9  # error of uniform guessing over 10 classes
runs, note, left_out = notebook_runs(runs_table)
# A run that did not complete has NaN bounds: it is left out, never summarised as a network.
bounds = completed_only(read_table(bounds_table, "bounds"), runs)
terms = completed_only(read_table(bound_terms_table, "bound_terms"), runs)
settings = json.loads(Path(bounds_table + ".meta.json").read_text())["config"]
last = bounds.groupby("experiment").epoch.transform("max")
final = bounds[bounds.epoch == last].copy()
final_terms = terms[terms.epoch == terms.groupby("experiment").epoch.transform("max")]
print(
    f"experiments {sorted(final.experiment.unique())}; seeds {sorted(final.seed.unique().tolist())}"
)
print("settings:", settings)
infinite = final[np.isinf(final.value)]
for row in infinite.itertuples():  # not drawn on a log axis, so named here (and marked)
    print(
        f"{row.experiment} seed {row.seed}: {row.quantity} is infinite: no noise scale down to "
        f"{settings['jiang_upper']} / 2^{settings['jiang_steps']} keeps the accuracy drop within "
        f"{settings['jiang_target']}"
    )


def tidy_log_axis(ax) -> None:
    """A log axis spanning less than a decade labels its minor ticks, which crowd: few plain ticks."""
    low, high = ax.get_ylim()
    if ax.get_yscale() != "log" or low <= 0 or high / low >= 10:
        return
    locator = LogLocator(subs=(1, 1.5, 2, 3, 5, 7)) if high / low > 3 else MaxNLocator(3)
    ax.yaxis.set_major_locator(locator)
    ax.yaxis.set_major_formatter(
        FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1000 else f"{value:.3g}")
    )
    ax.yaxis.set_minor_locator(NullLocator())


# %%
wide = final.pivot_table(index=["experiment", "seed"], columns="quantity", values="value")
errors = [
    "test_error",
    "stochastic_test_error_centered",
    "certificate_centered",
    "stochastic_test_error_optimized",
    "certificate_optimized",
]
errors = [q for q in errors if q in wide]
measures = [q for q in ["proxy", "jiang_sharpness", "jiang_magnitude_aware"] if q in wide]
labels = {
    "test_error": "test error\n(network at w)",
    "stochastic_test_error_centered": "test error of Q\n(centred)",
    "certificate_centered": "certificate\n(centred)",
    "stochastic_test_error_optimized": "test error of Q\n(optimised)",
    "certificate_optimized": "certificate\n(optimised)",
    "proxy": "report's proxy (eps = {eps:g}), not a bound",
    "jiang_sharpness": "Jiang sharpness measure",
    "jiang_magnitude_aware": "Jiang magnitude-aware measure",
}
if final.empty or "test_error" not in wide:
    fig = placeholder_figure(f"No bound to draw: no run behind them completed.\n{note}")
else:
    fig, axes = plt.subplots(
        1,
        1 + len(measures),
        figsize=(5.5 + 4.3 * len(measures), 5.2 + 0.4 * left_out),
        gridspec_kw={"width_ratios": [2] + [1] * len(measures)},
        squeeze=False,
    )
    axes = axes[0]
    ax = axes[0]
    long = final[final.quantity.isin(errors)].copy()
    long["what"] = long.quantity.map(labels)
    sns.stripplot(
        data=long,
        x="what",
        y="value",
        hue="seed",
        order=[labels[q] for q in errors],
        dodge=True,
        size=8,
        palette="deep",
        ax=ax,
    )
    ax.axhline(VACUOUS, color="crimson", ls="--", lw=1, label="vacuous (>= 0.9, uniform guessing)")
    for i, quantity in enumerate(errors):  # the mean over seeds, written above each group
        mean = final[final.quantity == quantity].value.mean()
        ax.annotate(
            f"{mean:.3f}",
            (i, mean),
            xytext=(0, 12),
            textcoords="offset points",
            ha="center",
            fontsize=9,
        )
    ax.set(
        yscale="log",
        xlabel="",
        ylabel="0-1 error (fraction wrong, log scale)",
        title="Certificates and the errors they bound",
    )
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(title="seed", fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4)
    sub = wide.reset_index()
    for ax, measure in zip(axes[1:], measures, strict=True):
        sns.scatterplot(
            data=sub,
            x="test_error",
            y=measure,
            hue="seed",
            style="experiment",
            palette="deep",
            s=80,
            ax=ax,
            legend=False,
        )
        title = labels[measure].split(" (")[0]
        ax.set(
            xlabel="test error (fraction wrong)",
            ylabel=labels[measure].format(eps=settings["eps"]),
            title=title,
        )
        if measure != "proxy":
            ax.set(yscale="log", ylabel="measure (unitless, log scale)")
        infinite = sub.test_error[np.isinf(sub[measure])]
        if len(infinite):  # a log axis drops them: room above the finite values, a mark there
            low, high = ax.get_ylim()
            log = ax.get_yscale() == "log"
            ax.set_ylim(low, high * (high / low) ** 0.2 if log else high + 0.2 * (high - low))
            where = ax.get_xaxis_transform()  # x in data, y in axes fraction
            ax.plot(infinite, [0.95] * len(infinite), "^", color="crimson", ms=9, transform=where)
            for x in infinite:
                ax.annotate(
                    "inf",
                    (x, 0.95),
                    xycoords=where,
                    xytext=(0, -10),
                    textcoords="offset points",
                    ha="center",
                    va="top",
                    color="crimson",
                    fontsize=8,
                )
        ax.xaxis.set_major_locator(MaxNLocator(3))
        tidy_log_axis(ax)
    tidy_log_axis(axes[0])
    fig.suptitle("Generalisation at each seed's final weights (one point per seed)")
    if left_out:  # say under the figure which runs it leaves out
        fig.text(0.01, 0.005, note, fontsize=9, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.4 * left_out / fig.get_figheight(), 1, 1))
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Left: the deterministic test error, the test error of each stochastic
# classifier Q (mean over m Monte-Carlo passes) and the PAC-Bayes-kl certificate of Q's risk,
# per seed, on a log scale, with the mean over seeds written above each group; the dashed line
# marks vacuity. Right: the report's proxy and Jiang
# et al.'s measures against the test error (one point per seed; the measures are unitless
# complexity scores, the proxy is in the report's arbitrary units; an infinite measure, which
# a log axis cannot show, is a red triangle marked "inf" at the top of its panel). Only runs
# that completed are drawn and summarised: a run that diverged or failed to train has no
# meaningful bound (named at the top, and under the figure when there are any).
#
# ## Every bound with its delta, m and n

# %%
certs = final[final.quantity.str.startswith("certificate")].copy()
if certs.empty:
    print(f"No certificate: no completed run has one. {note}")
else:
    term_wide = final_terms.pivot_table(
        index=["experiment", "seed", "quantity"], columns="term", values="value"
    )
    certs = certs.join(
        term_wide.drop(columns=[c for c in term_wide if c in certs]),
        on=["experiment", "seed", "quantity"],
    )
    certs["Q_test_error"] = [
        wide.loc[(e, s), q.replace("certificate", "stochastic_test_error")]
        for e, s, q in zip(certs.experiment, certs.seed, certs.quantity, strict=True)
    ]
    certs["network_test_error"] = [
        wide.loc[(e, s), "test_error"] for e, s in zip(certs.experiment, certs.seed, strict=True)
    ]
    certs["holds"] = certs.value >= certs.Q_test_error
    certs["verdict"] = np.where(certs.value >= VACUOUS, "vacuous", "non-vacuous")
    columns = [
        "experiment",
        "seed",
        "quantity",
        "value",
        "verdict",
        "Q_test_error",
        "network_test_error",
        "holds",
        "delta",
        "delta_prime",
        "confidence",
        "n",
        "mc_samples",
        "trials",
        "mc_error",
        "empirical_bound",
        "empirical_bound_per_pass",
        "kl",
        "grid_size",
        "prior_sigma",
        "mc_seed",
    ]
    display(
        certs[[c for c in columns if c in certs]].sort_values(["quantity", "experiment", "seed"])
    )

# %%
for row in certs.itertuples():
    status = "holds" if row.holds else "DOES NOT HOLD (an event of probability <= delta + delta')"
    print(
        f"{row.experiment} seed {row.seed} {row.quantity}: {row.value:.4f} ({row.verdict}) vs test error "
        f"of Q {row.Q_test_error:.4f}: {status}"
    )
if not certs.empty:
    print(
        f"every certificate >= the test error of the classifier it certifies: {bool(certs.holds.all())}"
    )
print(note)

# %% [markdown]
# `confidence` = 1 - delta - delta'. `n` counts the training samples behind the certificate
# (those a data-dependent prior never saw); `mc_samples` is m, the number of Monte-Carlo passes
# over them behind `mc_error`, `trials` the number of independent outcomes the bound counts
# (n m when every example of every pass has its own draw), and `empirical_bound` is the
# sample-convergence bound kl^-1(mc_error, ln(2/delta')/trials); `empirical_bound_per_pass`
# is what it would be counting only the m passes. `grid_size` prior scales were allowed; the union bound
# pays ln(grid_size). The Monte-Carlo seed of each estimate is `mc_seed`.
#
# ## Measures and errors per seed

# %%
if wide.empty:
    print(f"No measures: no run behind them completed. {note}")
else:
    display(wide[errors + measures])

# %% [markdown]
# ## Every term behind the numbers (final weights)

# %%
if final_terms.empty:
    print(f"No terms: no run behind them completed. {note}")
else:
    display(
        final_terms.pivot_table(
            index=["quantity", "term"], columns=["experiment", "seed"], values="value"
        )
    )
