"""1D and 2D loss/accuracy slices around one checkpoint, along each kind of direction asked.

All kinds are evaluated in one pass over the data (lossgeom.landscape.slice_records_by_kind),
so the data are loaded and each chunk's first-layer products computed once per checkpoint;
each kind gets its own table and directions file, as separate runs would write them.
"""

import argparse
import logging
import sys
import time

import pandas as pd

from lossgeom.directions import slice_directions
from lossgeom.landscape import slice_records_by_kind
from lossgeom.provenance import load_torch, provenance, save_torch, write_table
from lossgeom.runs import add_common_arguments, load_weights, setup, training_subset

COLUMNS = ["experiment", "seed", "directions", "slice", "alpha", "beta", "split", "metric", "value"]
KINDS = ["random", "filter", "hessian"]


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, required=True)
    parser.add_argument("--eigenvectors", help="curvature vectors file (kind hessian only)")
    parser.add_argument("--direction-seed", type=int, required=True)
    parser.add_argument("--include-bias", action=argparse.BooleanOptionalAction, required=True)
    parser.add_argument("--resolution", type=int, required=True, help="2D points per axis")
    parser.add_argument("--resolution-1d", type=int, required=True)
    parser.add_argument("--span", type=float, required=True)
    parser.add_argument("--subset", type=int, required=True)
    parser.add_argument("--subset-seed", type=int, required=True)
    parser.add_argument("--chunk-size", type=int, required=True, help="samples per chunk")
    parser.add_argument("--outputs", nargs="+", required=True, help="a table per kind")
    parser.add_argument("--directions-outs", nargs="+", required=True, help="a file per kind")
    args = parser.parse_args()
    if not len(args.kinds) == len(args.outputs) == len(args.directions_outs):
        parser.error("--kinds, --outputs and --directions-outs need one entry per kind")
    if len(set(args.kinds)) < len(args.kinds):
        parser.error("--kinds names a kind twice")
    if "hessian" in args.kinds and not args.eigenvectors:
        parser.error("--eigenvectors is required for kind hessian")
    return args


def main() -> int:
    args = parse_arguments()
    device, data = setup(args)
    model, meta = load_weights(args.weights, device)
    pairs, seeds, records = {}, {}, {}
    if model is None:
        logging.warning("%s; writing empty tables", meta["skipped"])
    else:
        for kind in args.kinds:
            vectors = None
            if kind == "hessian":
                vectors = load_torch(args.eigenvectors, map_location="cpu")["vectors"]
            try:
                pair, seeds[kind] = slice_directions(kind, model, args.direction_seed,
                                                     args.include_bias, vectors)  # fmt: skip
            except ValueError as error:
                print(f"error: {args.eigenvectors}: {error}", file=sys.stderr)
                return 1
            pairs[kind] = [d.to(device) for d in pair]
        train = training_subset(data, args.subset, args.subset_seed)
        start = time.perf_counter()
        records = slice_records_by_kind(model, pairs, args.resolution, args.resolution_1d,
                                        args.span, {"train": train, "test": (data.test_x, data.test_y)},
                                        args.chunk_size)  # fmt: skip
        logging.info("%s: %d slices each in %.1fs", ", ".join(args.kinds),
                     len(records[args.kinds[0]]) // 2, time.perf_counter() - start)  # fmt: skip
    for kind, output, directions_out in zip(
        args.kinds, args.outputs, args.directions_outs, strict=True
    ):
        base = {"experiment": meta["experiment"], "seed": meta["seed"], "directions": kind}
        frames = [pd.DataFrame({**base, **record}) for record in records.get(kind, [])]
        frame = pd.concat(frames)[COLUMNS] if frames else pd.DataFrame(columns=COLUMNS)
        hidden = ("outputs", "directions_outs", "weights", "kinds")
        config = {k: v for k, v in vars(args).items() if k not in hidden}
        config["kind"] = kind  # each table's provenance names its own kind, as before
        if kind != "hessian":
            config["eigenvectors"] = None
        record = provenance(config=config, device=device, weights=args.weights,
                            direction_seeds=seeds.get(kind))  # fmt: skip
        directions = pairs.get(kind)
        save_torch({"directions": None if directions is None else [d.cpu() for d in directions],
                    "seeds": seeds.get(kind), "kind": kind, "provenance": record},
                   directions_out)  # fmt: skip
        write_table(frame, output, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
