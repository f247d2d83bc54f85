import json
import os
import shlex
import shutil

from lossgeom.bounds import check_settings as check_bound_settings
from lossgeom.config_checks import check_config, coerce_cli_values, load_yaml
from lossgeom.data import DATASETS
from lossgeom.provenance import config_hash


# Every malformed configuration fails here, before any job, with one short message naming the
# key: finite numbers, the schema (which also fills the defaults), and what the schema cannot
# say (dataset sizes, checksum and mirror files, model shapes the stages need, two seeds).
for _path in workflow.configfiles:  # Snakemake read them already; this refuses repeated keys
    load_yaml(_path)
coerce_cli_values(config, workflow.config_settings.config)
check_config(config, DATASETS, workflow.source_path("../schemas/config.schema.yaml"))

def selected_experiments():
    """The configured experiments, or those ``select_experiments`` names (checked here)."""
    names = config["select_experiments"]
    if names is None:
        return config["experiments"]
    unknown = sorted(set(names) - set(config["experiments"]))
    if unknown:
        raise ValueError(f"select_experiments names {unknown}, which are not among the "
                         f"experiments {sorted(config['experiments'])}")
    return {name: config["experiments"][name] for name in names}


EXPERIMENTS = selected_experiments()
# The configuration files behind this run, in merge order (the default, then --configfile).
CONFIG_FILES = [os.path.relpath(path, workflow.basedir) for path in workflow.configfiles]
SEEDS = config["seeds"]
CURVATURE = config["curvature"]
DENSITY = config["density"]
LANDSCAPE = config["landscape"]
CONNECTIVITY = config["connectivity"]
BOUNDS = config["bounds"]
DATA_ROOT = config["data"]["root"]
RUN = "results/runs/{experiment}/seed{seed}"
PAIR = "results/runs/{experiment}/pairs/seed{seed_a}-seed{seed_b}"
CHECKPOINTS = "results/checkpoints/{experiment}"
# Every job runs the conda environment that pyproject.toml mirrors (--sdm conda), or the
# active one.
ENVIRONMENT = "../../environment.yml"
# Jobs that use the accelerator ask for one "gpu" resource, so a local run shares one GPU
# between jobs one at a time (the default profile caps gpu=1) and SLURM gets a GPU per job.
GPU_JOB = int(config["device"] == "cuda" or (config["device"] == "auto" and shutil.which("nvidia-smi") is not None))


def check_datasets():
    """Each experiment names a registry dataset; its model's input and output sizes follow it."""
    for name, experiment in EXPERIMENTS.items():
        dataset = experiment["dataset"]
        if dataset not in DATASETS:
            raise ValueError(f"experiments.{name}.dataset: {dataset!r} is unknown; known: {sorted(DATASETS)}")
        model = experiment["model"]
        for key, value in (("input_dim", DATASETS[dataset].input_dim),
                           ("num_classes", DATASETS[dataset].num_classes)):
            if model.setdefault(key, value) != value:
                raise ValueError(f"experiments.{name}.model.{key} is {model[key]}, but {dataset} "
                                 f"needs {value}")
    for dataset in config["data"]["mirrors"]:
        if dataset not in DATASETS:
            raise ValueError(f"data.mirrors.{dataset}: unknown dataset; known: {sorted(DATASETS)}")


check_datasets()
USED_DATASETS = sorted({experiment["dataset"] for experiment in EXPERIMENTS.values()})
# A mirror is where a dataset's files come from, not what they are (their checksums say that),
# so jobs get it through the dataset's environment variable, never as a parameter of a rule;
# switching between the variable and data.mirrors, or moving the mirror, reruns nothing.
for _dataset, _folder in config["data"]["mirrors"].items():
    if _folder and not os.environ.get(DATASETS[_dataset].mirror_variable):
        os.environ[DATASETS[_dataset].mirror_variable] = os.path.abspath(_folder)


def data_file(dataset):
    """The prepared tensors of a registry dataset."""
    return f"{DATA_ROOT}/{dataset}/{dataset}.pt"


def experiment_data(wildcards):
    return data_file(EXPERIMENTS[wildcards.experiment]["dataset"])


def run_path(experiment, seed):
    return RUN.format(experiment=experiment, seed=seed)


def cli_flags(values, exclude=()):
    """Command-line flags from a config section: ``key: v`` becomes ``--key v``.

    Underscores become dashes; booleans become ``--key`` or ``--no-key``; lists and mappings
    are passed as JSON. Scripts declare every flag the workflow passes as required, so a
    default lives only in the schema.
    """
    parts = []
    for key, value in values.items():
        if key in exclude:
            continue
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, (list, dict)):
            parts.append(f"{flag} {quoted_json(value)}")
        else:
            parts.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(parts)


def quoted_json(value):
    return shlex.quote(json.dumps(value, sort_keys=True))


def common_flags(wildcards):
    """The data file, its dataset and the device: every measuring script's first flags."""
    dataset = EXPERIMENTS[wildcards.experiment]["dataset"]
    return f"--data {data_file(dataset)} --dataset {dataset} --device {config['device']}"


SUBSET_FLAGS = cli_flags({k: CURVATURE[k] for k in ("subset", "subset_seed")})


def script(name):
    """A script beside the Snakefile, declared as an input so edits to it rerun its jobs."""
    return os.path.join(workflow.basedir, "scripts", name)


def notebook(name):
    return os.path.join(workflow.basedir, "notebooks", f"{name}.py")


wildcard_constraints:
    experiment="[A-Za-z][A-Za-z0-9_]*",
    seed=r"\d+",
    seed_a=r"\d+",
    seed_b=r"\d+",
    epoch=r"\d+",
    kind="random|filter|hessian",


def epochs(experiment):
    return EXPERIMENTS[experiment]["epochs"]


def check_seed_overrides():
    """Every seed override names a configured seed, once (checked at parse time)."""
    for name, experiment in EXPERIMENTS.items():
        named = [item["seed"] for item in experiment["seed_overrides"]]
        for seed in named:
            if seed not in SEEDS or named.count(seed) > 1:
                raise ValueError(f"experiments.{name}.seed_overrides: seed {seed} must be one of "
                                 f"the configured seeds {SEEDS}, named once")


check_seed_overrides()


def run_spec(experiment, seed):
    """The experiment's settings for one seed, with that seed's overrides applied.

    ``seed_overrides`` itself is left out, so a run without overrides keeps the settings (and
    the checkpoint key) it had before overrides existed.
    """
    spec = {k: v for k, v in EXPERIMENTS[experiment].items() if k != "seed_overrides"}
    for item in EXPERIMENTS[experiment]["seed_overrides"]:
        if item["seed"] == int(seed):
            spec["optimizer"] = {**spec["optimizer"], **item.get("optimizer", {})}
            spec["batch_size"] = item.get("batch_size", spec["batch_size"])
    return spec


def spec_json(wildcards):
    return quoted_json(run_spec(wildcards.experiment, wildcards.seed))


def checkpoint_root(wildcards, kind=None):
    """Where a run's trained objects keep their checkpoints.

    The library keys a subfolder by the hash of every setting that shapes the object
    (:mod:`lossgeom.checkpoints`), so a changed config never resumes stale state. ``kind``
    names a side network trained from the run (the bounds stage's ``prior``). (No
    ``**kwargs``: Snakemake would fill them with the job's input, output and resources.)
    """
    folder = f"{CHECKPOINTS.format(experiment=wildcards.experiment)}/seed{wildcards.seed}"
    return f"{folder}/{kind}" if kind else folder


def run_files(pattern, **extra):
    """Expand a per-run pattern over every (experiment, seed) and the extra wildcards."""
    return [
        path
        for experiment in EXPERIMENTS
        for path in expand(pattern, experiment=experiment, seed=SEEDS, **extra)
    ]


def epoch_files(pattern, which="all"):
    """Expand a per-epoch pattern over runs and their epochs (all, or first and last)."""
    out = []
    for experiment in EXPERIMENTS:
        n = epochs(experiment)
        chosen = range(n + 1) if which == "all" else sorted({0, n})
        out += expand(pattern, experiment=experiment, seed=SEEDS, epoch=chosen)
    return out


def epoch_weights(wildcards):
    return f"{run_path(wildcards.experiment, wildcards.seed)}/weights/epoch{wildcards.epoch}.pt"


def final_weights(wildcards):
    return f"{run_path(wildcards.experiment, wildcards.seed)}/weights/epoch{epochs(wildcards.experiment)}.pt"


def initial_weights(wildcards):
    return f"{run_path(wildcards.experiment, wildcards.seed)}/weights/epoch0.pt"


def check_weight_files():
    """A finished run (its run.json exists) has every weight file; a missing one is named now.

    Snakemake tracks the weights folder, not the files in it, and does not look below stable
    tables that are up to date, so without this a deleted weight file went unnoticed by
    ``snakemake all`` until a job needed it.
    """
    for experiment in EXPERIMENTS:
        for seed in SEEDS:
            run = run_path(experiment, seed)
            if not os.path.exists(f"{run}/run.json"):
                continue
            missing = [f"{run}/weights/epoch{e}.pt" for e in range(epochs(experiment) + 1)
                       if not os.path.exists(f"{run}/weights/epoch{e}.pt")]
            if missing:
                raise ValueError(
                    f"{', '.join(missing)} missing, but the run finished ({run}/run.json "
                    f"exists). Delete {run}/weights and rerun: training resumes from its "
                    "checkpoints and rewrites every weight file."
                )


check_weight_files()


def weights_folder(*files):
    """An input function: the weights folders (train outputs) holding the files named."""

    def folder(wildcards):
        return sorted({os.path.dirname(file(wildcards)) for file in files})

    return folder


def final_eigenvectors(wildcards):
    if wildcards.kind != "hessian":
        return []
    return f"{run_path(wildcards.experiment, wildcards.seed)}/curvature/epoch{epochs(wildcards.experiment)}_eigenvectors.pt"


def seed_pairs():
    """The configured [seed_a, seed_b] pairs, or every pair of the configured seeds."""
    pairs = CONNECTIVITY["pairs"]
    if pairs is None:
        return [(a, b) for i, a in enumerate(SEEDS) for b in SEEDS[i + 1 :]]
    for a, b in pairs:
        if a == b or a not in SEEDS or b not in SEEDS:
            raise ValueError(
                f"connectivity.pairs: [{a}, {b}] must name two different seeds among {SEEDS}"
            )
    return [tuple(pair) for pair in pairs]


PAIRS = seed_pairs()  # checked at parse time, before any job runs


def pair_files(pattern):
    return [
        pattern.format(experiment=experiment, seed_a=a, seed_b=b)
        for experiment in EXPERIMENTS
        for a, b in PAIRS
    ]


def pair_weights(wildcards, which):
    seed = wildcards.seed_a if which == "a" else wildcards.seed_b
    return f"{run_path(wildcards.experiment, seed)}/weights/epoch{epochs(wildcards.experiment)}.pt"


def pair_checkpoints(wildcards):
    return f"{CHECKPOINTS.format(experiment=wildcards.experiment)}/pairs/seed{wildcards.seed_a}-seed{wildcards.seed_b}"


def tracked_seed():
    """The seed whose every epoch is bounded (checked at parse time)."""
    seed = BOUNDS["track_seed"]
    if seed is None:
        return SEEDS[0]
    if seed not in SEEDS:
        raise ValueError(f"bounds.track_seed: {seed} is not among the configured seeds {SEEDS}")
    return seed


# What the schema cannot say about the bounds section: the library's own checks, at parse time.
check_bound_settings(**{k: BOUNDS[k] for k in ("delta", "delta_prime", "sigma_min", "sigma_max", "sigma_grid")})
TRACKED_SEED = tracked_seed()
BOUNDS_OUTPUTS = {
    "bounds": f"{RUN}/bounds/epoch{{epoch}}.csv",
    "bound_terms": f"{RUN}/bounds/epoch{{epoch}}_terms.csv",
}


def bounds_files(pattern):
    """Every seed's final epoch, and every epoch of the tracked seed."""
    out = []
    for experiment in EXPERIMENTS:
        n = epochs(experiment)
        jobs = [(seed, n) for seed in SEEDS] + [(TRACKED_SEED, e) for e in range(n)]
        out += [pattern.format(experiment=experiment, seed=s, epoch=e) for s, e in sorted(jobs)]
    return out


def bounds_flags(wildcards):
    """Every bounds setting; the final epoch also gets the optimised posterior (and m)."""
    final = int(wildcards.epoch) == epochs(wildcards.experiment)
    return (
        f"{cli_flags(BOUNDS, exclude=('track_seed',))} --{'' if final else 'no-'}final-epoch "
        f"--spec {spec_json(wildcards)} --checkpoint-dir {checkpoint_root(wildcards, 'prior')}"
    )


# Each figure is drawn by one jupytext notebook from the tables it lists.
# The experiments' notebooks also read the runs table, to leave out (and name) runs that did not
# complete.
FIGURES = {
    "training_curves": ["runs", "training", "curvature"],
    "landscape_2d": ["runs", "landscape"],
    "landscape_1d": ["runs", "landscape"],
    "spectral_density": ["runs", "density"],
    "connectivity_paths": ["runs", "paths", "barriers"],
    "connectivity_plane": ["runs", "plane", "barriers"],
    "bounds_seeds": ["runs", "bounds", "bound_terms"],
    "bounds_epochs": ["runs", "bounds", "curvature"],
}
TABLES = expand(
    "results/tables/{table}.csv",
    table=["training", "runs", "curvature", "density", "landscape", "paths", "barriers", "plane",
           "bounds", "bound_terms"],
)


# Notebook parameters beyond tables and figure paths: settings a notebook must not infer.
NOTEBOOK_SETTINGS = {"bounds_epochs": {"tracked_seed": TRACKED_SEED}}


def notebook_parameters(wildcards, input, output):
    pairs = [f"{table}_table={path}" for table, path in zip(FIGURES[wildcards.name], input.tables)]
    pairs += [f"figure_png={output.png}", f"figure_pdf={output.pdf}"]
    pairs += [f"{key}={value}" for key, value in NOTEBOOK_SETTINGS.get(wildcards.name, {}).items()]
    return " ".join(f"-p {shlex.quote(pair)}" for pair in pairs)


# ----- The optimisation-dynamics study (workflow/rules/dynamics.smk) -----
DYNAMICS = config["dynamics"]
EOS = DYNAMICS["eos"]
NOISE = DYNAMICS["noise"]
ESCAPE = DYNAMICS["escape"]
TEMPERATURE = DYNAMICS["temperature"]
DYNAMICS_DATA = data_file(DYNAMICS["dataset"])
DYNAMICS_FLAGS = f"--data {DYNAMICS_DATA} --dataset {DYNAMICS['dataset']} --device {config['device']}"
EOS_RUN = "results/dynamics/eos/{name}/c{factor}.csv"


def factor_label(factor):
    return f"{factor:g}"


def eos_files():
    return [EOS_RUN.format(name=name, factor=factor_label(f))
            for name, run in EOS["runs"].items() for f in run["factors"]]


def noise_experiments():
    """The experiments whose checkpoints the noise stage measures (checked at parse time)."""
    names = NOISE["experiments"]
    if names is None:
        return list(EXPERIMENTS)
    unknown = sorted(set(names) - set(EXPERIMENTS))
    if unknown:
        raise ValueError(f"dynamics.noise.experiments names {unknown}, which are not among the "
                         f"experiments that run {sorted(EXPERIMENTS)}")
    return names


NOISE_EXPERIMENTS = noise_experiments()


def noise_files():
    return [f"{run_path(e, s)}/noise.csv" for e in NOISE_EXPERIMENTS for s in SEEDS]


def eos_flags(wildcards):
    run = EOS["runs"][wildcards.name]
    settings = {k: EOS[k] for k in ("subset", "subset_seed", "seed", "measure_every",
                                    "lanczos_iter", "tol", "chunk_size", "edge")}
    settings["stop_after_edge"] = json.dumps(EOS["stop_after_edge"])
    settings.update(model=run["model"], loss=run["loss"], momentum=run["momentum"],
                    steps=run["steps"] or EOS["steps"])
    return f"{cli_flags(settings)} --factor {wildcards.factor}"


# Stable tables: collected per-job tables, and the two summaries.
DYNAMICS_TABLES = {
    "eos": (EOS["enabled"], eos_files, EOS),
    "noise": (NOISE["enabled"], noise_files, NOISE),
    "escape": (ESCAPE["enabled"], lambda: [f"results/dynamics/escape/seed{s}.csv" for s in ESCAPE["seeds"]], ESCAPE),
    "temperature": (TEMPERATURE["enabled"], lambda: [f"results/dynamics/temperature/batch{b}.csv" for b in TEMPERATURE["batch_sizes"]], TEMPERATURE),
}


# The report's own run (the first experiment) on the EoS figure: its sharpness against
# 2 (1 + beta) / eta.
REPORT_EXPERIMENT = next(iter(EXPERIMENTS))
if EOS["enabled"]:
    TABLES += ["results/tables/eos.csv", "results/tables/eos_summary.csv"]
    FIGURES["edge_of_stability"] = ["runs", "eos", "eos_summary", "curvature"]
    NOTEBOOK_SETTINGS["edge_of_stability"] = {
        "report_experiment": REPORT_EXPERIMENT,
        "report_lr": EXPERIMENTS[REPORT_EXPERIMENT]["optimizer"]["lr"],
        "report_momentum": EXPERIMENTS[REPORT_EXPERIMENT]["optimizer"]["momentum"],
    }
if NOISE["enabled"]:
    TABLES += ["results/tables/noise.csv"]
    FIGURES["noise_geometry"] = ["runs", "noise"]
if ESCAPE["enabled"]:
    TABLES += ["results/tables/escape.csv", "results/tables/escape_summary.csv"]
    FIGURES["escape"] = ["runs", "escape", "escape_summary"]
    NOTEBOOK_SETTINGS["escape"] = {"escape_ratio": ESCAPE["escape_ratio"]}
if TEMPERATURE["enabled"]:
    TABLES += ["results/tables/temperature.csv"]
    FIGURES["temperature"] = ["runs", "temperature"]


# ----- The architecture study (workflow/rules/architectures.smk) -----
from lossgeom.architectures import schedule_priority, study_entries, study_jobs, study_settings

ARCH = config["architectures"]
ARCH_DATA = data_file(ARCH["dataset"])
ARCH_ENTRIES = study_entries(ARCH) if ARCH["enabled"] else {}
ARCH_JOBS = study_jobs(ARCH) if ARCH["enabled"] else {}  # job -> its architectures
ARCH_FLAGS = (f"--data {ARCH_DATA} --dataset {ARCH['dataset']} --device {config['device']} "
              + cli_flags({k: ARCH[k] for k in ("train_subset", "test_subset", "subset_seed")}))
ARCH_OUT = "results/architectures/{job}"
# Each job (an MLP family, or one named model) writes its rows of each of these stable tables.
ARCH_TABLES = ["architectures", "architecture_curvature", "architecture_density",
               "architecture_barriers", "nonconvexity"]


def arch_entries(wildcards):
    """The job's architectures: spec and measuring settings with the seeds (a JSON flag)."""
    return quoted_json({name: {"spec": ARCH_ENTRIES[name], "settings": study_settings(ARCH, name)}
                        for name in ARCH_JOBS[wildcards.job]})


def arch_priority(wildcards):
    """Longest jobs first (lossgeom.architectures.schedule_priority of its deepest member)."""
    return max(schedule_priority(ARCH_ENTRIES[name]["model"]) for name in ARCH_JOBS[wildcards.job])


def arch_files(table):
    return [f"{ARCH_OUT.format(job=job)}/{table}.csv" for job in ARCH_JOBS]


if ARCH["enabled"]:
    TABLES += [f"results/tables/{table}.csv" for table in ARCH_TABLES]
    # The study trains its own networks: its notebooks do not wait for the experiments' runs.
    FIGURES["architecture_depth"] = ["architectures", "architecture_curvature"]
    FIGURES["architecture_spectra"] = ["architectures", "architecture_density"]
    FIGURES["nonconvexity_maps"] = ["architectures", "nonconvexity"]
    FIGURES["architecture_barriers"] = ["architectures", "architecture_barriers"]


# ----- The generalisation sweep (workflow/rules/sweep.smk) -----
import dataclasses

from lossgeom.sweep import job_groups, sweep_models

SWEEP = config["sweep"]
SWEEP_MODELS = sweep_models(SWEEP) if SWEEP["enabled"] else []
SWEEP_JOBS = job_groups(SWEEP_MODELS, SWEEP["group_size"])  # job -> its models
# The centred certificates and Jiang measures of the sweep: the bounds section, cheaper.
SWEEP_BOUNDS = {**config["bounds"], **SWEEP["bounds"]}
SWEEP_BOUNDS.pop("track_seed", None)
SWEEP_ANALYSIS = ["measure_correlations", "measure_correlations_by_axis", "prediction"]
if SWEEP["enabled"]:
    TABLES += [f"results/tables/{t}.csv" for t in ["sweep", *SWEEP_ANALYSIS, "reparametrisation"]]
    FIGURES["measure_ranking"] = ["sweep", "measure_correlations", "measure_correlations_by_axis"]
    FIGURES["difficulty_prediction"] = ["sweep", "prediction"]
    FIGURES["reparametrisation"] = ["reparametrisation"]
    # The four-questions report reads every study's summary table that runs.
    FIGURES["four_questions"] = ["sweep", "measure_correlations", "prediction", "reparametrisation"]
    FIGURES["four_questions"] += [table for table, on in (
        ("architectures", ARCH["enabled"]), ("escape_summary", ESCAPE["enabled"]),
        ("temperature", TEMPERATURE["enabled"]), ("eos_summary", EOS["enabled"])) if on]
