"""The sweep's analysis: how each measure ranks the models (question 3), and whether an early
look at training predicts difficulty (question 4).

Reads results/tables/sweep.csv; writes measure_correlations.csv and
measure_correlations_by_axis.csv (Kendall tau with its bootstrap interval and Jiang et al.'s
Psi, over the models that reached the stopping criterion) and prediction.csv (held-out AUROC
and Spearman rho of each feature set, lossgeom.prediction).
"""

import argparse
import logging
import sys

from lossgeom.correlation import measure_correlations
from lossgeom.prediction import prediction_table
from lossgeom.provenance import provenance, write_table
from lossgeom.runs import json_argument
from lossgeom.tables import SWEEP_AXES, SWEEP_EARLY_POINTS, SWEEP_MEASURES, columns, read_table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sweep", required=True, help="results/tables/sweep.csv")
    parser.add_argument(
        "--config", type=json_argument, required=True, help="JSON: the sweep section"
    )
    for name in ("correlations", "by_axis", "prediction"):
        parser.add_argument(f"--{name.replace('_', '-')}", required=True, help="output CSV")
    args = parser.parse_args()
    point = args.config["prediction"]["point"]
    if point not in SWEEP_EARLY_POINTS:
        parser.error(
            f"--config: sweep.prediction.point {point!r} is not one of {SWEEP_EARLY_POINTS}"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    frame = read_table(args.sweep, "sweep")
    reached = frame[frame["status"] == "reached"]
    logging.info("%d models, %d reached the criterion, %d diverged", len(frame), len(reached),
                 int((frame["status"] == "diverged").sum()))  # fmt: skip
    axes = [a for a in SWEEP_AXES if reached[a].nunique() > 1]
    settings = args.config["correlation"]
    overall, by_axis = measure_correlations(
        reached, SWEEP_MEASURES, ["gap", "test_error"], axes, fixed=["seed"],
        n_resamples=settings["bootstrap"], seed=settings["seed"],
    )  # fmt: skip
    table, _ = prediction_table(frame, point, settings["bootstrap"], settings["seed"])
    record = provenance(config=args.config, models=len(frame), reached=len(reached), axes=axes)
    write_table(overall[columns("measure_correlations")], args.correlations, record)
    write_table(by_axis[columns("measure_correlations_by_axis")], args.by_axis, record)
    write_table(table[columns("prediction")], args.prediction, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
