import json
import os
import shlex
import shutil

from snakemake.utils import validate

from lossgeom.provenance import config_hash


validate(config, workflow.source_path("../schemas/config.schema.yaml"))

if "hessian" in config["landscape"]["directions"] and config["curvature"]["top_k"] < 2:
    raise ValueError(
        "landscape.directions includes 'hessian', which needs curvature.top_k >= 2 "
        f"(got {config['curvature']['top_k']})"
    )

EXPERIMENTS = config["experiments"]
SEEDS = config["seeds"]
CURVATURE = config["curvature"]
DENSITY = config["density"]
LANDSCAPE = config["landscape"]
CONNECTIVITY = config["connectivity"]
DATA = os.path.join(config["data"]["root"], "mnist.pt")
RUN = "results/runs/{experiment}/seed{seed}"
# Every job runs the conda environment that pyproject.toml mirrors (--sdm conda), or the
# active one.
ENVIRONMENT = "../../environment.yml"
# Jobs that use the accelerator ask for one "gpu" resource, so a local run shares one GPU
# between jobs one at a time (the default profile caps gpu=1) and SLURM gets a GPU per job.
GPU_JOB = int(config["device"] == "cuda" or (config["device"] == "auto" and shutil.which("nvidia-smi") is not None))


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


def spec_json(wildcards):
    return shlex.quote(json.dumps(EXPERIMENTS[wildcards.experiment], sort_keys=True))


def checkpoint_dir(wildcards):
    """Keyed by the run's configuration hash: a changed config never resumes stale state."""
    spec = EXPERIMENTS[wildcards.experiment]
    key = config_hash(
        {
            "spec": spec,
            "seed": int(wildcards.seed),
            "data": {k: config["data"][k] for k in ("normalize", "checksums")},
            "device": config["device"],
        }
    )
    return f"results/checkpoints/{wildcards.experiment}/seed{wildcards.seed}/{key}"


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
    return f"results/runs/{wildcards.experiment}/seed{wildcards.seed}/weights/epoch{wildcards.epoch}.pt"


def final_weights(wildcards):
    return f"results/runs/{wildcards.experiment}/seed{wildcards.seed}/weights/epoch{epochs(wildcards.experiment)}.pt"


def final_eigenvectors(wildcards):
    if wildcards.kind != "hessian":
        return []
    return (
        f"results/runs/{wildcards.experiment}/seed{wildcards.seed}/curvature/"
        f"epoch{epochs(wildcards.experiment)}_eigenvectors.pt"
    )


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
PAIR = "results/runs/{experiment}/pairs/seed{seed_a}-seed{seed_b}"


def pair_files(pattern):
    return [
        pattern.format(experiment=experiment, seed_a=a, seed_b=b)
        for experiment in EXPERIMENTS
        for a, b in PAIRS
    ]


def pair_weights(wildcards, which):
    seed = wildcards.seed_a if which == "a" else wildcards.seed_b
    return f"results/runs/{wildcards.experiment}/seed{seed}/weights/epoch{epochs(wildcards.experiment)}.pt"


def quoted_json(value):
    return shlex.quote(json.dumps(value, sort_keys=True))


COMMON_FLAGS = (
    f"--data {DATA} --mean {config['data']['normalize']['mean']} "
    f"--std {config['data']['normalize']['std']} --device {config['device']}"
)
SUBSET_FLAGS = f"--subset {CURVATURE['subset']} --subset-seed {CURVATURE['subset_seed']}"

# Each figure is drawn by one jupytext notebook from the tables it lists.
FIGURES = {
    "training_curves": ["training", "curvature"],
    "landscape_2d": ["landscape"],
    "landscape_1d": ["landscape"],
    "spectral_density": ["density"],
    "connectivity_paths": ["paths", "barriers"],
    "connectivity_plane": ["plane", "barriers"],
}
TABLES = expand(
    "results/tables/{table}.csv",
    table=["training", "runs", "curvature", "density", "landscape", "paths", "barriers", "plane"],
)


def notebook_parameters(wildcards, input, output):
    pairs = [f"{table}_table={path}" for table, path in zip(FIGURES[wildcards.name], input.tables)]
    pairs += [f"figure_png={output.png}", f"figure_pdf={output.pdf}"]
    return " ".join(f"-p {shlex.quote(pair)}" for pair in pairs)
