"""Compare the replication tables of two runs on different devices (say a CPU and a GPU).

Usage: python benchmarks/compare_devices.py CPU/results/tables GPU/results/tables

Two devices sum in different orders, so SGD's trajectories part after the first steps: the
trained weights, and everything measured on them, can agree only as closely as two seeds do.
Before training (epoch 0) both devices hold the same seeded initial weights, and the
measurements there agree to float32 round-off. For each quantity of the training
(test/train loss and accuracy), curvature (eig1..3, trace), barriers (every path) and bounds
(every measure and certificate) tables, at epoch 0 and at the last epoch, this prints the
first run's mean and seed-to-seed standard deviation, the second run's mean, the largest
per-seed difference, and that difference relative to the value (``rel``) and to the first
run's seed-to-seed deviation (``/sd``). Nothing is judged: the README states the tolerances.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

#: table -> (label columns, the columns that name a seed or pair, the value column)
TABLES = {
    "training": (["split", "metric"], ["seed"], "value"),
    "curvature": (["quantity"], ["seed"], "value"),
    "barriers": (["path", "split", "metric"], ["seed_a", "seed_b"], "barrier"),
    "bounds": (["quantity"], ["seed"], "value"),
}


def rows(first: pd.DataFrame, second: pd.DataFrame, labels: list[str], seeds: list[str],
         value: str):  # fmt: skip
    """One summary per experiment and label (and epoch, where the table has epochs)."""
    groups = ["experiment", *(["epoch"] if "epoch" in first.columns else []), *labels]
    last = first.epoch.max() if "epoch" in first.columns else None

    def select(frame: pd.DataFrame) -> pd.DataFrame:
        if "metric" in frame.columns:  # the running means are per-minibatch bookkeeping
            frame = frame[~frame.metric.str.startswith("running")]
        return frame[frame.epoch.isin([0, last])] if last is not None else frame

    merged = select(first).merge(select(second), on=[*groups, *seeds], suffixes=("_a", "_b"))
    for key, group in merged.groupby(groups, sort=True):
        a, b = group[f"{value}_a"].astype(float), group[f"{value}_b"].astype(float)
        gap = (a - b).abs().max()
        sd = a.std(ddof=1) if len(a) > 1 else float("nan")
        scale = max(a.abs().max(), b.abs().max())
        yield {
            "label": "/".join(str(k) for k in (key if isinstance(key, tuple) else (key,))),
            "n": len(group),
            "mean_a": a.mean(),
            "sd_a": sd,
            "mean_b": b.mean(),
            "max_diff": gap,
            "rel": gap / scale if scale else 0.0,
            "per_sd": gap / sd if sd else float("nan"),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("first", type=Path, help="results/tables of the first run (the CPU)")
    parser.add_argument("second", type=Path, help="results/tables of the second run (the GPU)")
    args = parser.parse_args()
    for folder in (args.first, args.second):
        missing = [t for t in TABLES if not (folder / f"{t}.csv").is_file()]
        if missing:
            parser.error(f"{folder} lacks {', '.join(f'{t}.csv' for t in missing)}")
    pd.set_option("display.width", 200)
    for table, (labels, seeds, value) in TABLES.items():
        first, second = (pd.read_csv(f / f"{table}.csv") for f in (args.first, args.second))
        summary = pd.DataFrame(list(rows(first, second, labels, seeds, value)))
        print(f"\n{table} ({args.first.name} = a, {args.second.name} = b)")
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
