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
# # 2D loss slices around the trained MLP (the report's Figure 3, three ways)
#
# The report draws the loss on the plane ``theta* + a d1 + b d2`` for two random directions,
# each parameter tensor scaled to unit norm. Its scale depends on that arbitrary
# normalisation, so the slice is also drawn along filter-normalised directions (Li et al.
# 2018: each filter of the direction has the norm of the same filter of the weights; biases
# zero), which make slices of different networks comparable, and along the two top Hessian
# eigenvectors (unit norm), the sharpest directions there are.

# %% tags=["parameters"]
landscape_table = "results/tables/landscape.csv"
figure_png = "results/figures/landscape_2d.png"
figure_pdf = "results/figures/landscape_2d.pdf"

# %%

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lossgeom.figures import save_figure
from lossgeom.tables import read_table

sns.set_theme(context="notebook", style="white")
landscape = read_table(landscape_table, "landscape")
plane = landscape[(landscape.slice == "2d") & (landscape.metric == "loss")]
experiment = sorted(plane.experiment.unique())[0]
seed = sorted(plane.seed.unique())[0]
kinds = [k for k in ("random", "filter", "hessian") if k in set(plane.directions)]
labels = {
    "random": "random (per-tensor unit norm, report)",
    "filter": "filter-normalised",
    "hessian": "top-2 Hessian eigenvectors",
}
print(f"experiment {experiment}, seed {seed}; direction kinds: {kinds}")

# %%
fig, axes = plt.subplots(2, len(kinds), figsize=(5.2 * len(kinds), 9.5), squeeze=False)
for row, split in enumerate(["train", "test"]):
    for col, kind in enumerate(kinds):
        sub = plane[
            (plane.experiment == experiment)
            & (plane.seed == seed)
            & (plane.directions == kind)
            & (plane.split == split)
        ]
        grid = sub.pivot_table(index="beta", columns="alpha", values="value")
        ax = axes[row, col]
        levels = np.geomspace(max(grid.values.min(), 1e-4), grid.values.max(), 25)
        filled = ax.contourf(
            grid.columns,
            grid.index,
            grid.values,
            levels=levels,
            norm=plt.matplotlib.colors.LogNorm(),
            cmap="viridis",
        )
        ax.contour(
            grid.columns,
            grid.index,
            grid.values,
            levels=levels[::3],
            colors="white",
            linewidths=0.5,
            norm=plt.matplotlib.colors.LogNorm(),
        )
        ax.plot(0, 0, marker="*", color="red", ms=12, label="trained weights")
        ax.set(
            xlabel="coefficient a along d1",
            ylabel="coefficient b along d2",
            title=f"{labels[kind]}\n{split} loss",
            aspect="equal",
        )
        fig.colorbar(filled, ax=ax, label="cross-entropy (nats), log scale", format="%.4g")
        ax.legend(loc="upper right", fontsize=8)
fig.suptitle(f"Loss on 2D slices around the final weights ({experiment}, seed {seed})")
fig.tight_layout()
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Training-subset (top) and test (bottom) cross-entropy on the plane spanned by
# two directions through the trained weights (red star), for each kind of direction; log
# colour scale. The anisotropy the report reads into random slices is measured directly
# below: the loss increase at the edge of the slice along each axis.

# %%
edge = plane[
    (plane.split == "train")
    & (
        (plane.alpha.abs() == plane.alpha.abs().max()) & (plane.beta == 0)
        | (plane.beta.abs() == plane.beta.abs().max()) & (plane.alpha == 0)
    )
].copy()
edge["axis"] = np.where(edge.beta == 0, "d1", "d2")
centre = (
    plane[(plane.split == "train") & (plane.alpha == 0) & (plane.beta == 0)]
    .set_index(["experiment", "seed", "directions"])
    .value
)
edge["increase"] = (
    edge.value.values
    - centre.reindex(pd.MultiIndex.from_frame(edge[["experiment", "seed", "directions"]])).values
)
edge.groupby(["directions", "axis"]).increase.agg(["mean", "min", "max"]).rename(
    columns=lambda c: f"loss increase at edge ({c} over seeds and sides)"
)
