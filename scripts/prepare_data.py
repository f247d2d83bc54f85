"""Fetch a registry dataset (download, or copy from a local mirror), verify it, save tensors."""

import argparse
import json
import logging
import sys

from lossgeom.data import DATASETS, DataError, prepare_dataset, resolve_mirror
from lossgeom.provenance import provenance, write_json
from lossgeom.runs import json_argument


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    parser.add_argument("--root", required=True, help="torchvision root folder")
    parser.add_argument("--output", required=True, help="tensor file to write")
    parser.add_argument("--mirror", default=None, help="folder with the four .gz files")
    parser.add_argument("--checksums", type=json_argument, default=None, help="JSON: file -> MD5")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    mirror = resolve_mirror(args.mirror, args.dataset)
    try:
        summary = prepare_dataset(
            args.dataset, args.root, args.output, mirror=mirror, checksums=args.checksums
        )
    except DataError as error:
        logging.error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        return 1
    config = {"dataset": args.dataset, "mirror": mirror, "checksums": args.checksums}
    write_json(provenance(config=config, **summary), args.output + ".meta.json")
    logging.info("%s ready: %s", args.dataset, json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
