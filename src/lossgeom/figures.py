"""Figure output shared by the notebooks."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure


def save_figure(
    fig: Figure, png: str | os.PathLike, pdf: str | os.PathLike, dpi: int = 150
) -> None:
    """Write ``fig`` as PNG (raster, for the HTML report) and PDF (vector, for papers)."""
    for path in (png, pdf):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=dpi)
    fig.savefig(pdf)


def placeholder_figure(message: str, figsize: tuple[float, float] = (8, 3)) -> Figure:
    """A figure that says why there is nothing to draw (every run behind it left out, say)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=12)
    return fig
