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
# # Non-convexity maps (Li et al. 2018, Figure 7)
#
# Li et al. map the ratio |λmin / λmax| of the Hessian's extreme eigenvalues over a
# filter-normalised plane around the solution: near zero (blue) where the landscape is locally
# convex, large (yellow) where it has strong negative curvature. They find it small around
# ResNets with skip connections and large around deep networks without them. Each map here is
# one architecture's solution (the first map seed), with both extremes from one Lanczos run
# per grid point on the study's map subset; BatchNorm statistics are recomputed at every point.

# %% tags=["parameters"]
architectures_table = "results/tables/architectures.csv"
nonconvexity_table = "results/tables/nonconvexity.csv"
figure_png = "results/figures/nonconvexity_maps.png"
figure_pdf = "results/figures/nonconvexity_maps.pdf"

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from lossgeom.figures import notebook_setup, placeholder_figure, save_figure
from lossgeom.summaries import compare_architectures
from lossgeom.tables import read_table

notebook_setup(style="white")
table = read_table(architectures_table, "architectures")
maps = read_table(nonconvexity_table, "nonconvexity")
names = list(dict.fromkeys(maps.experiment))
deepest = max((int(n.rsplit("_d", 1)[1]) for n in names if n.startswith("mlp_plain_d")), default=0)
# Li et al.'s comparisons first: with and without skips, deep plain against deep residual.
pairs = [("resnet", "resnet_noskip"), (f"mlp_residual_d{deepest}", f"mlp_plain_d{deepest}")]
featured = [n for pair in pairs for n in pair if n in names]
featured += [n for n in names if n not in featured]
# One colour scale for every map, capped at the 95th percentile of all ratios (beyond: the
# top colour), so that one strongly non-convex map does not wash out the others.
top = max(float(np.nanpercentile(maps.ratio, 95)), 1e-3) if not maps.empty else 1.0

# %%
if maps.empty:
    fig = placeholder_figure("No non-convexity map: no architecture has a map seed that trained.")
else:
    columns = 4
    rows = -(-len(featured) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 4.0 * rows), squeeze=False,
                             layout="constrained")  # fmt: skip
    levels = np.linspace(0, top, 21)
    for ax, name in zip(axes.flat, featured, strict=False):
        mine = maps[maps.experiment == name]
        mine = mine[mine.seed == mine.seed.min()]
        grid = mine.pivot_table(index="beta", columns="alpha", values="ratio")
        filled = ax.contourf(grid.columns, grid.index, grid.to_numpy(), levels=levels,
                             cmap="viridis", extend="max")  # fmt: skip
        ax.plot(0, 0, marker="*", color="white", ms=10, mec="k")
        median = float(np.nanmedian(mine.ratio))
        ax.set_title(f"{name}\nmedian |λmin/λmax| = {median:.3f}", fontsize=9)
        ax.set_aspect("equal")
    for ax in axes[-1]:
        ax.set_xlabel("α (filter-normalised direction 1)")
    for ax in axes[:, 0]:
        ax.set_ylabel("β (filter-normalised direction 2)")
    for ax in list(axes.flat)[len(featured) :]:
        ax.axis("off")
    fig.colorbar(filled, ax=axes, shrink=0.6,
                 label=f"|λmin / λmax| (0: locally convex; capped at {top:.2g})")  # fmt: skip
    fig.suptitle("Non-convexity maps: |λmin/λmax| of the Hessian around each solution (star)")
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Filled contours of |λmin / λmax| over the plane θ* + α d₁ + β d₂ (filter-
# normalised Gaussian directions d₁, d₂; the star is the trained solution θ*), one panel per
# architecture, all on one colour scale (capped at the 95th percentile of every ratio; the
# arrow on the colour bar marks values beyond it). Li et al.'s comparisons come first: the ResNet with
# and without skips, then the deepest residual and plain MLPs. Blue is locally convex (λmin
# near zero or positive relative to λmax), yellow strongly non-convex.
#
# ## Median ratio per architecture, and the two comparisons

# %%
medians = table[table.quantity.isin(["nonconvexity_median", "nonconvexity_centre"])]
display(medians.pivot_table(index=["family", "experiment"], columns="quantity", values="value",
                            aggfunc="mean").round(4))  # fmt: skip
for with_skip, without in pairs:
    if {with_skip, without} <= set(names):
        first = maps[maps.experiment == with_skip].ratio
        second = maps[maps.experiment == without].ratio
        print(
            f"{with_skip} vs {without}: median ratio {np.nanmedian(first):.4f} vs "
            f"{np.nanmedian(second):.4f}; fraction of points with ratio > 0.1: "
            f"{np.mean(first > 0.1):.2f} vs {np.mean(second > 0.1):.2f}"
        )
        c = compare_architectures(table, "eig_min", with_skip, without)
        print(
            f"  most negative eigenvalue at the solution over seeds: {c['mean_first']:.4g} vs "
            f"{c['mean_second']:.4g} (Welch p {c['p']:.2g})"
        )
