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
# # 1D loss and accuracy profiles around the trained MLP
#
# Profiles through the trained weights along each direction of the 2D slices, for every
# seed (lines: mean over seeds; bands: range). The flatness the report attributes to the
# solution is compared between random, filter-normalised and top-eigenvector directions,
# and between the training subset and the test set.

# %% tags=["parameters"]
runs_table = "results/tables/runs.csv"
landscape_table = "results/tables/landscape.csv"
figure_png = "results/figures/landscape_1d.png"
figure_pdf = "results/figures/landscape_1d.pdf"

# %%

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import display
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lossgeom.figures import notebook_runs, placeholder_figure, save_figure
from lossgeom.tables import completed_only, read_table

runs, note, left_out = notebook_runs(runs_table)
landscape = completed_only(read_table(landscape_table, "landscape"), runs)
profiles = landscape[landscape.slice.str.startswith("1d")].copy()
profiles["coefficient"] = np.where(profiles.slice == "1d_alpha", profiles.alpha, profiles.beta)
profiles["direction"] = profiles.slice.map({"1d_alpha": "d1", "1d_beta": "d2"})
kinds = [k for k in ("random", "filter", "hessian") if k in set(profiles.directions)]
print(f"seeds: {sorted(profiles.seed.unique().tolist())}, kinds: {kinds}")

# %%
colours = dict(zip(["train", "test"], sns.color_palette("deep", 2), strict=True))
dashes = {"d1": "", "d2": (4, 1.5)}
if profiles.empty:
    fig = placeholder_figure(f"No 1D profile to draw: no run behind it completed.\n{note}")
else:
    fig, axes = plt.subplots(
        2, len(kinds), figsize=(5 * len(kinds), 8.6), squeeze=False, sharex="col"
    )
    for col, kind in enumerate(kinds):
        sub = profiles[profiles.directions == kind]
        for row, metric in enumerate(["loss", "accuracy"]):
            ax = axes[row, col]
            sns.lineplot(
                data=sub[sub.metric == metric],
                x="coefficient",
                y="value",
                hue="split",
                hue_order=list(colours),
                palette=colours,
                style="direction",
                style_order=list(dashes),
                dashes=dashes,
                errorbar=("pi", 100),
                legend=False,  # one legend for the figure, below it, covers no data
                ax=ax,
            )
            ax.set(
                title=f"{kind} directions: {metric}",
                xlabel="coefficient along the direction",
                ylabel="cross-entropy (nats)"
                if metric == "loss"
                else "accuracy (fraction correct)",
            )
            if metric == "loss":
                ax.set_yscale("log")
    handles = [Line2D([], [], color=c, label=f"{split} split") for split, c in colours.items()]
    handles += [
        Line2D([], [], color="0.3", dashes=d, label=f"along {name}") for name, d in dashes.items()
    ]
    seeds = sorted(profiles.seed.unique().tolist())
    if len(seeds) > 1:  # one seed has no band
        handles.append(Patch(color="0.3", alpha=0.25, label="range over seeds"))
    fig.suptitle(
        "1D profiles through the final weights (band: range over seeds; "
        f"seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))})"
    )
    bottom = (0.5 + 0.4 * left_out) / fig.get_figheight()  # room for the legend and the note
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=len(handles),
        bbox_to_anchor=(0.5, 0.4 * left_out / fig.get_figheight()),
        frameon=False,
    )
    if left_out:  # say under the figure which runs it leaves out
        fig.text(0.01, 0.005, note, fontsize=9, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, bottom, 1, 1))
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Loss (top, log scale) and accuracy (bottom) along each direction of the slices
# (solid: d1, dashed: d2), on the training subset and the test set; lines are the mean over
# the completed seeds, bands their range. Runs that diverged or failed to train are left out
# (named at the top, and under the figure when there are any). Below: the curvature of each
# profile at the centre, from a central second difference, next to each other for the two
# directions.


# %%
def centre_curvature(group: pd.DataFrame) -> float:
    group = group.sort_values("coefficient")
    c, v = group.coefficient.to_numpy(), group.value.to_numpy()
    i = int(np.argmin(np.abs(c)))
    if i == 0 or i == len(c) - 1:  # no neighbour on one side: no central difference
        return float("nan")
    h = c[i + 1] - c[i]
    return (v[i + 1] - 2 * v[i] + v[i - 1]) / h**2


loss_profiles = profiles[profiles.metric == "loss"]
if loss_profiles.empty:
    print(f"No curvature at the centre: no completed run has 1D profiles. {note}")
else:
    display(
        loss_profiles.groupby(["directions", "direction", "split", "seed"])
        .apply(centre_curvature, include_groups=False)
        .groupby(["directions", "direction", "split"])
        .agg(["mean", "min", "max"])
        .rename(columns=lambda c: f"d2L/dc2 at 0 ({c} over seeds)")
    )
