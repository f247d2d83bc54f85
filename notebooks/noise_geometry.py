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
# # The geometry of SGD's gradient noise against the Hessian (Zhu et al. 2019)
#
# A minibatch gradient of B samples is the full gradient plus noise of covariance Σ/B, Σ
# being the covariance of one sample's gradient. Zhu et al. measure how that noise lines up
# with the curvature by Tr(HΣ): noise of the same total variance Tr Σ spread evenly over all
# D directions would give Tr(H) Tr(Σ)/D, and their ratio, the *anisotropy ratio*, says how
# many times more of the noise lies along sharp directions than isotropic noise would put
# there (1: isotropic). At every checkpoint of every seed of the report's runs, Σ comes from
# per-sample gradients on a fixed subset and H from the curvature subset; each quantity is a
# mean of per-sample terms, with its standard error (ratios: delta method). Also shown: the
# share of Tr Σ inside the Hessian's top-k eigenspace, and the alignment of Σ's own top-k
# eigenspace with H's, both against k/D, their value for isotropic noise.

# %% tags=["parameters"]
runs_table = "results/tables/runs.csv"
noise_table = "results/tables/noise.csv"
figure_png = "results/figures/noise_geometry.png"
figure_pdf = "results/figures/noise_geometry.pdf"

# %%
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from IPython.display import display
from matplotlib.ticker import MaxNLocator

from lossgeom.figures import notebook_runs, placeholder_figure, save_figure
from lossgeom.tables import completed_only, read_table

runs, note, left_out = notebook_runs(runs_table)
# A run that did not complete has NaN rows: it is left out, as is any value not measured.
noise = completed_only(read_table(noise_table, "noise"), runs)
noise = noise[np.isfinite(noise.value)].reset_index(drop=True)
experiments = list(dict.fromkeys(noise.experiment))
print(
    f"{len(experiments)} experiment(s), seeds {sorted(noise.seed.unique().tolist())}, "
    f"epochs {sorted(noise.epoch.unique().tolist())}"
)

# Mean over seeds; error bar: the standard error of that mean. With two seeds or more it is
# the seeds' spread (sd / sqrt(n), which includes each seed's estimation error); with one, the
# table's own standard error of that seed's estimate (none where the table has none).
stats = (
    noise.groupby(["experiment", "quantity", "epoch"])
    .agg(
        mean=("value", "mean"),
        sd=("value", "std"),
        n=("value", "size"),
        stderr=("stderr", "first"),
    )
    .reset_index()
)
stats["error"] = np.where(stats.n >= 2, stats.sd / np.sqrt(stats.n), stats.stderr)
LABELS = {
    "trace_sigma": "Tr Σ (noise variance)",
    "trace_h_sigma": "Tr(HΣ)",
    "isotropic_trace_h_sigma": "Tr(H) Tr(Σ) / D (isotropic noise)",
    "anisotropy_ratio": "Tr(HΣ) / isotropic value",
    "topk_noise_fraction": "share of Tr Σ in H's top-k eigenspace",
    "topk_alignment": "alignment of Σ's and H's top-k eigenspaces",
    "isotropic_topk_fraction": "k / D (isotropic noise)",
}
COLOURS = dict(zip(LABELS, sns.color_palette(n_colors=len(LABELS)), strict=True))
COLOURS["isotropic_trace_h_sigma"] = COLOURS["isotropic_topk_fraction"] = (0.4, 0.4, 0.4)
LINESTYLES = ["-", "--", ":", "-."]


def draw(ax, quantities: list[str]) -> None:
    """Mean over seeds per epoch with its standard error, one line per quantity (log y)."""
    for i, experiment in enumerate(experiments):
        for quantity in quantities:
            rows = stats[(stats.experiment == experiment) & (stats.quantity == quantity)]
            if rows.empty:
                continue
            name = LABELS[quantity] + (f" [{experiment}]" if len(experiments) > 1 else "")
            ax.errorbar(
                rows.epoch,
                rows["mean"],
                yerr=rows.error.fillna(0),
                color=COLOURS[quantity],
                ls=LINESTYLES[i % len(LINESTYLES)],
                marker="os^D"[i % 4],
                capsize=3,
                label=name,
            )
    ax.set_yscale("log", nonpositive="clip")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


# %%
if noise.empty:
    fig = placeholder_figure(
        f"No gradient-noise geometry to draw: no completed run has noise measurements.\n{note}",
        figsize=(9, 3),
    )
else:
    fig, axes = plt.subplots(2, 2, figsize=(13, 10.5 + 0.4 * left_out), sharex=True)
    panels = [
        (["trace_sigma", "trace_h_sigma", "isotropic_trace_h_sigma"], "(a) Noise and curvature"),
        (["anisotropy_ratio"], "(b) Anisotropy ratio Tr(HΣ) / (Tr H Tr Σ / D)"),
        (["topk_noise_fraction", "isotropic_topk_fraction"], "(c) Noise in the sharp directions"),
        (["topk_alignment", "isotropic_topk_fraction"], "(d) Top eigenspaces of Σ and H"),
    ]
    for ax, (quantities, title) in zip(axes.flat, panels, strict=True):
        draw(ax, quantities)
        ax.set_title(title)
    axes[0, 0].set_ylabel(
        "value (log scale)\nTr Σ: (loss / param.)$^2$; Tr(HΣ): loss$^3$ / param.$^4$"
    )
    axes[0, 1].axhline(1, color="crimson", ls="--", lw=1.2, label="isotropic noise (ratio 1)")
    axes[0, 1].set_ylabel("anisotropy ratio (unitless, log scale)")
    axes[1, 0].set_ylabel("fraction of Tr Σ (log scale)")
    axes[1, 1].set_ylabel("mean squared cosine (log scale)")
    for ax in axes[1]:
        ax.set_xlabel("epoch (0 = initialisation)")
    for ax, below in zip(axes.flat, [-0.06, -0.06, -0.16, -0.16], strict=True):
        # Below their panels (under the axis label): the lines fill the panels.
        ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, below), frameon=False)
    seeds = sorted(noise.seed.unique().tolist())
    fig.suptitle(
        f"Gradient-noise geometry along training: {', '.join(experiments)}; "
        f"seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}\n"
        "points: mean over seeds; bars: its standard error (seeds' spread; one seed: estimator's)"
    )
    if left_out:  # say under the figure which runs it leaves out
        fig.text(0.01, 0.005, note, fontsize=9, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight() if left_out else 0, 1, 1))
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Along training (x: epoch, 0 = initialisation), the mean over the completed
# seeds; error bars are the standard error of that mean (the seeds' spread with two seeds or
# more, else the estimator's standard error from the table). (a) The total variance Tr Σ of
# one sample's gradient, Zhu et al.'s indicator Tr(HΣ), and the value Tr(H) Tr(Σ)/D that
# isotropic noise of the same variance would give (grey). (b) Their ratio: above the dashed
# line at 1, the noise is concentrated along sharp directions. (c) The share of Tr Σ inside
# the span of the Hessian's top-k eigenvectors against k/D, the share for isotropic noise.
# (d) The mean squared cosine between Σ's and H's top-k eigenspaces (1: the same subspace;
# k/D expected for a random one; no standard error). Runs that diverged or failed to train
# are left out (named at the top, and under the figure when there are any).
#
# ## The anisotropy ratio per epoch and seed (value ± standard error)

# %%
ratio = noise[noise.quantity == "anisotropy_ratio"].copy()
if ratio.empty:
    print(f"No anisotropy ratio to tabulate. {note}")
else:
    ratio["cell"] = [f"{v:.4g} ± {e:.2g}" for v, e in zip(ratio.value, ratio.stderr, strict=True)]
    table = ratio.pivot(index=["experiment", "epoch"], columns="seed", values="cell")
    table.columns = [f"seed {s}" for s in table.columns]
    means = stats[stats.quantity == "anisotropy_ratio"].set_index(["experiment", "epoch"])
    table["mean over seeds ± s.e."] = [
        f"{m:.4g} ± {e:.2g}" for m, e in zip(means["mean"], means.error, strict=True)
    ]
    display(table)
    ratio["margin"] = (ratio.value - 1) / ratio.stderr  # in standard errors
    judged = ratio[np.isfinite(ratio.margin)]
    unjudged = len(ratio) - len(judged)
    above = bool(len(judged)) and bool((judged.margin > 2).all())
    worst = judged.loc[judged.margin.idxmin()] if len(judged) else None
    print(
        f"Anisotropy ratio above 1 by more than 2 standard errors at every epoch and seed: "
        f"{'YES' if above else 'NO'} ({int((judged.margin > 2).sum())} of {len(judged)} "
        f"(epoch, seed) values"
        + (f"; {unjudged} without a standard error, not judged" if unjudged else "")
        + (
            f"; smallest margin {worst.margin:.3g} s.e. at {worst.experiment} seed {worst.seed} "
            f"epoch {worst.epoch}, ratio {worst.value:.4g} ± {worst.stderr:.2g})"
            if worst is not None
            else ")"
        )
    )
print(note)
