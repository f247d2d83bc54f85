"""Concatenate per-job tables into one stable table, with the jobs' provenance beside it."""

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from lossgeom.provenance import provenance, write_table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", required=True)
    parser.add_argument("--inputs", nargs="+", required=True, help="CSV files, or run JSON files")
    parser.add_argument("--config", default="{}", help="JSON: the configuration behind the table")
    args = parser.parse_args()
    sources = {}
    frames = []
    for name in args.inputs:
        path = Path(name)
        if path.suffix == ".json":
            record = json.loads(path.read_text())
            frames.append(
                pd.DataFrame(
                    [
                        {
                            "experiment": record["experiment"],
                            "seed": record["seed"],
                            "status": record["status"],
                            "diverged_epoch": record["diverged_epoch"],
                            "seconds": record["seconds"],
                            "device": record.get("device"),
                            "config_hash": record["run_config_hash"],
                            "git_commit": record["git_commit"],
                        }
                    ]
                )
            )
            sources[name] = record.get("config_hash")
            continue
        frame = pd.read_csv(path)
        if not frame.empty:
            frames.append(frame)
        meta = path.with_name(path.name + ".meta.json")
        sources[name] = json.loads(meta.read_text()).get("config_hash") if meta.exists() else None
    if not frames:
        print(
            f"error: {args.output}: every input table is empty (did every run diverge?)",
            file=sys.stderr,
        )
        return 1
    table = pd.concat(frames, ignore_index=True)
    write_table(table, args.output, provenance(config=json.loads(args.config), sources=sources))
    return 0


if __name__ == "__main__":
    sys.exit(main())
