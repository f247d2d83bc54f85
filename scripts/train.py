"""Train one (experiment, seed) with per-epoch checkpoints; write metrics and weights."""

import argparse
import logging
import os
import sys
from pathlib import Path

import pandas as pd

from lossgeom.data import get_dataset, md5sum
from lossgeom.provenance import provenance, write_json, write_table
from lossgeom.runs import add_common_arguments, json_argument, save_weights, setup
from lossgeom.training import TrainingCheck, train


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--experiment", required=True)
    parser.add_argument(
        "--spec",
        type=json_argument,
        required=True,
        help="JSON: {model, optimizer, epochs, batch_size}",
    )
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument(
        "--checkpoint-dir", required=True, help="resumable state (kept by Snakemake)"
    )
    parser.add_argument("--metrics", required=True, help="tidy metrics CSV to write")
    parser.add_argument("--weights-dir", required=True, help="folder for epoch{e}.pt weight files")
    parser.add_argument("--run-info", required=True, help="JSON with status and provenance")
    parser.add_argument("--max-loss-ratio", type=float, required=True, help="see TrainingCheck")
    parser.add_argument("--chance-margin", type=float, required=True, help="see TrainingCheck")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars (tests)")
    args = parser.parse_args()
    device, data = setup(args)
    spec = args.spec
    # Simulated hard kill for the resume tests: the process dies right after a checkpoint.
    crash_after = os.environ.get("LOSSGEOM_CRASH_AFTER_EPOCH")

    def after_checkpoint(epoch: int) -> None:
        if crash_after is not None and epoch == int(crash_after):
            logging.error(
                "LOSSGEOM_CRASH_AFTER_EPOCH=%s is set: exiting as if killed (a test hook)",
                crash_after,
            )
            logging.shutdown()
            os._exit(137)

    # The data file's MD5 and the dataset (with its normalisation) enter the run's hash:
    # checkpoints made on other data are never resumed.
    info = get_dataset(args.dataset)
    identity = {
        "dataset": info.name,
        "mean": info.mean,
        "std": info.std,
        "data_md5": md5sum(args.data),
    }
    result = train(
        spec,
        data,
        args.seed,
        args.checkpoint_dir,
        device=device,
        progress=not args.no_progress,
        after_checkpoint=after_checkpoint,
        identity=identity,
        check=TrainingCheck(args.max_loss_ratio, args.chance_margin),
    )
    logging.info(
        "run %s seed %d: %s %s in %.1fs (resumed from %s)",
        args.experiment,
        args.seed,
        result.status,
        result.reason,
        result.seconds,
        result.resumed_from,
    )
    weights_dir = Path(args.weights_dir)
    for epoch in range(spec["epochs"] + 1):
        save_weights(
            weights_dir / f"epoch{epoch}.pt",
            result.states.get(epoch),
            spec["model"],
            experiment=args.experiment,
            seed=args.seed,
            epoch=epoch,
            config_hash=result.config_hash,
            status=result.status,
            reason=result.reason,
        )
    frame = pd.DataFrame(result.rows)
    frame.insert(0, "seed", args.seed)
    frame.insert(0, "experiment", args.experiment)
    record = provenance(config=spec, device=device, seed=args.seed, experiment=args.experiment)
    write_table(
        frame[["experiment", "seed", "epoch", "split", "metric", "value"]], args.metrics, record
    )
    write_json(
        {
            **record,
            "status": result.status,
            "reason": result.reason,
            "diverged_epoch": result.diverged_epoch,
            "resumed_from": result.resumed_from,
            "seconds": result.seconds,
            "run_config_hash": result.config_hash,
        },
        args.run_info,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
