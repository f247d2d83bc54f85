"""The index page: thumbnails linking to notebooks, run statuses with reasons, provenance."""

import pandas as pd

from lossgeom.report import render_index


def test_index_names_failed_runs_figures_and_configuration(tmp_path):
    runs = pd.DataFrame(
        {
            "experiment": ["report_mlp"] * 3,
            "seed": [0, 1, 2],
            "status": ["completed", "completed", "failed_to_train"],
            "reason": ["", "", "final test accuracy 0.1000 is at chance (0.1135 + margin 0.05)"],
        }
    )
    figures = [(str(tmp_path / "figures" / "training_curves.png"),
                str(tmp_path / "notebooks" / "training_curves.html"))]  # fmt: skip
    page = render_index(
        figures,
        [str(tmp_path / "tables" / "runs.csv")],
        runs,
        {"report_mlp": "mnist", "fashion_mlp": "fashion_mnist"},
        ["config/config.yaml", "config/presets/smoke.yaml"],
        "0123abcd",
        "deadbeef",
        tmp_path / "index.html",
    )
    assert "<title>lossgeom: report_mlp (mnist), fashion_mlp (fashion_mnist)</title>" in page
    assert "1 of 3 runs did not complete</b>: report_mlp seed 2 (failed_to_train)" in page
    assert "final test accuracy 0.1000 is at chance" in page
    assert '<a href="notebooks/training_curves.html"><img src="figures/training_curves.png"' in page
    assert "config/presets/smoke.yaml" in page and "0123abcd" in page and "deadbeef" in page
    assert '<a href="tables/runs.csv">runs.csv</a>' in page
