"""Escape from a sharp minimum (Zhu et al. 2019): one seed, every dynamics from one start.

Full-batch GD on a small training set reaches a sharp minimum; from it, each dynamics runs at
one common step (by default GD's own) with the same total noise variance Tr(Sigma) / B per
step (lossgeom.escape).
"""

import argparse
import copy
import json
import logging
import sys

import pandas as pd
import torch
import torch.nn.functional as F

from lossgeom import eos, escape
from lossgeom.data import chunks, get_dataset, subset_indices
from lossgeom.models import build_model
from lossgeom.provenance import provenance, write_table
from lossgeom.runs import add_common_arguments, add_required, setup, training_subset
from lossgeom.tables import columns
from lossgeom.training import evaluate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    add_required(
        parser, experiment=str, model=(json, "JSON model spec"), train_size=int, test_size=int,
        subset_seed=int, start_lr=(float, "GD step to the sharp minimum"), start_steps=int,
        lr=(json, "the dynamics' common step (null: start-lr)"), steps=int, batch_size=int,
        top_k=int, measure_every=int, lanczos_iter=int, tol=float, escape_ratio=float,
        dynamics=(json, "JSON list"), chunk_size=int, seed=int, output=str,
    )  # fmt: skip
    args = parser.parse_args()
    unknown = sorted(set(args.dynamics) - set(escape.DYNAMICS))
    if unknown or not args.dynamics:
        parser.error(f"--dynamics must name some of {escape.DYNAMICS}, got {args.dynamics}")
    if args.top_k >= args.train_size:
        parser.error(f"--top-k ({args.top_k}) must be below --train-size ({args.train_size})")
    device, data = setup(args)
    info = get_dataset(args.dataset)
    spec = {"input_dim": info.input_dim, "num_classes": info.num_classes, **args.model}
    x, y = training_subset(data, args.train_size, args.subset_seed)
    test_index = subset_indices(data.test_x.shape[0], args.test_size, args.subset_seed).to(device)
    test = (data.test_x[test_index], data.test_y[test_index])
    torch.manual_seed(args.seed)
    model = build_model(spec).to(device)
    descent = eos.gradient_descent(model, F.cross_entropy, x, y, lr=args.start_lr,
                                   steps=args.start_steps, measure_every=args.start_steps,
                                   chunk_size=args.chunk_size, seed=args.seed)  # fmt: skip
    if descent.diverged_step is not None:
        logging.error("GD to the starting minimum diverged at step %d", descent.diverged_step)
        return 1
    batches = chunks(x, y, args.chunk_size)
    lambda_start, _, _ = eos.sharpness(model, F.cross_entropy, batches, tol=1e-4, seed=args.seed)
    lr = args.start_lr if args.lr is None else float(args.lr)
    train_loss, train_accuracy = evaluate(model, x, y)
    logging.info("start: GD %d steps at %.3g in %.1fs: train loss %.4g, accuracy %.4f, "
                 "test accuracy %.4f, sharpness %.4g (GD stable below %.4g); continuing at lr %.4g",
                 args.start_steps, args.start_lr, descent.seconds, train_loss, train_accuracy,
                 evaluate(model, *test)[1], lambda_start, 2 / lr, lr)  # fmt: skip
    statistics = escape.noise_statistics(model, F.cross_entropy, x, y, k=args.top_k)
    logging.info("Tr Sigma %.4g; top-%d eigenvalues hold %.3f of it", statistics.trace,
                 args.top_k, float(statistics.values.sum()) / statistics.trace)  # fmt: skip
    start = copy.deepcopy(model.state_dict())
    rows = []
    for dynamics in args.dynamics:
        model.load_state_dict(start)
        trajectory = escape.continue_run(
            model, F.cross_entropy, (x, y), test, dynamics, lr=lr, steps=args.steps,
            batch_size=args.batch_size, statistics=statistics, seed=args.seed,
            measure_every=args.measure_every, lanczos_iter=args.lanczos_iter, tol=args.tol,
            chunk_size=args.chunk_size,
        )  # fmt: skip
        logging.info("%s: final sharpness %.4g, test accuracy %.4f, distance %.3g (%.1fs)%s",
                     dynamics, trajectory.final("sharpness"), trajectory.final("test_accuracy"),
                     trajectory.final("distance"), trajectory.seconds,
                     f"; diverged at {trajectory.diverged_step}" if trajectory.diverged_step is not None else "")  # fmt: skip
        rows += [{"experiment": args.experiment, "seed": args.seed, "dynamics": dynamics,
                  "step": s, "quantity": q, "value": v} for s, q, v in trajectory.rows]  # fmt: skip
    config = {k: v for k, v in vars(args).items() if k != "output"}
    record = provenance(config=config, device=device, lambda_start=lambda_start, lr=lr,
                        trace_sigma=statistics.trace, start_train_loss=train_loss,
                        start_train_accuracy=train_accuracy)  # fmt: skip
    write_table(pd.DataFrame(rows, columns=columns("escape")), args.output, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
