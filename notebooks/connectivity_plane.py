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
plane_table = "results/tables/plane.csv"
barriers_table = "results/tables/barriers.csv"
figure_png = "results/figures/connectivity_plane.png"
figure_pdf = "results/figures/connectivity_plane.pdf"

# %%

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from lossgeom.connectivity import bezier_point
from lossgeom.figures import save_figure
from lossgeom.tables import read_table

sns.set_theme(context="notebook", style="white")
plane = read_table(plane_table, "plane")
first = plane[["experiment", "seed_a", "seed_b"]].drop_duplicates().iloc[0]
sub = plane[
    (plane.experiment == first.experiment)
    & (plane.seed_a == first.seed_a)
    & (plane.seed_b == first.seed_b)
]
print(f"experiment {first.experiment}, seeds {first.seed_a} and {first.seed_b}")

# %%
# The bend's coordinates on the plane are stored with every row of the pair; a is at (0, 0)
# and b at (1, 0), so the curve on the plane is the library's Bezier curve of those points.
bend_u, bend_v = sub.bend_u.iloc[0], sub.bend_v.iloc[0]
t = np.linspace(0, 1, 101)[:, None]
curve = bezier_point(np.zeros(2), np.array([bend_u, bend_v]), np.array([1.0, 0.0]), t)
curve_u, curve_v = curve[:, 0], curve[:, 1]

fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
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
    values = grid.values
    if metric == "loss":
        levels = np.geomspace(max(values.min(), 1e-4), values.max(), 25)
        norm = plt.matplotlib.colors.LogNorm()
    else:
        levels, norm = 25, None
    filled = ax.contourf(grid.columns, grid.index, values, levels=levels, norm=norm, cmap="viridis")
    fig.colorbar(filled, ax=ax, label=label, format="%.3g")
    ax.plot([0, 1], [0, 0], "w--", lw=1.5, label="straight line")
    ax.plot(curve_u, curve_v, "r-", lw=2, label="Bezier curve")
    ax.plot([0, 1], [0, 0], "o", color="white", ms=7)
    ax.plot(bend_u, bend_v, "x", color="red", ms=9, label="bend")
    ax.set(
        xlabel="u: along b - a (units of |b - a|)",
        ylabel="v: towards the bend (units of |b - a|)",
        title=label,
    )
    ax.legend(loc="upper right", fontsize=8)
fig.suptitle(
    f"Loss and error on the plane through a, b and the bend (seeds {first.seed_a} and {first.seed_b})"
)
fig.tight_layout()
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Left: training-subset loss (log colour scale); right: test error. White dots: the
# two solutions; dashed: the straight line between them; red: the trained Bezier curve and its
# bend (x). The barrier of each path, for this pair:

# %%
barriers = read_table(barriers_table, "barriers")
barriers[(barriers.seed_a == first.seed_a) & (barriers.seed_b == first.seed_b)].pivot_table(
    index="path", columns=["split", "metric"], values="barrier"
)
