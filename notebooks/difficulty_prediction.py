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
# # Does early curvature predict optimisation difficulty? (report question 4)
#
# Every sweep model is looked at early in training (after the first tenth of an epoch, the
# default `sweep.prediction.point`): its training loss and the loss's slope per step, the
# gradient norm, the top Hessian eigenvalue, the trace, and lambda_max eta / (2 (1 + beta)),
# sharpness against SGD-with-momentum's stability threshold. From these, a standardised
# logistic regression predicts whether the model fails (diverges or never reaches the
# criterion) and a ridge regression predicts log steps to the criterion; every prediction is
# made by a model fitted without that configuration's seeds (leave one configuration group
# out). The question is whether curvature adds to what the early loss alone predicts.

# %% tags=["parameters"]
sweep_table = "results/tables/sweep.csv"
prediction_table = "results/tables/prediction.csv"
figure_png = "results/figures/difficulty_prediction.png"
figure_pdf = "results/figures/difficulty_prediction.pdf"

# %%
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import seaborn as sns
from IPython.display import display

from lossgeom.figures import notebook_setup, save_figure
from lossgeom.tables import read_table

notebook_setup()
sweep = read_table(sweep_table, "sweep")
prediction = read_table(prediction_table, "prediction")
display(prediction.round(3))
print(sweep.groupby(["lr", "status"]).size().unstack(fill_value=0))

# %%
fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
chance = {"auroc": 0.5, "spearman": 0.0}
for ax, (task, part) in zip(axes[:2], prediction.groupby("task", sort=False), strict=False):
    shown = part[part.features != "none"]
    ax.errorbar(shown.features, shown.value,
                yerr=[shown.value - shown.ci_low, shown.ci_high - shown.value], fmt="o", capsize=5)  # fmt: skip
    metric = part.metric.iloc[0]
    ax.axhline(chance[metric], color="grey", ls="--", label="chance")
    reference = part[part.features == "none"].value
    if len(reference) and np.isfinite(reference.iloc[0]):
        ax.axhline(reference.iloc[0], color="tab:red", ls=":",
                   label="intercept only (held-out reference)")  # fmt: skip
    ax.set(xlabel="features after the early look", ylabel=f"held-out {metric}",
           title=f"{task} (n = {part.n_models.iloc[0]} models)",
           ylim=(-1.05 if metric == "spearman" else 0, 1.05))  # fmt: skip
    ax.legend(fontsize=8)
finite = sweep[np.isfinite(sweep.stability_ratio_tenth)]
sns.scatterplot(data=finite, x="stability_ratio_tenth", y="steps", hue="status",
                style="dataset", ax=axes[2])  # fmt: skip
axes[2].set_xscale("log")
axes[2].set_yscale("log")
for axis in (axes[2].xaxis, axes[2].yaxis):
    axis.set_minor_formatter(mticker.NullFormatter())
axes[2].axvline(1.0, color="grey", ls="--")
axes[2].set(xlabel="lambda_max eta / (2 (1 + beta)) after a tenth of an epoch",
            ylabel="steps taken (to the criterion, or the cap)",
            title="Early sharpness against the stability threshold")  # fmt: skip
fig.tight_layout()
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Left and centre: held-out AUROC for predicting failure and Spearman rho for
# predicting steps to the criterion, from the early loss alone, from early curvature (with
# the gradient norm) alone, from both, and from the learning rate alone, with 95% bootstrap
# intervals (models resampled). The dashed line is chance; the dotted red line is what an
# intercept-only fit scores under leave-one-group-out, which lies below chance (holding a
# group out shifts the training labels' mean away from it): a feature set helps only above it. Right: every model's early sharpness against the threshold
# (1 on the dashed line: lambda_max equals 2 (1 + beta) / eta) and the steps it took,
# coloured by outcome. Curvature adds information when "both" beats "early_loss" by more than
# the intervals.
