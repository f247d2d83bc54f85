"""The configuration schema: defaults filled, bad configurations rejected with the key named."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

from lossgeom.config_checks import check_config
from lossgeom.data import DATASETS
from tests.conftest import REPO

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def load(name: str) -> dict:
    return yaml.safe_load(Path(REPO / name).read_text())


def test_default_config_validates_and_defaults_are_filled():
    config = load("config/config.yaml")
    validate(config, SCHEMA)
    assert config["curvature"]["chunk_size"] == 1000
    assert config["experiments"]["report_mlp"]["optimizer"] == {
        "name": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 0.0,
        "nesterov": False,
    }
    assert config["experiments"]["report_mlp"]["epochs"] == 5
    assert config["landscape"]["resolution"] == 41 and config["landscape"]["span"] == 1.0


def test_minimal_config_gets_the_reports_setup():
    config = {"experiments": {"x": {}}}
    validate(config, SCHEMA)
    experiment = config["experiments"]["x"]
    # The schema names the model; its options come from the registry at parse time.
    assert experiment["model"] == {"name": "mlp"}
    assert experiment["batch_size"] == 128 and config["seeds"] == [0, 1, 2]
    check_config(config, DATASETS, SCHEMA)
    assert experiment["model"]["hidden"] == [512] and experiment["model"]["activation"] == "relu"


def test_presets_validate():
    presets = sorted(p.stem for p in (REPO / "config" / "presets").glob("*.yaml"))
    assert {"smoke", "full", "fashion_mnist"} <= set(presets)
    for preset in presets:
        config = load("config/config.yaml")
        update_config(config, load(f"config/presets/{preset}.yaml"))  # as Snakemake merges
        validate(config, SCHEMA)


def bad(path: list, value):
    config = copy.deepcopy(load("config/config.yaml"))
    node = config
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return config


@pytest.mark.parametrize(
    "path,value,key",
    [
        (["experiments", "report_mlp", "optimizer", "lr"], -0.1, "lr"),
        (["experiments", "report_mlp", "model", "name"], "transformer", "name"),
        (["experiments", "report_mlp", "epochs"], "five", "epochs"),
        (["experiments", "report_mlp", "batch_size"], 12.5, "batch_size"),
        (["seeds"], "0,1,2", "seeds"),
        (["curvature", "top_k"], 0, "top_k"),
        (["curvature", "method"], "arnoldi", "method"),
        (["landscape", "directions"], ["diagonal"], "directions"),
        (["data", "mirrors"], "/some/folder", "mirrors"),
        (["experiments", "report_mlp", "dataset"], 10, "dataset"),
        (["curvature", "subseet"], 10, "subseet"),
        (["bounds", "delta"], 1.5, "delta"),
        (["bounds", "delta_prime"], 0, "delta_prime"),
        (["bounds", "mc_samples"], 0, "mc_samples"),
        (["bounds", "objective"], "mcallester", "objective"),
        (["bounds", "prior_fraction"], 1.0, "prior_fraction"),
    ],
)
def test_bad_configs_name_the_key(path, value, key):
    with pytest.raises(WorkflowError) as error:
        validate(bad(path, value), SCHEMA)
    assert key in str(error.value)
