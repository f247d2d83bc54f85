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


def notebook_setup(style: str = "whitegrid") -> None:
    """Display settings and the seaborn theme (``white`` for contour maps) for a notebook."""
    import pandas as pd
    import seaborn as sns

    pd.set_option("display.max_columns", None)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_rows", 500)
    sns.set_theme(context="notebook", style=style)


def notebook_runs(runs_table: str | os.PathLike, style: str = "whitegrid"):
    """Every notebook's preamble: display settings, the seaborn theme and the runs table.

    Sets pandas to show wide tables whole and seaborn's theme in ``style`` (``white`` for
    contour maps), reads
    ``runs_table`` (checked by :func:`lossgeom.tables.read_table`) and prints which runs are
    left out (:func:`lossgeom.tables.runs_note`).

    Returns:
        ``(runs, note, left_out)``: the runs table, the printed note, and whether any run did
        not complete.
    """
    from lossgeom.tables import read_table, runs_note

    notebook_setup(style)
    runs = read_table(runs_table, "runs")
    note = runs_note(runs)
    print(note)
    return runs, note, bool((runs.status != "completed").any())
