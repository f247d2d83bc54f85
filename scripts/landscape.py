"""1D and 2D loss/accuracy slices around one checkpoint along one kind of direction."""

import argparse
import logging
import sys
import time

import pandas as pd

from lossgeom.directions import slice_directions
from lossgeom.landscape import slice_records
from lossgeom.provenance import load_torch, provenance, save_torch, write_table
from lossgeom.runs import add_common_arguments, load_weights, setup, training_subset

COLUMNS = ["experiment", "seed", "directions", "slice", "alpha", "beta", "split", "metric", "value"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--kind", choices=["random", "filter", "hessian"], required=True)
    parser.add_argument("--eigenvectors", help="curvature vectors file (kind hessian only)")
    parser.add_argument("--direction-seed", type=int, required=True)
    parser.add_argument("--include-bias", action=argparse.BooleanOptionalAction, required=True)
    parser.add_argument("--resolution", type=int, required=True, help="2D points per axis")
    parser.add_argument("--resolution-1d", type=int, required=True)
    parser.add_argument("--span", type=float, required=True)
    parser.add_argument("--subset", type=int, required=True)
    parser.add_argument("--subset-seed", type=int, required=True)
    parser.add_argument("--chunk-size", type=int, required=True, help="samples per chunk")
    parser.add_argument("--output", required=True)
    parser.add_argument("--directions-out", required=True)
    args = parser.parse_args()
    if args.kind == "hessian" and not args.eigenvectors:
        parser.error("--eigenvectors is required for --kind hessian")
    device, data = setup(args)
    model, meta = load_weights(args.weights, device)
    base = {"experiment": meta["experiment"], "seed": meta["seed"], "directions": args.kind}
    frames, directions, seeds = [], None, None
    if model is None:
        logging.warning("%s; writing an empty table", meta["skipped"])
    else:
        vectors = None
        if args.kind == "hessian":
            vectors = load_torch(args.eigenvectors, map_location="cpu")["vectors"]
        try:
            directions, seeds = slice_directions(args.kind, model, args.direction_seed,
                                                 args.include_bias, vectors)  # fmt: skip
        except ValueError as error:
            print(f"error: {args.eigenvectors}: {error}", file=sys.stderr)
            return 1
        directions = [d.to(device) for d in directions]
        train = training_subset(data, args.subset, args.subset_seed)
        start = time.perf_counter()
        records = slice_records(model, directions, args.resolution, args.resolution_1d, args.span,
                                {"train": train, "test": (data.test_x, data.test_y)},
                                args.chunk_size)  # fmt: skip
        logging.info("%s: %d slices in %.1fs", args.kind, len(records) // 2,
                     time.perf_counter() - start)  # fmt: skip
        frames = [pd.DataFrame({**base, **record}) for record in records]
    frame = pd.concat(frames)[COLUMNS] if frames else pd.DataFrame(columns=COLUMNS)
    config = {
        k: v for k, v in vars(args).items() if k not in ("output", "directions_out", "weights")
    }
    record = provenance(config=config, device=device, weights=args.weights, direction_seeds=seeds)
    save_torch(
        {
            "directions": None if directions is None else [d.cpu() for d in directions],
            "seeds": seeds,
            "kind": args.kind,
            "provenance": record,
        },
        args.directions_out,
    )
    write_table(frame, args.output, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
