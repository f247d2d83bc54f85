"""Top-k Hessian eigenvalues and the Hessian trace at one checkpoint."""

import argparse
import logging
import math
import sys

import pandas as pd
import torch.nn.functional as F

from lossgeom import hessian
from lossgeom.provenance import provenance, save_torch, write_table
from lossgeom.runs import add_common_arguments, load_weights, setup, subset_batches

COLUMNS = ["experiment", "seed", "epoch", "quantity", "value", "stderr", "n_hvp", "seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--subset", type=int, required=True, help="training samples used")
    parser.add_argument("--subset-seed", type=int, required=True)
    parser.add_argument("--chunk-size", type=int, required=True)
    parser.add_argument("--top-k", type=int, required=True)
    parser.add_argument("--method", choices=["lanczos", "power"], required=True)
    parser.add_argument("--tol", type=float, required=True)
    parser.add_argument("--trace-method", choices=["krylov", "hutchpp", "hutchinson"],
                        required=True,
                        help="krylov: Hutchinson on the remainder of the eigenvalues' Lanczos "
                             "basis (lanczos only)")  # fmt: skip
    parser.add_argument("--trace-matvecs", type=int, required=True,
                        help="the trace's own products (krylov: the probes)")  # fmt: skip
    parser.add_argument("--seed", type=int, required=True, help="seeds the estimators")
    parser.add_argument("--output", required=True, help="CSV to write")
    parser.add_argument("--vectors", required=True, help="eigenvector file to write")
    args = parser.parse_args()
    minimum = 6 if args.trace_method == "hutchpp" else 2
    if args.top_k < 1 or args.trace_matvecs < minimum or args.chunk_size < 1:
        parser.error(
            f"top-k >= 1, trace-matvecs >= {minimum} ({args.trace_method}) and chunk-size >= 1 are required"
        )
    if args.trace_method == "krylov" and args.method != "lanczos":
        parser.error("trace-method krylov deflates the Lanczos basis: it needs --method lanczos")
    device, data = setup(args)
    model, meta = load_weights(args.weights, device)
    base = {"experiment": meta["experiment"], "seed": meta["seed"], "epoch": meta["epoch"]}

    def row(quantity, value, stderr=math.nan, n_hvp=0, seconds=0.0):
        return {**base, "quantity": quantity, "value": value, "stderr": stderr, "n_hvp": n_hvp,
                "seconds": seconds}  # fmt: skip

    if model is None:
        logging.warning("%s; writing NaN", meta["skipped"])
        quantities = [f"eig{i + 1}" for i in range(args.top_k)] + ["trace"]
        rows, eig, vectors = [row(q, math.nan) for q in quantities], None, None
    else:
        batches = subset_batches(data, args.subset, args.subset_seed, args.chunk_size)
        if args.trace_method == "krylov":  # one graph, one Lanczos run for both
            eig, tr = hessian.top_eigenvalues_and_trace(
                model, F.cross_entropy, batches, k=args.top_k, tol=args.tol,
                n_probes=args.trace_matvecs, seed=args.seed)  # fmt: skip
        else:
            eig = hessian.top_eigenvalues(model, F.cross_entropy, batches, k=args.top_k,
                                          tol=args.tol, method=args.method, seed=args.seed)  # fmt: skip
            tr = hessian.trace(model, F.cross_entropy, batches, n_matvecs=args.trace_matvecs,
                               method=args.trace_method, seed=args.seed)  # fmt: skip
        logging.info("eigenvalues %s (%d HVPs, %.1fs, converged=%s)", eig.values.tolist(),
                     eig.n_hvp, eig.seconds, eig.converged)  # fmt: skip
        rows = [row(f"eig{i + 1}", value, n_hvp=eig.n_hvp, seconds=eig.seconds)
                for i, value in enumerate(eig.values.tolist())]  # fmt: skip
        logging.info("trace %.4g +- %.2g (%d HVPs, %.1fs)", tr.estimate, tr.stderr, tr.n_hvp,
                     tr.seconds)  # fmt: skip
        rows.append(row("trace", tr.estimate, tr.stderr, tr.n_hvp, tr.seconds))
        vectors = eig.vectors.float().cpu()
    config = {k: v for k, v in vars(args).items() if k not in ("output", "vectors", "weights")}
    record = provenance(
        config=config,
        device=device,
        weights=args.weights,
        weights_config_hash=meta.get("config_hash"),
    )
    values = None if eig is None else eig.values
    save_torch({"vectors": vectors, "values": values, **base, "provenance": record}, args.vectors)
    write_table(pd.DataFrame(rows, columns=COLUMNS), args.output, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
