"""The architecture study for one architecture: train every seed, measure its geometry.

Writes the architecture's rows of the study's tables (lossgeom.architectures): trainability and
final spectrum per seed, the spectrum at every epoch, the densities at the first and last
epoch, the barriers between seeds and the non-convexity map.
"""

import argparse
import json
import logging
import sys

import pandas as pd

from lossgeom.architectures import StudySettings, measure_architecture
from lossgeom.data import Dataset, get_dataset, md5sum, subset_indices
from lossgeom.models import ModelConfigError, build_model
from lossgeom.provenance import provenance, write_table
from lossgeom.runs import add_common_arguments, add_required, setup, training_subset
from lossgeom.tables import columns

OUTPUTS = {
    "output": "architectures",
    "curvature_output": "architecture_curvature",
    "density_output": "architecture_density",
    "barriers_output": "architecture_barriers",
    "nonconvexity_output": "nonconvexity",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    add_required(
        parser, name=(str, "the architecture's name"),
        spec=(json, "JSON: model, optimizer, epochs, batch_size"),
        settings=(json, "JSON: lossgeom.architectures.StudySettings fields"),
        train_subset=int, test_subset=int, subset_seed=int, checkpoint_dir=str,
        **{key: str for key in OUTPUTS},
    )  # fmt: skip
    args = parser.parse_args()
    try:
        settings = StudySettings(**{k: tuple(v) if isinstance(v, list) else v
                                    for k, v in args.settings.items()})  # fmt: skip
    except TypeError as error:
        parser.error(f"--settings: {error}")
    try:  # the model is checked before the data are read
        info = get_dataset(args.dataset)
        build_model({"input_dim": info.input_dim, "num_classes": info.num_classes,
                     **args.spec["model"]})  # fmt: skip
    except (ModelConfigError, KeyError, TypeError) as error:
        parser.error(f"--spec: {error}")
    device, data = setup(args)
    info = get_dataset(args.dataset)
    x, y = training_subset(data, args.train_subset, args.subset_seed)
    test = subset_indices(data.test_x.shape[0], args.test_subset, args.subset_seed)
    test = test.to(data.test_x.device)
    subset = Dataset(x, y, data.test_x[test], data.test_y[test], name=data.name)
    spec = dict(args.spec)
    spec["model"] = {"input_dim": info.input_dim, "num_classes": info.num_classes, **spec["model"]}
    identity = {"dataset": info.name, "data_md5": md5sum(args.data),
                "train_subset": args.train_subset, "test_subset": args.test_subset,
                "subset_seed": args.subset_seed}  # fmt: skip
    result = measure_architecture(
        args.name, spec, subset, settings, args.checkpoint_dir, device=device, identity=identity,
        log=logging.info,
    )  # fmt: skip
    config = {k: v for k, v in vars(args).items() if k not in OUTPUTS and k != "checkpoint_dir"}
    record = provenance(config=config, device=device, runs=result.runs)
    for key, table in OUTPUTS.items():
        rows = getattr(result, {"output": "rows"}.get(key, key.removesuffix("_output")))
        write_table(pd.DataFrame(rows, columns=columns(table)), getattr(args, key), record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
