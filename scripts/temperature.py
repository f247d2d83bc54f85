"""SGD temperature: train the grid's cells of one batch size and measure their final geometry."""

import argparse
import json
import logging
import sys

import pandas as pd

from lossgeom.data import Dataset, get_dataset, md5sum
from lossgeom.provenance import provenance, write_table
from lossgeom.runs import add_common_arguments, add_required, setup, training_subset
from lossgeom.tables import columns
from lossgeom.temperature import train_cell


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    add_required(
        parser, batch_size=int, lrs=(json, "JSON list"), seeds=(json, "JSON list"),
        model=(json, "JSON model spec"), momentum=float, epochs=int, train_subset=int,
        subset_seed=int, curvature_subset=int, trace_matvecs=int, tol=float, chunk_size=int,
        checkpoint_dir=str, output=str,
    )  # fmt: skip
    args = parser.parse_args()
    lrs_ok = isinstance(args.lrs, list) and args.lrs
    if not lrs_ok or not all(isinstance(v, (int, float)) and v > 0 for v in args.lrs):
        parser.error(f"--lrs must be a non-empty JSON list of positive numbers, got {args.lrs}")
    if not isinstance(args.seeds, list) or not all(isinstance(v, int) for v in args.seeds):
        parser.error(f"--seeds must be a JSON list of integers, got {args.seeds}")
    device, data = setup(args)
    info = get_dataset(args.dataset)
    x, y = training_subset(data, args.train_subset, args.subset_seed)
    subset = Dataset(x, y, data.test_x, data.test_y, name=data.name)
    identity = {"dataset": info.name, "data_md5": md5sum(args.data),
                "train_subset": args.train_subset, "subset_seed": args.subset_seed}  # fmt: skip
    model = {"input_dim": info.input_dim, "num_classes": info.num_classes, **args.model}
    rows = []
    for lr in args.lrs:
        for seed in args.seeds:
            spec = {"model": model, "epochs": args.epochs, "batch_size": args.batch_size,
                    "optimizer": {"name": "sgd", "lr": lr, "momentum": args.momentum}}  # fmt: skip
            folder = f"{args.checkpoint_dir}/lr{lr:g}_seed{seed}"
            cell, status = train_cell(
                spec, subset, seed, folder, curvature_size=args.curvature_subset,
                trace_matvecs=args.trace_matvecs, tol=args.tol, chunk_size=args.chunk_size,
                device=device, identity=identity,
                log=lambda line, lr=lr: logging.info("lr %g batch %d %s", lr, args.batch_size, line),
            )  # fmt: skip
            rows += [{"lr": lr, "batch_size": args.batch_size, "seed": seed, "quantity": q,
                      "value": v} for q, v in cell]  # fmt: skip
    config = {k: v for k, v in vars(args).items() if k not in ("output", "checkpoint_dir")}
    write_table(pd.DataFrame(rows, columns=columns("temperature")), args.output,
                provenance(config=config, device=device))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
