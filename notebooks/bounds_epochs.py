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
# # Bounds and measures along training, next to sharpness
#
# The report tracks sharpness (the top Hessian eigenvalue) per epoch and argues that
# curvature governs generalisation. Here one seed's every checkpoint, initialisation
# included, is measured with the same quantities as the final weights: the deterministic test
# error, the PAC-Bayes-kl certificate of the centred Gaussian posterior N(w, s^2 I) against
# the prior N(w0, s^2 I) (earlier epochs use fewer Monte-Carlo draws, see `mc_samples`), the
# report's proxy sqrt(||theta||^2 Tr(H) / (n eps^2)) (a heuristic, not a bound) and Jiang et
# al.'s sharpness-based measures. The optimised posterior is certified at the final epoch
# only (see the `bounds_seeds` notebook). At epoch 0, w = w0 and the centred KL is 0.

# %% tags=["parameters"]
bounds_table = "results/tables/bounds.csv"
curvature_table = "results/tables/curvature.csv"
figure_png = "results/figures/bounds_epochs.png"
figure_pdf = "results/figures/bounds_epochs.pdf"
tracked_seed = 0  # bounds.track_seed as the workflow resolved it

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from lossgeom.figures import save_figure
from lossgeom.tables import read_table

sns.set_theme(context="notebook", style="whitegrid")
bounds = read_table(bounds_table, "bounds")
curvature = read_table(curvature_table, "curvature")
settings = json.loads(Path(bounds_table + ".meta.json").read_text())["config"]
tracked_seed = int(tracked_seed)  # papermill passes parameters as strings
along = bounds[bounds.seed == tracked_seed]
sharp = curvature[(curvature.seed == tracked_seed) & (curvature.quantity == "eig1")]
print("tracked seed (bounds.track_seed):", tracked_seed)
print("settings:", settings)
for row in along[np.isinf(along.value)].itertuples():  # not drawn on a log axis, so named here
    print(
        f"epoch {row.epoch}: {row.quantity} is infinite: no noise scale down to {settings['jiang_upper']} / "
        f"2^{settings['jiang_steps']} keeps the accuracy drop within {settings['jiang_target']}"
    )

# %%
several = along.experiment.nunique() > 1
style = {"style": "experiment"} if several else {}
fig, axes = plt.subplots(2, 2, figsize=(12, 8.5), sharex=True)
errs = along[
    along.quantity.isin(
        ["test_error", "train_error", "stochastic_test_error_centered", "certificate_centered"]
    )
]
sns.lineplot(data=errs, x="epoch", y="value", hue="quantity", marker="o", ax=axes[0, 0], **style)
axes[0, 0].axhline(0.9, color="crimson", ls="--", lw=1, label="vacuous (>= 0.9)")
axes[0, 0].set(
    yscale="log",
    ylabel="0-1 error (fraction wrong, log scale)",
    title="Errors and the centred certificate",
)
axes[0, 0].legend(fontsize=8)
sns.lineplot(data=sharp, x="epoch", y="value", marker="o", color="k", ax=axes[0, 1], **style)
axes[0, 1].set(
    yscale="log",
    ylabel="top Hessian eigenvalue (loss / parameter unit$^2$)",
    title="Sharpness (curvature stage, Lanczos)",
)
proxy = along[along.quantity == "proxy"]
sns.lineplot(data=proxy, x="epoch", y="value", marker="o", ax=axes[1, 0], **style)
axes[1, 0].set(
    ylabel=f"proxy (eps = {settings['eps']:g}; arbitrary units)",
    title="The report's curvature proxy (not a bound)",
)
jiang = along[along.quantity.isin(["jiang_sharpness", "jiang_magnitude_aware"])]
sns.lineplot(data=jiang, x="epoch", y="value", hue="quantity", marker="o", ax=axes[1, 1], **style)
axes[1, 1].set(
    yscale="log",
    ylabel="measure (unitless, log scale)",
    title="Sharpness-based PAC-Bayes measures (Jiang et al.)",
)
for ax in axes.flat:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
for ax in axes[1]:
    ax.set_xlabel("epoch (0 = initialisation)")
fig.suptitle(f"Along training, seed {tracked_seed}")
fig.tight_layout()
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Top left: training and test error of the network, the test error of the
# centred stochastic classifier Q and its certificate (dashed: vacuity). Top right: the
# sharpness tracked by the report. Bottom: the report's proxy and Jiang et al.'s measures.
# Whether the certificate and the measures follow sharpness can be read off epoch by epoch;
# the table below holds the numbers, with the sample sizes behind each.

# %%
table = along.pivot_table(index=["experiment", "epoch"], columns="quantity", values="value")
table = table.join(
    sharp.pivot_table(index=["experiment", "epoch"], values="value").rename(
        columns={"value": "eig1"}
    )
)
table

# %%
certificates = along[along.quantity.str.startswith("certificate")][
    ["experiment", "seed", "epoch", "quantity", "value", "delta", "n", "mc_samples"]
].copy()
certificates["Q_test_error"] = [
    table.loc[(e, epoch), q.replace("certificate", "stochastic_test_error")]
    for e, epoch, q in zip(
        certificates.experiment, certificates.epoch, certificates.quantity, strict=True
    )
]
certificates["holds"] = certificates.value >= certificates.Q_test_error
certificates["verdict"] = np.where(certificates.value >= 0.9, "vacuous", "non-vacuous")
print(
    "every certificate along training >= the test error of the classifier it certifies:",
    bool(certificates.holds.all()),
)
certificates
