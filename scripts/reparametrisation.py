"""Dinh et al.'s (2017) reparametrisation check on one sweep model.

Trains the grid's first configuration (the first value of every axis, the first seed) to the
stopping criterion, then rescales its first layer by alpha and the next by 1 / alpha for every
alpha, and writes every measure of the rescaled (functionally identical) network
(results/tables/reparametrisation.csv, lossgeom.sweep.reparametrisation_rows).
"""

import argparse
import logging
import sys

import pandas as pd
import torch

from lossgeom.certificates import Settings
from lossgeom.data import Dataset, get_dataset, load_dataset, md5sum, subset_indices
from lossgeom.provenance import provenance, write_table
from lossgeom.runs import json_argument
from lossgeom.sweep import (
    SweepError,
    SweepSettings,
    reparametrisation_rows,
    sweep_models,
    train_to_criterion,
)
from lossgeom.tables import columns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data", required=True, help="the prepared data file of the model's dataset"
    )
    parser.add_argument("--device", required=True, help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument(
        "--config", type=json_argument, required=True, help="JSON: the sweep section"
    )
    parser.add_argument(
        "--bounds", type=json_argument, required=True, help="JSON: the sweep's bounds settings"
    )
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    section = args.config
    try:
        spec = sweep_models({"axes": {a: v[:1] for a, v in section["axes"].items()},
                             "seeds": section["seeds"][:1]})[0]  # fmt: skip
        settings = SweepSettings(**section["settings"])
        bound_settings = Settings.from_mapping({**args.bounds, "final_epoch": True})
    except KeyError as error:
        parser.error(f"--bounds or --settings: the key {error} is missing")
    except (SweepError, TypeError, ValueError) as error:
        parser.error(str(error))
    alphas = section["reparametrisation"]["alphas"]
    from lossgeom.training import resolve_device

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = load_dataset(args.data, device=device, expect=spec.dataset)
    index = subset_indices(data.train_x.shape[0], spec.train_size, section["subset_seed"])
    index = index.to(data.train_x.device)
    subset = Dataset(data.train_x[index].flatten(1), data.train_y[index], data.test_x.flatten(1),
                     data.test_y, name=data.name)  # fmt: skip
    run = train_to_criterion(spec, subset.train_x, subset.train_y,
                             get_dataset(spec.dataset).num_classes, settings, log=logging.info)  # fmt: skip
    if run.status == "diverged":
        print(f"error: {spec.model_id} diverged; nothing to rescale", file=sys.stderr)
        return 1
    rows = reparametrisation_rows(run, subset, settings, bound_settings, alphas, spec.seed,
                                  section["reparametrisation"]["layer"])  # fmt: skip
    record = provenance(config={"sweep": section, "bounds": args.bounds, "model": spec.model_id,
                                "status": run.status, "data_md5": md5sum(args.data)},
                        device=device)  # fmt: skip
    write_table(pd.DataFrame(rows, columns=columns("reparametrisation")), args.output, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
