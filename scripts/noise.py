"""SGD gradient-noise geometry at every checkpoint of one run: Tr Sigma, Tr(H Sigma), anisotropy.

One job per run (not per checkpoint): the data are loaded once for all of its epochs.
"""

import argparse
import logging
import math
import sys
from pathlib import Path

import pandas as pd
import torch.nn.functional as F

from lossgeom.noise import noise_geometry
from lossgeom.provenance import provenance, write_table
from lossgeom.runs import (
    add_common_arguments,
    add_required,
    load_weights,
    setup,
    subset_batches,
    training_subset,
)
from lossgeom.tables import NOISE_QUANTITIES, columns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    add_required(
        parser, weights_dir=(str, "the run's weights folder"),
        epochs=(int, "epoch0.pt to epoch<N>.pt"),
        subset=(int, "samples whose gradients define Sigma"), subset_seed=int,
        hessian_subset=(int, "samples defining H"), hessian_seed=int, top_k=int,
        trace_matvecs=int, tol=float, chunk_size=int, seed=(int, "seeds Lanczos and Hutch++"),
        output=str,
    )  # fmt: skip
    args = parser.parse_args()
    if args.subset <= args.top_k:
        parser.error(f"--subset ({args.subset}) must exceed --top-k ({args.top_k})")
    paths = [Path(args.weights_dir) / f"epoch{epoch}.pt" for epoch in range(args.epochs + 1)]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        parser.error(f"weight files missing: {', '.join(missing)}")
    device, data = setup(args)
    x, y = training_subset(data, args.subset, args.subset_seed)
    batches = subset_batches(data, args.hessian_subset, args.hessian_seed, args.chunk_size)
    rows, extra, hashes = [], {}, {}
    for epoch, path in enumerate(paths):
        model, meta = load_weights(path, device)
        hashes[str(path)] = meta.get("config_hash")
        base = {"experiment": meta["experiment"], "seed": meta["seed"], "epoch": meta["epoch"]}
        if model is None:
            logging.warning("%s; writing NaN", meta["skipped"])
            rows += [{**base, "quantity": q, "value": math.nan, "stderr": math.nan}
                     for q in NOISE_QUANTITIES]  # fmt: skip
            continue
        result = noise_geometry(model, F.cross_entropy, x, y, batches, k=args.top_k,
                                trace_matvecs=args.trace_matvecs, tol=args.tol, seed=args.seed,
                                chunk_size=args.chunk_size)  # fmt: skip
        logging.info("epoch %s: %s (%d HVPs, %.1fs)", meta["epoch"],
                     {q: round(v, 6) for q, v, _ in result.rows()}, result.n_hvp, result.seconds)  # fmt: skip
        rows += [{**base, "quantity": q, "value": v, "stderr": s} for q, v, s in result.rows()]
        extra[f"epoch{epoch}"] = {
            "dim": result.dim, "n_samples": result.n_samples, "n_hvp": result.n_hvp,
            "seconds": result.seconds,
            "hessian_eigenvalues": result.hessian_eigenvalues.tolist(),
            "sigma_eigenvalues": result.sigma_eigenvalues.tolist(),
        }  # fmt: skip
    config = {k: v for k, v in vars(args).items() if k not in ("output", "weights_dir")}
    record = provenance(config=config, device=device, weights_dir=args.weights_dir,
                        weights_config_hashes=hashes, measurements=extra)  # fmt: skip
    write_table(pd.DataFrame(rows, columns=columns("noise")), args.output, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
