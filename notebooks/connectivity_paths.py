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
runs_table = "results/tables/runs.csv"
paths_table = "results/tables/paths.csv"
barriers_table = "results/tables/barriers.csv"
figure_png = "results/figures/connectivity_paths.png"
figure_pdf = "results/figures/connectivity_paths.pdf"

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns
from IPython.display import display

from lossgeom.figures import notebook_runs, placeholder_figure, save_figure
from lossgeom.tables import completed_only, read_table

runs, note, left_out = notebook_runs(runs_table)
# A pair is kept only when both of its runs completed.
paths = completed_only(read_table(paths_table, "paths"), runs)
barriers = completed_only(read_table(barriers_table, "barriers"), runs)
settings = json.loads(Path(barriers_table + ".meta.json").read_text())["config"]
paths["pair"] = paths.seed_a.astype(str) + "-" + paths.seed_b.astype(str)
print(f"pairs: {sorted(paths.pair.unique())}; paths: {sorted(paths.path.unique())}")
print("settings:", settings)

# %%
panels = [
    ("train", "loss", "training-subset loss (nats)"),
    ("test", "error", "test error (fraction wrong)"),
]
order = [p for p in ("linear", "aligned", "bezier", "aligned_bezier") if p in set(paths.path)]
if paths.empty:
    fig = placeholder_figure(
        f"No path to draw: no pair of seeds whose runs both completed.\n{note}"
    )
else:
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2 + 0.4 * left_out))
    for ax, (split, metric, label) in zip(axes, panels, strict=True):
        sub = paths[(paths.split == split) & (paths.metric == metric)]
        sns.lineplot(
            data=sub,
            x="t",
            y="value",
            hue="path",
            hue_order=order,
            errorbar=("pi", 100),
            legend=ax is axes[0],
            ax=ax,
        )
        ax.set(xlabel="position along the path, t (a at 0, b at 1)", ylabel=label, title=label)
        if metric == "loss":
            ax.set_yscale("log")
    handles, names = axes[0].get_legend_handles_labels()
    axes[0].get_legend().remove()  # one legend for both panels, below them, covers no data
    n_pairs = paths.pair.nunique()
    fig.legend(
        handles,
        names,
        title=f"path ({n_pairs} seed pair{'s' * (n_pairs > 1)}: {', '.join(sorted(paths.pair.unique()))})",
        loc="lower center",
        ncol=len(names),
        bbox_to_anchor=(0.5, 0.4 * left_out / fig.get_figheight()),
        frameon=False,
    )
    fig.suptitle(
        "Paths between independently trained solutions (line: mean over seed pairs; band: range)"
    )
    if left_out:  # say under the figure which runs it leaves out
        fig.text(0.01, 0.005, note, fontsize=9, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, (0.75 + 0.4 * left_out) / fig.get_figheight(), 1, 1))
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Training-subset loss (left, log scale) and test error (right) along the straight
# line (`linear`), the straight line to the permutation-aligned b (`aligned`), and the trained
# Bezier curves (`bezier`; `aligned_bezier` ends at the aligned b). Only pairs of seeds whose
# runs both completed are drawn; a run that diverged or failed to train leaves out every pair
# it belongs to (named at the top, and under the figure when there are any). The barriers of
# every pair:

# %%
if barriers.empty:
    print(f"No barriers: no pair of seeds whose runs both completed. {note}")
else:
    table = barriers.pivot_table(
        index=["path"], columns=["split", "metric"], values="barrier", aggfunc=["mean", "max"]
    )
    display(table)

# %%
if barriers.empty:
    print("No barriers per pair either.")
else:
    per_pair = barriers.pivot_table(
        index=["seed_a", "seed_b", "path"], columns=["split", "metric"], values="barrier"
    )
    display(per_pair)
