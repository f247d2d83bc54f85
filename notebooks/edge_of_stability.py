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
# # Edge of stability: full-batch gradient descent against 2(1 + β)/η
#
# Gradient descent with step η (heavy-ball momentum β) on a quadratic is stable only while
# the top Hessian eigenvalue, the *sharpness*, stays below 2(1 + β)/η. Cohen et al. (2021)
# observe that full-batch GD on neural networks first sharpens until the sharpness reaches
# that threshold and then hovers at or just above it while the loss keeps falling, though
# not monotonically. Here each EoS run (one network and loss per `experiment`; runs differ in
# η = 2(1 + β)/(c λ0), c being the run's label and λ0 the sharpness measured at step 0) is
# drawn as in their figure 1: training loss, sharpness (measured every few steps by Lanczos)
# against its threshold, and training accuracy, all on the fixed training subset.
#
# The report's own network is trained by *minibatch* SGD, not full-batch GD; its sharpness
# per epoch (curvature stage) is set against the threshold of its step and momentum for
# reference: the threshold is GD's stability bound, not a bound on SGD.

# %% tags=["parameters"]
runs_table = "results/tables/runs.csv"
eos_table = "results/tables/eos.csv"
eos_summary_table = "results/tables/eos_summary.csv"
curvature_table = "results/tables/curvature.csv"
figure_png = "results/figures/edge_of_stability.png"
figure_pdf = "results/figures/edge_of_stability.pdf"
report_experiment = "report_mlp"  # the report's network (the workflow's REPORT_EXPERIMENT)
report_lr = 0.1  # its SGD step
report_momentum = 0.9  # its heavy-ball momentum

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import display
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from lossgeom.figures import notebook_runs, placeholder_figure, save_figure
from lossgeom.tables import completed_only, read_table

runs, note, left_out = notebook_runs(runs_table)
# The EoS runs are their own (no seed, not in the runs table); the report run's curvature is
# per seed, and a seed that did not complete is left out of it.
eos = read_table(eos_table, "eos")
summary = read_table(eos_summary_table, "eos_summary")
curvature = completed_only(read_table(curvature_table, "curvature"), runs)
meta = Path(eos_summary_table + ".meta.json")
edge = json.loads(meta.read_text())["config"].get("edge") if meta.exists() else None
report_experiment = str(report_experiment)  # papermill passes parameters as strings
report_lr, report_momentum = float(report_lr), float(report_momentum)
report_threshold = 2 * (1 + report_momentum) / report_lr
report = curvature[
    (curvature.experiment == report_experiment)
    & (curvature.quantity == "eig1")
    & np.isfinite(curvature.value)
]
experiments = list(dict.fromkeys(eos.experiment))
# The verdict's criteria: "at the edge" = the median of sharpness / threshold, from the first
# step at the edge on, within [AT_EDGE_LOW, AT_EDGE_HIGH] for at least AT_EDGE_STEPS steps.
AT_EDGE_LOW, AT_EDGE_HIGH, AT_EDGE_STEPS = 0.9, 1.1, 500
print(
    f"{len(experiments)} EoS experiment(s), {eos[['experiment', 'run']].drop_duplicates().shape[0]}"
    f" run(s); the summary counts a run as reaching the edge at sharpness >= {edge} x threshold"
)
print(
    f"report run {report_experiment}: SGD lr {report_lr:g}, momentum {report_momentum:g}, "
    f"threshold 2(1+momentum)/lr = {report_threshold:.4g}; "
    f"seeds with sharpness: {sorted(report.seed.unique().tolist())}"
)


def run_label(row) -> str:
    """A run's legend entry: its label, step and (if any) momentum."""
    beta = f", β = {row.momentum:g}" if row.momentum else ""
    return f"{row.run} (η = {row.lr:.3g}{beta})"


def loss_label(loss: str) -> str:
    """The y label of a loss panel, with its unit."""
    if loss == "mse":
        return "training loss: ½ squared error\n(log scale)"
    return "training cross-entropy\n(nats, log scale)"


def sharpness_limits(ax, values: np.ndarray, thresholds: np.ndarray) -> None:
    """Show every threshold; clip (and say so) sharpness far above the largest one."""
    top = max(np.nanmax(values, initial=0.0), thresholds.max())
    if top > 3 * thresholds.max():  # a diverging run: keep the thresholds readable
        top = 3 * thresholds.max()
        ax.text(0.02, 0.97, "clipped above", transform=ax.transAxes, va="top", fontsize=8)
    ax.set_ylim(0, 1.08 * top)


# %%
def draw_experiment(axes, data: pd.DataFrame) -> None:
    """One experiment's column: loss, sharpness against each run's threshold, accuracy."""
    keys = data[["run", "lr", "momentum", "threshold", "loss"]].drop_duplicates("run")
    colours = dict(zip(keys.run, sns.color_palette(n_colors=len(keys)), strict=True))
    handles, stopped = [], False
    for row in keys.itertuples():
        run, colour = data[data.run == row.run], colours[row.run]
        for ax, quantity in zip(axes, ["train_loss", "sharpness", "train_accuracy"], strict=True):
            shown = run[(run.quantity == quantity) & np.isfinite(run.value)]
            ax.plot(
                shown.step,
                shown.value,
                color=colour,
                lw=1.2,
                marker="." if quantity == "sharpness" else None,
            )
        axes[1].axhline(row.threshold, color=colour, ls="--", lw=1.2)
        # A diverged run's last step has its (non-finite) loss only, no accuracy.
        diverged = sorted(set(run.step) - set(run[run.quantity == "train_accuracy"].step))
        for ax in axes if diverged else ():
            ax.axvline(diverged[0], color=colour, ls=":", lw=1.2)
        label = run_label(row) + (f", diverged at step {diverged[0]}" if diverged else "")
        handles.append(Line2D([], [], color=colour, label=label))
        stopped = stopped or bool(diverged)
    handles.append(Line2D([], [], color="grey", ls="--", label="threshold 2(1+β)/η (run's colour)"))
    if stopped:
        handles.append(Line2D([], [], color="grey", ls=":", label="step where a run diverged"))
    loss = keys.loss.iloc[0]
    axes[0].set(yscale="log", ylabel=loss_label(loss), title=f"{data.experiment.iloc[0]} ({loss})")
    sharp = data[data.quantity == "sharpness"].value.to_numpy()
    sharpness_limits(axes[1], sharp, keys.threshold.to_numpy())
    axes[1].set(ylabel="sharpness: top Hessian eigenvalue\n(loss / parameter unit$^2$)")
    axes[2].set(
        ylabel="training accuracy (fraction correct)", xlabel="GD step (full batch)", ylim=(0, 1)
    )
    axes[2].legend(
        handles=handles,
        title="run c: η = 2(1+β) / (c λ$_0$)",
        title_fontsize=9,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.27),
        fontsize=9,
        frameon=False,
    )


def draw_report(ax, below) -> None:
    """The report's minibatch run: sharpness per epoch, every seed, against its threshold.

    Its legend goes in the empty panel ``below``, where it covers nothing.
    """
    for seed, group in report.sort_values("epoch").groupby("seed"):
        ax.plot(group.epoch, group.value, marker="o", label=f"seed {seed}")
    ax.axhline(
        report_threshold,
        color="k",
        ls="--",
        lw=1.2,
        label=f"2(1+β)/η = {report_threshold:.3g} (η = {report_lr:g}, β = {report_momentum:g})",
    )
    ax.set(
        yscale="log",
        xlabel="epoch (0 = initialisation)\nminibatch SGD: epochs, not GD steps",
        ylabel="sharpness: top Hessian eigenvalue\n(loss / parameter unit$^2$, log scale)",
        title=f"{report_experiment}: the report's SGD run",
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelbottom=True)  # the column shares x; this panel is its only one
    # Plain numbers (20, not 2 x 10^1), only those starting with 1, 2 or 5: no crowding.
    plain = FuncFormatter(lambda value, _: f"{value:g}" if f"{value:.0e}"[0] in "125" else "")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    below.axis("off")
    below.legend(*ax.get_legend_handles_labels(), loc="upper center", fontsize=9, frameon=False)


# %%
if eos.empty and report.empty:
    fig = placeholder_figure(
        "Nothing to draw: no EoS run in the table, and no completed seed of "
        f"{report_experiment} with a measured sharpness.\n{note}",
        figsize=(9, 3),
    )
else:
    columns = len(experiments) + (not report.empty)
    fig, axes = plt.subplots(
        3,
        columns,
        figsize=(max(4.6 * columns, 9.2), 11.5 + 0.4 * left_out),
        squeeze=False,
        sharex="col",
    )
    for column, experiment in enumerate(experiments):
        draw_experiment(axes[:, column], eos[eos.experiment == experiment])
    if not report.empty:
        draw_report(axes[1, -1], below=axes[2, -1])
        axes[0, -1].axis("off")
        axes[0, -1].text(
            0.0,
            0.5,
            "Below: the report's network, trained\nby minibatch SGD (curvature stage,\n"
            "per epoch). Its threshold is that of\nfull-batch GD with the same η and β:\n"
            "a reference, not a bound.",
            transform=axes[0, -1].transAxes,
            va="center",
            fontsize=10,
        )
    fig.suptitle(
        "Edge of stability (Cohen et al. 2021): full-batch GD\n"
        + (
            "sharpness (solid) against its threshold 2(1+β)/η (dashed, same colour)"
            if experiments
            else "no EoS run in the table: the report's run only"
        )
    )
    if left_out:  # say under the figure which runs the report panel leaves out
        fig.text(0.01, 0.005, note, fontsize=9, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight() if left_out else 0, 1, 1))
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** One column per EoS experiment (network and loss). Top: training loss on the
# full training subset against the GD step (log scale). Middle: sharpness (solid, dots at
# the measured steps) with each run's stability threshold 2(1 + β)/η as a dashed line in the
# same colour; a run is at the edge of stability when its sharpness rises to its line and
# stays there. Bottom: training accuracy. A dotted vertical line marks a run that diverged
# (its loss at that step is not finite). Legends give each run's label (c in
# η = 2(1 + β)/(c λ0)) and step. Last column, middle: the report's network trained by
# minibatch SGD, its sharpness per epoch for every completed seed (x: epochs, not steps),
# against the threshold of full-batch GD with its η and β. Seeds that did not complete are
# left out (named at the top, and under the figure when there are any).
#
# ## How each run met the edge
#
# `first_step_at_threshold`: the first measured step with sharpness at least `edge` times
# the threshold (empty if never); `median_ratio`, `ratio_q10`, `ratio_q90`: quantiles of
# sharpness / threshold from that step on; `steps_at_edge`: the steps from it to the last
# measurement; `diverged_step`: where a run stopped with a non-finite loss.

# %%
shown = [
    "experiment",
    "run",
    "loss",
    "lambda0",
    "lr",
    "momentum",
    "threshold",
    "first_step_at_threshold",
    "median_ratio",
    "ratio_q10",
    "ratio_q90",
    "steps_at_edge",
    "steps",
    "diverged_step",
]
if summary.empty:
    print("No EoS run in the summary table: nothing to summarise.")
else:
    display(summary[shown])
peaks = eos[eos.quantity == "sharpness"].groupby(["experiment", "run"]).value.max()


def verdict(row) -> str:
    """One sentence: did the run reach the edge, and did it stay there?"""
    name = f"{row.experiment} {row.run} (lr {row.lr:.4g}, threshold {row.threshold:.4g})"
    stopped = f"; diverged at step {row.diverged_step}" if pd.notna(row.diverged_step) else ""
    if pd.isna(row.first_step_at_threshold):
        peak = peaks.get((row.experiment, row.run), np.nan)
        return (
            f"{name}: never reached the edge in {row.steps} steps (peak sharpness {peak:.4g} = "
            f"{peak / row.threshold:.2f} x threshold){stopped}"
        )
    inside = AT_EDGE_LOW <= row.median_ratio <= AT_EDGE_HIGH
    long = row.steps_at_edge >= AT_EDGE_STEPS
    word = "AT THE EDGE" if inside and long else "not at the edge"
    return (
        f"{name}: reached the edge at step {row.first_step_at_threshold}; median sharpness / "
        f"threshold {row.median_ratio:.3f} (q10 {row.ratio_q10:.3f}, q90 {row.ratio_q90:.3f}) "
        f"{'inside' if inside else 'outside'} [{AT_EDGE_LOW}, {AT_EDGE_HIGH}] over "
        f"{row.steps_at_edge} steps ({'>=' if long else '<'} {AT_EDGE_STEPS}): {word}{stopped}"
    )


for row in summary.itertuples():
    print(verdict(row))
if report.empty:
    print(f"{report_experiment}: no completed seed with a measured sharpness. {note}")
else:
    last = int(report.epoch.max())
    final = report[report.epoch == last]
    ratio = final.value.mean() / report_threshold
    where = "at" if AT_EDGE_LOW <= ratio <= AT_EDGE_HIGH else ("below" if ratio < 1 else "above")
    print(
        f"{report_experiment} (minibatch SGD): final-epoch (epoch {last}) sharpness, mean over "
        f"seed(s) {sorted(final.seed.tolist())}: {final.value.mean():.4g}; threshold "
        f"2(1+{report_momentum:g})/{report_lr:g} = {report_threshold:.4g}; ratio {ratio:.3f}: "
        f"{where} the edge"
    )
    display(
        report.pivot_table(index="epoch", columns="seed", values="value").rename(
            columns=lambda s: f"sharpness seed {s}"
        )
    )
