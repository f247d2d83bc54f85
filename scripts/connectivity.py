"""Mode connectivity between two seeds' final weights: linear, aligned and Bezier paths."""

import argparse
import logging
import sys

import numpy as np
import pandas as pd
import torch

from lossgeom.connectivity import (
    aligned_model,
    barrier,
    bezier_path,
    evaluate_points,
    has_batchnorm,
    linear_path,
    permutation_spec,
    train_bezier,
)
from lossgeom.landscape import evaluate_slice
from lossgeom.models import flat_parameters
from lossgeom.provenance import provenance, save_torch, write_table
from lossgeom.runs import (
    add_common_arguments,
    check_same_architecture,
    load_weights,
    setup,
    training_subset,
)

PATH_COLUMNS = ["experiment", "seed_a", "seed_b", "path", "t", "split", "metric", "value"]
BARRIER_COLUMNS = ["experiment", "seed_a", "seed_b", "path", "split", "metric", "barrier"]
PLANE_COLUMNS = ["experiment", "seed_a", "seed_b", "u", "v", "split", "metric", "value", "bend_u", "bend_v"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--weights-a", required=True)
    parser.add_argument("--weights-b", required=True)
    parser.add_argument("--subset", type=int, required=True)
    parser.add_argument("--subset-seed", type=int, required=True)
    parser.add_argument("--n-points", type=int, required=True, help="points on the linear paths")
    parser.add_argument("--extrapolate", type=float, required=True, help="t from -e to 1 + e")
    parser.add_argument("--curve-points", type=int, required=True)
    parser.add_argument("--curve-epochs", type=int, required=True)
    parser.add_argument("--curve-optimizer", choices=["sgd", "adam"], default="sgd")
    parser.add_argument("--curve-lr", type=float, required=True)
    parser.add_argument("--curve-momentum", type=float, required=True)
    parser.add_argument("--curve-batch-size", type=int, required=True)
    parser.add_argument("--curve-seed", type=int, required=True)
    parser.add_argument("--aligned-curve", action="store_true", help="also a curve between a and aligned b")
    parser.add_argument("--plane-resolution", type=int, required=True)
    parser.add_argument("--plane-margin", type=float, required=True)
    parser.add_argument("--checkpoint-dir", required=True, help="resumable bend training state")
    parser.add_argument("--paths", required=True)
    parser.add_argument("--barriers", required=True)
    parser.add_argument("--plane", required=True)
    parser.add_argument("--bends", required=True)
    args = parser.parse_args()
    if args.n_points < 3 or args.curve_points < 3 or args.extrapolate < 0 or args.plane_resolution < 2:
        parser.error("n-points and curve-points >= 3, extrapolate >= 0 and plane-resolution >= 2 are required")
    device, data = setup(args)
    model_a, meta_a = load_weights(args.weights_a, device)
    model_b, meta_b = load_weights(args.weights_b, device)
    for model, path in ((model_a, args.weights_a), (model_b, args.weights_b)):
        if model is None:
            print(f"error: {path}: that run diverged; it has no final weights to connect", file=sys.stderr)
            return 1
    try:  # both checks come before any training, so bad endpoints cost nothing
        check_same_architecture(meta_a["model"], meta_b["model"], "connectivity endpoints")
        permutation_spec(model_a)  # names the reason for architectures it cannot align
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    base = {"experiment": meta_a["experiment"], "seed_a": meta_a["seed"], "seed_b": meta_b["seed"]}
    splits = {"train": training_subset(data, args.subset, args.subset_seed), "test": (data.test_x, data.test_y)}
    a, b = flat_parameters(model_a), flat_parameters(model_b)
    aligned = flat_parameters(aligned_model(model_a, model_b))
    # The bend is trained on the full training set; paths are evaluated on the subset and test set.
    x_train, y_train = data.train_x, data.train_y
    # BatchNorm statistics, where the model has any, are recomputed per point on the subset.
    statistics = splits["train"][0]

    ts = np.linspace(-args.extrapolate, 1 + args.extrapolate, args.n_points)
    ts = np.unique(np.r_[ts, 0.0, 1.0])  # the barrier needs the endpoints exactly
    curve_ts = np.linspace(0, 1, args.curve_points)
    bends = {"bezier": train_bezier(model_a, a, b, x_train, y_train, args.curve_epochs, args.curve_lr,
                                    args.curve_momentum, args.curve_batch_size, args.curve_seed,
                                    f"{args.checkpoint_dir}/bezier", args.curve_optimizer)}
    if args.aligned_curve:
        bends["aligned_bezier"] = train_bezier(model_a, a, aligned, x_train, y_train, args.curve_epochs,
                                               args.curve_lr, args.curve_momentum, args.curve_batch_size,
                                               args.curve_seed, f"{args.checkpoint_dir}/aligned_bezier",
                                               args.curve_optimizer)
    paths, barriers = [], []
    for split, (x, y) in splits.items():
        evaluated = {
            "linear": (ts, linear_path(model_a, a, b, ts, x, y, statistics)),
            "aligned": (ts, linear_path(model_a, a, aligned, ts, x, y, statistics)),
        }
        for name, result in bends.items():
            end = aligned if name == "aligned_bezier" else b
            evaluated[name] = (curve_ts, bezier_path(model_a, a, result.bend, end, curve_ts, x, y, statistics))
        for name, (points, (loss, accuracy)) in evaluated.items():
            for metric, values in (("loss", loss), ("error", 1 - accuracy)):
                paths.append(pd.DataFrame({**base, "path": name, "t": points, "split": split,
                                           "metric": metric, "value": values}))
                barriers.append({**base, "path": name, "split": split, "metric": metric,
                                 "barrier": barrier(points, values)})
        logging.info("%s barriers: %s", split, {r["path"]: round(r["barrier"], 4) for r in barriers
                                                 if r["split"] == split and r["metric"] == "loss"})

    # The plane through a, b and the bend (Garipov et al.): orthonormal u along b - a, v along
    # the bend's offset from that line; coordinates in units of |b - a|.
    bend = bends["bezier"].bend
    e1 = b - a
    scale = float(e1.norm())
    u_dir = e1 / scale
    offset = bend - a
    v_dir = offset - torch.dot(offset, u_dir) * u_dir
    v_dir = v_dir / v_dir.norm()
    bend_uv = (float(torch.dot(offset, u_dir)) / scale, float(torch.dot(offset, v_dir)) / scale)
    m = args.plane_margin
    us = np.linspace(-m, 1 + m, args.plane_resolution)
    vs = np.linspace(min(0.0, bend_uv[1]) - m, max(0.0, bend_uv[1]) + m, args.plane_resolution)
    grid = np.stack(np.meshgrid(us, vs, indexing="ij"), -1).reshape(-1, 2)
    planes = []
    for split, (x, y) in splits.items():
        if has_batchnorm(model_a):
            vectors = [a + scale * (float(p) * u_dir + float(q) * v_dir) for p, q in grid]
            loss, accuracy = evaluate_points(model_a, vectors, x, y, statistics)
        else:
            loss, accuracy = evaluate_slice(model_a, [u_dir * scale, v_dir * scale], grid, x, y)
        for metric, values in (("loss", loss), ("error", 1 - accuracy)):
            planes.append(pd.DataFrame({**base, "u": grid[:, 0], "v": grid[:, 1], "split": split,
                                        "metric": metric, "value": values,
                                        "bend_u": bend_uv[0], "bend_v": bend_uv[1]}))

    config = {k: v for k, v in vars(args).items() if k not in ("paths", "barriers", "plane", "bends")}
    record = provenance(config=config, device=device, bend_uv=bend_uv,
                        curve_losses={k: r.losses for k, r in bends.items()})
    save_torch({"bends": {k: r.bend.cpu() for k, r in bends.items()}, "bend_uv": bend_uv,
                "provenance": record}, args.bends)
    write_table(pd.concat(planes)[PLANE_COLUMNS], args.plane, record)
    write_table(pd.DataFrame(barriers, columns=BARRIER_COLUMNS), args.barriers, record)
    write_table(pd.concat(paths)[PATH_COLUMNS], args.paths, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
