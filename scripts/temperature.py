"""SGD temperature: train the grid's cells of one batch size and measure their final geometry."""

import argparse
import logging
import sys

import pandas as pd

from lossgeom.data import Dataset, get_dataset, md5sum
from lossgeom.provenance import provenance, write_table
from lossgeom.runs import add_common_arguments, json_argument, setup, training_subset
from lossgeom.tables import columns
from lossgeom.temperature import train_cell


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--lrs", type=json_argument, required=True, help="JSON list")
    parser.add_argument("--seeds", type=json_argument, required=True, help="JSON list")
    parser.add_argument("--model", type=json_argument, required=True)
    parser.add_argument("--momentum", type=float, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--train-subset", type=int, required=True)
    parser.add_argument("--subset-seed", type=int, required=True)
    parser.add_argument("--curvature-subset", type=int, required=True)
    parser.add_argument("--trace-matvecs", type=int, required=True)
    parser.add_argument("--tol", type=float, required=True)
    parser.add_argument("--chunk-size", type=int, required=True)
    parser.add_argument("--checkpoint-dir", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
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
