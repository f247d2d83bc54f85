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
# # Depth, skip connections and normalisation: sharpness, conditioning and trainability
#
# The report's section 5 says that deep plain networks have poorly conditioned Hessians as
# depth grows, and that skip connections and normalisation layers smooth the landscape and
# improve trainability. Four MLP families (plain, residual, residual with LayerNorm, and
# BatchNorm; every hidden layer of one width) are trained at several depths with the same
# recipe and seeds. For each run the Hessian spectrum at the end of training gives the
# sharpness λmax and the conditioning κ = λmax / mean|λ| (how many times the sharpest
# direction is more curved than the average one; mean|λ| from stochastic Lanczos quadrature),
# and training gives the final training loss and the steps until the moving minibatch accuracy
# reaches 95%. The trend with depth within each family is measured by Kendall's τ over every
# seed; plain and residual networks of equal depth are compared by Welch's t test.

# %% tags=["parameters"]
architectures_table = "results/tables/architectures.csv"
architecture_curvature_table = "results/tables/architecture_curvature.csv"
figure_png = "results/figures/architecture_depth.png"
figure_pdf = "results/figures/architecture_depth.pdf"

# %%
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from IPython.display import display

from lossgeom.figures import notebook_setup, placeholder_figure, save_figure
from lossgeom.summaries import architecture_means, compare_architectures, depth_trend
from lossgeom.tables import read_table

notebook_setup()
table = read_table(architectures_table, "architectures")
curvature = read_table(architecture_curvature_table, "architecture_curvature")
mlp = table[(table.family == "mlp") & table.experiment.str.startswith("mlp_")].copy()
mlp["variant"] = mlp.experiment.str.replace(r"^mlp_(.*)_d\d+$", r"\1", regex=True)
variants = [v for v in ("plain", "residual", "residual_layernorm", "batchnorm")
            if v in set(mlp.variant)]  # fmt: skip
diverged = table[(table.quantity == "diverged") & (table.value > 0)]
for row in diverged.itertuples():
    print(f"diverged: {row.experiment} seed {row.seed} (trainability rows only)")
PANELS = {
    "eig1": ("Sharpness at the end", "λmax (loss / param.$^2$, log)", True),
    "conditioning": ("Conditioning at the end", "κ = λmax / mean|λ| (log)", True),
    "final_train_loss": ("Training loss at the end", "cross-entropy (nats, log)", True),
    "steps_to_95": ("Steps to 95% minibatch accuracy", "optimiser steps", False),
}
PALETTE = dict(
    zip(variants, sns.color_palette("deep", n_colors=max(len(variants), 1)), strict=False)
)

# %%
if mlp.empty:
    fig = placeholder_figure("No MLP family in the architecture table.", figsize=(9, 3))
else:
    fig, axes = plt.subplots(1, len(PANELS), figsize=(21, 5.5))
    for ax, (quantity, (title, label, log)) in zip(axes, PANELS.items(), strict=True):
        rows = mlp[(mlp.quantity == quantity) & np.isfinite(mlp.value)]
        if not rows.empty:
            sns.lineplot(data=rows, x="depth", y="value", hue="variant", hue_order=variants,
                         palette=PALETTE, errorbar=None, marker="o", ax=ax, legend=False)  # fmt: skip
            for variant, group in rows.groupby("variant"):
                ax.scatter(group.depth, group.value, color=PALETTE[variant], alpha=0.45, s=18)
        else:
            ax.text(0.5, 0.5, "no run has a value\n(never reached, or every seed diverged)",
                    ha="center", va="center", transform=ax.transAxes)  # fmt: skip
        if quantity == "steps_to_95":  # how many seeds never got there, per family and depth
            every = mlp[mlp.quantity == quantity]
            missed = every[~np.isfinite(every.value)].groupby(["variant", "depth"]).size()
            seeds = every.groupby(["variant", "depth"]).seed.nunique()
            for (variant, depth), count in missed.items():
                ax.annotate(f"{count}/{seeds[variant, depth]} never", (depth, 1.0),
                            xycoords=("data", "axes fraction"), textcoords="offset points",
                            xytext=(0, -4 - 11 * variants.index(variant)),
                            ha="right" if depth == mlp.depth.max() else "center",
                            va="top", fontsize=8, color=PALETTE[variant])  # fmt: skip
        if log and not rows.empty and (rows.value > 0).all():
            ax.set_yscale("log")
        ax.set_xscale("log", base=2)
        depths = sorted(mlp.depth.unique())
        ax.set_xticks(depths, [str(d) for d in depths])
        ax.set(title=title, xlabel="hidden layers (depth, log2 scale)", ylabel=label)
    handles = [
        plt.Line2D([], [], color=c, marker="o", label=v.replace("_", " + "))
        for v, c in PALETTE.items()
    ]
    fig.legend(handles=handles, title="MLP family", loc="lower center", ncol=len(handles),
               frameon=False)  # fmt: skip
    fig.suptitle("MLP families against depth: lines join the means over seeds, dots are seeds")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Each panel is one measurement against the number of hidden layers (log2 axis)
# for every MLP family: λmax and κ of the Hessian at the end of training (on the study's
# curvature subset, log scales), the final training cross-entropy (log scale) and the steps
# until the moving accuracy of 20 minibatches reached 95% (a run that never reached it has no
# dot; "k/n never", in the family's colour at the top of the panel, counts those seeds).
# Dots are individual seeds, lines join their means. If depth worsens the conditioning of
# plain networks, the plain line rises in the second panel; if skips or normalisation help,
# their lines stay below it.
#
# ## Trends with depth and plain against the others

# %%
for variant in variants:
    members = sorted(set(mlp[mlp.variant == variant].experiment))
    trends = {q: depth_trend(mlp, q, members) for q in PANELS}
    print(
        f"{variant}: Kendall's tau against depth: "
        + "; ".join(
            f"{q} {t['tau']:+.2f} (p {t['p']:.2g}, n {int(t['n'])})" for q, t in trends.items()
        )
    )
deepest = max(mlp.depth) if not mlp.empty else None
for variant in variants[1:]:
    for quantity in ("eig1", "conditioning", "final_train_loss"):
        c = compare_architectures(
            mlp, quantity, f"mlp_plain_d{deepest}", f"mlp_{variant}_d{deepest}"
        )
        print(
            f"depth {deepest}, {quantity}: plain {c['mean_first']:.4g} vs {variant} "
            f"{c['mean_second']:.4g} (plain / {variant} = {c['ratio']:.3g}, Welch p {c['p']:.2g})"
        )

# %% [markdown]
# ## Means over seeds (95% t intervals)

# %%
means = architecture_means(mlp.drop(columns="variant"))
shown = means[means.quantity.isin(list(PANELS) + ["eig_min", "outliers", "trace"])]
display(
    shown.pivot_table(index=["experiment", "depth"], columns="quantity", values="mean").round(4)
)

# %% [markdown]
# ## Along training
#
# The spectrum at every epoch of every seed (the architecture_curvature table): sharpness and
# conditioning at initialisation (epoch 0) and after each epoch, means over seeds.

# %%
along = curvature[curvature.quantity.isin(["eig_max", "conditioning"])]
display(along.pivot_table(index=["experiment", "epoch"], columns="quantity", values="value",
                          aggfunc="mean").round(4))  # fmt: skip
