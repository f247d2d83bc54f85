"""One job of the architecture study: for each of its architectures, train every seed and
measure its geometry (an MLP family's depths share a job; lossgeom.architectures.study_jobs).

Writes the job's rows of the study's tables (lossgeom.architectures): trainability and final
spectrum per seed, the spectrum at every epoch, the densities at the first and last epoch, the
barriers between seeds and the non-convexity map.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

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
        parser,
        entries=(json, "JSON: {name: {spec: {model, optimizer, epochs, batch_size}, settings: "
                       "lossgeom.architectures.StudySettings fields}} of the job's architectures"),
        train_subset=int, test_subset=int, subset_seed=int,
        checkpoint_dir=(str, "the study's checkpoint folder (one subfolder per architecture)"),
        **{key: str for key in OUTPUTS},
    )  # fmt: skip
    args = parser.parse_args()
    if not isinstance(args.entries, dict) or not args.entries:
        parser.error("--entries: a JSON object of at least one architecture")
    info = get_dataset(args.dataset)
    jobs = {}
    for name, entry in args.entries.items():  # every model is checked before the data are read
        try:
            settings = StudySettings(**{k: tuple(v) if isinstance(v, list) else v
                                        for k, v in entry["settings"].items()})  # fmt: skip
        except (KeyError, TypeError) as error:
            parser.error(f"--entries {name}: settings: {error}")
        try:
            build_model({"input_dim": info.input_dim, "num_classes": info.num_classes,
                         **entry["spec"]["model"]})  # fmt: skip
        except (ModelConfigError, KeyError, TypeError) as error:
            parser.error(f"--entries {name}: spec: {error}")
        spec = dict(entry["spec"])
        spec["model"] = {"input_dim": info.input_dim, "num_classes": info.num_classes,
                         **spec["model"]}  # fmt: skip
        jobs[name] = (spec, settings)
    device, data = setup(args)
    x, y = training_subset(data, args.train_subset, args.subset_seed)
    test = subset_indices(data.test_x.shape[0], args.test_subset, args.subset_seed)
    test = test.to(data.test_x.device)
    subset = Dataset(x, y, data.test_x[test], data.test_y[test], name=data.name)
    identity = {"dataset": info.name, "data_md5": md5sum(args.data),
                "train_subset": args.train_subset, "test_subset": args.test_subset,
                "subset_seed": args.subset_seed}  # fmt: skip
    tables = {key: [] for key in OUTPUTS}
    runs = {}
    for name, (spec, settings) in jobs.items():
        result = measure_architecture(
            name, spec, subset, settings, Path(args.checkpoint_dir) / name, device=device,
            identity=identity, log=logging.info,
        )  # fmt: skip
        for key in OUTPUTS:
            tables[key] += getattr(result, {"output": "rows"}.get(key, key.removesuffix("_output")))
        runs[name] = result.runs
    config = {k: v for k, v in vars(args).items() if k not in OUTPUTS and k != "checkpoint_dir"}
    record = provenance(config=config, device=device, runs=runs)
    for key, table in OUTPUTS.items():
        write_table(pd.DataFrame(tables[key], columns=columns(table)), getattr(args, key), record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
