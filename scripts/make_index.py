"""Write the HTML index page that links the executed notebooks and the figures."""

import argparse
import html
import json
import sys
from pathlib import Path

from lossgeom.provenance import atomic_write, git_commit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", required=True)
    parser.add_argument("--notebooks", nargs="+", required=True, help="executed HTML notebooks")
    parser.add_argument("--figures", nargs="*", default=[])
    parser.add_argument("--tables", nargs="*", default=[])
    parser.add_argument("--experiments", required=True, help="JSON: experiment name -> dataset")
    args = parser.parse_args()
    out = Path(args.output)

    def link(path: str) -> str:
        target = Path(path).resolve().relative_to(out.parent.resolve())
        return f'<li><a href="{html.escape(str(target))}">{html.escape(Path(path).stem)}</a></li>'

    page = [
        "<!doctype html><html><head><meta charset='utf-8'><title>lossgeom results</title></head><body>",
        "<h1>lossgeom: loss-landscape geometry</h1>",
        "<p>Experiments: "
        + html.escape(
            ", ".join(
                f"{name} ({dataset})" for name, dataset in json.loads(args.experiments).items()
            )
        )
        + "</p>",
        f"<p>Commit {html.escape(git_commit())}. Each notebook reads the tables below and draws one figure.</p>",
        "<h2>Executed notebooks</h2><ul>",
        *map(link, args.notebooks),
        "</ul>",
        "<h2>Figures</h2><ul>",
        *map(link, args.figures),
        "</ul>",
        "<h2>Tables</h2><ul>",
        *map(link, args.tables),
        "</ul>",
        "</body></html>",
    ]
    with atomic_write(out, "w") as handle:
        handle.write("\n".join(page) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
