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
# # Mode connectivity: are independently trained solutions joined by low-loss paths?
#
# The report claims that SGD's solutions are connected by low-loss paths while the straight
# line between them may cross a barrier. For every pair of seeds this notebook measures three
# paths between the final weights a and b: the straight line, the straight line after
# permuting b's hidden units to match a (weight matching, Ainsworth et al. 2022), and a
# quadratic Bezier curve with one trained bend (Garipov et al. 2018). The barrier is
# max_t [L(t) - ((1 - t) L(a) + t L(b))] (Frankle et al. 2020); it is 0 when the path never
# rises above the chord between its endpoints.

# %% tags=["parameters"]
paths_table = "results/tables/paths.csv"
barriers_table = "results/tables/barriers.csv"
figure_png = "results/figures/connectivity_paths.png"
figure_pdf = "results/figures/connectivity_paths.pdf"

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

from lossgeom.figures import save_figure
from lossgeom.tables import read_table

sns.set_theme(context="notebook", style="whitegrid")
paths = read_table(paths_table, "paths")
barriers = read_table(barriers_table, "barriers")
settings = json.loads(Path(barriers_table + ".meta.json").read_text())["config"]
paths["pair"] = paths.seed_a.astype(str) + "-" + paths.seed_b.astype(str)
print(f"pairs: {sorted(paths.pair.unique())}; paths: {sorted(paths.path.unique())}")
print("settings:", settings)

# %%
panels = [
    ("train", "loss", "training-subset loss (nats)"),
    ("test", "error", "test error (fraction wrong)"),
]
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
for ax, (split, metric, label) in zip(axes, panels, strict=True):
    sub = paths[(paths.split == split) & (paths.metric == metric)]
    sns.lineplot(data=sub, x="t", y="value", hue="path", errorbar=("pi", 100), ax=ax)
    ax.set(xlabel="position along the path, t (a at 0, b at 1)", ylabel=label, title=label)
    if metric == "loss":
        ax.set_yscale("log")
fig.suptitle(
    "Paths between independently trained solutions (line: mean over seed pairs; band: range)"
)
fig.tight_layout()
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Training-subset loss (left, log scale) and test error (right) along the straight
# line (`linear`), the straight line to the permutation-aligned b (`aligned`), and the trained
# Bezier curves (`bezier`; `aligned_bezier` ends at the aligned b). The barriers of every pair:

# %%
table = barriers.pivot_table(
    index=["path"], columns=["split", "metric"], values="barrier", aggfunc=["mean", "max"]
)
table

# %%
per_pair = barriers.pivot_table(
    index=["seed_a", "seed_b", "path"], columns=["split", "metric"], values="barrier"
)
per_pair
