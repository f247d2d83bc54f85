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
# # Sharp minima can be made flat (Dinh et al. 2017)
#
# One sweep model (the grid's first configuration and seed) is rescaled: its first layer
# multiplied by alpha, the next layer's weight divided by alpha. A ReLU network computes the
# same function after this, so its errors cannot move; a measure that moves with alpha
# describes the parametrisation, not the function, and cannot by itself explain
# generalisation. The initial weights are rescaled the same way (one change of coordinates).

# %% tags=["parameters"]
reparametrisation_table = "results/tables/reparametrisation.csv"
figure_png = "results/figures/reparametrisation.png"
figure_pdf = "results/figures/reparametrisation.pdf"

# %%
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from IPython.display import display

from lossgeom.figures import notebook_setup, save_figure
from lossgeom.tables import read_table

notebook_setup()
table = read_table(reparametrisation_table, "reparametrisation")
wide = table.pivot(index="alpha", columns="quantity", values="value")
base = wide.loc[np.isclose(wide.index, 1.0)].iloc[0]
with np.errstate(divide="ignore", invalid="ignore"):
    relative = wide / base
spread = (relative.max() / relative.min()).rename("max / min over alpha")
invariant = spread[(spread - 1).abs() < 0.01].index.tolist()
display(wide.T.round(5))
print("largest output change over the test set:", f"{wide.output_change.max():.2e}")
print("invariant (within 1%):", ", ".join(invariant))

# %%
moving = [q for q in relative.columns if q not in ("output_change",)]
fig, ax = plt.subplots(figsize=(11, 6))
long = relative[moving].reset_index().melt(id_vars="alpha", var_name="quantity", value_name="ratio")
long = long[np.isfinite(long.ratio) & (long.ratio > 0)]
sns.lineplot(
    data=long,
    x="alpha",
    y="ratio",
    hue="quantity",
    style="quantity",
    markers=True,
    dashes=False,
    ax=ax,
)
ax.set(xscale="log", yscale="log", xlabel="alpha (first layer x alpha, second layer / alpha)",
       ylabel="value / value at alpha = 1", title="What a function-preserving rescaling does to each measure")  # fmt: skip
ax.legend(ncol=2, fontsize=8, title="quantity")
fig.tight_layout()
save_figure(fig, figure_png, figure_pdf)

# %% [markdown]
# **Figure.** Every measure of the rescaled network divided by its value at alpha = 1, on log
# axes; the test and training errors are flat lines at 1 (the function is unchanged, to float
# rounding: the output change printed above). A measure whose line leaves 1 is not invariant
# to the reparametrisation: sharpness and trace change as alpha^2 or 1/alpha^2 along the
# rescaled directions (Dinh et al.).
