"""One job of the generalisation sweep: train each of its models to the criterion and measure it.

Writes the job's rows of ``results/tables/sweep.csv`` (lossgeom.sweep): the grid point, whether
the criterion was reached, the errors and gap, every measure and the early look at training.
"""

import argparse
import logging
import math
import sys

import pandas as pd
import torch

from lossgeom.certificates import Settings
from lossgeom.data import Dataset, get_dataset, md5sum, subset_indices
from lossgeom.provenance import provenance, write_table
from lossgeom.runs import add_required, json_argument
from lossgeom.sweep import (
    EARLY_POINTS,
    EARLY_QUANTITIES,
    MEASURES,
    SweepError,
    SweepModel,
    SweepSettings,
    final_measures,
    train_to_criterion,
)
from lossgeom.tables import columns


def row(spec: SweepModel, run, data: Dataset, settings, bound_settings) -> dict:
    """The model's row of the sweep table (measures NaN where the run diverged)."""
    out = {"model_id": spec.model_id, "config_group": spec.config_group, **spec.axes(),
           "seed": spec.seed, "status": run.status, "reached_criterion": int(run.reached),
           "steps": run.steps, "seconds": run.seconds}  # fmt: skip
    measures = dict.fromkeys(MEASURES, math.nan)
    errors = {"train_error": math.nan, "test_error": math.nan}
    if run.status != "diverged":
        measures = final_measures(run, data, settings, bound_settings, spec.seed)
        errors = {key: measures.pop(key) for key in errors}
    out.update(errors, gap=errors["test_error"] - errors["train_error"], **measures)
    for point in EARLY_POINTS:
        early = run.early.get(point, {})
        for quantity in EARLY_QUANTITIES:
            out[f"{quantity}_{point}"] = early.get(quantity, math.nan)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", nargs="+", required=True, metavar="DATASET=FILE",
                        help="the prepared data file of every dataset of the grid")  # fmt: skip
    parser.add_argument("--device", required=True, help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, required=True, help="torch CPU threads (0: default)")
    add_required(parser, models=(json_argument, "JSON list of lossgeom.sweep.SweepModel fields"),
                 settings=(json_argument, "JSON: lossgeom.sweep.SweepSettings fields"),
                 bounds=(json_argument, "JSON: the bounds settings (lossgeom.certificates.Settings)"),
                 subset_seed=int, output=str)  # fmt: skip
    args = parser.parse_args()
    files = dict(item.split("=", 1) for item in args.data)
    try:
        settings = SweepSettings(**args.settings)
        bound_settings = Settings.from_mapping({**args.bounds, "final_epoch": True})
        models = [SweepModel(**m) for m in args.models]
    except KeyError as error:
        parser.error(f"--bounds or --settings: the key {error} is missing")
    except (SweepError, TypeError, ValueError) as error:
        parser.error(str(error))
    missing = sorted({m.dataset for m in models} - set(files))
    if missing:
        parser.error(f"--data: no file for dataset {missing[0]}")
    from lossgeom.data import load_dataset
    from lossgeom.training import resolve_device

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    loaded = {name: load_dataset(files[name], device=device, expect=name)
              for name in sorted({m.dataset for m in models})}  # fmt: skip
    rows = []
    for spec in models:
        data = loaded[spec.dataset]
        # nested: a smaller train_size takes a subset of a larger one's images (one permutation)
        index = subset_indices(data.train_x.shape[0], spec.train_size, args.subset_seed)
        index = index.to(data.train_x.device)
        subset = Dataset(data.train_x[index].flatten(1), data.train_y[index],
                         data.test_x.flatten(1), data.test_y, name=data.name)  # fmt: skip
        info = get_dataset(spec.dataset)
        run = train_to_criterion(spec, subset.train_x, subset.train_y, info.num_classes,
                                 settings, log=logging.info)  # fmt: skip
        rows.append(row(spec, run, subset, settings, bound_settings))
        logging.info("%s: %s", spec.model_id,
                     {k: rows[-1][k] for k in ("train_error", "test_error", "eig1", "trace")})  # fmt: skip
    config = {"models": args.models, "settings": args.settings, "bounds": args.bounds,
              "subset_seed": args.subset_seed,
              "data_md5": {name: md5sum(files[name]) for name in loaded}}  # fmt: skip
    record = provenance(config=config, device=device,
                        runs={r["model_id"]: r["status"] for r in rows})  # fmt: skip
    write_table(pd.DataFrame(rows, columns=columns("sweep")), args.output, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
