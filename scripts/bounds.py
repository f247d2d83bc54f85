"""Generalisation measures and PAC-Bayes-kl certificates for one checkpoint.

Writes the table of :func:`lossgeom.certificates.bound_checkpoint` for one (experiment, seed,
epoch) and the terms behind each value; --final-epoch adds the optimised posterior. The flags of
the config's ``bounds`` section are all required (see workflow/schemas/config.schema.yaml).
Every argument is checked before any sampling; the tables are written only when complete.
"""

import argparse
import math
import sys

from lossgeom import certificates
from lossgeom.bounds import BoundError
from lossgeom.data import md5sum
from lossgeom.provenance import provenance, write_table
from lossgeom.runs import (
    add_common_arguments,
    check_same_architecture,
    json_argument,
    load_weights,
    setup,
    training_subset,
)


def checked(convert, accept, what):
    """An argparse type: ``convert`` the text, then refuse values that ``accept`` rejects."""

    def parse(text: str):
        value = convert(text)
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must {what}, got {value}")
        return value

    parse.__name__ = convert.__name__  # argparse's "invalid float value"
    return parse


PROBABILITY = checked(float, lambda v: 0 < v < 1, "lie in the open interval (0, 1)")
POSITIVE = checked(float, lambda v: 0 < v < math.inf, "be positive and finite")
COUNT = checked(int, lambda v: v >= 1, "be a positive integer")
NATURAL = checked(int, lambda v: v >= 0, "be a non-negative integer")
MOMENTUM = checked(float, lambda v: 0 <= v < 1, "lie in [0, 1)")
BOUNDS_FLAGS = {  # the keys of the configuration's bounds section but track_seed
    "eps": POSITIVE, "delta": PROBABILITY, "delta_prime": PROBABILITY, "mc_samples": COUNT,
    "epoch_mc_samples": COUNT, "sample_convergence": ["trials", "passes"], "select_samples": COUNT,
    "sigma_min": POSITIVE, "sigma_max": POSITIVE, "sigma_grid": COUNT, "seed": NATURAL,
    "chunk_size": COUNT, "jiang_target": PROBABILITY, "jiang_upper": POSITIVE, "jiang_steps": COUNT,
    "jiang_samples": COUNT, "jiang_eps": POSITIVE, "prior": ["data_dependent", "init"],
    "prior_fraction": PROBABILITY, "prior_epochs": COUNT, "split_seed": NATURAL,
    "posterior_sigma": POSITIVE, "objective": ["quad", "classic"], "posterior_epochs": NATURAL,
    "posterior_lr": POSITIVE, "posterior_momentum": MOMENTUM, "posterior_batch_size": COUNT,
    "pmin": PROBABILITY,
}  # fmt: skip


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--weights", required=True, help="the checkpoint to bound")
    parser.add_argument("--initial", required=True, help="the same run's epoch-0 weights (w0)")
    parser.add_argument("--curvature", required=True, help="curvature CSV of the checkpoint")
    parser.add_argument("--subset", type=COUNT, required=True, help="the curvature subset's size")
    parser.add_argument("--subset-seed", type=int, required=True)
    for key, kind in BOUNDS_FLAGS.items():
        typed = {"choices": kind} if isinstance(kind, list) else {"type": kind}
        parser.add_argument("--" + key.replace("_", "-"), required=True, **typed)
    final = "m = mc-samples and the optimised posterior (else m = epoch-mc-samples)"
    parser.add_argument(
        "--final-epoch", action=argparse.BooleanOptionalAction, required=True, help=final
    )
    parser.add_argument("--spec", type=json_argument, required=True, help="JSON experiment spec")
    parser.add_argument("--checkpoint-dir", required=True, help="the prior network's checkpoints")
    parser.add_argument("--output", required=True, help="bounds CSV")
    parser.add_argument("--terms", required=True, help="CSV of every term behind each value")
    args = parser.parse_args()
    try:
        args.settings = certificates.Settings.from_mapping(vars(args))
    except BoundError as error:
        parser.error(str(error))
    return args


def main() -> int:
    args = parse_arguments()
    device, data = setup(args)
    model, meta = load_weights(args.weights, device)
    initial, meta0 = load_weights(args.initial, device)
    try:  # every check comes before any sampling
        check_same_architecture(meta["model"], meta0["model"], "checkpoint and initial weights")
        certificates.check_inputs(model, meta, meta0, args.initial, args.settings)
        trace = certificates.hessian_trace(args.curvature, meta["epoch"])
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    identity = {"dataset": args.dataset, "data_md5": md5sum(args.data)}
    recipe = certificates.PriorRecipe(
        args.spec, meta["model"], int(meta["seed"]), args.checkpoint_dir, identity
    )
    subset = training_subset(data, args.subset, args.subset_seed)
    table = certificates.bound_checkpoint(
        model, initial, data, subset, trace, args.settings, recipe, device
    )
    rows, terms = table.frames({k: meta[k] for k in ("experiment", "seed", "epoch")})
    hidden = ("output", "terms", "weights", "settings")
    config = {k: v for k, v in vars(args).items() if k not in hidden}
    grid = list(args.settings.grid)
    record = provenance(config=config, device=device, weights=args.weights, prior_scale_grid=grid)
    write_table(terms, args.terms, record)
    write_table(rows, args.output, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
