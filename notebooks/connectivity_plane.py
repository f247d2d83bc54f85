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
# # The plane through two solutions and the trained bend
#
# As Garipov et al. (2018) draw it: the loss on the 2D affine plane that contains the two
# solutions a (at (0, 0)) and b (at (1, 0)) and the bend c of the trained Bezier curve, in
# units of |b - a|. The straight line runs along the u axis; the curve bends into the plane.

# %% tags=["parameters"]
runs_table = "results/tables/runs.csv"
plane_table = "results/tables/plane.csv"
barriers_table = "results/tables/barriers.csv"
figure_png = "results/figures/connectivity_plane.png"
figure_pdf = "results/figures/connectivity_plane.pdf"

# %%

import matplotlib.patheffects as pe
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from lossgeom.connectivity import bezier_point
from lossgeom.figures import notebook_runs, placeholder_figure, save_figure
from lossgeom.tables import completed_only, read_table

runs, note, left_out = notebook_runs(runs_table, style="white")
# A pair is kept only when both of its runs completed.
plane = completed_only(read_table(plane_table, "plane"), runs)
barriers = completed_only(read_table(barriers_table, "barriers"), runs)
if plane.empty:
    first, sub = None, plane
    print("no pair of seeds whose runs both completed: no plane to draw")
else:
    first = plane[["experiment", "seed_a", "seed_b"]].drop_duplicates().iloc[0]
    sub = plane[
        (plane.experiment == first.experiment)
        & (plane.seed_a == first.seed_a)
        & (plane.seed_b == first.seed_b)
    ]
    print(f"experiment {first.experiment}, seeds {first.seed_a} and {first.seed_b}")


def draw_grid(fig, ax, grid: pd.DataFrame, metric: str, label: str) -> None:
    """Filled contours of one grid; a sentence instead where they cannot be drawn."""
    values = grid.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    if metric == "loss":
        finite = finite[finite > 0]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    if metric == "loss":
        low = max(low, 1e-4)
    if not high > low:  # no finite value, or a constant grid: no contour levels
        what = f"no finite {metric}" if finite.size == 0 else f"{metric} {high:.3g} everywhere"
        if len(grid.columns) > 1 and len(grid.index) > 1:  # the slice's extent all the same
            ax.set(
                xlim=(grid.columns.min(), grid.columns.max()),
                ylim=(grid.index.min(), grid.index.max()),
            )
        ax.text(0.5, 0.6, f"{what}: no contours", ha="center", va="center", transform=ax.transAxes)
        return
    if metric == "loss":
        levels = np.geomspace(low, high, 25)
        norm = plt.matplotlib.colors.LogNorm()
    else:
        levels, norm = 25, None
    filled = ax.contourf(grid.columns, grid.index, values, levels=levels, norm=norm, cmap="viridis")
    fig.colorbar(filled, ax=ax, label=label, format="%.3g")


# %%
# The bend's coordinates on the plane are stored with every row of the pair; a is at (0, 0)
# and b at (1, 0), so the curve on the plane is the library's Bezier curve of those points.
# White marks get a black outline so that they show on the bright parts of the colour map and
# in the legend, on its white background.
outline = [pe.Stroke(linewidth=3.5, foreground="black"), pe.Normal()]
if sub.empty:
    fig = placeholder_figure(
        f"No plane to draw: no pair of seeds whose runs both completed.\n{note}"
    )
else:
    bend_u, bend_v = sub.bend_u.iloc[0], sub.bend_v.iloc[0]
    t = np.linspace(0, 1, 101)[:, None]
    curve = bezier_point(np.zeros(2), np.array([bend_u, bend_v]), np.array([1.0, 0.0]), t)
    curve_u, curve_v = curve[:, 0], curve[:, 1]

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2 + 0.4 * left_out))
    for ax, (split, metric, label) in zip(
        axes,
        [
            ("train", "loss", "training-subset loss (nats)"),
            ("test", "error", "test error (fraction wrong)"),
        ],
        strict=True,
    ):
        grid = sub[(sub.split == split) & (sub.metric == metric)].pivot_table(
            index="v", columns="u", values="value"
        )
        draw_grid(fig, ax, grid, metric, label)
        ax.plot([0, 1], [0, 0], "w--", lw=1.5, path_effects=outline, label="straight line")
        ax.plot(curve_u, curve_v, "r-", lw=2, label="Bezier curve")
        ax.plot(
            [0, 1],
            [0, 0],
            "o",
            color="white",
            mec="black",
            ms=7,
            label="solutions a (0, 0), b (1, 0)",
        )
        ax.plot(bend_u, bend_v, "x", color="red", ms=9, label="bend")
        ax.set(
            xlabel="u: along b - a (units of |b - a|)",
            ylabel="v: towards the bend (units of |b - a|)",
            title=label,
        )
    handles, names = axes[0].get_legend_handles_labels()  # one legend, below, covers no data
    fig.legend(
        handles,
        names,
        loc="lower center",
        ncol=len(names),
        bbox_to_anchor=(0.5, 0.4 * left_out / fig.get_figheight()),
        frameon=False,
    )
    fig.suptitle(
        f"Loss and error on the plane through a, b and the bend (seeds {first.seed_a} and {first.seed_b})"
    )
    if left_out:  # say under the figure which runs it leaves out
        fig.text(0.01, 0.005, note, fontsize=9, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, (0.5 + 0.4 * left_out) / fig.get_figheight(), 1, 1))
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Left: training-subset loss (log colour scale); right: test error. White dots
# (outlined): the two solutions; white dashed: the straight line between them; red: the
# trained Bezier curve and its bend (x). The first pair of seeds whose runs both completed is
# drawn; a run that diverged or failed to train leaves out every pair it belongs to (named at
# the top, and under the figure when there are any). The barrier of each path, for this pair:

# %%
if first is None:
    print(f"No barriers: no pair of seeds whose runs both completed. {note}")
else:
    mine = (
        (barriers.experiment == first.experiment)
        & (barriers.seed_a == first.seed_a)
        & (barriers.seed_b == first.seed_b)
    )
    display(barriers[mine].pivot_table(index="path", columns=["split", "metric"], values="barrier"))
