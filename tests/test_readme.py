"""The README tells a newcomer what the issue tracker found missing (checks that read it)."""

import re

from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def test_start_commands_come_first_with_their_cost():
    start = README[README.index("## Start here") :][:2500]
    assert "pip install -e . && snakemake all" in start
    assert 'pip install -e ".[test]" && pytest' in start
    assert re.search(r"about \d+ minutes on a 2-core CPU", start)  # the main job's cost
    assert re.search(r"tests \(about \d+ minutes", start)
    assert "CUDA build" in start and "download.pytorch.org/whl/cpu" in start


def test_recovery_and_configuration_are_explained():
    assert "snakemake --unlock" in README and "--rerun-incomplete" in README
    assert "select_experiments" in README and "experiments: {}" in README
    assert "--configfile config/presets/smoke.yaml --directory runs/smoke" in README
    assert "--config 'seeds=[0, 1]'" in README and "snakemake --verbose" in README
    assert "failed_to_train" in README and "content checksum" in README


def test_every_stable_table_is_documented_with_its_columns():
    from lossgeom.tables import TABLES

    text = " ".join(README.split())  # the column lists wrap across lines
    for name, declared in TABLES.items():
        listed = f"`{', '.join(declared)}`"
        forms = [f"`results/tables/{name}.csv`: {listed}", f"`results/tables/{name}.csv` ({listed}"]
        assert any(form in text for form in forms), forms[0]
