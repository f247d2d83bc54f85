"""Parse-time configuration checks: one short message, naming the key, for every bad config."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml
from snakemake.utils import update_config, validate

from lossgeom.config_checks import (
    ConfigError,
    check_config,
    check_finite,
    check_semantics,
    load_yaml,
    validate_config,
)
from lossgeom.data import DATASETS
from lossgeom.models import ModelConfigError, build_model
from tests.conftest import REPO

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
MNIST_FILES = sorted(DATASETS["mnist"].files)


@pytest.fixture(autouse=True)
def no_mirror_variables(monkeypatch):
    """The mirror environment variables win over the config: none is set unless a test sets it."""
    for info in DATASETS.values():
        monkeypatch.delenv(info.mirror_variable, raising=False)


def default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def checked(config: dict) -> dict:
    check_config(config, DATASETS, SCHEMA)
    return config


def rejected(config: dict) -> str:
    with pytest.raises(ConfigError) as error:
        check_config(config, DATASETS, SCHEMA)
    message = str(error.value)
    assert "\n" not in message and len(message) < 400, message
    return message


def with_experiment(**options) -> dict:
    """The default config with report_mlp's sections updated by ``options``."""
    config = default_config()
    experiment = config["experiments"]["report_mlp"]
    for key, value in options.items():
        if isinstance(value, dict):
            experiment[key] = {**experiment.get(key, {}), **value}
        else:
            experiment[key] = value
    return config


def mirror(folder: Path, files=MNIST_FILES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        (folder / name).write_bytes(b"x")
    return folder


# ----------------------------------------------------------------------------- defaults


def test_default_config_and_presets_pass():
    checked(default_config())
    for preset in sorted((REPO / "config" / "presets").glob("*.yaml")):
        config = default_config()
        update_config(config, yaml.safe_load(preset.read_text()))  # merged as Snakemake does
        checked(config)


def test_defaults_are_filled_exactly_as_snakemake_fills_them():
    ours, snakemakes = default_config(), default_config()
    ours["experiments"]["second"] = {"model": {"hidden": [8]}}
    snakemakes["experiments"]["second"] = {"model": {"hidden": [8]}}
    validate_config(ours, SCHEMA)
    validate(snakemakes, SCHEMA)
    assert ours == snakemakes
    assert ours["experiments"]["second"]["optimizer"]["lr"] == 0.1


# ----------------------------------------------------------------------------- finite numbers


@pytest.mark.parametrize(
    "config,message",
    [
        ({"landscape": {"span": float("nan")}}, "landscape.span: nan is not a finite number"),
        ({"bounds": {"eps": float("inf")}}, "bounds.eps: inf is not a finite number"),
        (
            {"experiments": {"x": {"optimizer": {"lr": float("-inf")}}}},
            "experiments.x.optimizer.lr: -inf is not a finite number",
        ),
        ({"seeds": [0, float("nan")]}, "seeds[1]: nan is not a finite number"),
    ],
)
def test_nan_and_inf_are_rejected_with_the_key(config, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_finite(config)


def test_finite_numbers_pass_and_nan_is_caught_before_the_schema():
    check_finite({"a": 1.0, "b": [0, 2.5, True], "c": {"d": None, "e": "nan"}})
    config = default_config()
    config["landscape"]["span"] = float("nan")  # the schema alone would say "less than 0"
    assert rejected(config) == "landscape.span: nan is not a finite number"
    config["landscape"]["span"] = float("inf")  # which the schema alone lets through
    assert rejected(config) == "landscape.span: inf is not a finite number"


# ----------------------------------------------------------------------------- schema


def test_unknown_top_level_key_names_it_and_the_allowed_keys():
    config = default_config()
    config["curvture"] = {"top_k": 3}
    message = rejected(config)
    assert message.startswith("config key 'curvture' is not allowed at the top level; allowed: ")
    assert (
        "bounds, connectivity, curvature, data, density, device, dynamics, experiments" in message
    )
    assert "did you mean 'curvature'?" in message


def test_unknown_nested_key_names_its_parent():
    config = with_experiment(model={"hiden": [8]})
    message = rejected(config)
    assert "config key 'hiden' is not allowed in experiments.report_mlp.model" in message
    assert "allowed: activation, blocks, channels, depth, dim, heads, hidden" in message


@pytest.mark.parametrize(
    "section,key,value,message",
    [
        ("optimizer", "lr", -0.1, "experiments.report_mlp.optimizer.lr: -0.1 is less than or"),
        ("model", "name", "transformer", "experiments.report_mlp.model.name: 'transformer' is"),
        (None, "epochs", "five", "experiments.report_mlp.epochs: 'five' is not of type"),
        (None, "batch_size", 12.5, "experiments.report_mlp.batch_size: 12.5 is not of type"),
    ],
)
def test_bad_values_name_the_dotted_key_and_the_value(section, key, value, message):
    config = default_config()
    experiment = config["experiments"]["report_mlp"]
    (experiment[section] if section else experiment)[key] = value
    assert rejected(config).startswith(message)


def test_schema_messages_stay_short_for_large_values():
    config = default_config()
    config["data"]["mirrors"] = ["/folder"] * 500
    message = rejected(config)
    assert message.startswith("data.mirrors: ") and "is not of type 'object'" in message


def test_bad_experiment_name_is_named():
    config = default_config()
    config["experiments"]["1st"] = {}
    assert rejected(config).startswith("experiments: the name '1st' is not allowed")


@pytest.mark.parametrize(
    "path,value,message",
    [
        (("seeds",), [0, 1.0], "seeds[1]: 1.0 is not of type 'integer'"),
        (("threads",), 2.0, "threads: 2.0 is not of type 'integer'"),
        (("experiments", "report_mlp", "epochs"), 2.0, "experiments.report_mlp.epochs: 2.0 is"),
        (("landscape", "resolution"), 5.0, "landscape.resolution: 5.0 is not of type 'integer'"),
    ],
)
def test_a_float_is_not_an_integer(path, value, message):
    """JSON Schema counts 2.0 as an integer; the jobs would get "2.0" and fail (or not parse)."""
    config = default_config()
    section = config
    for key in path[:-1]:
        section = section[key]
    section[path[-1]] = value
    assert rejected(config).startswith(message)
    section[path[-1]] = [0, 1] if path == ("seeds",) else int(value)
    checked(config)
    config["experiments"]["report_mlp"]["optimizer"]["lr"] = 1  # an int is still a number
    checked(config)


# ----------------------------------------------------------------------------- semantics


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_batch_size_up_to_the_training_set(dataset):
    assert DATASETS[dataset].train_size == 60000 and DATASETS[dataset].test_size == 10000
    checked(with_experiment(dataset=dataset, batch_size=60000))
    message = rejected(with_experiment(dataset=dataset, batch_size=60001))
    assert message == (
        f"experiments.report_mlp.batch_size: 60001 is larger than the {dataset} training set "
        "(60000 examples)"
    )


def test_batch_size_of_a_seed_override_is_checked_too():
    overrides = [{"seed": 1, "batch_size": 60001}]
    config = with_experiment(seed_overrides=overrides)
    schema = yaml.safe_load(Path(SCHEMA).read_text())
    experiment = schema["properties"]["experiments"]["additionalProperties"]["properties"]
    if "seed_overrides" not in experiment:
        pytest.skip("the schema has no seed_overrides")
    assert rejected(config).startswith(
        "experiments.report_mlp.seed_overrides[0].batch_size: 60001 is larger than the mnist"
    )


@pytest.mark.parametrize(
    "hidden",
    [[8], [8, 8, 8], [8, 4], [4, 8, 8], [8, 8, 4]],
)
def test_residual_widths_rejected_exactly_where_build_model_rejects_them(hidden):
    try:
        build_model({"name": "mlp", "hidden": hidden, "residual": True})
        builds = True
    except ModelConfigError:
        builds = False
    config = with_experiment(model={"hidden": hidden, "residual": True})
    if builds:
        checked(config)
    else:
        message = rejected(config)
        assert message.startswith("experiments.report_mlp.model.residual needs equal hidden")
        assert str(hidden) in message


def test_unequal_widths_pass_without_residual():
    checked(with_experiment(model={"hidden": [8, 4], "residual": False}))


def test_nesterov_needs_sgd_with_momentum_seed_overrides_included():
    """torch.optim.SGD refuses Nesterov without momentum at the first job; Adam ignores it."""
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum"):
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, nesterov=True)
    checked(with_experiment(optimizer={"nesterov": True, "momentum": 0.9}))
    message = rejected(with_experiment(optimizer={"nesterov": True, "momentum": 0.0}))
    assert message == (
        "experiments.report_mlp.optimizer.nesterov: true needs momentum > 0, got 0.0"
    )
    message = rejected(with_experiment(optimizer={"name": "adam", "nesterov": True}))
    assert message.startswith("experiments.report_mlp.optimizer.nesterov: true needs name: sgd")
    overrides = [{"seed": 1, "optimizer": {"momentum": 0.0}}]
    checked(with_experiment(seed_overrides=overrides))
    config = with_experiment(optimizer={"nesterov": True}, seed_overrides=overrides)
    assert rejected(config).startswith(
        "experiments.report_mlp.seed_overrides[0].optimizer.nesterov: true needs momentum > 0"
    )


def test_connectivity_cannot_run_without_a_hidden_layer():
    """Why hidden: [] is rejected: weight matching (every pair's aligned paths) needs units."""
    from lossgeom.connectivity import AlignmentError, aligned_model

    torch.manual_seed(0)
    model = build_model({"name": "mlp", "input_dim": 6, "hidden": [], "num_classes": 3})
    with pytest.raises(AlignmentError, match="no hidden units"):
        aligned_model(model, model)
    message = rejected(with_experiment(model={"hidden": []}))
    assert message.startswith("experiments.report_mlp.model.hidden: [] (no hidden layer)")
    assert "connectivity" in message


def test_batchnorm_is_rejected_with_the_bounds_stage():
    message = rejected(with_experiment(model={"norm": "batchnorm"}))
    assert message.startswith("experiments.report_mlp.model.norm: batchnorm")
    assert "bounds" in message
    checked(with_experiment(model={"norm": "layernorm"}))


def test_checksums_must_name_the_four_files():
    md5 = "0" * 32
    config = default_config()
    config["data"]["checksums"] = {"mnist": {name: md5 for name in MNIST_FILES}}
    checked(config)
    config["data"]["checksums"] = {"mnist": {name: md5 for name in MNIST_FILES[:3]}}
    message = rejected(config)
    assert message.startswith("data.checksums.mnist must name exactly the four mnist files")
    assert f"missing ['{MNIST_FILES[3]}']" in message and "unknown" not in message
    config["data"]["checksums"] = {
        "mnist": {**{name: md5 for name in MNIST_FILES}, "extra.gz": md5}
    }
    assert "unknown ['extra.gz']" in rejected(config)
    config["data"]["checksums"] = {"mnsit": {name: md5 for name in MNIST_FILES}}
    assert rejected(config).startswith("data.checksums.mnsit: unknown dataset")


def test_mirror_folder_must_exist_and_hold_the_four_files(tmp_path):
    config = default_config()
    config["data"]["root"] = str(tmp_path / "resources")  # nothing prepared: the mirror is read
    config["data"]["mirrors"] = {"mnist": str(mirror(tmp_path / "full"))}
    checked(config)
    config["data"]["mirrors"] = {"mnist": str(tmp_path / "absent")}
    assert rejected(config) == (
        f"data.mirrors.mnist: the mirror folder {tmp_path / 'absent'} does not exist"
    )
    config["data"]["mirrors"] = {"mnist": str(mirror(tmp_path / "partial", MNIST_FILES[1:]))}
    message = rejected(config)
    assert message.startswith("data.mirrors.mnist: the mirror folder") and MNIST_FILES[0] in message


def test_the_environment_variable_wins_over_the_configured_mirror(tmp_path, monkeypatch):
    variable = DATASETS["mnist"].mirror_variable
    config = default_config()
    config["data"]["root"] = str(tmp_path / "resources")  # nothing prepared: the mirror is read
    config["data"]["mirrors"] = {"mnist": str(tmp_path / "absent")}
    monkeypatch.setenv(variable, str(mirror(tmp_path / "full")))
    checked(copy.deepcopy(config))  # the configured folder is never used
    monkeypatch.setenv(variable, str(tmp_path / "missing"))
    config["data"]["mirrors"] = {"mnist": str(tmp_path / "full")}
    message = rejected(config)
    assert message.startswith(f"{variable} (set in the environment; it wins over data.mirrors")
    assert "does not exist" in message


def test_mirrors_of_datasets_that_do_not_run_are_not_checked(tmp_path):
    config = default_config()
    config["data"]["root"] = str(tmp_path / "data")  # nothing prepared yet
    config["data"]["mirrors"] = {"fashion_mnist": str(tmp_path / "absent")}
    config.setdefault("sweep", {}).setdefault("axes", {})["dataset"] = ["mnist"]
    checked(copy.deepcopy(config))  # every stage is on MNIST: Fashion-MNIST is never prepared
    config["experiments"]["fashion"] = {"dataset": "fashion_mnist"}
    assert rejected(copy.deepcopy(config)).startswith("data.mirrors.fashion_mnist")
    config["select_experiments"] = ["report_mlp"]
    checked(copy.deepcopy(config))
    config["sweep"]["axes"]["dataset"] = ["mnist", "fashion_mnist"]  # the sweep prepares it
    assert rejected(config).startswith("data.mirrors.fashion_mnist")


@pytest.mark.parametrize("root", ["", "   "])
def test_data_root_must_name_a_folder(root):
    config = default_config()
    config["data"]["root"] = root
    assert rejected(config) == f"data.root: must name a folder, got {root!r}"


def test_data_root_must_not_be_a_file(tmp_path):
    config = default_config()
    config["data"]["root"] = str(tmp_path / "absent")  # created by the first job
    checked(copy.deepcopy(config))
    (tmp_path / "a_file").write_text("x")
    config["data"]["root"] = str(tmp_path / "a_file")
    assert rejected(config) == f"data.root: {tmp_path / 'a_file'} is a file, not a folder"


@pytest.mark.parametrize("folder", ["", "  "])
def test_an_empty_mirror_entry_is_rejected_not_downloaded(folder):
    config = default_config()
    config["data"]["mirrors"] = {"mnist": None}  # null: download
    checked(copy.deepcopy(config))
    config["data"]["mirrors"] = {"mnist": folder}
    assert rejected(config).startswith(f"data.mirrors.mnist: must name a folder, got {folder!r}")


def test_connectivity_needs_two_seeds():
    config = default_config()
    config["seeds"] = [0]
    assert rejected(config) == (
        "seeds: connectivity and the pair tables need at least two seeds, got [0]"
    )
    config["seeds"] = [0, 1]
    checked(config)


def test_connectivity_pairs_are_not_empty_nor_repeated():
    config = default_config()
    config["connectivity"] = {"pairs": [[0, 1], [1, 2]]}
    checked(copy.deepcopy(config))
    config["connectivity"] = {"pairs": []}
    assert rejected(copy.deepcopy(config)).startswith("connectivity.pairs: [] names no pair")
    config["connectivity"] = {"pairs": [[0, 1], [1, 2], [0, 1]]}
    assert rejected(config) == "connectivity.pairs[2]: [0, 1] is named twice"


def test_hessian_directions_need_two_eigenvectors():
    config = default_config()
    config["curvature"]["top_k"] = 1
    assert rejected(copy.deepcopy(config)) == (
        "landscape.directions includes 'hessian', which needs curvature.top_k >= 2 (got 1)"
    )
    config["landscape"]["directions"] = ["random", "filter"]
    checked(config)


def test_trace_method_fits_the_eigenvalue_method_and_its_products():
    config = default_config()
    config["curvature"]["method"] = "power"
    assert rejected(copy.deepcopy(config)) == (
        "curvature.trace_method 'krylov' deflates the Lanczos basis of the eigenvalues, so it "
        "needs curvature.method 'lanczos' (got 'power')"
    )
    config["curvature"].update(trace_method="hutchpp", trace_matvecs=5)
    assert rejected(copy.deepcopy(config)) == (
        "curvature.trace_matvecs: Hutch++ needs at least 6 products, got 5"
    )
    config["curvature"]["trace_matvecs"] = 6
    checked(config)


def test_check_semantics_leaves_unknown_datasets_to_the_workflow():
    config = with_experiment(dataset="cifar10", batch_size=10**6)
    validate_config(config, SCHEMA)
    check_semantics(config, DATASETS)


# ----------------------------------------------------------------------------- YAML files


def test_yaml_syntax_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text("seeds: [0, 1\nlandscape:\n  span: 1.0\n")
    with pytest.raises(ConfigError, match=r"my\.yaml, line 2, column \d+: YAML syntax error"):
        load_yaml(path)
    path.write_text("seeds: [0, 1]\n")
    assert load_yaml(path) == {"seeds": [0, 1]}


def test_yaml_keys_named_twice_name_the_file_and_line(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text("landscape: {span: 0.5}\nseeds: [0, 1]\nlandscape: {resolution: 3}\n")
    with pytest.raises(ConfigError) as error:
        load_yaml(path)
    assert str(error.value).startswith(f"{path}, line 3, column 1: YAML syntax error: duplicate")
    assert "'landscape' (first at line 1)" in str(error.value)
    path.write_text("a: {b: 1}\nc: {b: 2}\nd: [{e: 1}, {e: 2}]\n")  # the same key in two maps
    assert load_yaml(path) == {"a": {"b": 1}, "c": {"b": 2}, "d": [{"e": 1}, {"e": 2}]}


def test_a_missing_mirror_is_fine_once_the_data_are_prepared(tmp_path):
    config = default_config()
    config["data"]["mirrors"] = {"mnist": str(tmp_path / "absent")}
    config["data"]["root"] = str(tmp_path / "resources")
    assert "does not exist" in rejected(copy.deepcopy(config))
    (tmp_path / "resources" / "mnist").mkdir(parents=True)
    (tmp_path / "resources" / "mnist" / "mnist.pt").write_bytes(b"prepared")
    checked(config)  # the mirror is not read again


# ----- the dynamics study


def with_dynamics(part: str, **options) -> dict:
    config = default_config()
    config.setdefault("dynamics", {}).setdefault(part, {}).update(options)
    return config


@pytest.mark.parametrize("factor", [1.0, 0.5, 0])
def test_eos_factor_must_exceed_one(factor):
    config = default_config()
    config["dynamics"]["eos"]["runs"]["tanh_mse"]["factors"] = [1.5, factor]
    message = rejected(config)
    assert "dynamics.eos.runs.tanh_mse.factors[1]" in message and "1" in message, message


@pytest.mark.parametrize(
    "part, key",
    [("temperature", "lrs"), ("temperature", "batch_sizes"), ("temperature", "seeds"),
     ("escape", "dynamics"), ("escape", "seeds")],
)  # fmt: skip
def test_empty_grids_are_rejected(part, key):
    message = rejected(with_dynamics(part, **{key: []}))
    assert f"dynamics.{part}.{key}" in message, message


def test_empty_eos_runs_and_factors_are_rejected():
    config = default_config()
    config["dynamics"]["eos"]["runs"]["tanh_mse"]["factors"] = []
    assert "dynamics.eos.runs.tanh_mse.factors" in rejected(config)


@pytest.mark.parametrize(
    "part, options, key",
    [
        ("noise", {"subset": 60001}, "dynamics.noise.subset: 60001 is larger than the training set"),
        ("noise", {"hessian_subset": 70000}, "dynamics.noise.hessian_subset"),
        ("noise", {"subset": 10, "top_k": 10}, "dynamics.noise.top_k: 10 is at least dynamics.noise.subset"),
        ("eos", {"subset": 60001}, "dynamics.eos.subset"),
        ("escape", {"train_size": 60001}, "dynamics.escape.train_size"),
        ("escape", {"test_size": 10001}, "dynamics.escape.test_size: 10001 is larger than the test set"),
        ("escape", {"train_size": 100, "batch_size": 101}, "dynamics.escape.batch_size"),
        ("escape", {"train_size": 20, "top_k": 20}, "dynamics.escape.top_k"),
        ("temperature", {"train_subset": 100, "curvature_subset": 50, "batch_sizes": [32, 128]}, "dynamics.temperature.batch_sizes: 128"),
        ("temperature", {"train_subset": 100, "curvature_subset": 200}, "dynamics.temperature.curvature_subset"),
    ],
)  # fmt: skip
def test_dynamics_sizes_are_checked_against_the_dataset(part, options, key):
    assert key in rejected(with_dynamics(part, **options))


def test_disabled_dynamics_parts_are_not_checked():
    config = with_dynamics("noise", subset=70000, enabled=False)
    checked(config)


def test_unknown_dynamics_dataset_is_named():
    config = default_config()
    config["dynamics"]["dataset"] = "cifar10"
    assert "dynamics.dataset: 'cifar10' is unknown" in rejected(config)


def test_escape_needs_gd_as_its_reference():
    message = rejected(with_dynamics("escape", dynamics=["sgd", "gld_isotropic"]))
    assert "dynamics.escape.dynamics" in message and "'gd'" in message, message


def test_escape_step_must_be_positive():
    assert "dynamics.escape.lr" in rejected(with_dynamics("escape", lr=0))


def with_model(model: dict) -> dict:
    """The default config with report_mlp's model replaced by ``model``."""
    config = default_config()
    config["experiments"]["report_mlp"]["model"] = model
    return config


@pytest.mark.parametrize(
    ("model", "start"),
    [
        ({"name": "transformer"}, "experiments.report_mlp.model.name: 'transformer' is"),
        ({"name": "vit", "depth": 0}, "experiments.report_mlp.model.depth: 0 is less than"),
        ({"name": "mlp", "hidden": [64, 32], "residual": True},
         "experiments.report_mlp.model.residual needs equal hidden widths"),
        ({"name": "vit", "patch_size": 5},
         "experiments.report_mlp.model.patch_size 5 does not divide the image side 28"),
        ({"name": "cnn", "residual": True},
         "experiments.report_mlp.model.residual is not an option of model 'cnn'"),
        ({"name": "cnn", "kernel_size": 4}, "experiments.report_mlp.model.kernel_size must be odd"),
        ({"name": "resnet", "norm": "layernorm"},
         "experiments.report_mlp.model.norm 'layernorm' is unknown"),
        ({"name": "resnet"}, "experiments.report_mlp.model.norm: batchnorm cannot be used with"),
        ({"name": "vit"}, "experiments.report_mlp.model.name: vit cannot run the connectivity"),
    ],
)  # fmt: skip
def test_bad_models_are_named_at_parse_time(model, start):
    assert rejected(with_model(model)).startswith(start)


def test_models_are_completed_with_their_defaults():
    config = checked(with_model({"name": "resnet", "norm": "none", "skip": False}))
    model = config["experiments"]["report_mlp"]["model"]
    assert model == {"name": "resnet", "input_dim": 784, "num_classes": 10, "in_channels": 1,
                     "channels": [16, 32, 64], "blocks": 1, "skip": False, "norm": "none",
                     "activation": "relu", "stem_stride": 1}  # fmt: skip
    report = checked(default_config())["experiments"]["report_mlp"]["model"]
    assert report == {"name": "mlp", "input_dim": 784, "hidden": [512], "num_classes": 10,
                      "activation": "relu", "residual": False, "norm": "none"}  # fmt: skip


def with_architectures(**options) -> dict:
    """The default config with the architecture study's section updated (one level deep)."""
    config = default_config()
    section = config.setdefault("architectures", {})
    for key, value in options.items():
        section[key] = {**section.get(key, {}), **value} if isinstance(value, dict) else value
    return config


@pytest.mark.parametrize(
    ("options", "start"),
    [
        ({"mlp": {"depths": [0, 2]}}, "architectures.mlp.depths[0]: 0 is less than"),
        ({"models": {"vit": {"model": {"name": "vit", "patch_size": 5}}}},
         "architectures.models.vit.model.patch_size 5 does not divide the image side 28"),
        ({"models": {"x": {"model": {"name": "resnet", "residual": True}}}},
         "architectures.models.x.model.residual is not an option of model 'resnet'"),
        ({"models": {"x": {"model": {"name": "mlp", "hidden": [8, 4], "residual": True}}}},
         "architectures.models.x.model.residual needs equal hidden widths"),
        ({"models": {"mlp_plain_d1": {"model": {"name": "cnn"}}}},
         "architectures.models.mlp_plain_d1: the name of an MLP family member"),
        ({"models": {"cnn": {"model": {"name": "cnn"}, "settings": {"curvature": 5}}}},
         "architectures.models.cnn.settings.curvature: not a setting"),
        ({"models": {"cnn": {"model": {"name": "cnn"}, "settings": {"map_size": 0}}}},
         "architectures.models.cnn.settings.map_size: must be a positive number"),
        ({"settings": {"map_seeds": [5]}}, "architectures.settings.map_seeds: [5] are not among"),
        ({"train_subset": 100, "batch_size": 128}, "architectures.batch_size: 128 is larger than"),
        ({"mlp": {"variants": ["plain", "dense"]}}, "architectures.mlp.variants[1]: 'dense' is"),
    ],
)  # fmt: skip
def test_bad_architecture_settings_are_named_at_parse_time(options, start):
    assert rejected(with_architectures(**options)).startswith(start)


def with_sweep(**options) -> dict:
    """The default config with the sweep's section updated (one level deep)."""
    config = default_config()
    section = config.setdefault("sweep", {})
    for key, value in options.items():
        section[key] = {**section.get(key, {}), **value} if isinstance(value, dict) else value
    return config


def test_the_default_sweep_is_a_grid_of_at_least_48_models_over_5_axes():
    from lossgeom.sweep import sweep_models, varied_axes

    section = checked(default_config())["sweep"]
    assert len(sweep_models(section)) >= 48
    assert len(varied_axes(section)) >= 5
    assert len(section["seeds"]) >= 2


@pytest.mark.parametrize(
    ("options", "start"),
    [
        ({"axes": {"lr": []}}, "sweep.axes.lr has no values"),
        ({"axes": {"dataset": ["cifar10"]}}, "sweep.axes.dataset: 'cifar10' is unknown"),
        ({"axes": {"train_size": [70000]}}, "sweep.axes.train_size: 70000 is larger than the"),
        ({"axes": {"batch_size": [5000]}}, "sweep.axes.batch_size: 5000 is larger than the"),
        ({"axes": {"momentum": [0.9]}}, "config key 'momentum' is not allowed in sweep.axes"),
        ({"settings": {"stop_loss": 5.0}}, "sweep.stop_loss: 5.0 can never mark a trained model"),
        ({"settings": {"divergence_loss": 0.001}}, "sweep.divergence_loss: 0.001 must exceed"),
        ({"bounds": {"mc_sample": 3}}, "sweep.bounds.mc_sample is not a key of the bounds"),
        ({"bounds": {"sigma_min": 2.0}}, "sweep.bounds: "),
        ({"seeds": []}, "sweep.seeds: [] should be non-empty"),
    ],
)  # fmt: skip
def test_bad_sweeps_are_named_at_parse_time(options, start):
    assert rejected(with_sweep(**options)).startswith(start)


def test_the_reparametrisation_layer_needs_a_next_layer():
    config = with_sweep(axes={"depth": [1, 3]}, reparametrisation={"layer": 1})
    assert rejected(config).startswith("sweep.reparametrisation.layer: 1 has no next layer")
    checked(with_sweep(axes={"depth": [2, 3]}, reparametrisation={"layer": 1}))
