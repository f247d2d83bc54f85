"""environment.yml and pyproject.toml declare the same dependencies."""

import re

import tomllib
import yaml

from tests.conftest import REPO


def normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    conda_pins = [d for d in pip_section if not d.startswith("-e")]
    assert sorted(map(normalise, conda_pins)) == sorted(map(normalise, project["dependencies"]))
    python = next(
        d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python")
    )
    assert project["requires-python"].replace(">=", "") in python
