"""Write the HTML index page: figure thumbnails linking to their notebooks, runs, provenance."""

import argparse
import json
import sys

from lossgeom.provenance import atomic_write, git_commit
from lossgeom.report import render_index
from lossgeom.tables import read_table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", required=True)
    parser.add_argument("--notebooks", nargs="+", required=True, help="executed HTML notebooks")
    parser.add_argument("--figures", nargs="+", required=True, help="PNGs, one per notebook")
    parser.add_argument("--tables", nargs="*", default=[])
    parser.add_argument("--runs", required=True, help="the runs table")
    parser.add_argument("--experiments", required=True, help="JSON: experiment name -> dataset")
    parser.add_argument("--config-files", required=True, help="JSON: configuration files")
    parser.add_argument("--config-hash", required=True)
    args = parser.parse_args()
    if len(args.figures) != len(args.notebooks):
        parser.error("--figures and --notebooks must pair up")
    page = render_index(
        list(zip(args.figures, args.notebooks, strict=True)),
        args.tables,
        read_table(args.runs, "runs"),
        json.loads(args.experiments),
        json.loads(args.config_files),
        args.config_hash,
        git_commit(),
        args.output,
    )
    with atomic_write(args.output, "w") as handle:
        handle.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
