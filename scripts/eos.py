"""Full-batch gradient descent at the edge of stability: one network, loss and step factor.

The step comes from the measured initial sharpness lambda0: eta = 2 (1 + beta) / (c lambda0)
(lossgeom.eos.learning_rate), so the run starts stable and sharpening can rise to the
threshold 2 (1 + beta) / eta. Writes the loss, accuracy and sharpness along the run.
"""

import argparse
import json
import logging
import math
import sys

import pandas as pd
import torch

from lossgeom import eos
from lossgeom.data import chunks, get_dataset
from lossgeom.models import build_model
from lossgeom.provenance import provenance, write_table
from lossgeom.runs import add_common_arguments, add_required, setup, training_subset
from lossgeom.tables import columns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--loss", choices=sorted(eos.LOSSES), required=True)
    add_required(
        parser, experiment=(str, "the EoS experiment's name"), model=(json, "JSON model spec"),
        factor=(float, "c in eta = 2(1+beta)/(c lambda0)"), momentum=float, steps=int,
        measure_every=int, lanczos_iter=int, tol=float,
        edge=(float, "edge reached at edge x threshold"),
        stop_after_edge=(json, "steps at the edge, or null"),
        subset=(int, "training samples (full batch)"), subset_seed=int, chunk_size=int,
        seed=(int, "initialisation and Lanczos seed"), output=str,
    )  # fmt: skip
    args = parser.parse_args()
    if not args.factor > 1:
        parser.error(f"--factor must be > 1 (the run must start stable), got {args.factor}")
    device, data = setup(args)
    info = get_dataset(args.dataset)
    spec = {"input_dim": info.input_dim, "num_classes": info.num_classes, **args.model}
    torch.manual_seed(args.seed)
    model = build_model(spec).to(device)
    x, y = training_subset(data, args.subset, args.subset_seed)
    loss_fn = eos.LOSSES[args.loss]
    lambda0, vector, n_hvp = eos.sharpness(model, loss_fn, chunks(x, y, args.chunk_size),
                                           tol=1e-4, seed=args.seed)  # fmt: skip
    lr = eos.learning_rate(lambda0, args.factor, args.momentum)
    logging.info("lambda0 %.4g (%d HVPs): lr %.5g, threshold %.4g", lambda0, n_hvp, lr,
                 eos.stability_threshold(lr, args.momentum))  # fmt: skip
    run = eos.gradient_descent(
        model, loss_fn, x, y, lr=lr, steps=args.steps, momentum=args.momentum,
        measure_every=args.measure_every, lanczos_iter=args.lanczos_iter, tol=args.tol,
        chunk_size=args.chunk_size, seed=args.seed, start_vector=vector, lambda0=lambda0,
        stop_after_edge=args.stop_after_edge, edge=args.edge,
        on_measure=lambda step, loss, value: logging.info(
            "step %d: loss %.5g, sharpness %.4g (%.3f of the threshold)", step, loss, value,
            value / eos.stability_threshold(lr, args.momentum)),
    )  # fmt: skip
    sharp = [(s, v) for s, q, v in run.rows if q == "sharpness"]
    summary = eos.summarise([s for s, _ in sharp], [v for _, v in sharp], run.threshold, args.edge)
    logging.info("%d steps in %.1fs (%d HVPs); diverged at %s; %s", args.steps, run.seconds,
                 run.n_hvp, run.diverged_step, summary)  # fmt: skip
    label = f"c{args.factor:g}"
    base = {"experiment": args.experiment, "run": label, "loss": args.loss, "lr": lr,
            "momentum": args.momentum, "threshold": run.threshold}  # fmt: skip
    frame = pd.DataFrame(
        [{**base, "step": s, "quantity": q, "value": v} for s, q, v in run.rows],
        columns=columns("eos"),
    )
    config = {k: v for k, v in vars(args).items() if k != "output"}
    record = provenance(config=config, device=device, lambda0=lambda0, lr=lr,
                        diverged_step=run.diverged_step, n_hvp=run.n_hvp + n_hvp,
                        seconds=run.seconds)  # fmt: skip
    write_table(frame, args.output, record)
    return 0 if math.isfinite(lambda0) else 1


if __name__ == "__main__":
    sys.exit(main())
