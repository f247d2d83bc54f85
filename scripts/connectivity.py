"""Mode connectivity between two seeds' final weights: linear, aligned and Bezier paths.

Barriers (Frankle et al. 2020), weight matching (Ainsworth et al. 2022), Bezier curves and
their plane (Garipov et al. 2018): :func:`lossgeom.connectivity.measure_connectivity`.
"""

import argparse
import logging
import sys

import pandas as pd

from lossgeom.connectivity import measure_connectivity, permutation_spec
from lossgeom.provenance import provenance, save_torch, write_table
from lossgeom.runs import (
    add_common_arguments,
    check_same_architecture,
    load_weights,
    setup,
    training_subset,
)

PAIR = ["experiment", "seed_a", "seed_b"]
PATH_COLUMNS = [*PAIR, "path", "t", "split", "metric", "value"]
BARRIER_COLUMNS = [*PAIR, "path", "split", "metric", "barrier"]
PLANE_COLUMNS = [*PAIR, "u", "v", "split", "metric", "value", "bend_u", "bend_v"]
OUTPUTS = ("paths", "barriers", "plane", "bends")
# The ``connectivity:`` config keys by type: each is a required flag (``_`` -> ``-``) and an
# argument of measure_connectivity.
SETTINGS = {
    int: "n_points curve_points curve_epochs curve_batch_size curve_seed plane_resolution",
    float: "extrapolate curve_lr curve_momentum plane_margin",
    str: "curve_optimizer",
    bool: "aligned_curve",
}
OTHER = {int: "subset subset_seed", str: "weights_a weights_b checkpoint_dir " + " ".join(OUTPUTS)}
CONFIG_KEYS = [name for names in SETTINGS.values() for name in names.split()]


def parse_arguments() -> argparse.Namespace:
    """Every flag the workflow passes is required: the common ones and those above."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    for kind, names in [*SETTINGS.items(), *OTHER.items()]:
        for name in names.split():
            flag = "--" + name.replace("_", "-")
            if kind is bool:
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, required=True)
            elif name == "curve_optimizer":
                parser.add_argument(flag, choices=["sgd", "adam"], required=True)
            else:
                parser.add_argument(flag, type=kind, required=True)
    args = parser.parse_args()
    if min(args.n_points, args.curve_points, args.plane_resolution + 1) < 3 or args.extrapolate < 0:
        parser.error("n-points, curve-points >= 3, plane-resolution >= 2, extrapolate >= 0 needed")
    return args


def tidy(base: dict, records: list[dict], columns: list[str]) -> pd.DataFrame:
    """One table of records (arrays or scalars) with the pair's identity in front."""
    return pd.concat([pd.DataFrame({**base, **record}) for record in records])[columns]


def main() -> int:
    args = parse_arguments()
    device, data = setup(args)
    model_a, meta_a = load_weights(args.weights_a, device)
    model_b, meta_b = load_weights(args.weights_b, device)
    skipped = [meta["skipped"] for meta in (meta_a, meta_b) if "skipped" in meta]
    if skipped:  # a pair with a diverged or failed run has nothing to connect: empty tables
        logging.warning("skipping the pair: %s", "; ".join(skipped))
        record = provenance(config={"skipped": skipped}, device=device)
        save_torch({"bends": {}, "bend_uv": {}, "provenance": record}, args.bends)
        for columns, path in ((PLANE_COLUMNS, args.plane), (BARRIER_COLUMNS, args.barriers),
                              (PATH_COLUMNS, args.paths)):  # fmt: skip
            write_table(pd.DataFrame(columns=columns), path, record)
        return 0
    try:  # both checks come before any training, so bad endpoints cost nothing
        check_same_architecture(meta_a["model"], meta_b["model"], "connectivity endpoints")
        permutation_spec(model_a)  # names the reason for architectures it cannot align
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    base = {"experiment": meta_a["experiment"], "seed_a": meta_a["seed"], "seed_b": meta_b["seed"]}
    subset = training_subset(data, args.subset, args.subset_seed)
    splits = {"train": subset, "test": (data.test_x, data.test_y)}
    # The bends are trained on the full training set; paths are evaluated on the subset and
    # the test set, with BatchNorm statistics (where the model has any) recomputed on the subset.
    result = measure_connectivity(
        model_a,
        model_b,
        data.train_x,
        data.train_y,
        splits,
        subset[0],
        checkpoint_dir=args.checkpoint_dir,
        **{name: getattr(args, name) for name in CONFIG_KEYS},
    )

    bends, bend_uv = result.bends, result.basis.bend_uv
    config = {k: v for k, v in vars(args).items() if k not in OUTPUTS}
    record = provenance(
        config=config,
        device=device,
        bend_uv=bend_uv,
        curve_losses={k: r.losses for k, r in bends.items()},
        curve_checkpoints={k: str(r.checkpoints) for k, r in bends.items()},
    )
    bend_vectors = {k: r.bend.cpu() for k, r in bends.items()}
    save_torch({"bends": bend_vectors, "bend_uv": bend_uv, "provenance": record}, args.bends)
    write_table(tidy(base, result.plane, PLANE_COLUMNS), args.plane, record)
    barriers = pd.DataFrame([{**base, **r} for r in result.barriers], columns=BARRIER_COLUMNS)
    write_table(barriers, args.barriers, record)
    write_table(tidy(base, result.paths, PATH_COLUMNS), args.paths, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
