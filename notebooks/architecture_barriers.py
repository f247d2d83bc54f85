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
# # Loss barriers between seeds, and the architecture summary
#
# For every pair of consecutive seeds (all three pairs of three seeds) the training loss is
# measured along the straight line between the two solutions, raw and after weight matching
# (Ainsworth et al. 2022; units, channels or a ResNet stage's residual stream permuted to
# match). The barrier is the largest excess of the path's loss over the straight line between
# its ends. Weight matching is not applicable to the vision transformer (no permutation
# specification for attention): its aligned barrier is missing, with the reason. The summary
# table at the end gives every quantity of every architecture (means over seeds).

# %% tags=["parameters"]
architectures_table = "results/tables/architectures.csv"
architecture_barriers_table = "results/tables/architecture_barriers.csv"
figure_png = "results/figures/architecture_barriers.png"
figure_pdf = "results/figures/architecture_barriers.pdf"

# %%
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from IPython.display import display

from lossgeom.figures import notebook_setup, placeholder_figure, save_figure
from lossgeom.summaries import architecture_means
from lossgeom.tables import read_table

notebook_setup()
table = read_table(architectures_table, "architectures")
barriers = read_table(architecture_barriers_table, "architecture_barriers")
for row in barriers[barriers.note != ""].drop_duplicates("experiment").itertuples():
    print(f"{row.experiment}: {row.path} path {row.note}")
order = list(dict.fromkeys(table.experiment))

# %%
finite = barriers[np.isfinite(barriers.barrier)]
if finite.empty:
    fig = placeholder_figure("No barrier to draw: no architecture has two seeds that trained.")
else:
    fig, ax = plt.subplots(figsize=(max(10, 0.55 * len(order)), 5.5))
    present = [n for n in order if n in set(finite.experiment)]
    sns.barplot(data=finite, x="experiment", y="barrier", hue="path", order=present,
                hue_order=["linear", "aligned"], estimator="median", errorbar=None, alpha=0.6,
                ax=ax)  # fmt: skip
    sns.stripplot(data=finite, x="experiment", y="barrier", hue="path", order=present,
                  hue_order=["linear", "aligned"], dodge=True, color="k", size=4, ax=ax,
                  legend=False)  # fmt: skip
    ax.set(xlabel="architecture", ylabel="loss barrier (training cross-entropy, nats)",
           title="Barriers between seeds: bars are medians over pairs, dots are pairs")  # fmt: skip
    top = finite.barrier.max()
    if top > 4 * finite.groupby(["experiment", "path"]).barrier.median().max():
        ax.set_yscale("symlog", linthresh=1.0)  # one pair far above the rest stays readable
        ax.set_ylabel("loss barrier (nats; log scale above 1)")
    plt.setp(ax.get_xticklabels(), rotation=60, ha="right", rotation_mode="anchor")
    missing = barriers[~np.isfinite(barriers.barrier)].experiment.unique()
    for position, name in enumerate(present):
        if name in missing:  # the aligned path's place: weight matching not applicable
            ax.text(position + 0.2, 0, "n/a", ha="center", va="bottom", fontsize=9)
    ax.legend(title="path")
    fig.tight_layout()
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** The loss barrier between two seeds' solutions along the straight line (linear)
# and after permuting the second network's units to match the first (aligned), for every
# architecture; bars are the medians over seed pairs (one failed alignment does not move
# them), dots the pairs (the axis turns logarithmic above 1 nat when one pair lies far above
# the rest); "n/a" marks an aligned
# path that does not apply (weight matching has no permutation specification there). A barrier near zero means
# the two solutions are linearly connected; a drop from linear to aligned means the barrier
# came from the permutation symmetry.
#
# ## The architecture summary (means over seeds with 95% t intervals)

# %%
summary = architecture_means(table)
display(summary.pivot_table(index=["family", "experiment", "depth", "skip", "norm", "params"],
                            columns="quantity", values="mean").round(4))  # fmt: skip
ratio = finite.pivot_table(
    index=["experiment", "seed_a", "seed_b"], columns="path", values="barrier"
)
if {"linear", "aligned"} <= set(ratio.columns):
    both = ratio.dropna()
    print(f"aligned below linear in {(both.aligned < both.linear).sum()} of {len(both)} pairs")
