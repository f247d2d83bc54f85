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
# # Which measures rank generalisation? (report question 3)
#
# The sweep trains MLPs over a full hyperparameter grid, each until its training
# cross-entropy reaches the stopping criterion (Jiang et al. 2020), and measures each one.
# A measure is judged by how it ranks the models that reached the criterion: Kendall's tau
# against the generalisation gap (test error minus training error) and against the test
# error, over all of them, with a 95% bootstrap interval (models resampled), and Jiang et al.'s
# granulated coefficient Psi, the mean over the varied axes of tau within groups of models
# that differ in that axis alone (same seed). A measure with tau near zero does not rank the
# models; one with a large tau but a small Psi tracks one axis rather than generalisation.
# `params` (the number of parameters) and `final_train_loss` know nothing of geometry: they
# give the scale of a tau that means something here.

# %% tags=["parameters"]
sweep_table = "results/tables/sweep.csv"
measure_correlations_table = "results/tables/measure_correlations.csv"
measure_correlations_by_axis_table = "results/tables/measure_correlations_by_axis.csv"
figure_png = "results/figures/measure_ranking.png"
figure_pdf = "results/figures/measure_ranking.pdf"

# %%
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import seaborn as sns
from IPython.display import display

from lossgeom.figures import notebook_setup, placeholder_figure, save_figure
from lossgeom.tables import read_table

notebook_setup()
sweep = read_table(sweep_table, "sweep")
overall = read_table(measure_correlations_table, "measure_correlations")
by_axis = read_table(measure_correlations_by_axis_table, "measure_correlations_by_axis")
counts = sweep.status.value_counts()
print(f"{len(sweep)} models: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
reached = sweep[sweep.status == "reached"]
print(
    f"generalisation gap of the {len(reached)} that reached the criterion: "
    f"median {reached.gap.median():.4f}, range {reached.gap.min():.4f} to {reached.gap.max():.4f}"
)

# %% [markdown]
# ## The ranking table (Jiang et al.'s Table 1 layout): tau per axis, Psi and overall tau

# %%
gap_axes = by_axis[by_axis.target == "gap"].pivot(index="measure", columns="axis", values="tau")
gap = overall[overall.target == "gap"].set_index("measure")
test = overall[overall.target == "test_error"].set_index("measure")
ranking = gap_axes.assign(
    psi=gap.psi,
    tau_gap=gap.tau,
    tau_gap_ci=[
        f"[{a:+.2f}, {b:+.2f}]" for a, b in zip(gap.tau_ci_low, gap.tau_ci_high, strict=True)
    ],
    tau_test_error=test.tau,
    n_models=gap.n_models,
).sort_values("tau_gap", key=np.abs, ascending=False)
display(ranking.round(3))

# %%
ordered = ranking.index.tolist()
if reached.empty or gap.tau.isna().all():
    fig = placeholder_figure("No model reached the stopping criterion: nothing to rank.")
else:
    heat = ranking[[*gap_axes.columns, "psi", "tau_gap", "tau_test_error"]]
    best = gap.tau.abs().idxmax()
    worst = gap.tau.abs().idxmin()
    fig = plt.figure(figsize=(16, 7))
    grid = fig.add_gridspec(2, 2, width_ratios=[1.3, 1])
    ax = fig.add_subplot(grid[:, 0])
    sns.heatmap(heat, annot=True, fmt=".2f", center=0, vmin=-1, vmax=1, cmap="RdBu_r", ax=ax,
                cbar_kws={"label": "Kendall tau (against the gap unless named)"})  # fmt: skip
    ax.set(xlabel="tau within one axis (its groups averaged) | Psi | tau over all models",
           ylabel="measure", title="How each measure ranks the models")  # fmt: skip
    for position, name in ((0, best), (1, worst)):
        side = fig.add_subplot(grid[position, 1])
        sns.scatterplot(data=reached, x=name, y="gap", hue="dataset", style="depth", ax=side)
        side.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
        if (reached[name] > 0).all() and reached[name].max() / reached[name].min() > 100:
            side.set_xscale("log")
            side.xaxis.set_minor_formatter(mticker.NullFormatter())
        side.set(xlabel=f"{name} (its units; see the README)", ylabel="gap (test - train error)",
                 title=f"{'best' if position == 0 else 'worst'} |tau|: {name}, "
                       f"tau {gap.tau[name]:+.2f}")  # fmt: skip
    fig.tight_layout()
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Left: Kendall's tau of every measure against the generalisation gap within each
# varied axis (Jiang et al.'s granulated view: the models in a group differ in that axis
# alone), their mean Psi, and tau over all models that reached the criterion against the gap
# and against the test error; red ranks like the gap, blue ranks against it. Right: the gap
# against the measure with the largest and the smallest |tau|, coloured by dataset, marked by
# depth. The intervals are in the table above; a tau whose interval contains 0 is no evidence
# that the measure ranks the models.
