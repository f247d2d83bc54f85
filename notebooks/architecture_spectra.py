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
# # Hessian spectral densities of every architecture, at initialisation and at the end
#
# Papyan (2020) and Ghorbani et al. (2019) describe trained networks' Hessians as a bulk near
# zero with a few outliers, about one per class, and find that BatchNorm removes the outliers
# that slow optimisation. Each panel shows one architecture's smoothed spectral density
# (stochastic Lanczos quadrature, seed 0, the study's curvature subset) at initialisation and
# after training, with the count of outliers: Gauss nodes converged to an eigenvalue of their
# own above the bulk edge (the largest node that has not; see lossgeom.architectures).

# %% tags=["parameters"]
architectures_table = "results/tables/architectures.csv"
architecture_density_table = "results/tables/architecture_density.csv"
figure_png = "results/figures/architecture_spectra.png"
figure_pdf = "results/figures/architecture_spectra.pdf"

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from lossgeom.figures import notebook_setup, placeholder_figure, save_figure
from lossgeom.summaries import architecture_means
from lossgeom.tables import read_table

notebook_setup()
table = read_table(architectures_table, "architectures")
density = read_table(architecture_density_table, "architecture_density")
names = list(dict.fromkeys(density.experiment))
missing = sorted(set(table.experiment) - set(names))
if missing:
    print(f"no density (every seed diverged): {', '.join(missing)}")
seed = int(density.seed.min()) if not density.empty else 0
means = architecture_means(table).set_index(["experiment", "quantity"])


def count(name: str, quantity: str) -> str:
    key = (name, quantity)
    return f"{means.loc[key, 'mean']:.1f}" if key in means.index else "n/a"


# %%
if density.empty:
    fig = placeholder_figure("No density to draw: every architecture's seeds diverged.")
else:
    columns = 4
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        mine = density[(density.experiment == name) & (density.seed == seed)]
        epochs = sorted(mine.epoch.unique())
        for epoch, colour, label in ((epochs[0], "0.6", "initialisation"),
                                     (epochs[-1], "C3", "end of training")):  # fmt: skip
            curve = mine[mine.epoch == epoch]
            ax.plot(curve.eigenvalue, np.maximum(curve.density, 1e-8), color=colour, lw=1.4,
                    label=f"{label} (epoch {epoch})")  # fmt: skip
        ax.set_yscale("log")
        ax.set_ylim(1e-6, None)
        ax.set_title(f"{name}\noutliers: {count(name, 'outliers_init')} at init, "
                     f"{count(name, 'outliers')} at end (mean of seeds)", fontsize=9)  # fmt: skip
        ax.set(xlabel="eigenvalue λ (loss / param.$^2$)", ylabel="density (log)")
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, ["initialisation", "end of training"], loc="lower center", ncol=2,
               frameon=False)  # fmt: skip
    fig.suptitle(
        f"Hessian spectral densities (seed {seed}): grey at initialisation, red at the end"
    )
    fig.tight_layout(rect=(0, 0.03, 1, 0.98))
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** One panel per architecture: the Gaussian-smoothed spectral density of the
# training-loss Hessian on a log scale (a density floor of 10⁻⁸ keeps empty stretches
# visible), at initialisation (grey) and at the end of training (red), for seed 0. Titles give
# the number of outliers averaged over seeds. A bulk at zero with isolated spikes to the right
# is Papyan's picture; the spikes' number is compared with the 10 classes below.
#
# ## Outliers and conditioning per architecture (means over seeds, 95% t intervals)

# %%
summary = architecture_means(table)
wanted = ["outliers_init", "outliers", "eig1", "bulk_edge", "conditioning", "eig_min"]
shown = summary[summary.quantity.isin(wanted)]
if shown.empty:
    print("No architecture has a measured spectrum: nothing to tabulate.")
else:
    pivot = shown.pivot_table(index=["family", "experiment"], columns="quantity", values="mean")
    display(pivot.round(3)[[q for q in wanted if q in pivot.columns]])
finals = summary[summary.quantity == "outliers"]
if not finals.empty:
    print(
        f"outliers at the end of training over all architectures: median "
        f"{finals['mean'].median():.1f}, range {finals['mean'].min():.1f} to "
        f"{finals['mean'].max():.1f} (10 classes)"
    )
