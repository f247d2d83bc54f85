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
landscape_table = "results/tables/landscape.csv"
figure_png = "results/figures/landscape_1d.png"
figure_pdf = "results/figures/landscape_1d.pdf"

# %%

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lossgeom.figures import save_figure
from lossgeom.tables import read_table

sns.set_theme(context="notebook", style="whitegrid")
landscape = read_table(landscape_table, "landscape")
profiles = landscape[landscape.slice.str.startswith("1d")].copy()
profiles["coefficient"] = np.where(profiles.slice == "1d_alpha", profiles.alpha, profiles.beta)
profiles["direction"] = profiles.slice.map({"1d_alpha": "d1", "1d_beta": "d2"})
kinds = [k for k in ("random", "filter", "hessian") if k in set(profiles.directions)]
print(f"seeds: {sorted(profiles.seed.unique().tolist())}, kinds: {kinds}")

# %%
fig, axes = plt.subplots(2, len(kinds), figsize=(5 * len(kinds), 8), squeeze=False, sharex="col")
for col, kind in enumerate(kinds):
    sub = profiles[profiles.directions == kind]
    for row, metric in enumerate(["loss", "accuracy"]):
        ax = axes[row, col]
        sns.lineplot(
            data=sub[sub.metric == metric],
            x="coefficient",
            y="value",
            hue="split",
            style="direction",
            errorbar=("pi", 100),
            ax=ax,
        )
        ax.set(
            title=f"{kind} directions: {metric}",
            xlabel="coefficient along the direction",
            ylabel="cross-entropy (nats)" if metric == "loss" else "accuracy (fraction correct)",
        )
        if metric == "loss":
            ax.set_yscale("log")
fig.suptitle("1D profiles through the final weights (band: range over seeds)")
fig.tight_layout()
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Loss (top, log scale) and accuracy (bottom) along each direction of the slices,
# on the training subset and the test set. Below: the curvature of each profile at the
# centre, from a central second difference, next to each other for the two directions.


# %%
def centre_curvature(group: pd.DataFrame) -> float:
    group = group.sort_values("coefficient")
    c, v = group.coefficient.to_numpy(), group.value.to_numpy()
    i = int(np.argmin(np.abs(c)))
    h = c[i + 1] - c[i]
    return (v[i + 1] - 2 * v[i] + v[i - 1]) / h**2


loss_profiles = profiles[profiles.metric == "loss"]
(
    loss_profiles.groupby(["directions", "direction", "split", "seed"])
    .apply(centre_curvature, include_groups=False)
    .groupby(["directions", "direction", "split"])
    .agg(["mean", "min", "max"])
    .rename(columns=lambda c: f"d2L/dc2 at 0 ({c} over seeds)")
)
