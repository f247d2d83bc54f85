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
# # Hessian spectral density at initialisation and after training
#
# Stochastic Lanczos quadrature (Ghorbani et al. 2019): Lanczos from random Rademacher
# starts gives a Gaussian quadrature of the spectral measure, smoothed with a Gaussian
# kernel. The report reads the 2D slice as evidence of "a few sharper directions and many
# flatter ones"; the density shows that low-rank structure directly: a bulk at zero and a few
# outliers.

# %% tags=["parameters"]
density_table = "results/tables/density.csv"
figure_png = "results/figures/spectral_density.png"
figure_pdf = "results/figures/spectral_density.pdf"

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

from lossgeom.figures import save_figure
from lossgeom.tables import read_table

sns.set_theme(context="notebook", style="whitegrid")
density = read_table(density_table, "density")
settings = json.loads(Path(density_table + ".meta.json").read_text())["config"]
print("SLQ settings:", settings)
density["stage"] = density.epoch.map(lambda e: "initialisation" if e == 0 else f"after epoch {e}")

# %%
stages = sorted(density.stage.unique(), key=lambda st: density[density.stage == st].epoch.iloc[0])
fig, axes = plt.subplots(1, len(stages), figsize=(6 * len(stages), 4.5), squeeze=False)
for ax, stage in zip(axes[0], stages, strict=True):
    sub = density[density.stage == stage]
    sns.lineplot(
        data=sub,
        x="eigenvalue",
        y="density",
        hue="seed",
        palette="deep",
        estimator=None,
        units="seed",
        lw=1.2,
        ax=ax,
    )
    ax.set(
        yscale="log",
        ylim=(1e-6, 5 * sub.density.max()),
        title=stage,
        xlabel="Hessian eigenvalue (loss / parameter unit$^2$)",
        ylabel="spectral density (per unit eigenvalue)",
    )
fig.suptitle("Hessian spectral density of the training loss (stochastic Lanczos quadrature)")
fig.tight_layout()
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Smoothed spectral density of the training-loss Hessian on the curvature subset,
# at initialisation (left) and at the final epoch (right; note the different x ranges); one
# line per seed, logarithmic y axis. The Gaussian broadening is 1% of each spectrum's range,
# so the two panels are not smoothed alike; the widths and the Hessian-vector products spent
# are in the table below, with the grid range (the extreme Ritz values +- 5 sigma).

# %%
summary = density.groupby(["stage", "seed"]).agg(
    grid_min=("eigenvalue", "min"),
    grid_max=("eigenvalue", "max"),
    sigma=("sigma", "first"),
    n_hvp=("n_hvp", "first"),
    seconds=("seconds", "first"),
)
summary
