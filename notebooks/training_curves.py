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
# # Training loss, test accuracy and sharpness per epoch (the report's Figure 2)
#
# The report trains a 784-512-10 ReLU MLP on MNIST with SGD (lr 0.1, momentum 0.9) for five
# epochs and tracks the training loss and the top Hessian eigenvalue (sharpness) per epoch.
# Here every epoch's checkpoint, initialisation included, is measured for every seed:
# losses and accuracies over the full training and test sets (eval mode), the top Hessian
# eigenvalue by Lanczos and the Hessian trace (by default Hutchinson's estimator on the
# remainder of that Lanczos basis; Hutch++ or plain Hutchinson when `curvature.trace_method`
# says so) on a fixed training subset. Bands span the seeds (minimum to maximum); lines are
# the means.

# %% tags=["parameters"]
runs_table = "results/tables/runs.csv"
training_table = "results/tables/training.csv"
curvature_table = "results/tables/curvature.csv"
figure_png = "results/figures/training_curves.png"
figure_pdf = "results/figures/training_curves.pdf"

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import display
from matplotlib.ticker import MaxNLocator

from lossgeom.figures import notebook_runs, placeholder_figure, save_figure
from lossgeom.tables import completed_only, read_table

runs, note, left_out = notebook_runs(runs_table)
# A run that did not complete is never drawn or summarised: its curves would show a network
# that did not train (train.py writes its rows all the same).
training = completed_only(read_table(training_table, "training"), runs)
curvature = completed_only(read_table(curvature_table, "curvature"), runs)
meta = json.loads(Path(curvature_table + ".meta.json").read_text())
settings = meta["config"]
print(
    f"{training.experiment.nunique()} experiment(s), seeds {sorted(training.seed.unique().tolist())}"
)
print("curvature settings:", settings)
TRACE_NAMES = {"krylov": "Hutchinson on the Lanczos remainder", "hutchpp": "Hutch++",
               "hutchinson": "Hutchinson"}  # fmt: skip
trace_name = TRACE_NAMES.get(settings.get("trace_method"), "stochastic estimate")


def drop_lonely_legend(ax) -> None:
    """Remove a legend with a single entry (one experiment): the title already says it."""
    legend = ax.get_legend()
    if legend is not None and len(legend.get_texts()) <= 1:
        legend.remove()


# %%
band = {"errorbar": ("pi", 100), "marker": "o"}
several = training.experiment.nunique() > 1
if training.empty:
    fig = placeholder_figure(f"No training curves to draw: no run completed.\n{note}")
else:
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    losses = training[training.metric == "loss"]
    sns.lineplot(
        data=losses,
        x="epoch",
        y="value",
        hue="split",
        style="experiment" if several else None,
        ax=axes[0, 0],
        **band,
    )
    axes[0, 0].set(
        yscale="log",
        ylabel="cross-entropy loss (nats)",
        title="Loss over the full sets (eval mode)",
    )
    accuracy = training[(training.metric == "accuracy") & (training.split == "test")]
    sns.lineplot(data=accuracy, x="epoch", y="value", hue="experiment", ax=axes[0, 1], **band)
    axes[0, 1].set(ylabel="test accuracy (fraction correct)", title="Test accuracy")
    eigen = curvature[curvature.quantity.str.startswith("eig")]
    sns.lineplot(
        data=eigen,
        x="epoch",
        y="value",
        hue="quantity",
        style="experiment" if several else None,
        ax=axes[1, 0],
        **band,
    )
    axes[1, 0].set(
        yscale="log",
        ylabel="Hessian eigenvalue (loss / parameter unit$^2$)",
        title="Top Hessian eigenvalues (Lanczos)",
    )
    traces = curvature[curvature.quantity == "trace"]
    sns.lineplot(data=traces, x="epoch", y="value", hue="experiment", ax=axes[1, 1], **band)
    axes[1, 1].set(
        yscale="log",
        ylabel="Hessian trace (loss / parameter unit$^2$)",
        title=f"Hessian trace ({trace_name})",
    )
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        drop_lonely_legend(ax)
    for ax in axes[1]:
        ax.set_xlabel("epoch (0 = initialisation)")
    seeds = sorted(training.seed.unique().tolist())
    names = ", ".join(sorted(training.experiment.unique()))
    fig.suptitle(
        "Optimisation and curvature per epoch (line: mean over seeds; band: range over seeds)\n"
        f"{names}; seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}"
    )
    if left_out:  # say under the figure which runs it leaves out
        fig.text(0.01, 0.005, note, fontsize=9, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight() if left_out else 0, 1, 1))
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Top left: training and test cross-entropy over the full sets. Top right: test
# accuracy. Bottom left: the three largest Hessian eigenvalues of the training loss on the
# curvature subset; `eig1` is the sharpness the report tracks. Bottom right: the Hessian
# trace (its estimator in the panel's title; the standard errors are in the table below). Only runs that completed are
# drawn: a run that diverged or failed to train (its reason is printed at the top and written
# under the figure) is left out of the figure and of every number below.
#
# ## The numbers behind the figure (mean over seeds)

# %%
if training.empty:
    print(f"No numbers: no run completed. {note}")
else:
    last = int(training.epoch.max())
    summary = training[training.metric.isin(["loss", "accuracy"])].pivot_table(
        index=["experiment", "epoch"], columns=["split", "metric"], values="value", aggfunc="mean"
    )
    curv = curvature.pivot_table(
        index=["experiment", "epoch"], columns="quantity", values="value", aggfunc="mean"
    )
    table = summary.join(pd.concat({"hessian": curv}, axis=1)) if not curv.empty else summary
    display(table)

# %%
sharp = curvature[curvature.quantity == "eig1"].pivot_table(
    index="seed", columns="epoch", values="value"
)
if training.empty or sharp.empty or 0 not in sharp or last not in sharp:
    print(f"No summary: no completed run has sharpness at initialisation and at the end. {note}")
else:
    test_acc = accuracy[accuracy.epoch == last].value
    trace_err = traces.groupby("epoch").stderr.mean()
    print(
        f"Test accuracy after epoch {last}: {test_acc.mean():.4f} (seeds: {', '.join(f'{v:.4f}' for v in test_acc)})"
    )
    print("Sharpness (eig1) per epoch, mean over seeds:", sharp.mean().round(3).to_dict())
    print(
        f"Sharpness at initialisation: {sharp[0].mean():.2f}; after epoch {last}: {sharp[last].mean():.2f}"
    )
    print(f"Ratio initialisation / final sharpness: {(sharp[0] / sharp[last]).mean():.2f}")
    print("Mean standard error of the trace per epoch:", trace_err.round(2).to_dict())
    print(note)
