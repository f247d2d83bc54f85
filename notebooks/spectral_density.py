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
import pandas as pd
import seaborn as sns

sns.set_theme(context="notebook", style="whitegrid")
density = pd.read_csv(density_table)
settings = json.loads(Path(density_table + ".meta.json").read_text())["config"]
print("SLQ settings:", settings)
density["stage"] = density.epoch.map(lambda e: "initialisation" if e == 0 else f"after epoch {e}")

# %%
fig, ax = plt.subplots(figsize=(9, 5))
sns.lineplot(data=density, x="eigenvalue", y="density", hue="stage", units="seed",
             estimator=None, lw=1, alpha=0.8, ax=ax)
ax.set(yscale="log", ylim=(1e-7, None), xlabel="Hessian eigenvalue (nats / unit$^2$)",
       ylabel="spectral density (per unit eigenvalue)",
       title="Hessian spectral density (SLQ), one line per seed")
fig.tight_layout()
Path(figure_png).parent.mkdir(parents=True, exist_ok=True)
fig.savefig(figure_png, dpi=150)
fig.savefig(figure_pdf)

# %% [markdown]
# **Figure.** Smoothed spectral density of the training-loss Hessian on the curvature subset,
# at initialisation and at the final epoch; each line is one seed, the y axis is logarithmic.
# The broadening width and the Hessian-vector products spent are in the table below.

# %%
summary = density.groupby(["stage", "seed"]).agg(
    largest_eigenvalue_on_grid=("eigenvalue", "max"), sigma=("sigma", "first"),
    n_hvp=("n_hvp", "first"), seconds=("seconds", "first"))
summary
