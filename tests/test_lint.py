"""Code habits: ruff (lint and format), size limits, and notebooks that only read and draw."""

import ast
import shutil
import subprocess

import pytest

from tests.conftest import REPO

MAX_SCRIPT_LINES = 120
MAX_FUNCTION_LINES = 80
# What a notebook may import from the library: figure output, and the one formula that maps
# a curve's parameter to its point (so the drawn curve is the library's, not a copy).
NOTEBOOK_LIBRARY_IMPORTS = {
    "lossgeom.figures": {"save_figure", "placeholder_figure", "notebook_runs", "notebook_setup"},
    "lossgeom.connectivity": {"bezier_point"},
    "lossgeom.summaries": {
        "temperature_summary",
        "architecture_means",
        "compare_architectures",
        "depth_trend",
        "claimed_tau",
        "tau_verdict",
    },
    "lossgeom.tables": {"read_table", "completed_only", "runs_note"},
}


def ruff(*args: str) -> subprocess.CompletedProcess:
    executable = shutil.which("ruff", path=str(REPO / ".venv" / "bin")) or shutil.which("ruff")
    if executable is None:
        pytest.skip("ruff is not installed (it comes with the [test] extra)")
    return subprocess.run([executable, *args], cwd=REPO, capture_output=True, text=True)


def test_ruff_check_reports_nothing():
    result = ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_everything_as_it_is():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_scripts_stay_thin():
    long = {
        p.name: n
        for p in (REPO / "scripts").glob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_SCRIPT_LINES
    }
    assert not long, f"scripts over {MAX_SCRIPT_LINES} lines: {long}"


def test_library_functions_stay_short():
    long = {}
    for path in (REPO / "src" / "lossgeom").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.name}:{node.name}"] = length
    assert not long, f"library functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_notebooks_import_no_estimator():
    """Notebooks read tables and draw; every number they show comes from a table."""
    for path in (REPO / "notebooks").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
                assert not any(n.startswith("lossgeom") for n in names), (path.name, names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lossgeom"):
                allowed = NOTEBOOK_LIBRARY_IMPORTS.get(node.module, set())
                imported = {alias.name for alias in node.names}
                assert imported <= allowed, (path.name, node.module, imported - allowed)
