import json
import os
import shlex

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
DATA = os.path.join(config["data"]["root"], "mnist.pt")
RUN = "results/runs/{experiment}/seed{seed}"
# Every job runs the conda environment that pyproject.toml mirrors (--sdm conda), or the
# active one.
ENVIRONMENT = "../../environment.yml"


def script(name):
    """A script beside the Snakefile, declared as an input so edits to it rerun its jobs."""
    return os.path.join(workflow.basedir, "scripts", name)


def notebook(name):
    return os.path.join(workflow.basedir, "notebooks", f"{name}.py")


wildcard_constraints:
    experiment="[A-Za-z][A-Za-z0-9_]*",
    seed=r"\d+",
    epoch=r"\d+",
    kind="random|filter|hessian",


def epochs(experiment):
    return EXPERIMENTS[experiment]["epochs"]


def spec_json(wildcards):
    return shlex.quote(json.dumps(EXPERIMENTS[wildcards.experiment], sort_keys=True))


def checkpoint_dir(wildcards):
    """Keyed by the run's configuration hash: a changed config never resumes stale state."""
    spec = EXPERIMENTS[wildcards.experiment]
    key = config_hash({"spec": spec, "seed": int(wildcards.seed)})
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
}
TABLES = expand(
    "results/tables/{table}.csv",
    table=["training", "runs", "curvature", "density", "landscape"],
)


def notebook_parameters(wildcards, input, output):
    pairs = [f"{table}_table={path}" for table, path in zip(FIGURES[wildcards.name], input.tables)]
    pairs += [f"figure_png={output.png}", f"figure_pdf={output.pdf}"]
    return " ".join(f"-p {shlex.quote(pair)}" for pair in pairs)
