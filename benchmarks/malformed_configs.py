"""Sweep: how the pipeline treats malformed configurations, one Snakemake run per case.

Every case is one kind of malformed configuration: a ``--configfile`` (YAML text, or a dict
dumped as YAML) or ``--config`` entries, and the text (usually the offending key) that its
error message should contain. Each case runs in a fresh folder as

    python -m snakemake --snakefile Snakefile --directory <tmp> --configfile
        config/presets/smoke.yaml <base.yaml> <case.yaml> [--config ...] --cores 1 -n all

where ``base.yaml`` points ``data`` at a valid synthetic MNIST mirror (left out by the cases
that are about ``data`` themselves), so that only the malformation matters. A dry run that
succeeds (the malformation was not caught while the workflow was parsed) is followed by a
real run (``--cores 2``, stopped after ``--run-timeout`` seconds or at the first failing job).
Each case is classified as

* ``rejected_at_parse``: non-zero exit, nothing under ``results/`` or ``resources/``, and the
  expected text in the output;
* ``rejected_unclear``: rejected before any job, but the expected text is not in the output;
* ``failed_after_job_start``: the dry run passed and a job of the real run failed;
* ``accepted``: the real run went on without a failure (silently accepted).

Usage (from the repository root, machine otherwise idle; about 10 s per case):
    python benchmarks/malformed_configs.py [--output /tmp/malformed_configs.json]
    python benchmarks/malformed_configs.py --only seeds_one bounds_delta_sum   # a few cases
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import write_synthetic_mirror  # noqa: E402

SMOKE = REPO / "config" / "presets" / "smoke.yaml"
CLASSES = ["rejected_at_parse", "rejected_unclear", "failed_after_job_start", "accepted"]
EXP = "experiments.report_mlp"
FAILURE_MARKS = ("Error in rule", "Error in group")


@dataclass
class Case:
    """One malformed configuration.

    ``config`` is a ``--configfile`` (YAML text or a dict), ``cli`` the ``--config`` entries;
    ``key`` is the text (or every text of a tuple) the error must contain; ``data`` leaves the
    base file (the valid synthetic mirror) out; ``expect`` is the class this case should get.
    """

    name: str
    key: str | tuple[str, ...]
    config: str | dict | None = None
    cli: list[str] = field(default_factory=list)
    data: bool = False
    expect: str = "rejected_at_parse"


@dataclass
class Context:
    """Paths and checksums the data cases need."""

    mirror: str
    md5s: dict[str, str]
    partial_mirror: str
    a_file: str


def exp(**settings: Any) -> dict:
    """A configfile that changes the smoke preset's experiment."""
    return {"experiments": {"report_mlp": settings}}


def data(ctx: Context, mirrors: Any = None, checksums: Any = None, **more: Any) -> dict:
    """A full ``data`` section (the case file alone configures the data)."""
    section = {"mirrors": {"mnist": ctx.mirror} if mirrors is None else mirrors}
    section["checksums"] = {"mnist": ctx.md5s} if checksums is None else checksums
    return {"data": {**section, **more}}


def top_level_cases() -> list[Case]:
    """Seeds, device, threads and select_experiments."""
    return [
        Case("seeds_string", "seeds", {"seeds": "0,1"}),
        Case("seeds_negative", "seeds[1]", {"seeds": [0, -1]}),
        Case("seeds_fraction", "seeds[1]", {"seeds": [0, 1.5]}),
        Case("seeds_integral_float", "seeds[1]", {"seeds": [0, 1.0]}),
        Case("seeds_bool", ("seeds[", "is not of type 'integer'"), {"seeds": [True, False]}),
        Case("seeds_empty", "seeds", {"seeds": []}),
        Case("seeds_one", "seeds", {"seeds": [0]}),
        Case("seeds_duplicate", "seeds", {"seeds": [1, 1]}),
        Case("seeds_nan", "seeds[1]", "seeds: [0, .nan]\n"),
        Case("seeds_misspelled", ("'seed'", "did you mean 'seeds'"), {"seed": [0, 1]}),
        Case("device_unknown", "device", {"device": "gpu"}),
        Case("device_int", "device", {"device": 0}),
        Case(
            "device_cuda_without_gpu", "cuda", {"device": "cuda"}, expect="failed_after_job_start"
        ),
        Case("threads_zero", "threads", {"threads": 0}),
        Case("threads_string", "threads", {"threads": "two"}),
        Case("threads_fraction", "threads", {"threads": 1.5}),
        Case("threads_integral_float", "threads", {"threads": 2.0}),
        Case("select_unknown", "select_experiments", {"select_experiments": ["nope"]}),
        Case("select_string", "select_experiments", {"select_experiments": "report_mlp"}),
        Case("select_empty", "select_experiments", {"select_experiments": []}),
        Case("select_duplicate", "select_experiments", {"select_experiments": ["report_mlp"] * 2}),
        Case("select_misspelled", "'select_experiment'", {"select_experiment": ["report_mlp"]}),
        Case("unknown_top_level_key", ("'curvture'", "did you mean"), {"curvture": {"top_k": 3}}),
    ]


def data_cases(ctx: Context) -> list[Case]:
    """data.root, data.mirrors and data.checksums."""
    three = dict(list(ctx.md5s.items())[:3])
    renamed = {**three, "train-images.gz": next(iter(ctx.md5s.values()))}
    first = next(iter(ctx.md5s))
    return [
        Case("data_root_empty", "data.root", {"data": {"root": ""}}),
        Case("data_root_blank", "data.root", {"data": {"root": "   "}}),
        Case("data_root_int", "data.root", {"data": {"root": 5}}),
        Case("data_root_is_a_file", "data.root", {"data": {"root": ctx.a_file}}),
        Case("data_unknown_key", ("'mirror'", "data"), {"data": {"mirror": {"mnist": ctx.mirror}}}),
        Case("data_mirrors_list", "data.mirrors", {"data": {"mirrors": [ctx.mirror]}}),
        Case("data_mirrors_unknown_dataset", "data.mirrors.mnsit", {"data": {"mirrors": {"mnsit": ctx.mirror}}}),
        Case("mirror_missing_folder", "data.mirrors.mnist", data(ctx, {"mnist": "/nonexistent/mnist"}), data=True),
        Case("mirror_lacks_a_file", "data.mirrors.mnist", data(ctx, {"mnist": ctx.partial_mirror}), data=True),
        Case("mirror_empty_string", "data.mirrors.mnist", data(ctx, {"mnist": ""}), data=True),
        Case("mirror_int", "data.mirrors.mnist", data(ctx, {"mnist": 5}), data=True),
        Case("checksums_three_files", "data.checksums.mnist", data(ctx, checksums={"mnist": three}), data=True),
        Case("checksums_wrong_file", "data.checksums.mnist", data(ctx, checksums={"mnist": renamed}), data=True),
        Case("checksums_empty_map", "data.checksums.mnist", data(ctx, checksums={"mnist": {}}), data=True),
        Case("checksums_null_dataset", "data.checksums.mnist", data(ctx, checksums={"mnist": None}), data=True),
        Case("checksums_bad_md5", f"data.checksums.mnist.{first}", data(ctx, checksums={"mnist": {**ctx.md5s, first: "xyz"}}), data=True),
        Case("checksums_unknown_dataset", "data.checksums.mnsit", data(ctx, checksums={"mnist": ctx.md5s, "mnsit": ctx.md5s}), data=True),
        Case("checksums_list", "data.checksums", data(ctx, checksums=[ctx.md5s]), data=True),
        Case("checksums_wrong_values", ("fails its MD5 check", ctx.mirror), data(ctx, checksums={"mnist": dict.fromkeys(ctx.md5s, "0" * 32)}), data=True, expect="failed_after_job_start"),
    ]  # fmt: skip


def experiment_cases() -> list[Case]:
    """experiments.*: dataset, model, epochs, batch_size (optimizer and overrides below)."""
    return [
        Case("experiment_null", EXP, {"experiments": {"report_mlp": None}}),
        Case("experiment_bad_name", "'1st'", {"experiments": {"1st": {}}}),
        Case("experiment_unknown_key", ("'epoch'", EXP), exp(epoch=3)),
        Case("dataset_unknown", f"{EXP}.dataset", exp(dataset="cifar10")),
        Case("dataset_wrong_case", f"{EXP}.dataset", exp(dataset="MNIST")),
        Case("dataset_int", f"{EXP}.dataset", exp(dataset=7)),
        Case("model_unknown_key", ("'hiden'", f"{EXP}.model"), exp(model={"hiden": [8]})),
        Case("model_name_unknown", f"{EXP}.model.name", exp(model={"name": "transformer"})),
        Case("model_hidden_not_a_list", f"{EXP}.model.hidden", exp(model={"hidden": 16})),
        Case("model_hidden_zero_width", f"{EXP}.model.hidden[1]", exp(model={"hidden": [16, 0]})),
        Case("model_hidden_empty", f"{EXP}.model.hidden", exp(model={"hidden": []})),
        Case("model_activation_misspelled", f"{EXP}.model.activation", exp(model={"activation": "Relu"})),
        Case("model_norm_misspelled", f"{EXP}.model.norm", exp(model={"norm": "batch_norm"})),
        Case("model_batchnorm_with_bounds", f"{EXP}.model.norm", exp(model={"norm": "batchnorm"})),
        Case("model_residual_unequal_widths", f"{EXP}.model.hidden", exp(model={"hidden": [16, 8], "residual": True})),
        Case("model_residual_string", f"{EXP}.model.residual", exp(model={"residual": "yes"})),
        Case("model_num_classes_mismatch", f"{EXP}.model.num_classes", exp(model={"num_classes": 5})),
        Case("model_num_classes_one", f"{EXP}.model.num_classes", exp(model={"num_classes": 1})),
        Case("model_input_dim_mismatch", f"{EXP}.model.input_dim", exp(model={"input_dim": 100})),
        Case("epochs_zero", f"{EXP}.epochs", exp(epochs=0)),
        Case("epochs_string", f"{EXP}.epochs", exp(epochs="two")),
        Case("epochs_integral_float", f"{EXP}.epochs", exp(epochs=2.0)),
        Case("batch_size_larger_than_training_set", f"{EXP}.batch_size", exp(batch_size=60001)),
        Case("batch_size_negative", f"{EXP}.batch_size", exp(batch_size=-32)),
        Case("batch_size_fraction", f"{EXP}.batch_size", exp(batch_size=12.5)),
        Case("batch_size_integral_float", f"{EXP}.batch_size", exp(batch_size=32.0)),
    ]  # fmt: skip


def optimizer_cases() -> list[Case]:
    """experiments.*.optimizer and experiments.*.seed_overrides."""
    key, over = f"{EXP}.optimizer", f"{EXP}.seed_overrides"
    return [
        Case("optimizer_unknown_key", ("'learning_rate'", key), exp(optimizer={"learning_rate": 0.1})),
        Case("optimizer_lr_negative", f"{key}.lr", exp(optimizer={"lr": -0.1})),
        Case("optimizer_lr_zero", f"{key}.lr", exp(optimizer={"lr": 0})),
        Case("optimizer_lr_nan", f"{key}.lr", exp(optimizer={"lr": float("nan")})),
        Case("optimizer_lr_string", f"{key}.lr", exp(optimizer={"lr": "fast"})),
        Case("optimizer_momentum_one", f"{key}.momentum", exp(optimizer={"momentum": 1.0})),
        Case("optimizer_weight_decay_minus_inf", f"{key}.weight_decay", exp(optimizer={"weight_decay": float("-inf")})),
        Case("optimizer_name_upper_case", f"{key}.name", exp(optimizer={"name": "SGD"})),
        Case("optimizer_nesterov_without_momentum", f"{key}.nesterov", exp(optimizer={"nesterov": True, "momentum": 0.0})),
        Case("optimizer_adam_with_nesterov", f"{key}.nesterov", exp(optimizer={"name": "adam", "nesterov": True})),
        Case("seed_overrides_unknown_seed", over, exp(seed_overrides=[{"seed": 7, "optimizer": {"lr": 1.0}}])),
        Case("seed_overrides_duplicate_seed", over, exp(seed_overrides=[{"seed": 1}, {"seed": 1}])),
        Case("seed_overrides_missing_seed", f"{over}[0]", exp(seed_overrides=[{"optimizer": {"lr": 1.0}}])),
        Case("seed_overrides_unknown_key", ("'epochs'", f"{over}[0]"), exp(seed_overrides=[{"seed": 1, "epochs": 3}])),
        Case("seed_overrides_not_a_list", over, exp(seed_overrides={"seed": 1})),
        Case("seed_overrides_bad_lr", f"{over}[0].optimizer.lr", exp(seed_overrides=[{"seed": 1, "optimizer": {"lr": -1}}])),
        Case("seed_overrides_batch_too_large", f"{over}[0].batch_size", exp(seed_overrides=[{"seed": 1, "batch_size": 70000}])),
        Case("seed_overrides_nesterov_without_momentum", f"{over}[0].optimizer", exp(seed_overrides=[{"seed": 1, "optimizer": {"nesterov": True, "momentum": 0.0}}])),
    ]  # fmt: skip


def measurement_cases() -> list[Case]:
    """training_check, curvature, density and landscape."""
    return [
        Case("training_check_ratio_one", "training_check.max_loss_ratio", {"training_check": {"max_loss_ratio": 1}}),
        Case("training_check_margin_one", "training_check.chance_margin", {"training_check": {"chance_margin": 1}}),
        Case("training_check_nan", "training_check.chance_margin", {"training_check": {"chance_margin": float("nan")}}),
        Case("training_check_unknown_key", ("'max_loss'", "training_check"), {"training_check": {"max_loss": 3}}),
        Case("curvature_null", "curvature", {"curvature": None}),
        Case("curvature_subset_too_large", "curvature.subset", {"curvature": {"subset": 60001}}),
        Case("curvature_top_k_zero", "curvature.top_k", {"curvature": {"top_k": 0}}),
        Case("curvature_top_k_one_with_hessian", "curvature.top_k", {"curvature": {"top_k": 1}}),
        Case("curvature_method_unknown", "curvature.method", {"curvature": {"method": "arnoldi"}}),
        Case("curvature_trace_matvecs_small", "curvature.trace_matvecs", {"curvature": {"trace_matvecs": 1}}),
        Case("curvature_hutchpp_matvecs_small", "curvature.trace_matvecs", {"curvature": {"trace_method": "hutchpp", "trace_matvecs": 5}}),
        Case("curvature_krylov_with_power", "curvature.trace_method", {"curvature": {"method": "power"}}),
        Case("measure_threads_zero", "measure_threads", {"measure_threads": 0}),
        Case("curvature_tol_zero", "curvature.tol", {"curvature": {"tol": 0}}),
        Case("curvature_unknown_key", ("'topk'", "curvature"), {"curvature": {"topk": 3}}),
        Case("density_n_iter_one", "density.n_iter", {"density": {"n_iter": 1}}),
        Case("density_n_grid_string", "density.n_grid", {"density": {"n_grid": "many"}}),
        Case("density_unknown_key", ("'n_iters'", "density"), {"density": {"n_iters": 10}}),
        Case("landscape_directions_empty", "landscape.directions", {"landscape": {"directions": []}}),
        Case("landscape_directions_unknown", "landscape.directions[0]", {"landscape": {"directions": ["pca"]}}),
        Case("landscape_directions_duplicate", "landscape.directions", {"landscape": {"directions": ["random", "random"]}}),
        Case("landscape_resolution_one", "landscape.resolution", {"landscape": {"resolution": 1}}),
        Case("landscape_resolution_integral_float", "landscape.resolution", {"landscape": {"resolution": 5.0}}),
        Case("landscape_span_zero", "landscape.span", {"landscape": {"span": 0}}),
        Case("landscape_span_inf", "landscape.span", {"landscape": {"span": float("inf")}}),
        Case("landscape_include_bias_string", "landscape.include_bias", 'landscape: {include_bias: "no"}\n'),
        Case("landscape_unknown_key", ("'resolutoin'", "did you mean 'resolution'"), {"landscape": {"resolutoin": 5}}),
    ]  # fmt: skip


def pair_and_bound_cases() -> list[Case]:
    """connectivity and bounds."""
    return [
        Case("pairs_unknown_seed", "connectivity.pairs", {"connectivity": {"pairs": [[0, 5]]}}),
        Case("pairs_equal_seeds", "connectivity.pairs", {"connectivity": {"pairs": [[1, 1]]}}),
        Case("pairs_three_seeds", "connectivity.pairs[0]", {"connectivity": {"pairs": [[0, 1, 2]]}}),
        Case("pairs_not_nested", ("connectivity.pairs[", "is not of type 'array'"), {"connectivity": {"pairs": [0, 1]}}),
        Case("pairs_duplicate", "connectivity.pairs", {"connectivity": {"pairs": [[0, 1], [0, 1]]}}),
        Case("pairs_empty", "connectivity.pairs", {"connectivity": {"pairs": []}}),
        Case("connectivity_n_points_two", "connectivity.n_points", {"connectivity": {"n_points": 2}}),
        Case("connectivity_curve_momentum_one", "connectivity.curve_momentum", {"connectivity": {"curve_momentum": 1}}),
        Case("connectivity_curve_optimizer_unknown", "connectivity.curve_optimizer", {"connectivity": {"curve_optimizer": "rmsprop"}}),
        Case("connectivity_unknown_key", ("'pair'", "connectivity"), {"connectivity": {"pair": [[0, 1]]}}),
        Case("bounds_track_seed_unknown", "bounds.track_seed", {"bounds": {"track_seed": 7}}),
        Case("bounds_track_seed_string", "bounds.track_seed", {"bounds": {"track_seed": "first"}}),
        Case("bounds_delta_sum_at_least_one", "bounds.delta", {"bounds": {"delta": 0.6, "delta_prime": 0.5}}),
        Case("bounds_delta_one", "bounds.delta", {"bounds": {"delta": 1.0}}),
        Case("bounds_sigma_min_above_max", "bounds.sigma_min", {"bounds": {"sigma_min": 2.0, "sigma_max": 1.0}}),
        Case("bounds_sigma_grid_one_unequal", "bounds.sigma_grid", {"bounds": {"sigma_grid": 1}}),
        Case("bounds_sigma_max_inf", "bounds.sigma_max", {"bounds": {"sigma_max": float("inf")}}),
        Case("bounds_prior_fraction_one", "bounds.prior_fraction", {"bounds": {"prior_fraction": 1.0}}),
        Case("bounds_objective_unknown", "bounds.objective", {"bounds": {"objective": "mse"}}),
        Case("bounds_pmin_zero", "bounds.pmin", {"bounds": {"pmin": 0}}),
        Case("bounds_unknown_key", ("'detla'", "did you mean 'delta'"), {"bounds": {"detla": 0.1}}),
    ]  # fmt: skip


def file_and_cli_cases() -> list[Case]:
    """YAML files that do not parse, and ``--config`` entries."""
    return [
        Case("yaml_syntax_error", "yaml_syntax_error.yaml", "seeds: [0, 1\nlandscape:\n  span: 1\n"),
        Case("yaml_tab_indentation", "yaml_tab_indentation.yaml", "landscape:\n\tspan: 1\n"),
        Case("yaml_top_level_list", "yaml_top_level_list.yaml", "- seeds\n- 1\n"),
        Case("yaml_duplicate_key", "landscape", "landscape: {span: 0.5}\nlandscape: {resolution: 3}\n"),
        Case("cli_seeds_string_item", "seeds[1]", cli=['seeds=[0,"a"]']),
        Case("cli_landscape_resolution_negative", "landscape.resolution", cli=["landscape={resolution: -1}"]),
        Case("cli_landscape_span_nan", "landscape.span", cli=["landscape={span: .nan}"]),
        Case("cli_seeds_one", "seeds", cli=["seeds=[0]"]),
        Case("cli_seeds_comma_list", "seeds", cli=["seeds=0,1"]),
        Case("cli_device_unknown", "device", cli=["device=gpu"]),
        Case("cli_threads_word", "threads", cli=["threads=zero"]),
        Case("cli_dotted_key", "'data.root'", cli=["data.root=other"]),
        Case("cli_unknown_top_level_key", "'curvture'", cli=["curvture={top_k: 3}"]),
        Case("cli_bounds_delta_sum", "bounds.delta", cli=["bounds={delta: 0.9, delta_prime: 0.2}"]),
        Case("cli_epochs_zero", f"{EXP}.epochs", cli=["experiments={report_mlp: {epochs: 0}}"]),
        Case("cli_select_unknown", "select_experiments", cli=["select_experiments=[nope]"]),
        Case("cli_mirror_missing", "data.mirrors.mnist", cli=["data={mirrors: {mnist: /nonexistent/mnist}}"]),
        Case("cli_no_value", "seeds", cli=["seeds"]),
    ]  # fmt: skip


def all_cases(ctx: Context) -> list[Case]:
    cases = (
        top_level_cases()
        + data_cases(ctx)
        + experiment_cases()
        + optimizer_cases()
        + measurement_cases()
        + pair_and_bound_cases()
        + file_and_cli_cases()
    )
    names = [case.name for case in cases]
    duplicates = sorted(name for name, n in Counter(names).items() if n > 1)
    assert not duplicates, f"duplicate case names: {duplicates}"
    return cases


# ----------------------------------------------------------------------------- running


def environment() -> dict[str, str]:
    """This process's environment without mirror variables (they would win over the config)."""
    return {
        k: v for k, v in os.environ.items() if not (k.startswith("LOSSGEOM_") and "MIRROR" in k)
    }


def run(command: list[str], cwd: Path, timeout: float, stop_at_failure: bool) -> dict:
    """Run a command in its own process group, with a timeout; return rc, output and timing.

    With ``stop_at_failure``, the group is stopped as soon as Snakemake reports a failing job
    (the workflow profile keeps going past failures, which would only cost time here).
    """
    start = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    timed_out = stopped = False
    before_stop = None  # lines seen before the group was stopped (a killed job reads as an error)
    while process.poll() is None:
        if time.monotonic() - start > timeout:
            timed_out = True
        elif stop_at_failure and any(mark in line for line in lines for mark in FAILURE_MARKS):
            stopped = True
        if timed_out or stopped:
            before_stop = len(lines)
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            break
        time.sleep(0.5)
    reader.join(timeout=10)
    return {
        "rc": process.returncode,
        "output": "".join(lines),
        "output_before_stop": "".join(lines[:before_stop]),
        "seconds": round(time.monotonic() - start, 1),
        "timed_out": timed_out,
        "stopped_at_failure": stopped,
    }


def write_case_file(case: Case, folder: Path) -> Path | None:
    if case.config is None:
        return None
    path = folder / f"{case.name}.yaml"
    text = case.config if isinstance(case.config, str) else yaml.safe_dump(case.config)
    path.write_text(text)
    return path


def command(case: Case, case_file: Path | None, base: Path, workdir: Path, dry: bool) -> list:
    files = [str(SMOKE)] + ([] if case.data else [str(base)])
    files += [str(case_file)] if case_file else []
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
    cmd += ["--directory", str(workdir), "--configfile", *files]
    cmd += ["--config", *case.cli] if case.cli else []
    return cmd + ["--cores", "1", "-n", "all"] if dry else cmd + ["--cores", "2", "all"]


def excerpt(output: str, keys: tuple[str, ...]) -> str:
    """The error line that names the first expected text, else the last line that looks like one."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    named = [line for line in lines if keys[0] in line and not line.startswith("Command")]
    for line in named:
        if "rror" in line:
            return line[:240]
    if named:
        return named[0][:240]
    errors = [line for line in lines if "rror" in line and not line.startswith("File ")]
    return (errors[-1] if errors else (lines[-1] if lines else ""))[:240]


def error_lines(output: str) -> int:
    """Lines from the first one that mentions an error (the whole output when none does)."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if "rror" in line or "Exception" in line:
            return len(lines) - index
    return len(lines)


def classify(dry: dict, real: dict | None, created: bool, keys: tuple[str, ...]) -> str:
    """The case's class (see the module docstring) from its dry run and its real run."""
    final = real or dry
    named = all(key in final["output"] for key in keys)
    if real is None:  # the dry run failed: nothing ran
        return "rejected_at_parse" if named and not created else "rejected_unclear"
    failed = real["rc"] not in (0, None) and not real["timed_out"]
    failed = failed or real["stopped_at_failure"]
    failed = failed or any(mark in real["output_before_stop"] for mark in FAILURE_MARKS)
    if failed and not real["job_started"] and not created:
        return "rejected_at_parse" if named else "rejected_unclear"
    return "failed_after_job_start" if failed else "accepted"


def run_case(case: Case, root: Path, base: Path, timeouts: tuple[float, float]) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"{case.name}-", dir=root))
    case_file = write_case_file(case, root)
    keys = (case.key,) if isinstance(case.key, str) else case.key
    dry = run(command(case, case_file, base, workdir, True), root, timeouts[0], False)
    real = None
    if dry["rc"] == 0:
        real = run(command(case, case_file, base, workdir, False), root, timeouts[1], True)
        real["job_started"] = (
            "Finished job" in real["output"]
            or "jobid:" in real["output"]
            or (workdir / "results").exists()
        )
    created = (workdir / "results").exists() or (workdir / "resources").exists()
    final = real or dry
    result = {
        "name": case.name,
        "kind": "cli" if case.cli and case.config is None else "configfile",
        "expected_key": list(keys),
        "expected_class": case.expect,
        "class": classify(dry, real, created, keys),
        "dry_rc": dry["rc"],
        "dry_seconds": dry["seconds"],
        "real_rc": None if real is None else real["rc"],
        "real_seconds": None if real is None else real["seconds"],
        "real_timed_out": None if real is None else real["timed_out"],
        "job_started": None if real is None else real["job_started"],
        "created_results_or_resources": created,
        "key_named": all(key in final["output"] for key in keys),
        "output_lines": len(final["output"].splitlines()),
        "error_lines": error_lines(final["output"]),
        "message": excerpt(final["output"], keys),
        "output_tail": final["output"].splitlines()[-60:],
    }
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def context(root: Path) -> tuple[Context, Path]:
    """A valid synthetic mirror, a mirror that lacks a file, a plain file, and the base config."""
    mirror = root / "mirror"
    md5s = write_synthetic_mirror(mirror)
    partial = root / "partial_mirror"
    write_synthetic_mirror(partial)
    (partial / sorted(md5s)[0]).unlink()
    a_file = root / "a_file.txt"
    a_file.write_text("not a folder\n")
    base = root / "base.yaml"
    base.write_text(
        yaml.safe_dump({"data": {"mirrors": {"mnist": str(mirror)}, "checksums": {"mnist": md5s}}})
    )
    return Context(str(mirror), md5s, str(partial), str(a_file)), base


def report(results: list[dict]) -> dict[str, int]:
    width = max(len(r["name"]) for r in results)
    print(f"\n{'case':<{width}}  {'class':<22} {'expected':<22} key lines  message")
    for r in results:
        flag = "yes" if r["key_named"] else "no"
        print(
            f"{r['name']:<{width}}  {r['class']:<22} {r['expected_class']:<22} {flag:<3} "
            f"{r['error_lines']:>5}  {r['message'][:110]}"
        )
    counts = {name: sum(r["class"] == name for r in results) for name in CLASSES}
    print(
        "\ncounts:", ", ".join(f"{name} {n}" for name, n in counts.items()), f"(of {len(results)})"
    )
    unexpected = [r["name"] for r in results if r["class"] != r["expected_class"]]
    print("not as expected:", ", ".join(unexpected) or "none")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="/tmp/malformed_configs.json")
    parser.add_argument("--only", nargs="+", help="run only these cases")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--dry-timeout", type=float, default=120.0)
    parser.add_argument("--run-timeout", type=float, default=180.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="malformed-configs-") as folder:
        root = Path(folder)
        ctx, base = context(root)
        cases = all_cases(ctx)
        if args.list:
            print("\n".join(f"{c.name}: {c.key}" for c in cases), f"\n{len(cases)} cases")
            return
        if args.only:
            unknown = sorted(set(args.only) - {c.name for c in cases})
            if unknown:
                parser.error(f"unknown cases: {unknown}")
            cases = [c for c in cases if c.name in args.only]
        results = []
        for index, case in enumerate(cases, 1):
            result = run_case(case, root, base, (args.dry_timeout, args.run_timeout))
            results.append(result)
            print(
                f"[{index}/{len(cases)}] {case.name}: {result['class']} ({result['dry_seconds']} s)",
                flush=True,
            )
    counts = report(results)
    payload = {"counts": counts, "cases": results, "snakefile": str(REPO / "Snakefile")}
    Path(args.output).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
