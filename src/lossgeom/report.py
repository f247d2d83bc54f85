"""The HTML index a reader opens first: figures as thumbnails, the run statuses, provenance.

Example:
    >>> import pandas as pd
    >>> runs = pd.DataFrame({"experiment": ["e"], "seed": [0], "status": ["completed"],
    ...                      "reason": [""]})
    >>> page = render_index([], [], runs, {"e": "mnist"}, ["config/config.yaml"], "abc", "f00")
    >>> "e (mnist)" in page and "Every run completed (1 of 1)" in page
    True
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd

STYLE = """
body { font-family: sans-serif; max-width: 72em; margin: 2em auto; padding: 0 1em; }
.grid { display: flex; flex-wrap: wrap; gap: 1.5em; }
figure { width: 21em; margin: 0; }
figure img { width: 100%; border: 1px solid #ccc; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
.bad { background: #fde8e8; }
"""


def _relative(path: str | os.PathLike, start: Path) -> str:
    return html.escape(os.path.relpath(Path(path).resolve(), start.resolve()))


def run_statuses(runs: pd.DataFrame) -> list[str]:
    """An HTML summary and table of the runs: which completed, which did not, and why."""
    bad = runs[runs["status"] != "completed"]
    if bad.empty:
        summary = f"<p>Every run completed ({len(runs)} of {len(runs)}).</p>"
    else:
        names = ", ".join(f"{r.experiment} seed {r.seed} ({r.status})" for r in bad.itertuples())
        summary = (
            f"<p><b>{len(bad)} of {len(runs)} runs did not complete</b>: {html.escape(names)}. "
            "Every later stage skips them, and every notebook says so.</p>"
        )
    rows = [
        f"<tr{' class=bad' if r.status != 'completed' else ''}><td>{html.escape(str(r.experiment))}"
        f"</td><td>{r.seed}</td><td>{html.escape(r.status)}</td>"
        f"<td>{html.escape(str(r.reason) if isinstance(r.reason, str) else '')}</td></tr>"
        for r in runs.itertuples()
    ]
    header = "<tr><th>experiment</th><th>seed</th><th>status</th><th>reason</th></tr>"
    return [summary, "<table>", header, *rows, "</table>"]


def render_index(
    figures: list[tuple[str, str]],
    tables: list[str],
    runs: pd.DataFrame,
    experiments: dict[str, str],
    config_files: list[str],
    config_hash: str,
    commit: str,
    output: str | os.PathLike = "results/index.html",
) -> str:
    """The index page.

    Args:
        figures: ``(png, notebook html)`` pairs; each thumbnail links to its notebook.
        tables: the stable tables.
        runs: the runs table (``experiment, seed, status, reason``).
        experiments: experiment name -> dataset.
        config_files: the configuration files of the run, in merge order.
        config_hash: the hash of the merged configuration.
        commit: the code's git commit.
        output: where the page goes (links are relative to its folder).
    """
    start = Path(output).parent
    what = ", ".join(f"{name} ({dataset})" for name, dataset in experiments.items())
    cards = [
        f'<figure><a href="{_relative(notebook, start)}"><img src="{_relative(png, start)}" '
        f'alt="{html.escape(Path(png).stem)}"></a><figcaption>{html.escape(Path(png).stem)} '
        f'(<a href="{_relative(notebook, start)}">notebook</a>)</figcaption></figure>'
        for png, notebook in figures
    ]
    links = [
        f'<li><a href="{_relative(t, start)}">{html.escape(Path(t).name)}</a></li>' for t in tables
    ]
    files = ", ".join(html.escape(f) for f in config_files) or "(none)"
    return (
        "\n".join(
            [
                "<!doctype html><html><head><meta charset='utf-8'>",
                f"<title>lossgeom: {html.escape(what)}</title><style>{STYLE}</style></head><body>",
                f"<h1>Loss-landscape geometry: {html.escape(what)}</h1>",
                f"<p>Configuration: {files} (merged config hash <code>{html.escape(config_hash)}"
                f"</code>); code commit <code>{html.escape(commit)}</code>. Each figure links to the "
                "executed notebook that drew it from the tables below.</p>",
                "<h2>Runs</h2>",
                *run_statuses(runs),
                "<h2>Figures</h2>",
                '<div class="grid">',
                *cards,
                "</div>",
                "<h2>Tables</h2><ul>",
                *links,
                "</ul></body></html>",
            ]
        )
        + "\n"
    )
