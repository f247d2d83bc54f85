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
BOUNDS = config["bounds"]
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


def checkpoint_dir(wildcards, kind=None, extra=None):
    """Keyed by the run's configuration hash: a changed config never resumes stale state.

    ``kind`` names a side network trained from the run (e.g. the bounds stage's ``prior``),
    whose own settings ``extra`` enter the hash. (No ``**kwargs``: Snakemake would fill them
    with the job's input, output and resources.)
    """
    spec = EXPERIMENTS[wildcards.experiment]
    key = config_hash(
        {
            "spec": spec,
            "seed": int(wildcards.seed),
            "data": {k: config["data"][k] for k in ("normalize", "checksums")},
            "device": config["device"],
            **(extra or {}),
        }
    )
    folder = f"results/checkpoints/{wildcards.experiment}/seed{wildcards.seed}"
    return f"{folder}/{kind}/{key}" if kind else f"{folder}/{key}"


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


def tracked_seed():
    """The seed whose every epoch is bounded (checked at parse time)."""
    seed = BOUNDS["track_seed"]
    if seed is None:
        return SEEDS[0]
    if seed not in SEEDS:
        raise ValueError(f"bounds.track_seed: {seed} is not among the configured seeds {SEEDS}")
    return seed


def check_bounds():
    """What the schema cannot say about the bounds section, checked before any job."""
    if BOUNDS["delta"] + BOUNDS["delta_prime"] >= 1:
        raise ValueError(f"bounds.delta + bounds.delta_prime must be below 1, got "
                         f"{BOUNDS['delta']} + {BOUNDS['delta_prime']}")
    if BOUNDS["sigma_min"] > BOUNDS["sigma_max"]:
        raise ValueError(f"bounds.sigma_min ({BOUNDS['sigma_min']}) exceeds bounds.sigma_max ({BOUNDS['sigma_max']})")
    if BOUNDS["sigma_grid"] == 1 and BOUNDS["sigma_min"] != BOUNDS["sigma_max"]:
        raise ValueError("bounds.sigma_grid = 1 needs bounds.sigma_min == bounds.sigma_max")


check_bounds()
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


def bounds_final_flags(wildcards):
    """The final epoch gets m draws and the optimised posterior; other epochs a lighter m."""
    if int(wildcards.epoch) != epochs(wildcards.experiment):
        return f"--mc-samples {BOUNDS['epoch_mc_samples']}"
    b = BOUNDS
    prior_dir = checkpoint_dir(wildcards, "prior",
                               {"prior": {k: b[k] for k in ("prior_fraction", "prior_epochs", "split_seed")}})
    return (
        f"--mc-samples {b['mc_samples']} --optimize --spec {spec_json(wildcards)} "
        f"--prior {b['prior']} --prior-fraction {b['prior_fraction']} "
        f"--prior-epochs {b['prior_epochs']} --split-seed {b['split_seed']} "
        f"--posterior-sigma {b['posterior_sigma']} --objective {b['objective']} "
        f"--posterior-epochs {b['posterior_epochs']} --posterior-lr {b['posterior_lr']} "
        f"--posterior-momentum {b['posterior_momentum']} "
        f"--posterior-batch-size {b['posterior_batch_size']} --pmin {b['pmin']} "
        f"--checkpoint-dir {prior_dir}"
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
    "connectivity_paths": ["paths", "barriers"],
    "connectivity_plane": ["plane", "barriers"],
    "bounds_seeds": ["bounds", "bound_terms"],
    "bounds_epochs": ["bounds", "curvature"],
}
TABLES = expand(
    "results/tables/{table}.csv",
    table=["training", "runs", "curvature", "density", "landscape", "paths", "barriers", "plane",
           "bounds", "bound_terms"],
)


def notebook_parameters(wildcards, input, output):
    pairs = [f"{table}_table={path}" for table, path in zip(FIGURES[wildcards.name], input.tables)]
    pairs += [f"figure_png={output.png}", f"figure_pdf={output.pdf}"]
    return " ".join(f"-p {shlex.quote(pair)}" for pair in pairs)
