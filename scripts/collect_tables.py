"""Concatenate per-job tables into one stable table, with the jobs' provenance beside it.

The table's name comes from the output's file name (results/tables/<name>.csv). Every input is
checked against that table's declared columns and types (lossgeom.tables) before anything is
written, so a damaged per-job table stops the job with the file, the column and the line named.
"""

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from lossgeom.provenance import provenance, write_table
from lossgeom.tables import TableError, columns, read_table, table_name, validate_table

# runs.csv column -> run.json key (train.py writes them all; "device" and "reason" may be absent)
RUN_KEYS = {
    "experiment": "experiment",
    "seed": "seed",
    "status": "status",
    "diverged_epoch": "diverged_epoch",
    "seconds": "seconds",
    "config_hash": "run_config_hash",
    "git_commit": "git_commit",
}


def run_row(path: Path) -> tuple[pd.DataFrame, dict]:
    """The runs row of one training job's run.json, checked, and the job's hash and device."""
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise TableError(f"{path}: not a JSON run record ({error})") from None
    if not isinstance(record, dict):
        raise TableError(f"{path}: not a JSON run record (an object is expected)")
    if missing := [key for key in RUN_KEYS.values() if key not in record]:
        raise TableError(f"{path}: the run record lacks {', '.join(missing)}")
    row = {column: record[key] for column, key in RUN_KEYS.items()}
    row.update(reason=record.get("reason", ""), device=record.get("device"))
    frame = pd.DataFrame([row], columns=columns("runs"))
    source = {key: record.get(key) for key in ("config_hash", "device")}
    return validate_table(frame, "runs", path, lines=["run record"]), source


def collect(name: str, inputs: list[str], output: str) -> tuple[pd.DataFrame | None, dict]:
    """Every input checked and concatenated (``None`` when all are empty), and their hashes."""
    sources, frames = {}, []
    for item in inputs:
        path = Path(item)
        if path.suffix == ".json":
            if name != "runs":
                raise TableError(f"{path}: a run record goes into runs.csv, not {output}")
            frame, sources[item] = run_row(path)
        else:
            frame = read_table(path, name)
            meta = path.with_name(path.name + ".meta.json")
            record = json.loads(meta.read_text()) if meta.exists() else {}
            sources[item] = {key: record.get(key) for key in ("config_hash", "device")}
        if not frame.empty:
            frames.append(frame)
    if not frames:
        return None, sources
    return validate_table(pd.concat(frames, ignore_index=True), name, output), sources


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", required=True, help="results/tables/<name>.csv")
    parser.add_argument("--inputs", nargs="+", required=True, help="CSV files, or run JSON files")
    parser.add_argument("--config", default="{}", help="JSON: the configuration behind the table")
    args = parser.parse_args()
    try:
        table, sources = collect(table_name(args.output), args.inputs, args.output)
    except TableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if table is None:  # every run behind it diverged or failed: a header-only table says so
        print(f"warning: {args.output}: every input table is empty", file=sys.stderr)
        table = pd.DataFrame(columns=columns(table_name(args.output)))
    write_table(table, args.output, provenance(config=json.loads(args.config), sources=sources))
    return 0


if __name__ == "__main__":
    sys.exit(main())
