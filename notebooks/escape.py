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
# # Escaping a sharp minimum under differently shaped noise (Zhu et al. 2019, section 5)
#
# From a sharp minimum reached by full-batch gradient descent on a small training set, each
# seed continues with five dynamics at the same step η: `gd` (no noise), `sgd` (minibatch
# SGD, noise covariance Σ/B), and gradient Langevin dynamics, the full-batch gradient plus
# Gaussian noise N(0, C/B) with C isotropic (`gld_isotropic`, Tr(Σ)/D times the identity), the
# diagonal of Σ (`gld_diagonal`) or Σ restricted to its top-k eigenspace and rescaled to the
# same trace (`gld_leading`). Every noisy dynamics injects the same total variance per step;
# only its shape differs. Σ is measured once, at the starting minimum. Zhu et al.'s claim:
# noise shaped like the curvature (`sgd`, `gld_leading`) leaves the sharp minimum, isotropic
# noise of the same size does not. A run *escaped* when its final sharpness is at most
# `escape_ratio` times that of plain GD continued from the same start for as many steps (with
# the cross-entropy, curvature also falls while GD alone keeps fitting, so the start is not
# the reference; GD never escapes by this definition).

# %% tags=["parameters"]
runs_table = "results/tables/runs.csv"
escape_table = "results/tables/escape.csv"
escape_summary_table = "results/tables/escape_summary.csv"
figure_png = "results/figures/escape.png"
figure_pdf = "results/figures/escape.pdf"
escape_ratio = 0.5  # dynamics.escape.escape_ratio as the workflow resolved it

# %%
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from IPython.display import display
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lossgeom.figures import notebook_runs, placeholder_figure, save_figure
from lossgeom.tables import read_table

runs, note, left_out = notebook_runs(runs_table)
print(
    "(The escape runs are their own, from their own sharp minimum: the runs above are not in it.)"
)
escape_ratio = float(escape_ratio)  # papermill passes parameters as strings
escape = read_table(escape_table, "escape")
summary = read_table(escape_summary_table, "escape_summary")
# The table's dynamics, in this fixed order and palette in every panel.
DYNAMICS = ["gd", "sgd", "gld_isotropic", "gld_diagonal", "gld_leading"]
PALETTE = dict(zip(DYNAMICS, sns.color_palette("colorblind", n_colors=5), strict=True))
present = [d for d in DYNAMICS if d in set(escape.dynamics) | set(summary.dynamics)]
starts = escape[(escape.quantity == "sharpness") & (escape.step == 0)]
start = starts.groupby(["experiment", "seed"]).value.first().mean()
gd_runs = escape[(escape.dynamics == "gd") & (escape.quantity == "sharpness")]
gd_final = gd_runs[gd_runs.step == gd_runs.step.max()].value.mean() if not gd_runs.empty else np.nan
seeds = sorted(escape.seed.unique().tolist())
if escape.empty:
    print("The escape table is empty: no trajectories.")
else:
    print(f"dynamics {present}; seeds {seeds}; steps 0 to {escape.step.max()}")
    print(
        f"mean starting sharpness {start:.4g}, mean final GD sharpness {gd_final:.4g}; a run "
        f"escaped when its final sharpness is at most {escape_ratio:g} x that of GD from its start"
    )
TRAJECTORIES = {
    "train_loss": ("Training loss", "training cross-entropy (nats, log scale)"),
    "test_accuracy": ("Test accuracy", "test accuracy (fraction correct)"),
    "sharpness": ("Sharpness", "top Hessian eigenvalue\n(loss / parameter unit$^2$)"),
    "distance": ("Distance from the start", "‖θ − θ$_0$‖ (Euclidean, parameter units)"),
}
FINALS = {
    "final_test_accuracy": ("Final test accuracy", "test accuracy (fraction correct)"),
    "final_sharpness": ("Final sharpness", "top Hessian eigenvalue\n(loss / parameter unit$^2$)"),
    "final_distance": ("Final distance from the start", "‖θ − θ$_0$‖ (parameter units)"),
    "escaped_fraction": ("Seeds that escaped", "fraction of seeds (Wilson 95% interval)"),
}


def draw_trajectory(ax, quantity: str) -> None:
    """Mean over seeds per dynamics against the step, with the range over seeds as a band."""
    rows = escape[(escape.quantity == quantity) & np.isfinite(escape.value)]
    title, label = TRAJECTORIES[quantity]
    if rows.empty:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
    else:
        sns.lineplot(
            data=rows,
            x="step",
            y="value",
            hue="dynamics",
            hue_order=[d for d in present if d in set(rows.dynamics)],
            palette=PALETTE,
            errorbar=("pi", 100),
            legend=False,
            ax=ax,
        )
    ax.set(title=title, ylabel=label, xlabel="step (from the sharp minimum)")
    if quantity == "train_loss" and not rows.empty:
        ax.set_yscale("log")


def draw_final(ax, quantity: str) -> None:
    """Each dynamics' mean over seeds with its 95% interval (escape_summary)."""
    rows = summary[summary.quantity == quantity].set_index("dynamics")
    title, label = FINALS[quantity]
    for x, dynamics in enumerate(present):
        if dynamics not in rows.index:
            continue
        row = rows.loc[dynamics]
        low, high = row["mean"] - row.ci_low, row.ci_high - row["mean"]
        ax.errorbar(
            x,
            row["mean"],
            yerr=[[low], [high]] if np.isfinite([low, high]).all() else None,
            fmt="o",
            ms=8,
            capsize=5,
            color=PALETTE[dynamics],
        )
    ax.set_xticks(range(len(present)), present, rotation=25, ha="right")
    ax.set_xlim(-0.5, len(present) - 0.5)
    ax.set(title=title, ylabel=label)
    if rows.empty:
        ax.text(0.5, 0.5, "no summary", ha="center", va="center", transform=ax.transAxes)


# %%
if escape.empty and summary.empty:
    fig = placeholder_figure(
        "No escape runs to draw: the escape and escape_summary tables are empty.",
        figsize=(9, 3),
    )
else:
    fig, axes = plt.subplots(2, 4, figsize=(19, 10))
    for ax, quantity in zip(axes[0], TRAJECTORIES, strict=True):
        draw_trajectory(ax, quantity)
    for ax, quantity in zip(axes[1], FINALS, strict=True):
        draw_final(ax, quantity)
    line = f"{escape_ratio:g} x mean final GD sharpness ({escape_ratio * gd_final:.3g})"
    for ax in (axes[0, 2], axes[1, 1]):
        if np.isfinite(gd_final):
            ax.axhline(escape_ratio * gd_final, color="k", ls=":", lw=1.5)
    axes[1, 3].set_ylim(-0.05, 1.05)
    handles = [Line2D([], [], color=PALETTE[d], marker="o", label=d) for d in present]
    handles += [
        Patch(color="grey", alpha=0.3, label="band: range over seeds (top)"),
        Line2D([], [], color="grey", marker="o", label="point, bar: mean, 95% interval (bottom)"),
        Line2D([], [], color="k", ls=":", label=f"escape level: {line}"),
    ]
    fig.legend(handles=handles, loc="upper center", ncol=4, bbox_to_anchor=(0.5, 0.955))
    fig.suptitle(
        f"Escaping a sharp minimum: same step, same noise variance, different noise shape "
        f"({len(seeds)} seed{'s' * (len(seeds) != 1)}; top: mean over seeds)",
        y=0.99,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.9))
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Top row, against the step from the sharp minimum: training loss (log scale),
# test accuracy, sharpness (the top Hessian eigenvalue) and the Euclidean distance from the
# starting weights, per dynamics (one colour each, the same in every panel): the line is the
# mean over seeds and the band the range over seeds. Bottom row: the final values per
# dynamics, mean over seeds with Student-t 95% intervals, and the fraction of seeds that
# escaped with Wilson's 95% interval (from the escape_summary table; a dynamics with one seed
# has no interval). The dotted line on both sharpness panels is `escape_ratio` times the mean
# final sharpness of GD: each seed is judged against its own GD run, so the line is a guide.
#
# ## The summary (mean over seeds, 95% interval)

# %%
if summary.empty:
    print("No escape summary: the escape_summary table is empty.")
else:
    cells = summary.assign(
        cell=[
            f"{m:.4g} [{lo:.4g}, {hi:.4g}]"
            for m, lo, hi in zip(summary["mean"], summary.ci_low, summary.ci_high, strict=True)
        ]
    )
    table = cells.pivot(index=["dynamics", "n_seeds"], columns="quantity", values="cell")
    order = [d for d in DYNAMICS if d in set(summary.dynamics)]
    display(table.reindex(order, level="dynamics")[[q for q in FINALS if q in table.columns]])
    display(summary)


def compare(quantity: str, a: str, b: str) -> str:
    """Whether the 95% intervals of dynamics ``a`` and ``b`` for ``quantity`` overlap."""
    rows = summary[summary.quantity == quantity].set_index("dynamics")
    if a not in rows.index or b not in rows.index:
        return f"{quantity}: {a} vs {b}: not both in the summary"
    ra, rb = rows.loc[a], rows.loc[b]
    shown = f"{a} {ra['mean']:.3g} [{ra.ci_low:.3g}, {ra.ci_high:.3g}] vs {b} {rb['mean']:.3g} "
    shown += f"[{rb.ci_low:.3g}, {rb.ci_high:.3g}]"
    if not np.isfinite([ra.ci_low, ra.ci_high, rb.ci_low, rb.ci_high]).all():
        return f"{quantity}: {shown}: no interval (under two seeds with values): not compared"
    if ra.ci_low > rb.ci_high:
        return f"{quantity}: {shown}: {a} HIGHER (intervals disjoint)"
    if ra.ci_high < rb.ci_low:
        return f"{quantity}: {shown}: {a} LOWER (intervals disjoint)"
    return f"{quantity}: {shown}: intervals overlap (no difference resolved)"


# %% [markdown]
# ## Verdict: curvature-shaped noise (`sgd`, `gld_leading`) against `gd` and `gld_isotropic`

# %%
if summary.empty:
    print("No verdict: the escape_summary table is empty.")
else:
    lines = [
        compare(quantity, a, b)
        for quantity in ("final_sharpness", "escaped_fraction", "final_test_accuracy")
        for a in ("sgd", "gld_leading")
        for b in ("gd", "gld_isotropic")
    ]
    print("\n".join(lines))
    resolved = sum("disjoint" in line for line in lines)
    print(
        f"{resolved} of {len(lines)} comparisons resolved (95% intervals disjoint); "
        f"{sum('overlap' in line for line in lines)} overlap. Zhu et al.'s claim is supported "
        "where sgd and gld_leading end LOWER in sharpness and HIGHER in escaped fraction."
    )
