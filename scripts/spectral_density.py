"""Hessian spectral density (stochastic Lanczos quadrature) at one checkpoint."""

import argparse
import logging
import sys

import pandas as pd
import torch.nn.functional as F

from lossgeom import hessian
from lossgeom.provenance import provenance, write_table
from lossgeom.runs import add_common_arguments, load_weights, setup, subset_batches

COLUMNS = ["experiment", "seed", "epoch", "eigenvalue", "density", "sigma", "n_hvp", "seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--subset", type=int, required=True)
    parser.add_argument("--subset-seed", type=int, required=True)
    parser.add_argument("--chunk-size", type=int, required=True)
    parser.add_argument("--n-iter", type=int, required=True, help="Lanczos steps per run")
    parser.add_argument("--n-runs", type=int, required=True, help="random starting vectors")
    parser.add_argument("--n-grid", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    if args.n_iter < 1 or args.n_runs < 1 or args.n_grid < 2:
        parser.error("n-iter >= 1, n-runs >= 1 and n-grid >= 2 are required")
    device, data = setup(args)
    model, meta = load_weights(args.weights, device)
    base = {"experiment": meta["experiment"], "seed": meta["seed"], "epoch": meta["epoch"]}
    if model is None:
        logging.warning("%s; writing an empty table", meta["skipped"])
        frame = pd.DataFrame(columns=COLUMNS)
    else:
        batches = subset_batches(data, args.subset, args.subset_seed, args.chunk_size)
        result = hessian.spectral_density(
            model,
            F.cross_entropy,
            batches,
            n_iter=args.n_iter,
            n_runs=args.n_runs,
            seed=args.seed,
            n_grid=args.n_grid,
        )
        logging.info("density: %d HVPs, %.1fs", result.n_hvp, result.seconds)
        frame = pd.DataFrame(
            {
                **base,
                "eigenvalue": result.grid,
                "density": result.density,
                "sigma": result.sigma,
                "n_hvp": result.n_hvp,
                "seconds": result.seconds,
            }
        )[COLUMNS]
    config = {k: v for k, v in vars(args).items() if k not in ("output", "weights")}
    write_table(frame, args.output, provenance(config=config, device=device, weights=args.weights))
    return 0


if __name__ == "__main__":
    sys.exit(main())
