"""Execute a jupytext notebook with papermill and export it to HTML.

Parameters are passed as NAME=VALUE pairs (values are strings: table and figure paths).
The run fails, leaving no output behind, if any cell raises. The notebook's own cell tagged
"parameters" (its defaults) is dropped from the outputs: papermill's injected cell after it
shows the values the run used, so the HTML shows the parameters once.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import jupytext
import nbformat
import papermill
from nbconvert import HTMLExporter

from lossgeom.provenance import atomic_write


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebook", help="jupytext percent-format .py source")
    parser.add_argument("--ipynb", required=True)
    parser.add_argument("--html", required=True)
    parser.add_argument("--kernel", default="python3")
    parser.add_argument(
        "-p",
        "--parameter",
        dest="parameters",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a notebook parameter (repeatable)",
    )
    args = parser.parse_args()
    parameters = {}
    for item in args.parameters:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"parameter {item!r} is not NAME=VALUE")
        parameters[name] = value
    source = jupytext.read(args.notebook)
    source.metadata["kernelspec"] = {
        "name": args.kernel,
        "display_name": "Python 3",
        "language": "python",
    }
    workdir = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "input.ipynb"
        executed = Path(tmp) / "output.ipynb"
        nbformat.write(source, raw)
        papermill.execute_notebook(
            str(raw),
            str(executed),
            parameters=parameters,
            kernel_name=args.kernel,
            cwd=str(workdir),
            progress_bar=False,
            start_timeout=600,
        )  # a loaded 2-core machine starts kernels slowly
        notebook = nbformat.read(executed, as_version=4)
    tags = [c.metadata.get("tags", []) for c in notebook.cells]
    if any("injected-parameters" in t for t in tags):  # it shows the values the run used
        notebook.cells = [
            c for c, t in zip(notebook.cells, tags, strict=True) if "parameters" not in t
        ]
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    if errors:
        print(f"error: {args.notebook} produced error output", file=sys.stderr)
        return 1
    body, _ = HTMLExporter().from_notebook_node(notebook)
    with atomic_write(args.ipynb, "w") as handle:
        nbformat.write(notebook, handle)
    with atomic_write(args.html, "w") as handle:
        handle.write(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
