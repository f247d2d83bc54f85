"""Summarise a dynamics table: eos.csv into eos_summary.csv, escape.csv into escape_summary.csv."""

import argparse
import json
import sys

from lossgeom import eos, escape
from lossgeom.provenance import provenance, write_table
from lossgeom.tables import TableError, read_table, table_name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True, help="results/tables/eos.csv or escape.csv")
    parser.add_argument("--output", required=True)
    parser.add_argument(
        "--edge", type=float, default=0.95, help="eos: sharpness >= edge * threshold"
    )
    parser.add_argument(
        "--escape-ratio", type=float, default=0.5, help="escape: see lossgeom.escape.escaped"
    )
    args = parser.parse_args()
    name = table_name(args.input)
    try:
        frame = read_table(args.input)
    except TableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if name == "eos":
        summary, config = eos.summary_table(frame, edge=args.edge), {"edge": args.edge}
    elif name == "escape":
        summary = escape.summary_table(frame, escape_ratio=args.escape_ratio)
        config = {"escape_ratio": args.escape_ratio}
    else:
        parser.error(f"--input must be eos.csv or escape.csv, got {args.input}")
    with open(args.input + ".meta.json") as handle:
        source = json.load(handle)
    record = provenance(
        config=config, sources={args.input: {k: source.get(k) for k in ("config_hash",)}}
    )
    write_table(summary, args.output, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
