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
# # SGD's temperature: the learning rate over the batch size
#
# In the SDE picture of SGD the noise scale is η/B (Jastrzebski et al. 2018; Smith & Le
# 2018). Two claims are tested on a grid of learning rates η and batch sizes B (the report's
# network and momentum, a few seeds per cell): a larger η/B ends training at a lower
# sharpness (the top Hessian eigenvalue), and cells with equal η/B end at similar sharpness
# whatever η and B are separately. The first is measured by Kendall's rank correlation τ
# between η/B and the final sharpness over every run; the second by comparing the spread of
# log10 sharpness within groups of equal η/B against the spread over all runs and against the
# spread between the seeds of one cell (the noise floor).

# %% tags=["parameters"]
runs_table = "results/tables/runs.csv"
temperature_table = "results/tables/temperature.csv"
figure_png = "results/figures/temperature.png"
figure_pdf = "results/figures/temperature.pdf"

# %%
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from IPython.display import display
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from lossgeom.figures import notebook_runs, placeholder_figure, save_figure
from lossgeom.summaries import temperature_summary
from lossgeom.tables import read_table

runs, note, left_out = notebook_runs(runs_table)
print("(The runs above are the main experiments; the grid's cells are trained separately.)")
temperature = read_table(temperature_table, "temperature")
temperature["ratio"] = temperature.lr / temperature.batch_size
# Equal eta / B up to rounding: the key groups cells whose ratios differ in the last bits only.
temperature["ratio_key"] = np.round(np.log(temperature.ratio), 9)
# A cell that did not complete has NaN values: named here, left out of every number below.
missing = temperature[~np.isfinite(temperature.value)][["lr", "batch_size", "seed"]]
for cell in missing.drop_duplicates().itertuples():
    print(f"left out: lr {cell.lr:g}, batch size {cell.batch_size}, seed {cell.seed} (no value)")
finite = temperature[np.isfinite(temperature.value)]
lrs = sorted(temperature.lr.unique().tolist())
batch_sizes = sorted(temperature.batch_size.unique().tolist())
print(
    f"grid: lr {lrs} x batch size {batch_sizes}; seeds {sorted(temperature.seed.unique().tolist())}"
)
COLOURS = dict(
    zip(batch_sizes, sns.color_palette("viridis", n_colors=max(len(batch_sizes), 1)), strict=False)
)
MARKERS = dict(zip(lrs, "osD^vP*X<>", strict=False))
# Cells of equal eta / B share an x: each learning rate is drawn slightly aside (a factor of
# 10^(0.03 i) on the log axis), so that their points do not hide each other.
DODGE = {lr: 10 ** (0.03 * (i - (len(lrs) - 1) / 2)) for i, lr in enumerate(lrs)}
PANELS = {
    "final_sharpness": ("Final sharpness", "top Hessian eigenvalue (loss / param.$^2$, log)", True),
    "final_trace": ("Final Hessian trace", "Hessian trace (loss / param.$^2$, log)", True),
    "test_accuracy": ("Test accuracy", "test accuracy (fraction correct)", False),
}


def draw(ax, quantity: str) -> None:
    """Every run (seed) of every cell: colour = batch size, marker = learning rate."""
    rows = finite[finite.quantity == quantity]
    title, label, log = PANELS[quantity]
    for (lr, batch), cell in rows.groupby(["lr", "batch_size"]):
        ax.scatter(
            cell.ratio * DODGE[lr],
            cell.value,
            color=COLOURS[batch],
            marker=MARKERS[lr],
            s=60,
            alpha=0.8,
            edgecolor="k",
            linewidth=0.5,
        )
    ax.set_xscale("log")
    # Plain numbers, only those starting with 1, 2 or 5: a grid under a decade wide stays legible.
    plain = FuncFormatter(lambda value, _: f"{value:g}" if f"{value:.0e}"[0] in "125" else "")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    if log and not rows.empty:
        ax.set_yscale("log")
    ax.set(title=title, ylabel=label, xlabel="η / B (learning rate / batch size, log scale)")
    if rows.empty:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)


# %%
if finite.empty:
    fig = placeholder_figure(
        "No temperature grid to draw: the table has no completed cell.", figsize=(9, 3)
    )
else:
    fig, axes = plt.subplots(1, 3, figsize=(17, 6))
    for ax, quantity in zip(axes, PANELS, strict=True):
        draw(ax, quantity)
    sizes = [
        Line2D([], [], ls="", marker="o", color=c, mec="k", ms=8, label=f"B = {b}")
        for b, c in COLOURS.items()
    ]
    rates = [
        Line2D([], [], ls="", marker=m, color="grey", mec="k", ms=8, label=f"η = {lr:g}")
        for lr, m in MARKERS.items()
    ]
    for handles, title, x in (
        (sizes, "batch size (colour)", 0.3),
        (rates, "learning rate (marker)", 0.7),
    ):
        fig.legend(
            handles=handles,
            title=title,
            loc="lower center",
            ncol=len(handles),
            bbox_to_anchor=(x, 0.0),
            frameon=False,
        )
    fig.suptitle("SGD temperature: every run of the η x B grid (one point per seed) against η / B")
    fig.tight_layout(rect=(0, 0.13, 1, 1))
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Each point is one training run (one seed of one grid cell): its final
# sharpness (left, log scale), final Hessian trace (middle, log scale) and test accuracy
# (right) against η/B on a log axis. Colour gives the batch size and marker the learning
# rate, so cells with equal η/B can be told apart; each learning rate is drawn 0.03 decade
# further right than the one below it (centred on the true η/B) so that such cells do not
# hide each other. If a larger η/B ends flatter, the left panel falls from left to right; if
# η/B alone decides, the points of one η/B agree whatever their colour and marker. Cells
# that did not complete are left out (named at the top).
#
# ## Kendall's τ and the spreads of log10 sharpness

# %%
summary = temperature_summary(temperature)  # NaN cells and non-positive values left out
n_runs = int(summary["n_runs"])
if n_runs < 3:
    print(f"Too few runs with a final sharpness ({n_runs}) for Kendall's tau.")
else:
    tau, p = summary["kendall_tau"], summary["kendall_p"]
    trend = "falls" if tau < 0 else "rises"
    print(
        f"Kendall's tau between eta/B and final sharpness: {tau:.3f} (two-sided p = {p:.3g}, "
        f"{n_runs} runs): sharpness {trend} with eta/B"
        + (" (p < 0.05)" if p < 0.05 else " (not significant at 0.05)")
    )
if np.isfinite(summary["kendall_tau_given_train_loss"]):
    print(
        f"At 2 epochs a smaller eta/B also trains less far (Kendall's tau between eta/B and "
        f"the final training loss: {summary['train_loss_tau']:.3f}); with log training loss "
        f"regressed out of log sharpness, tau is {summary['kendall_tau_given_train_loss']:.3f} "
        f"(p = {summary['kendall_p_given_train_loss']:.3g})"
    )
for group in summary["groups"]:
    cells = "; ".join(
        f"lr {lr:g}, B {b}: " + ", ".join(f"{v:.3g}" for v in cell.value)
        for (lr, b), cell in group.groupby(["lr", "batch_size"])
    )
    print(f"eta/B = {group.ratio.iloc[0]:.4g}: final sharpness {cells}")
within, overall = summary["equal_ratio_spread"], summary["overall_spread"]
seed_spread = summary["seed_spread"]
if n_runs == 0:
    print("No completed run with a final sharpness: no spreads to compare.")
else:
    print(
        f"{len(summary['groups'])} group(s) of equal eta/B with at least 2 distinct (lr, B) "
        "cells. Spread of log10 sharpness (standard deviation): "
        f"within equal-eta/B groups {within:.3f} ({summary['equal_ratio_dof']} dof); "
        f"within cells, between seeds {seed_spread:.3f} ({summary['seed_dof']} dof); "
        f"over all runs {overall:.3f} ({n_runs - 1} dof)"
    )
if np.isfinite([within, overall]).all():
    ratio_to_seeds = (
        f"; within-group / seed spread: {within / seed_spread:.2f}"
        if np.isfinite(seed_spread) and seed_spread > 0
        else ""
    )
    print(
        f"within-group / overall spread: {within / overall:.2f} "
        f"({'tighter' if within < overall else 'not tighter'} than the grid as a whole)"
        + ratio_to_seeds
    )
print(note)

# %% [markdown]
# ## The grid (mean over the completed seeds of each cell)

# %%
if finite.empty:
    print("No completed cell: nothing to tabulate.")
else:
    means = finite.pivot_table(
        index=["lr", "batch_size", "ratio"], columns="quantity", values="value", aggfunc="mean"
    )
    means["seeds"] = finite.groupby(["lr", "batch_size", "ratio"]).seed.nunique()
    display(means)
    display(
        finite[finite.quantity == "final_sharpness"]
        .pivot_table(index="lr", columns="batch_size", values="value", aggfunc="mean")
        .rename_axis(index="lr \\ batch size", columns=None)
    )
