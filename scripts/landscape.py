"""1D and 2D loss/accuracy slices around one checkpoint along one kind of direction."""

import argparse
import logging
import sys
import time

import numpy as np
import pandas as pd
import torch

from lossgeom.directions import filter_normalized_direction, random_direction
from lossgeom.landscape import evaluate_slice, grid_1d, grid_2d
from lossgeom.provenance import provenance, save_torch, write_table
from lossgeom.runs import add_common_arguments, load_weights, setup, training_subset

COLUMNS = ["experiment", "seed", "directions", "slice", "alpha", "beta", "split", "metric", "value"]


def make_directions(kind, model, seed, vectors_path, include_bias):
    if kind == "random":
        return [random_direction(model, seed), random_direction(model, seed + 1)], [seed, seed + 1]
    if kind == "filter":
        return ([filter_normalized_direction(model, seed, include_bias),
                 filter_normalized_direction(model, seed + 1, include_bias)], [seed, seed + 1])
    blob = torch.load(vectors_path, map_location="cpu", weights_only=True)
    vectors = blob["vectors"]
    if vectors is None or vectors.shape[0] < 2:
        raise ValueError(f"{vectors_path} holds fewer than two Hessian eigenvectors (curvature.top_k >= 2 needed)")
    return [vectors[0], vectors[1]], None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--kind", choices=["random", "filter", "hessian"], required=True)
    parser.add_argument("--eigenvectors", default=None, help="curvature vectors file (kind hessian)")
    parser.add_argument("--direction-seed", type=int, required=True)
    parser.add_argument("--include-bias", action="store_true", help="filter kind: keep biases")
    parser.add_argument("--resolution", type=int, required=True, help="2D points per axis")
    parser.add_argument("--resolution-1d", type=int, required=True)
    parser.add_argument("--span", type=float, required=True)
    parser.add_argument("--subset", type=int, required=True)
    parser.add_argument("--subset-seed", type=int, required=True)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--output", required=True)
    parser.add_argument("--directions-out", required=True)
    args = parser.parse_args()
    if args.kind == "hessian" and not args.eigenvectors:
        parser.error("--eigenvectors is required for --kind hessian")
    axis_2d, axis_1d = grid_2d(args.resolution, args.span), grid_1d(args.resolution_1d, args.span)
    device, data = setup(args)
    model, meta = load_weights(args.weights, device)
    base = {"experiment": meta["experiment"], "seed": meta["seed"], "directions": args.kind}
    frames, directions, seeds = [], None, None
    if model is None:
        logging.warning("%s: the run diverged; writing an empty table", args.weights)
    else:
        directions, seeds = make_directions(args.kind, model, args.direction_seed, args.eigenvectors,
                                            args.include_bias)
        directions = [d.to(device) for d in directions]
        splits = {"train": training_subset(data, args.subset, args.subset_seed),
                  "test": (data.test_x, data.test_y)}
        zeros = np.zeros_like(axis_1d)
        slices = {"2d": axis_2d, "1d_alpha": np.stack([axis_1d, zeros], 1),
                  "1d_beta": np.stack([zeros, axis_1d], 1)}
        for name, points in slices.items():
            for split, (x, y) in splits.items():
                start = time.perf_counter()
                loss, accuracy = evaluate_slice(model, directions, points, x, y, args.chunk_size)
                logging.info("%s %s %s: %d points in %.1fs", args.kind, name, split, len(points),
                             time.perf_counter() - start)
                for metric, values in (("loss", loss), ("accuracy", accuracy)):
                    frames.append(pd.DataFrame({**base, "slice": name, "alpha": points[:, 0],
                                                "beta": points[:, 1], "split": split,
                                                "metric": metric, "value": values}))
    frame = pd.concat(frames)[COLUMNS] if frames else pd.DataFrame(columns=COLUMNS)
    config = {k: v for k, v in vars(args).items() if k not in ("output", "directions_out", "weights")}
    record = provenance(config=config, device=device, weights=args.weights, direction_seeds=seeds)
    save_torch({"directions": None if directions is None else [d.cpu() for d in directions],
                "seeds": seeds, "kind": args.kind, "provenance": record}, args.directions_out)
    write_table(frame, args.output, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
