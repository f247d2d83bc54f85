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
runs_table = "results/tables/runs.csv"
density_table = "results/tables/density.csv"
figure_png = "results/figures/spectral_density.png"
figure_pdf = "results/figures/spectral_density.pdf"

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns
from IPython.display import display

from lossgeom.figures import notebook_runs, placeholder_figure, save_figure
from lossgeom.tables import completed_only, read_table

runs, note, left_out = notebook_runs(runs_table)
density = completed_only(read_table(density_table, "density"), runs)
settings = json.loads(Path(density_table + ".meta.json").read_text())["config"]
print("SLQ settings:", settings)
density["stage"] = density.epoch.map(lambda e: "initialisation" if e == 0 else f"after epoch {e}")
# The grid reaches 5 sigma beyond the extreme Ritz values (lossgeom.estimators.slq_density), so
# the largest Ritz value, the estimate of lambda_max, is the grid's end minus 5 sigma. Its
# outlier peak can lie below the density floor of the plot, so it is marked on the axis.
ends = density.groupby(["stage", "seed"]).agg(
    grid_max=("eigenvalue", "max"), sigma=("sigma", "first")
)
lambda_max = (ends.grid_max - 5 * ends.sigma).rename("lambda_max")

# %%
stages = sorted(density.stage.unique(), key=lambda st: density[density.stage == st].epoch.iloc[0])
seeds = sorted(density.seed.unique().tolist())
colours = dict(zip(seeds, sns.color_palette("deep", len(seeds)), strict=True))
if density.empty:
    fig = placeholder_figure(f"No spectral density to draw: no run behind it completed.\n{note}")
else:
    fig, axes = plt.subplots(1, len(stages), figsize=(6 * len(stages), 4.8), squeeze=False)
    for ax, stage in zip(axes[0], stages, strict=True):
        sub = density[density.stage == stage]
        for seed, line in sub.groupby("seed"):
            top = lambda_max[(stage, seed)]
            ax.plot(
                line.eigenvalue,
                line.density,
                color=colours[seed],
                lw=1.2,
                label=f"{seed}: $\\lambda_{{max}}$ = {top:.4g}",
            )
            ax.axvline(top, color=colours[seed], ls=":", lw=1.5)
        ax.set(
            yscale="log",
            ylim=(1e-6, 5 * sub.density.max()),
            title=stage,
            xlabel="Hessian eigenvalue (loss / parameter unit$^2$)",
            ylabel="spectral density (per unit eigenvalue)",
        )
        ax.legend(title="seed (dotted: $\\lambda_{max}$)", fontsize=9, title_fontsize=9)
    fig.suptitle("Hessian spectral density of the training loss (stochastic Lanczos quadrature)")
    if left_out:  # say under the figure which runs it leaves out
        fig.text(0.01, 0.005, note, fontsize=9, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight() if left_out else 0, 1, 1))
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Smoothed spectral density of the training-loss Hessian on the curvature subset,
# at initialisation (left) and at the final epoch (right; note the different x ranges); one
# line per completed seed, logarithmic y axis. The dotted vertical lines mark each seed's
# largest Ritz value, the estimate of the top eigenvalue lambda_max (its value is in the
# legend): the outlier there carries a weight of about 1 / (number of parameters) and its peak
# can fall below the plotted density floor (1e-6). The Gaussian broadening is 1% of each
# spectrum's range, so the two panels are not smoothed alike; the widths and the
# Hessian-vector products spent are in the table below, with the grid range (the extreme Ritz
# values +- 5 sigma). Runs that diverged or failed to train are left out (named at the top,
# and under the figure when there are any).

# %%
if density.empty:
    print(f"No spectral density: no run behind it completed. {note}")
else:
    summary = density.groupby(["stage", "seed"]).agg(
        grid_min=("eigenvalue", "min"),
        grid_max=("eigenvalue", "max"),
        sigma=("sigma", "first"),
        n_hvp=("n_hvp", "first"),
        seconds=("seconds", "first"),
    )
    display(summary.join(lambda_max))
