"""The code base passes ruff (the project's linter, configured in pyproject.toml)."""

import shutil
import subprocess

import pytest

from tests.conftest import REPO


def test_ruff_reports_nothing():
    ruff = shutil.which("ruff", path=str(REPO / ".venv" / "bin")) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the [test] extra)")
    result = subprocess.run([ruff, "check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
