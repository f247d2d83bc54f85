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
# # Bounds and measures along training, next to sharpness
#
# The report tracks sharpness (the top Hessian eigenvalue) per epoch and argues that
# curvature governs generalisation. Here one seed's every checkpoint, initialisation
# included, is measured with the same quantities as the final weights: the deterministic test
# error, the PAC-Bayes-kl certificate of the centred Gaussian posterior N(w, s^2 I) against
# the prior N(w0, s^2 I) (earlier epochs use fewer Monte-Carlo draws, see `mc_samples`), the
# report's proxy sqrt(||theta||^2 Tr(H) / (n eps^2)) (a heuristic, not a bound) and Jiang et
# al.'s sharpness-based measures. The optimised posterior is certified at the final epoch
# only (see the `bounds_seeds` notebook). At epoch 0, w = w0 and the centred KL is 0.

# %% tags=["parameters"]
runs_table = "results/tables/runs.csv"
bounds_table = "results/tables/bounds.csv"
curvature_table = "results/tables/curvature.csv"
figure_png = "results/figures/bounds_epochs.png"
figure_pdf = "results/figures/bounds_epochs.pdf"
tracked_seed = 0  # bounds.track_seed as the workflow resolved it

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import display
from matplotlib.ticker import MaxNLocator

from lossgeom.figures import notebook_runs, placeholder_figure, save_figure
from lossgeom.tables import completed_only, read_table

runs, note, left_out = notebook_runs(runs_table)
# A run that did not complete has NaN bounds and curvature: it is left out.
bounds = completed_only(read_table(bounds_table, "bounds"), runs)
curvature = completed_only(read_table(curvature_table, "curvature"), runs)
settings = json.loads(Path(bounds_table + ".meta.json").read_text())["config"]
tracked_seed = int(tracked_seed)  # papermill passes parameters as strings
along = bounds[bounds.seed == tracked_seed]
sharp = curvature[(curvature.seed == tracked_seed) & (curvature.quantity == "eig1")]
print("tracked seed (bounds.track_seed):", tracked_seed)
print("settings:", settings)
for row in along[np.isinf(along.value)].itertuples():  # a log axis drops them: marked, named
    print(
        f"epoch {row.epoch}: {row.quantity} is infinite: no noise scale down to {settings['jiang_upper']} / "
        f"2^{settings['jiang_steps']} keeps the accuracy drop within {settings['jiang_target']}"
    )


def draw(ax, data: pd.DataFrame, quantities: list[str], **style) -> None:
    """One line per quantity on a log axis, and a triangle at the top for each infinite value.

    A log axis cannot show an infinite value, and a line silently skips it: it is marked
    instead, in its quantity's colour with a red edge, in room added above the finite values.
    """
    quantities = [q for q in quantities if q in set(data.quantity)]
    if not quantities:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        return
    colours = dict(zip(quantities, sns.color_palette(n_colors=len(quantities)), strict=True))
    finite = data[np.isfinite(data.value) | data.value.isna()]
    sns.lineplot(
        data=finite,
        x="epoch",
        y="value",
        hue="quantity",
        hue_order=quantities,
        palette=colours,
        marker="o",
        ax=ax,
        **style,
    )
    ax.set_yscale("log")
    infinite = data[np.isinf(data.value) & data.quantity.isin(quantities)]
    if infinite.empty:
        return
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * (high / low) ** 0.2)  # room above the finite values
    where = ax.get_xaxis_transform()  # x in data, y in axes fraction: 1 is the top
    for quantity, group in infinite.groupby("quantity", sort=False):
        ax.plot(
            group.epoch,
            [0.95] * len(group),
            "^",
            color=colours[quantity],
            mec="crimson",
            mew=1.5,
            ms=10,
            transform=where,
            label=f"{quantity} infinite (top)",
        )
        for epoch in group.epoch:
            ax.annotate(
                "inf",
                (epoch, 0.95),
                xycoords=where,
                xytext=(8, 0),
                textcoords="offset points",
                va="center",
                color="crimson",
                fontsize=8,
            )


# %%
several = along.experiment.nunique() > 1
style = {"style": "experiment"} if several else {}
if along.empty:
    fig = placeholder_figure(
        f"Nothing to draw along training: the tracked seed {tracked_seed} did not complete "
        f"(or has no bounds).\n{note}"
    )
else:
    fig, axes = plt.subplots(2, 2, figsize=(12, 9.5 + 0.4 * left_out), sharex=True)
    draw(
        axes[0, 0],
        along,
        ["test_error", "train_error", "certificate_centered", "stochastic_test_error_centered"],
        **style,
    )
    axes[0, 0].axhline(0.9, color="crimson", ls="--", lw=1, label="vacuous (>= 0.9)")
    axes[0, 0].set(
        yscale="log",
        ylabel="0-1 error (fraction wrong, log scale)",
        title="Errors and the centred certificate",
    )
    # Below the panel (its lines fill it): two columns, no frame.
    axes[0, 0].legend(
        fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.03), frameon=False
    )
    sns.lineplot(data=sharp, x="epoch", y="value", marker="o", color="k", ax=axes[0, 1], **style)
    axes[0, 1].set(
        yscale="log",
        ylabel="top Hessian eigenvalue (loss / parameter unit$^2$)",
        title="Sharpness (curvature stage, Lanczos)",
    )
    proxy = along[along.quantity == "proxy"]
    sns.lineplot(data=proxy, x="epoch", y="value", marker="o", ax=axes[1, 0], **style)
    axes[1, 0].set(
        ylabel=f"proxy (eps = {settings['eps']:g}; arbitrary units)",
        title="The report's curvature proxy (not a bound)",
    )
    draw(axes[1, 1], along, ["jiang_sharpness", "jiang_magnitude_aware"], **style)
    axes[1, 1].set(
        yscale="log",
        ylabel="measure (unitless, log scale)",
        title="Sharpness-based PAC-Bayes measures (Jiang et al.)",
    )
    axes[1, 1].legend(fontsize=9, loc="lower right")
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[1]:
        ax.set_xlabel("epoch (0 = initialisation)")
    fig.suptitle(f"Along training, seed {tracked_seed}")
    if left_out:  # say under the figure which runs it leaves out
        fig.text(0.01, 0.005, note, fontsize=9, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight() if left_out else 0, 1, 1))
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Top left: training and test error of the network, the test error of the
# centred stochastic classifier Q and its certificate (dashed: vacuity). Top right: the
# sharpness tracked by the report. Bottom: the report's proxy and Jiang et al.'s measures.
# An infinite value (Jiang's measures, where no noise scale keeps the accuracy drop small)
# cannot be drawn on a log axis, and a line would silently skip it: it is marked by a
# triangle at the top of its panel labelled "inf" (in the quantity's colour; the line joins
# the finite values on either side), and the epochs are printed above.
# Whether the certificate and the measures follow sharpness can be read off epoch by epoch;
# the table below holds the numbers, with the sample sizes behind each. The tracked seed is
# drawn only if its run completed; runs that diverged or failed to train are left out (named
# at the top, and under the figure when there are any).

# %%
if along.empty:
    print(f"No numbers along training for seed {tracked_seed}. {note}")
else:
    table = along.pivot_table(index=["experiment", "epoch"], columns="quantity", values="value")
    if not sharp.empty:
        table = table.join(
            sharp.pivot_table(index=["experiment", "epoch"], values="value").rename(
                columns={"value": "eig1"}
            )
        )
    display(table)

# %%
certificates = along[along.quantity.str.startswith("certificate")][
    ["experiment", "seed", "epoch", "quantity", "value", "delta", "n", "mc_samples"]
].copy()
if certificates.empty:
    print(f"No certificate along training for seed {tracked_seed}. {note}")
else:
    certificates["Q_test_error"] = [
        table.loc[(e, epoch), q.replace("certificate", "stochastic_test_error")]
        for e, epoch, q in zip(
            certificates.experiment, certificates.epoch, certificates.quantity, strict=True
        )
    ]
    certificates["holds"] = certificates.value >= certificates.Q_test_error
    certificates["verdict"] = np.where(certificates.value >= 0.9, "vacuous", "non-vacuous")
    print(
        "every certificate along training >= the test error of the classifier it certifies:",
        bool(certificates.holds.all()),
    )
    display(certificates)
