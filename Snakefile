# lossgeom: loss-landscape geometry of the report's MLP on MNIST, reproduced end to end.
# snakemake all                             everything (default config: the report's setup)
# snakemake results/figures/<name>.png      one figure and what it needs
import os

from snakemake.utils import min_version

min_version("9.0")

from lossgeom.config_checks import load_yaml

load_yaml(os.path.join(workflow.basedir, "config", "config.yaml"))  # a syntax error names its line


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# "gpu" (one per accelerator job; profiles/default caps it at 1, so local jobs share the one
# GPU in turn) is tallied per job, not across a cluster: on SLURM each job gets its own GPU.
resource_scopes:
    gpu="local",


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/curvature.smk"
include: "workflow/rules/landscape.smk"
include: "workflow/rules/connectivity.smk"
include: "workflow/rules/bounds.smk"
include: "workflow/rules/dynamics.smk"
include: "workflow/rules/architectures.smk"
include: "workflow/rules/sweep.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        TABLES,
        expand("results/figures/{name}.{ext}", name=FIGURES, ext=["png", "pdf"]),
        expand("results/notebooks/{name}.{ext}", name=FIGURES, ext=["ipynb", "html"]),
        "results/index.html",
    default_target: True
