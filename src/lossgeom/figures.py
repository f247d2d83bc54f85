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
