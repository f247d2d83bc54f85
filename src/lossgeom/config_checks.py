"""Configuration checks: a malformed configuration fails at parse time, with its key named.

The workflow calls :func:`check_config` once, at the top of ``workflow/rules/common.smk``,
before any rule is defined. Every failure is one :class:`ConfigError` whose message starts
with the offending key's dotted path (``experiments.report_mlp.optimizer.lr``), gives the
value and the reason, and fits on a line or two (no schema dump). In order:

1. :func:`check_finite`: no NaN or infinity anywhere (YAML ``.nan``, ``.inf``), which the
   schema's bounds would misreport or let through.
2. :func:`validate_config`: the JSON schema (draft 2020-12), except that a float such as
   ``2.0`` is no integer; an unknown key is named with its parent and the allowed keys.
   Snakemake's own ``validate`` then fills the defaults.
3. :func:`check_semantics`: what the schema cannot say (dataset sizes and files, model
   shapes the later stages need, seeds for the pair tables).

YAML syntax errors (checked in Snakemake 9.27): ``--configfile`` files are read by the
command line (``ConfigSettings.__post_init__`` -> ``snakemake.common.configfile.
load_configfile``) before the Snakefile is parsed, so no workflow code can see them; a
syntax error stops Snakemake with "Config file is not valid JSON or YAML" and neither file
nor line. Snakemake raises it while handling PyYAML's error, so ``snakemake --verbose``
prints PyYAML's message with the file, line and column in the chained traceback. The
``configfile:`` directive's file (``config/config.yaml``) is read when the Snakefile
reaches the directive, before ``common.smk`` is included: a :func:`load_yaml` call above the
directive in the Snakefile names its file and line; it only ever runs once every
``--configfile`` has parsed. :func:`load_yaml` also refuses a key named twice in one mapping,
which every YAML loader (Snakemake's included) resolves silently by keeping the last.

``snakemake --config key=value`` reads values with YAML's BaseLoader (strings inside lists
and mappings); :func:`coerce_cli_values` reads them again as YAML before the checks.

Example:
    >>> config = {"experiments": {"x": {}}, "landscape": {"span": float("nan")}}
    >>> check_finite(config)
    Traceback (most recent call last):
    ...
    lossgeom.config_checks.ConfigError: landscape.span: nan is not a finite number
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import reprlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ConfigError",
    "check_config",
    "check_finite",
    "check_semantics",
    "load_yaml",
    "validate_config",
]

_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict = 60, 60, 6, 4


class ConfigError(ValueError):
    """A configuration the pipeline cannot run; the message names the offending key."""


def key_path(parts: Iterable[Any]) -> str:
    """The dotted path of a key: ``["experiments", "x", "hidden", 0]`` -> ``experiments.x.hidden[0]``."""
    text = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a mapping may not name a key twice."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    """Construct a mapping, refusing a repeated key (PyYAML would keep the last silently)."""
    first: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            seen = first.setdefault(key, key_node.start_mark)
        except TypeError:  # an unhashable key: construct_mapping names it
            continue
        if seen is not key_node.start_mark:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {seen.line + 1}); the last would win",
                key_node.start_mark,
            )
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(path: str | os.PathLike) -> Any:
    """Parse a YAML (or JSON) file; a syntax error names the file, line and column.

    A key named twice in one mapping is an error too (YAML loaders keep the last silently).

    Raises:
        ConfigError: the file does not parse, or repeats a key.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{path}{where}: YAML syntax error: {problem}") from None


def coerce_cli_values(config: dict, cli: Mapping[str, Any] | None) -> None:
    """Re-read the string values of ``snakemake --config`` as YAML, in place.

    Snakemake parses ``--config key=value`` with YAML's BaseLoader, so lists and mappings
    arrive with strings inside (``seeds=[0,1]`` gives ``["0", "1"]``) and the schema would
    reject them. Each string that came from the command line is parsed again with YAML's safe
    loader (``"1"`` -> 1, ``"[0, 1]"`` -> [0, 1]); a value meant as a string stays one unless it
    reads as another YAML scalar (``yes``, ``null``), so quote such strings twice.

    Example:
        >>> config = {"seeds": ["0", "1"], "landscape": {"resolution": "5", "span": 1.0}}
        >>> coerce_cli_values(config, {"seeds": ["0", "1"], "landscape": {"resolution": "5"}})
        >>> config["seeds"], config["landscape"]
        ([0, 1], {'resolution': 5, 'span': 1.0})
    """

    def parse(value: Any) -> Any:
        if isinstance(value, str):
            try:
                return yaml.safe_load(value)
            except yaml.YAMLError:
                return value
        if isinstance(value, list):
            return [parse(item) for item in value]
        if isinstance(value, dict):
            return {key: parse(item) for key, item in value.items()}
        return value

    for key, value in (cli or {}).items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            coerce_cli_values(config[key], value)
        elif key in config:
            config[key] = parse(value)


# ----------------------------------------------------------------------------- finite numbers


def _floats(node: Any, parts: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], float]]:
    """Every float in a nested structure of mappings and lists, with its key path."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _floats(value, (*parts, key))
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            yield from _floats(value, (*parts, index))
    elif isinstance(node, float):
        yield parts, node


def check_finite(config: Mapping[str, Any]) -> None:
    """Reject NaN and infinite numbers anywhere in the configuration.

    Raises:
        ConfigError: naming the first such key (``landscape.span: nan is not a finite number``).
    """
    for parts, value in _floats(config):
        if not math.isfinite(value):
            raise ConfigError(f"{key_path(parts) or 'config'}: {value} is not a finite number")


# ----------------------------------------------------------------------------- schema


def _is_integer(checker: Any, instance: Any) -> bool:
    """JSON Schema's ``integer``, without floats (``2.0``) and booleans."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _with_defaults(validator_class: Any) -> Any:
    """The validator class that fills defaults as it goes, as Snakemake's ``validate`` does.

    Unlike JSON Schema (and Snakemake), it takes no float as an ``integer``: ``epochs: 2.0``
    stops the parse without naming the key, ``landscape.resolution: 5.0`` a job (flags are
    read with ``int``) and ``seeds: [0, 1.0]`` the DAG (``seed1.0``), so each is named here.
    """
    from jsonschema import validators

    check_properties = validator_class.VALIDATORS["properties"]

    def fill(validator: Any, properties: dict, instance: Any, schema: dict) -> Iterator[Any]:
        if validator.is_type(instance, "object"):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from check_properties(validator, properties, instance, schema)

    types = validator_class.TYPE_CHECKER.redefine("integer", _is_integer)
    return validators.extend(validator_class, {"properties": fill}, type_checker=types)


def _unknown_key_message(error: Any) -> str:
    """An unknown key: its name, its parent and the allowed keys (and the nearest one)."""
    allowed = sorted(error.schema.get("properties", {}))
    unknown = sorted(str(key) for key in error.instance if key not in allowed)
    parent = key_path(error.absolute_path)
    where = f"in {parent}" if parent else "at the top level"
    names = ", ".join(repr(key) for key in unknown)
    noun = "key" if len(unknown) == 1 else "keys"
    verb = "is" if len(unknown) == 1 else "are"
    message = f"config {noun} {names} {verb} not allowed {where}; allowed: {', '.join(allowed)}"
    close = difflib.get_close_matches(unknown[0], allowed, n=1) if unknown else []
    return message + (f" (did you mean {close[0]!r}?)" if close else "")


def _schema_message(error: Any) -> str:
    """One line for a schema violation: the key's dotted path, the value and the reason."""
    if error.validator == "additionalProperties" and error.validator_value is False:
        return _unknown_key_message(error)
    path = key_path(error.absolute_path) or "config"
    if "propertyNames" in error.absolute_schema_path:
        return f"{path}: the name {error.instance!r} is not allowed ({error.message})"
    reason = error.message.replace(repr(error.instance), _SHORT.repr(error.instance))
    if len(reason) > 300:
        reason = reason[:297] + "..."
    return f"{path}: {reason}"


def validate_config(config: dict, schema_path: str | os.PathLike) -> None:
    """Validate ``config`` against the JSON schema, then fill its defaults in place.

    The check is the one Snakemake's ``validate`` makes (the schema's draft, defaults filled
    on a copy), reported as one short message; ``snakemake.utils.validate`` then fills the
    defaults of ``config`` itself, as it always has.

    Args:
        config: the merged configuration (changed in place: defaults are filled).
        schema_path: the YAML or JSON schema file.

    Raises:
        ConfigError: the first violation (jsonschema's best match), with the key named.
    """
    from jsonschema import Draft202012Validator, exceptions, validators
    from snakemake.utils import validate

    schema = load_yaml(str(schema_path))
    draft = validators.validator_for(schema, default=Draft202012Validator)
    validator = _with_defaults(draft)(schema)
    error = exceptions.best_match(validator.iter_errors(copy.deepcopy(config)))
    if error is not None:
        raise ConfigError(_schema_message(error))
    validate(config, str(schema_path))


# ----------------------------------------------------------------------------- semantics


def _check_optimizers(key: str, experiment: Mapping[str, Any]) -> None:
    """The experiment's optimiser, and each seed's with its override applied, as run.

    ``nesterov: true`` needs SGD with momentum: PyTorch's SGD refuses it without momentum
    (at the first training job), and Adam would ignore it silently.
    """
    optimizer = experiment["optimizer"]
    runs = [(f"{key}.optimizer", optimizer)] + [
        (f"{key}.seed_overrides[{i}].optimizer", {**optimizer, **override["optimizer"]})
        for i, override in enumerate(experiment.get("seed_overrides") or [])
        if "optimizer" in override
    ]
    for where, spec in runs:
        if not spec.get("nesterov"):
            continue
        if spec.get("name", "sgd") != "sgd":
            raise ConfigError(
                f"{where}.nesterov: true needs name: sgd; {spec['name']} has no Nesterov "
                "variant and would ignore it"
            )
        if not spec.get("momentum"):
            raise ConfigError(
                f"{where}.nesterov: true needs momentum > 0, got {spec.get('momentum', 0.0)}"
            )


def _check_experiment(name: str, experiment: Mapping[str, Any], datasets: Mapping) -> None:
    """One experiment: batch size, optimisers, and model shapes the later stages can run."""
    key = f"experiments.{name}"
    _check_optimizers(key, experiment)
    model = experiment["model"]
    info = datasets.get(experiment["dataset"])  # an unknown one: the workflow says so
    sizes = [(f"{key}.batch_size", experiment["batch_size"])] + [
        (f"{key}.seed_overrides[{i}].batch_size", override["batch_size"])
        for i, override in enumerate(experiment.get("seed_overrides") or [])
        if "batch_size" in override
    ]
    for where, size in sizes:
        if info is not None and size > info.train_size:
            raise ConfigError(
                f"{where}: {size} is larger than the {info.name} training set "
                f"({info.train_size} examples)"
            )
    if info is not None:
        model.setdefault("input_dim", info.input_dim)
        model.setdefault("num_classes", info.num_classes)
    from lossgeom.models import ModelConfigError, build_model, complete_spec  # imports torch

    try:  # every model option, filled and checked by building the network once
        model.update(complete_spec(model))
        network = build_model(model)
    except ModelConfigError as error:
        raise ConfigError(f"{key}.{error}") from None
    name, hidden = model["name"], model.get("hidden")
    if name == "mlp" and not hidden:
        raise ConfigError(
            f"{key}.model.hidden: [] (no hidden layer) cannot run the connectivity stage, "
            "whose weight matching permutes hidden units; give at least one hidden layer"
        )
    if name == "vit":
        raise ConfigError(
            f"{key}.model.name: vit cannot run the connectivity stage (weight matching is not "
            "applicable to attention); the architecture study (architectures:) measures it"
        )
    if model.get("norm") == "batchnorm":
        raise ConfigError(
            f"{key}.model.norm: batchnorm cannot be used with the bounds stage (bounds), "
            "whose Gaussian posterior cannot sample through BatchNorm (its statistics depend "
            "on the data); use layernorm or none"
        )
    from lossgeom.posterior import unsupported_layer

    layer = unsupported_layer(network)
    if layer is not None:
        raise ConfigError(
            f"{key}.model.name: {name} cannot run the bounds stage: its Gaussian posterior "
            f"cannot sample through {layer} (supported: Linear, Conv2d, LayerNorm)"
        )


def _check_checksums(checksums: Mapping[str, Any] | None, datasets: Mapping) -> None:
    """``data.checksums.<dataset>`` names exactly the dataset's four files."""
    for dataset, files in (checksums or {}).items():
        key = f"data.checksums.{dataset}"
        if dataset not in datasets:
            raise ConfigError(f"{key}: unknown dataset; known: {sorted(datasets)}")
        expected = set(datasets[dataset].files)
        missing, unknown = sorted(expected - set(files)), sorted(set(files) - expected)
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if unknown:
                parts.append(f"unknown {unknown}")
            raise ConfigError(
                f"{key} must name exactly the four {dataset} files {sorted(expected)}; "
                + ", ".join(parts)
            )


def _used_datasets(config: Mapping[str, Any], datasets: Mapping) -> list[str]:
    """The registry datasets of the experiments that run (``select_experiments``, or all)."""
    experiments = config["experiments"]
    names = config.get("select_experiments") or list(experiments)
    used = {experiments[name]["dataset"] for name in names if name in experiments}
    dynamics = config.get("dynamics", {})
    if any(dynamics.get(part, {}).get("enabled") for part in ("eos", "escape", "temperature")):
        used.add(dynamics["dataset"])
    if config.get("architectures", {}).get("enabled"):
        used.add(config["architectures"]["dataset"])
    sweep = config.get("sweep", {})
    if sweep.get("enabled"):
        used.update(sweep["axes"]["dataset"])
    return sorted(used & set(datasets))


def _check_mirrors(config: Mapping[str, Any], datasets: Mapping) -> None:
    """The mirror folder each dataset that runs will use exists and holds its four files."""
    mirrors = config["data"]["mirrors"]
    for dataset, folder in mirrors.items():
        if isinstance(folder, str) and not folder.strip():
            raise ConfigError(
                f"data.mirrors.{dataset}: must name a folder, got {folder!r} (null, or no "
                "entry, downloads the dataset)"
            )
    for dataset in _used_datasets(config, datasets):
        info = datasets[dataset]
        from_environment = os.environ.get(info.mirror_variable)
        folder = from_environment or mirrors.get(dataset)
        prepared = Path(config["data"]["root"]) / dataset / f"{dataset}.pt"
        if not folder or prepared.is_file():
            continue  # downloaded, or already prepared (the mirror is not read again)
        key = (
            f"{info.mirror_variable} (set in the environment; it wins over data.mirrors.{dataset})"
            if from_environment
            else f"data.mirrors.{dataset}"
        )
        if not Path(folder).is_dir():
            raise ConfigError(f"{key}: the mirror folder {folder} does not exist")
        missing = [name for name in info.files if not (Path(folder) / name).is_file()]
        if missing:
            raise ConfigError(
                f"{key}: the mirror folder {folder} lacks {', '.join(missing)} (a mirror "
                f"holds the four {dataset} files)"
            )


def _check_data_root(root: str) -> None:
    """``data.root`` names a folder: not an empty string, nor an existing file."""
    if not root.strip():
        raise ConfigError(f"data.root: must name a folder, got {root!r}")
    if Path(root).exists() and not Path(root).is_dir():
        raise ConfigError(f"data.root: {root} is a file, not a folder")


def _check_pairs(pairs: list[list[int]] | None) -> None:
    """``connectivity.pairs``: null (every pair) or at least one pair, each named once.

    Whether each pair names two configured seeds is the workflow's check (``seed_pairs``).
    """
    if pairs is None:
        return
    if not pairs:
        raise ConfigError(
            "connectivity.pairs: [] names no pair, but the connectivity tables and figures "
            "need one; give [seed_a, seed_b] pairs, or null for every pair of the seeds"
        )
    for index, pair in enumerate(pairs):
        if pair in pairs[:index]:
            raise ConfigError(f"connectivity.pairs[{index}]: {pair} is named twice")


def _check_dynamics(dynamics: Mapping[str, Any], datasets: Mapping) -> None:
    """Sizes of the dynamics study against its dataset and against each other."""
    info = datasets.get(dynamics["dataset"])
    if info is None:
        raise ConfigError(
            f"dynamics.dataset: {dynamics['dataset']!r} is unknown; known: {sorted(datasets)}"
        )
    n_train, n_test = info.train_size, info.test_size
    eos, noise, escape, temperature = (
        dynamics[k] for k in ("eos", "noise", "escape", "temperature")
    )
    checks = [
        (eos["enabled"], "dynamics.eos.subset", eos["subset"], "<=", n_train, "the training set"),
        (noise["enabled"], "dynamics.noise.subset", noise["subset"], "<=", n_train, "the training set"),
        (noise["enabled"], "dynamics.noise.hessian_subset", noise["hessian_subset"], "<=", n_train, "the training set"),
        (noise["enabled"], "dynamics.noise.top_k", noise["top_k"], "<", noise["subset"], "dynamics.noise.subset (Sigma has rank subset - 1)"),
        (escape["enabled"], "dynamics.escape.train_size", escape["train_size"], "<=", n_train, "the training set"),
        (escape["enabled"], "dynamics.escape.test_size", escape["test_size"], "<=", n_test, "the test set"),
        (escape["enabled"], "dynamics.escape.top_k", escape["top_k"], "<", escape["train_size"], "dynamics.escape.train_size (Sigma has rank train_size - 1)"),
        (escape["enabled"], "dynamics.escape.batch_size", escape["batch_size"], "<=", escape["train_size"], "dynamics.escape.train_size"),
        (temperature["enabled"], "dynamics.temperature.train_subset", temperature["train_subset"], "<=", n_train, "the training set"),
        (temperature["enabled"], "dynamics.temperature.curvature_subset", temperature["curvature_subset"], "<=", temperature["train_subset"], "dynamics.temperature.train_subset"),
    ]  # fmt: skip
    if temperature["enabled"]:
        checks += [
            (True, "dynamics.temperature.batch_sizes", size, "<=", temperature["train_subset"],
             "dynamics.temperature.train_subset")
            for size in temperature["batch_sizes"]
        ]  # fmt: skip
    if escape["enabled"] and "gd" not in escape["dynamics"]:
        raise ConfigError(
            f"dynamics.escape.dynamics: {escape['dynamics']} lacks 'gd', the reference every "
            "escape is judged against"
        )
    for enabled, key, value, relation, limit, what in checks:
        if enabled and not (value <= limit if relation == "<=" else value < limit):
            bound = "larger than" if relation == "<=" else "at least"
            raise ConfigError(f"{key}: {value} is {bound} {what} ({limit})")


def _check_architectures(section: Mapping[str, Any], datasets: Mapping) -> None:
    """The architecture study: sizes against its dataset, its seeds, and every model it builds."""
    if not section["enabled"]:
        return
    info = datasets.get(section["dataset"])
    if info is None:
        raise ConfigError(
            f"architectures.dataset: {section['dataset']!r} is unknown; known: {sorted(datasets)}"
        )
    for key, value, limit, what in (
        ("train_subset", section["train_subset"], info.train_size, "the training set"),
        ("test_subset", section["test_subset"], info.test_size, "the test set"),
        (
            "batch_size",
            section["batch_size"],
            section["train_subset"],
            "architectures.train_subset",
        ),
    ):
        if value > limit:
            raise ConfigError(f"architectures.{key}: {value} is larger than {what} ({limit})")
    missing = sorted(set(section["settings"]["map_seeds"]) - set(section["seeds"]))
    if missing:
        raise ConfigError(
            f"architectures.settings.map_seeds: {missing} are not among architectures.seeds "
            f"{section['seeds']}"
        )
    from lossgeom.architectures import study_entries, study_jobs, study_settings  # torch
    from lossgeom.models import ModelConfigError, build_model

    try:
        entries = study_entries(section)
        study_jobs(section)
        for name in section["models"]:
            study_settings(section, name)
    except ValueError as error:  # a name clash, an unknown model or option: the key is named
        raise ConfigError(str(error)) from None
    for name, entry in entries.items():
        where = (
            f"architectures.models.{name}"
            if name in section["models"]
            else f"architectures.mlp ({name})"
        )
        model = {"input_dim": info.input_dim, "num_classes": info.num_classes, **entry["model"]}
        try:
            build_model(model)
        except ModelConfigError as error:
            raise ConfigError(f"{where}.{error}") from None
        if entry["batch_size"] > section["train_subset"]:
            raise ConfigError(
                f"{where}.batch_size: {entry['batch_size']} is larger than "
                f"architectures.train_subset ({section['train_subset']})"
            )


def check_semantics(config: Mapping[str, Any], datasets: Mapping) -> None:
    """What the schema cannot say, on a validated configuration (defaults filled).

    Checks ``data.root`` (a folder, not a file); at least two seeds (connectivity runs on
    every pair); each experiment's batch size against its training set, its optimisers
    (Nesterov needs SGD with momentum, seed overrides applied) and its model against the
    stages that run on it (residual widths, a hidden layer for weight matching, no BatchNorm
    under the bounds stage); ``data.checksums``; no empty ``data.mirrors`` entry, and the
    mirror folders that will be used (an environment variable ``LOSSGEOM_<DATASET>_MIRROR``
    wins over ``data.mirrors``); ``connectivity.pairs`` (not empty, no pair twice); and that
    Hessian directions have two eigenvectors. Datasets the registry does not know are left to
    the workflow's own check.

    Args:
        config: the configuration, validated by :func:`validate_config`.
        datasets: the dataset registry (:data:`lossgeom.data.DATASETS`).

    Raises:
        ConfigError: the first problem, with the key named.
    """
    _check_data_root(config["data"]["root"])
    seeds = config["seeds"]
    if len(seeds) < 2:
        raise ConfigError(
            f"seeds: connectivity and the pair tables need at least two seeds, got {seeds}"
        )
    for name, experiment in config["experiments"].items():
        _check_experiment(name, experiment, datasets)
    _check_checksums(config["data"].get("checksums"), datasets)
    _check_mirrors(config, datasets)
    _check_pairs(config["connectivity"]["pairs"])
    _check_dynamics(config["dynamics"], datasets)
    _check_architectures(config["architectures"], datasets)
    _check_sweep(config["sweep"], config["bounds"], datasets)
    curvature = config["curvature"]
    if curvature["trace_method"] == "krylov" and curvature["method"] != "lanczos":
        raise ConfigError(
            "curvature.trace_method 'krylov' deflates the Lanczos basis of the eigenvalues, "
            f"so it needs curvature.method 'lanczos' (got {curvature['method']!r})"
        )
    if curvature["trace_method"] == "hutchpp" and curvature["trace_matvecs"] < 6:
        raise ConfigError(
            f"curvature.trace_matvecs: Hutch++ needs at least 6 products, got {curvature['trace_matvecs']}"
        )
    top_k = curvature["top_k"]
    if "hessian" in config["landscape"]["directions"] and top_k < 2:
        raise ConfigError(
            "landscape.directions includes 'hessian', which needs curvature.top_k >= 2 "
            f"(got {top_k})"
        )


def _check_sweep(section: Mapping[str, Any], bounds: Mapping[str, Any], datasets: Mapping) -> None:
    """The sweep: its grid, datasets and sizes, its stopping criterion and its bounds overrides."""
    if not section["enabled"]:
        return
    from lossgeom.bounds import BoundError
    from lossgeom.certificates import Settings
    from lossgeom.sweep import SweepError, SweepSettings, sweep_models

    try:
        models = sweep_models(section)
        SweepSettings(**section["settings"])
    except SweepError as error:
        raise ConfigError(str(error)) from None
    axes = section["axes"]
    for dataset in axes["dataset"]:
        if dataset not in datasets:
            raise ConfigError(
                f"sweep.axes.dataset: {dataset!r} is unknown; known: {sorted(datasets)}"
            )
        limit = datasets[dataset].train_size
        if max(axes["train_size"]) > limit:
            raise ConfigError(
                f"sweep.axes.train_size: {max(axes['train_size'])} is larger than the "
                f"{dataset} training set ({limit})"
            )
    if max(axes["batch_size"]) > min(axes["train_size"]):
        raise ConfigError(
            f"sweep.axes.batch_size: {max(axes['batch_size'])} is larger than the smallest "
            f"sweep.axes.train_size ({min(axes['train_size'])})"
        )
    unknown = sorted(set(section["bounds"]) - (set(bounds) - {"track_seed"}))
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(bounds), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else " (see the bounds section's keys)"
        raise ConfigError(f"sweep.bounds.{unknown[0]} is not a key of the bounds section{hint}")
    try:
        Settings.from_mapping({**bounds, **section["bounds"], "final_epoch": True})
    except BoundError as error:
        raise ConfigError(f"sweep.bounds: {error}") from None
    except (TypeError, KeyError) as error:
        raise ConfigError(f"sweep.bounds: {error}") from None
    if len(models) < 2:
        raise ConfigError(f"sweep: the grid holds {len(models)} model; a ranking needs two")
    layer, depth = section["reparametrisation"]["layer"], axes["depth"][0]
    if layer >= depth:
        raise ConfigError(
            f"sweep.reparametrisation.layer: {layer} has no next layer to rescale in the grid's "
            f"first configuration (depth {depth}: layers 0 to {depth - 1} have one)"
        )


def check_config(config: dict, datasets: Mapping, schema_path: str | os.PathLike) -> None:
    """Every check, in order: finite numbers, the schema (defaults filled), the semantics.

    Args:
        config: the merged configuration (changed in place: defaults are filled).
        datasets: the dataset registry (:data:`lossgeom.data.DATASETS`).
        schema_path: the configuration's JSON schema.

    Raises:
        ConfigError: the first problem, with the key named.
    """
    check_finite(config)
    validate_config(config, schema_path)
    check_semantics(config, datasets)
