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
runs_table = "results/tables/runs.csv"
landscape_table = "results/tables/landscape.csv"
figure_png = "results/figures/landscape_2d.png"
figure_pdf = "results/figures/landscape_2d.pdf"

# %%

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from lossgeom.figures import notebook_runs, placeholder_figure, save_figure
from lossgeom.tables import completed_only, read_table

runs, note, left_out = notebook_runs(runs_table, style="white")
landscape = completed_only(read_table(landscape_table, "landscape"), runs)
plane = landscape[(landscape.slice == "2d") & (landscape.metric == "loss")]
kinds = [k for k in ("random", "filter", "hessian") if k in set(plane.directions)]
labels = {
    "random": "random (per-tensor unit norm, report)",
    "filter": "filter-normalised",
    "hessian": "top-2 Hessian eigenvectors",
}
if plane.empty:
    experiment, seed = None, None
    print("no 2D slice of a completed run to draw")
else:
    experiment = sorted(plane.experiment.unique())[0]
    seed = sorted(plane[plane.experiment == experiment].seed.unique())[0]
    print(f"experiment {experiment}, seed {seed}; direction kinds: {kinds}")


def draw_slice(fig, ax, grid: pd.DataFrame) -> None:
    """Filled log-scale contours of one slice; a sentence instead where they cannot be drawn."""
    values = grid.to_numpy(dtype=float)
    finite = values[np.isfinite(values) & (values > 0)]
    low, high = (max(finite.min(), 1e-4), finite.max()) if finite.size else (0.0, 0.0)
    if not high > low:  # no positive finite value, or a constant slice: no levels
        what = "no positive finite loss" if finite.size == 0 else f"loss {high:.4g} everywhere"
        if len(grid.columns) > 1 and len(grid.index) > 1:  # the slice's extent all the same
            ax.set(
                xlim=(grid.columns.min(), grid.columns.max()),
                ylim=(grid.index.min(), grid.index.max()),
            )
        ax.text(
            0.5, 0.72, f"{what}:\nno contours", ha="center", va="center", transform=ax.transAxes
        )
        return
    levels = np.geomspace(low, high, 25)
    norm = plt.matplotlib.colors.LogNorm()
    filled = ax.contourf(grid.columns, grid.index, values, levels=levels, norm=norm, cmap="viridis")
    ax.contour(
        grid.columns,
        grid.index,
        values,
        levels=levels[::3],
        colors="white",
        linewidths=0.5,
        norm=norm,
    )
    fig.colorbar(filled, ax=ax, label="cross-entropy (nats), log scale", format="%.4g")


# %%
if plane.empty:
    fig = placeholder_figure(f"No 2D slice to draw: no run behind it completed.\n{note}")
else:
    fig, axes = plt.subplots(2, len(kinds), figsize=(5.2 * len(kinds), 9.5), squeeze=False)
    for row, split in enumerate(["train", "test"]):
        for col, kind in enumerate(kinds):
            sub = plane[
                (plane.experiment == experiment)
                & (plane.seed == seed)
                & (plane.directions == kind)
                & (plane.split == split)
            ]
            ax = axes[row, col]
            draw_slice(fig, ax, sub.pivot_table(index="beta", columns="alpha", values="value"))
            ax.plot(0, 0, marker="*", color="red", ms=12, label="trained weights")
            ax.set(
                xlabel="coefficient a along d1",
                ylabel="coefficient b along d2",
                title=f"{labels[kind]}\n{split} loss",
                aspect="equal",
            )
            ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"Loss on 2D slices around the final weights ({experiment}, seed {seed})")
    if left_out:  # say under the figure which runs it leaves out
        fig.text(0.01, 0.005, note, fontsize=9, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight() if left_out else 0, 1, 1))
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Training-subset (top) and test (bottom) cross-entropy on the plane spanned by
# two directions through the trained weights (red star), for each kind of direction; log
# colour scale. The first completed seed is drawn; runs that diverged or failed to train are
# left out (named at the top, and under the figure when there are any). The anisotropy the
# report reads into random slices is measured directly below: the loss increase at the edge
# of the slice along each axis, over the completed seeds.

# %%
edge = plane[
    (plane.split == "train")
    & (
        (plane.alpha.abs() == plane.alpha.abs().max()) & (plane.beta == 0)
        | (plane.beta.abs() == plane.beta.abs().max()) & (plane.alpha == 0)
    )
].copy()
if edge.empty:
    print(f"No edge increase to measure: no completed run has a 2D slice. {note}")
else:
    edge["axis"] = np.where(edge.beta == 0, "d1", "d2")
    centre = (
        plane[(plane.split == "train") & (plane.alpha == 0) & (plane.beta == 0)]
        .set_index(["experiment", "seed", "directions"])
        .value
    )
    edge["increase"] = (
        edge.value.values
        - centre.reindex(
            pd.MultiIndex.from_frame(edge[["experiment", "seed", "directions"]])
        ).values
    )
    display(
        edge.groupby(["directions", "axis"])
        .increase.agg(["mean", "min", "max"])
        .rename(columns=lambda c: f"loss increase at edge ({c} over seeds and sides)")
    )
