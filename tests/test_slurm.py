"""The smoke preset on a real one-node SLURM cluster, through the project's profile.

The cluster comes from tests/slurm/start-cluster.sh (Debian's slurm-wlm and munge, as root).
Snakemake submits every job with sbatch through snakemake-executor-plugin-slurm and
profiles/slurm/config.yaml, unchanged but for ``device=cpu`` and the status command:
squeue, since the cluster keeps no accounting database. SLURM's own job-completion log
(jobcomp/filetxt, written by slurmctld) must list every job Snakemake ran, each completed, the
accelerator jobs on the "gpu" partition; their outputs must equal those of the local smoke run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]
START = REPO / "tests" / "slurm" / "start-cluster.sh"
STOP = REPO / "tests" / "slurm" / "stop-cluster.sh"
# Columns that hold wall-clock times or provenance, not results (as in benchmarks/compare_runs.py).
SKIP = {"seconds", "git_commit", "config_hash", "device", "reason", "path"}
# Every replication rule at one checkpoint or pair (data, training, curvature, density,
# slices, connectivity, bounds, a table and a notebook with what it reads, 21 jobs): each job
# costs two Snakemake start-ups inside SLURM, so all 39 replication jobs of the smoke preset
# took 515 s on two cores, these 311 s. Their outputs are compared with the local smoke run's.
RUN0, RUN1 = "results/runs/report_mlp/seed0", "results/runs/report_mlp/seed1"
OUTPUTS = [f"{RUN0}/metrics.csv", f"{RUN1}/metrics.csv", f"{RUN0}/curvature/epoch1.csv"]
OUTPUTS += [f"{RUN0}/density/epoch2.csv", f"{RUN0}/bounds/epoch1.csv"]
OUTPUTS += [f"{RUN0}/bounds/epoch1_terms.csv", "results/tables/training.csv"]
OUTPUTS += [f"{RUN0}/landscape/{kind}.csv" for kind in ("random", "filter", "hessian")]
OUTPUTS += [
    f"results/runs/report_mlp/pairs/seed0-seed1/{name}.csv"
    for name in ("paths", "barriers", "plane")
]
TARGETS = [*OUTPUTS, "results/figures/training_curves.png"]


def _missing() -> str | None:
    tools = ["slurmctld", "slurmd", "sbatch", "squeue", "munged"]
    if absent := [tool for tool in tools if shutil.which(tool) is None]:
        return f"SLURM/munge not installed ({', '.join(absent)} missing: apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the one-node test cluster must be started as root"
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if reason := _missing():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    folder = Path("/tmp") / f"lossgeom-slurm-{os.getpid()}"  # short: slurmd's socket path
    started = subprocess.run([str(START), str(folder)], capture_output=True, text=True)
    assert started.returncode == 0, started.stdout + started.stderr
    yield folder
    subprocess.run([str(STOP), str(folder)], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


def _completed_jobs(folder: Path) -> list[dict[str, str]]:
    """SLURM's job-completion log: one ``Key=Value ...`` line per finished job."""
    log = folder / "jobcomp.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in lines]


def _comparable(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    if "term" in frame.columns:
        frame = frame[~frame.term.str.contains("seconds")].reset_index(drop=True)
    return frame[[c for c in frame.columns if c not in SKIP]]


def test_smoke_preset_through_slurm_equals_the_local_run(cluster, smoke_run, tmp_path):
    local, _ = smoke_run
    shutil.copy(local / "test.yaml", tmp_path / "test.yaml")
    result = snakemake(
        tmp_path,
        *TARGETS,
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "--config",
        "device=cpu",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--seconds-between-status-checks",
        "2",
        "--latency-wait",
        "5",
        SLURM_CONF=str(cluster / "slurm.conf"),
    )
    output = result.stdout + result.stderr
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output)
    jobs = {job["JobId"]: job for job in _completed_jobs(cluster)}
    assert submitted, output[-3000:]
    # Every job Snakemake ran went through sbatch and SLURM recorded it as completed.
    slurm_ids = {slurm_id for _, slurm_id in submitted}
    assert slurm_ids <= set(jobs), sorted(slurm_ids - set(jobs))
    assert {jobs[i]["JobState"] for i in slurm_ids} == {"COMPLETED"}
    partitions = {jobs[i]["Partition"] for i in slurm_ids}
    assert partitions == {"cpu", "gpu"}, partitions
    local_jobs = re.findall(r"^localrule (\w+):", output, flags=re.M)
    assert not local_jobs, local_jobs  # nothing ran outside SLURM
    assert (tmp_path / TARGETS[-1]).stat().st_size
    # The same tables as the local smoke run (timing and provenance columns aside), to float32
    # round-off: the profile runs each accelerator job on 4 threads, the local smoke run on 1,
    # which reorders sums (measured: at most 2e-5 of a column's largest value).
    for name in OUTPUTS:
        expected = _comparable(local / name)
        got = _comparable(tmp_path / name)
        assert list(got.columns) == list(expected.columns) and len(got) == len(expected), name
        for column in expected.columns:
            if expected[column].dtype.kind == "f":
                values = np.abs(expected[column].to_numpy())
                scale = float(values[np.isfinite(values)].max(initial=0.0))
                np.testing.assert_allclose(
                    got[column], expected[column], rtol=1e-4, atol=1e-4 * scale, err_msg=name
                )
            else:
                assert got[column].tolist() == expected[column].tolist(), (name, column)
